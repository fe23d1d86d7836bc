/**
 * Device numbers and identities from `stat` results: what an opened file or device node *is*,
 * whatever path named it.
 */
import type { BigIntStats } from 'node:fs';
import type { DeviceIdentity } from './block-device.js';
import { devNumber } from '../host/dev-number.js';

/** A regular file: its file system's device and its inode (hard links share it). */
export function fileIdentity(st: BigIntStats): DeviceIdentity {
  return { kind: 'file', key: `${st.dev}:${st.ino}`, fsDevice: devNumber(st.dev) };
}

/** A block device node: its device number (every node and symlink naming it shares it). */
export function blockIdentity(st: BigIntStats): DeviceIdentity {
  return { kind: 'block', key: devNumber(st.rdev) };
}

/** The identity of whatever `st` describes: a block device node or any other file. */
export function identityOf(st: BigIntStats): DeviceIdentity {
  return st.isBlockDevice() ? blockIdentity(st) : fileIdentity(st);
}
