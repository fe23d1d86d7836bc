/**
 * What the Linux kernel has made of a reader: the SCSI disks (`/dev/sdX`) usb-storage created
 * for its mass-storage interface, their partitions, and which of them are mounted. Read from
 * sysfs and /proc/self/mountinfo; on other systems (or without sysfs) everything is empty.
 *
 * Used to refuse taking a reader away from the kernel while one of its filesystems is mounted
 * (detaching usb-storage would tear the block device out from under the mount), to show the
 * kernel name next to a reader in `crashcart list`, and by the benchmark to find the kernel's
 * block device of the same card.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseMountinfo } from '../host/proc-mounts.js';

export interface KernelDisk {
  /** `sdb`. */
  name: string;
  /** `/dev/sdb`. */
  path: string;
  /** LUN from the SCSI address host:channel:target:lun. */
  lun: number;
  /** `8:16`. */
  devNumber: string;
  /** Size in bytes as the kernel sees it (0 without medium). */
  size: number;
  /** The disk and its partitions that are mounted, with their mount points. */
  mounts: { device: string; mountPoint: string }[];
}

export interface SysfsOptions {
  /** Root of sysfs (tests pass a fake tree). Default /sys. */
  sysRoot?: string;
  /** mountinfo to read. Default /proc/self/mountinfo. */
  mountinfo?: string;
}

function read(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function list(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

/** major:minor → mount points, from mountinfo (field 3 is the device number). */
function mountsByDevNumber(path: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of parseMountinfo(read(path) ?? '')) {
    if (!m.devNum) continue;
    out.set(m.devNum, [...(out.get(m.devNum) ?? []), m.mountPoint]);
  }
  return out;
}

/**
 * The SCSI disks the kernel created for interface `interfaceNumber` of the USB device at
 * `portPath` (sysfs name `1-1.4`), sorted by LUN. Empty when the kernel driver is not bound
 * (e.g. while crashcart owns the reader) or sysfs is not there.
 */
export function kernelDisksOf(portPath: string, interfaceNumber: number, opts: SysfsOptions = {}): KernelDisk[] {
  const sys = opts.sysRoot ?? '/sys';
  const usbDev = join(sys, 'bus/usb/devices', portPath);
  if (!existsSync(usbDev)) return [];
  const config = read(join(usbDev, 'bConfigurationValue')) || '1';
  const ifDir = join(sys, 'bus/usb/devices', `${portPath}:${config}.${interfaceNumber}`);
  const mounts = mountsByDevNumber(opts.mountinfo ?? '/proc/self/mountinfo');
  const disks: KernelDisk[] = [];
  for (const host of list(ifDir).filter((n) => /^host\d+$/.test(n))) {
    for (const target of list(join(ifDir, host)).filter((n) => /^target\d+:\d+:\d+$/.test(n))) {
      for (const addr of list(join(ifDir, host, target)).filter((n) => /^\d+:\d+:\d+:\d+$/.test(n))) {
        const lun = Number(addr.split(':')[3]);
        for (const name of list(join(ifDir, host, target, addr, 'block'))) {
          const blockDir = join(ifDir, host, target, addr, 'block', name);
          const devNumber = read(join(blockDir, 'dev')) ?? '';
          const sectors = Number(read(join(blockDir, 'size')) ?? '0');
          const found: KernelDisk['mounts'] = [];
          const parts = [{ name, dev: devNumber }];
          for (const p of list(blockDir)) {
            if (p.startsWith(name) && existsSync(join(blockDir, p, 'partition'))) parts.push({ name: p, dev: read(join(blockDir, p, 'dev')) ?? '' });
          }
          for (const p of parts) for (const mp of mounts.get(p.dev) ?? []) found.push({ device: `/dev/${p.name}`, mountPoint: mp });
          disks.push({ name, path: `/dev/${name}`, lun, devNumber, size: sectors * 512, mounts: found });
        }
      }
    }
  }
  return disks.sort((a, b) => a.lun - b.lun);
}

/** Name of the kernel driver bound to the interface (`usb-storage`, `uas`), if any. */
export function boundDriverOf(portPath: string, interfaceNumber: number, opts: SysfsOptions = {}): string | undefined {
  const sys = opts.sysRoot ?? '/sys';
  const config = read(join(sys, 'bus/usb/devices', portPath, 'bConfigurationValue')) || '1';
  try {
    return basename(readlinkSync(join(sys, 'bus/usb/devices', `${portPath}:${config}.${interfaceNumber}`, 'driver')));
  } catch {
    return undefined;
  }
}
