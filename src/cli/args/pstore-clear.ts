import type { Argv } from 'yargs';
import { withGeometryOptions, type GeometryArgs } from './geometry.js';
import { withWriteSafetyOptions } from './write-safety.js';
import { loadCommand } from './load-command.js';

export interface ClearArgs extends GeometryArgs {
  device: string;
  record?: string[];
  yes?: boolean;
  backup?: string;
  'no-backup'?: boolean;
  backupOff?: boolean;
  'dry-run'?: boolean;
  'force-system-disk'?: boolean;
  json?: boolean;
}

export function pstoreClearCommand(y: Argv) {
  return y.command(
    'clear <device>',
    "erase pstore records the way the kernel's unlink does (oops/panic counters survive); backs them up first",
    (c) =>
      withWriteSafetyOptions(withGeometryOptions(c))
        .positional('device', { type: 'string', demandOption: true, describe: 'image, /dev/sdX or usb:…' })
        .option('record', { type: 'string', array: true, describe: 'only these records (e.g. dmesg-pstore_blk-1 console-pstore_blk-0)' })
        .option('backup', { type: 'string', describe: 'folder for the backup (default: ./crashcart-backup-…)' })
        .option('no-backup', { type: 'boolean', describe: 'do not back up the records first' }),
    async (argv) => (await loadCommand(() => import('../commands/pstore-clear.js'))).runClear(argv),
  );
}
