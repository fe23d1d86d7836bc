/**
 * Board profiles (`hw-profiles/boards/*.json`): how a board's card is partitioned, what goes
 * into each partition, where its kernel keeps pstore/blk and with which geometry, the ABI its
 * records are written in, and the kernel command line it boots with. Validated by hand so that
 * every error names the field at fault (`partitions[2].size: …`). The schema is documented in
 * `hw-profiles/boards/README.md` and `hw-profiles/boards/schema.json`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError, CrashcartError, UsageError } from '../errors.js';
import { InputLimitError, PROFILE_MAX_BYTES, readFileBounded } from '../input-limits.js';
import { GPT_NAME_MAX, layoutPartitions, minimumDeviceSize, type PartitionRequest } from '../partition/gpt-write.js';
import { isGuid } from '../partition/guid.js';
import { parseBlkdevSpec, parseByteSize } from '../partition/select-region.js';
import type { Endian, KmsgLayoutName } from '../pstore/abi.js';
import { parseCmdline } from '../pstore/cmdline.js';
import { computeLayout, normaliseSizes } from '../pstore/layout.js';
import { MAX_CPUS, MAX_SIZE_KIB } from '../pstore/param-limits.js';
import type { PstoreParams, Sourced } from '../pstore/params.js';
import { KCONFIG_DEFAULTS } from '../pstore/params.js';

export interface BoardPstore {
  /** GPT partition name or number holding the pstore region; absent = whole device. */
  partition?: string | number;
  /** Zone sizes in KiB, as the pstore_blk module parameters take them. */
  kmsg_size?: number;
  pmsg_size?: number;
  console_size?: number;
  ftrace_size?: number;
  /** Possible CPUs (nr_cpu_ids) of the board's kernel. */
  cpus?: number;
  max_reason?: number;
  compress?: string;
  ftrace_cpu_in_ip?: 0 | 1 | 3;
  /**
   * Who registers the region with pstore/zone: `best_effort` (pstore_blk.best_effort=y on a
   * plain block device, the default) or `mmcpstore` (the eMMC driver of the mmcpstore series).
   */
  backend?: 'best_effort' | 'mmcpstore';
  /** Format with valid erased zone headers (layout detectable, counters at 0) instead of zeros only. */
  headers?: boolean;
}

/** One partition of the board's GPT layout. */
export interface BoardPartition {
  /** GPT partition name (PARTLABEL). */
  name: string;
  /** Type GUID, uppercase. */
  type: string;
  /** The alias the profile used (`linux`, `esp`, …), when it used one. */
  typeAlias?: string;
  /** Bytes, or `rest` for everything up to the end of the card (last partition only). */
  size: number | 'rest';
  /** Byte offset; default: after the previous partition on the next 1 MiB boundary. */
  start?: number;
  /** Image to write into the partition (absolute path; relative ones are resolved against the profile's folder). */
  image?: string;
  /** bmap file of the image: only the mapped blocks are written and their checksums verified. */
  bmap?: string;
  /** Fixed unique partition GUID (PARTUUID); random when absent. */
  uuid?: string;
  /** GPT attribute bits to set (2 = legacy BIOS bootable). */
  attributes?: number[];
}

export interface BoardCard {
  /** Refuse cards smaller than this many bytes (besides the layout's own minimum). */
  min_size?: number;
}

export interface BoardProfile {
  name: string;
  description?: string;
  abi?: { endian?: Endian; layout?: KmsgLayoutName };
  pstore?: BoardPstore;
  /** Kernel command line fragment the board boots with. */
  cmdline?: string;
  /** GPT partition layout, in partition-number order (entry 1 first). */
  partitions?: BoardPartition[];
  card?: BoardCard;
  /** Free-text notes of the profile (`notes`, string or list of strings). */
  notes?: string[];
  /** Where the profile was loaded from. */
  path: string;
}

