/**
 * Runs the flash and read commands the way src/cli/main.ts runs every command (same error to
 * exit-code mapping), so the tests can drive the real command line in a child process.
 */
import yargs from 'yargs';
import { CrashcartError, ExitCode } from '../../../src/errors.js';
import { flashCommand } from '../../../src/cli/commands/flash.js';
import { readCommand } from '../../../src/cli/commands/read.js';

class UsageErrorLike extends Error {}

async function run(argv: string[]): Promise<number> {
  let failed: unknown;
  const parser = yargs(argv).scriptName('crashcart').strict().exitProcess(false).help(false).version(false).fail((msg, err) => {
    failed = err ?? new UsageErrorLike(msg);
  });
  flashCommand(parser);
  readCommand(parser);
  try {
    await parser.parseAsync();
  } catch (e) {
    failed ??= e;
  }
  if (failed === undefined) return ExitCode.OK;
  if (failed instanceof UsageErrorLike) {
    process.stderr.write(`crashcart: ${failed.message}\n`);
    return ExitCode.USAGE;
  }
  if (failed instanceof CrashcartError) {
    process.stderr.write(`crashcart: ${failed.message}\n`);
    return failed.exitCode;
  }
  process.stderr.write(`crashcart: internal error: ${(failed as Error)?.stack ?? String(failed)}\n`);
  return ExitCode.INTERNAL;
}

process.exitCode = await run(process.argv.slice(2));
