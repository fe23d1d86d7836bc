/**
 * flash and read through a simulated reader that is unplugged mid-transfer (the device opened
 * through the write gate and the `usb:` opener with a reconnect timeout, as the command line does):
 * the reader comes back at a new address holding the same card → the transfer finishes and the
 * result equals the image / the card; it comes back holding a different card → CardChangedError
 * (exit 13) with nothing written to that card; it never comes back → DeviceGoneError (exit 3) with
 * the resume point / the partial output and its map kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockDevice } from '../../../src/blockdev/block-device.js';
import { openDevice } from '../../../src/blockdev/open-device.js';
import type { ReconnectEvent } from '../../../src/blockdev/reconnect.js';
import { CardChangedError, ExitCode } from '../../../src/errors.js';
import { flashImage } from '../../../src/flash/flash.js';
import { readDevice } from '../../../src/flash/read.js';
import { openImageSource } from '../../../src/flash/source.js';
import { WriteGate } from '../../../src/gate/write-gate.js';
import { registerUsbDeviceOpener } from '../../../src/reader/register.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import { MemoryCard, SimHost, SimReader, type SimReaderOptions } from '../../sim/sim-reader.js';
import { DISK, fixture, tempDir } from './helpers.js';

const BLOCKS = 8192; // 4 MiB card
const WRITE10 = 0x2a;
const READ10 = 0x28;
const FAST = { retryDelayMs: 1, chunkSize: 64 * 1024, checkpointBytes: 256 * 1024 };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * A bench with one reader on port 1-1.4 (serial R1, address 5) holding `card`. Its `n`-th command with
 * `opcode` unplugs it (the command fails as the device disconnects); `comeBack`, when given, is
 * plugged in shortly after. The `usb:` opener is registered over this bench.
 */
function bench(card: MemoryCard, opcode: number, n: number, comeBack?: () => SimReader) {
  const host = new SimHost([]);
  let count = 0;
  let back: SimReader | undefined;
  const first: SimReader = new SimReader({
    ports: [1, 4],
    serial: 'R1',
    address: 5,
    luns: [card],
    onCbw: (cbw) => {
      if (cbw.cdb[0] !== opcode || ++count !== n) return;
      first.vanish();
      host.readers.splice(host.readers.indexOf(first), 1);
      if (comeBack) setTimeout(() => host.readers.push((back = comeBack())), 20);
    },
  });
  host.readers.push(first);
  registerUsbDeviceOpener({ host, profiles: [], bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' }, reconnectPollMs: 5 });
  return { host, first, back: () => back };
}

const reader = (card: MemoryCard, o: SimReaderOptions = {}) => new SimReader({ ports: [1, 4], serial: 'R1', address: 9, luns: [card], ...o });

async function flashThroughGate(timeoutMs: number) {
  const events: ReconnectEvent[] = [];
  const image = fixture('disk.img');
  const gate = new WriteGate();
  await gate.addInput(image, 'the image being flashed');
  const dev = await gate.openDevice('usb:1-1.4', { reconnect: { timeoutMs, onEvent: (e) => events.push(e) } });
  const source = await openImageSource(image, { bmap: false });
  try {
    const r = await flashImage(source, [{ device: dev }], FAST);
    return { r, events, name: dev.info.name };
  } finally {
    await source.close();
    await dev.close().catch(() => undefined);
  }
}

test('flash: the reader is unplugged mid-write and comes back at a new address → the flash finishes and the card equals the image', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const b = bench(card, WRITE10, 10, () => reader(card));
  const { r, events } = await flashThroughGate(5_000);
  assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
  assert.equal(r.targets[0].verified, true);
  const img = DISK();
  assert.ok(Buffer.from(card.data.subarray(0, img.length)).equals(Buffer.from(img)), 'the card holds the image');
  assert.deepEqual(
    events.map((e) => [e.type, e.port, e.address]),
    [
      ['reader-gone', '1-1.4', 5],
      ['reader-back', '1-1.4', 9],
    ],
  );
  const back = events[1];
  assert.ok(back.type === 'reader-back');
  assert.deepEqual([back.match, back.previousPort, back.previousAddress], ['port', '1-1.4', 5]);
  assert.match(events[0].type === 'reader-gone' ? events[0].error : '', /disconnected/);
  assert.ok(b.back()!.stats.opcodes.includes(WRITE10), 'the rest was written on the reader that came back');
});

test('flash: the reader comes back on another port with the same serial → matched by serial, the gate admits it again, the flash finishes', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  bench(card, WRITE10, 6, () => reader(card, { ports: [3], address: 2 }));
  const { r, events } = await flashThroughGate(5_000);
  assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
  const back = events.find((e) => e.type === 'reader-back');
  assert.ok(back?.type === 'reader-back');
  assert.deepEqual([back.match, back.port, back.previousPort, back.device], ['serial', '1-3', '1-1.4', 'usb:1-3@lun=0']);
  const img = DISK();
  assert.ok(Buffer.from(card.data.subarray(0, img.length)).equals(Buffer.from(img)));
});