/** GPT partition type aliases a profile may use instead of a GUID (names as sfdisk/systemd spell them). */
export const PARTITION_TYPE_ALIASES: Readonly<Record<string, string>> = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  'linux-swap': '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  'linux-home': '933AC7E1-2EB4-4F13-B844-0E14E2AEF915',
  'linux-root-x86-64': '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  'linux-root-arm': '69DAD710-2CE4-4E3C-B16C-21A1D49ABED3',
  'linux-root-arm64': 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  xbootldr: 'BC13C2FF-59E6-4262-A352-B275FD6F7172',
  'bios-boot': '21686148-6449-6E6F-744E-656564454649',
  'basic-data': 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  'linux-reserved': '8DA63339-0007-60C0-C436-083AC8230908',
  /**
   * There is no registered type for pstore/blk regions. "Linux reserved" says "raw data, not a
   * file system" to partitioning tools and keeps auto-mounters away; the kernel ignores the type.
   */
  pstore: '8DA63339-0007-60C0-C436-083AC8230908',
};

/** Resolves a type alias or GUID to an uppercase GUID; undefined when it is neither. */
export function resolvePartitionType(t: string): string | undefined {
  const alias = PARTITION_TYPE_ALIASES[t.toLowerCase()];
  if (alias) return alias;
  return isGuid(t) ? t.toUpperCase() : undefined;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The bundled profiles folder (works from src/ via tsx and from dist/src/). */
export function bundledProfilesDir(): string {
  for (const up of ['../../hw-profiles/boards', '../../../hw-profiles/boards']) {
    const p = resolve(here, up);
    if (existsSync(p)) return p;
  }
  return resolve(here, '../../hw-profiles/boards');
}

export interface ProfileCheck {
  /** The validated profile; undefined when there are errors. */
  profile?: BoardProfile;
  /** Problems that make the profile unusable, each starting with the field path. */
  errors: string[];
  /** Things worth knowing that do not stop the profile from being used (missing image files, …). */
  warnings: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a parsed profile and returns every problem found (field path first).
 * `path` is where it came from; relative image paths are resolved against its folder.
 */
export function checkProfile(json: unknown, path: string): ProfileCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const err = (field: string, msg: string) => errors.push(`${field}: ${msg}`);
  if (!isObj(json)) return { errors: ['(top level): must be a JSON object'], warnings };
  const o = json;
  const known = (obj: Obj, prefix: string, allowed: string[]) => {
    for (const k of Object.keys(obj)) if (!allowed.includes(k) && k !== '$comment') err(`${prefix}${k}`, 'unknown field');
  };
  known(o, '', ['name', 'description', 'abi', 'pstore', 'cmdline', 'partitions', 'card', 'notes']);

  const name = typeof o.name === 'string' && /^[a-z0-9][a-z0-9._-]*$/.test(o.name) ? o.name : undefined;
  if (!name) err('name', 'must be a lowercase identifier (letters, digits, ".", "_", "-")');
  else if (path.endsWith('.json') && basename(path, '.json') !== name) warnings.push(`name: "${name}" differs from the file name ${basename(path)}; --profile ${basename(path, '.json')} will not find it by name`);
  if (o.description !== undefined && typeof o.description !== 'string') err('description', 'must be a string');
  let notes: string[] | undefined;
  if (o.notes !== undefined) {
    if (typeof o.notes === 'string') notes = [o.notes];
    else if (Array.isArray(o.notes) && o.notes.every((n) => typeof n === 'string')) notes = o.notes as string[];
    else err('notes', 'must be a string or a list of strings');
  }
  if (o.$comment !== undefined && typeof o.$comment !== 'string' && !(Array.isArray(o.$comment) && o.$comment.every((n) => typeof n === 'string'))) {
    err('$comment', 'must be a string or a list of strings');
  }

  // --- abi
  let abi: BoardProfile['abi'];
  if (o.abi !== undefined) {
    if (!isObj(o.abi)) err('abi', 'must be an object');
    else {
      known(o.abi, 'abi.', ['endian', 'layout']);
      const a = o.abi;
      if (a.endian !== undefined && a.endian !== 'le' && a.endian !== 'be') err('abi.endian', 'must be "le" or "be"');
      if (a.layout !== undefined && !['lp64', 'ilp32', 'i386'].includes(a.layout as string)) err('abi.layout', 'must be "lp64", "ilp32" or "i386"');
      abi = {};
      if (a.endian !== undefined) abi.endian = a.endian as Endian;
      if (a.layout !== undefined) abi.layout = a.layout as KmsgLayoutName;
    }
  }

  // --- card
  let card: BoardCard | undefined;
  if (o.card !== undefined) {
    if (!isObj(o.card)) err('card', 'must be an object');
    else {
      known(o.card, 'card.', ['min_size']);
      card = {};
      if (o.card.min_size !== undefined) {
        const v = sizeValue(o.card.min_size, 'card.min_size', err);
        if (v !== undefined) card.min_size = v;
      }
    }
  }

  // --- partitions
  let partitions: BoardPartition[] | undefined;
  const baseDir = dirname(resolve(path));
  if (o.partitions !== undefined) {
    if (!Array.isArray(o.partitions)) err('partitions', 'must be a list');
    else if (o.partitions.length === 0) err('partitions', 'must list at least one partition (leave it out for boards without a layout)');
    else {
      const list = o.partitions as unknown[];
      partitions = [];
      const names = new Map<string, number>();
      list.forEach((raw, i) => {
        const f = `partitions[${i}]`;
        if (!isObj(raw)) return err(f, 'must be an object');
        known(raw, `${f}.`, ['name', 'type', 'size', 'start', 'image', 'bmap', 'uuid', 'attributes']);
        const errs = errors.length;
        let pname = '';
        if (typeof raw.name !== 'string' || raw.name === '') err(`${f}.name`, 'must be a non-empty string');
        else if (raw.name.length > GPT_NAME_MAX) err(`${f}.name`, `"${raw.name}" is longer than the ${GPT_NAME_MAX} characters a GPT entry holds`);
        else if (names.has(raw.name)) err(`${f}.name`, `"${raw.name}" is already used by partitions[${names.get(raw.name)}]`);
        else {
          pname = raw.name;
          names.set(pname, i);
        }
        let type: string | undefined;
        if (typeof raw.type !== 'string') err(`${f}.type`, `must be a GPT type GUID or one of ${Object.keys(PARTITION_TYPE_ALIASES).join(', ')}`);
        else {
          type = resolvePartitionType(raw.type);
          if (!type) err(`${f}.type`, `"${raw.type}" is neither a GUID nor a known alias (${Object.keys(PARTITION_TYPE_ALIASES).join(', ')})`);
        }
        let size: number | 'rest' | undefined;
        if (raw.size === undefined) err(`${f}.size`, 'is required (bytes, a size like "64MiB", or "rest")');
        else if (raw.size === 'rest') {
          size = 'rest';
          if (i !== list.length - 1) err(`${f}.size`, '"rest" is only allowed for the last partition');
        } else {
          size = sizeValue(raw.size, `${f}.size`, err);
          if (size !== undefined && (size === 0 || size % 512 !== 0)) err(`${f}.size`, `${size} bytes is not a positive multiple of 512`);
        }
        let start: number | undefined;
        if (raw.start !== undefined) {
          start = sizeValue(raw.start, `${f}.start`, err);
          if (start !== undefined && start % 512 !== 0) err(`${f}.start`, `${start} is not a multiple of 512`);
        }
        const part: BoardPartition = { name: pname, type: type ?? '', size: size ?? 0 };
        if (typeof raw.type === 'string' && PARTITION_TYPE_ALIASES[raw.type.toLowerCase()]) part.typeAlias = raw.type.toLowerCase();
        if (start !== undefined) part.start = start;
        if (raw.image !== undefined) {
          if (typeof raw.image !== 'string' || raw.image === '') err(`${f}.image`, 'must be a file path');
          else {
            part.image = isAbsolute(raw.image) ? raw.image : join(baseDir, raw.image);
            if (!existsSync(part.image)) warnings.push(`${f}.image: ${part.image} does not exist (yet)`);
          }
        }
        if (raw.bmap !== undefined) {
          if (typeof raw.bmap !== 'string' || raw.bmap === '') err(`${f}.bmap`, 'must be a file path');
          else if (raw.image === undefined) err(`${f}.bmap`, 'needs an image');
          else {
            part.bmap = isAbsolute(raw.bmap) ? raw.bmap : join(baseDir, raw.bmap);
            if (!existsSync(part.bmap)) warnings.push(`${f}.bmap: ${part.bmap} does not exist (yet)`);
          }
        }
        if (raw.uuid !== undefined) {
          if (typeof raw.uuid !== 'string' || !isGuid(raw.uuid)) err(`${f}.uuid`, 'must be a GUID (8-4-4-4-12 hex digits)');
          else part.uuid = raw.uuid.toUpperCase();
        }
        if (raw.attributes !== undefined) {
          if (!Array.isArray(raw.attributes) || !raw.attributes.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 63)) {
            err(`${f}.attributes`, 'must be a list of attribute bit numbers 0–63');
          } else part.attributes = [...new Set(raw.attributes as number[])].sort((a, b) => a - b);
        }
        if (errors.length === errs) partitions!.push(part);
      });
      if (partitions.length === list.length) {
        // place the partitions on a card just big enough, to catch overlaps and bad starts
        const req = partitionRequests(partitions);
        try {
          const min = minimumDeviceSize(req, 512);
          layoutPartitions(req, { sectorSize: 512, deviceSize: min });
        } catch (e) {
          if (!(e instanceof CrashcartError)) throw e;
          err('partitions', e.message);
        }
      } else partitions = undefined;
    }
  }

  // --- pstore
  let pstore: BoardPstore | undefined;
  if (o.pstore !== undefined) {
    if (!isObj(o.pstore)) err('pstore', 'must be an object');
    else {
      const p = o.pstore;
      known(p, 'pstore.', ['partition', 'kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason', 'compress', 'ftrace_cpu_in_ip', 'backend', 'headers']);
      pstore = {};
      for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason'] as const) {
        if (p[k] === undefined) continue;
        const min = k === 'cpus' ? 1 : 0;
        // The kernel's own limits (param-limits.ts): sizes 0..131072 KiB (128 MiB), 1..8192 CPUs, int max_reason.
        const max = k === 'cpus' ? MAX_CPUS : k === 'max_reason' ? 2 ** 31 - 1 : MAX_SIZE_KIB;
        if (!Number.isInteger(p[k]) || (p[k] as number) < min || (p[k] as number) > max) {
          err(`pstore.${k}`, `must be ${min ? 'a positive' : 'a non-negative'} integer${k.endsWith('_size') ? ' (KiB)' : ''} from ${min} to ${max}${k === 'cpus' ? ' (the largest NR_CPUS of any architecture)' : k.endsWith('_size') ? ' (128 MiB, the most pstore/blk uses of any device)' : ''}`);
        } else pstore[k] = p[k] as number;
      }
      if (p.partition !== undefined) {
        if (typeof p.partition === 'string' && p.partition !== '') pstore.partition = p.partition;
        else if (Number.isInteger(p.partition) && (p.partition as number) >= 1) pstore.partition = p.partition as number;
        else err('pstore.partition', 'must be a partition name or number');
      }
      if (p.ftrace_cpu_in_ip !== undefined) {
        if (![0, 1, 3].includes(p.ftrace_cpu_in_ip as number)) err('pstore.ftrace_cpu_in_ip', 'must be 0, 1 or 3');
        else pstore.ftrace_cpu_in_ip = p.ftrace_cpu_in_ip as 0 | 1 | 3;
      }
      if (p.compress !== undefined) {
        if (typeof p.compress !== 'string') err('pstore.compress', 'must be a string');
        else pstore.compress = p.compress;
      }
      if (p.backend !== undefined) {
        if (p.backend !== 'best_effort' && p.backend !== 'mmcpstore') err('pstore.backend', 'must be "best_effort" or "mmcpstore"');
        else pstore.backend = p.backend;
      }
      if (p.headers !== undefined) {
        if (typeof p.headers !== 'boolean') err('pstore.headers', 'must be true or false');
        else pstore.headers = p.headers;
      }
    }
  }

  // --- cmdline
  let cmdParams: PstoreParams = {};
  if (o.cmdline !== undefined) {
    if (typeof o.cmdline !== 'string') err('cmdline', 'must be a string');
    else {
      try {
        cmdParams = parseCmdline(o.cmdline);
      } catch (e) {
        if (!(e instanceof CrashcartError)) throw e;
        err('cmdline', e.message);
      }
    }
  }

  // --- cross-field checks
  if (pstore) {
    for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'max_reason', 'cpus'] as const) {
      const c = cmdParams[k]?.value;
      if (c !== undefined && pstore[k] !== undefined && c !== pstore[k]) err(`pstore.${k}`, `is ${pstore[k]} but cmdline says ${c}`);
    }
    if (pstore.compress && cmdParams.compress && pstore.compress !== cmdParams.compress.value) err('pstore.compress', `is "${pstore.compress}" but cmdline says "${cmdParams.compress.value}"`);
  }
  let pstorePart: { number: number; part: BoardPartition } | undefined;
  if (pstore?.partition !== undefined && partitions) {
    const sel = pstore.partition;
    const idx = typeof sel === 'number' ? sel - 1 : partitions.findIndex((q) => q.name === sel);
    if (idx < 0 || idx >= partitions.length) err('pstore.partition', `${typeof sel === 'number' ? sel : `"${sel}"`} is not one of the profile's partitions (${partitions.map((q, i) => `${i + 1} "${q.name}"`).join(', ')})`);
    else pstorePart = { number: idx + 1, part: partitions[idx] };
  }
  if (pstorePart && typeof pstorePart.part.size === 'number') {
    const size = pstorePart.part.size;
    const w: string[] = [];
    const get = (k: 'kmsg_size' | 'pmsg_size' | 'console_size' | 'ftrace_size') => pstore?.[k] ?? cmdParams[k]?.value ?? (k === 'kmsg_size' ? KCONFIG_DEFAULTS.kmsg_size : 0);
    const sizes = normaliseSizes({ kmsg_size: get('kmsg_size'), pmsg_size: get('pmsg_size'), console_size: get('console_size'), ftrace_size: get('ftrace_size') }, w);
    const layout = computeLayout(size, sizes, pstore?.cpus ?? cmdParams.cpus?.value ?? 1, w);
    for (const e of layout.errors) err(`partitions[${pstorePart.number - 1}].size`, `the kernel would refuse this pstore region: ${e}`);
    for (const x of w) warnings.push(`pstore: ${x}`);
  }
  if (cmdParams.blkdev && partitions) {
    const text = cmdParams.blkdev.value;
    try {
      const spec = parseBlkdevSpec(text);
      if (pstorePart) {
        if (spec.kind === 'partition' && spec.number !== pstorePart.number) err('cmdline', `pstore_blk.blkdev=${text} names partition ${spec.number}, but pstore.partition is partition ${pstorePart.number} "${pstorePart.part.name}"`);
        if (spec.kind === 'partlabel' && spec.label !== pstorePart.part.name) err('cmdline', `pstore_blk.blkdev=${text} names "${spec.label}", but pstore.partition is "${pstorePart.part.name}"`);
        if (spec.kind === 'disk') err('cmdline', `pstore_blk.blkdev=${text} is a whole disk, but pstore.partition is partition ${pstorePart.number}`);
        if (spec.kind === 'partuuid' && pstorePart.part.uuid && spec.uuid.toUpperCase() !== pstorePart.part.uuid) err('cmdline', `pstore_blk.blkdev=${text} is not the uuid of partition "${pstorePart.part.name}"`);
        if (spec.kind === 'partuuid' && !pstorePart.part.uuid) err('cmdline', `pstore_blk.blkdev=${text} needs partitions[${pstorePart.number - 1}].uuid so that provisioning writes that PARTUUID`);
      }
    } catch (e) {
      if (!(e instanceof CrashcartError)) throw e;
      err('cmdline', e.message);
    }
  }
  if (pstore && partitions && pstore.partition === undefined) err('pstore.partition', 'must name the pstore partition when the profile has a partition layout');

  if (errors.length > 0 || !name) return { errors, warnings };
  const profile: BoardProfile = { name, path };
  if (typeof o.description === 'string') profile.description = o.description;
  if (typeof o.cmdline === 'string' && o.cmdline.trim() !== '') profile.cmdline = o.cmdline;
  if (abi) profile.abi = abi;
  if (pstore) profile.pstore = pstore;
  if (partitions) profile.partitions = partitions;
  if (card) profile.card = card;
  if (notes) profile.notes = notes;
  return { profile, errors, warnings };
}

