/**
 * Android sparse images: detection, flashing (RAW and FILL chunks written, DONT_CARE chunks
 * skipped like bmap holes), CRC32 chunks checked, damaged files refused — checked against
 * libsparse's own simg2img / img2simg.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { SourceError } from '../../../src/flash/errors.js';
import { flashImage } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { SKIP_LIBSPARSE, img2simg, simg2img } from '../../helpers/image-tools.js';
import { tempDir } from './helpers.js';
import { pattern } from '../../helpers/pattern.js';

const BS = 4096;

type Chunk = { raw: Uint8Array } | { fill: number; blocks: number } | { skip: number } | { crc: 'auto' | number };

/** Writes an Android sparse image from chunks; 'auto' CRC32 chunks get the CRC of the output so far (skipped blocks as zeros). */
function buildSparse(chunks: Chunk[]): Buffer {
  const parts: Buffer[] = [];
  let blocks = 0;
  let crc = 0;
  for (const c of chunks) {
    const head = Buffer.alloc(12);
    let data: Buffer;
    if ('raw' in c) {
      head.writeUInt16LE(0xcac1, 0);
      head.writeUInt32LE(c.raw.length / BS, 4);
      data = Buffer.from(c.raw);
      crc = crc32(data, crc);
      blocks += c.raw.length / BS;
    } else if ('fill' in c) {
      head.writeUInt16LE(0xcac2, 0);
      head.writeUInt32LE(c.blocks, 4);
      data = Buffer.alloc(4);
      data.writeUInt32LE(c.fill, 0);
      const out = Buffer.alloc(c.blocks * BS);
      for (let i = 0; i < out.length; i += 4) out.writeUInt32LE(c.fill, i);
      crc = crc32(out, crc);
      blocks += c.blocks;
    } else if ('skip' in c) {
      head.writeUInt16LE(0xcac3, 0);
      head.writeUInt32LE(c.skip, 4);
      data = Buffer.alloc(0);
      crc = crc32(Buffer.alloc(c.skip * BS), crc);
      blocks += c.skip;
    } else {
      head.writeUInt16LE(0xcac4, 0);
      data = Buffer.alloc(4);
      data.writeUInt32LE(c.crc === 'auto' ? crc >>> 0 : c.crc, 0);
    }
    head.writeUInt32LE(12 + data.length, 8);
    parts.push(head, data);
  }
  const h = Buffer.alloc(28);
  h.writeUInt32LE(0xed26ff3a, 0);
  h.writeUInt16LE(1, 4);
  h.writeUInt16LE(28, 8);
  h.writeUInt16LE(12, 10);
  h.writeUInt32LE(BS, 12);
  h.writeUInt32LE(blocks, 16);
  h.writeUInt32LE(chunks.length, 20);
  return Buffer.concat([h, ...parts]);
}

/** Flashes `path` onto a card pre-filled with 0xEE; returns the card. */
async function flashed(path: string, size: number): Promise<{ card: MemoryDevice; report: Awaited<ReturnType<typeof flashImage>> }> {
  const card = new MemoryDevice(new Uint8Array(size).fill(0xee), { name: 'card' });
  const src = await openImageSource(path);
  try {
    const report = await flashImage(src, [{ device: card }], { verify: true });
    return { card, report };
  } finally {
    await src.close();
  }
}

const CHUNKS: Chunk[] = [
  { raw: pattern(3 * BS, 1) },
  { fill: 0x11223344, blocks: 5 },
  { skip: 7 },
  { crc: 'auto' },
  { raw: pattern(BS, 2) },
  { skip: 2 },
  { fill: 0, blocks: 3 },
  { crc: 'auto' },
];

