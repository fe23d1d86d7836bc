// Decoding on a worker thread gives what the in-thread decoders give: the same bytes, the same
// warnings, the same failures (SourceErrors with the decoder's message), and it stops on abort.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decompressOffThread } from '../../../src/flash/decode-off-thread.js';
import { decompressFile } from '../../../src/flash/decompress.js';
import type { ImageFormat } from '../../../src/flash/detect.js';
import { SourceError } from '../../../src/flash/errors.js';
import { DISK, FIXTURES, fixture, tempDir } from './helpers.js';

type Decoder = typeof decompressFile;

async function run(decode: Decoder, path: string, format: ImageFormat): Promise<{ bytes?: Buffer; warnings: string[]; inputs: number[]; error?: unknown }> {
  const parts: Uint8Array[] = [];
  const warnings: string[] = [];
  const inputs: number[] = [];
  try {
    for await (const c of decode(path, format, { onWarning: (w) => warnings.push(w), onInput: (n) => inputs.push(n) })) parts.push(c);
    return { bytes: Buffer.concat(parts), warnings, inputs };
  } catch (error) {
    return { warnings, inputs, error };
  }
}

test('every format decodes on the worker to the same bytes, counting the whole file as input', async () => {
  const disk = DISK();
  for (const [name, format] of [
    ['disk.img.gz', 'gzip'],
    ['disk.img.zst', 'zstd'],
    ['disk.img.xz', 'xz'],
    ['disk.img.bz2', 'bzip2'],
    ['disk.img', 'raw'],
  ] as const) {
    const r = await run(decompressOffThread, fixture(name), format);
    assert.equal(r.error, undefined, name);
    assert.ok(r.bytes!.equals(disk), `${name}: decoded bytes`);
    const size = (await readFile(fixture(name))).length;
    assert.equal(r.inputs[r.inputs.length - 1], size, `${name}: input counted to the end`);
  }
});

test('warnings and failures come back as the in-thread decoder gives them', async (t) => {
  const dir = tempDir(t);
  const nocheck = join(FIXTURES, 'integrity', 'data.nocheck.zst');
  const a = await run(decompressOffThread, nocheck, 'zstd');
  const b = await run(decompressFile, nocheck, 'zstd');
  assert.deepEqual(a.warnings, b.warnings);
  assert.equal(a.warnings.length, 1);
  const zst = Buffer.from(await readFile(join(FIXTURES, 'integrity', 'data.zst')));
  zst[zst.length - 1] ^= 1;
  const bad = join(dir, 'bad.zst');
  await writeFile(bad, zst);
  const x = await run(decompressOffThread, bad, 'zstd');
  const y = await run(decompressFile, bad, 'zstd');
  assert.ok(x.error instanceof SourceError, String(x.error));
  assert.equal((x.error as SourceError).message, (y.error as Error).message);
  assert.match((x.error as Error).message, /content checksum mismatch/);
});

test('an abort stops the worker and rejects with the abort reason', async () => {
  const ac = new AbortController();
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of decompressOffThread(fixture('disk.img.bz2'), 'bzip2', { signal: ac.signal })) if (++n === 1) ac.abort();
    })(),
    (e: unknown) => (e as Error).name === 'AbortError',
  );
});
