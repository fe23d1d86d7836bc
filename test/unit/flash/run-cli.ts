/** Runs the real command line (src/cli/main.ts) in a child process for the flash/read CLI tests. */
import { main } from '../../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
