// bzip2 decoded block by block on workers: streams of many blocks (cut at arbitrary bit offsets)
// decode to the original, in order, and a damaged block or stream CRC anywhere is caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decompressFile } from '../../../src/flash/decompress.js';
import { SourceError } from '../../../src/flash/errors.js';
import { tempDir } from './helpers.js';

const haveBzip2 = spawnSync('bzip2', ['--help'], { stdio: 'ignore' }).status === 0;

async function decode(path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of decompressFile(path, 'bzip2')) parts.push(c);
  return Buffer.concat(parts);
}

test('a bzip2 -1 stream of 12 blocks, and two such streams concatenated, decode to the original', { skip: !haveBzip2 && 'bzip2 not installed' }, async (t) => {
  const dir = tempDir(t);
  // random bytes and text runs, so block ends fall at every bit offset
  const data = Buffer.concat(Array.from({ length: 12 }, (_, i) => (i % 2 ? randomBytes(90_000) : Buffer.from('crashcart '.repeat(9000 + i * 7)))));
  const bz = spawnSync('bzip2', ['-1', '-c'], { input: data, maxBuffer: 64 << 20 }).stdout;
  const one = join(dir, 'one.bz2');
  await writeFile(one, bz);
  assert.ok((await decode(one)).equals(data));
  const two = join(dir, 'two.bz2');
  await writeFile(two, Buffer.concat([bz, bz]));
  assert.ok((await decode(two)).equals(Buffer.concat([data, data])));
  // a flipped byte in the middle (inside some block) and in the stream CRC are both caught
  for (const at of [Math.floor(bz.length / 2), bz.length - 3]) {
    const bad = Buffer.from(bz);
    bad[at] ^= 0x04;
    const p = join(dir, `bad-${at}.bz2`);
    await writeFile(p, bad);
    await assert.rejects(decode(p), (e: unknown) => e instanceof SourceError && /corrupt/.test(e.message));
  }
});
