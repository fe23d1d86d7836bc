/**
 * Flashing through the user-space USB stack onto the simulated card reader: round trip,
 * write-protect switch, reader unplugged / card pulled mid-write and --resume after
 * re-insertion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flashImage, type FlashOptions } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { loadBmap, rangeBytes } from '../../../src/flash/bmap.js';
import { readDevice } from '../../../src/flash/read.js';
import { MemoryCard } from '../../sim/sim-reader.js';
import { openSim } from '../../sim/helpers.js';
import { DISK, fixture, tempDir } from './helpers.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';

const BLOCKS = 8192; // 4 MiB card
const WRITE10 = 0x2a;
const FAST: FlashOptions = { retryDelayMs: 1, chunkSize: 64 * 1024, checkpointBytes: 256 * 1024 };

async function flashSim(
  image: string,
  card: MemoryCard,
  opts: FlashOptions & { bmap?: string | false; resumeFrom?: number; onWrite?: (n: number, vanish: () => void) => void } = {},
) {
  let writes = 0;
  let simRef: { vanish(): void } | undefined;
  const { sim, dev } = await openSim({
    luns: [card],
    onCbw: (cbw) => {
      if (cbw.cdb[0] === WRITE10) opts.onWrite?.(++writes, () => simRef?.vanish());
    },
  });
  simRef = sim;
  const source = await openImageSource(image, { bmap: opts.bmap ?? false });
  try {
    return await flashImage(source, [{ device: dev, ...(opts.resumeFrom !== undefined ? { resumeFrom: opts.resumeFrom } : {}) }], { ...FAST, ...opts });
  } finally {
    await source.close();
    await dev.close().catch(() => undefined);
  }
}

test('usb: .zst image with its bmap flashes onto the simulated reader and verifies', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const before = new Uint8Array(card.data);
  const r = await flashSim(fixture('disk.img.zst'), card, { bmap: fixture('disk.img.bmap') });
  assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
  assert.equal(r.targets[0].kind, 'usb');
  assert.equal(r.targets[0].verified, true);
  const img = DISK();
  const b = await loadBmap(fixture('disk.img.bmap'));
  let pos = 0;
  for (const range of b.ranges) {
    const { start, end } = rangeBytes(b, range);
    assert.ok(Buffer.from(card.data.subarray(pos, start)).equals(Buffer.from(before.subarray(pos, start))), 'hole untouched');
    assert.ok(Buffer.from(card.data.subarray(start, end)).equals(Buffer.from(img.subarray(start, end))), 'mapped range written');
    pos = end;
  }
});

for (const name of ['disk.img', 'disk.img.gz', 'disk.img.xz', 'disk.img.bz2']) {
  test(`usb: ${name} full flash round-trips (partial last block through read-modify-write)`, async () => {
    const card = new MemoryCard(BLOCKS, 512, { pattern: true });
    const r = await flashSim(fixture(name), card);
    assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
    const img = DISK();
    assert.ok(Buffer.from(card.data.subarray(0, img.length)).equals(Buffer.from(img)));
  });
}

test('usb: write-protect switch on → refused with that reason, card untouched', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true, writeProtected: true });
  const before = new Uint8Array(card.data);
  const r = await flashSim(fixture('disk.img'), card);
  assert.equal(r.exitCode, 5);
  assert.match(r.targets[0].error?.message ?? '', /write-protected/);
  assert.ok(Buffer.from(card.data).equals(Buffer.from(before)));
});

test('usb: reader unplugged mid-write → clear error with the last flushed offset; --resume completes after re-plug', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const r1 = await flashSim(fixture('disk.img.xz'), card, {
    onWrite: (n, vanish) => {
      if (n === 10) vanish();
    },
  });
  assert.equal(r1.exitCode, 3);
  const err = r1.targets[0].error;
  assert.equal(err?.name, 'DeviceGoneDuringFlashError');
  assert.match(err?.message ?? '', /went away while writing at offset \d+/);
  assert.match(err?.message ?? '', /--resume/);
  const resumeAt = err?.resumeOffset ?? 0;
  assert.equal(resumeAt, 1024 * 1024 + 512 * 1024, 'two checkpoints of 256 KiB were flushed before write 10');
  assert.equal(resumeAt % (64 * 1024), 0);
  const img = DISK();
  // Everything up to the resume point (outside the held-back first MiB) is on the card.
  assert.ok(Buffer.from(card.data.subarray(1048576, resumeAt)).equals(Buffer.from(img.subarray(1048576, resumeAt))));
  assert.ok(!Buffer.from(card.data.subarray(0, 512)).equals(Buffer.from(img.subarray(0, 512))), 'boot sector not written yet');

  // Re-plugged: a fresh reader session on the same card.
  const r2 = await flashSim(fixture('disk.img.xz'), card, { resumeFrom: resumeAt });
  assert.equal(r2.exitCode, 0, JSON.stringify(r2.targets[0].error));
  assert.equal(r2.targets[0].resumedFrom, resumeAt);
  assert.equal(r2.targets[0].verified, true);
  assert.ok(r2.targets[0].bytesWritten < img.length - (resumeAt - 1048576) + 1, 'only the rest was written');
  assert.ok(Buffer.from(card.data.subarray(0, img.length)).equals(Buffer.from(img)));
});

test('usb: card pulled from the slot mid-write is reported as gone, with a resume offset', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  let injected = false;
  const { sim, dev } = await openSim({ luns: [card] });
  const source = await openImageSource(fixture('disk.img'), { bmap: false });
  const r = await flashImage(source, [{ device: dev }], {
    ...FAST,
    onEvent: (e) => {
      if (!injected && e.type === 'checkpoint') {
        injected = true;
        sim.inject({ type: 'remove-medium', afterBytes: 1024, opcode: WRITE10 });
      }
    },
  });
  await source.close();
  await dev.close().catch(() => undefined);
  assert.equal(r.exitCode, 3);
  assert.equal(r.targets[0].error?.name, 'DeviceGoneDuringFlashError');
  assert.ok((r.targets[0].error?.resumeOffset ?? 0) > 1048576);
});

test('usb: resuming onto a different card is refused', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const r = await flashSim(fixture('disk.img'), card, { resumeFrom: 2 * 1048576 });
  assert.equal(r.exitCode, 12);
  assert.match(r.targets[0].error?.message ?? '', /cannot resume at offset 2097152: the card does not hold this image/);
});

test('usb: read the card back to a file with sha256', async (t) => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const { dev } = await openSim({ luns: [card] });
  const out = join(tempDir(t), 'card.img');
  const r = await readDevice(dev, out, { offset: 512 * 100, size: 512 * 3000 });
  await dev.close();
  const want = card.data.subarray(512 * 100, 512 * 3100);
  assert.ok(Buffer.from(await readFile(out)).equals(Buffer.from(want)));
  assert.equal(r.sha256, createHash('sha256').update(want).digest('hex'));
  assert.equal(r.badBytes, 0);
});
