/**
 * What differs between the kernels that have pstore/blk (5.8 onwards), as far as reading a card
 * back goes. The full table with its evidence is docs/kernel-versions.md; in short:
 *
 * - On-disk format — struct psz_buffer ("DBGC" ^ type), struct psz_kmsg_header (magic 0x4dfc3ae5,
 *   timespec64, bool compressed, u32 counter, enum reason), the zone order (pmsg, console, ftrace
 *   per CPU, kmsg), the "%s: Total %d times\n" line of uncompressed dmesg records, the reason
 *   strings (kmsg_dump_reason_str(), 5.8) and the file names "<type>-pstore_blk-<id>[.enc.z]"
 *   (inode.c pstore_mkfile()): the same in every version (fs/pstore/zone.c 5.10 and mainline).
 * - Region size: 5.8–5.10 use the whole partition; 5.11 caps it at 128 MiB ("pstore/zone: cap
 *   the maximum device size", pull "pstore updates for v5.11-rc1", which also removed
 *   register_pstore_blk(), the only way a block driver could give pstore/blk a panic_write).
 * - A kmsg area smaller than one zone: an oops at registration up to 6.13, refused (-EINVAL,
 *   "zone dmesg total_size too small") from 6.14 ("pstore/zone: avoid dereferencing zero sized
 *   ptr after init zones", 067cdf020329).
 * - Decompression (platform.c decompress_record()), the part that decides `.enc.z`:
 *   - 5.8–6.5: the crypto API, the one algorithm of `pstore.compress=` (default
 *     CONFIG_PSTORE_COMPRESS_DEFAULT); the output buffer is big_oops_buf_sz = zbufsize(bufsize)
 *     (allocate_buf_for_compression()); crypto/deflate.c compresses with windowBits 11 and
 *     inflates the record in a single zlib_inflate() call, so it also reads 6.6+ (window 15) deflate.
 *     zbufsize: deflate bufsize·100/ratio (60 above 10000 bytes), lzo lzo1x_worst_compress()
 *     (x + x/16 + 64 + 3 + 2), lz4/lz4hc LZ4_compressBound(), 842 bufsize, zstd
 *     ZSTD_compressBound() of the kernel's zstd: x + x/128 + 524 up to 5.15 (zstd 1.3.1),
 *     x + x/256 + (128 KiB − x)/2048 from 5.16 (zstd 1.4.10, e0c1b49f5b67).
 *     (6.0-rc1…rc7 used the acomp interface; reverted before 6.0, never in a release.)
 *   - 6.6 and later: zlib raw inflate, windowBits 15, deflate only; the output buffer is
 *     3 × bufsize ("pstore: Base compression input buffer size on estimated compressed size");
 *     `pstore.compress=none` (or CONFIG_PSTORE_COMPRESS=n) leaves no decompressor, any other
 *     value falls back to deflate.
 *   In every version a record that fails keeps `compressed` set and is named `<type>-<backend>-<id>.enc.z`.
 */
import { inflateRawSync } from 'node:zlib';
import { UsageError } from '../errors.js';
import type { CodecName } from './codecs/index.js';

export interface KernelVersion {
  major: number;
  minor: number;
  /** As given, e.g. "6.1.0-56-amd64". */
  text: string;
}

/** pstore/blk (and pstore/zone) appeared in Linux 5.8. */
export const PSTORE_BLK_SINCE: KernelVersion = { major: 5, minor: 8, text: '5.8' };

export function compareVersion(a: Pick<KernelVersion, 'major' | 'minor'>, b: Pick<KernelVersion, 'major' | 'minor'>): number {
  return a.major - b.major || a.minor - b.minor;
}

