/**
 * Checks made before a destination is opened for writing, and the confirmation text.
 *
 * - An OS block device that is mounted, used as swap or holds the running system is refused
 *   unless the caller explicitly allows it.
 * - The image file itself (or the device holding it) is never a destination.
 */
import { stat } from 'node:fs/promises';
import { systemDiskCheck, type SystemPaths } from '../blockdev/os-block-device.js';
import type { BlockDevice } from '../blockdev/block-device.js';
import { formatBytes } from '../blockdev/device-util.js';
import { RefusedError } from './errors.js';
import { sameFile } from './source.js';

export interface DestinationCheckOptions extends SystemPaths {
  /** Write even to a device that is mounted or holds the running system. */
  allowSystemDisk?: boolean;
}

/**
 * Refuses `spec` before it is opened when it is the image itself or an OS block device in
 * use by the system. Specs with a `prefix:` (usb:…) are not OS devices and pass.
 */
export async function checkDestinationSpec(spec: string, imagePath: string, opts: DestinationCheckOptions = {}): Promise<void> {
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) return;
  if (await sameFile(spec, imagePath)) throw new RefusedError(`${spec} is the image being flashed; refusing to write it onto itself`);
  let isBlock = false;
  try {
    isBlock = (await stat(spec)).isBlockDevice();
  } catch {
    return; // openDevice reports the missing path
  }
  if (!isBlock) return;
  const report = await systemDiskCheck(spec, opts);
  if (report.inUse && !opts.allowSystemDisk) {
    throw new RefusedError(`${spec} is in use by this system: ${report.reasons.join('; ')}; refusing to write (unmount it first, or pass --allow-system-disk if you really mean it)`);
  }
}

/** One line describing a destination for prompts and summaries: name, vendor/model, size, serial. */
export function describeDestination(dev: BlockDevice): string {
  const i = dev.info;
  const what = [i.vendor, i.model].filter((s) => s && s.trim()).join(' ');
  const parts = [`${i.name}`, what ? `${what}` : undefined, `${formatBytes(dev.size)} (${dev.size} bytes)`, i.serial ? `serial ${i.serial}` : 'no serial number'];
  return parts.filter(Boolean).join(', ');
}
