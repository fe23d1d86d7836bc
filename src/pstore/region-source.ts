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
  /** True when the bytes are already in memory (reads cost nothing). */
  readonly inMemory?: boolean;
  /** True when reading the region sequentially is cheap (local files and disks; not USB readers). */
  readonly cheapSequential?: boolean;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function memorySource(bytes: Uint8Array, declaredSize = bytes.length): RegionSource {
  return {
    size: declaredSize,
    available: bytes.length,
    inMemory: true,
    read: async (offset, length) => bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
  };
}

/** A region `[offset, offset + size)` of a device; bytes past the device end read as missing. */
export function deviceSource(dev: BlockDevice, offset: number, size: number): RegionSource {
  const available = Math.max(0, Math.min(size, dev.size - offset));
  return {
    size,
    available,
    cheapSequential: dev.info.kind !== 'usb',
    async read(off, length) {
      const end = Math.min(off + length, available);
      if (off >= end) return new Uint8Array(0);
      return readRange(dev, offset + off, end - off);
    },
  };
}

/**
 * Reads the first `limit` bytes of a region once, in large sequential chunks, so that decoding
 * thousands of zones costs a handful of reads instead of two per zone.
 */
export async function prefetchSource(src: RegionSource, limit: number, chunk = 4 << 20): Promise<RegionSource> {
  if (src.inMemory) return src;
  const n = Math.min(src.available, limit);
  const buf = new Uint8Array(n);
  for (let off = 0; off < n; off += chunk) buf.set(await src.read(off, Math.min(chunk, n - off)), off);
  if (n === src.available) return memorySource(buf, src.size);
  // Past the prefetched part (beyond 128 MiB: never used by the kernel) fall back to the source.
  return {
    size: src.size,
    available: src.available,
    read: async (offset, length) => (offset + length <= n ? buf.subarray(offset, offset + length) : src.read(offset, length)),
  };
}
