/**
 * Image format detection from content (the name is only a hint) and, where the container
 * records it, the decompressed size — so a card that is too small is refused before anything
 * is written.
 */
import type { FileHandle } from 'node:fs/promises';
import { readAt as pread, u32le } from '../util/file-read.js';
import { SourceError } from './errors.js';
import { zipImageEntry } from './zip-directory.js';

/** `zip`: an archive holding one image, stored or deflated (zip-directory.ts, zip-entry-stream.ts). */
export type ImageFormat = 'raw' | 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'zip';
/** Containers read by their own modules rather than decompressed as a stream: Android sparse images (android-sparse.ts). */
export type ContainerFormat = 'android-sparse';
/** What a file to flash is: a (possibly compressed) image or a container holding one. */
export type SourceFormat = ImageFormat | ContainerFormat;

/** How much the header sniffer wants to see. */
export const SNIFF_BYTES = 512;

function startsWith(b: Uint8Array, sig: number[], at = 0): boolean {
  if (b.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[at + i] !== sig[i]) return false;
  return true;
}

/** Containers we recognise but do not flash; the message says what to do instead. */
const UNSUPPORTED: { sig: number[]; what: string }[] = [
  { sig: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], what: 'a 7-Zip archive; extract it and flash the image inside' },
  { sig: [0x04, 0x22, 0x4d, 0x18], what: 'lz4-compressed; decompress it first (lz4 -d) or recompress as .zst' },
  { sig: [0x51, 0x46, 0x49, 0xfb], what: 'a qcow2 disk image; convert it with "qemu-img convert -O raw" first' },
];

/** Magic of an Android sparse image (0xed26ff3a, little-endian). */
const ANDROID_SPARSE = [0x3a, 0xff, 0x26, 0xed];

/** `head` is the whole file and a proper prefix of `sig`: a compressed file cut short. */
function cutShort(head: Uint8Array, sig: number[]): boolean {
  return head.length > 0 && head.length < sig.length && head.every((b, i) => b === sig[i]);
}

/**
 * Format from the first bytes of the file (all of them when the file is shorter than
 * SNIFF_BYTES). Throws SourceError for known-but-unsupported containers.
 *
 * A file whose first bytes are a compression format's magic is that format, whatever follows:
 * a damaged or truncated compressed file must fail in its decoder, never be flashed as raw
 * data. So bzip2 is "BZh" and a block-size digit (the block or end-of-stream magic after it is
 * the decoder's to check), and a file cut inside a magic (shorter than it) is that format too.
 */
export function sniffFormat(head: Uint8Array, name = 'image'): ImageFormat {
  const GZIP = [0x1f, 0x8b];
  const XZ = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
  const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];
  const BZIP2 = [0x42, 0x5a, 0x68];
  // a local file header first, or the end record alone (an empty archive: the decoder says it holds no image)
  const ZIP = [0x50, 0x4b, 0x03, 0x04];
  const ZIP_EMPTY = [0x50, 0x4b, 0x05, 0x06];
  if (startsWith(head, GZIP) || cutShort(head, GZIP)) return 'gzip';
  if (startsWith(head, XZ) || cutShort(head, XZ)) return 'xz';
  if (startsWith(head, ZSTD) || cutShort(head, ZSTD)) return 'zstd';
  // Skippable zstd frame first (magic 0x184D2A50..5F), as pzstd writes.
  if (head.length >= 4 && (head[0] & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  if ((startsWith(head, BZIP2) && (head.length === 3 || (head[3] >= 0x31 && head[3] <= 0x39))) || cutShort(head, BZIP2)) return 'bzip2';
  if (startsWith(head, ZIP) || startsWith(head, ZIP_EMPTY) || cutShort(head, ZIP)) return 'zip';
  for (const u of UNSUPPORTED) {
    if (startsWith(head, u.sig)) throw new SourceError(`${name} is ${u.what}`);
  }
  const text = new TextDecoder('latin1').decode(head.subarray(0, 256));
  if (/^\s*<\?xml[^>]*>\s*(<!--[\s\S]*?-->\s*)*<bmap[\s>]/.test(text)) {
    throw new SourceError(`${name} is a bmap file, not an image; pass the image and give the bmap with --bmap`);
  }
  return 'raw';
}

/** What a file to flash is: a container crashcart reads itself (Android sparse), else its `sniffFormat`. */
export function sniffSource(head: Uint8Array, name = 'image'): SourceFormat {
  if (startsWith(head, ANDROID_SPARSE)) return 'android-sparse';
  return sniffFormat(head, name);
}

/** Format suggested by the file name, if any. */
export function formatFromName(path: string): ImageFormat | undefined {
  const p = path.toLowerCase();
  if (p.endsWith('.gz') || p.endsWith('.gzip')) return 'gzip';
  if (p.endsWith('.xz')) return 'xz';
  if (p.endsWith('.zst') || p.endsWith('.zstd')) return 'zstd';
  if (p.endsWith('.bz2')) return 'bzip2';
  if (p.endsWith('.zip')) return 'zip';
  return undefined;
}

/** What the container says about the decompressed size. */
export interface SizeInfo {
  /** Exact decompressed size, when the container records it for every part. */
  exact?: number;
  /**
   * A lower bound: the ISIZE in a gzip file's last 4 bytes (size modulo 2^32), when it is
   * plausible for the file (see gzipTrailerSize); it is only a claim until the data is decoded.
   */
  atLeast?: number;
}

/** Reads an xz variable-length integer; returns [value, next offset] or undefined. */
function vli(b: Uint8Array, o: number): [number, number] | undefined {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 9; i++) {
    if (o + i >= b.length) return undefined;
    const byte = b[o + i];
    v += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return [v, o + i + 1];
  }
  return undefined;
}

