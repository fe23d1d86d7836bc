/**
 * A zip archive's central directory (PKWARE APPNOTE 6.3.10, sections 4.3.12–4.3.16, with the
 * ZIP64 end records and extra field), read from the end of the file, and the choice of the one
 * image in it: directories and macOS resource forks (`__MACOSX/`) are ignored, anything else
 * must be a single regular file, stored (method 0) or deflated (method 8), not encrypted.
 *
 * The directory is read before anything is streamed, so an archive cut short (its end record
 * is at the very end) or damaged is refused before a byte is written, and the image's size and
 * CRC-32 are known up front (the card size check, progress, and the check at the end of the
 * stream: zip-entry-stream.ts).
 */
import type { FileHandle } from 'node:fs/promises';
import { readAt as pread, u16le as u16, u32le as u32 } from '../util/file-read.js';
import { formatBytes } from '../util/format-bytes.js';
import { ZIP_DIRECTORY_MAX_BYTES, formatLimit } from '../input-limits.js';
import { SourceError } from './errors.js';

/** A zip entry crashcart cannot decode: encrypted, or compressed with a method other than stored and deflate. */
export class UnsupportedZipError extends SourceError {
  /** The entry's compression method number (APPNOTE 4.4.5). */
  readonly method: number;
  readonly encrypted: boolean;
  constructor(message: string, method: number, encrypted: boolean) {
    super(message);
    this.method = method;
    this.encrypted = encrypted;
  }
}

/** Compression method names (APPNOTE 4.4.5), for messages. */
const METHODS: Record<number, string> = {
  0: 'stored',
  1: 'shrunk',
  6: 'imploded',
  8: 'deflate',
  9: 'Deflate64 (what Windows Explorer uses for large files)',
  12: 'bzip2',
  14: 'LZMA',
  93: 'Zstandard',
  95: 'xz',
  98: 'PPMd',
  99: 'WinZip AES encryption',
};

export function zipMethodName(method: number): string {
  return `${METHODS[method] ?? 'unknown'} (method ${method})`;
}

export interface ZipEntry {
  name: string;
  /** General purpose bit flags (bit 0: encrypted, bit 3: data descriptor, bit 11: UTF-8 name). */
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local file header. */
  localOffset: number;
  /** The central directory entry carried a ZIP64 extra field. */
  zip64: boolean;
  /** Unix file type bits of the external attributes, when the archive was made on Unix. */
  unixMode?: number;
  /** MS-DOS directory attribute. */
  dosDirectory: boolean;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  /** Start of the central directory: the entries' data ends here. */
  directoryOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const EOCD_BYTES = 22;
const MAX_COMMENT = 0xffff;

/** A 64-bit field, which must fit a JavaScript number exactly (2^53: 8 PiB). */
function u64(b: Uint8Array, o: number, path: string, what: string): number {
  const v = u32(b, o) + u32(b, o + 4) * 0x100000000;
  if (!Number.isSafeInteger(v)) throw new SourceError(`${path}: the zip's ${what} (${v}) is beyond any real file: a damaged zip`);
  return v;
}

/** The end-of-central-directory record: the last one whose comment runs exactly to the end of the file. */
async function findEndRecord(fh: FileHandle, fileSize: number, path: string): Promise<{ at: number; rec: Uint8Array }> {
  const tailStart = Math.max(0, fileSize - EOCD_BYTES - MAX_COMMENT);
  const tail = await pread(fh, tailStart, fileSize - tailStart);
  for (let i = tail.length - EOCD_BYTES; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD && i + EOCD_BYTES + u16(tail, i + 20) === tail.length) return { at: tailStart + i, rec: tail.subarray(i, i + EOCD_BYTES) };
  }
  throw new SourceError(
    `${path}: no zip end-of-central-directory record at the end of the file: the zip is truncated (an interrupted download or copy) or damaged; nothing was written`,
  );
}

