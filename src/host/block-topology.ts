/**
 * Where an object's bytes live, from sysfs: the whole disks and partitions a block device
 * node stands for (through device-mapper/md slaves and loop backing files), and the storage a
 * regular file lives on. The write gate uses it to tell whether a write target and an input
 * share storage, whatever names they were given.
 */
import { readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { devNumber } from './dev-number.js';
import { exists, readText } from './sysfs-block.js';

export interface SysfsRoot {
  /** Default "/sys". */
  sysRoot?: string;
}

/** A stretch of block storage: a whole disk, or one partition of it (device numbers). */
export interface StorageUnit {
  disk: string;
  partition?: string;
}

/** What an object is made of and what it sits on. */
export interface Footprint {
  /** Keys of the files and readers the object is (a loop device is also its backing file). */
  objects: Set<string>;
  /** Block storage the object's bytes are. */
  is: StorageUnit[];
  /** Block storage the object lives on (the file system holding a file or a loop backing file). */
  on: StorageUnit[];
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch {
    return [];
  }
}

/** Depth limit for stacked devices (dm on md on loop on …). */
const MAX_DEPTH = 8;

/**
 * The storage a block device number stands for. Unknown numbers (no sysfs, tmpfs/overlay
 * file systems with anonymous device numbers) stand for nothing.
 */
export async function blockFootprint(num: string, opts: SysfsRoot = {}, depth = 0): Promise<Footprint> {
  const fp: Footprint = { objects: new Set(), is: [], on: [] };
  if (depth > MAX_DEPTH) return fp;
  const sys = opts.sysRoot ?? '/sys';
  let dir: string;
  try {
    dir = await realpath(join(sys, 'dev', 'block', num));
  } catch {
    return fp;
  }
  if (await exists(join(dir, 'partition'))) {
    const disk = await readText(join(dir, '..', 'dev'));
    fp.is.push({ disk: disk ?? num, partition: num });
    return fp;
  }
  const slaves = await listDir(join(dir, 'slaves'));
  if (slaves.length > 0) {
    for (const s of slaves) {
      const n = await readText(join(dir, 'slaves', s, 'dev'));
      if (!n) continue;
      const sub = await blockFootprint(n, opts, depth + 1);
      merge(fp, sub);
    }
    fp.is.push({ disk: num });
    return fp;
  }
  fp.is.push({ disk: num });
  const backing = await readText(join(dir, 'loop', 'backing_file'));
  if (backing) {
    try {
      const st = await stat(backing.replace(/ \(deleted\)$/, ''), { bigint: true });
      const file = await fileFootprint(`${st.dev}:${st.ino}`, devNumber(st.dev), opts);
      merge(fp, { objects: file.objects, is: [], on: file.on });
    } catch {
      /* backing file gone or unreachable from here */
    }
  }
  return fp;
}

function merge(into: Footprint, from: Footprint): void {
  for (const o of from.objects) into.objects.add(o);
  into.is.push(...from.is);
  into.on.push(...from.on);
}

/** A file (`key` = `st_dev:st_ino`) on the file system of device `fsDevice`. */
export async function fileFootprint(key: string, fsDevice: string | undefined, opts: SysfsRoot = {}): Promise<Footprint> {
  const fp: Footprint = { objects: new Set([`file:${key}`]), is: [], on: [] };
  if (fsDevice) {
    const host = await blockFootprint(fsDevice, opts);
    fp.on.push(...host.is, ...host.on);
  }
  return fp;
}

function unitsOverlap(a: StorageUnit[], b: StorageUnit[]): boolean {
  return a.some((u) => b.some((v) => u.disk === v.disk && (!u.partition || !v.partition || u.partition === v.partition)));
}

/**
 * True when writing one object can change the other: the same file or reader, block storage
 * shared, or one living on the storage the other is. Two files on one file system do not
 * conflict.
 */
export function footprintsConflict(a: Footprint, b: Footprint): boolean {
  for (const o of a.objects) if (b.objects.has(o)) return true;
  return unitsOverlap(a.is, b.is) || unitsOverlap(a.is, b.on) || unitsOverlap(a.on, b.is);
}

/** `/sys/dev/block/<num>` names the kernel device; used in messages. */
export async function kernelNameOf(num: string, opts: SysfsRoot = {}): Promise<string | undefined> {
  try {
    const link = await readlink(join(opts.sysRoot ?? '/sys', 'dev', 'block', num));
    return link.split('/').pop();
  } catch {
    return undefined;
  }
}