function sizeValue(v: unknown, field: string, err: (f: string, m: string) => void): number | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') {
    err(field, 'must be a number of bytes or a size like "64MiB"');
    return undefined;
  }
  try {
    return parseByteSize(v, field);
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    err(field, e.message.replace(`invalid ${field} `, ''));
    return undefined;
  }
}

/** The profile's partitions as layout requests for `layoutPartitions`. */
export function partitionRequests(parts: BoardPartition[]): PartitionRequest[] {
  return parts.map((p) => ({
    name: p.name,
    typeGuid: p.type,
    size: p.size,
    ...(p.start !== undefined ? { start: p.start } : {}),
    ...(p.uuid ? { uuid: p.uuid } : {}),
    ...(p.attributes ? { attributeBits: p.attributes } : {}),
  }));
}

/**
 * Validates a parsed profile.
 * @throws BadInputError listing every problem, each with its field path.
 */
export function validateProfile(json: unknown, path: string): BoardProfile {
  const r = checkProfile(json, path);
  if (!r.profile) {
    const list = r.errors.length === 1 ? r.errors[0] : `${r.errors.length} problems:\n  ${r.errors.join('\n  ')}`;
    throw new BadInputError(`profile ${path}: ${list}`);
  }
  return r.profile;
}

/** Where `loadProfile` would read a profile from: a path to a .json file, or a bundled name. */
export function resolveProfilePath(nameOrPath: string): string {
  if (existsSync(nameOrPath) && nameOrPath.endsWith('.json')) return nameOrPath;
  const bundled = join(bundledProfilesDir(), `${nameOrPath}.json`);
  if (/^[a-z0-9][a-z0-9._-]*$/.test(nameOrPath) && existsSync(bundled)) return bundled;
  if (existsSync(nameOrPath)) return nameOrPath;
  throw new UsageError(`no board profile "${nameOrPath}" (bundled: ${listProfiles().join(', ') || 'none'})`);
}