/** Where the central directory is and how many entries it has, from the end record (and its ZIP64 record when there is one). */
async function locateDirectory(fh: FileHandle, fileSize: number, path: string): Promise<{ offset: number; size: number; count: number; end: number }> {
  const { at, rec } = await findEndRecord(fh, fileSize, path);
  if (u16(rec, 4) !== 0 || u16(rec, 6) !== 0) {
    throw new UnsupportedZipError(`${path} is one part of a split (multi-volume) zip; join the parts (zip -s 0 in.zip --out whole.zip) or extract the image first`, -1, false);
  }
  let count = u16(rec, 10);
  let size = u32(rec, 12);
  let offset = u32(rec, 16);
  let end = at;
  const loc = at >= 20 ? await pread(fh, at - 20, 20) : undefined;
  if (loc && u32(loc, 0) === SIG_ZIP64_LOCATOR) {
    const recAt = u64(loc, 8, path, 'ZIP64 end record offset');
    const z = recAt + 56 <= at - 20 ? await pread(fh, recAt, 56) : new Uint8Array(0);
    if (z.length < 56 || u32(z, 0) !== SIG_ZIP64_EOCD)
      throw new SourceError(`${path}: the ZIP64 end-of-central-directory record is not at offset ${recAt} where its locator says: a damaged zip`);
    if (u32(z, 16) !== 0 || u32(z, 20) !== 0)
      throw new UnsupportedZipError(`${path} is one part of a split (multi-volume) zip; join the parts or extract the image first`, -1, false);
    count = u64(z, 32, path, 'entry count');
    size = u64(z, 40, path, 'central directory size');
    offset = u64(z, 48, path, 'central directory offset');
    end = recAt;
  } else if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    throw new SourceError(`${path}: the zip's end record defers to a ZIP64 record, but there is none before it: a damaged zip`);
  }
  if (offset + size !== end) {
    throw new SourceError(
      `${path}: the zip's central directory (${size} bytes at offset ${offset}) does not end where the end record begins (${end}): a damaged zip, or a self-extracting archive (extract the image first)`,
    );
  }
  if (size > ZIP_DIRECTORY_MAX_BYTES) throw new SourceError(`${path}: the zip's central directory is ${size} bytes, over the ${formatLimit(ZIP_DIRECTORY_MAX_BYTES)} limit`);
  return { offset, size, count, end };
}

/** Applies the ZIP64 extended information extra field (0x0001) to the fields the entry set to all ones. */
function applyZip64(extra: Uint8Array, e: ZipEntry, path: string, rawSize: number, rawCompressed: number, rawOffset: number): void {
  for (let o = 0; o + 4 <= extra.length;) {
    const id = u16(extra, o);
    const len = u16(extra, o + 2);
    if (o + 4 + len > extra.length) break;
    if (id === 0x0001) {
      let p = o + 4;
      const take = (what: string): number => {
        if (p + 8 > o + 4 + len) throw new SourceError(`${path}: entry "${e.name}": its ZIP64 extra field lacks the ${what}: a damaged zip`);
        const v = u64(extra, p, path, what);
        p += 8;
        return v;
      };
      if (rawSize === 0xffffffff) e.size = take('uncompressed size');
      if (rawCompressed === 0xffffffff) e.compressedSize = take('compressed size');
      if (rawOffset === 0xffffffff) e.localOffset = take('local header offset');
      e.zip64 = true;
      return;
    }
    o += 4 + len;
  }
  if (rawSize === 0xffffffff || rawCompressed === 0xffffffff || rawOffset === 0xffffffff) {
    throw new SourceError(`${path}: entry "${e.name}" defers its sizes to a ZIP64 extra field it does not have: a damaged zip`);
  }
}

/** An entry's name: UTF-8 when flag bit 11 says so, else code page 437, shown here as Latin-1 (names only appear in messages). */
function entryName(raw: Uint8Array, flags: number): string {
  return new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(raw);
}

