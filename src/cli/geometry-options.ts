/**
 * Command-line options shared by the pstore commands: where the region is and what geometry
 * the board's kernel used. Turns them into library inputs; no I/O beyond reading named files.
 */
import type { Argv } from 'yargs';
import { BadInputError, UsageError } from '../errors.js';
import { checkTextLength, CMDLINE_MAX_BYTES, InputLimitError, KCONFIG_MAX_BYTES, readFileBounded } from '../input-limits.js';
import type { RegionSelector } from '../partition/select-region.js';
import { regionSelectorFromOptions } from '../partition/select-region.js';
import type { BoardProfile } from '../profile/board-profile.js';
import { loadProfile, profileParams } from '../profile/board-profile.js';
import type { AbiHint, Endian, KmsgLayoutName } from '../pstore/abi.js';
import { parseCmdline } from '../pstore/cmdline.js';
import { parseKconfig } from '../pstore/kconfig.js';
import { checkCpus, checkSizeKiB } from '../pstore/param-limits.js';
import type { PstoreParams, Sourced } from '../pstore/params.js';
import { mergeParams } from '../pstore/params.js';

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

export interface ResolvedInputs {
  params: PstoreParams;
  abi: AbiHint;
  selector?: RegionSelector;
  profile?: BoardProfile;
}

/** Reads a file named on the command line, at most `limit` bytes (fstat-checked; InputLimitError past it). */
function readInputFile(path: string, what: string, limit: number): Uint8Array {
  return readFileBounded(path, limit, what);
}

/** Merges flags > command line > profile > Kconfig, each value tagged with its source. */
export function resolveGeometryInputs(a: GeometryArgs): ResolvedInputs {
  const flags: PstoreParams = {};
  const flag = (v: number | undefined, name: string): Sourced<number> | undefined => {
    if (v === undefined) return undefined;
    return { value: checkSizeKiB(v, `--${name}`), source: 'flag' };
  };
  flags.kmsg_size = flag(a['kmsg-size'], 'kmsg-size');
  flags.pmsg_size = flag(a['pmsg-size'], 'pmsg-size');
  flags.console_size = flag(a['console-size'], 'console-size');
  flags.ftrace_size = flag(a['ftrace-size'], 'ftrace-size');
  if (a.cpus !== undefined) {
    flags.cpus = { value: checkCpus(a.cpus, '--cpus'), source: 'flag' };
  }
  if (a.cmdline !== undefined) checkTextLength(a.cmdline, CMDLINE_MAX_BYTES, '--cmdline');
  const cmd = a.cmdline !== undefined ? parseCmdline(a.cmdline) : undefined;
  const profile = a.profile ? loadProfile(a.profile) : undefined;
  const prof = profile ? mergeParams(profile.cmdline ? relabel(parseCmdline(profile.cmdline), 'profile') : undefined, profileParams(profile)) : undefined;
  let kconf: PstoreParams | undefined;
  let kabi: AbiHint = {};
  if (a.kconfig) {
    try {
      const k = parseKconfig(readInputFile(a.kconfig, '--kconfig', KCONFIG_MAX_BYTES));
      kconf = k.params;
      kabi = k.abi;
    } catch (e) {
      // A bomb or oversize file stays a BadInputError (exit 6); a config that says nothing usable is a usage error.
      if (e instanceof InputLimitError) throw new InputLimitError(e.message.startsWith('--kconfig') ? e.message : `--kconfig ${a.kconfig}: ${e.message}`);
      if (e instanceof BadInputError) throw new UsageError(`--kconfig ${a.kconfig}: ${e.message}`);
      if (e instanceof UsageError && !e.message.startsWith('--kconfig')) throw new UsageError(`--kconfig ${a.kconfig}: ${e.message}`);
      throw e;
    }
  }
  const params = mergeParams(flags, cmd, prof, kconf);
  const abi: AbiHint = {
    endian: (a.endian as Endian | undefined) ?? profile?.abi?.endian ?? kabi.endian,
    layout: (a.abi as KmsgLayoutName | undefined) ?? profile?.abi?.layout ?? kabi.layout,
  };
  const explicitRegion = a.partition !== undefined || a.offset !== undefined || a.size !== undefined || a.blkdev !== undefined;
  let selector: RegionSelector | undefined = explicitRegion ? regionSelectorFromOptions({ partition: a.partition, offset: a.offset, size: a.size, blkdev: a.blkdev }) : undefined;
  if (!selector && profile?.pstore?.partition !== undefined) selector = { kind: 'partition', partition: profile.pstore.partition };
  return { params, abi, selector, profile };
}

function relabel(p: PstoreParams, source: 'profile'): PstoreParams {
  const out: PstoreParams = {};
  for (const [k, v] of Object.entries(p)) (out as Record<string, unknown>)[k] = { ...(v as object), source };
  return out;
}
