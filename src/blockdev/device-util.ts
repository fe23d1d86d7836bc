/**
 * Small helpers shared by the BlockDevice backends: argument and bounds checks with the
 * project's typed errors, abort handling, failure kinds of OS errors.
 */
import type { BlockDevice, IoOptions } from './block-device.js';
import { CrashcartError, ExitCode, IoError, WriteProtectedError, type DeviceFailure } from '../errors.js';

/** Throws the signal's reason (an AbortError DOMException unless the caller chose another). */
export function throwIfAborted(opts?: IoOptions): void {
  opts?.signal?.throwIfAborted();
}

/**
 * Validates a read/write request against a device's size and alignment.
 * Out-of-range requests are IoErrors (the interface promises that for reads past the end);
 * misaligned ones are programming errors and say how to fix them.
 */
export function checkAccess(dev: Pick<BlockDevice, 'size' | 'alignment' | 'info'>, op: 'read' | 'write', offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new IoError(`${op} on ${dev.info.name}: invalid offset ${String(offset)}`, { failure: 'out-of-range' });
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new IoError(`${op} on ${dev.info.name}: invalid length ${String(length)}`, { failure: 'out-of-range' });
  }
  if (offset + length > dev.size) {
    throw new IoError(`${op} of ${length} bytes at offset ${offset} on ${dev.info.name} goes past the end of the device (size ${dev.size})`, { failure: 'out-of-range' });
  }
  const a = dev.alignment;
  if (a > 1 && (offset % a !== 0 || length % a !== 0)) {
    throw new CrashcartError(`${op} of ${length} bytes at offset ${offset} on ${dev.info.name} is not aligned to ${a} bytes (use readRange/writeRange)`, ExitCode.INTERNAL);
  }
}

export function checkWritable(dev: Pick<BlockDevice, 'readOnly' | 'info'>): void {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is open read-only; refusing to write`);
}

export function checkOpen(closed: boolean, name: string): void {
  if (closed) throw new IoError(`${name} is closed`, { failure: 'gone' });
}

const GONE_ERRNO = new Set(['ENODEV', 'ENXIO', 'ENOMEDIUM', 'ESHUTDOWN', 'EBADF']);
const TRANSIENT_ERRNO = new Set(['EBUSY', 'EAGAIN', 'ETIMEDOUT', 'EINTR']);

/** What an OS error from reading or writing a file or device node means (see DeviceFailure). */
export function failureOfErrno(err: unknown): DeviceFailure | undefined {
  const code = errnoCode(err);
  if (code === undefined) return undefined;
  if (GONE_ERRNO.has(code)) return 'gone';
  if (code === 'EIO') return 'medium';
  if (TRANSIENT_ERRNO.has(code)) return 'transient';
  return undefined;
}

/** The errno code of a Node system error, if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}
