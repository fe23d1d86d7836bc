import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface WaitArgs {
  selector?: string;
  insert?: boolean;
  remove?: boolean;
  timeout?: number;
  interval?: number;
  json?: boolean;
}

export const waitCommand: CommandModule<object, WaitArgs> = {
  command: 'wait [selector]',
  describe: 'wait until a card is in (--insert, default) or out of (--remove) a reader; exit 7 on --timeout',
  builder: (c) =>
    c
      .positional('selector', { type: 'string', describe: 'reader or slot: usb:PORT, usb:VID:PID, usb:serial=…, @lun=N (default: every reader)' })
      .option('insert', { type: 'boolean', describe: 'wait until a card is present (default)' })
      .option('remove', { type: 'boolean', describe: 'wait until no card is present' })
      .option('timeout', { type: 'number', describe: 'give up after S seconds (exit code 7); 0 = look once' })
      .option('interval', { type: 'number', describe: 'seconds between polls (default 1)' })
      .option('json', { type: 'boolean', describe: 'print the result as JSON' })
      .conflicts('insert', 'remove'),
  handler: async (argv) => (await loadCommand(() => import('../commands/wait.js'))).runWait(argv),
};
