import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface ListArgs {
  json?: boolean;
}

export const listCommand: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'USB card readers, their slots, and the card in each (capacity, write protect)',
  builder: (c) => c.option('json', { type: 'boolean', describe: 'print {"readers": [...]} as JSON' }),
  handler: async (argv) => (await loadCommand(() => import('../commands/list.js'))).runList(argv),
};
