/**
 * The options shared by the pstore commands: where the region is and what geometry the board's
 * kernel used. ../geometry-options.ts turns them into library inputs.
 */
import type { Argv } from 'yargs';

export interface GeometryArgs {
  cmdline?: string;
  'kmsg-size'?: number;
  'pmsg-size'?: number;
  'console-size'?: number;
  'ftrace-size'?: number;
  cpus?: number;
  profile?: string;
  kconfig?: string;
  endian?: string;
  abi?: string;
  partition?: string;
  offset?: string;
  size?: string;
  blkdev?: string;
}

export function withGeometryOptions<T>(y: Argv<T>) {
  return y
    .option('partition', { type: 'string', describe: 'region = GPT/MBR partition number or GPT name', group: 'Region:' })
    .option('offset', { type: 'string', describe: 'region start in bytes (suffixes K/M/G, KiB/MiB/GiB)', group: 'Region:' })
    .option('size', { type: 'string', describe: 'region size in bytes (with --offset)', group: 'Region:' })
    .option('blkdev', { type: 'string', describe: 'region as the kernel names it: /dev/mmcblk1p9, PARTLABEL=…, PARTUUID=…', group: 'Region:' })
    .option('cmdline', { type: 'string', describe: 'kernel command line of the board (or just its pstore_blk.* / pstore.* parameters)', group: 'Geometry:' })
    .option('kmsg-size', { type: 'number', describe: 'pstore_blk.kmsg_size in KiB', group: 'Geometry:' })
    .option('pmsg-size', { type: 'number', describe: 'pstore_blk.pmsg_size in KiB', group: 'Geometry:' })
    .option('console-size', { type: 'number', describe: 'pstore_blk.console_size in KiB', group: 'Geometry:' })
    .option('ftrace-size', { type: 'number', describe: 'pstore_blk.ftrace_size in KiB', group: 'Geometry:' })
    .option('cpus', { type: 'number', describe: 'possible CPUs (nr_cpu_ids) of the board kernel; splits the ftrace area', group: 'Geometry:' })
    .option('profile', { type: 'string', describe: 'board profile name (hw-profiles/boards) or JSON file', group: 'Geometry:' })
    .option('kconfig', { type: 'string', describe: "board kernel's .config or /proc/config.gz, for parameters the command line leaves out", group: 'Geometry:' })
    .option('endian', { type: 'string', choices: ['le', 'be'], describe: 'byte order of the board (default: detected)', group: 'Geometry:' })
    .option('abi', {
      type: 'string',
      choices: ['lp64', 'ilp32', 'i386'],
      describe: 'struct layout: lp64 (64-bit), ilp32 (32-bit ARM EABI, MIPS o32, PPC32), i386 (i386, ARM OABI); default: detected',
      group: 'Geometry:',
    });
}
