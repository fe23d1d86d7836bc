/**
 * The bytes of a zip archive's image entry, streamed from its local file header (APPNOTE
 * 4.3.7): stored data passed through, deflated data inflated by node:zlib (inflateRaw), in
 * bounded pieces whatever the image size. On the way the CRC-32 and size of the output are
 * computed, and at the end they — and the compressed size the deflate stream really took —
 * must equal what the central directory records, and what the data descriptor after the data
 * (general purpose bit 3; 32- or 64-bit sizes, with or without its signature) or the local
 * header records. Any difference is a SourceError naming the field: a zip is never flashed
 * short or unchecked.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { readAt, u16le as u16, u32le as u32, u64le as u64 } from '../util/file-read.js';
import { SourceError } from './errors.js';
import { viaTransform } from './transform-pump.js';
import { zipImageEntry, type ZipEntry } from './zip-directory.js';

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;

const hex = (n: number) => n.toString(16).padStart(8, '0');

export interface ZipStreamOptions {
  signal?: AbortSignal;
  /** Archive bytes consumed so far (the position in the file, so progress ends at its size). */
  onInput?: (bytes: number) => void;
  /** Compressed bytes read per step. */
  chunkSize?: number;
}

/** What the local header says, where the entry's data starts, and whether it has a ZIP64 extra field. */
interface LocalHeader {
  dataStart: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  zip64: boolean;
}

async function readExactly(path: string, pos: number, len: number, what: string): Promise<Uint8Array> {
  const buf = await readUpTo(path, pos, len);
  if (buf.length < len) throw new SourceError(`${path}: the zip ends inside the ${what} at offset ${pos}: a truncated zip`);
  return buf;
}

async function readLocalHeader(path: string, e: ZipEntry): Promise<LocalHeader> {
  const h = await readExactly(path, e.localOffset, 30, `local header of "${e.name}"`);
  if (u32(h, 0) !== SIG_LOCAL) throw new SourceError(`${path}: no local file header at offset ${e.localOffset}, where the central directory puts "${e.name}": a damaged zip`);
  const flags = u16(h, 6);
  const method = u16(h, 8);
  const nameLen = u16(h, 26);
  const extraLen = u16(h, 28);
  if (method !== e.method) throw new SourceError(`${path}: "${e.name}": the local header says method ${method}, the central directory ${e.method}: a damaged zip`);
  if ((flags & 0x08) !== (e.flags & 0x08))
    throw new SourceError(`${path}: "${e.name}": the local header and the central directory disagree on the data descriptor flag: a damaged zip`);
  const rest = await readExactly(path, e.localOffset + 30, nameLen + extraLen, `local header of "${e.name}"`);
  const lh: LocalHeader = { dataStart: e.localOffset + 30 + nameLen + extraLen, flags, crc32: u32(h, 14), compressedSize: u32(h, 18), size: u32(h, 22), zip64: false };
  const extra = rest.subarray(nameLen);
  for (let o = 0; o + 4 <= extra.length;) {
    const id = u16(extra, o);
    const len = u16(extra, o + 2);
    if (id === 0x0001) {
      lh.zip64 = true;
      // in a local header the ZIP64 field holds both sizes (APPNOTE 4.5.3), when either is all ones
      if (len >= 16 && (lh.size === 0xffffffff || lh.compressedSize === 0xffffffff)) {
        lh.size = u64(extra, o + 4);
        lh.compressedSize = u64(extra, o + 12);
      }
    }
    o += 4 + len;
  }
  return lh;
}

/** The compressed bytes of the entry, exactly `compressedSize` of them, or a SourceError when the file ends first. */
async function* entryInput(path: string, start: number, length: number, o: ZipStreamOptions): AsyncGenerator<Uint8Array> {
  if (length === 0) return;
  const rs = createReadStream(path, { start, end: start + length - 1, highWaterMark: o.chunkSize ?? 1024 * 1024, signal: o.signal });
  let n = 0;
  for await (const c of rs as AsyncIterable<Buffer>) {
    n += c.length;
    o.onInput?.(start + n);
    yield new Uint8Array(c.buffer, c.byteOffset, c.length);
  }
  if (n < length) throw new SourceError(`${path}: the zip ends ${length - n} bytes into its image data (${n} of ${length} compressed bytes present): a truncated zip`);
}

/** Up to `len` bytes at `pos` (fewer at the end of the file). */
async function readUpTo(path: string, pos: number, len: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    return await readAt(fh, pos, len);
  } finally {
    await fh.close();
  }
}

/**
 * Checks the data descriptor after the data (APPNOTE 4.3.9): CRC-32, then the compressed and
 * uncompressed sizes, 4 bytes each or 8 in a ZIP64 entry, after an optional signature. Every
 * layout is tried, so a CRC that happens to equal the signature is no problem; the descriptor
 * must match the computed values in one of them.
 */
