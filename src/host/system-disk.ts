/**
 * Whether a block device is in use by the running system: mounted (itself, its whole disk or a
 * sibling partition), swap, holding `/`, directly or through device-mapper/md holders, or a loop
 * device over a file on such a disk. Writers refuse such a device without an explicit override.
 */
import { readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { devNumber } from './dev-number.js';
import { parseMountinfo, parseProcMounts, parseProcSwaps, type MountEntry } from './proc-mounts.js';
import { describeBlockNode, exists, readText, type SystemPaths } from './sysfs-block.js';

export interface MountUse {
  /** Mount source as the kernel lists it (`/dev/sda2`, `/dev/mapper/root`). */
  source: string;
  mountPoint: string;
  fsType?: string;
  /** Kernel name of our device (or holder) that this mount uses. */
  device: string;
}

export interface SystemDiskReport {
  path: string;
  /** False for regular files and nodes sysfs does not know; then nothing else is checked. */
  isBlockDevice: boolean;
  /** Kernel name of the device (`sdb1`) and its whole disk (`sdb`). */
  name?: string;
  disk?: string;
  /** Partitions of the device that were checked too. */
  partitions: string[];
  /** device-mapper / md devices stacked on top (LVM, LUKS, RAID), recursively. */
  holders: string[];
  mounts: MountUse[];
  /** Swap areas (from /proc/swaps) on the device. */
  swaps: string[];
  /** One of the mounts is `/`. */
  holdsRoot: boolean;
  /** For a loop device: the file behind it (its disk is checked too). */
  loopBacking?: string;
  /**
   * Mounted, swap or root: writing would damage the running system. Also true when the mount
   * table cannot be read at all (then `reasons` says so), so callers err on the safe side.
   */
  inUse: boolean;
  /** Human-readable reasons, empty when not in use. */
  reasons: string[];
}

export async function systemDiskCheck(path: string, paths: SystemPaths = {}, depth = 0): Promise<SystemDiskReport> {
  const node = await describeBlockNode(path, paths);
  const report: SystemDiskReport = {
    path,
    isBlockDevice: node.name !== undefined,
    partitions: [],
    holders: [],
    mounts: [],
    swaps: [],
    holdsRoot: false,
    inUse: false,
    reasons: [],
  };
  if (node.name === undefined) return report;
  report.name = node.name;
  report.disk = node.disk;
  const sys = paths.sysRoot ?? '/sys';
  const proc = paths.procRoot ?? '/proc';

  // The whole disk the device belongs to and every partition of it (a mounted sibling means the
  // disk is in use: its table and neighbours are one write away), then everything stacked on top.
  const family = await diskFamily(node.name, node.disk ?? node.name, sys);
  report.partitions = family.siblings;
  const stacked = await holdersOf(family.members, sys);
  report.holders = stacked.holders;
  const owner = await ownerOfName(stacked.all, sys);

  const table = await readMountTable(proc);
  if (table.unknown) report.reasons.push(table.unknown);
  for (const m of table.mounts) {
    const dev = await owner(m.source, m.devNum);
    if (dev === undefined) continue;
    report.mounts.push({ source: m.source, mountPoint: m.mountPoint, fsType: m.fsType, device: dev });
    if (m.mountPoint === '/') report.holdsRoot = true;
  }
  for (const s of parseProcSwaps((await readText(join(proc, 'swaps'))) ?? '')) {
    if ((await owner(s)) !== undefined) report.swaps.push(s);
  }
  const backing = await loopBackingUse(node.name, paths, depth);
  if (backing) report.loopBacking = backing.file;

  report.reasons.push(...reasonsFor(report, backing));
  report.inUse = report.mounts.length > 0 || report.swaps.length > 0 || table.unknown !== undefined || backing?.report.inUse === true;
  return report;
}

const classDir = (sys: string, n: string) => join(sys, 'class', 'block', n);

/** `name`, its whole disk and all the disk's partitions; `siblings` are the partitions but `name`. */
async function diskFamily(name: string, disk: string, sys: string): Promise<{ members: Set<string>; siblings: string[] }> {
  const members = new Set<string>([name, disk]);
  const siblings: string[] = [];
  try {
    for (const ent of await readdir(classDir(sys, disk))) {
      if (ent.startsWith(disk) && (await exists(join(classDir(sys, disk), ent, 'partition')))) {
        members.add(ent);
        if (ent !== name) siblings.push(ent);
      }
    }
  } catch {
    /* no sysfs directory listing: check the node alone */
  }
  return { members, siblings: siblings.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })) };
}

