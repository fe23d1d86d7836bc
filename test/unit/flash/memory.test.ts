// Bounded memory while decompressing mostly-zero images: a child process decodes a large
// all-zero stream made here and reports its peak RSS. fzstd (the zstd decoder used before) decoded
// every complete block it was given in one call, and so did the bzip2 stream decoder used before (every block it had input
// for at once), so a few KiB of compressed zeros became gigabytes in memory before the fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decompressFile } from '../../../src/flash/decompress.js';
import { zstdVerifiedStream } from '../../../src/flash/zstd-stream.js';
import { DISK, fixture, tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const RSS_BOUND_MIB = 400;

/** A zstd frame (no content size, no checksum, 2 MiB window) of `blocks` RLE blocks of 128 KiB zeros. */
function zstdZeros(blocks: number): Buffer {
  const b = Buffer.alloc(6 + 4 * blocks);
  b.writeUInt32LE(0xfd2fb528, 0);
  b[4] = 0x00; // frame header descriptor: no content size, not single segment, no checksum
  b[5] = 0x58; // window descriptor: 2 MiB
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const v = last | (1 << 1) | ((128 * 1024) << 3); // RLE block of 128 KiB
    b.writeUIntLE(v, 6 + 4 * i, 3);
    b[6 + 4 * i + 3] = 0;
  }
  return b;
}

/** `bzip2 -9` of 40 MiB of zeros (one block, 49 bytes), made with bzip2 1.0.8. */
const BZIP2_40MIB_ZEROS = Buffer.from('QlpoOTFBWSZTWVfG138BQUFAgMAAAAEACCAAMMwFKaZAkCbFAkCeLuSKcKEgr42u/g==', 'base64');

const CHILD = `
const { decompressFile } = await import(process.argv[1]);
const [file, format] = process.argv.slice(2);
let total = 0, nonZero = 0;
for await (const c of decompressFile(file, format)) {
  total += c.length;
  for (let i = 0; i < c.length; i += 4093) nonZero |= c[i];
  nonZero |= c[c.length - 1];
}
process.stdout.write(JSON.stringify({ total, nonZero, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
`;

async function peakRss(file: string, format: 'zstd' | 'bzip2'): Promise<{ total: number; nonZero: number; maxRssMiB: number }> {
  const mod = new URL('../../../src/flash/decompress.js', import.meta.url).href;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', CHILD, mod, file, format], { maxBuffer: MiB });
  return JSON.parse(stdout);
}

test('zstd (libzstd, wasm): 2 GiB of zeros from a 64 KiB stream decode with bounded memory', { timeout: 120_000 }, async (t) => {
  const p = join(tempDir(t), 'zeros.zst');
  await writeFile(p, zstdZeros(16384));
  const r = await peakRss(p, 'zstd');
  t.diagnostic(`peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
  assert.equal(r.total, 2048 * MiB);
  assert.equal(r.nonZero, 0);
  assert.ok(r.maxRssMiB < RSS_BOUND_MIB, `peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
});

test('bzip2: 320 MiB of zeros from 392 bytes (concatenated streams) decode with bounded memory', { timeout: 120_000 }, async (t) => {
  const p = join(tempDir(t), 'zeros.bz2');
  await writeFile(p, Buffer.concat(Array.from({ length: 8 }, () => BZIP2_40MIB_ZEROS)));
  const r = await peakRss(p, 'bzip2');
  t.diagnostic(`peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
  assert.equal(r.total, 320 * MiB);
  assert.equal(r.nonZero, 0);
  assert.ok(r.maxRssMiB < RSS_BOUND_MIB, `peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
});

test('zstd frames are decoded a block at a time into pieces of at most 1 MiB, whatever the read sizes', async () => {
  const real = await readFile(fixture('disk.img.zst'));
  const skippable = Buffer.concat([Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
  const zeros = zstdZeros(40);
  const input = Buffer.concat([skippable, real, zeros, real]);
  const disk = Buffer.from(DISK());
  const want = Buffer.concat([disk, Buffer.alloc(40 * 128 * 1024), disk]);
  for (const step of [1, 2, 3, 5, 7, 13, 4096, 1 << 20]) {
    let pulled = 0;
    const chunks = (async function* () {
      for (let i = 0; i < input.length; i += step) {
        pulled += Math.min(step, input.length - i);
        yield new Uint8Array(input.subarray(i, i + step));
      }
    })();
    const out: Uint8Array[] = [];
    let most = 0;
    let lastPulled = -1;
    let sincePull = 0;
    for await (const c of zstdVerifiedStream(chunks)) {
      out.push(c);
      // output handed on while no more input was read: the output window (1 MiB) and one block
      sincePull = pulled === lastPulled ? sincePull + c.length : c.length;
      lastPulled = pulled;
      most = Math.max(most, sincePull);
    }
    assert.ok(Buffer.concat(out).equals(want), `step ${step}: decoded output`);
    assert.ok(most <= MiB + 128 * 1024 || step >= 4096, `step ${step}: ${most} bytes decoded without reading input`);
    assert.ok(
      out.every((c) => c.length <= MiB),
      `step ${step}: output pieces of at most 1 MiB`,
    );
  }
});

test('bzip2: concatenated streams decode one after the other; a truncated stream is an error', async (t) => {
  const dir = tempDir(t);
  const bz = await readFile(fixture('disk.img.bz2'));
  const p = join(dir, 'two.bz2');
  await writeFile(p, Buffer.concat([bz, BZIP2_40MIB_ZEROS, bz]));
  const parts: Uint8Array[] = [];
  for await (const c of decompressFile(p, 'bzip2')) parts.push(c);
  const disk = Buffer.from(DISK());
  assert.ok(Buffer.concat(parts).equals(Buffer.concat([disk, Buffer.alloc(40 * MiB), disk])));
  const q = join(dir, 'cut.bz2');
  await writeFile(q, Buffer.concat([bz, BZIP2_40MIB_ZEROS.subarray(0, 30)]));
  await assert.rejects(async () => {
    for await (const _ of decompressFile(q, 'bzip2'));
  }, /bzip2 decompression failed after 3146728 bytes of output/);
});
