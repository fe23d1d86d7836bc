// zstd frame skipping for bmap holes, against files made by the zstd tool: frames whose header
// declares their size and that hold no wanted byte are walked, not decoded (a damaged checksum
// in such a frame goes unnoticed, since its bytes are never written); frames without a declared
// size, frames with wanted bytes and skippable frames are handled as before; a truncated frame
// is still an error, skipped or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodedExtentsOffThread } from '../../../src/flash/decode-off-thread.js';
import { decompressFile } from '../../../src/flash/decompress.js';
import { SourceError } from '../../../src/flash/errors.js';
import { MappedRanges } from '../../../src/flash/mapped-ranges.js';
import { zstdVerifiedStream } from '../../../src/flash/zstd-stream.js';
import { flashImage } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { tempDir } from './helpers.js';

const KiB = 1024;
const haveZstd = spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = haveZstd ? false : 'the zstd tool (Debian package zstd) is not installed';

/** Deterministic bytes that compress a little (text-like), `n` of them, from `seed`. */
function data(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    b[i] = 97 + ((s >>> 16) % 16);
  }
  return b;
}

/** `zstd` of `input`: from a file (the header declares the content size) or from stdin (it does not). */
function zstd(input: Buffer, fromStdin = false, dir = ''): Buffer {
  if (fromStdin) return spawnSync('zstd', ['-q', '-3', '--check', '-c'], { input, maxBuffer: 1 << 26 }).stdout;
  const p = join(dir, `in-${Math.random().toString(36).slice(2)}`);
  spawnSync('sh', ['-c', 'cat > "$0"', p], { input });
  return spawnSync('zstd', ['-q', '-3', '--check', '-c', p], { maxBuffer: 1 << 26 }).stdout;
}

const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('hello')]);

/** Four frames (A, B with a declared size; C without; D with) and a skippable frame, each part 300 KiB. */
function multiFrame(dir: string): { file: Buffer; image: Buffer; frames: { start: number; at: number; len: number }[] } {
  const parts = [data(300 * KiB, 1), data(300 * KiB, 2), data(300 * KiB, 3), data(300 * KiB, 4)];
  const z = [zstd(parts[0], false, dir), zstd(parts[1], false, dir), zstd(parts[2], true), zstd(parts[3], false, dir)];
  const file = Buffer.concat([z[0], skippable, z[1], z[2], z[3]]);
  const at = [0, z[0].length + skippable.length, z[0].length + skippable.length + z[1].length, z[0].length + skippable.length + z[1].length + z[2].length];
  return { file, image: Buffer.concat(parts), frames: parts.map((_, i) => ({ start: i * 300 * KiB, at: at[i], len: z[i].length })) };
}

async function* chunks(b: Buffer, step: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += step) yield new Uint8Array(b.subarray(i, i + step));
}

test('MappedRanges: the parts of a span inside sorted ranges', () => {
  const r = new MappedRanges([10, 20, 20, 30, 50, 60]);
  assert.deepEqual(r.within(0, 10), []);
  assert.deepEqual(r.within(0, 100), [
    [10, 20],
    [20, 30],
    [50, 60],
  ]);
  assert.deepEqual(r.within(15, 55), [
    [15, 20],
    [20, 30],
    [50, 55],
  ]);
  assert.deepEqual(r.within(30, 50), []);
  assert.throws(() => new MappedRanges([10, 20, 15, 30]), /sorted/);
});

test('zstd frames with a declared size are offered for skipping; skipped frames are not decoded', { skip }, async (t) => {
  const { file, image, frames } = multiFrame(tempDir(t));
  // B's content checksum damaged: decoding it fails, skipping it does not
  const bad = Buffer.from(file);
  bad[frames[1].at + frames[1].len - 1] ^= 0x01;
  await assert.rejects(async () => {
    for await (const _ of zstdVerifiedStream(chunks(bad, 4096)));
  }, /zstd frame 2 \(at byte \d+\): content checksum mismatch/);

  for (const step of [7, 4096, 1 << 20]) {
    const asked: [number, number][] = [];
    const out: Uint8Array[] = [];
    const skipFrame = (start: number, length: number) => {
      asked.push([start, length]);
      return start === frames[1].start;
    };
    for await (const c of zstdVerifiedStream(chunks(bad, step), { skipFrame, chunkSize: 64 * KiB })) out.push(c);
    // C declares no size: never asked, always decoded
    assert.deepEqual(asked, [
      [0, 300 * KiB],
      [300 * KiB, 300 * KiB],
      [900 * KiB, 300 * KiB],
    ]);
    assert.ok(Buffer.concat(out).equals(Buffer.concat([image.subarray(0, 300 * KiB), image.subarray(600 * KiB)])), `step ${step}: A, C and D decoded`);
    assert.ok(
      out.every((c) => c.length <= 64 * KiB),
      'pieces of at most the chunk size',
    );
  }
});