/** Every device-mapper / md device stacked on `members`, recursively (sysfs `holders/`). */
async function holdersOf(members: Set<string>, sys: string): Promise<{ holders: string[]; all: Set<string> }> {
  const queue = [...members];
  const all = new Set(members);
  const holders: string[] = [];
  while (queue.length > 0) {
    const n = queue.shift() as string;
    let found: string[] = [];
    try {
      found = await readdir(join(classDir(sys, n), 'holders'));
    } catch {
      found = [];
    }
    for (const h of found) {
      if (all.has(h)) continue;
      all.add(h);
      holders.push(h);
      queue.push(h);
    }
  }
  return { holders, all };
}

/**
 * A lookup from the names a mount source or swap path may use (`/dev/sdb1`, `/dev/mapper/x`, a
 * symlink to either, the device number) to the kernel name among `devices`.
 */
async function ownerOfName(devices: Set<string>, sys: string): Promise<(source: string, devNum?: string) => Promise<string | undefined>> {
  const byAlias = new Map<string, string>();
  const byDevNum = new Map<string, string>();
  for (const n of devices) {
    byAlias.set(`/dev/${n}`, n);
    const dmName = await readText(join(classDir(sys, n), 'dm', 'name'));
    if (dmName) byAlias.set(`/dev/mapper/${dmName}`, n);
    const num = await readText(join(classDir(sys, n), 'dev'));
    if (num) byDevNum.set(num, n);
  }
  return async (source, devNum) => {
    if (devNum && byDevNum.has(devNum)) return byDevNum.get(devNum);
    if (byAlias.has(source)) return byAlias.get(source);
    if (!source.startsWith('/dev/')) return undefined;
    try {
      return byAlias.get(await realpath(source));
    } catch {
      return undefined; // source node not present here
    }
  };
}

/** The mount table (mountinfo, else /proc/mounts); `unknown` says why when neither can be read. */
async function readMountTable(proc: string): Promise<{ mounts: MountEntry[]; unknown?: string }> {
  const mountinfo = await readText(join(proc, 'self', 'mountinfo'));
  if (mountinfo !== undefined) return { mounts: parseMountinfo(mountinfo) };
  const pm = await readText(join(proc, 'mounts'));
  if (pm !== undefined) return { mounts: parseProcMounts(pm) };
  return { mounts: [], unknown: `cannot read ${join(proc, 'self', 'mountinfo')} or ${join(proc, 'mounts')}: mount state unknown` };
}

function reasonsFor(report: SystemDiskReport, backing: { file: string; report: SystemDiskReport } | undefined): string[] {
  const reasons: string[] = [];
  if (backing?.report.inUse)
    reasons.push(`${report.path} is a loop device backed by ${backing.file}, on ${backing.report.path}, a disk this system uses (${backing.report.reasons.join('; ')})`);
  if (report.holdsRoot) reasons.push(`${report.path} holds the root file system /`);
  for (const m of report.mounts) {
    if (m.mountPoint !== '/') reasons.push(`${m.source} is mounted on ${m.mountPoint}`);
  }
  for (const s of report.swaps) reasons.push(`${s} is in use as swap`);
  return reasons;
}

/**
 * For a loop device: its backing file and the system-disk report of the disk holding that
 * file (a loop device over a file on the system disk writes into the system disk's file system).
 */
async function loopBackingUse(name: string, paths: SystemPaths, depth = 0): Promise<{ file: string; report: SystemDiskReport } | undefined> {
  const sys = paths.sysRoot ?? '/sys';
  const file = await readText(join(sys, 'class', 'block', name, 'loop', 'backing_file'));
  if (!file || depth > 4) return undefined;
  let host: string | undefined;
  try {
    const st = await stat(file.replace(/ \(deleted\)$/, ''), { bigint: true });
    host = basename(await readlink(join(sys, 'dev', 'block', devNumber(st.dev))));
  } catch {
    host = undefined;
  }
  if (!host) return undefined;
  // Check the host by its sysfs name: the /dev node may not exist in this mount namespace.
  const report = await systemDiskCheck(join(sys, 'class', 'block', host), paths, depth + 1);
  return { file, report: { ...report, path: `/dev/${host}` } };
}
