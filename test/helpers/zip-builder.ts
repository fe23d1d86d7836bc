/**
 * Zip archives built byte by byte (PKWARE APPNOTE 6.3.10) with node:zlib's raw deflate, for the
 * layouts the Info-ZIP tool does not write on request: ZIP64 fields everywhere (central
 * directory extra, end records) on small data, data descriptors with and without their
 * signature and with 64-bit sizes, other methods and flags. Archives made here are checked
 * with Debian's unzip where it is installed (test/unit/flash/zip.test.ts).
 */
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipSpec {
  name: string;
  data: Uint8Array;
  /** 0 stored, 8 deflate (default); any other number stores `data` as if compressed with it. */
  method?: number;
  /** Sizes and CRC in a data descriptor after the data (bit 3), with or without its signature. */
  descriptor?: 'signed' | 'unsigned';
  /** ZIP64 extra fields in the local header and central directory, 64-bit descriptor sizes. */
  zip64?: boolean;
  /** More general purpose flags (1: encrypted). */
  flags?: number;
  /** Unix st_mode recorded in the external attributes (made on Unix). */
  unixMode?: number;
  /** Replaces the compressed bytes (to damage them). */
  compressed?: Uint8Array;
  /** CRC-32 to record instead of the real one. */
  crc?: number;
  /** Stored data that is this many zero bytes, left as a hole (buildZipSegments): `data` is ignored, `crc` must be given. */
  zeros?: number;
}

/** A piece of an archive: bytes, or a run of zero bytes to leave as a hole in a sparse file. */
export type ZipSegment = Buffer | number;

function le(n: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 8) b.writeBigUInt64LE(BigInt(n));
  else b.writeUIntLE(n, 0, bytes);
  return b;
}

/** An archive of `entries`; `zip64End` adds the ZIP64 end record and locator (with all-ones fields in the classic end record). */
export function buildZip(entries: ZipSpec[], opts: { zip64End?: boolean } = {}): Buffer {
  return Buffer.concat(buildZipSegments(entries, opts).map((s) => (typeof s === 'number' ? Buffer.alloc(s) : s)));
}

/** The archive as segments, runs of zeros (`zeros` entries) left as numbers. */
export function buildZipSegments(entries: ZipSpec[], opts: { zip64End?: boolean } = {}): ZipSegment[] {
  const parts: ZipSegment[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const push = (b: ZipSegment) => {
    parts.push(b);
    offset += typeof b === 'number' ? b : b.length;
  };
  for (const e of entries) {
    const method = e.zeros !== undefined ? 0 : (e.method ?? 8);
    const body: ZipSegment = e.zeros ?? Buffer.from(e.compressed ?? (method === 8 ? deflateRawSync(e.data) : e.data));
    const compressed = { length: typeof body === 'number' ? body : body.length };
    const dataLength = e.zeros ?? e.data.length;
    const crc = e.crc ?? crc32(e.data);
    const flags = (e.flags ?? 0) | (e.descriptor ? 0x08 : 0) | 0x800;
    const name = Buffer.from(e.name, 'utf8');
    const version = e.zip64 ? 45 : 20;
    const localOffset = offset;
    const localExtra = e.zip64 ? Buffer.concat([le(1, 2), le(16, 2), le(e.descriptor ? 0 : dataLength, 8), le(e.descriptor ? 0 : compressed.length, 8)]) : Buffer.alloc(0);
    const small = (v: number) => (e.descriptor ? 0 : e.zip64 ? 0xffffffff : v);
    push(
      Buffer.concat([
        le(0x04034b50, 4),
        le(version, 2),
        le(flags, 2),
        le(method, 2),
        le(0, 2),
        le(0x21, 2),
        le(e.descriptor ? 0 : crc, 4),
        le(small(compressed.length), 4),
        le(small(dataLength), 4),
        le(name.length, 2),
        le(localExtra.length, 2),
        name,
        localExtra,
      ]),
    );
    push(body);
    if (e.descriptor) {
      const w = e.zip64 ? 8 : 4;
      push(Buffer.concat([e.descriptor === 'signed' ? le(0x08074b50, 4) : Buffer.alloc(0), le(crc, 4), le(compressed.length, w), le(dataLength, w)]));
    }
    const cdExtra = e.zip64 ? Buffer.concat([le(1, 2), le(24, 2), le(dataLength, 8), le(compressed.length, 8), le(localOffset, 8)]) : Buffer.alloc(0);
    const big = (v: number) => (e.zip64 ? 0xffffffff : v);
    central.push(
      Buffer.concat([
        le(0x02014b50, 4),
        le(e.unixMode !== undefined ? (3 << 8) | version : version, 2),
        le(version, 2),
        le(flags, 2),
        le(method, 2),
        le(0, 2),
        le(0x21, 2),
        le(crc, 4),
        le(big(compressed.length), 4),
        le(big(dataLength), 4),
        le(name.length, 2),
        le(cdExtra.length, 2),
        le(0, 2),
        le(0, 2),
        le(0, 2),
        le(e.unixMode !== undefined ? e.unixMode * 0x10000 : e.name.endsWith('/') ? 0x10 : 0, 4),
        le(big(localOffset), 4),
        name,
        cdExtra,
      ]),
    );
  }
  const cd = Buffer.concat(central);
  const cdOffset = offset;
  push(cd);
  if (opts.zip64End) {
    const recAt = offset;
    push(Buffer.concat([le(0x06064b50, 4), le(44, 8), le(45, 2), le(45, 2), le(0, 4), le(0, 4), le(entries.length, 8), le(entries.length, 8), le(cd.length, 8), le(cdOffset, 8)]));
    push(Buffer.concat([le(0x07064b50, 4), le(0, 4), le(recAt, 8), le(1, 4)]));
    push(Buffer.concat([le(0x06054b50, 4), le(0, 2), le(0, 2), le(0xffff, 2), le(0xffff, 2), le(0xffffffff, 4), le(0xffffffff, 4), le(0, 2)]));
  } else {
    push(Buffer.concat([le(0x06054b50, 4), le(0, 2), le(0, 2), le(entries.length, 2), le(entries.length, 2), le(cd.length, 4), le(cdOffset, 4), le(0, 2)]));
  }
  return parts;
}
