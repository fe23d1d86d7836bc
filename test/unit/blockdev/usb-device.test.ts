import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRange, writeRange } from '../../../src/blockdev/io.js';
import { DEFAULT_MAX_TRANSFER_BYTES, FALLBACK_MAX_TRANSFER_BYTES, SUPERSPEED_MAX_TRANSFER_BYTES, UsbBlockDevice } from '../../../src/blockdev/usb-device.js';
import { CrashcartError, IoError, UsageError, WriteProtectedError } from '../../../src/errors.js';
import { LbaOutOfRangeError, MediumChangedError, MediumError, MediumWriteProtectedError, NoMediumError } from '../../../src/scsi/sense.js';
import { DeviceGoneError } from '../../../src/usb/errors.js';
import { MemoryCard, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI, openSim, pattern } from '../../sim/helpers.js';

const MiB = 1024 * 1024;

test('open: power-on unit attention absorbed; capacity, block size, identity, not read-only', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(8192)] });
  assert.equal(dev.size, 4 * MiB);
  assert.equal(dev.blockSize, 512);
  assert.equal(dev.alignment, 512);
  assert.equal(dev.readOnly, false);
  assert.equal(dev.info.kind, 'usb');
  assert.equal(dev.info.vendor, 'CRASHCRT');
  assert.equal(dev.info.model, 'Sim Card Reader');
  assert.equal(dev.info.serial, 'SIM0001');
  assert.match(dev.info.name, /^usb:1-1\.4@lun=0 \(1d6b:0104\)$/);
  assert.equal(dev.transferBytes, DEFAULT_MAX_TRANSFER_BYTES);
  assert.deepEqual(sim.stats.violations, []);
});

test('open after card insertion: 06/28 absorbed', async () => {
  const sim = new SimReader({ powerOnUnitAttention: false, luns: [null] });
  sim.insertCard(0, new MemoryCard(1024));
  const dev = await UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI });
  assert.equal(dev.size, 512 * 1024);
});

test('open an empty slot: NoMediumError and the transport is closed', async () => {
  const sim = new SimReader({ luns: [null] });
  await assert.rejects(UsbBlockDevice.open(sim, { bot: FAST_BOT, scsi: FAST_SCSI }), NoMediumError);
  assert.equal(sim.stats.closed, 1);
});

test('multi-LUN reader: second slot opens; a slot past Get Max LUN is a usage error', async () => {
  const card = new MemoryCard(2048, 512, { pattern: true });
  const { dev } = await openSim({ luns: [null, card] }, { lun: 1 });
  assert.equal(dev.size, 2048 * 512);
  assert.deepEqual(await dev.read(0, 1024), card.data.subarray(0, 1024));
  await assert.rejects(openSim({ luns: [null, card] }, { lun: 2 }), UsageError);
  // With SINGLE_LUN the reader is used as one slot whatever Get Max LUN says.
  await assert.rejects(openSim({ luns: [card, card] }, { lun: 1, quirks: { singleLun: true } }), UsageError);
});

test('read/write round trip across many commands, unaligned ranges through io helpers', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(8192)] });
  const data = pattern(MiB + 3 * 512, 1);
  await dev.write(512 * 100, data);
  await dev.flush();
  assert.deepEqual(await dev.read(512 * 100, data.length), data);
  assert.deepEqual(sim.luns[0].card!.data.subarray(51200, 51200 + data.length), data);
  assert.ok(sim.stats.maxDataLength <= DEFAULT_MAX_TRANSFER_BYTES);
  assert.ok(sim.stats.opcodes.includes(0x35));
  const small = pattern(1000, 2);
  await writeRange(dev, 777, small);
  assert.deepEqual(await readRange(dev, 777, 1000), small);
  assert.deepEqual(sim.stats.violations, []);
});

test('the last 8 blocks are accessed one block per command', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(1000, 512, { pattern: true })] });
  const before = sim.stats.opcodes.length;
  const tail = await dev.read(512 * 980, 512 * 20);
  assert.deepEqual(tail, sim.luns[0].card!.data.subarray(512 * 980));
  const reads = sim.stats.opcodes.slice(before).filter((o) => o === 0x28).length;
  assert.equal(reads, 1 + 8);
});

test('transfer size per speed like Linux usb-storage: 1 MiB per command on SuperSpeed; profile and explicit size win', async () => {
  const card = new MemoryCard(8192, 512, { pattern: true });
  const sim = new SimReader({ powerOnUnitAttention: false, luns: [card] });
  sim.device.speed = 'super';
  const dev = await UsbBlockDevice.open(sim, { bot: FAST_BOT });
  assert.equal(dev.transferBytes, SUPERSPEED_MAX_TRANSFER_BYTES);
  // One command covers the whole request: its data comes back as it is, whole and right.
  assert.deepEqual(await dev.read(512, 1024 * 1024), card.data.subarray(512, 512 + 1024 * 1024));
  assert.equal(sim.stats.maxDataLength, 1024 * 1024);
  const withProfile = new SimReader({ powerOnUnitAttention: false, luns: [new MemoryCard(64)] });
  withProfile.device.speed = 'super';
  assert.equal((await UsbBlockDevice.open(withProfile, { bot: FAST_BOT, quirks: { maxSectors: 64 } })).transferBytes, 32 * 1024);
  const explicit = new SimReader({ powerOnUnitAttention: false, luns: [new MemoryCard(64)] });
  assert.equal((await UsbBlockDevice.open(explicit, { bot: FAST_BOT, quirks: { maxSectors: 64 }, maxTransferBytes: 256 * 1024 + 100 })).transferBytes, 256 * 1024);
});

