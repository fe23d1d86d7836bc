/**
 * The crashcart command line: a thin layer over the library. Every failure becomes a one-line
 * message and the exit code of its error class (see errors.ts). The arguments are parsed before
 * any of the library loads: the command definitions (./args/) import a command's implementation
 * (./commands/) only when it runs.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { CrashcartError, deviceFailureOf, exitClassOf, ExitCode, type ExitCodeValue } from '../errors.js';
import { diag, logFormatFromArgv, setLogFormat } from './diagnostics.js';
import { pstoreClearCommand } from './args/pstore-clear.js';
import { pstoreExtractCommand } from './args/pstore-extract.js';
import { pstoreFormatCommand } from './args/pstore-format.js';
import { pstoreLayoutCommand } from './args/pstore-layout.js';
import { infoCommand } from './args/info.js';
import { listCommand } from './args/list.js';
import { udevRuleCommand } from './args/udev-rule.js';
import { waitCommand } from './args/wait.js';
import { provisionCommand } from './args/provision.js';
import { profileCommand } from './args/profile.js';
import { flashCommand } from './args/flash.js';
import { readCommand } from './args/read.js';
import { muxCommand } from './args/mux.js';
import { describeStop, exitCodeFor, installCancellation, onQuit, outputBroken } from './cancellation.js';

export async function main(argv: string[]): Promise<number> {
  // SIGINT/SIGTERM/SIGHUP and a closed stdout/stderr: one path for every command.
  const uninstall = installCancellation();
  setLogFormat(logFormatFromArgv(argv));
  onQuit((reason) => void fail(argv, 'InterruptedError', `${describeStop(reason)}: quit`, exitCodeFor(reason), `${describeStop(reason)}: quit`));
  try {
    const code = await run(argv);
    // The output went away (`| head -1`): a defined code, no stack trace, nothing more written.
    // A signal that stopped the command keeps its own code (SIGHUP also takes the terminal away).
    const bySignal = code === ExitCode.HANGUP || code === ExitCode.CANCELLED || code === ExitCode.TERMINATED;
    return outputBroken() && !bySignal ? ExitCode.BROKEN_PIPE : code;
  } finally {
    uninstall();
    onQuit(undefined);
  }
}

/**
 * crashcart's own version, from its package.json. yargs' `.version()` without one reads the
 * package.json of the folder that holds yargs' node_modules: in a project that installed
 * crashcart locally, that project's, not ours.
 */
function ownVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
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
    .option('log-format', { choices: ['text', 'json'], default: 'text', global: true, describe: 'stderr diagnostics: text, or one JSON object per line' })
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(ownVersion())
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
  if (failed instanceof UsageErrorLike) return fail(argv, 'UsageError', failed.message, ExitCode.USAGE, `${failed.message}\nRun "crashcart --help" for usage.`);
  if (failed instanceof CrashcartError) return fail(argv, failed.name, failed.message, failed.exitCode, failed.message, failed);
  // Ctrl-C at a prompt (readline rejects with "Aborted with Ctrl+C") or an abort that reached
  // here unwrapped: a cancellation, not an internal error.
  if ((failed as Error)?.name === 'AbortError') {
    const message = `cancelled (${(failed as Error).message || 'aborted'})`;
    return fail(argv, 'CancelledError', message, ExitCode.CANCELLED, message);
  }
  const name = (failed as Error)?.name ?? 'Error';
  return fail(argv, name, `internal error: ${(failed as Error)?.message ?? String(failed)}`, ExitCode.INTERNAL, `internal error: ${(failed as Error)?.stack ?? String(failed)}`);
}

/**
 * Reports a failure: a diagnostic on stderr and, for a command run with --json, an error object
 * as the last line of stdout (schemas/v1/error.schema.json) with the exit code and its class.
 */
function fail(argv: string[], name: string, message: string, code: ExitCodeValue, text: string, e?: unknown): number {
  const failure = deviceFailureOf(e);
  diag('error', text, { code, ...(failure ? { failure } : {}) });
  if (argv.some((a) => a === '--json' || a === '--json=true') && !outputBroken()) {
    const obj = { type: 'error', name, message, exitCode: code, class: exitClassOf(code), ...(failure ? { failure } : {}) };
    try {
      process.stdout.write(JSON.stringify(obj) + '\n');
    } catch {
      // stdout gone: the exit code says it all.
    }
  }
  return code;
}

class UsageErrorLike extends Error {}
