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

/** One piece of a region as it arrived. */
export interface RegionChunk {
  offset: number;
  bytes: Uint8Array;
}

/**
 * A region being read ahead: the first `limit` bytes are read once, in large sequential chunks
 * issued back to back in the background, so that decoding thousands of zones costs a handful of
 * reads instead of two per zone, and can start on the first chunks while later ones are still
 * being read. The chunks are kept as read (no copy into one buffer); `source` reads wait for
 * bytes that have not arrived yet.
 */
export interface StreamedRegion {
  readonly source: RegionSource;
  /** The chunks in region order, each as soon as it has arrived; throws the read error, if any. */
  chunks(): AsyncIterable<RegionChunk>;
  /** Resolves when every chunk has arrived; rejects with the read error. */
  readonly done: Promise<void>;
  /** Stops reading (chunks not yet asked for are never read). */
  stop(): void;
}

export function streamRegion(src: RegionSource, limit: number, chunk = 4 << 20): StreamedRegion {
  if (chunk % 4 !== 0 || chunk <= 0) throw new RangeError(`chunk size ${chunk} must be a positive multiple of 4`);
  const n = Math.min(src.available, limit);
  const count = Math.ceil(n / chunk);
  const arrived: Promise<Uint8Array>[] = [];
  let stopped = false;
  // Each read is issued when the previous one has completed: one sequential stream.
  let previous: Promise<unknown> = Promise.resolve();
  for (let i = 0; i < count; i++) {
    const off = i * chunk;
    const p = previous.then(() => {
      if (stopped) throw new Error('region read stopped');
      return src.read(off, Math.min(chunk, n - off));
    });
    p.catch(() => undefined); // observed by whoever waits for this chunk
    arrived.push(p);
    previous = p;
  }
  const done = Promise.all(arrived).then(() => undefined);
  done.catch(() => undefined);
  const chunkAt = (i: number) => arrived[i];
  const source: RegionSource = {
    size: src.size,
    available: src.available,
    async read(offset, length) {
      if (offset + length > n) {
        // Past the part read ahead (beyond 128 MiB: never used by the kernel) the source answers.
        if (n < src.available) return src.read(offset, length);
        length = n - offset;
      }
      if (length <= 0) return new Uint8Array(0);
      const first = Math.floor(offset / chunk);
      const last = Math.floor((offset + length - 1) / chunk);
      if (first === last) return (await chunkAt(first)).subarray(offset - first * chunk, offset - first * chunk + length);
      // Straddles chunks: the only case that copies.
      const out = new Uint8Array(length);
      for (let i = first; i <= last; i++) {
        const c = await chunkAt(i);
        const from = Math.max(offset, i * chunk);
        const to = Math.min(offset + length, i * chunk + c.length);
        out.set(c.subarray(from - i * chunk, to - i * chunk), from - offset);
      }
      return out;
    },
  };
  return {
    source,
    done,
    stop() {
      stopped = true;
    },
    async *chunks() {
      for (let i = 0; i < count; i++) yield { offset: i * chunk, bytes: await chunkAt(i) };
    },
  };
}
