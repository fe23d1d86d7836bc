import { test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import assert from 'node:assert/strict';
import {
  CodecError,
  DEFAULT_MAX_OUTPUT,
  detectAndDecompress,
  inflateRaw,
  lz4DecompressBlock,
  lzo1xDecompress,
  sw842Decompress,
  zstdDecompress,
  type CodecName,
  type DecompressResult,
} from '../../../../src/pstore/codecs/index.js';
import { SAMPLES, VARIANTS, fixture, prng, sameBytes } from './helpers.js';

function detect(b: Uint8Array, maxOutput?: number): DecompressResult {
  // detectAndDecompress must never throw on bad payloads
  let r: DecompressResult | undefined;
  assert.doesNotThrow(() => {
    r = detectAndDecompress(b, maxOutput === undefined ? undefined : { maxOutput });
  });
  return r!;
}

function assertFailedEverywhere(r: DecompressResult): void {
  assert.equal(r.ok, false, r.ok ? `unexpectedly decoded as ${r.algorithm}` : '');
  assert.equal(r.attempts.length, 5);
  for (const a of r.attempts) {
    assert.ok(a.error.length > 5, `${a.algorithm} gave no reason`);
    assert.doesNotMatch(a.error, /internal decoder error/, `${a.algorithm}: ${a.error}`);
  }
}

const DIRECT: Record<CodecName, (b: Uint8Array, o?: { maxOutput?: number }) => Uint8Array> = {
  deflate: inflateRaw,
  lz4: lz4DecompressBlock,
  lzo: lzo1xDecompress,
  zstd: zstdDecompress,
  '842': sw842Decompress,
};

test('truncated vectors are rejected by every codec', () => {
  for (const v of VARIANTS) {
    const full = fixture(`vectors/dmesg.${v.suffix}`);
    // (1..3-byte prefixes can be complete tiny streams, e.g. 0x00 is an empty LZ4 block; 842 tolerates
    // losing its zero padding only, so it is cut before the CRC)
    const cuts = [5, 17, Math.floor(full.length / 3), Math.floor(full.length / 2), full.length - 9];
    if (v.codec !== '842') cuts.push(full.length - 1);
    for (const len of cuts) {
      const r = detect(full.subarray(0, len));
      assertFailedEverywhere(r);
      assert.throws(() => DIRECT[v.codec](full.subarray(0, len)), CodecError, `${v.suffix} cut to ${len}`);
    }
  }
});

test('every prefix of the tiny vectors is handled without throwing and never yields the original', () => {
  const plain = fixture('vectors/tiny.txt');
  for (const v of VARIANTS) {
    const full = fixture(`vectors/tiny.${v.suffix}`);
    const keep = v.codec === '842' ? 11 : full.length; // 842 needs 11 bytes; the rest is padding
    for (let len = 0; len < keep; len++) {
      const r = detect(full.subarray(0, len));
      if (r.ok) assert.ok(!sameBytes(r.data, plain), `${v.suffix} cut to ${len}`);
    }
  }
});

test('a trailing byte after a complete stream is rejected', () => {
  for (const v of VARIANTS) {
    const full = fixture(`vectors/dmesg.${v.suffix}`);
    const longer = new Uint8Array(full.length + 1);
    longer.set(full);
    longer[full.length] = 0x5a;
    assert.throws(() => DIRECT[v.codec](longer), CodecError, v.suffix);
    assertFailedEverywhere(detect(longer));
  }
});

test('flipped bytes never make detection throw; checksummed formats always catch them', () => {
  const rnd = prng(842);
  for (const v of VARIANTS) {
    const full = fixture(`vectors/dmesg.${v.suffix}`);
    const plain = fixture('vectors/dmesg.txt');
    const checked = v.suffix === 'zst' || v.codec === '842';
    const positions = new Set<number>([0, 1, 2, 3, 4, 5, full.length - 1, full.length - 2, full.length - 5]);
    while (positions.size < 60) positions.add(Math.floor(rnd() * full.length));
    for (const pos of positions) {
      const bad = full.slice();
      bad[pos] ^= 0xff;
      const r = detect(bad);
      if (r.ok) {
        assert.ok(!checked, `${v.suffix}: flip at ${pos} went unnoticed`);
        assert.ok(r.data.length <= DEFAULT_MAX_OUTPUT);
      } else {
        assert.ok(r.attempts.length > 0);
      }
      if (checked || pos < 2) assert.throws(() => DIRECT[v.codec](bad), CodecError, `${v.suffix} flip at ${pos}`);
      // a decoder that accepts the corrupted stream must not return the original text by accident
      if (r.ok && r.algorithm === v.codec && sameBytes(r.data, plain)) assert.fail(`${v.suffix}: flip at ${pos} had no effect`);
    }
  }
});

test('random garbage is rejected by all codecs', () => {
  const rnd = prng(20240601);
  for (let i = 0; i < 300; i++) {
    const len = 16 + Math.floor(rnd() * (i < 200 ? 256 : 8192));
    const b = new Uint8Array(len);
    for (let k = 0; k < len; k++) b[k] = Math.floor(rnd() * 256);
    assertFailedEverywhere(detect(b));
  }
});

test('all-zero, all-0xff and text payloads are rejected', () => {
  const text = fixture('vectors/dmesg.txt');
  for (const b of [new Uint8Array(4096), new Uint8Array(4096).fill(0xff), text, text.subarray(0, 100)]) {
    assertFailedEverywhere(detect(b));
  }
  const empty = detect(new Uint8Array(0));
  assertFailedEverywhere(empty);
});

test('garbage after a zstd magic is rejected', () => {
  const rnd = prng(7);
  for (let i = 0; i < 200; i++) {
    const b = new Uint8Array(8 + Math.floor(rnd() * 600));
    for (let k = 0; k < b.length; k++) b[k] = Math.floor(rnd() * 256);
    b.set([0x28, 0xb5, 0x2f, 0xfd]);
    const r = detect(b);
    assert.equal(r.ok, false);
    assert.equal(r.attempts[0].algorithm, 'zstd');
    assert.doesNotMatch(r.attempts[0].error, /internal decoder error/, r.attempts[0].error);
  }
});

test('output limit: exact size passes, one byte less fails with a limit error', () => {
  for (const s of SAMPLES) {
    const plain = fixture(s.plain);
    for (const v of VARIANTS) {
      const comp = fixture(`vectors/${s.name}.${v.suffix}`);
      const dec = DIRECT[v.codec];
      assert.equal(dec(comp, { maxOutput: plain.length }).length, plain.length);
      assert.throws(
        () => dec(comp, { maxOutput: plain.length - 1 }),
        (e: unknown) => e instanceof CodecError && e.codec === v.codec && /limit/.test(e.message),
        `${s.name}.${v.suffix}`,
      );
      const r = detect(comp, plain.length - 1);
      assert.equal(r.ok, false);
      const own = r.attempts.find((a) => a.algorithm === v.codec);
      assert.match(own!.error, /limit/);
    }
  }
});

test('output limit holds for highly compressible input (no huge allocation)', () => {
  // 842 repeat templates: 0x1b + 6-bit count copies 8 × 64 bytes per 11 bits. Built by hand: a D8 of
  // 8 bytes, then many repeats; the limit must stop it long before the data ends.
  const bits: number[] = [];
  const put = (v: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) bits.push((v >>> i) & 1);
  };
  put(0x00, 5);
  for (let i = 0; i < 8; i++) put(0x41 + i, 8);
  for (let i = 0; i < 20000; i++) {
    put(0x1b, 5);
    put(0x3f, 6);
  }
  const b = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((bit, i) => (b[i >> 3] |= bit << (7 - (i & 7))));
  assert.throws(() => sw842Decompress(b, { maxOutput: 65536 }), /limit of 65536/);
  // zstd: an RLE block yields 128 KiB from 4 bytes; 30 such blocks (3.75 MiB) exceed a 1 MiB cap
  const z: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]; // FHD 0 (no FCS, not single segment), window 2 MiB
  for (let i = 0; i < 30; i++) {
    const last = i === 29 ? 1 : 0;
    const bh = (131072 << 3) | (1 << 1) | last;
    z.push(bh & 0xff, (bh >>> 8) & 0xff, (bh >>> 16) & 0xff, 0x41);
  }
  assert.equal(zstdDecompress(new Uint8Array(z)).length, 30 * 131072);
  assert.throws(() => zstdDecompress(new Uint8Array(z), { maxOutput: 1 << 20 }), /limit/);
});

test('deflate bomb: 16 MiB of zeros stops at the default 4 MiB cap', () => {
  const bomb = new Uint8Array(deflateRawSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 }));
  assert.ok(bomb.length < 32 * 1024);
  assert.throws(() => inflateRaw(bomb), /limit of 4194304 bytes/);
  const r = detect(bomb);
  assert.equal(r.ok, false);
  assert.match(r.attempts[0].error, /limit/);
  assert.equal(inflateRaw(bomb, { maxOutput: 16 * 1024 * 1024 }).length, 16 * 1024 * 1024);
});

test('invalid options are programming errors (RangeError), not decode failures', () => {
  const b = fixture('vectors/tiny.lz4');
  assert.throws(() => detectAndDecompress(b, { maxOutput: -1 }), RangeError);
  assert.throws(() => lz4DecompressBlock(b, { maxOutput: Number.NaN }), RangeError);
  assert.throws(() => inflateRaw(b, { maxOutput: 2 ** 40 }), RangeError);
});