test('a truncated zstd frame is an error whether it is skipped or decoded', { skip }, async (t) => {
  const dir = tempDir(t);
  const { file, frames } = multiFrame(dir);
  const cut = file.subarray(0, frames[1].at + (frames[1].len >> 1));
  const p = join(dir, 'cut.zst');
  await writeFile(p, cut);
  for (const skipFrame of [undefined, () => true]) {
    await assert.rejects(
      async () => {
        for await (const _ of decompressFile(p, 'zstd', { skipFrame }));
      },
      (e: unknown) => e instanceof SourceError && /truncated \(the file ends inside (a block of )?zstd frame 2/.test(e.message),
    );
  }
});

test('decoding on the worker with mapped ranges: only their bytes, at their offsets; frames in the holes are skipped', { skip }, async (t) => {
  const dir = tempDir(t);
  const { file, image, frames } = multiFrame(dir);
  const bad = Buffer.from(file);
  bad[frames[1].at + frames[1].len - 1] ^= 0x01; // frame B, in a hole
  const p = join(dir, 'multi.zst');
  await writeFile(p, bad);
  const mapped = [4 * KiB, 40 * KiB, 650 * KiB, 700 * KiB, 1100 * KiB, 1200 * KiB];
  const it = decodedExtentsOffThread(p, 'zstd', { mapped, chunkSize: 64 * KiB });
  const got: { offset: number; data: Buffer }[] = [];
  let r;
  while (!(r = await it.next()).done) got.push({ offset: r.value.offset, data: Buffer.from(r.value.data) });
  assert.equal(r.value, image.length, 'decoded size of the whole image, skipped frame included');
  let covered = 0;
  for (const g of got) {
    assert.ok(g.data.equals(image.subarray(g.offset, g.offset + g.data.length)), `bytes at ${g.offset}`);
    assert.equal(Math.floor(g.offset / (64 * KiB)), Math.floor((g.offset + g.data.length - 1) / (64 * KiB)), 'a piece stays within a chunk');
    assert.ok(new MappedRanges(mapped).within(g.offset, g.offset + g.data.length).length > 0);
    covered += g.data.length;
  }
  assert.equal(covered, 36 * KiB + 50 * KiB + 100 * KiB, 'every mapped byte, once');
  // without the ranges frame B is decoded, and its damage found
  await assert.rejects(async () => {
    for await (const _ of decodedExtentsOffThread(p, 'zstd', {}));
  }, /content checksum mismatch/);
});

test('flashing a multi-frame .zst with a bmap writes and verifies the mapped ranges; a damaged frame in a hole is never decoded', { skip }, async (t) => {
  const dir = tempDir(t);
  const { file, image, frames } = multiFrame(dir);
  const bad = Buffer.from(file);
  bad[frames[1].at + frames[1].len - 1] ^= 0x01;
  const img = join(dir, 'disk.img.zst');
  await writeFile(img, bad);
  const ranges: [number, number][] = [
    [0, 9], // blocks of 4 KiB
    [160, 199],
    [250, 299],
  ];
  const xml = ranges
    .map(
      ([a, b]) =>
        `<Range chksum="${createHash('sha256')
          .update(image.subarray(a * 4096, (b + 1) * 4096))
          .digest('hex')}">${a}-${b}</Range>`,
    )
    .join('\n');
  const mappedBlocks = ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  const bmap = join(dir, 'disk.bmap');
  await writeFile(
    bmap,
    `<?xml version="1.0" ?>\n<bmap version="2.0"><ImageSize>${image.length}</ImageSize><BlockSize>4096</BlockSize><BlocksCount>${image.length / 4096}</BlocksCount><MappedBlocksCount>${mappedBlocks}</MappedBlocksCount><ChecksumType>sha256</ChecksumType><BlockMap>${xml}</BlockMap></bmap>\n`,
  );
  const card = join(dir, 'card.img');
  await writeFile(card, Buffer.alloc(image.length, 0xee));
  const source = await openImageSource(img, { bmap });
  const dev = await openImageFile(card, { write: true });
  try {
    const r = await flashImage(source, [{ device: dev }], { chunkSize: 64 * KiB });
    assert.equal(r.ok, true, r.targets[0].error?.message);
    assert.equal(r.targets[0].verified, true);
    assert.equal(r.targets[0].bytesWritten, mappedBlocks * 4096);
    assert.equal(r.image.decoder, 'libzstd (wasm)');
    const { readFile } = await import('node:fs/promises');
    const onCard = await readFile(card);
    for (const [a, b] of ranges) assert.ok(onCard.subarray(a * 4096, (b + 1) * 4096).equals(image.subarray(a * 4096, (b + 1) * 4096)), `blocks ${a}-${b}`);
    assert.equal(onCard[100 * 4096], 0xee, 'a hole is left alone');
  } finally {
    await dev.close();
    await source.close();
  }
});