for (const [what, other] of [
  ['another capacity', () => new MemoryCard(BLOCKS * 2, 512, { pattern: true })],
  ['the same capacity but other contents', () => new MemoryCard(BLOCKS, 512, { pattern: true })],
] as const) {
  test(`flash: a different card (${what}) comes back → CardChangedError, exit 13, nothing written to it`, async () => {
    const card = new MemoryCard(BLOCKS, 512, { pattern: true });
    const swapped = other();
    const before = new Uint8Array(swapped.data);
    const b = bench(card, WRITE10, 10, () => reader(swapped));
    const { r, events } = await flashThroughGate(5_000);
    assert.equal(r.exitCode, ExitCode.CARD_CHANGED);
    assert.equal(ExitCode.CARD_CHANGED, 13);
    const err = r.targets[0].error;
    assert.equal(err?.name, 'CardChangedError');
    assert.equal(err?.class, 'infrastructure');
    assert.match(err?.message ?? '', /a different card|not as they were last read or written/);
    assert.ok(Buffer.from(swapped.data).equals(Buffer.from(before)), 'the card that came back is untouched');
    assert.ok(!b.back()!.stats.opcodes.includes(WRITE10), 'no WRITE reached the card that came back');
    assert.deepEqual(
      events.map((e) => e.type),
      ['reader-gone'],
    );
  });
}

test('flash: the reader never comes back → DeviceGoneDuringFlashError (exit 3) after the timeout, with the resume point', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  bench(card, WRITE10, 10);
  const { r, events } = await flashThroughGate(100);
  assert.equal(r.exitCode, ExitCode.IO);
  const err = r.targets[0].error;
  assert.equal(err?.name, 'DeviceGoneDuringFlashError');
  assert.equal(err?.failure, 'gone');
  assert.match(err?.message ?? '', /did not come back within 0\.1 s \(looked for port 1-1\.4 or serial R1\)/);
  assert.equal(err?.resumeOffset, 1024 * 1024 + 512 * 1024, 'the last flushed checkpoint before write 10');
  assert.deepEqual(
    events.map((e) => e.type),
    ['reader-gone'],
  );
});

async function readThroughOpener(timeoutMs: number, dir: string) {
  const events: ReconnectEvent[] = [];
  const dev: BlockDevice = await openDevice('usb:1-1.4', { write: false, reconnect: { timeoutMs, onEvent: (e) => events.push(e) } });
  const out = join(dir, 'card.img');
  try {
    return { r: await readDevice(dev, out, { chunkSize: 64 * 1024, retryDelayMs: 1 }), events, out };
  } finally {
    await dev.close().catch(() => undefined);
  }
}

test('read: the reader is unplugged mid-read and comes back → the failed chunk is read again, the output equals the card', async (t) => {
  const dir = tempDir(t);
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  bench(card, READ10, 12, () => reader(card));
  const { r, events, out } = await readThroughOpener(5_000, dir);
  assert.equal(r.badBytes, 0);
  assert.equal(r.sha256, sha(card.data));
  assert.ok(readFileSync(out).equals(Buffer.from(card.data)));
  assert.deepEqual(
    events.map((e) => [e.type, e.address]),
    [
      ['reader-gone', 5],
      ['reader-back', 9],
    ],
  );
});

test('read: a different card comes back → CardChangedError (exit 13); what was read and its map are kept', async (t) => {
  const dir = tempDir(t);
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  bench(card, READ10, 12, () => reader(new MemoryCard(BLOCKS, 512)));
  await assert.rejects(readThroughOpener(5_000, dir), (e: unknown) => {
    assert.ok(e instanceof CardChangedError, String(e));
    assert.equal(e.exitCode, 13);
    assert.match(e.message, /what was read before is in .*card\.img and .*card\.img\.map/);
    return true;
  });
  const out = readFileSync(join(dir, 'card.img'));
  assert.ok(out.subarray(0, 64 * 1024).equals(Buffer.from(card.data.subarray(0, 64 * 1024))), 'the chunks read before are kept');
  assert.match(readFileSync(join(dir, 'card.img.map'), 'utf8'), /\n0x00000000\s+0x[0-9A-Fa-f]+\s+\+/);
});

test('read: the reader never comes back → exit 3 after the timeout; the output and its map are kept for the next run', async (t) => {
  const dir = tempDir(t);
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  bench(card, READ10, 12);
  await assert.rejects(readThroughOpener(100, dir), (e: unknown) => {
    assert.equal((e as { exitCode?: number }).exitCode, ExitCode.IO);
    assert.match((e as Error).message, /went away while reading at offset \d+: .*did not come back within 0\.1 s/);
    return true;
  });
  assert.ok(existsSync(join(dir, 'card.img')) && existsSync(join(dir, 'card.img.map')));
});
