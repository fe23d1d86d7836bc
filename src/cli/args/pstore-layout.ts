import type { Argv } from 'yargs';
import { withGeometryOptions, type GeometryArgs } from './geometry.js';
import { loadCommand } from './load-command.js';

export interface LayoutArgs extends GeometryArgs {
  device?: string;
  'region-size'?: string;
  json?: boolean;
}

export function pstoreLayoutCommand(y: Argv) {
  return y.command(
    'layout [device]',
    'show the zone table the kernel computes for a region, and the command line to boot the board with',
    (c) =>
      withGeometryOptions(c)
        .positional('device', { type: 'string', describe: 'image, /dev/sdX or usb:… holding the region (or give --region-size)' })
        .option('region-size', { type: 'string', describe: 'region size in bytes (K/M/G suffixes) instead of a device' })
        .option('json', { type: 'boolean', describe: 'print the layout as JSON' }),
    async (argv) => (await loadCommand(() => import('../commands/pstore-layout.js'))).runLayout(argv),
  );
}
