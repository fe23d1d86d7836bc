import type { Argv } from 'yargs';
import { MAX_TRANSFER_OPTION } from './max-transfer-option.js';
import { RECONNECT_TIMEOUT_OPTION } from './reconnect-option.js';
import { loadCommand } from './load-command.js';

export interface ReadArgs {
  device: string;
  output: string;
  offset?: string;
  size?: string;
  retries?: number;
  map?: string;
  json?: boolean;
  'max-transfer'?: string;
  'reconnect-timeout'?: number;
}

export function readCommand(y: Argv) {
  return y.command(
    'read <device>',
    'copy a card (or a byte range of it) to an image file; unreadable sectors go into a ddrescue map',
    (c) =>
      c
        .positional('device', { type: 'string', demandOption: true, describe: '/dev/sdX, usb:… or an image file' })
        .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'image file to write' })
        .option('offset', { type: 'string', describe: 'first byte to read (4096, 0x1000, 512K, 8s…)' })
        .option('size', { type: 'string', describe: 'bytes to read (default: to the end)' })
        .option('retries', { type: 'number', default: 3, describe: 'retries per chunk and per sector before a sector counts as bad' })
        .option('map', { type: 'string', describe: 'ddrescue mapfile (default OUTPUT.map); an existing one with OUTPUT retries only the unfinished areas' })
        .option('json', { type: 'boolean', describe: 'NDJSON progress events and a summary object on stdout' })
        .option('max-transfer', MAX_TRANSFER_OPTION)
        .option('reconnect-timeout', RECONNECT_TIMEOUT_OPTION),
    async (argv) => (await loadCommand(() => import('../commands/read.js'))).runRead(argv),
  );
}
