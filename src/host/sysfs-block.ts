/**
 * Block device nodes as sysfs describes them: the kernel name behind a path, its whole disk,
 * whether it is a partition. Paths are overridable so the logic can be tested on a fake tree.
 */
import { readFile, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IoError, UsageError } from '../errors.js';
import { devNumber } from './dev-number.js';

/** Where sysfs and procfs live; overridable so the logic can be tested on a fake tree. */
export interface SystemPaths {
  /** Default "/sys". */
  sysRoot?: string;
  /** Default "/proc". */
  procRoot?: string;
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

/** Contents of a small sysfs/procfs file, trimmed; undefined when it cannot be read. */
export async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

export async function exists(path: string): Promise<boolean> {
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
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === 'ENOENT') throw new UsageError(`${path}: no such file or device`);
    if (code === 'EACCES' || code === 'EPERM') throw new UsageError(`${path}: permission denied (${code})`);
    throw new IoError(`cannot resolve ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
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
