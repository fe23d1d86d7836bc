import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Rechunker } from '../../../src/flash/rechunk.js';
import { BmapRangeSelector } from '../../../src/flash/bmap-ranges.js';
import type { Bmap } from '../../../src/flash/bmap.js';
import { SourceError } from '../../../src/flash/errors.js';

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('Rechunker: pieces of any size come out as fixed-size chunks at the right offsets, the last one short', async () => {
  const got: { offset: number; data: Uint8Array }[] = [];
  const r = new Rechunker(4096, async (offset, data) => void got.push({ offset, data }));
  const all = bytes(4096 * 3 + 100);
  for (const [a, b] of [
    [0, 1],
    [1, 5000],
    [5000, 5000],
    [5000, 9000],
    [9000, all.length],
  ]) {
    await r.push(all.subarray(a, b));
  }
  assert.equal(r.taken, all.length);
  await r.flush();
  await r.flush();
  assert.deepEqual(
    got.map((c) => [c.offset, c.data.length]),
    [
      [0, 4096],
      [4096, 4096],
      [8192, 4096],
      [12288, 100],
    ],
  );
  assert.ok(Buffer.concat(got.map((c) => c.data)).equals(Buffer.from(all)));
  // each chunk is its own buffer: a sink may keep it
  assert.notEqual(got[0].data.buffer, got[1].data.buffer);
});

function bmapOf(ranges: Bmap['ranges'], imageSize: number, checksumType?: string): Bmap {
  const blockSize = 4096;
  const mapped = ranges.reduce((n, r) => n + r.last - r.first + 1, 0);
  return {
    path: 'x.bmap',
    version: '2.0',
    imageSize,
    blockSize,
    blocksCount: Math.ceil(imageSize / blockSize),
    mappedBlocksCount: mapped,
    checksumType,
    ranges,
    mappedBytes: mapped * blockSize,
  };
}

test('BmapRangeSelector: only mapped ranges pass, split across chunk boundaries, and their checksums are checked', async () => {
  const image = bytes(4096 * 8, 7);
  const sha = (a: number, b: number) =>
    createHash('sha256')
      .update(image.subarray(a * 4096, (b + 1) * 4096))
      .digest('hex');
  const bmap = bmapOf(
    [
      { first: 1, last: 2, checksum: sha(1, 2) },
      { first: 5, last: 5, checksum: sha(5, 5) },
    ],
    image.length,
    'sha256',
  );
  const got: [number, number][] = [];
  const sel = new BmapRangeSelector(bmap, 'x.img', async (s, d) => void got.push([s, d.length]));
  for (let off = 0; off < image.length; off += 6000) await sel.take(off, image.subarray(off, Math.min(image.length, off + 6000)));
  assert.deepEqual(got, [
    [4096, 1904],
    [6000, 6000],
    [12000, 288],
    [20480, 3520],
    [24000, 576],
  ]);

  const bad = bmapOf([{ first: 1, last: 2, checksum: '00'.repeat(32) }], image.length, 'sha256');
  const sel2 = new BmapRangeSelector(bad, 'x.img', async () => undefined);
  await assert.rejects(sel2.take(0, image), (e: unknown) => e instanceof SourceError && /checksum mismatch for blocks 1-2/.test((e as Error).message));
});
