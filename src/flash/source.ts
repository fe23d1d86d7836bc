/**
 * An image to flash: a raw or compressed file, its detected format, what is known of its
 * decompressed size, and an optional bmap. `extents()` yields the bytes to write as
 * (offset, data) pieces: the whole image in order, or — with a bmap — only the mapped ranges:
 * read directly from an uncompressed file without touching the holes; cut out of a compressed
 * one by the decoder's worker thread, which drops the holes before they are copied or sent
 * (and does not decode zstd frames that lie wholly in them). The decoded length is then
 * checked against the bmap's image size.
 */
import { open, realpath, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { SourceError } from './errors.js';
import { formatFromName, sizeInfo, sniffSource, SNIFF_BYTES, type ImageFormat, type SizeInfo, type SourceFormat } from './detect.js';
import { readSparseMap, sparseExtents, sparseMapAsBmap } from './android-sparse.js';
import { decoderName, decompressFile } from './decompress.js';
import { decodedExtentsOffThread } from './decode-off-thread.js';
import { findBmapFor, loadBmap, rangeBytes, type Bmap } from './bmap.js';
import { UsageError } from '../errors.js';

export interface ImageSourceOptions {
  /**
   * bmap to use: a path, `false` for none, or undefined to look for IMAGE.bmap (and the name
   * without compression suffixes) next to the image.
   */
  bmap?: string | false;
}

export interface Extent {
  /** Image byte offset of `data[0]`. */
  offset: number;
  data: Uint8Array;
  /** `data` is the consumer's to keep: nothing else holds or reuses its memory (it may be passed on without a copy). */
  owned?: boolean;
}

export interface ExtentOptions {
  signal?: AbortSignal;
  /** Compressed (file) bytes consumed so far. */
  onInput?: (bytes: number) => void;
  /** Largest piece to yield (default 1 MiB). */
  chunkSize?: number;
  /** Told when a part of the image carries no integrity check the decoder can verify. */
  onWarning?: (message: string) => void;
}

export interface ImageSource {
  path: string;
  /** Resolved path (for identity checks against the destination). */
  realPath: string;
  format: SourceFormat;
  /** Format the file name suggests, when it differs from the content. */
  nameSuggests?: ImageFormat;
  /** Size of the file on disk. */
  fileSize: number;
  fileMtimeMs: number;
  /** What the container says about the decompressed size. */
  size: SizeInfo;
  bmap?: Bmap;
  /** True when `extents()` yields only the mapped ranges (any image with a bmap, Android sparse images). */
  sparseRead: boolean;
  extents(opts?: ExtentOptions): AsyncIterable<Extent>;
  /** Random access to the image bytes (raw images only), used to name exact mismatching bytes. */
  readAt?(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

async function readHead(fh: FileHandle): Promise<Uint8Array> {
  const buf = new Uint8Array(SNIFF_BYTES);
  const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
  return buf.subarray(0, bytesRead);
}

async function openImageFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`image ${path}: no such file`);
    if (code === 'EISDIR') throw new UsageError(`image ${path} is a directory`);
    throw new SourceError(`cannot open image ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The format the content shows, and the one the name suggests (if any). */
async function detectFormat(fh: FileHandle, path: string): Promise<{ format: SourceFormat; named: ImageFormat | undefined }> {
  const format = sniffSource(await readHead(fh), path);
  const named = formatFromName(path);
  if (format === 'raw' && named !== undefined) {
    // A damaged compressed file would otherwise be written out as it is, and read back equal.
    throw new SourceError(
      `${path}: the name says ${named} but the content does not start like any compressed format: a damaged or truncated ${named} file is never flashed as raw data (rename the file if it really is a raw image)`,
    );
  }
  return { format, named };
}

/** The bmap asked for (or found next to the image), checked against the image size when that is known. */
async function matchingBmap(path: string, opts: ImageSourceOptions, format: ImageFormat, size: SizeInfo): Promise<Bmap | undefined> {
  if (opts.bmap === false) return undefined;
  const bmapPath = opts.bmap ?? (await findBmapFor(path));
  if (bmapPath === undefined) return undefined;
  const bmap = await loadBmap(bmapPath);
  if (size.exact !== undefined && size.exact !== bmap.imageSize) {
    throw new SourceError(
      `bmap ${bmap.path} describes a ${bmap.imageSize}-byte image but ${path} is ${size.exact} bytes${format === 'raw' ? '' : ' decompressed'}: wrong bmap for this image?`,
    );
  }
  return bmap;
}

/** Fills `buf` from the raw image at `pos`; the bmap maps bytes up to `end`. */
async function readMapped(fh: FileHandle, path: string, buf: Uint8Array, pos: number, end: number): Promise<void> {
  for (let got = 0; got < buf.length;) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, got, buf.length - got, pos + got));
    } catch (e) {
      throw new SourceError(`cannot read ${path} at offset ${pos + got}: ${(e as Error).message}`, { cause: e });
    }
    if (n === 0) throw new SourceError(`${path} is truncated: it ends at ${pos + got} but the bmap maps bytes up to ${end}`);
    got += n;
  }
}

/** The mapped ranges of a raw image, read directly (the holes are never touched), in chunk-aligned pieces. */
async function* mappedExtents(fh: FileHandle, path: string, bmap: Bmap, eo: ExtentOptions): AsyncGenerator<Extent> {
  const chunk = eo.chunkSize ?? 1024 * 1024;
  let consumed = 0;
  for (const r of bmap.ranges) {
    const { start, end } = rangeBytes(bmap, r);
    for (let pos = start; pos < end;) {
      eo.signal?.throwIfAborted();
      const want = Math.min(chunk - (pos % chunk), end - pos);
      const buf = new Uint8Array(want);
      await readMapped(fh, path, buf, pos, end);
      consumed += want;
      eo.onInput?.(consumed);
      yield { offset: pos, data: buf };
      pos += want;
    }
  }
}

/** The whole image, decompressed (on a worker thread), in order. */
async function* decodedExtents(path: string, format: ImageFormat, eo: ExtentOptions): AsyncGenerator<Extent> {
  const opts = { signal: eo.signal, onInput: eo.onInput, onWarning: eo.onWarning };
  if (format === 'raw') {
    let offset = 0;
    // Every piece of a raw file is a buffer of its own (fs read streams allocate one per read): no copy needed.
    for await (const data of decompressFile(path, format, opts)) {
      yield { offset, data, owned: true };
      offset += data.length;
    }
    return;
  }
  for await (const e of decodedExtentsOffThread(path, format, { ...opts, chunkSize: eo.chunkSize })) yield { ...e, owned: true };
}

/** Throws when the decoded image is not as long as the bmap says. */
function checkBmapLength(path: string, bmap: Bmap, decoded: number): void {
  if (decoded < bmap.imageSize) {
    throw new SourceError(`${path} is truncated: it holds ${decoded} bytes but the bmap describes ${bmap.imageSize}`);
  }
  if (decoded > bmap.imageSize) {
    throw new SourceError(`${path} holds ${decoded} bytes, more than the ${bmap.imageSize} its bmap ${bmap.path} describes: wrong bmap for this image?`);
  }
}

/** The mapped ranges of a compressed image: decoded on a worker thread, which drops the holes. */
async function* mappedDecodedExtents(path: string, format: ImageFormat, bmap: Bmap, eo: ExtentOptions): AsyncGenerator<Extent> {
  const mapped = bmap.ranges.flatMap((r) => {
    const { start, end } = rangeBytes(bmap, r);
    return [start, end];
  });
  const it = decodedExtentsOffThread(path, format, { signal: eo.signal, onInput: eo.onInput, onWarning: eo.onWarning, chunkSize: eo.chunkSize, mapped });
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) return checkBmapLength(path, bmap, r.value);
      yield { ...r.value, owned: true };
    }
  } finally {
    // stopped early (a failure downstream): the worker goes too
    await it.return(0);
  }
}

/** Random access to a raw image's bytes (short at the end of the file). */
function rawReader(fh: FileHandle): (offset: number, length: number) => Promise<Uint8Array> {
  return async (offset: number, length: number) => {
    const buf = new Uint8Array(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  };
}

export async function openImageSource(path: string, opts: ImageSourceOptions = {}): Promise<ImageSource> {
  const fh = await openImageFile(path);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UsageError(`image ${path} is not a regular file`);
    if (st.size === 0) throw new SourceError(`image ${path} is empty`);
    const { format, named } = await detectFormat(fh, path);
    if (format === 'android-sparse') return await openAndroidSparse(fh, path, st, opts);
    const size = await sizeInfo(fh, format, st.size, path);
    const bmap = await matchingBmap(path, opts, format, size);
    const sparseRead = !!bmap;
    const realPath = await realpath(path);
    const extents = (eo: ExtentOptions = {}): AsyncIterable<Extent> => {
      if (!bmap) return decodedExtents(path, format, eo);
      return format === 'raw' ? mappedExtents(fh, path, bmap, eo) : mappedDecodedExtents(path, format, bmap, eo);
    };
    return {
      path,
      realPath,
      format,
      ...(named !== undefined && named !== format ? { nameSuggests: named } : {}),
      fileSize: st.size,
      fileMtimeMs: st.mtimeMs,
      size,
      ...(bmap ? { bmap } : {}),
      sparseRead,
      extents,
      ...(format === 'raw' ? { readAt: rawReader(fh) } : {}),
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/**
 * An Android sparse image: its chunk map is the bmap (DONT_CARE chunks are holes, never written),
 * its RAW and FILL chunks are read directly and its CRC32 chunks checked on the way.
 */
async function openAndroidSparse(fh: FileHandle, path: string, st: { size: number; mtimeMs: number }, opts: ImageSourceOptions): Promise<ImageSource> {
  if (typeof opts.bmap === 'string') throw new UsageError(`${path} is an Android sparse image, which carries its own block map; it takes no --bmap`);
  const map = await readSparseMap(fh, path, st.size);
  const bmap = sparseMapAsBmap(map, path);
  return {
    path,
    realPath: await realpath(path),
    format: 'android-sparse',
    fileSize: st.size,
    fileMtimeMs: st.mtimeMs,
    size: { exact: map.imageSize },
    bmap,
    sparseRead: true,
    extents: (eo: ExtentOptions = {}) => sparseExtents(fh, path, map, eo),
    close: () => fh.close(),
  };
}

/** How the image's bytes are produced, for reports: the decoder, or a direct read of the mapped ranges. */
export function sourceDecoder(src: Pick<ImageSource, 'format' | 'sparseRead'>): string {
  if (src.format === 'android-sparse') return 'Android sparse chunks read directly';
  return src.sparseRead && src.format === 'raw' ? 'bmap ranges read directly' : decoderName(src.format);
}

/** Bytes the destination must hold: the bmap's image size, else the exact or least known size. */
export function requiredSize(src: Pick<ImageSource, 'bmap' | 'size'>): { bytes: number; exact: boolean } | undefined {
  if (src.bmap) return { bytes: src.bmap.imageSize, exact: true };
  if (src.size.exact !== undefined) return { bytes: src.size.exact, exact: true };
  if (src.size.atLeast !== undefined) return { bytes: src.size.atLeast, exact: false };
  return undefined;
}

/** Same file (by device and inode) — refuses flashing an image onto itself. */
export async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a, { bigint: true }), stat(b, { bigint: true })]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}