test(
  'a hand-built sparse image with every chunk type: simg2img accepts it; crashcart writes RAW and FILL blocks, leaves DONT_CARE blocks alone',
  { skip: SKIP_LIBSPARSE },
  async (t) => {
    const dir = tempDir(t);
    const simg = join(dir, 'all.simg');
    writeFileSync(simg, buildSparse(CHUNKS));
    simg2img(simg, join(dir, 'all.raw'));
    const expanded = readFileSync(join(dir, 'all.raw'));
    assert.equal(expanded.length, 21 * BS);
    const src = await openImageSource(simg);
    assert.equal(src.format, 'android-sparse');
    assert.deepEqual(src.size, { exact: 21 * BS });
    assert.deepEqual(src.bmap!.ranges, [
      { first: 0, last: 7 },
      { first: 15, last: 15 },
      { first: 18, last: 20 },
    ]);
    await src.close();
    const { card, report } = await flashed(simg, 24 * BS);
    assert.equal(report.targets[0].ok, true, String(report.targets[0].error));
    assert.equal(report.targets[0].bytesWritten, 12 * BS);
    const skipped = new Set([...Array.from({ length: 7 }, (_, i) => 8 + i), 16, 17, 21, 22, 23]);
    for (let b = 0; b < 24; b++) {
      const got = Buffer.from(card.data.subarray(b * BS, (b + 1) * BS));
      if (skipped.has(b))
        assert.ok(
          got.every((x) => x === 0xee),
          `block ${b} (DONT_CARE or past the image) is untouched`,
        );
      else assert.ok(got.equals(expanded.subarray(b * BS, (b + 1) * BS)), `block ${b} equals simg2img's output`);
    }
  },
);

test('img2simg output flashes to exactly what simg2img expands it to', { skip: SKIP_LIBSPARSE }, async (t) => {
  const dir = tempDir(t);
  const raw = new Uint8Array(3 * 1024 * 1024);
  raw.set(pattern(70000, 3), 0);
  raw.set(new Uint8Array(8192).fill(0x5a), 1 << 20);
  raw.set(pattern(5000, 4), 2 * 1024 * 1024 + 100);
  writeFileSync(join(dir, 'in.raw'), raw);
  img2simg(join(dir, 'in.raw'), join(dir, 'in.simg'));
  simg2img(join(dir, 'in.simg'), join(dir, 'back.raw'));
  const back = readFileSync(join(dir, 'back.raw'));
  const { card, report } = await flashed(join(dir, 'in.simg'), raw.length);
  assert.equal(report.targets[0].ok, true, String(report.targets[0].error));
  assert.ok(Buffer.from(card.data).equals(back));
});

test('damaged sparse images are refused: a wrong CRC32 chunk, a truncated file, chunks that do not add up, an unknown chunk type', async (t) => {
  const dir = tempDir(t);
  const write = (name: string, b: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, b);
    return p;
  };
  const good = buildSparse(CHUNKS);
  const flipped = Buffer.from(good);
  flipped[28 + 12 + 100] ^= 1; // a byte of the first RAW chunk
  const r = await flashed(write('crc.simg', flipped), 24 * BS);
  assert.equal(r.report.targets[0].ok, false);
  assert.match(String(r.report.targets[0].error?.message), /CRC32 chunk at block 15 says 0x[0-9a-f]{8}, the data before it gives/);
  assert.equal((r.report.targets[0].error as SourceError).exitCode, 10);
  await assert.rejects(openImageSource(write('trunc.simg', good.subarray(0, good.length - 5))), (e: unknown) => e instanceof SourceError && /truncated/.test(e.message));
  const blocks = Buffer.from(good);
  blocks.writeUInt32LE(99, 16);
  await assert.rejects(openImageSource(write('blocks.simg', blocks)), /the chunks describe 21 blocks, the header 99/);
  const type = Buffer.from(good);
  type.writeUInt16LE(0xcac9, 28);
  await assert.rejects(openImageSource(write('type.simg', type)), /chunk 1 at byte 28 has unknown type 0xcac9/);
  await assert.rejects(openImageSource(write('bmap.simg', good), { bmap: join(dir, 'x.bmap') }), /carries its own block map/);
});