/** Parses "6.1", "5.10.220", "6.1.0-56-amd64", "v6.12". */
export function parseKernelVersion(s: string): KernelVersion {
  const m = /^v?(\d+)\.(\d+)(?:[.\-+~].*)?$/.exec(s.trim());
  if (!m) throw new UsageError(`--kernel-version ${JSON.stringify(s)}: expected a release like 6.1 or 6.1.0-56-amd64`);
  const v = { major: Number(m[1]), minor: Number(m[2]), text: s.trim() };
  if (compareVersion(v, PSTORE_BLK_SINCE) < 0) throw new UsageError(`--kernel-version ${s}: pstore/blk appeared in Linux 5.8; earlier kernels have no pstore/blk`);
  return v;
}

type Release = Pick<KernelVersion, 'major' | 'minor'>;

/** The reading kernel decompresses with zlib (deflate only) since 6.6, with the crypto API before. */
export function usesZlibDecompression(v: Release): boolean {
  return compareVersion(v, { major: 6, minor: 6 }) >= 0;
}

/** register_pstore_zone() caps the region at 128 MiB since 5.11; 5.8–5.10 use the whole partition. */
export function capsRegionAt128MiB(v: Release): boolean {
  return compareVersion(v, { major: 5, minor: 11 }) >= 0;
}

/** psz_init_zones() refuses a kmsg area smaller than one zone since 6.14 (before: an oops at registration). */
export function refusesEmptyKmsgArea(v: Release): boolean {
  return compareVersion(v, { major: 6, minor: 14 }) >= 0;
}

/** ZSTD_compressBound() of the kernel's lib/zstd: zstd 1.3.1 up to 5.15, 1.4.10 from 5.16. */
export function zstdCompressBound(x: number, v: Release): number {
  if (compareVersion(v, { major: 5, minor: 16 }) < 0) return x + (x >> 7) + 512 + 12; // FSE_compressBound(x) + 12
  return x + (x >> 8) + (x < 128 << 10 ? ((128 << 10) - x) >> 11 : 0);
}

/**
 * zbufsize(): the ≤ 6.5 compression/decompression buffer (big_oops_buf_sz) for `bufsize` bytes of
 * kmsg text, in kernel `v`.
 */
export function cryptoBufferSize(algorithm: CodecName, bufsize: number, v: Release): number {
  const x = bufsize;
  switch (algorithm) {
    case 'deflate': {
      // zbufsize_deflate(): an estimated compression ratio by size.
      const cmpr = x >= 1000 && x <= 2000 ? 56 : x >= 2001 && x <= 3000 ? 54 : x >= 3001 && x <= 3999 ? 52 : x >= 4000 && x <= 10000 ? 45 : 60;
      return Math.floor((x * 100) / cmpr);
    }
    case 'lzo':
      return x + Math.floor(x / 16) + 64 + 3 + 2; // lzo1x_worst_compress() (+2 since LZO-RLE, 5.1)
    case 'lz4':
      return x + Math.floor(x / 255) + 16; // LZ4_compressBound()
    case 'zstd':
      return zstdCompressBound(x, v);
    case '842':
      return x;
  }
}

export interface ReadingKernel {
  version: KernelVersion;
  /** pstore.compress= of that kernel, when known (≤ 6.5: the one algorithm it decompresses). */
  compress?: string;
}

/**
 * Whether a raw deflate stream refers back further than 2 KiB — something ≤ 6.5's crypto deflate
 * (compressing with windowBits 11) never writes, and 6.6+ zlib (windowBits 15) does.
 *
 * zlib checks a distance against the window plus what the current inflate() call has written, so
 * inflating with windowBits 11 rejects far references only across calls: output chunks of 64
 * bytes (zlib's smallest) make nearly every call boundary count (a reference of 2049–2111 bytes
 * inside one chunk can pass). This is also why ≤ 6.5 kernels *read* such streams: their crypto
 * deflate inflates the whole record in one zlib_inflate() call into big_oops_buf.
 */
