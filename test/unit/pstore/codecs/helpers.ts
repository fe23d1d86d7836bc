import { readFileSync } from 'node:fs';
import type { CodecName } from '../../../../src/pstore/codecs/index.js';

/** test/fixtures/codecs, resolved from the compiled test's location (dist/test/unit/codecs). */
export const FIXTURES = new URL('../../../../../test/fixtures/codecs/', import.meta.url);

export function fixture(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(rel, FIXTURES)));
}

/** The uncompressed sample files and their compressed forms made by independent tools (see the README). */
export const SAMPLES = [
  { name: 'dmesg', plain: 'vectors/dmesg.txt' },
  { name: 'mixed', plain: 'vectors/mixed.bin' },
  { name: 'tiny', plain: 'vectors/tiny.txt' },
] as const;

export const VARIANTS: { suffix: string; codec: CodecName; producer: string }[] = [
  { suffix: 'deflate-w11', codec: 'deflate', producer: 'node zlib deflateRawSync windowBits 11' },
  { suffix: 'deflate-w15', codec: 'deflate', producer: 'node zlib deflateRawSync windowBits 15' },
  { suffix: 'lz4', codec: 'lz4', producer: 'liblz4 LZ4_compress_default' },
  { suffix: 'lz4hc', codec: 'lz4', producer: 'liblz4 LZ4_compress_HC level 9' },
  { suffix: 'lzo', codec: 'lzo', producer: 'liblzo2 lzo1x_1_compress' },
  { suffix: 'lzorle', codec: 'lzo', producer: 'kernel lzorle1x_1_compress logic' },
  { suffix: 'zst', codec: 'zstd', producer: 'zstd CLI -3 (with checksum)' },
  { suffix: 'nocheck.zst', codec: 'zstd', producer: 'zstd CLI -3 --no-check' },
  { suffix: '842', codec: '842', producer: 'kernel sw842_compress logic' },
];

/** Deterministic PRNG (mulberry32) so garbage/flip tests are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}
