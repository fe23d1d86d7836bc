import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadInputError, ExitCode } from '../../../../src/errors.js';
import { CodecError, crc32be, detectAndDecompress, inflateRaw, lz4DecompressBlock, lzo1xDecompress, sw842Decompress, zstdDecompress } from '../../../../src/pstore/codecs/index.js';
import { xxh64 } from '../../../../src/util/xxh64.js';
import { fixture, sameBytes } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const hex = ([h, l]: [number, number]) => h.toString(16).padStart(8, '0') + l.toString(16).padStart(8, '0');

test('CodecError is a BadInputError carrying the codec name', () => {
  try {
    lz4DecompressBlock(new Uint8Array(0));
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof CodecError);
    assert.ok(e instanceof BadInputError);
    assert.equal(e.codec, 'lz4');
    assert.equal(e.exitCode, ExitCode.BAD_INPUT);
    assert.equal(e.name, 'CodecError');
  }
});

test('crc32be matches the kernel crc32_be(0, …) (CRC-32/POSIX without the final inversion)', () => {
  assert.equal(crc32be(enc('123456789')), ~0x765e7680 >>> 0);
  assert.equal(crc32be(new Uint8Array(0)), 0);
});

test('xxh64 matches xxhsum -H1', () => {
  assert.equal(hex(xxh64(enc(''))), 'ef46db3751d8e999');
  assert.equal(hex(xxh64(enc('a'))), 'd24ec4f1a98c6e5b');
  assert.equal(hex(xxh64(enc('abc'))), '44bc2cf5ad770999');
  assert.equal(hex(xxh64(enc('0123456789abcdef0123456789abcdef'))), '642a94958e71e6c5');
  assert.equal(hex(xxh64(enc('The quick brown fox jumps over the lazy dog. pstore/blk zone header'))), 'aab8c9e392f0bd49');
  const dmesg = fixture('vectors/dmesg.txt');
  assert.equal(hex(xxh64(dmesg.subarray(0, 1000))), 'cbf95a2e4b9d7ef2');
  assert.equal(hex(xxh64(dmesg)), '72dd0a0bca091cb7');
});

// ---- LZ4 ----

test('lz4: literal-only blocks and the empty block', () => {
  assert.equal(lz4DecompressBlock(new Uint8Array([0x00])).length, 0);
  assert.ok(sameBytes(lz4DecompressBlock(new Uint8Array([0x30, 0x61, 0x62, 0x63])), enc('abc')));
});

test('lz4: overlapping match (offset 1) and long lengths', () => {
  // 'a', then match offset 1 length 15+4+10=29, then 5 literal bytes
  const b = new Uint8Array([0x1f, 0x61, 0x01, 0x00, 10, 0x50, 0x62, 0x62, 0x62, 0x62, 0x62]);
  assert.ok(sameBytes(lz4DecompressBlock(b), enc('a'.repeat(30) + 'bbbbb')));
});

test('lz4: end-of-block rules and bad offsets are rejected', () => {
  // match then only 1 literal: violates "last 5 bytes are literals"
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x14, 0x61, 0x01, 0x00, 0x10, 0x62])), /last 5 bytes/);
  // match starting 9 bytes before the end (< 12)
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x10, 0x61, 0x01, 0x00, 0x50, 0x62, 0x62, 0x62, 0x62, 0x62])), /at least 12/);
  // offset 0
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x10, 0x61, 0x00, 0x00, 0x50, 1, 2, 3, 4, 5])), /zero match offset/);
  // offset beyond the output
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x10, 0x61, 0x02, 0x00, 0x50, 1, 2, 3, 4, 5])), /before the start/);
  // block ending right after a match
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x10, 0x61, 0x01, 0x00])), /last sequence must be literals/);
  // literal run longer than the input
  assert.throws(() => lz4DecompressBlock(new Uint8Array([0x50, 0x61])), /overruns the input/);
});

// ---- LZO ----

test('lzo: end-of-stream marker handling', () => {
  assert.equal(lzo1xDecompress(new Uint8Array([0x11, 0x00, 0x00])).length, 0);
  const tiny = fixture('vectors/tiny.lzo');
  assert.deepEqual([...tiny.subarray(-3)], [0x11, 0, 0]);
  // marker missing
  const noEof = tiny.slice(0, tiny.length - 3);
  assert.throws(() => lzo1xDecompress(noEof), /input overrun/);
  // data after the marker
  const extra = new Uint8Array([...tiny, 0]);
  assert.throws(() => lzo1xDecompress(extra), /trailing bytes after the end-of-stream marker/);
  assert.throws(() => lzo1xDecompress(new Uint8Array([0x11, 0x00])), /input overrun/);
});

test('lzo: a match reaching before the output start is a look-behind overrun', () => {
  // literal "ab" (17+2), then M2 match of 3 at distance 1 + (0x20>>2) + 3*8 = 33 > 2 bytes decoded
  assert.throws(() => lzo1xDecompress(new Uint8Array([19, 0x61, 0x62, 0x48, 0x03, 0x11, 0, 0])), /look-behind/);
});

test('lzo: the bitstream-version prefix is only taken for streams of 5+ bytes', () => {
  const rle = fixture('vectors/tiny.lzorle');
  assert.deepEqual([rle[0], rle[1]], [17, 1]);
  assert.ok(sameBytes(lzo1xDecompress(rle), enc('Oops\n')));
});

// ---- 842 ----

