/**
 * OS block devices (/dev/sdX, /dev/mmcblkN, /dev/disk/by-id/…) through the kernel's block layer.
 *
 * Geometry comes from sysfs: size from /sys/class/block/<name>/size (always in 512-byte units),
 * the logical block size from the disk's queue/logical_block_size, the write-protect state
 * from …/ro. When sysfs has no entry the size is found by probing reads (Node has no lseek or
 * BLKGETSIZE64). Writing opens with O_EXCL, which Linux refuses (EBUSY) while the device or
 * one of its partitions is mounted or otherwise claimed.
 *
 * `systemDiskCheck` tells whether a device is in use by the running system (mounted, swap,
 * holding `/`, directly or through device-mapper/md holders); callers refuse to write to such
 * a device without an explicit override.
 */
import { constants as fsc } from 'node:fs';
import { open, readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { FileHandleDevice } from './file-handle-device.js';
import { mapOpenError } from './image-file-device.js';
import { errnoCode } from './device-util.js';
import { devNumber, identityOf } from './identity.js';
import { IoError, UsageError, WriteProtectedError } from '../errors.js';

/** Where sysfs and procfs live; overridable so the logic can be tested on a fake tree. */
export interface SystemPaths {
  /** Default "/sys". */
  sysRoot?: string;
  /** Default "/proc". */
  procRoot?: string;
}

export interface OsBlockDeviceOptions extends SystemPaths {
  /** Open read-write (exclusively). Default: read-only. */
  write?: boolean;
}

export class OsBlockDevice extends FileHandleDevice {
  /** Kernel name (`sdb`, `mmcblk0p2`). */
  kernelName = '';
}

/** What sysfs says about one block device node. */
export interface BlockNodeInfo {
  /** The path after resolving symlinks (/dev/disk/by-id/… → /dev/sdb). */
  realPath: string;
  /** Kernel name of the node (`sdb1`), or undefined when sysfs does not know it. */
  name?: string;
  /** Kernel name of the whole disk (`sdb`); equals `name` for a whole disk. */
  disk?: string;
  isPartition: boolean;
  isBlockDevice: boolean;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Finds the kernel name of a device node, and its whole disk, through sysfs. */
export async function describeBlockNode(path: string, paths: SystemPaths = {}): Promise<BlockNodeInfo> {
  const sys = paths.sysRoot ?? '/sys';
  let realPath: string;
  try {
    realPath = await realpath(path);
  } catch (err) {
    throw mapOpenError(path, false, err);
  }
  const st = await stat(realPath, { bigint: true });
  const isBlockDevice = st.isBlockDevice();
  let name: string | undefined;
  if (isBlockDevice) {
    try {
      name = basename(await readlink(join(sys, 'dev', 'block', devNumber(st.rdev))));
    } catch {
      name = undefined;
    }
  }
  if (name === undefined && (await exists(join(sys, 'class', 'block', basename(realPath))))) {
    name = basename(realPath);
  }
  if (name === undefined) return { realPath, isPartition: false, isBlockDevice };
  const isPartition = await exists(join(sys, 'class', 'block', name, 'partition'));
  let disk = name;
  if (isPartition) {
    try {
      disk = basename(dirname(await realpath(join(sys, 'class', 'block', name))));
    } catch {
      disk = name;
    }
  }
  return { realPath, name, disk, isPartition, isBlockDevice };
}

/** Finds the size of an open device by probing 1-byte reads (binary search on 512-byte units). */
async function probeSize(handle: FileHandle): Promise<number> {
  const one = new Uint8Array(1);
  const readable = async (sector: number): Promise<boolean> => {
    const { bytesRead } = await handle.read(one, 0, 1, sector * 512);
    return bytesRead === 1;
  };
  if (!(await readable(0))) return 0;
  let lo = 0; // last sector known readable
  let hi = 2048; // first sector candidate known or assumed unreadable
  while (await readable(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 43) throw new IoError('cannot determine device size: probing ran past 4 PiB');
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await readable(mid)) lo = mid;
    else hi = mid;
  }
  // The last sector may be partial only for regular files; find the exact byte end.
  let end = lo * 512;
  const tail = new Uint8Array(512);
  const { bytesRead } = await handle.read(tail, 0, 512, end);
  end += bytesRead;
  return end;
}

export async function openOsBlockDevice(path: string, opts: OsBlockDeviceOptions = {}): Promise<OsBlockDevice> {
  const write = opts.write === true;
  const sys = opts.sysRoot ?? '/sys';
  const node = await describeBlockNode(path, opts);
  const nodeDir = node.name ? join(sys, 'class', 'block', node.name) : undefined;
  const diskDir = node.disk ? join(sys, 'class', 'block', node.disk) : undefined;

  if (write && nodeDir && (await readText(join(nodeDir, 'ro'))) === '1') {
    throw new WriteProtectedError(`${path} is read-only (write-protect switch on, or the kernel marked it read-only)`);
  }

  let handle: FileHandle;
  try {
    handle = await open(node.realPath, write ? fsc.O_RDWR | fsc.O_EXCL : fsc.O_RDONLY);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EBUSY') {
      throw new UsageError(`${path} is in use (mounted, active swap, or held by another program); unmount it first`);
    }
    if (code === 'EACCES') {
      throw new UsageError(`${path}: permission denied (EACCES); run as root or join the group that owns the device`);
    }
    if (code === 'EPERM') {
      throw new UsageError(`${path}: permission denied (EPERM): the system does not allow opening this device here (container or security policy?)`);
    }
    if (code === 'ENOMEDIUM') throw new IoError(`${path}: no medium (is a card inserted?)`, { cause: err });
    throw mapOpenError(path, write, err);
  }

  try {
    const st = await handle.stat({ bigint: true });
    let size: number | undefined;
    const sectors = nodeDir ? await readText(join(nodeDir, 'size')) : undefined;
    if (sectors !== undefined && /^\d+$/.test(sectors)) size = Number(sectors) * 512;
    if (size === undefined) {
      try {
        size = await probeSize(handle);
      } catch (err) {
        if (err instanceof IoError) throw err;
        throw new IoError(`cannot determine the size of ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
    }
    if (size === 0) throw new IoError(`${path} has size 0 (no medium?)`);

    let blockSize = 512;
    const lbs = diskDir ? await readText(join(diskDir, 'queue', 'logical_block_size')) : undefined;
    if (lbs !== undefined && /^\d+$/.test(lbs) && Number(lbs) >= 512) blockSize = Number(lbs);

    const vendor = diskDir ? await readText(join(diskDir, 'device', 'vendor')) : undefined;
    const model = diskDir ? await readText(join(diskDir, 'device', 'model')) : undefined;
    const serial = diskDir ? await readText(join(diskDir, 'device', 'serial')) : undefined;
    const dev = new OsBlockDevice({
      handle,
      info: {
        name: path,
        kind: 'os-block',
        ...(vendor ? { vendor } : {}),
        ...(model ? { model } : {}),
        ...(serial ? { serial } : {}),
        identity: identityOf(st),
      },
      size,
      blockSize,
      alignment: blockSize,
      readOnly: !write,
    });
    dev.kernelName = node.name ?? basename(node.realPath);
    return dev;
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// System-disk check

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

/** Undoes the octal escapes (\040 for space, …) of /proc/self/mountinfo and /proc/swaps. */
function unescapeProc(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

interface MountEntry {
  devNum?: string;
  source: string;
  mountPoint: string;
  fsType?: string;
}

/** Parses /proc/self/mountinfo text. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [pre, post] = line.split(' - ');
    if (post === undefined) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    if (f.length < 5 || g.length < 2) continue;
    out.push({ devNum: f[2], mountPoint: unescapeProc(f[4]), fsType: g[0], source: unescapeProc(g[1]) });
  }
  return out;
}

/** Parses /proc/mounts (fstab format) text. */
export function parseProcMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3) continue;
    out.push({ source: unescapeProc(f[0]), mountPoint: unescapeProc(f[1]), fsType: f[2] });
  }
  return out;
}

/** Parses /proc/swaps text into swap area paths. */
export function parseProcSwaps(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[0]) out.push(unescapeProc(f[0]));
  }
  return out;
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
