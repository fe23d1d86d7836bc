import type { Argv } from 'yargs';
import { MAX_TRANSFER_OPTION } from './max-transfer-option.js';
import { RECONNECT_TIMEOUT_OPTION } from './reconnect-option.js';
import { loadCommand } from './load-command.js';

export interface FlashArgs {
  image: string;
  devices: string[];
  bmap?: string | false;
  verify?: boolean;
  yes?: boolean;
  json?: boolean;
  resume?: boolean;
  'force-system-disk'?: boolean;
  retries?: number;
  'max-transfer'?: string;
  'reconnect-timeout'?: number;
}

export function flashCommand(y: Argv) {
  return y.command(
    'flash <image> <devices..>',
    'write an image (raw, .gz, .xz, .zst, .bz2, .zip; with a bmap, only its mapped blocks) to one or more cards and verify it',
    (c) =>
      c
        .positional('image', { type: 'string', demandOption: true, describe: 'image file; the format is detected from its content' })
        .positional('devices', { type: 'string', array: true, demandOption: true, describe: 'destinations: /dev/sdX, usb:… or an image file' })
        .option('bmap', { type: 'string', describe: 'bmap file (default: IMAGE.bmap next to the image, if there); --no-bmap writes every block' })
        .option('verify', { type: 'boolean', default: true, describe: 'read the cards back and compare (--no-verify skips it, and the image SHA-256 with it)' })
        .option('yes', { alias: 'y', type: 'boolean', describe: 'do not ask for confirmation' })
        .option('json', { type: 'boolean', describe: 'NDJSON progress events and a summary object on stdout' })
        .option('resume', { type: 'boolean', describe: 'continue an interrupted flash of this image on these cards where it stopped' })
        .option('force-system-disk', { alias: 'allow-system-disk', type: 'boolean', describe: 'allow writing an OS block device that is mounted or holds the running system' })
        .option('retries', { type: 'number', default: 5, describe: 'retries per transfer on transient errors (with back-off)' })
        .option('max-transfer', MAX_TRANSFER_OPTION)
        .option('reconnect-timeout', RECONNECT_TIMEOUT_OPTION),
    async (argv) => (await loadCommand(() => import('../commands/flash.js'))).runFlash(argv),
  );
}
