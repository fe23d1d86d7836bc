import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiLun, type ScsiEvent } from '../../../src/scsi/scsi-lun.js';
import { HardwareError, MediumChangedError, MediumError, NoMediumError, NotReadyError, UnitAttentionError } from '../../../src/scsi/sense.js';
import { BotTransportError } from '../../../src/usb/errors.js';
import { MemoryCard, SimReader, type SimReaderOptions } from '../../sim/sim-reader.js';
import { botOver, FAST_SCSI } from '../../sim/helpers.js';

function lunOver(opts: SimReaderOptions = {}, scsi: ConstructorParameters<typeof ScsiLun>[2] = {}) {
  const sim = new SimReader({ luns: [new MemoryCard(64, 512, { pattern: true })], ...opts });
  const events: ScsiEvent[] = [];
  const lun = new ScsiLun(botOver(sim), 0, { ...FAST_SCSI, ...scsi, onEvent: (e) => events.push(e) });
  return { sim, lun, events };
}

test('INQUIRY is answered despite a pending unit attention, which stays pending', async () => {
  const { lun, sim } = lunOver();
  const i = await lun.inquiry();
  assert.equal(i.vendor, 'CRASHCRT');
  assert.equal(i.product, 'Sim Card Reader');
  assert.equal(i.removable, true);
  assert.equal(sim.luns[0].unitAttention.length, 1);
});

test('power-on unit attention (06/29) is absorbed and reported', async () => {
  const { lun, events } = lunOver();
  await lun.testUnitReady();
  assert.ok(events.some((e) => e.type === 'unit-attention' && e.sense.asc === 0x29));
});

test('medium changed (06/28) is thrown unless absorbed', async () => {
  const a = lunOver({ powerOnUnitAttention: false });
  a.sim.insertCard(0, new MemoryCard(16));
  await assert.rejects(a.lun.testUnitReady(), MediumChangedError);
  await a.lun.testUnitReady(); // reported once only
  const b = lunOver({ powerOnUnitAttention: false });
  b.sim.insertCard(0, new MemoryCard(16));
  await b.lun.testUnitReady({ absorbMediumChange: true });
  assert.ok(b.events.some((e) => e.type === 'medium-changed'));
});

test('raw mode returns the first sense answer without retrying', async () => {
  const { lun } = lunOver();
  await assert.rejects(lun.testUnitReady({ raw: true }), UnitAttentionError);
});

test('unit attentions beyond the retry budget are an error', async () => {
  const { lun, sim } = lunOver({}, { unitAttentionRetries: 2 });
  sim.luns[0].unitAttention.push([6, 0x29, 0], [6, 0x29, 0]);
  await assert.rejects(lun.testUnitReady(), UnitAttentionError);
});

test('becoming ready (02/04/01) is polled until ready', async () => {
  const { lun, sim, events } = lunOver({ powerOnUnitAttention: false });
  sim.luns[0].becomingReady = 3;
  await lun.testUnitReady();
  assert.equal(events.filter((e) => e.type === 'retry' && e.reason === 'becoming ready').length, 3);
});

test('becoming ready forever ends with NotReadyError after the timeout', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false }, { becomingReadyTimeoutMs: 30, readyPollMs: 5 });
  sim.luns[0].becomingReady = 1_000_000;
  await assert.rejects(lun.testUnitReady(), (e: unknown) => e instanceof NotReadyError && e.becomingReady);
});

test('initializing command required (02/04/02) sends START STOP UNIT', async () => {
  const { lun, sim, events } = lunOver({ powerOnUnitAttention: false });
  sim.luns[0].needsStart = true;
  await lun.testUnitReady();
  assert.ok(events.some((e) => e.type === 'start-unit'));
  assert.ok(sim.stats.opcodes.includes(0x1b));
});

test('no medium is reported at once, without retries', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false, luns: [null] });
  await assert.rejects(lun.testUnitReady(), NoMediumError);
  assert.deepEqual(sim.stats.opcodes, [0x00, 0x03]);
});

test('hardware error / aborted command retried, then given up', async () => {
  const a = lunOver({ powerOnUnitAttention: false });
  a.sim.inject({ type: 'sense', sense: [4, 0x44, 0], times: 2 });
  await a.lun.testUnitReady();
  const b = lunOver({ powerOnUnitAttention: false });
  b.sim.inject({ type: 'sense', sense: [0xb, 0, 0], times: 10 });
  await assert.rejects(b.lun.testUnitReady(), (e: unknown) => e instanceof Error && e.constructor.name === 'AbortedCommandError');
  assert.equal(b.sim.stats.opcodes.filter((o) => o === 0).length, 4);
});

