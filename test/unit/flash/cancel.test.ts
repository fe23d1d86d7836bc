/**
 * Stopping a flash or a read through its AbortSignal after N chunks: the resume point is the
 * end of the last completed write (flushed), the ddrescue map holds every finished chunk, and
 * continuing from there gives exactly the image. Also: after a failed verification the resume
 * point goes back to the first differing chunk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockDevice, IoOptions } from '../../../src/blockdev/block-device.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { flashImage, type FlashEvent, type FlashOptions } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { readDevice, ReadCancelledError } from '../../../src/flash/read.js';
import { parseRescueMap } from '../../../src/flash/ddrescue-map.js';
import { ResumeJournal } from '../../../src/flash/resume.js';
import { ExitCode } from '../../../src/errors.js';
import { DISK, FaultyDevice, fixture, tempDir } from './helpers.js';

const CHUNK = 64 * 1024;
const HEAD = 64 * 1024;
const CARD = 4 * 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Calls `after(n)` once a write (or read) completes; counts them. */
class CountingDevice extends FaultyDevice {
  writesDone = 0;
  readsDone = 0;
  onWrite?: (n: number) => void;
  onRead?: (n: number) => void;
  override async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    await super.write(offset, data, opts);
    this.onWrite?.(++this.writesDone);
  }
  override async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    opts?.signal?.throwIfAborted();
    const d = await super.read(offset, length, opts);
    this.onRead?.(++this.readsDone);
    return d;
  }
}

const OPTS: FlashOptions = { chunkSize: CHUNK, headSize: HEAD, checkpointBytes: 1024 * 1024 * 1024, retryDelayMs: 1, progressIntervalMs: 0 };

async function flashMem(card: BlockDevice, opts: FlashOptions & { resumeFrom?: number } = {}) {
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  try {
    return await flashImage(source, [{ device: card, ...(opts.resumeFrom !== undefined ? { resumeFrom: opts.resumeFrom } : {}) }], { ...OPTS, ...opts });
  } finally {
    await source.close();
  }
}

for (const n of [1, 5, 17]) {
  test(`flash aborted after ${n} chunk write(s): resume point = end of the last completed write; --resume completes the image`, async () => {
    const img = DISK();
    const mem = new MemoryDevice(new Uint8Array(CARD).fill(0xa5));
    const card = new CountingDevice(mem, 'card');
    const ac = new AbortController();
    card.onWrite = (k) => {
      if (k === n) ac.abort(new DOMException('stop', 'AbortError'));
    };
    const events: FlashEvent[] = [];
    const r = await flashMem(card, { signal: ac.signal, onEvent: (e) => events.push(e) });
    assert.equal(r.exitCode, ExitCode.CANCELLED);
    const t = r.targets[0];
    assert.equal(t.ok, false);
    assert.equal(t.error?.name, 'CancelledError');
    const lastEnd = Math.max(...card.writes.map((w) => w.offset + w.length));
    assert.ok(card.writes.length >= n);
    assert.equal(t.error?.resumeOffset, lastEnd, 'resume point is the end of the last completed write');
    assert.ok(lastEnd >= HEAD + n * CHUNK - CHUNK);
    const cps = events.filter((e): e is Extract<FlashEvent, { type: 'checkpoint' }> => e.type === 'checkpoint');
    assert.equal(cps[cps.length - 1]?.offset, lastEnd, 'a checkpoint reports it (the CLI journals it)');
    // The head (boot sector) is never written by a stopped flash.
    assert.ok(
      mem.data.subarray(0, HEAD).every((b) => b === 0xa5),
      'head held back',
    );
    assert.ok(Buffer.from(mem.data.subarray(HEAD, lastEnd)).equals(Buffer.from(img.subarray(HEAD, lastEnd))), 'everything below the resume point is on the card');

    const again = new CountingDevice(mem, 'card');
    const r2 = await flashMem(again, { resumeFrom: lastEnd });
    assert.equal(r2.exitCode, 0, JSON.stringify(r2.targets[0].error));
    assert.equal(r2.targets[0].verified, true);
    assert.ok(
      again.writes.every((w) => w.offset >= lastEnd || w.offset < HEAD),
      'nothing below the resume point rewritten',
    );
    assert.equal(sha(mem.data.subarray(0, img.length)), sha(img));
  });
}

