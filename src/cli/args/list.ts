import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface ListArgs {
  json?: boolean;
  watch?: boolean;
  interval?: number;
}

export const listCommand: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'USB card readers, their slots, and the card in each (capacity, write protect); --watch: readers and cards coming and going',
  builder: (c) =>
    c
      .option('json', { type: 'boolean', describe: 'print {"readers": [...]} as JSON; with --watch one event per line (NDJSON)' })
      .option('watch', { type: 'boolean', describe: 'keep looking and report readers and cards coming and going, until SIGINT/SIGTERM' })
      .option('interval', { type: 'number', describe: 'with --watch: seconds between looks (default 2)' }),
  handler: async (argv) => (await loadCommand(() => import('../commands/list.js'))).runList(argv),
};
