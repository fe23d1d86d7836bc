import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface InfoArgs {
  device: string;
  json?: boolean;
}

export const infoCommand: CommandModule<object, InfoArgs> = {
  command: 'info <device>',
  describe: 'capacity, block size, write protect, partition table and pstore region of a card, device or image',
  builder: (c) =>
    c
      .positional('device', { type: 'string', demandOption: true, describe: 'usb (the only card), usb:…, /dev/sdX or an image file' })
      .option('json', { type: 'boolean', describe: 'print the report as JSON' }),
  handler: async (argv) => (await loadCommand(() => import('../commands/info.js'))).runInfo(argv),
};