test('empty sense on a failed command becomes HardwareError after retries', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false });
  sim.inject({ type: 'sense', sense: [0, 0, 0], times: 10 });
  await assert.rejects(lun.testUnitReady(), HardwareError);
});

test('medium error is retried once, then MediumError with the LBA', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false });
  sim.inject({ type: 'stall-data-in', opcode: 0x28, afterBytes: 1024, sense: [3, 0x11, 0], times: 2 });
  await assert.rejects(lun.read(10n, 4, 512), (e: unknown) => e instanceof MediumError && e.lba === 12n);
  assert.equal(sim.stats.opcodes.filter((o) => o === 0x28).length, 2);
  const { lun: l2, sim: s2 } = lunOver({ powerOnUnitAttention: false });
  s2.inject({ type: 'stall-data-in', opcode: 0x28, afterBytes: 0, sense: [3, 0x11, 0] });
  assert.deepEqual(await l2.read(10n, 4, 512), s2.luns[0].card!.data.subarray(5120, 7168));
});

test('recovered transport failures are retried; timeouts of data commands are not', async () => {
  const a = lunOver({ powerOnUnitAttention: false });
  a.sim.inject({ type: 'phase-error', opcode: 0x28 });
  assert.deepEqual(await a.lun.read(0n, 2, 512), a.sim.luns[0].card!.data.subarray(0, 1024));
  const b = lunOver({ powerOnUnitAttention: false });
  b.sim.inject({ type: 'timeout', phase: 'data', opcode: 0x28 });
  await assert.rejects(b.lun.read(0n, 2, 512), (e: unknown) => e instanceof BotTransportError && e.reason === 'timeout');
  const c = lunOver({ powerOnUnitAttention: false });
  c.sim.inject({ type: 'timeout', phase: 'csw', opcode: 0x00 });
  await c.lun.testUnitReady();
  const d = lunOver({ powerOnUnitAttention: false });
  d.sim.inject({ type: 'phase-error', times: 10 });
  await assert.rejects(d.lun.testUnitReady(), BotTransportError);
});

test('READ CAPACITY(16) is used when (10) says FFFFFFFFh; NO_READ_CAPACITY_16 means no capacity', async () => {
  const big = 0x1_0000_0400;
  const a = lunOver({ powerOnUnitAttention: false, reportedBlocks: big });
  assert.deepEqual(await a.lun.readCapacity(), { lastLba: BigInt(big - 1), blockSize: 512 });
  assert.ok(a.sim.stats.opcodes.includes(0x9e));
  const b = lunOver({ powerOnUnitAttention: false, reportedBlocks: big }, { noReadCapacity16: true });
  assert.equal((await b.lun.readCapacity()).lastLba, -1n);
  assert.ok(!b.sim.stats.opcodes.includes(0x9e));
});

test('READ(16)/WRITE(16) beyond 2^32 blocks', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false });
  // The simulated card is small: the device rejects the LBA, but the CDB must be the 16-byte form.
  await assert.rejects(lun.read(0x1_0000_0000n, 1, 512), (e: unknown) => e instanceof Error && e.constructor.name === 'LbaOutOfRangeError');
  assert.ok(sim.stats.opcodes.includes(0x88));
});

test('write-protect detection via MODE SENSE, fallbacks when unsupported', async () => {
  const a = lunOver({ powerOnUnitAttention: false, luns: [new MemoryCard(8, 512, { writeProtected: true })] });
  assert.equal(await a.lun.writeProtected(), true);
  const b = lunOver({ powerOnUnitAttention: false });
  assert.equal(await b.lun.writeProtected(), false);
  const c = lunOver({ powerOnUnitAttention: false, noModeSense: true, luns: [new MemoryCard(8, 512, { writeProtected: true })] });
  assert.equal(await c.lun.writeProtected(), false);
  assert.ok(c.sim.stats.opcodes.includes(0x5a));
});

test('SYNCHRONIZE CACHE unsupported is remembered and skipped', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false, noSyncCache: true });
  await lun.synchronizeCache();
  await lun.synchronizeCache();
  assert.equal(sim.stats.opcodes.filter((o) => o === 0x35).length, 1);
  assert.equal(lun.syncCacheUnsupported, true);
});

test('PREVENT/ALLOW and START STOP (eject empties the slot)', async () => {
  const { lun, sim } = lunOver({ powerOnUnitAttention: false });
  await lun.preventMediumRemoval(true);
  await lun.preventMediumRemoval(false);
  await lun.startStopUnit(false, { eject: true });
  assert.equal(sim.luns[0].card, null);
  await assert.rejects(lun.testUnitReady(), NoMediumError);
});
