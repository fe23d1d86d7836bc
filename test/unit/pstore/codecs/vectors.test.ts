import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectAndDecompress, inflateRaw, lz4DecompressBlock, lzo1xDecompress, sw842Decompress, zstdDecompress, type CodecName } from '../../../../src/pstore/codecs/index.js';
import { SAMPLES, VARIANTS, fixture, sameBytes } from './helpers.js';

const DIRECT: Record<CodecName, (b: Uint8Array) => Uint8Array> = {
  deflate: (b) => inflateRaw(b),
  lz4: (b) => lz4DecompressBlock(b),
  lzo: (b) => lzo1xDecompress(b),
  zstd: (b) => zstdDecompress(b),
  '842': (b) => sw842Decompress(b),
};

for (const s of SAMPLES) {
  const plain = fixture(s.plain);
  for (const v of VARIANTS) {
    const file = `vectors/${s.name}.${v.suffix}`;
    test(`${file} (${v.producer}) decodes with ${v.codec}`, () => {
      const out = DIRECT[v.codec](fixture(file));
      assert.equal(out.length, plain.length);
      assert.ok(sameBytes(out, plain), 'decoded bytes differ from the original');
    });
    test(`${file}: detection picks ${v.codec}`, () => {
      const r = detectAndDecompress(fixture(file));
      assert.ok(r.ok, JSON.stringify(r.attempts));
      assert.equal(r.algorithm, v.codec);
      assert.ok(sameBytes(r.data, plain));
    });
  }
}

test('kernel-logic lzo1x_1_compress output (dmesg.klzo) decodes as lzo', () => {
  const r = detectAndDecompress(fixture('vectors/dmesg.klzo'));
  assert.ok(r.ok);
  assert.equal(r.algorithm, 'lzo');
  assert.ok(sameBytes(r.data, fixture('vectors/dmesg.txt')));
});

test('the lzorle vectors really carry the bitstream-version prefix and zero runs', () => {
  const v = fixture('vectors/mixed.lzorle');
  assert.deepEqual([v[0], v[1]], [17, 1]);
  // a zero-run instruction: M4 byte 0x18..0x1f followed by 0xfc|x 0xff
  let found = false;
  for (let i = 2; i + 2 < v.length; i++) {
    if ((v[i] & 0xf8) === 0x18 && (v[i + 1] & 0xfc) === 0xfc && v[i + 2] === 0xff) found = true;
  }
  assert.ok(found);
});

test('detection reports earlier candidates that failed, in order', () => {
  const lz4 = detectAndDecompress(fixture('vectors/dmesg.lz4'));
  assert.ok(lz4.ok);
  assert.deepEqual(
    lz4.attempts.map((a) => a.algorithm),
    ['deflate'],
  );
  const sw = detectAndDecompress(fixture('vectors/dmesg.842'));
  assert.ok(sw.ok);
  assert.deepEqual(
    sw.attempts.map((a) => a.algorithm),
    ['deflate', 'lz4', 'lzo'],
  );
  for (const a of sw.attempts) assert.ok(a.error.length > 0);
  const z = detectAndDecompress(fixture('vectors/dmesg.zst'));
  assert.ok(z.ok);
  assert.deepEqual(z.attempts, []);
});

test('only: restricts the candidates', () => {
  const deflate = fixture('vectors/dmesg.deflate-w11');
  const r = detectAndDecompress(deflate, { only: ['lz4'] });
  assert.equal(r.ok, false);
  assert.deepEqual(
    r.attempts.map((a) => a.algorithm),
    ['lz4'],
  );
  const r2 = detectAndDecompress(fixture('vectors/dmesg.842'), { only: ['842', 'lz4'] });
  assert.ok(r2.ok);
  assert.equal(r2.algorithm, '842');
  assert.deepEqual(
    r2.attempts.map((a) => a.algorithm),
    ['lz4'],
  );
  assert.throws(() => detectAndDecompress(deflate, { only: ['gzip' as CodecName] }), RangeError);
});
