/**
 * Board profiles (`hw-profiles/boards/*.json`): what a board's kernel needs to find and
 * decode its pstore region. Validated by hand so errors name the field at fault.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError, UsageError } from '../errors.js';
import type { Endian, KmsgLayoutName } from '../pstore/abi.js';
import type { PstoreParams, Sourced } from '../pstore/params.js';

export interface BoardPstore {
  /** GPT partition name or number holding the pstore region; absent = whole device. */
  partition?: string | number;
  kmsg_size?: number;
  pmsg_size?: number;
  console_size?: number;
  ftrace_size?: number;
  /** Possible CPUs (nr_cpu_ids) of the board's kernel. */
  cpus?: number;
  max_reason?: number;
  compress?: string;
  ftrace_cpu_in_ip?: 0 | 1 | 3;
}

export interface BoardProfile {
  name: string;
  description?: string;
  abi?: { endian?: Endian; layout?: KmsgLayoutName };
  pstore?: BoardPstore;
  /** Kernel command line fragment the board boots with. */
  cmdline?: string;
  /** Partition layout (used by provisioning); kept as raw JSON here. */
  partitions?: unknown[];
  /** Where the profile was loaded from. */
  path: string;
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

function fail(path: string, msg: string): never {
  throw new BadInputError(`profile ${path}: ${msg}`);
}

export function validateProfile(json: unknown, path: string): BoardProfile {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(path, 'must be a JSON object');
  const o = json as Record<string, unknown>;
  const allowed = new Set(['$comment', 'name', 'description', 'abi', 'pstore', 'cmdline', 'partitions', 'card', 'notes']);
  for (const k of Object.keys(o)) if (!allowed.has(k)) fail(path, `unknown field "${k}"`);
  if (typeof o.name !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(o.name)) fail(path, '"name" must be a lowercase identifier');
  if (o.description !== undefined && typeof o.description !== 'string') fail(path, '"description" must be a string');
  if (o.cmdline !== undefined && typeof o.cmdline !== 'string') fail(path, '"cmdline" must be a string');
  if (o.partitions !== undefined && !Array.isArray(o.partitions)) fail(path, '"partitions" must be an array');
  const profile: BoardProfile = { name: o.name, path };
  if (o.description) profile.description = o.description as string;
  if (o.cmdline) profile.cmdline = o.cmdline as string;
  if (o.partitions) profile.partitions = o.partitions as unknown[];
  if (o.abi !== undefined) {
    const a = o.abi as Record<string, unknown>;
    if (typeof a !== 'object' || a === null) fail(path, '"abi" must be an object');
    if (a.endian !== undefined && a.endian !== 'le' && a.endian !== 'be') fail(path, '"abi.endian" must be "le" or "be"');
    if (a.layout !== undefined && !['lp64', 'ilp32', 'i386'].includes(a.layout as string)) fail(path, '"abi.layout" must be lp64, ilp32 or i386');
    profile.abi = { endian: a.endian as Endian | undefined, layout: a.layout as KmsgLayoutName | undefined };
  }
  if (o.pstore !== undefined) {
    const p = o.pstore as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) fail(path, '"pstore" must be an object');
    const known = new Set(['$comment', 'partition', 'kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason', 'compress', 'ftrace_cpu_in_ip']);
    for (const k of Object.keys(p)) if (!known.has(k)) fail(path, `unknown field "pstore.${k}"`);
    for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason']) {
      if (p[k] !== undefined && (!Number.isInteger(p[k]) || (p[k] as number) < (k === 'cpus' ? 1 : 0))) fail(path, `"pstore.${k}" must be a non-negative integer`);
    }
    if (p.partition !== undefined && typeof p.partition !== 'string' && !Number.isInteger(p.partition)) fail(path, '"pstore.partition" must be a name or a number');
    if (p.ftrace_cpu_in_ip !== undefined && ![0, 1, 3].includes(p.ftrace_cpu_in_ip as number)) fail(path, '"pstore.ftrace_cpu_in_ip" must be 0, 1 or 3');
    if (p.compress !== undefined && typeof p.compress !== 'string') fail(path, '"pstore.compress" must be a string');
    const { $comment: _c, ...rest } = p;
    profile.pstore = rest as BoardPstore;
  }
  return profile;
}

/** Loads a profile by bundled name (`qemu-x86_64`) or by file path. */
export function loadProfile(nameOrPath: string): BoardProfile {
  let path = nameOrPath;
  if (!existsSync(path) || !path.endsWith('.json')) {
    const bundled = join(bundledProfilesDir(), `${nameOrPath}.json`);
    if (existsSync(bundled)) path = bundled;
    else if (!existsSync(path)) {
      throw new UsageError(`no board profile "${nameOrPath}" (bundled: ${listProfiles().join(', ') || 'none'})`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new BadInputError(`profile ${path}: ${(e as Error).message}`);
  }
  return validateProfile(json, path);
}

export function listProfiles(): string[] {
  const dir = bundledProfilesDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
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
