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

export async function systemDiskCheck(path: string, paths: SystemPaths = {}): Promise<SystemDiskReport> {
  const sys = paths.sysRoot ?? '/sys';
  const proc = paths.procRoot ?? '/proc';
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
  const classDir = (n: string) => join(sys, 'class', 'block', n);

  // The whole disk the device belongs to and every partition of it (a mounted sibling means the
  // disk is in use: its table and neighbours are one write away), then everything stacked on top.
  const diskName = node.disk ?? node.name;
  const own = new Set<string>([node.name, diskName]);
  try {
    for (const ent of await readdir(classDir(diskName))) {
      if (ent.startsWith(diskName) && (await exists(join(classDir(diskName), ent, 'partition')))) {
        own.add(ent);
        if (ent !== node.name) report.partitions.push(ent);
      }
    }
  } catch {
    /* no sysfs directory listing: check the node alone */
  }
  report.partitions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const queue = [...own];
  const all = new Set(own);
  while (queue.length > 0) {
    const n = queue.shift() as string;
    let holders: string[] = [];
    try {
      holders = await readdir(join(classDir(n), 'holders'));
    } catch {
      holders = [];
    }
    for (const h of holders) {
      if (all.has(h)) continue;
      all.add(h);
      report.holders.push(h);
      queue.push(h);
    }
  }

  // Names a mount source or swap path may use for each kernel device.
  const byAlias = new Map<string, string>();
  const byDevNum = new Map<string, string>();
  for (const n of all) {
    byAlias.set(`/dev/${n}`, n);
    const dmName = await readText(join(classDir(n), 'dm', 'name'));
    if (dmName) byAlias.set(`/dev/mapper/${dmName}`, n);
    const num = await readText(join(classDir(n), 'dev'));
    if (num) byDevNum.set(num, n);
  }
  const match = async (source: string, devNum?: string): Promise<string | undefined> => {
    if (devNum && byDevNum.has(devNum)) return byDevNum.get(devNum);
    if (byAlias.has(source)) return byAlias.get(source);
    if (source.startsWith('/dev/')) {
      try {
        const r = await realpath(source);
        if (byAlias.has(r)) return byAlias.get(r);
      } catch {
        /* source node not present here */
      }
    }
    return undefined;
  };

  let mounts: MountEntry[] = [];
  let mountStateUnknown = false;
  const mountinfo = await readText(join(proc, 'self', 'mountinfo'));
  if (mountinfo !== undefined) mounts = parseMountinfo(mountinfo);
  else {
    const pm = await readText(join(proc, 'mounts'));
    if (pm !== undefined) mounts = parseProcMounts(pm);
    else {
      mountStateUnknown = true;
      report.reasons.push(`cannot read ${join(proc, 'self', 'mountinfo')} or ${join(proc, 'mounts')}: mount state unknown`);
    }
  }
  for (const m of mounts) {
    const dev = await match(m.source, m.devNum);
    if (dev === undefined) continue;
    report.mounts.push({ source: m.source, mountPoint: m.mountPoint, fsType: m.fsType, device: dev });
    if (m.mountPoint === '/') report.holdsRoot = true;
  }
  const swaps = await readText(join(proc, 'swaps'));
  if (swaps !== undefined) {
    for (const s of parseProcSwaps(swaps)) {
      if ((await match(s)) !== undefined) report.swaps.push(s);
    }
  }

  const backing = await loopBackingUse(node.name, paths);
  if (backing) {
    report.loopBacking = backing.file;
    if (backing.report.inUse) report.reasons.push(`${path} is a loop device backed by ${backing.file}, on ${backing.report.path}, a disk this system uses (${backing.report.reasons.join('; ')})`);
  }

  if (report.holdsRoot) report.reasons.push(`${path} holds the root file system /`);
  for (const m of report.mounts) {
    if (m.mountPoint !== '/') report.reasons.push(`${m.source} is mounted on ${m.mountPoint}`);
  }
  for (const s of report.swaps) report.reasons.push(`${s} is in use as swap`);
  report.inUse = report.mounts.length > 0 || report.swaps.length > 0 || mountStateUnknown || backing?.report.inUse === true;
  return report;
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
  const report = await systemDiskCheck(join(sys, 'class', 'block', host), paths);
  return { file, report: { ...report, path: `/dev/${host}` } };
}
