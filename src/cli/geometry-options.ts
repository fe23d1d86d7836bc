/**
 * The options shared by the pstore commands (./args/geometry.ts: where the region is and what
 * geometry the board's kernel used) turned into library inputs; no I/O beyond reading named files.
 */
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
import type { GeometryArgs } from './args/geometry.js';

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