test('reader profile maxSectors limits each command', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(4096)] }, { quirks: { maxSectors: 64 } });
  await dev.read(0, 512 * 1000);
  assert.equal(dev.transferBytes, 32 * 1024);
  assert.equal(sim.stats.maxDataLength, 32 * 1024);
});

test('timeouts on large transfers: reset recovery, transfer size falls back to 32 KiB, data intact', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const { dev, sim, events } = await openSim({ luns: [card] });
  // This reader chokes on anything above 64 KiB.
  sim.inject({ type: 'timeout', phase: 'data', minLength: 64 * 1024 + 1, times: Infinity });
  const got = await dev.read(0, MiB);
  assert.deepEqual(got, card.data.subarray(0, MiB));
  assert.equal(dev.transferBytes, FALLBACK_MAX_TRANSFER_BYTES);
  assert.ok(events.some((e) => e.type === 'transfer-size-fallback'));
  assert.equal(sim.stats.bomsResets, 1);
  const data = pattern(256 * 1024, 3);
  await dev.write(0, data);
  assert.deepEqual(card.data.subarray(0, data.length), data);
});

test('a small transfer that keeps timing out ends in a typed transport error', async () => {
  const { dev, sim } = await openSim();
  sim.inject({ type: 'timeout', phase: 'data', opcode: 0x28, times: Infinity });
  await assert.rejects(dev.read(0, 4096), (e: unknown) => e instanceof IoError && e.constructor.name === 'BotTransportError');
});

test('stall in data phase with aborted-command sense: recovered by retry', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const { dev, sim } = await openSim({ luns: [card] });
  sim.inject({ type: 'stall-data-in', opcode: 0x28, afterBytes: 4096 });
  assert.deepEqual(await dev.read(0, 64 * 1024), card.data.subarray(0, 64 * 1024));
  assert.ok(sim.stats.clearHalts.in >= 1);
});

test('phase error, bad signature, bad tag, short CSW, babble mid-read: recovered, data intact', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const { dev, sim } = await openSim({ luns: [card] });
  const faults = [
    { type: 'phase-error', opcode: 0x28 },
    { type: 'bad-csw-signature', opcode: 0x28 },
    { type: 'short-csw', length: 12, opcode: 0x28 },
    { type: 'babble', opcode: 0x28 },
  ] as const;
  for (const f of faults) {
    sim.inject(f);
    assert.deepEqual(await dev.read(0, MiB), card.data.subarray(0, MiB), f.type);
  }
  sim.inject({ type: 'bad-csw-tag', opcode: 0x2a });
  const data = pattern(8192, 9);
  await dev.write(4096, data);
  assert.deepEqual(await dev.read(4096, 8192), data);
  assert.equal(sim.faults.length, 0);
  assert.equal(sim.stats.bomsResets, 4);
});

test('unrecoverable medium error: MediumError with the LBA', async () => {
  const { dev, sim } = await openSim();
  sim.inject({ type: 'stall-data-in', opcode: 0x28, afterBytes: 2048, sense: [3, 0x11, 0], times: 2 });
  await assert.rejects(dev.read(512 * 8, 8192), (e: unknown) => e instanceof MediumError && e.lba === 12n);
});

test('medium removed mid-transfer: NoMediumError now and on the next access', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(4096)] });
  sim.inject({ type: 'remove-medium', afterBytes: 10_000, opcode: 0x28 });
  await assert.rejects(dev.read(0, MiB), NoMediumError);
  await assert.rejects(dev.read(0, 512), NoMediumError);
});

test('medium removed during a write: NoMediumError', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(4096)] });
  sim.inject({ type: 'remove-medium', afterBytes: 1024, opcode: 0x2a });
  await assert.rejects(dev.write(0, new Uint8Array(8192)), NoMediumError);
});

test('card swapped while open: I/O refused with MediumChangedError from then on', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(4096)] });
  sim.removeCard(0);
  sim.insertCard(0, new MemoryCard(4096));
  await assert.rejects(dev.read(0, 512), MediumChangedError);
  await assert.rejects(dev.read(0, 512), MediumChangedError);
  await assert.rejects(dev.write(0, new Uint8Array(512)), MediumChangedError);
  await assert.rejects(dev.flush(), MediumChangedError);
});

