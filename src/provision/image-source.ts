/**
 * Partition images for provisioning: streamed from a file (raw or gzip, recognised by their
 * magic bytes, never by the name), optionally restricted to the blocks a bmap file lists.
 *
 * One pass (`inspectImage`) measures the image, verifies the bmap checksums and compares it
 * with what the partition already holds, so that provisioning can refuse a bad image before
 * writing anything and skip an image that is already in place. A second pass (`writeImage`)
 * writes it.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange, writeRange } from '../blockdev/io.js';
import { formatBytes } from '../blockdev/device-util.js';
import { BadInputError, UsageError, WriteProtectedError } from '../errors.js';

export type ImageFormat = 'raw' | 'gzip';

/** A bmap (Yocto/bmap-tools block map): which blocks of the image hold data, with checksums. */
export interface Bmap {
  imageSize: number;
  blockSize: number;
  checksumType?: 'sha1' | 'sha256';
  /** Byte ranges [start, end) of mapped data, sorted, with the checksum of each range when given. */
  ranges: { start: number; end: number; checksum?: string }[];
  mappedBytes: number;
}

const tagText = (xml: string, tag: string): string | undefined => {
  const m = new RegExp(`<${tag}>\\s*([^<]*?)\\s*</${tag}>`).exec(xml);
  return m?.[1];
};

/**
 * Parses a bmap file (format versions 1.x and 2.x).
 * @throws BadInputError naming what is wrong.
 */
export function parseBmap(xml: string, what = 'bmap'): Bmap {
  const fail = (msg: string): never => {
    throw new BadInputError(`${what}: ${msg}`);
  };
  const version = /<bmap\s+version\s*=\s*"([0-9.]+)"/.exec(xml)?.[1];
  if (!version) fail('not a bmap file (no <bmap version="…"> element)');
  const major = Number(version!.split('.')[0]);
  if (major < 1 || major > 2) fail(`unsupported bmap version ${version}`);
  const num = (tag: string): number => {
    const t = tagText(xml, tag);
    if (t === undefined || !/^\d+$/.test(t)) fail(`missing or invalid <${tag}>`);
    return Number(t);
  };
  const imageSize = num('ImageSize');
  const blockSize = num('BlockSize');
  if (blockSize === 0) fail('<BlockSize> is 0');
  const blocksCount = num('BlocksCount');
  if (blocksCount !== Math.ceil(imageSize / blockSize)) fail(`<BlocksCount> ${blocksCount} does not match <ImageSize> ${imageSize} / <BlockSize> ${blockSize}`);
  let checksumType: Bmap['checksumType'];
  if (major >= 2) {
    const t = tagText(xml, 'ChecksumType')?.toLowerCase();
    if (t !== 'sha1' && t !== 'sha256') fail(`unsupported <ChecksumType> ${t ?? '(missing)'}`);
    checksumType = t as 'sha1' | 'sha256';
  } else checksumType = 'sha1';
  const attr = major >= 2 ? 'chksum' : 'sha1';
  const ranges: Bmap['ranges'] = [];
  const body = /<BlockMap>([\s\S]*)<\/BlockMap>/.exec(xml)?.[1];
  if (body === undefined) fail('missing <BlockMap>');
  const re = /<Range([^>]*)>\s*(\d+)(?:\s*-\s*(\d+))?\s*<\/Range>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body!))) {
    const first = Number(m[2]);
    const last = m[3] !== undefined ? Number(m[3]) : first;
    if (last < first || last >= blocksCount) fail(`range ${m[2]}${m[3] ? `-${m[3]}` : ''} lies outside the ${blocksCount} blocks of the image`);
    const start = first * blockSize;
    const end = Math.min(imageSize, (last + 1) * blockSize);
    if (ranges.length && start < ranges[ranges.length - 1].end) fail(`range ${m[2]}${m[3] ? `-${m[3]}` : ''} overlaps or precedes the previous one`);
    const sum = new RegExp(`${attr}\\s*=\\s*"([0-9a-fA-F]+)"`).exec(m[1])?.[1]?.toLowerCase();
    ranges.push({ start, end, ...(sum ? { checksum: sum } : {}) });
  }
  const mappedBytes = ranges.reduce((a, r) => a + r.end - r.start, 0);
  const mappedCount = tagText(xml, 'MappedBlocksCount');
  if (mappedCount !== undefined && /^\d+$/.test(mappedCount)) {
    const blocks = ranges.reduce((a, r) => a + Math.ceil((r.end - r.start) / blockSize), 0);
    if (blocks !== Number(mappedCount)) fail(`<MappedBlocksCount> ${mappedCount} does not match the ${blocks} blocks the ranges list`);
  }
  return { imageSize, blockSize, checksumType, ranges, mappedBytes };
}

export interface ImageSpec {
  path: string;
  bmapPath?: string;
}

export interface ImageInfo {
  path: string;
  format: ImageFormat;
  /** Uncompressed size in bytes. */
  size: number;
  /** Bytes that will be written (the mapped bytes with a bmap, else the size). */
  dataBytes: number;
  bmap?: Bmap;
  /** With `compareWith`: true when the device already holds the image's (mapped) bytes. */
  identical?: boolean;
}