test('842: padding after the CRC is optional but must be zero', () => {
  const full = fixture('vectors/tiny.842');
  assert.equal(full.length % 8, 0);
  const plain = enc('Oops\n');
  // tiny.842: 5+3+40 data bits, 5 end bits, 32 CRC bits = 85 bits = 11 bytes, zero-padded to 16
  for (const len of [11, 12, 15, 16]) assert.ok(sameBytes(sw842Decompress(full.subarray(0, len)), plain), `len ${len}`);
  assert.throws(() => sw842Decompress(full.subarray(0, 10)), /truncated/);
  const bad = full.slice();
  bad[13] = 1;
  assert.throws(() => sw842Decompress(bad), /padding/);
  const badBits = full.slice();
  badBits[10] |= 0x01; // the last 3 bits of byte 10 are padding bits
  assert.throws(() => sw842Decompress(badBits), /padding bits/);
  const longer = new Uint8Array(24);
  longer.set(full);
  assert.throws(() => sw842Decompress(longer), /trailing bytes/);
});

test('842: CRC mismatch is reported', () => {
  const full = fixture('vectors/tiny.842');
  const bad = full.slice();
  bad[1] ^= 0x01; // a data bit of the short-data template
  assert.throws(() => sw842Decompress(bad), /CRC mismatch/);
});

test('842: invalid template codes, repeat without data and bad indexes', () => {
  // 0x1f is no template: 11111 000
  assert.throws(() => sw842Decompress(new Uint8Array([0xf8, 0, 0, 0, 0, 0, 0, 0])), /invalid template code 0x1f/);
  // repeat first: 11011 000000
  assert.throws(() => sw842Decompress(new Uint8Array([0xd8, 0, 0, 0, 0, 0, 0, 0])), /fewer than 8 bytes/);
  // I8 (0x19) first: 11001 + index 0 → nothing written yet
  assert.throws(() => sw842Decompress(new Uint8Array([0xc8, 0, 0, 0, 0, 0, 0, 0])), /points past/);
});

// ---- zstd ----

function frame(fhd: number, rest: number[]): Uint8Array {
  return new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, fhd, ...rest]);
}

test('zstd: header checks', () => {
  // single segment, FCS 1 byte = 3, one raw last block "abc"
  const ok = frame(0x20, [3, (3 << 3) | 1, 0, 0, 0x61, 0x62, 0x63]);
  assert.ok(sameBytes(zstdDecompress(ok), enc('abc')));
  assert.throws(() => zstdDecompress(frame(0x28, [3, (3 << 3) | 1, 0, 0, 1, 2, 3])), /reserved bit/);
  assert.throws(() => zstdDecompress(frame(0x21, [7, 3, (3 << 3) | 1, 0, 0, 1, 2, 3])), /dictionary 7/);
  // declared content size 4 but the block gives 3
  assert.throws(() => zstdDecompress(frame(0x20, [4, (3 << 3) | 1, 0, 0, 0x61, 0x62, 0x63])), /declares 4 bytes/);
  // window 1 GiB (exponent 20)
  assert.throws(() => zstdDecompress(frame(0x00, [20 << 3, 1, 0, 0])), /window size/);
  // content size above the output limit is refused before decoding
  assert.throws(() => zstdDecompress(frame(0x20, [200, (3 << 3) | 1, 0, 0, 1, 2, 3]), { maxOutput: 100 }), /over the limit/);
  // reserved block type 3
  assert.throws(() => zstdDecompress(frame(0x20, [3, (3 << 3) | 7, 0, 0, 1, 2, 3])), /reserved block type/);
  // trailing byte
  assert.throws(() => zstdDecompress(frame(0x20, [3, (3 << 3) | 1, 0, 0, 0x61, 0x62, 0x63, 0])), /trailing/);
  // skippable frames are not pstore records
  assert.throws(() => zstdDecompress(new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), /magic/);
});

test('zstd: content checksum is verified', () => {
  const z = fixture('vectors/dmesg.zst');
  assert.equal((z[4] >>> 2) & 1, 1, 'vector carries a checksum');
  const bad = z.slice();
  bad[bad.length - 1] ^= 0x40;
  assert.throws(() => zstdDecompress(bad), /checksum mismatch/);
});

// ---- deflate ----

test('deflate: reasons for truncation, corruption and trailing data', () => {
  const d = fixture('vectors/dmesg.deflate-w15');
  assert.throws(() => inflateRaw(d.subarray(0, d.length - 4)), /truncated/);
  const extra = new Uint8Array(d.length + 2);
  extra.set(d);
  assert.throws(() => inflateRaw(extra), /2 trailing bytes/);
  assert.throws(() => inflateRaw(new Uint8Array([0x07, 0x00])), /corrupt stream/); // BTYPE 11 is invalid
  // fixed-Huffman final block with only the end code: a valid empty stream
  assert.equal(inflateRaw(new Uint8Array([0x03, 0x00])).length, 0);
});

test('detectAndDecompress on real-looking but uncompressed pstore text fails with reasons', () => {
  const r = detectAndDecompress(enc('Oops: Total 1 times\nOops#1 Part1\n<4>[   10.000000] BUG: kernel NULL pointer dereference\n'));
  assert.equal(r.ok, false);
  assert.deepEqual(
    r.attempts.map((a) => a.algorithm),
    ['deflate', 'lz4', 'lzo', '842', 'zstd'],
  );
});