/** Sums the uncompressed sizes in the index of every stream, walking back from the end of the file. */
export async function xzUncompressedSize(fh: FileHandle, fileSize: number): Promise<number | undefined> {
  let end = fileSize;
  let total = 0;
  let streams = 0;
  while (end > 0) {
    // Stream padding: zero bytes in groups of four.
    while (end >= 4) {
      const pad = await pread(fh, end - 4, 4);
      if (pad[0] || pad[1] || pad[2] || pad[3]) break;
      end -= 4;
    }
    if (end < 24) return undefined;
    const footer = await pread(fh, end - 12, 12);
    if (footer[10] !== 0x59 || footer[11] !== 0x5a) return undefined;
    const indexSize = (u32le(footer, 4) + 1) * 4;
    const indexStart = end - 12 - indexSize;
    if (indexStart < 12 || indexSize > 64 * 1024 * 1024) return undefined;
    const index = await pread(fh, indexStart, indexSize);
    if (index[0] !== 0x00) return undefined;
    let r = vli(index, 1);
    if (!r) return undefined;
    const [records] = r;
    let o = r[1];
    let blocks = 0;
    for (let i = 0; i < records; i++) {
      const unpadded = vli(index, o);
      if (!unpadded) return undefined;
      const uncompressed = vli(index, unpadded[1]);
      if (!uncompressed) return undefined;
      blocks += Math.ceil(unpadded[0] / 4) * 4;
      total += uncompressed[0];
      o = uncompressed[1];
    }
    const streamStart = indexStart - blocks - 12;
    if (streamStart < 0) return undefined;
    const header = await pread(fh, streamStart, 6);
    if (!startsWith(header, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return undefined;
    end = streamStart;
    if (++streams > 100000) return undefined;
  }
  return total;
}

/**
 * Walks zstd frames and their block headers (3 bytes each) to sum the frame content sizes.
 * Undefined when a frame does not record its size or the structure does not add up.
 */
export async function zstdUncompressedSize(fh: FileHandle, fileSize: number): Promise<number | undefined> {
  const WINDOW = 256 * 1024;
  let winPos = -1;
  let win: Uint8Array = new Uint8Array(0);
  const bytes = async (pos: number, len: number): Promise<Uint8Array | undefined> => {
    if (pos + len > fileSize) return undefined;
    if (winPos < 0 || pos < winPos || pos + len > winPos + win.length) {
      winPos = pos;
      win = await pread(fh, pos, Math.min(WINDOW, fileSize - pos));
    }
    return win.subarray(pos - winPos, pos - winPos + len);
  };
  let pos = 0;
  let total = 0;
  let steps = 0;
  while (pos < fileSize) {
    const m = await bytes(pos, 4);
    if (!m) return undefined;
    const magic = u32le(m, 0);
    if (magic >= 0x184d2a50 && magic <= 0x184d2a5f) {
      const s = await bytes(pos + 4, 4);
      if (!s) return undefined;
      pos += 8 + u32le(s, 0);
      continue;
    }
    if (magic !== 0xfd2fb528) return undefined;
    const d = await bytes(pos + 4, 1);
    if (!d) return undefined;
    const fhd = d[0];
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const dictSize = [0, 1, 2, 4][fhd & 3];
    const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][fcsFlag];
    if (fcsSize === 0) return undefined;
    const fcsAt = pos + 5 + (single ? 0 : 1) + dictSize;
    const f = await bytes(fcsAt, fcsSize);
    if (!f) return undefined;
    let fcs: number;
    if (fcsSize === 1) fcs = f[0];
    else if (fcsSize === 2) fcs = (f[0] | (f[1] << 8)) + 256;
    else if (fcsSize === 4) fcs = u32le(f, 0);
    else fcs = u32le(f, 0) + u32le(f, 4) * 0x100000000;
    total += fcs;
    pos = fcsAt + fcsSize;
    for (;;) {
      const h = await bytes(pos, 3);
      if (!h) return undefined;
      const hdr = h[0] | (h[1] << 8) | (h[2] << 16);
      const last = hdr & 1;
      const type = (hdr >> 1) & 3;
      const size = hdr >>> 3;
      if (type === 3) return undefined;
      pos += 3 + (type === 1 ? 1 : size);
      if (++steps > 20_000_000) return undefined;
      if (last) break;
    }
    if (checksum) pos += 4;
  }
  return pos === fileSize ? total : undefined;
}

/** Length of the gzip member header at the start of `b`, or undefined when it is not a valid header or does not fit in `b`. */
function gzipHeaderLength(b: Uint8Array): number | undefined {
  if (b.length < 10 || b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8 || (b[3] & 0xe0) !== 0) return undefined;
  const flg = b[3];
  let o = 10;
  if (flg & 4) {
    if (o + 2 > b.length) return undefined;
    o += 2 + (b[o] | (b[o + 1] << 8));
  }
  for (const bit of [8, 16]) {
    if (flg & bit) {
      while (o < b.length && b[o] !== 0) o++;
      if (o >= b.length) return undefined;
      o++;
    }
  }
  if (flg & 2) o += 2;
  return o <= b.length ? o : undefined;
}

/**
 * The size a gzip file's trailer claims, when the claim is consistent with the file: the
 * ISIZE field (last 4 bytes) is the size of the last member only, modulo 2^32, and in a
 * truncated or damaged file it is whatever bytes happen to be there. It is taken only when it
 * fits a single member of this compressed size: deflate expands data by a fraction of a
 * percent at worst and compresses it at most ~1032:1, so the original is between
 * (compressed - 64) / 1.15 and 1040 × compressed bytes (generous margins). Otherwise the size
 * is unknown: never refuse a card, or size-check, on a value that cannot be right.
 */
export function gzipTrailerSize(head: Uint8Array, tail: Uint8Array, fileSize: number): number | undefined {
  const hdr = gzipHeaderLength(head);
  if (hdr === undefined || tail.length < 4 || fileSize < hdr + 2 + 8) return undefined;
  const isize = u32le(tail, tail.length - 4);
  const deflated = fileSize - hdr - 8;
  const lower = (deflated - 64) / 1.15;
  const upper = 1040 * (deflated + 1);
  return isize >= lower && isize <= upper ? isize : undefined;
}

export async function sizeInfo(fh: FileHandle, format: ImageFormat, fileSize: number, name = 'image'): Promise<SizeInfo> {
  switch (format) {
    case 'raw':
      return { exact: fileSize };
    case 'gzip': {
      if (fileSize < 18) return {};
      const n = gzipTrailerSize(await pread(fh, 0, Math.min(fileSize, 64 * 1024)), await pread(fh, fileSize - 4, 4), fileSize);
      return n === undefined ? {} : { atLeast: n };
    }
    case 'xz': {
      const n = await xzUncompressedSize(fh, fileSize);
      return n === undefined ? {} : { exact: n };
    }
    case 'zstd': {
      const n = await zstdUncompressedSize(fh, fileSize);
      return n === undefined ? {} : { exact: n };
    }
    case 'bzip2':
      return {};
    case 'zip':
      // the central directory records the size; a zip that cannot be read is refused here, before anything is written
      return { exact: (await zipImageEntry(fh, fileSize, name)).size };
  }
}