async function sniff(path: string): Promise<ImageFormat> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`image ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UsageError(`image ${path} is not a regular file`);
    const b = new Uint8Array(6);
    const { bytesRead } = await fh.read(b, 0, 6, 0);
    const h = b.subarray(0, bytesRead);
    if (h[0] === 0x1f && h[1] === 0x8b) return 'gzip';
    const compressed =
      h[0] === 0xfd && h[1] === 0x37 && h[2] === 0x7a && h[3] === 0x58 && h[4] === 0x5a ? 'xz'
      : h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd ? 'zstd'
      : h[0] === 0x42 && h[1] === 0x5a && h[2] === 0x68 ? 'bzip2'
      : undefined;
    if (compressed) throw new UsageError(`image ${path} is ${compressed}-compressed; provisioning takes raw or gzip images: decompress it first`);
    return 'raw';
  } finally {
    await fh.close();
  }
}

/** Yields the image's uncompressed bytes in order, in chunks of at most `chunk` bytes. */
async function* imageChunks(path: string, format: ImageFormat, chunk = 1 << 20): AsyncGenerator<Uint8Array> {
  const file = createReadStream(path, { highWaterMark: chunk });
  let stream: Readable = file;
  if (format === 'gzip') {
    const gunzip = createGunzip({ chunkSize: chunk });
    file.on('error', (e) => gunzip.destroy(e));
    stream = file.pipe(gunzip);
  }
  try {
    for await (const c of stream) yield c as Uint8Array;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('Z_')) throw new BadInputError(`image ${path}: gzip data is corrupt (${(e as Error).message})`);
    throw e;
  } finally {
    stream.destroy();
    file.destroy();
  }
}

/** Walks an image's bytes and hands each mapped piece (offset in the image, bytes) to `visit`. */
async function walkImage(
  path: string,
  format: ImageFormat,
  bmap: Bmap | undefined,
  visit: (offset: number, bytes: Uint8Array) => Promise<void>,
  opts: IoOptions = {},
): Promise<number> {
  let pos = 0;
  let ri = 0;
  let hash: Hash | undefined;
  const algo = bmap?.checksumType ?? 'sha256';
  for await (const chunk of imageChunks(path, format)) {
    opts.signal?.throwIfAborted();
    const end = pos + chunk.length;
    if (!bmap) {
      await visit(pos, chunk);
    } else {
      if (end > bmap.imageSize) throw new BadInputError(`image ${path} is larger than the ${bmap.imageSize} bytes its bmap describes`);
      let p = pos;
      while (ri < bmap.ranges.length && p < end) {
        const r = bmap.ranges[ri];
        if (r.end <= p) {
          ri++;
          continue;
        }
        if (r.start >= end) break;
        const s = Math.max(p, r.start);
        const e = Math.min(end, r.end);
        if (s === r.start && r.checksum) hash = createHash(algo);
        const piece = chunk.subarray(s - pos, e - pos);
        hash?.update(piece);
        await visit(s, piece);
        p = e;
        if (e === r.end) {
          if (hash && r.checksum && hash.digest('hex') !== r.checksum) {
            throw new BadInputError(`image ${path}: bytes ${r.start}–${r.end - 1} do not match their ${algo} checksum in the bmap; the image or the bmap is damaged`);
          }
          hash = undefined;
          ri++;
        }
      }
    }
    pos = end;
  }
  if (bmap && pos !== bmap.imageSize) throw new BadInputError(`image ${path} has ${pos} bytes but its bmap describes ${bmap.imageSize}`);
  return pos;
}

/**
 * Measures an image (decompressing it), checks its bmap and, with `compareWith`, whether the
 * device already holds it at `offset`. Refuses images larger than `capacity`.
 */
export async function inspectImage(
  spec: ImageSpec,
  opts: IoOptions & { capacity?: number; compareWith?: { dev: BlockDevice; offset: number } } = {},
): Promise<ImageInfo> {
  const format = await sniff(spec.path);
  let bmap: Bmap | undefined;
  if (spec.bmapPath) {
    let xml: string;
    try {
      xml = await readFile(spec.bmapPath, 'utf8');
    } catch (e) {
      throw new UsageError(`bmap ${spec.bmapPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    bmap = parseBmap(xml, `bmap ${spec.bmapPath}`);
  }
  const cap = opts.capacity ?? Number.MAX_SAFE_INTEGER;
  let identical = opts.compareWith !== undefined;
  const cmp = opts.compareWith;
  const size = await walkImage(
    spec.path,
    format,
    bmap,
    async (off, bytes) => {
      if (off + bytes.length > cap) throw new BadInputError(`image ${spec.path} is larger than its partition (${cap} bytes, ${formatBytes(cap)})`);
      if (identical && cmp) {
        const have = await readRange(cmp.dev, cmp.offset + off, bytes.length, opts);
        if (Buffer.compare(have, bytes) !== 0) identical = false;
      }
    },
    opts,
  );
  const info: ImageInfo = { path: spec.path, format, size, dataBytes: bmap ? bmap.mappedBytes : size };
  if (bmap) info.bmap = bmap;
  if (cmp) info.identical = identical;
  return info;
}

export interface ImageWriteProgress {
  written: number;
  total: number;
}

/** Writes the image (its mapped blocks with a bmap) at `offset` of `dev` and flushes. */
export async function writeImage(
  dev: BlockDevice,
  offset: number,
  spec: ImageSpec,
  info: ImageInfo,
  opts: IoOptions & { capacity: number; onProgress?: (p: ImageWriteProgress) => void },
): Promise<number> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected`);
  let written = 0;
  await walkImage(
    spec.path,
    info.format,
    info.bmap,
    async (off, bytes) => {
      if (off + bytes.length > opts.capacity) throw new BadInputError(`image ${spec.path} grew past its partition while writing (${opts.capacity} bytes)`);
      await writeRange(dev, offset + off, bytes, opts);
      written += bytes.length;
      opts.onProgress?.({ written, total: info.dataBytes });
    },
    opts,
  );
  await dev.flush(opts);
  return written;
}
