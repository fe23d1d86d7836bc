/**
 * Zstandard frame decoding (≤6.5 crypto-API "zstd" writes one standard frame, level 3) via the `fzstd`
 * package, wrapped with the checks fzstd leaves out: the frame header and block structure are validated
 * here first (so the window and output sizes are known and capped before anything is allocated), the
 * frame must end exactly at the end of the input, the declared content size must match, and the optional
 * XXH64 content checksum is verified.
 */
import { Decompress } from 'fzstd';
import { CodecError } from './codec-error.js';
import { resolveMaxOutput, type DecodeOptions } from './types.js';
import { xxh64 } from '../../util/xxh64.js';

/** Largest window accepted for frames that are not single-segment (the kernel's level-3 frames use ≤ 2 MiB). */
export const ZSTD_MAX_WINDOW = 8 * 1024 * 1024;
const BLOCK_MAX = 128 * 1024;

function fail(message: string): never {
  throw new CodecError('zstd', message);
}

/** True when the input starts with the zstd frame magic 0xFD2FB528 (bytes 28 b5 2f fd). */
export function hasZstdMagic(input: Uint8Array): boolean {
  return input.length >= 4 && input[0] === 0x28 && input[1] === 0xb5 && input[2] === 0x2f && input[3] === 0xfd;
}

interface FrameInfo {
  contentSize: number | undefined;
  windowSize: number;
  checksum: boolean;
  /** Upper bound of the decoded size from the block headers. */
  maxDecoded: number;
}

function readLE(d: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + d[at + i];
  return v;
}

function inspectFrame(input: Uint8Array, limit: number): FrameInfo {
  const n = input.length;
  if (!hasZstdMagic(input)) fail('no zstd frame magic (28 b5 2f fd)');
  if (n < 6) fail('truncated frame header');
  const fhd = input[4];
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd >>> 5) & 1;
  if (fhd & 0x08) fail('reserved bit set in the frame header descriptor');
  const checksum = ((fhd >>> 2) & 1) === 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3];
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  let p = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = input[p++];
    const base = 2 ** (10 + (wd >>> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  if (n < p + dictIdSize + fcsSize) fail('truncated frame header');
  const dictId = readLE(input, p, dictIdSize);
  p += dictIdSize;
  if (dictId !== 0) fail(`frame needs dictionary ${dictId}, which pstore never uses`);
  let contentSize: number | undefined;
  if (fcsSize > 0) {
    if (fcsSize === 8 && readLE(input, p + 4, 4) !== 0) fail('declared content size exceeds 4 GiB');
    contentSize = readLE(input, p, Math.min(fcsSize, 4)) + (fcsSize === 2 ? 256 : 0);
    p += fcsSize;
    if (contentSize > limit) fail(`frame declares ${contentSize} bytes of content, over the limit of ${limit} bytes`);
  }
  if (singleSegment) windowSize = contentSize ?? 0;
  if (windowSize > ZSTD_MAX_WINDOW) fail(`window size ${windowSize} exceeds the supported ${ZSTD_MAX_WINDOW} bytes`);
  const blockMax = Math.min(BLOCK_MAX, Math.max(windowSize, 1));
  let maxDecoded = 0;
  for (;;) {
    if (n - p < 3) fail(`truncated block header at input byte ${p}`);
    const bh = input[p] | (input[p + 1] << 8) | (input[p + 2] << 16);
    const last = bh & 1;
    const type = (bh >>> 1) & 3;
    const size = bh >>> 3;
    const at = p;
    p += 3;
    if (type === 3) fail(`reserved block type at input byte ${at}`);
    if (size > blockMax) fail(`block of ${size} bytes at input byte ${at} exceeds the maximum block size ${blockMax}`);
    if (type === 1) {
      if (n - p < 1) fail(`truncated RLE block at input byte ${at}`);
      p += 1;
      maxDecoded += size;
    } else {
      if (n - p < size) fail(`truncated block at input byte ${at}: needs ${size} bytes, ${n - p} left`);
      p += size;
      maxDecoded += type === 0 ? size : blockMax;
    }
    if (last) break;
  }
  if (checksum) {
    if (n - p < 4) fail('truncated content checksum');
    p += 4;
  }
  if (p !== n) fail(`${n - p} trailing bytes after the zstd frame (frame ends at input byte ${p})`);
  return { contentSize, windowSize, checksum, maxDecoded };
}

/**
 * Decodes a single zstd frame that must fill `input` exactly.
 * @throws CodecError on corrupt, truncated or oversized input.
 */
export function zstdDecompress(input: Uint8Array, opts?: DecodeOptions): Uint8Array {
  const limit = resolveMaxOutput(opts);
  const info = inspectFrame(input, limit);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const stream = new Decompress((chunk: Uint8Array) => {
    total += chunk.length;
    if (total > limit) fail(`output exceeds the limit of ${limit} bytes`);
    chunks.push(chunk);
  });
  try {
    stream.push(input, true);
  } catch (e) {
    if (e instanceof CodecError) throw e;
    fail(`corrupt frame: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (total > info.maxDecoded) fail(`decoded ${total} bytes, more than the block headers allow (${info.maxDecoded})`);
  let data: Uint8Array;
  if (chunks.length === 1) {
    data = chunks[0];
  } else {
    data = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      data.set(c, o);
      o += c.length;
    }
  }
  if (info.contentSize !== undefined && info.contentSize !== total) {
    fail(`frame declares ${info.contentSize} bytes of content but decodes to ${total}`);
  }
  if (info.checksum) {
    const stored = readLE(input, input.length - 4, 4);
    const actual = xxh64(data)[1];
    if (stored !== actual) {
      fail(`content checksum mismatch: frame says 0x${stored.toString(16).padStart(8, '0')}, data gives 0x${actual.toString(16).padStart(8, '0')}`);
    }
  }
  return data;
}