async function checkDescriptor(path: string, e: ZipEntry, lh: LocalHeader, at: number, crc: number, size: number): Promise<void> {
  const b = await readUpTo(path, at, 24);
  const wide = lh.zip64 || e.zip64;
  const layouts = [
    { sig: u32(b, 0) === SIG_DESCRIPTOR, wide },
    { sig: u32(b, 0) === SIG_DESCRIPTOR, wide: !wide },
    { sig: u32(b, 0) !== SIG_DESCRIPTOR, wide },
    { sig: u32(b, 0) !== SIG_DESCRIPTOR, wide: !wide },
  ];
  const read = (l: { sig: boolean; wide: boolean }) => {
    const o = l.sig ? 4 : 0;
    if (b.length < o + (l.wide ? 20 : 12)) return undefined;
    return { crc: u32(b, o), compressed: l.wide ? u64(b, o + 4) : u32(b, o + 4), size: l.wide ? u64(b, o + 12) : u32(b, o + 8) };
  };
  if (
    layouts.some((l) => {
      const d = read(l);
      return d !== undefined && d.crc === crc && d.compressed === e.compressedSize && d.size === size;
    })
  )
    return;
  const d = read(layouts[0]) ?? read(layouts[2]);
  if (d === undefined) throw new SourceError(`${path}: the zip ends inside the data descriptor of "${e.name}" at offset ${at}: a truncated zip`);
  if (d.crc !== crc) throw new SourceError(`${path}: "${e.name}": CRC-32 mismatch: the data gives ${hex(crc)}, the data descriptor records ${hex(d.crc)} (corrupt data)`);
  throw new SourceError(
    `${path}: "${e.name}": the data descriptor records ${d.compressed} compressed / ${d.size} bytes, the central directory ${e.compressedSize} / ${e.size}: a damaged zip`,
  );
}

/**
 * The decompressed bytes of `entry`, checked against the zip's records as described above.
 * Errors are SourceErrors (or the abort reason).
 */
export async function* zipEntryBytes(path: string, entry: ZipEntry, o: ZipStreamOptions = {}): AsyncGenerator<Uint8Array> {
  const lh = await readLocalHeader(path, entry);
  const input = entryInput(path, lh.dataStart, entry.compressedSize, o);
  let inflate: zlib.InflateRaw | undefined;
  let data: AsyncIterable<Uint8Array>;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size)
      throw new SourceError(`${path}: "${entry.name}" is stored uncompressed but records ${entry.compressedSize} compressed and ${entry.size} uncompressed bytes: a damaged zip`);
    data = input;
  } else {
    inflate = zlib.createInflateRaw({ chunkSize: 256 * 1024 });
    data = viaTransform(input, inflate, o.signal);
  }
  let crc = 0;
  let size = 0;
  try {
    for await (const c of data) {
      crc = zlib.crc32(c, crc);
      size += c.length;
      if (size > entry.size) throw new SourceError(`${path}: "${entry.name}" inflates to more than the ${entry.size} bytes the central directory records: a damaged zip`);
      yield c;
    }
  } catch (err) {
    if (err instanceof SourceError || (err as Error)?.name === 'AbortError') throw err;
    const msg = (err as Error)?.message ?? String(err);
    const what = /unexpected end of file/i.test(msg) ? 'the deflate data ends before its last block (truncated or corrupt)' : `corrupt deflate data (${msg})`;
    throw new SourceError(`${path}: "${entry.name}": zip decompression failed after ${size} bytes of output: ${what}`, { cause: err });
  }
  if (inflate && inflate.bytesWritten !== entry.compressedSize) {
    throw new SourceError(
      `${path}: "${entry.name}": the deflate data ends after ${inflate.bytesWritten} of the ${entry.compressedSize} compressed bytes the central directory records: a damaged zip`,
    );
  }
  if (size !== entry.size) throw new SourceError(`${path}: "${entry.name}" decompressed to ${size} bytes but the zip records ${entry.size}: a truncated or damaged zip`);
  if (crc !== entry.crc32)
    throw new SourceError(`${path}: "${entry.name}": CRC-32 mismatch: the data gives ${hex(crc)}, the central directory records ${hex(entry.crc32)} (corrupt data)`);
  if (lh.flags & 0x08) {
    await checkDescriptor(path, entry, lh, lh.dataStart + entry.compressedSize, crc, size);
  } else if (lh.crc32 !== crc || lh.size !== size || lh.compressedSize !== entry.compressedSize) {
    throw new SourceError(
      `${path}: "${entry.name}": the local header records CRC-32 ${hex(lh.crc32)}, ${lh.compressedSize} compressed / ${lh.size} bytes, the data and central directory ${hex(crc)}, ${entry.compressedSize} / ${size}: a damaged zip`,
    );
  }
}

/** The bytes of the one image in the zip at `path` (directory read and checked first: zip-directory.ts). */
export async function* zipImageBytes(path: string, o: ZipStreamOptions = {}): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r');
  let entry: ZipEntry;
  try {
    entry = await zipImageEntry(fh, (await fh.stat()).size, path);
  } finally {
    await fh.close();
  }
  yield* zipEntryBytes(path, entry, o);
}