/** Reads and parses a profile file without validating it. */
export function readProfileJson(path: string): unknown {
  try {
    return JSON.parse(readFileBounded(path, PROFILE_MAX_BYTES, 'profile').toString('utf8'));
  } catch (e) {
    if (e instanceof InputLimitError) throw e;
    if (e instanceof UsageError && / ENOENT$/.test(e.message)) throw new UsageError(`profile ${path}: no such file`);
    if (e instanceof CrashcartError) throw new BadInputError(e.message);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`profile ${path}: no such file`);
    throw new BadInputError(`profile ${path}: ${code ?? (e as Error).message}`);
  }
}

/** Loads a profile by bundled name (`qemu-x86_64`) or by file path. */
export function loadProfile(nameOrPath: string): BoardProfile {
  const path = resolveProfilePath(nameOrPath);
  return validateProfile(readProfileJson(path), path);
}

export function listProfiles(): string[] {
  const dir = bundledProfilesDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .map((f) => f.slice(0, -5))
    .sort();
}

/** The pstore parameters a profile states, tagged with source "profile". */
export function profileParams(p: BoardProfile): PstoreParams {
  const out: PstoreParams = {};
  const src = <T>(value: T): Sourced<T> => ({ value, source: 'profile' });
  const ps = p.pstore ?? {};
  for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason'] as const) {
    if (ps[k] !== undefined) out[k] = src(ps[k]!);
  }
  if (ps.compress) out.compress = src(ps.compress);
  if (ps.ftrace_cpu_in_ip !== undefined) out.ftrace_cpu_in_ip = src(ps.ftrace_cpu_in_ip);
  return out;
}

/** Everything the profile says about pstore: its fields, then the pstore parameters of its cmdline. */
export function allProfileParams(p: BoardProfile): PstoreParams {
  const fromCmdline: PstoreParams = {};
  if (p.cmdline) {
    for (const [k, v] of Object.entries(parseCmdline(p.cmdline))) (fromCmdline as Record<string, unknown>)[k] = { ...(v as object), source: 'profile' };
  }
  const fields = profileParams(p);
  return { ...fromCmdline, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) };
}
