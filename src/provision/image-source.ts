/**
 * Partition images for provisioning, read and written through the flash pipeline
 * (`src/flash`: raw, gzip, xz, zstd and bzip2 recognised by their content, bmap files).
 *
 * One pass (`inspectImage`) measures the image, verifies the bmap checksums and compares it
 * with what the partition already holds, so that provisioning can refuse a bad image before
 * writing anything and skip an image that is already in place. `writeImage` then hands the
 * image to `flashImage` with the partition as its destination (retries, read-back verification).
 */
import { createHash, type Hash } from 'node:crypto';
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { RegionDevice } from '../blockdev/region-device.js';
import { BadInputError, CrashcartError, ExitCode, WriteProtectedError } from '../errors.js';
import { rangeBytes, type Bmap } from '../flash/bmap.js';
import type { SourceFormat } from '../flash/detect.js';
import { flashImage } from '../flash/flash.js';
import { openImageSource, type ImageSource } from '../flash/source.js';

export type { Bmap, SourceFormat };

export interface ImageSpec {
  path: string;
  bmapPath?: string;
}

export interface ImageInfo {
  path: string;
  format: SourceFormat;
  /** Uncompressed size in bytes. */
  size: number;
  /** Bytes that will be written (the mapped bytes with a bmap, else the size). */
  dataBytes: number;
  bmap?: Bmap;
  /** With `compareWith`: true when the device already holds the image's (mapped) bytes. */
  identical?: boolean;
}

async function openSource(spec: ImageSpec): Promise<ImageSource> {
  // only the bmap the profile or the user names: provisioning does not pick up stray files
  return openImageSource(spec.path, { bmap: spec.bmapPath ?? false });
}

/**
 * Walks the image's decompressed bytes and hands each piece that will be written (offset in
 * the image, bytes) to `visit`, verifying the bmap range checksums on the way.
 */
async function walkImage(src: ImageSource, visit: (offset: number, bytes: Uint8Array) => Promise<void>, opts: IoOptions = {}): Promise<number> {
  const bmap = src.bmap;
  const ranges = bmap ? bmap.ranges.map((r) => ({ ...rangeBytes(bmap, r), checksum: r.checksum })) : [];
  let ri = 0;
  let hash: Hash | undefined;
  let end = 0;
  for await (const { offset: pos, data: chunk } of src.extents({ signal: opts.signal })) {
    opts.signal?.throwIfAborted();
    end = Math.max(end, pos + chunk.length);
    if (!bmap) {
      await visit(pos, chunk);
      continue;
    }
    const cEnd = pos + chunk.length;
    if (cEnd > bmap.imageSize) throw new BadInputError(`image ${src.path} is larger than the ${bmap.imageSize} bytes its bmap describes`);
    let p = pos;
    while (ri < ranges.length && p < cEnd) {
      const r = ranges[ri];
      if (r.end <= p) {
        ri++;
        continue;
      }
      if (r.start >= cEnd) break;
      const s = Math.max(p, r.start);
      const e = Math.min(cEnd, r.end);
      if (s === r.start && r.checksum && bmap.checksumType) hash = createHash(bmap.checksumType);
      const piece = chunk.subarray(s - pos, e - pos);
      hash?.update(piece);
      await visit(s, piece);
      p = e;
      if (e === r.end) {
        if (hash && r.checksum && hash.digest('hex') !== r.checksum) {
          throw new BadInputError(
            `image ${src.path}: bytes ${r.start}–${r.end - 1} do not match their ${bmap.checksumType} checksum in the bmap; the image or the bmap is damaged`,
          );
        }
        hash = undefined;
        ri++;
      }
    }
  }
  if (bmap && ri < ranges.length) throw new BadInputError(`image ${src.path} ends before the mapped range at byte ${ranges[ri].start} of its bmap`);
  return bmap ? bmap.imageSize : end;
}

/** Maps the flash pipeline's errors (exit codes of its own) to the project's classes for provisioning. */
function asInputError(e: unknown, what: string): never {
  if (e instanceof CrashcartError && e.exitCode !== ExitCode.USAGE && e.exitCode !== ExitCode.CANCELLED && !(e instanceof BadInputError)) {
    throw new BadInputError(`${what}: ${e.message}`);
  }
  throw e;
}

/**
 * Measures an image (decompressing it), checks its bmap and, with `compareWith`, whether the
 * device already holds it at `offset`. Refuses images larger than `capacity`.
 */
export async function inspectImage(spec: ImageSpec, opts: IoOptions & { capacity?: number; compareWith?: { dev: BlockDevice; offset: number } } = {}): Promise<ImageInfo> {
  let src: ImageSource;
  try {
    src = await openSource(spec);
  } catch (e) {
    asInputError(e, `image ${spec.path}`);
  }
  try {
    const cap = opts.capacity ?? Number.MAX_SAFE_INTEGER;
    const tooBig = () => new BadInputError(`image ${spec.path} is larger than its partition (${cap} bytes, ${formatBytes(cap)})`);
    if ((src.bmap?.imageSize ?? src.size.exact ?? 0) > cap) throw tooBig();
    let identical = opts.compareWith !== undefined;
    const cmp = opts.compareWith;
    let size: number;
    try {
      size = await walkImage(
        src,
        async (off, bytes) => {
          if (off + bytes.length > cap) throw tooBig();
          if (identical && cmp) {
            const have = await readRange(cmp.dev, cmp.offset + off, bytes.length, opts);
            if (Buffer.compare(have, bytes) !== 0) identical = false;
          }
        },
        opts,
      );
    } catch (e) {
      asInputError(e, `image ${spec.path}`);
    }
    const info: ImageInfo = { path: spec.path, format: src.format, size, dataBytes: src.bmap ? src.bmap.mappedBytes : size };
    if (src.bmap) info.bmap = src.bmap;
    if (cmp) info.identical = identical;
    return info;
  } finally {
    await src.close();
  }
}

export interface ImageWriteProgress {
  written: number;
  total: number;
}

/**
 * Writes the image (its mapped blocks with a bmap) into the `capacity` bytes at `offset` of
 * `dev` through the flash pipeline, which reads it back and compares.
 */
export async function writeImage(
  dev: BlockDevice,
  offset: number,
  spec: ImageSpec,
  info: ImageInfo,
  opts: IoOptions & { capacity: number; onProgress?: (p: ImageWriteProgress) => void },
): Promise<number> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected`);
  const part = new RegionDevice(dev, offset, opts.capacity, `${dev.info.name}@${offset}`);
  const src = await openSource(spec);
  try {
    const r = await flashImage(src, [{ device: part }], {
      verify: true,
      signal: opts.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.phase === 'writing') opts.onProgress?.({ written: e.bytes, total: info.dataBytes });
      },
    });
    const t = r.targets[0];
    if (!t.ok) {
      const code = (t.error?.exitCode ?? ExitCode.IO) as ConstructorParameters<typeof CrashcartError>[1];
      throw new CrashcartError(`writing ${spec.path} to ${dev.info.name} at offset ${offset} failed: ${t.error?.message ?? 'unknown error'}`, code);
    }
    return t.bytesWritten;
  } finally {
    await src.close();
  }
}