export function refersBeyond2KiB(stream: Uint8Array, maxOutput: number): boolean {
  try {
    inflateRawSync(stream, { windowBits: 11, chunkSize: 64, maxOutputLength: maxOutput + 1 });
    return false;
  } catch (e) {
    return /too far back/.test((e as Error).message);
  }
}

/**
 * Why the reading kernel would list a compressed dmesg record as `.enc.z` although it decodes
 * (with `algorithm`, to `outputBytes` bytes), or null when it would show the text.
 * `bufsize` is the kmsg zone's buffer minus the kmsg header (psinfo->bufsize).
 */
export function kernelCannotDecompress(k: ReadingKernel, algorithm: CodecName, outputBytes: number, bufsize: number): string | null {
  const v = k.version.text;
  if (usesZlibDecompression(k.version)) {
    if (k.compress === 'none') return `Linux ${v} with pstore.compress=none (or without CONFIG_PSTORE_COMPRESS) has no decompressor`;
    if (algorithm !== 'deflate') return `Linux ${v} decompresses deflate only (since 6.6); this record is ${algorithm}`;
    if (outputBytes > 3 * bufsize) return `Linux ${v} inflates at most 3 × ${bufsize} bytes; this record holds ${outputBytes}`;
    return null;
  }
  const configured = k.compress === 'lz4hc' ? 'lz4' : k.compress;
  if (configured === 'none') return `Linux ${v} with pstore.compress=none (or without CONFIG_PSTORE_COMPRESS) has no decompressor`;
  if (configured && configured !== algorithm) return `Linux ${v} with pstore.compress=${k.compress} cannot decompress ${algorithm}`;
  const limit = cryptoBufferSize(algorithm, bufsize, k.version);
  if (outputBytes > limit) return `Linux ${v} decompresses ${algorithm} into ${limit} bytes (zbufsize); this record holds ${outputBytes}`;
  // Deflate from a 6.6+ writer (32 KiB window) is no obstacle: crypto/deflate.c inflates the
  // record in one zlib_inflate() call, which accepts any distance inside that call's output.
  return null;
}

/** The file the decoded text of a record the kernel shows as `.enc.z` is written to. */
export function decodedFileName(encFile: string): string {
  return `${encFile.replace(/\.enc\.z$/, '')}.decoded.txt`;
}

/** What the card says about the kernel that wrote it. */
export interface WriterEvidence {
  /** "5.8-5.10" (kmsg zones past 128 MiB), "5.8-6.5" (crypto API compression) or "6.6+" (zlib). */
  era: '5.8-5.10' | '5.8-6.5' | '6.6+';
  because: string;
}

/**
 * The writing kernel's era, where the card shows it: a compressor other than deflate exists only
 * up to 6.5; a deflate stream that needs more than a 2 KiB window was written by 6.6+ zlib (≤ 6.5
 * crypto deflate compresses with windowBits 11). `hlen` is sizeof(struct psz_kmsg_header).
 */
export async function writerEvidence(
  src: { read(offset: number, length: number): Promise<Uint8Array> },
  records: { type: string; compressed?: boolean; algorithm?: CodecName | null; zones: { offset: number }[]; storedBytes: number; file: string; content: Uint8Array }[],
  hlen: number,
): Promise<WriterEvidence | null> {
  const compressed = records.filter((r) => r.type === 'dmesg' && r.compressed && r.algorithm);
  const other = compressed.find((r) => r.algorithm !== 'deflate');
  if (other) return { era: '5.8-6.5', because: `${other.file} is ${other.algorithm}-compressed (only deflate since 6.6)` };
  for (const r of compressed.slice(0, 4)) {
    const stream = await src.read(r.zones[0].offset + 12 + hlen, r.storedBytes);
    if (stream.length === r.storedBytes && refersBeyond2KiB(stream, 4 << 20)) {
      return { era: '6.6+', because: `${r.file} is deflate with back-references beyond 2 KiB (6.6+ zlib, windowBits 15)` };
    }
  }
  return null;
}
