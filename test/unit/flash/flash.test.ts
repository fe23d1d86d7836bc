import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { flashImage, type FlashEvent, type FlashOptions } from '../../../src/flash/flash.js';
import { openImageSource, type ImageSourceOptions } from '../../../src/flash/source.js';
import { loadBmap, rangeBytes } from '../../../src/flash/bmap.js';
import { DISK, eio, FaultyDevice, fixture, tempDir } from './helpers.js';

const FILL = 0xa5;
const CARD = 4 * 1024 * 1024;

async function cardFile(dir: string, name: string, size = CARD): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, new Uint8Array(size).fill(FILL));
  return p;
}

async function flashTo(image: string, cards: string[], src: ImageSourceOptions = {}, opts: FlashOptions = {}) {
  const source = await openImageSource(image, src);
  const devs = await Promise.all(cards.map((c) => openImageFile(c, { write: true })));
  try {
    return await flashImage(
      source,
      devs.map((device) => ({ device })),
      { retryDelayMs: 1, ...opts },
    );
  } finally {
    for (const d of devs) await d.close();
    await source.close();
  }
}

/** The card holds the whole image, and FILL after it. */
function assertFull(card: Uint8Array, img: Uint8Array): void {
  assert.ok(Buffer.from(card.subarray(0, img.length)).equals(Buffer.from(img)), 'image bytes on the card');
  assert.ok(
    card.subarray(img.length).every((b) => b === FILL),
    'bytes after the image untouched',
  );
}

/** Mapped ranges hold the image; holes keep their old content. */
async function assertMapped(card: Uint8Array, img: Uint8Array): Promise<void> {
  const b = await loadBmap(fixture('disk.img.bmap'));
  let pos = 0;
  for (const r of b.ranges) {
    const { start, end } = rangeBytes(b, r);
    assert.ok(
      card.subarray(pos, start).every((x) => x === FILL),
      `hole ${pos}-${start} untouched`,
    );
    assert.ok(Buffer.from(card.subarray(start, end)).equals(Buffer.from(img.subarray(start, end))), `range ${r.first}-${r.last}`);
    pos = end;
  }
}

const IMAGES = ['disk.img', 'disk.img.gz', 'disk.img.xz', 'disk.img.zst', 'disk.img.bz2'];

for (const name of IMAGES) {
  test(`${name}: full flash round-trips to an image-file card and verifies`, async (t) => {
    const dir = tempDir(t);
    const card = await cardFile(dir, 'card.img');
    const r = await flashTo(fixture(name), [card], { bmap: false });
    assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
    assert.equal(r.targets[0].verified, true);
    assert.equal(r.image.sha256, (await readFile(fixture('disk.img.sha256'), 'utf8')).split(' ')[0]);
    assertFull(new Uint8Array(await readFile(card)), DISK());
  });

  for (const bmap of ['disk.img.bmap', 'disk-v1.3.bmap']) {
    test(`${name} with ${bmap}: only mapped ranges are written, checksums pass, verified`, async (t) => {
      const dir = tempDir(t);
      const card = await cardFile(dir, 'card.img');
      const r = await flashTo(fixture(name), [card], { bmap: fixture(bmap) }, { chunkSize: 64 * 1024 });
      assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
      assert.equal(r.targets[0].bytesWritten, 83 * 4096 + 1000);
      assert.equal(r.targets[0].verified, true);
      await assertMapped(new Uint8Array(await readFile(card)), DISK());
    });
  }
}

test('IMAGE.bmap next to the image is used by default', async (t) => {
  const dir = tempDir(t);
  const card = await cardFile(dir, 'card.img');
  const r = await flashTo(fixture('disk.img.xz'), [card]);
  assert.equal(r.image.bmap?.path, fixture('disk.img.bmap'));
  assert.equal(r.targets[0].bytesWritten, 83 * 4096 + 1000);
});

test('bmap checksum mismatch in the image data is caught, and the first MiB is not written', async (t) => {
  const dir = tempDir(t);
  const img = DISK();
  img[1048576 + 5000] ^= 0x01; // inside range 256-319
  const bad = join(dir, 'bad.img');
  await writeFile(bad, img);
  const card = await cardFile(dir, 'card.img');
  const r = await flashTo(bad, [card], { bmap: fixture('disk.img.bmap') });
  assert.equal(r.exitCode, 10);
  assert.match(r.targets[0].error?.message ?? '', /checksum mismatch for blocks 256-319 \(bytes 1048576–1310719\)/);
  const after = new Uint8Array(await readFile(card));
  assert.ok(
    after.subarray(0, 1048576).every((b) => b === FILL),
    'the first MiB (boot area) stays unwritten',
  );
});