/** Reads and checks the central directory. */
export async function readZipDirectory(fh: FileHandle, fileSize: number, path: string): Promise<ZipDirectory> {
  const loc = await locateDirectory(fh, fileSize, path);
  const cd = await pread(fh, loc.offset, loc.size);
  if (cd.length !== loc.size) throw new SourceError(`${path}: the zip's central directory runs past the end of the file: a truncated zip`);
  const entries: ZipEntry[] = [];
  let o = 0;
  while (o < cd.length) {
    if (o + 46 > cd.length || u32(cd, o) !== SIG_CENTRAL) throw new SourceError(`${path}: damaged zip central directory at offset ${loc.offset + o}`);
    const flags = u16(cd, o + 8);
    const nameLen = u16(cd, o + 28);
    const extraLen = u16(cd, o + 30);
    const commentLen = u16(cd, o + 32);
    const next = o + 46 + nameLen + extraLen + commentLen;
    if (next > cd.length) throw new SourceError(`${path}: damaged zip central directory at offset ${loc.offset + o} (an entry runs past its end)`);
    const rawCompressed = u32(cd, o + 20);
    const rawSize = u32(cd, o + 24);
    const rawOffset = u32(cd, o + 42);
    const madeOn = cd[o + 5];
    const external = u32(cd, o + 38);
    const e: ZipEntry = {
      name: entryName(cd.subarray(o + 46, o + 46 + nameLen), flags),
      flags,
      method: u16(cd, o + 10),
      crc32: u32(cd, o + 16),
      compressedSize: rawCompressed,
      size: rawSize,
      localOffset: rawOffset,
      zip64: false,
      // 3: Unix, 19: OS X (APPNOTE 4.4.2); the high 16 bits of the external attributes are st_mode
      ...(madeOn === 3 || madeOn === 19 ? { unixMode: Math.floor(external / 0x10000) } : {}),
      dosDirectory: (external & 0x10) !== 0,
    };
    applyZip64(cd.subarray(o + 46 + nameLen, o + 46 + nameLen + extraLen), e, path, rawSize, rawCompressed, rawOffset);
    if (e.localOffset + 30 + e.compressedSize > loc.offset) {
      throw new SourceError(`${path}: entry "${e.name}" (${e.compressedSize} bytes at offset ${e.localOffset}) runs into the central directory: a damaged zip`);
    }
    entries.push(e);
    o = next;
  }
  if (entries.length !== loc.count)
    throw new SourceError(`${path}: the zip's end record counts ${loc.count} entries but its central directory holds ${entries.length}: a damaged zip`);
  return { entries, directoryOffset: loc.offset };
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

function isDirectory(e: ZipEntry): boolean {
  return e.name.endsWith('/') || e.dosDirectory || (e.unixMode !== undefined && (e.unixMode & S_IFMT) === S_IFDIR);
}

/** macOS Finder's resource forks and metadata ("Compress" on a Mac adds them beside every file). */
function isResourceFork(e: ZipEntry): boolean {
  return e.name.startsWith('__MACOSX/');
}

/**
 * A symbolic link stored as one (zip -y): its data is the link's target, not an image. (Other
 * modes hold real data: `cat X.img | zip - -` records the pipe it read, mode p---------.)
 */
function isSymlink(e: ZipEntry): boolean {
  return e.unixMode !== undefined && (e.unixMode & S_IFMT) === S_IFLNK;
}

/**
 * The one image in the archive. Throws SourceError when there is none or more than one (listing
 * them), and UnsupportedZipError when it is encrypted or compressed with a method other than
 * stored (0) and deflate (8).
 */
export function selectImageEntry(dir: ZipDirectory, path: string): ZipEntry {
  const files = dir.entries.filter((e) => !isDirectory(e) && !isResourceFork(e));
  const regular = files.filter((e) => !isSymlink(e));
  if (regular.length === 0) {
    const special = files.map((e) => `"${e.name}"`).join(', ');
    throw new SourceError(`${path}: the zip holds no file to flash${special ? ` (only ${special}, which ${files.length > 1 ? 'are symbolic links' : 'is a symbolic link'})` : ''}`);
  }
  if (regular.length > 1) {
    const list = regular
      .slice(0, 20)
      .map((e) => `"${e.name}" (${formatBytes(e.size)})`)
      .join(', ');
    throw new SourceError(
      `${path}: the zip holds ${regular.length} files: ${list}${regular.length > 20 ? ', …' : ''}; crashcart flashes a zip holding exactly one image: extract the one you mean (unzip ${path} NAME) and flash it`,
    );
  }
  const e = regular[0];
  const nested = /\.(gz|xz|zst|bz2|lz4|7z|zip|tar)$/i.exec(e.name);
  if (nested) {
    throw new SourceError(
      `${path}: the zip holds "${e.name}", itself an archive or compressed file (.${nested[1]}), whose bytes would be written as they are; extract it (unzip ${path}) and flash "${e.name}"`,
    );
  }
  const encrypted = (e.flags & 0x41) !== 0 || e.method === 99;
  if (encrypted) {
    throw new UnsupportedZipError(
      `${path}: "${e.name}" in the zip is encrypted (${e.method === 99 ? 'WinZip AES' : 'PKWARE'} encryption, ${zipMethodName(e.method)}); decrypt it with unzip (or 7z x) and flash the image`,
      e.method,
      true,
    );
  }
  if (e.method !== 0 && e.method !== 8) {
    throw new UnsupportedZipError(
      `${path}: "${e.name}" in the zip is compressed with ${zipMethodName(e.method)}; only stored (0) and deflate (8) are read here: extract it (unzip or 7z x) and flash the image`,
      e.method,
      false,
    );
  }
  return e;
}

/** The archive's image entry: directory read and checked, the one regular file chosen. */
export async function zipImageEntry(fh: FileHandle, fileSize: number, path: string): Promise<ZipEntry> {
  return selectImageEntry(await readZipDirectory(fh, fileSize, path), path);
}
