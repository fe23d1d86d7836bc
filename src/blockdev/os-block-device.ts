/**
 * OS block devices (/dev/sdX, /dev/mmcblkN, /dev/disk/by-id/…) through the kernel's block layer.
 *
 * Geometry comes from sysfs: size from /sys/class/block/<name>/size (always in 512-byte units),
 * the logical block size from the disk's queue/logical_block_size, the write-protect state
 * from …/ro. When sysfs has no entry the size is found by probing reads (Node has no lseek or
 * BLKGETSIZE64). Writing opens with O_EXCL, which Linux refuses (EBUSY) while the device or
 * one of its partitions is mounted or otherwise claimed.
 *
 * Whether a device is in use by the running system is the write gate's question
 * (src/host/system-disk.ts answers it).
 */
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { FileHandleDevice } from './file-handle-device.js';
import { mapOpenError } from './image-file-device.js';
import { errnoCode } from './device-util.js';
import { identityOf } from './identity.js';
import { IoError, UsageError, WriteProtectedError } from '../errors.js';
import { describeBlockNode, readText, type SystemPaths } from '../host/sysfs-block.js';

export interface OsBlockDeviceOptions extends SystemPaths {
  /** Open read-write (exclusively). Default: read-only. */
  write?: boolean;
}

export class OsBlockDevice extends FileHandleDevice {
  /** Kernel name (`sdb`, `mmcblk0p2`). */
  kernelName = '';
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