test('several cards from one pass: a failing card does not stop the others', async (t) => {
  const dir = tempDir(t);
  const cards = [await cardFile(dir, 'a.img'), await cardFile(dir, 'b.img'), await cardFile(dir, 'c.img')];
  const source = await openImageSource(fixture('disk.img.zst'), { bmap: false });
  const devs = await Promise.all(cards.map((c) => openImageFile(c, { write: true })));
  const broken = new FaultyDevice(devs[1], 'broken');
  broken.faults.push({ op: 'write', start: 2 * 1048576, end: 2 * 1048576 + 1, times: Infinity, error: () => new Error('controller fault') });
  const events: FlashEvent[] = [];
  const r = await flashImage(source, [{ device: devs[0] }, { device: broken }, { device: devs[2] }], { onEvent: (e) => events.push(e), retryDelayMs: 1 });
  for (const d of devs) await d.close();
  await source.close();
  assert.deepEqual(
    r.targets.map((x) => x.ok),
    [true, false, true],
  );
  assert.match(r.targets[1].error?.message ?? '', /controller fault/);
  assertFull(new Uint8Array(await readFile(cards[0])), DISK());
  assertFull(new Uint8Array(await readFile(cards[2])), DISK());
  assert.ok(events.some((e) => e.type === 'phase' && e.target === 1 && e.phase === 'failed'));
  assert.ok(events.some((e) => e.type === 'phase' && e.target === 2 && e.phase === 'done'));
});

test('the first MiB is written last', async () => {
  const source = await openImageSource(fixture('disk.img.gz'), { bmap: false });
  const dev = new FaultyDevice(new MemoryDevice(new Uint8Array(CARD)), 'mem');
  const r = await flashImage(source, [{ device: dev }], { chunkSize: 256 * 1024 });
  await source.close();
  assert.equal(r.exitCode, 0);
  const headWrites = dev.writes.map((w, i) => ({ ...w, i })).filter((w) => w.offset < 1048576);
  assert.ok(headWrites.length > 0);
  const firstHead = Math.min(...headWrites.map((w) => w.i));
  assert.ok(
    dev.writes.slice(0, firstHead).some((w) => w.offset >= 2 * 1048576),
    'data beyond 1 MiB was written before',
  );
  assert.ok(
    dev.writes.slice(firstHead).every((w) => w.offset < 1048576),
    'nothing after the head',
  );
});

test('image larger than the card: refused before anything is written', async (t) => {
  const dir = tempDir(t);
  for (const name of ['disk.img', 'disk.img.xz', 'disk.img.zst', 'disk.img.gz']) {
    const card = await cardFile(dir, `small-${name}`, 2 * 1048576);
    const r = await flashTo(fixture(name), [card], { bmap: false });
    assert.equal(r.exitCode, 12, name);
    assert.match(r.targets[0].error?.message ?? '', /needs .*3146728 bytes.*holds only 2097152 bytes .*; nothing was written/, name);
    assert.ok(
      new Uint8Array(await readFile(card)).every((b) => b === FILL),
      `${name}: card untouched`,
    );
  }
});

test('bzip2 records no size: a too-small card fails when the data reaches its end, boot area unwritten', async (t) => {
  const dir = tempDir(t);
  const card = await cardFile(dir, 'small.img', 2 * 1048576);
  const events: FlashEvent[] = [];
  const r = await flashTo(fixture('disk.img.bz2'), [card], { bmap: false }, { onEvent: (e) => events.push(e) });
  assert.equal(r.exitCode, 12);
  assert.match(r.targets[0].error?.message ?? '', /larger than the card/);
  assert.ok(events.some((e) => e.type === 'warning' && /does not record the image size/.test(e.message)));
  assert.ok(new Uint8Array(await readFile(card)).subarray(0, 1048576).every((b) => b === FILL));
});

test('write-protected card: refused with that reason, nothing written', async () => {
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  const mem = new Uint8Array(CARD).fill(FILL);
  const r = await flashImage(source, [{ device: new MemoryDevice(mem, { readOnly: true, name: 'locked' }) }]);
  await source.close();
  assert.equal(r.exitCode, 5);
  assert.match(r.targets[0].error?.message ?? '', /write-protected/);
  assert.ok(mem.every((b) => b === FILL));
});

test('verification failure names the differing byte range', async () => {
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  const dev = new FaultyDevice(new MemoryDevice(new Uint8Array(CARD)), 'flaky');
  dev.corruptAt = 2 * 1048576 + 123;
  const r = await flashImage(source, [{ device: dev }]);
  await source.close();
  assert.equal(r.exitCode, 11);
  assert.deepEqual(r.targets[0].error?.mismatches, [{ start: 2 * 1048576 + 123, end: 2 * 1048576 + 124, exact: true }]);
  assert.match(r.targets[0].error?.message ?? '', /bytes 2097275–2097275 \(0x20007b–0x20007b, 1 B\)/);
});

