/**
 * The reader scenarios of the FunctionFS VM test (test/vm/ffs-scenarios.ts) on the in-process
 * simulated reader, for crashcart's side: card swap with unit attention and a not-ready storm,
 * write-protect switch moved between and during flashes, slow media, babble, a reader that hangs
 * on MODE SENSE or SYNCHRONIZE CACHE or refuses SYNCHRONIZE CACHE, and the hints that name the
 * reader profile quirk for what an unknown reader did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flashImage, type FlashOptions } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { UsbBlockDevice, type UsbDeviceEvent } from '../../../src/blockdev/usb-device.js';
import { MediumChangedError, NoMediumError } from '../../../src/scsi/sense.js';
import { BotTransportError } from '../../../src/usb/errors.js';
import { QuirkHinter, type QuirkHint } from '../../../src/reader/quirk-hints.js';
import { MemoryCard, SimReader, type SimReaderOptions } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI, openSim } from '../../sim/helpers.js';
import { DISK, fixture } from './helpers.js';

const BLOCKS = 8192; // 4 MiB
const READ10 = 0x28;
const WRITE10 = 0x2a;
const MODE_SENSE6 = 0x1a;
const MODE_SENSE10 = 0x5a;
const SYNC_CACHE = 0x35;
const FAST: FlashOptions = { retryDelayMs: 1, chunkSize: 64 * 1024, checkpointBytes: 256 * 1024 };
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const resets = (ev: UsbDeviceEvent[]) => ev.filter((e) => e.type === 'reset-recovery' || e.type === 'port-reset').length;

/** Opens the simulated reader with its device events recorded and watched by a QuirkHinter (no profile quirks). */
async function openHinted(sim: SimReader) {
  const ev: UsbDeviceEvent[] = [];
  const hints: QuirkHint[] = [];
  const hinter = new QuirkHinter(sim.device, {}, (h) => hints.push(h));
  const dev = await UsbBlockDevice.open(sim, {
    bot: FAST_BOT,
    scsi: FAST_SCSI,
    onEvent: (e) => {
      ev.push(e);
      hinter.onEvent(e);
    },
  });
  return { dev, ev, hints };
}

async function flashOnto(sim: SimReader, image = fixture('disk.img')) {
  const dev = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI });
  const source = await openImageSource(image, { bmap: false });
  try {
    return await flashImage(source, [{ device: dev }], FAST);
  } finally {
    await source.close();
    await dev.close().catch(() => undefined);
  }
}

test('card swap mid-read: 06/28 stops the read, no byte of the new card is returned; after the not-ready storm a fresh open reads the new card', async () => {
  const a = new MemoryCard(BLOCKS, 512, { pattern: true });
  const b = new MemoryCard(BLOCKS / 2, 512, { data: new Uint8Array(BLOCKS * 256).fill(0x5b) });
  let reads = 0;
  let simRef: SimReader | undefined;
  const { sim, dev } = await openSim({
    luns: [a],
    onCbw: (c) => {
      if (c.cdb[0] === READ10 && ++reads === 3) simRef!.swapCard(0, b, 4);
    },
  });
  simRef = sim;
  const first = await dev.read(0, 64 * 1024);
  assert.ok(same(first, a.data.subarray(0, 64 * 1024)));
  const chunks: Uint8Array[] = [];
  await assert.rejects(async () => {
    for (let off = 64 * 1024; off < dev.size; off += 64 * 1024) chunks.push(await dev.read(off, 64 * 1024));
  }, MediumChangedError);
  for (const [i, c] of chunks.entries()) assert.ok(same(c, a.data.subarray((i + 1) * 64 * 1024, (i + 2) * 64 * 1024)), 'only the first card’s bytes came back');
  await assert.rejects(dev.read(0, 512), MediumChangedError, 'the open device stays refused');
  await dev.close();

  let noCard = 0;
  for (;;) {
    try {
      const d2 = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI });
      assert.equal(d2.size, b.data.length, 'the new card’s capacity');
      assert.ok(same(await d2.read(0, d2.size), b.data));
      await d2.close();
      break;
    } catch (e) {
      assert.ok(e instanceof NoMediumError, String(e));
      noCard++;
    }
  }
  assert.ok(noCard >= 1, 'the storm shows as "no card" to the opens that meet it');
});

