/**
 * Opens whatever the user named: a regular file is a disk image, a block special file an OS
 * block device, and a `prefix:` spec goes to a registered opener.
 *
 * The reader layer registers `usb:` (src/reader/register.ts) — it sits above this one, so it
 * plugs in instead of being imported. A program using the library without registering it gets
 * a UsageError that says how.
 */
import { stat } from 'node:fs/promises';
import type { BlockDevice } from './block-device.js';
import type { ReconnectOptions } from './reconnect.js';
import { openImageFile, mapOpenError } from './image-file-device.js';
import { openOsBlockDevice } from './os-block-device.js';
import { UsageError } from '../errors.js';

export interface OpenDeviceOptions {
  /** Open read-write. Default: read-only. */
  write?: boolean;
  /**
   * Bytes per command for devices that split I/O into commands (USB readers; rounded down to
   * whole blocks). Default: the device's own (a reader profile's, else Linux usb-storage's per speed).
   */
  maxTransferBytes?: number;
  /**
   * Devices that can go away and come back (USB readers): wait for them and continue on the same
   * card (see ../reader/reconnecting-device.ts). Other backends ignore it.
   */
  reconnect?: ReconnectOptions;
}

export type DeviceOpener = (spec: string, opts: OpenDeviceOptions) => Promise<BlockDevice>;

const openers = new Map<string, DeviceOpener>();

/** Prefixes the project knows about but whose backend is not registered yet. */
const PENDING: Record<string, string> = {
  'usb:': 'USB readers are not registered in this program (call registerUsbDeviceOpener() from the crashcart library first)',
};

/**
 * Registers the opener for specs starting with `prefix` (e.g. `usb:`), replacing any earlier
 * one. Prefixes must end with ':' so they cannot be confused with relative file paths.
 */
export function registerDeviceOpener(prefix: string, opener: DeviceOpener): void {
  if (!/^[a-z][a-z0-9+.-]*:$/i.test(prefix)) throw new UsageError(`device opener prefix must look like "name:", got "${prefix}"`);
  openers.set(prefix.toLowerCase(), opener);
}

/** Removes a registered opener (tests, plug-in unloading). */
export function unregisterDeviceOpener(prefix: string): boolean {
  return openers.delete(prefix.toLowerCase());
}

export async function openDevice(spec: string, opts: OpenDeviceOptions = {}): Promise<BlockDevice> {
  if (spec === '') throw new UsageError('no device or image given');
  // Bare `usb` (the only card present) and `usb@lun=N` belong to the usb: opener too.
  const m = /^usb(?=@|$)/i.test(spec) ? ['usb:', 'usb:'] : /^([a-z][a-z0-9+.-]*:)/i.exec(spec);
  if (m) {
    const prefix = m[1].toLowerCase();
    const opener = openers.get(prefix);
    if (opener) return opener(spec, opts);
    if (prefix in PENDING) throw new UsageError(`${spec}: ${PENDING[prefix]}`);
    // Not a known prefix: fall through and treat it as a path (e.g. "C:" never reaches here on Linux,
    // but a file literally named "foo:bar" should still open).
  }
  let st;
  try {
    st = await stat(spec);
  } catch (err) {
    throw mapOpenError(spec, opts.write === true, err);
  }
  if (st.isFile()) return openImageFile(spec, { write: opts.write });
  if (st.isBlockDevice()) return openOsBlockDevice(spec, { write: opts.write });
  if (st.isDirectory()) throw new UsageError(`${spec} is a directory, not an image or device`);
  if (st.isCharacterDevice()) throw new UsageError(`${spec} is a character device, not a block device or image`);
  throw new UsageError(`${spec} is neither a regular file nor a block device`);
}
