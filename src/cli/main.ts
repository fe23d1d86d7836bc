/**
 * The crashcart command line: a thin layer over the library. Every failure becomes a one-line
 * message and the exit code of its error class (see errors.ts).
 */
import yargs from 'yargs';
import { CrashcartError, ExitCode } from '../errors.js';
import { pstoreClearCommand } from './commands/pstore-clear.js';
import { pstoreExtractCommand } from './commands/pstore-extract.js';
import { pstoreFormatCommand } from './commands/pstore-format.js';
import { pstoreLayoutCommand } from './commands/pstore-layout.js';
import { infoCommand } from './commands/info.js';
import { listCommand } from './commands/list.js';
import { udevRuleCommand } from './commands/udev-rule.js';
import { waitCommand } from './commands/wait.js';
import { provisionCommand } from './commands/provision.js';
import { profileCommand } from './commands/profile.js';
import { flashCommand } from './commands/flash.js';
import { readCommand } from './commands/read.js';
import { muxCommand } from './commands/mux.js';
import './usb-support.js';
import { installCancellation, outputBroken } from './cancellation.js';

export async function main(argv: string[]): Promise<number> {
  // SIGINT/SIGTERM/SIGHUP and a closed stdout/stderr: one path for every command.
  const uninstall = installCancellation();
  try {
    const code = await run(argv);
    // The output went away (`| head -1`): a defined code, no stack trace, nothing more written.
    // A signal that stopped the command keeps its own code (SIGHUP also takes the terminal away).
    const bySignal = code === ExitCode.HANGUP || code === ExitCode.CANCELLED || code === ExitCode.TERMINATED;
    return outputBroken() && !bySignal ? ExitCode.BROKEN_PIPE : code;
  } finally {
    uninstall();
  }
}

async function run(argv: string[]): Promise<number> {
  let failed: unknown;
  const parser = readCommand(flashCommand(yargs(argv)))
    .scriptName('crashcart')
    .usage('$0 <command> [options]')
    .command('pstore', 'Linux pstore/blk regions: extract, layout, format, clear', (y) =>
      [pstoreExtractCommand, pstoreLayoutCommand, pstoreFormatCommand, pstoreClearCommand].reduce((acc, add) => add(acc), y).demandCommand(1, 'name a pstore subcommand'),
    )
    .command(listCommand)
    .command(waitCommand)
    .command(muxCommand)
    .command(infoCommand)
    .command(udevRuleCommand)
    .command(provisionCommand)
    .command(profileCommand)
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // Throwing stops yargs from running the handler after a validation failure.
      throw err ?? new UsageErrorLike(msg);
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    failed = e;
  }
  if (failed === undefined) return ExitCode.OK;
  if (failed instanceof UsageErrorLike) {
    process.stderr.write(`crashcart: ${failed.message}\nRun "crashcart --help" for usage.\n`);
    return ExitCode.USAGE;
  }
  if (failed instanceof CrashcartError) {
    process.stderr.write(`crashcart: ${failed.message}\n`);
    return failed.exitCode;
  }
  // Ctrl-C at a prompt (readline rejects with "Aborted with Ctrl+C") or an abort that reached
  // here unwrapped: a cancellation, not an internal error.
  if ((failed as Error)?.name === 'AbortError') {
    process.stderr.write(`crashcart: cancelled (${(failed as Error).message || 'aborted'})\n`);
    return ExitCode.CANCELLED;
  }
  process.stderr.write(`crashcart: internal error: ${(failed as Error)?.stack ?? String(failed)}\n`);
  return ExitCode.INTERNAL;
}

class UsageErrorLike extends Error {}
