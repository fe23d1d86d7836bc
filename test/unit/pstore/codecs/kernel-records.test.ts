import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { detectAndDecompress, inflateRaw, lz4DecompressBlock, type CodecName } from '../../../../src/pstore/codecs/index.js';
import { FIXTURES, fixture } from './helpers.js';

interface Entry {
  payload: string;
  fixture: string;
  zoneIndex: number;
  algorithm: CodecName;
  readout: string;
  readoutLength: number;
  readoutSha256: string;
  readoutFirstLine: string;
}

const manifest = JSON.parse(readFileSync(new URL('kernel/manifest.json', FIXTURES), 'utf8')) as Entry[];

test('manifest lists the compressed kmsg records of the lz4 and deflate fixtures', () => {
  assert.equal(manifest.length, 11);
  assert.deepEqual([...new Set(manifest.map((e) => e.algorithm))].sort(), ['deflate', 'lz4']);
});

for (const e of manifest) {
  test(`${e.fixture} kmsg zone ${e.zoneIndex}: equals ${e.readout} byte for byte (${e.algorithm})`, () => {
    const payload = fixture(`kernel/${e.payload}`);
    const r = detectAndDecompress(payload);
    assert.ok(r.ok, JSON.stringify(r.attempts));
    assert.equal(r.algorithm, e.algorithm);
    assert.equal(r.data.length, e.readoutLength);
    assert.equal(createHash('sha256').update(r.data).digest('hex'), e.readoutSha256);
    const text = Buffer.from(r.data).toString('latin1');
    assert.equal(text.slice(0, text.indexOf('\n')), e.readoutFirstLine);
    const direct = e.algorithm === 'lz4' ? lz4DecompressBlock(payload) : inflateRaw(payload);
    assert.equal(direct.length, e.readoutLength);
  });
}

test('kernel lz4 records are rejected by the other decoders', () => {
  for (const e of manifest.filter((x) => x.algorithm === 'lz4')) {
    const r = detectAndDecompress(fixture(`kernel/${e.payload}`), { only: ['deflate', 'lzo', 'zstd', '842'] });
    assert.equal(r.ok, false);
    assert.equal(r.attempts.length, 4);
  }
});

test('kernel deflate records are rejected by the other decoders', () => {
  for (const e of manifest.filter((x) => x.algorithm === 'deflate')) {
    const r = detectAndDecompress(fixture(`kernel/${e.payload}`), { only: ['lz4', 'lzo', 'zstd', '842'] });
    assert.equal(r.ok, false);
  }
});