test('verification failure of a compressed image names the chunk', async () => {
  const source = await openImageSource(fixture('disk.img.xz'), { bmap: false });
  const dev = new FaultyDevice(new MemoryDevice(new Uint8Array(CARD)), 'flaky');
  dev.corruptAt = 2 * 1048576 + 123;
  const r = await flashImage(source, [{ device: dev }], { chunkSize: 64 * 1024 });
  await source.close();
  assert.equal(r.exitCode, 11);
  assert.deepEqual(r.targets[0].error?.mismatches, [{ start: 2 * 1048576, end: 2 * 1048576 + 65536, exact: false }]);
});

test('--no-verify skips the read-back', async () => {
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  const mem = new MemoryDevice(new Uint8Array(CARD));
  const dev = new FaultyDevice(mem, 'mem');
  dev.faults.push({ op: 'read', times: Infinity, error: () => new Error('must not read') });
  const r = await flashImage(source, [{ device: dev }], { verify: false });
  await source.close();
  assert.equal(r.exitCode, 0);
  assert.equal(r.targets[0].verified, false);
  // Nothing is hashed that was not asked for: no whole-image SHA-256 without verification.
  assert.equal(r.image.sha256, undefined);
  assert.equal(r.image.bytes, (await readFile(fixture('disk.img'))).length);
  assert.ok(Buffer.from(await mem.read(0, r.image.bytes)).equals(await readFile(fixture('disk.img'))), 'the image is on the card');
});

test('transient write errors are retried with back-off', async () => {
  const source = await openImageSource(fixture('disk.img.gz'), { bmap: false });
  const mem = new Uint8Array(CARD);
  const dev = new FaultyDevice(new MemoryDevice(mem), 'wobbly');
  dev.faults.push({ op: 'write', start: 1048576, end: 1048577, times: 2, error: () => eio('write') });
  const events: FlashEvent[] = [];
  const r = await flashImage(source, [{ device: dev }], { retryDelayMs: 1, onEvent: (e) => events.push(e) });
  await source.close();
  assert.equal(r.exitCode, 0);
  const retries = events.filter((e) => e.type === 'retry');
  assert.equal(retries.length, 2);
  assert.deepEqual(
    retries.map((e) => (e as { delayMs: number }).delayMs),
    [1, 2],
  );
  const img = DISK();
  assert.ok(Buffer.from(mem.subarray(0, img.length)).equals(Buffer.from(img)));
});

test('persistent write errors end as a device error with the resume offset; EIO that outlives its retries is a media fault (8)', async () => {
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  const dev = new FaultyDevice(new MemoryDevice(new Uint8Array(CARD)), 'dying');
  dev.faults.push({ op: 'write', start: 2 * 1048576 + 65536, times: Infinity, error: () => eio('write') });
  const r = await flashImage(source, [{ device: dev }], { retries: 2, retryDelayMs: 1, chunkSize: 65536, checkpointBytes: 65536 });
  await source.close();
  assert.equal(r.exitCode, 8);
  assert.deepEqual([r.targets[0].error?.class, r.targets[0].error?.failure], ['media', 'medium']);
  assert.equal(r.targets[0].error?.resumeOffset, 2 * 1048576 + 65536);
  assert.match(r.targets[0].error?.message ?? '', /--resume/);
});

test('progress events carry bytes, total, speed and eta; phases run in order', async () => {
  const source = await openImageSource(fixture('disk.img.zst'), { bmap: false });
  const events: FlashEvent[] = [];
  await flashImage(source, [{ device: new MemoryDevice(new Uint8Array(CARD)) }], { progressIntervalMs: 0, chunkSize: 65536, onEvent: (e) => events.push(e) });
  await source.close();
  const phases = events.filter((e) => e.type === 'phase').map((e) => (e as { phase: string }).phase);
  assert.deepEqual(phases, ['preflight', 'writing', 'finishing', 'verifying', 'done']);
  const last = events.filter((e) => e.type === 'progress' && e.phase === 'writing').pop() as Extract<FlashEvent, { type: 'progress' }>;
  assert.equal(last.bytes, DISK().length);
  assert.equal(last.total, DISK().length);
  assert.ok(last.speed >= 0);
  const v = events.filter((e) => e.type === 'progress' && e.phase === 'verifying').pop() as Extract<FlashEvent, { type: 'progress' }>;
  assert.equal(v.bytes, DISK().length);
});

test('cancelling stops every card and reports exit code 130', async () => {
  const source = await openImageSource(fixture('disk.img.bz2'), { bmap: false });
  const ac = new AbortController();
  const r = await flashImage(source, [{ device: new MemoryDevice(new Uint8Array(CARD)) }], {
    signal: ac.signal,
    onEvent: (e) => {
      if (e.type === 'progress' && e.bytes > 0) ac.abort(new DOMException('stop', 'AbortError'));
    },
    progressIntervalMs: 0,
    chunkSize: 65536,
  });
  await source.close();
  assert.equal(r.exitCode, 130);
  assert.equal(r.targets[0].ok, false);
});
