import type { Argv } from 'yargs';
import { withGeometryOptions, type GeometryArgs } from './geometry.js';
import { withWriteSafetyOptions } from './write-safety.js';
import { loadCommand } from './load-command.js';

export interface FormatArgs extends GeometryArgs {
  device: string;
  'dry-run'?: boolean;
  yes?: boolean;
  headers?: boolean;
  backup?: string;
  'discard-records'?: boolean;
  'force-system-disk'?: boolean;
  json?: boolean;
}

export function pstoreFormatCommand(y: Argv) {
  return y.command(
    'format <device>',
    'zero a pstore/blk region so every kernel reads it as empty (records are backed up first)',
    (c) =>
      withWriteSafetyOptions(withGeometryOptions(c))
        .positional('device', { type: 'string', demandOption: true, describe: 'image, /dev/sdX or usb:…' })
        .option('headers', { type: 'boolean', describe: 'also write valid erased zone headers for the geometry (counters start at 0; the layout becomes detectable)' })
        .option('backup', { type: 'string', describe: 'folder for the records the region still holds (default: ./crashcart-backup-…)' })
        .option('discard-records', { type: 'boolean', describe: 'destroy records the region holds without backing them up' }),
    async (argv) => (await loadCommand(() => import('../commands/pstore-format.js'))).runFormat(argv),
  );
}
