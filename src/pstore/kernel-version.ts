/**
 * What the kernel that reads the card back (the next boot of the board) can show, by version:
 * which compressed dmesg records it decompresses and which it lists as `.enc.z`.
 *
 * fs/pstore/platform.c decompress_record():
 * - 5.8 – 6.5: the crypto API with the one algorithm of `pstore.compress=` (or
 *   CONFIG_PSTORE_COMPRESS_DEFAULT); crypto/deflate.c inflates raw deflate with windowBits 11;
 *   the output buffer is big_oops_buf_sz = zbufsize(bufsize) bytes (allocate_buf_for_compression()).
 * - 6.6 and later: zlib raw inflate with windowBits 15 (DEF_WBITS), deflate only; the output
 *   buffer is 3 * bufsize; `pstore.compress=none` leaves no decompressor.
 * In every version a record that fails keeps `compressed` set and is named `<type>-<backend>-<id>.enc.z`
 * (inode.c pstore_mkfile()).
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

/** The reading kernel decompresses with zlib (deflate only) since 6.6, with the crypto API before. */
export function usesZlibDecompression(v: KernelVersion): boolean {
  return compareVersion(v, { major: 6, minor: 6 }) >= 0;
}

/** zbufsize(): the ≤ 6.5 compression/decompression buffer for `bufsize` bytes of kmsg text. */
export function cryptoBufferSize(algorithm: CodecName, bufsize: number): number {
  const x = bufsize;
  switch (algorithm) {
    case 'deflate': {
      // zbufsize_deflate(): an estimated compression ratio by size.
      const cmpr = x >= 1000 && x <= 2000 ? 56 : x >= 2001 && x <= 3000 ? 54 : x >= 3001 && x <= 3999 ? 52 : x >= 4000 && x <= 10000 ? 45 : 60;
      return Math.floor((x * 100) / cmpr);
    }
    case 'lzo':
      return x + Math.floor(x / 16) + 64 + 3; // lzo1x_worst_compress()
    case 'lz4':
      return x + Math.floor(x / 255) + 16; // LZ4_compressBound()
    case 'zstd':
      return x + (x >> 8) + (x < 128 << 10 ? ((128 << 10) - x) >> 11 : 0); // ZSTD_compressBound()
    case '842':
      return x;
  }
}

export interface ReadingKernel {
  version: KernelVersion;
  /** pstore.compress= of that kernel, when known (≤ 6.5: the one algorithm it decompresses). */
  compress?: string;
}

/** Whether a raw deflate stream inflates within a 2 KiB window (what ≤ 6.5's crypto deflate uses). */
export function inflatesWithWindow11(stream: Uint8Array, maxOutput: number): boolean {
  try {
    inflateRawSync(stream, { windowBits: 11, maxOutputLength: maxOutput + 1 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the reading kernel would list a compressed dmesg record as `.enc.z` although it decodes
 * (with `algorithm`, to `outputBytes` bytes), or null when it would show the text.
 * `bufsize` is the kmsg zone's buffer minus the kmsg header (psinfo->bufsize).
 */
export function kernelCannotDecompress(k: ReadingKernel, algorithm: CodecName, stream: Uint8Array, outputBytes: number, bufsize: number): string | null {
  const v = k.version.text;
  if (usesZlibDecompression(k.version)) {
    if (k.compress === 'none') return `Linux ${v} with pstore.compress=none has no decompressor`;
    if (algorithm !== 'deflate') return `Linux ${v} decompresses deflate only (since 6.6); this record is ${algorithm}`;
    if (outputBytes > 3 * bufsize) return `Linux ${v} inflates at most 3 × ${bufsize} bytes; this record holds ${outputBytes}`;
    return null;
  }
  const configured = k.compress === 'lz4hc' ? 'lz4' : k.compress;
  if (configured && configured !== algorithm) return `Linux ${v} with pstore.compress=${k.compress} cannot decompress ${algorithm}`;
  const limit = cryptoBufferSize(algorithm, bufsize);
  if (outputBytes > limit) return `Linux ${v} decompresses ${algorithm} into ${limit} bytes (zbufsize); this record holds ${outputBytes}`;
  if (algorithm === 'deflate' && !inflatesWithWindow11(stream, limit)) {
    return `Linux ${v} inflates with a 2 KiB window (crypto deflate, windowBits 11); this record needs the 32 KiB window of a ≥ 6.6 writer`;
  }
  return null;
}

/** The file the decoded text of a record the kernel shows as `.enc.z` is written to. */
export function decodedFileName(encFile: string): string {
  return `${encFile.replace(/\.enc\.z$/, '')}.decoded.txt`;
}

/** What the compressed records say about the kernel that wrote them. */
export interface WriterEvidence {
  /** "5.8-6.5" (crypto API) or "6.6+" (zlib). */
  era: '5.8-6.5' | '6.6+';
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
    if (stream.length === r.storedBytes && !inflatesWithWindow11(stream, 4 << 20)) {
      return { era: '6.6+', because: `${r.file} is deflate with back-references beyond 2 KiB (6.6+ zlib, windowBits 15)` };
    }
  }
  return null;
}
