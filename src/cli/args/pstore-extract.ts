import type { Argv } from 'yargs';
import { withGeometryOptions, type GeometryArgs } from './geometry.js';
import { loadCommand } from './load-command.js';

export interface ExtractArgs extends GeometryArgs {
  device: string;
  output: string;
  json?: boolean;
  symbols?: string;
  'kaslr-offset'?: string;
  'pmsg-android'?: boolean;
  replace?: boolean;
  'kernel-version'?: string;
}

export function pstoreExtractCommand(y: Argv) {
  return y.command(
    'extract <device>',
    'extract pstore/blk records as the kernel would show them in /sys/fs/pstore',
    (c) =>
      withGeometryOptions(c)
        .positional('device', { type: 'string', demandOption: true, describe: 'image file, /dev/sdX or usb:… device' })
        .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'folder for the records and index.json' })
        .option('json', { type: 'boolean', describe: 'print index.json to stdout instead of a summary' })
        .option('symbols', { type: 'string', describe: 'System.map or /proc/kallsyms dump (optionally .gz) of the crashed kernel, for ftrace', group: 'ftrace:' })
        .option('kaslr-offset', { type: 'string', describe: 'KASLR slide of the crashed boot (hex); inferred from dmesg when printed there', group: 'ftrace:' })
        .option('pmsg-android', { type: 'boolean', describe: 'also write a decoded view of Android logger records found in pmsg' })
        .option('kernel-version', {
          type: 'string',
          describe:
            'release of the kernel that will read the card back (e.g. 6.1): records it could not decompress are named .enc.z, decoded text beside them; 5.8-5.10 use a region past 128 MiB too',
        })
        .option('replace', { type: 'boolean', describe: 'replace an earlier extraction in the output folder (a non-empty folder is refused otherwise)' }),
    async (argv) => (await loadCommand(() => import('../commands/pstore-extract.js'))).runExtract(argv),
  );
}