test('card swap mid-flash: the flash stops with a typed error and nothing reaches the new card', async () => {
  const a = new MemoryCard(BLOCKS, 512, { pattern: true });
  const b = new MemoryCard(BLOCKS, 512, { data: new Uint8Array(BLOCKS * 512).fill(0x3c) });
  let writes = 0;
  let simRef: SimReader | undefined;
  const sim = new SimReader({
    luns: [a],
    onCbw: (c) => {
      if (c.cdb[0] === WRITE10 && ++writes === 6) simRef!.swapCard(0, b, 3);
    },
  });
  simRef = sim;
  const r = await flashOnto(sim);
  assert.equal(r.exitCode, 3, JSON.stringify(r.targets[0].error));
  assert.equal(r.targets[0].error?.name, 'DeviceGoneDuringFlashError');
  assert.match(r.targets[0].error?.message ?? '', /medium may have changed|no card/);
  assert.ok(
    b.data.every((x) => x === 0x3c),
    'the new card is untouched',
  );
  // a fresh flash onto the new card works
  for (let i = 0; ; i++) {
    try {
      const r2 = await flashOnto(sim);
      assert.equal(r2.exitCode, 0, JSON.stringify(r2.targets[0].error));
      break;
    } catch (e) {
      if (!(e instanceof NoMediumError) || i > 10) throw e;
    }
  }
  assert.ok(same(b.data.subarray(0, DISK().length), DISK()));
});

test('write-protect switch: on before the flash → refused before any write (exit 5); moved mid-flash → 07/27 stops it (exit 5); off → the flash works', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true, writeProtected: true });
  const before = new Uint8Array(card.data);
  let writes = 0;
  const sim = new SimReader({
    luns: [card],
    onCbw: (c) => {
      if (c.cdb[0] === WRITE10) writes++;
    },
  });
  const r1 = await flashOnto(sim);
  assert.equal(r1.exitCode, 5);
  assert.equal(writes, 0, 'MODE SENSE showed the WP bit: no WRITE was sent');
  assert.ok(same(card.data, before));

  card.writeProtected = false;
  const sim2 = new SimReader({
    luns: [card],
    onCbw: (c) => {
      if (c.cdb[0] === WRITE10 && ++writes === 5) card.writeProtected = true;
    },
  });
  const r2 = await flashOnto(sim2);
  assert.equal(r2.exitCode, 5, JSON.stringify(r2.targets[0].error));
  assert.match(r2.targets[0].error?.message ?? '', /write-protected/);
  const writesAtStop = writes;

  card.writeProtected = false;
  const r3 = await flashOnto(new SimReader({ luns: [card] }));
  assert.equal(r3.exitCode, 0, JSON.stringify(r3.targets[0].error));
  assert.ok(same(card.data.subarray(0, DISK().length), DISK()));
  assert.ok(writesAtStop >= 5);
});

test('slow media: commands taking 25 s (simulated) are waited for like the kernel’s 30 s SCSI timeout, without a reset; 45 s ones are reset and retried', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  // default BOT timeouts (not the fast test ones): the point is what they allow
  const sim = new SimReader({ luns: [card] });
  const events: UsbDeviceEvent[] = [];
  const dev = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI, onEvent: (e) => events.push(e) });
  sim.inject({ type: 'delay', ms: 25_000, opcode: READ10, times: 3 }, { type: 'delay', ms: 25_000, opcode: WRITE10, times: 1 });
  assert.ok(same(await dev.read(0, 512 * 1024), card.data.subarray(0, 512 * 1024)));
  await dev.write(0, new Uint8Array(4096).fill(7));
  assert.equal(resets(events), 0, 'no spurious reset');
  sim.inject({ type: 'delay', ms: 45_000, opcode: READ10, times: 1 });
  assert.ok(same(await dev.read(0, 4096), new Uint8Array(4096).fill(7)));
  assert.equal(resets(events), 1, 'a command past the timeout is reset-recovered');
  await dev.close();
});

test('babble: once → the data is thrown away, the reader reset-recovered and the command retried (right bytes); always → typed transport error, no data', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const { sim, dev, events } = await openSim({ luns: [card] });
  sim.inject({ type: 'babble', opcode: READ10, times: 1 });
  assert.ok(same(await dev.read(0, 128 * 1024), card.data.subarray(0, 128 * 1024)));
  assert.ok(events.some((e) => e.type === 'retry' && /babble/.test(e.reason)));
  sim.inject({ type: 'babble', opcode: READ10, times: 1_000 });
  await assert.rejects(dev.read(0, 4096), (e: unknown) => e instanceof BotTransportError && e.reason === 'babble');
  sim.faults.length = 0;
  assert.ok(same(await dev.read(0, 4096), card.data.subarray(0, 4096)), 'usable after recovery');
  await dev.close();
});