test('reset unit attention mid-session (after a port reset) is absorbed', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const { dev, sim } = await openSim({ luns: [card] });
  sim.luns[0].unitAttention.push([6, 0x29, 0]);
  assert.deepEqual(await dev.read(0, 4096), card.data.subarray(0, 4096));
});

test('write-protected card: read-only at open, writes refused before reaching the device', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(1024, 512, { writeProtected: true })] });
  assert.equal(dev.readOnly, true);
  assert.equal(dev.state.writeProtected, true);
  await assert.rejects(dev.write(0, new Uint8Array(512)), WriteProtectedError);
  assert.ok(!sim.stats.opcodes.includes(0x2a));
  await dev.flush();
});

test('lock switch moved after open: device answers 07/27, backend becomes read-only', async () => {
  const { dev, sim } = await openSim({ luns: [new MemoryCard(1024)] });
  sim.luns[0].card!.writeProtected = true;
  await assert.rejects(dev.write(0, new Uint8Array(1024)), MediumWriteProtectedError);
  assert.equal(dev.readOnly, true);
  await assert.rejects(dev.write(0, new Uint8Array(512)), WriteProtectedError);
});

test('opened read-only on request', async () => {
  const { dev } = await openSim({}, { readOnly: true });
  assert.equal(dev.readOnly, true);
  await assert.rejects(dev.write(0, new Uint8Array(512)), /opened read-only/);
});

test('device vanishes: DeviceGoneError, no resets attempted', async () => {
  const { dev, sim } = await openSim();
  sim.vanish();
  await assert.rejects(dev.read(0, 512), DeviceGoneError);
  assert.equal(sim.stats.bomsResets + sim.stats.portResets, 0);
  await dev.close();
});

test('bad ranges go through the shared checks: past the end and negative are out-of-range IoErrors, unaligned is a programming error, a closed device is gone', async () => {
  const { dev } = await openSim({ luns: [new MemoryCard(16)] });
  const failure = (kind: string) => (e: unknown) => e instanceof IoError && e.failure === kind;
  const unaligned = (e: unknown) => e instanceof CrashcartError && !(e instanceof IoError) && /not aligned to 512 bytes/.test(e.message);
  await assert.rejects(dev.read(512 * 15, 1024), failure('out-of-range'));
  await assert.rejects(dev.read(100, 512), unaligned);
  await assert.rejects(dev.read(0, 100), unaligned);
  await assert.rejects(dev.read(-512, 512), failure('out-of-range'));
  await assert.rejects(dev.write(0, new Uint8Array(3)), unaligned);
  assert.equal((await dev.read(0, 0)).length, 0);
  await dev.close();
  await dev.close();
  await assert.rejects(dev.read(0, 512), failure('gone'));
});

test('capacity off by one: without the quirk the last block is out of range; with it the size is right', async () => {
  const opts = { capacityReportsCount: true, luns: [new MemoryCard(100)] };
  const a = await openSim(opts);
  assert.equal(a.dev.size, 101 * 512);
  await assert.rejects(a.dev.read(100 * 512, 512), LbaOutOfRangeError);
  const b = await openSim(opts, { quirks: { capacityOffByOne: true } });
  assert.equal(b.dev.size, 100 * 512);
  assert.equal((await b.dev.read(99 * 512, 512)).length, 512);
});

test('4096-byte logical blocks', async () => {
  const card = new MemoryCard(256, 4096, { pattern: true });
  const { dev } = await openSim({ luns: [card] });
  assert.equal(dev.alignment, 4096);
  assert.equal(dev.transferBytes, 122880);
  assert.deepEqual(await dev.read(4096, 4096 * 40), card.data.subarray(4096, 4096 * 41));
  await assert.rejects(dev.read(512, 4096), /not aligned to 4096 bytes/);
});

test('concurrent reads and writes on one device', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const { dev, sim } = await openSim({ luns: [card] });
  const blocks = Array.from({ length: 16 }, (_, i) => pattern(64 * 1024, i + 10));
  await Promise.all(blocks.map((b, i) => dev.write(i * 64 * 1024, b)));
  const back = await Promise.all(blocks.map((_, i) => dev.read(i * 64 * 1024, 64 * 1024)));
  back.forEach((b, i) => assert.deepEqual(b, blocks[i]));
  assert.deepEqual(sim.stats.violations, []);
});

test('abort signal cancels a read; the device keeps working afterwards', async () => {
  const card = new MemoryCard(4096, 512, { pattern: true });
  const ac = new AbortController();
  const { dev } = await openSim({ luns: [card], onCbw: (c) => c.cdb[0] === 0x28 && c.dataTransferLength === 4096 && ac.abort() });
  await assert.rejects(dev.read(0, 4096, { signal: ac.signal }), (e: unknown) => e instanceof Error && e.name === 'AbortError');
  assert.deepEqual(await dev.read(0, 2048), card.data.subarray(0, 2048));
});
