import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';

/**
 * The bytes of a pstore region as the decoder sees them. `size` is the size the kernel saw
 * (the partition size); `available` may be smaller when the image is truncated, in which case
 * reads return fewer bytes than asked instead of failing.
 */
export interface RegionSource {
  readonly size: number;
  readonly available: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function memorySource(bytes: Uint8Array, declaredSize = bytes.length): RegionSource {
  return {
    size: declaredSize,
    available: bytes.length,
    read: async (offset, length) => bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
  };
}

/** A region `[offset, offset + size)` of a device; bytes past the device end read as missing. */
export function deviceSource(dev: BlockDevice, offset: number, size: number): RegionSource {
  const available = Math.max(0, Math.min(size, dev.size - offset));
  return {
    size,
    available,
    async read(off, length) {
      const end = Math.min(off + length, available);
      if (off >= end) return new Uint8Array(0);
      return readRange(dev, offset + off, end - off);
    },
  };
}