test('reader that hangs on MODE SENSE: asked once, reset once, taken as writable, hint names noWriteProtectDetect; with the quirk it is never asked', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const hang = { type: 'timeout' as const, phase: 'data' as const, times: 1_000 };
  const { sim, dev, events } = await openSim({ luns: [card] });
  await dev.close();
  sim.inject({ ...hang, opcode: MODE_SENSE6 }, { ...hang, opcode: MODE_SENSE10 });
  const opcodesBefore = sim.stats.opcodes.length;
  const { dev: d2, ev, hints } = await openHinted(sim);
  assert.equal(d2.readOnly, false);
  const sent = sim.stats.opcodes.slice(opcodesBefore);
  assert.equal(sent.filter((o) => o === MODE_SENSE6).length, 1);
  assert.equal(sent.filter((o) => o === MODE_SENSE10).length, 0);
  assert.equal(resets(ev), 1);
  assert.deepEqual(
    hints.map((h) => h.quirk),
    ['noWriteProtectDetect'],
  );
  assert.match(hints[0].message, /1d6b:0104.*"noWriteProtectDetect": true/);
  await d2.close();
  const n = sim.stats.opcodes.length;
  const d3 = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI, quirks: { noWriteProtectDetect: true } });
  assert.ok(!sim.stats.opcodes.slice(n).some((o) => o === MODE_SENSE6 || o === MODE_SENSE10));
  await d3.close();
  assert.ok(events.length > 0);
});

for (const [what, opts] of [
  ['refuses SYNCHRONIZE CACHE (05/20/00)', { noSyncCache: true }],
  ['hangs on SYNCHRONIZE CACHE', {}],
] as [string, SimReaderOptions][]) {
  test(`reader that ${what}: the flash succeeds and verifies, the flush is skipped after one try and said so`, async () => {
    const card = new MemoryCard(BLOCKS, 512, { pattern: true });
    const sim = new SimReader({ luns: [card], ...opts });
    if (!opts.noSyncCache) sim.inject({ type: 'timeout', phase: 'csw', opcode: SYNC_CACHE, times: 1_000 });
    const { dev, ev, hints } = await openHinted(sim);
    const source = await openImageSource(fixture('disk.img'), { bmap: false });
    const r = await flashImage(source, [{ device: dev }], FAST);
    await source.close();
    await dev.close();
    assert.equal(r.exitCode, 0, JSON.stringify(r.targets[0].error));
    assert.equal(r.targets[0].verified, true);
    assert.ok(same(card.data.subarray(0, DISK().length), DISK()));
    assert.equal(sim.stats.opcodes.filter((o) => o === SYNC_CACHE).length, 1, 'asked once');
    assert.deepEqual(
      ev.filter((e) => e.type === 'sync-cache-unsupported'),
      [{ type: 'sync-cache-unsupported', why: opts.noSyncCache ? 'unsupported' : 'timeout' }],
    );
    assert.equal(hints.length, 1);
    assert.equal(hints[0].quirk, opts.noSyncCache ? null : 'noSynchronizeCache');
    assert.match(hints[0].message, /flushes are skipped/);
  });
}

test('hints for an unknown reader: wrong residues → ignoreResidue, capacity one past the end → capacityOffByOne; each once, none when the profile has the quirk', async () => {
  const card = new MemoryCard(BLOCKS, 512, { pattern: true });
  const run = async (quirks: { ignoreResidue?: boolean; capacityOffByOne?: boolean }) => {
    const sim = new SimReader({ luns: [card], capacityReportsCount: true, productId: 0x6906, vendorId: 0x03ee, revision: 0x0003 });
    sim.inject({ type: 'wrong-residue', opcode: 0x12, residue: 4, times: 10 });
    const hints: QuirkHint[] = [];
    const hinter = new QuirkHinter(sim.device, quirks, (h) => hints.push(h));
    const dev = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI, quirks, onEvent: (e) => hinter.onEvent(e) });
    const last = dev.size - 512;
    if (quirks.capacityOffByOne) assert.ok(same(await dev.read(last, 512), card.data.subarray(last)));
    else for (let i = 0; i < 2; i++) await assert.rejects(dev.read(last, 512));
    await dev.close();
    return hints;
  };
  const hints = await run({});
  assert.deepEqual(hints.map((h) => h.quirk).sort(), ['capacityOffByOne', 'ignoreResidue']);
  assert.ok(hints.every((h) => h.reader === '03ee:6906' && h.revision === '0003'));
  assert.deepEqual(await run({ ignoreResidue: true, capacityOffByOne: true }), []);
});