test('flash: after a failed verification the resume point is the first differing chunk; resuming there fixes the card', async () => {
  const img = DISK();
  const mem = new MemoryDevice(new Uint8Array(CARD).fill(0xa5));
  const bad = new FaultyDevice(mem, 'card');
  bad.corruptAt = 2 * 1024 * 1024 + 777;
  const r = await flashMem(bad);
  assert.equal(r.exitCode, ExitCode.VERIFY);
  assert.equal(r.targets[0].error?.resumeOffset, 2 * 1024 * 1024, 'chunk holding the first bad byte');
  const fixedUp = new CountingDevice(mem, 'card');
  const r2 = await flashMem(fixedUp, { resumeFrom: r.targets[0].error?.resumeOffset });
  assert.equal(r2.exitCode, 0, JSON.stringify(r2.targets[0].error));
  assert.ok(
    fixedUp.writes.some((w) => w.offset <= bad.corruptAt! && w.offset + w.length > bad.corruptAt!),
    'the bad chunk was rewritten',
  );
  assert.equal(sha(mem.data.subarray(0, img.length)), sha(img));
});

test('flash: a verification failure in the first chunk resumes from 0', async () => {
  const mem = new MemoryDevice(new Uint8Array(CARD).fill(0xa5));
  const bad = new FaultyDevice(mem, 'card');
  bad.corruptAt = 100;
  const r = await flashMem(bad);
  assert.equal(r.exitCode, ExitCode.VERIFY);
  assert.equal(r.targets[0].error?.resumeOffset, 0);
});

for (const n of [1, 9]) {
  test(`read aborted after ${n} chunk(s): map saved at the last finished chunk; running again gives the exact image`, async (t) => {
    const dir = tempDir(t);
    const img = DISK();
    const srcPath = join(dir, 'src.img');
    await writeFile(srcPath, img);
    const out = join(dir, 'out.img');
    const file = await openImageFile(srcPath);
    const dev = new CountingDevice(file, 'src');
    const ac = new AbortController();
    dev.onRead = (k) => {
      if (k === n) ac.abort(new DOMException('stop', 'AbortError'));
    };
    let err: unknown;
    try {
      await readDevice(dev, out, { chunkSize: CHUNK, signal: ac.signal });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ReadCancelledError, String(err));
    assert.equal(err.exitCode, ExitCode.CANCELLED);
    assert.equal(err.partial.position, n * CHUNK);
    assert.equal(err.partial.finishedBytes, n * CHUNK);
    assert.equal(err.partial.mapSaved, true);
    const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
    assert.equal(map.currentPos, n * CHUNK);
    assert.deepEqual(map.blocks[0], { pos: 0, size: n * CHUNK, status: '+' });
    const written = await readFile(out);
    assert.ok(written.subarray(0, n * CHUNK).equals(Buffer.from(img.subarray(0, n * CHUNK))));

    const r = await readDevice(dev, out, { chunkSize: CHUNK });
    assert.equal(r.resumed, true);
    assert.equal(r.bytesRead, img.length - n * CHUNK, 'only the rest is read');
    assert.equal(r.sha256, sha(img));
    assert.equal(sha(await readFile(out)), sha(img));
    await file.close();
  });
}

test('resume journal: concurrent updates land in call order', async (t) => {
  const dir = tempDir(t);
  const j = new ResumeJournal(join(dir, 'state', 'resume.json'));
  await Promise.all(Array.from({ length: 20 }, (_, i) => j.set('k', 'img', 'dev', (i + 1) * 4096)));
  assert.equal((await j.get('k'))?.offset, 20 * 4096);
  await Promise.all([j.set('k', 'img', 'dev', 1), j.clear('k')]);
  assert.equal(await j.get('k'), undefined);
});
