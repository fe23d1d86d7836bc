import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BotDriver, type BotEvent } from '../../../src/usb/bot.js';
import { CBW_SIGNATURE, decodeCbw, decodeCsw, encodeCbw, encodeCsw } from '../../../src/usb/wire.js';
import { BotTransportError, DeviceGoneError } from '../../../src/usb/errors.js';
import { cdb } from '../../../src/scsi/cdb.js';
import { MemoryCard, SimReader } from '../../sim/sim-reader.js';
import { botOver, FAST_BOT } from '../../sim/helpers.js';

const READ10 = 0x28;

function readyReader(opts: ConstructorParameters<typeof SimReader>[0] = {}): SimReader {
  return new SimReader({ powerOnUnitAttention: false, luns: [new MemoryCard(256, 512, { pattern: true })], ...opts });
}

test('CBW encoding: signature, tag, length, direction, LUN, CDB length', () => {
  const b = encodeCbw({ tag: 0xdeadbeef, dataTransferLength: 4096, directionIn: true, lun: 3, cdb: cdb.read10(7n, 8) });
  assert.equal(b.length, 31);
  assert.deepEqual([...b.subarray(0, 4)], [0x55, 0x53, 0x42, 0x43]);
  const d = decodeCbw(b)!;
  assert.equal(d.tag, 0xdeadbeef);
  assert.equal(d.dataTransferLength, 4096);
  assert.equal(d.directionIn, true);
  assert.equal(d.lun, 3);
  assert.equal(d.cdb.length, 10);
  assert.equal(b[14], 10);
  assert.throws(() => encodeCbw({ tag: 1, dataTransferLength: 0, directionIn: false, lun: 16, cdb: cdb.testUnitReady() }), RangeError);
  assert.throws(() => encodeCbw({ tag: 1, dataTransferLength: 0, directionIn: false, lun: 0, cdb: new Uint8Array(17) }), RangeError);
  assert.throws(() => encodeCbw({ tag: 1, dataTransferLength: -1, directionIn: false, lun: 0, cdb: cdb.testUnitReady() }), RangeError);
  const bad = b.slice();
  bad[0] = 0;
  assert.equal(decodeCbw(bad), undefined);
  assert.equal(decodeCbw(b.subarray(0, 30)), undefined);
  assert.equal(CBW_SIGNATURE, 0x43425355);
});

test('CSW decoding: 13 bytes only, fields little-endian', () => {
  const b = encodeCsw({ signature: 0x53425355, tag: 7, residue: 512, status: 1 });
  assert.deepEqual([...b.subarray(0, 4)], [0x55, 0x53, 0x42, 0x53]);
  assert.deepEqual(decodeCsw(b), { signature: 0x53425355, tag: 7, residue: 512, status: 1 });
  assert.equal(decodeCsw(b.subarray(0, 12)), undefined);
  assert.equal(decodeCsw(new Uint8Array(14)), undefined);
});

test('plain read: data and passed status, no recovery', async () => {
  const sim = readyReader();
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(2n, 2), inLength: 1024 });
  assert.equal(r.status, 'passed');
  assert.equal(r.residue, 0);
  assert.deepEqual(r.data, sim.luns[0].card!.data.subarray(1024, 2048));
  assert.deepEqual(events, []);
  assert.deepEqual(sim.stats.violations, []);
});

test('data-IN ending on a packet boundary: data and CSW in one IN transfer; other lengths read the CSW on its own', async () => {
  const sim = readyReader();
  const inReads: number[] = [];
  const bulkIn = sim.bulkIn.bind(sim);
  sim.bulkIn = (length, opts) => (inReads.push(length), bulkIn(length, opts));
  const bot = botOver(sim);
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(4n, 4), inLength: 2048 });
  assert.equal(r.status, 'passed');
  assert.equal(r.data.length, 2048);
  assert.deepEqual(r.data, sim.luns[0].card!.data.subarray(2048, 4096));
  assert.deepEqual(inReads, [2048 + 13]);
  assert.equal(sim.stats.dataWithCsw, 1);
  inReads.length = 0;
  const inq = await bot.execute({ lun: 0, cdb: cdb.inquiry(36), inLength: 36 });
  assert.equal(inq.data.length, 36);
  assert.deepEqual(inReads, [36, 13]);
  assert.deepEqual(sim.stats.violations, []);
});

test('data-OUT: the CSW read is queued with the data; a device that STALLs it gets status reads after the data from then on', async () => {
  const sim = readyReader();
  const bot = botOver(sim);
  const data = new Uint8Array(1024).fill(0xa5);
  assert.equal((await bot.execute({ lun: 0, cdb: cdb.write10(1n, 2), data })).status, 'passed');
  assert.deepEqual(sim.luns[0].card!.data.subarray(512, 1536), data);
  assert.equal(sim.stats.clearHalts.in, 0);
  assert.equal(bot.earlyStatus, true);

  const qemuLike = readyReader({ stallsEarlyStatus: true });
  const events: BotEvent[] = [];
  const bot2 = botOver(qemuLike, events);
  for (let i = 0; i < 3; i++) assert.equal((await bot2.execute({ lun: 0, cdb: cdb.write10(BigInt(i), 1), data: data.subarray(0, 512) })).status, 'passed');
  assert.deepEqual(
    events.map((e) => e.type),
    ['early-status-off', 'clear-halt'],
  );
  assert.equal(bot2.earlyStatus, false);
  // An empty answer to the queued status read is read again, as one made after the data would be.
  const sim3 = readyReader();
  sim3.inject({ type: 'empty-csw', opcode: 0x2a });
  const events3: BotEvent[] = [];
  assert.equal((await botOver(sim3, events3).execute({ lun: 0, cdb: cdb.write10(0n, 1), data: data.subarray(0, 512) })).status, 'passed');
  assert.ok(events3.some((e) => e.type === 'csw-retry' && e.why === 'empty'));
  assert.equal(sim3.stats.bomsResets, 0);
  assert.equal(qemuLike.stats.clearHalts.in, 1);
  assert.equal(qemuLike.stats.bomsResets, 0);
  assert.deepEqual(qemuLike.stats.violations, []);
});

test('Get Max LUN: value, STALL ⇒ 0', async () => {
  assert.equal(await botOver(readyReader({ luns: [null, new MemoryCard(8)] })).getMaxLun(), 1);
  assert.equal(await botOver(readyReader({ maxLunStalls: true, luns: [null, new MemoryCard(8)] })).getMaxLun(), 0);
});

test('STALL in data phase (short reply, case 5): halt cleared, CSW read, residue reported', async () => {
  const sim = readyReader();
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  // INQUIRY with a 64-byte allocation: the device has 36 bytes, then STALLs bulk-IN.
  const r = await bot.execute({ lun: 0, cdb: cdb.inquiry(64), inLength: 64 });
  assert.equal(r.status, 'passed');
  assert.equal(r.data.length, 36);
  assert.equal(r.residue, 28);
  assert.equal(sim.stats.clearHalts.in, 1);
  assert.ok(events.some((e) => e.type === 'csw-retry' && e.why === 'stall'));
  assert.equal(sim.stats.bomsResets, 0);
});

test('STALL at the start of the data phase: clear halt, read CSW with status failed', async () => {
  const sim = readyReader();
  sim.inject({ type: 'stall-data-in', opcode: READ10 });
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(0n, 4), inLength: 2048 });
  assert.equal(r.status, 'failed');
  assert.equal(r.stalled, true);
  assert.equal(r.residue, 2048);
  assert.deepEqual(events[0], { type: 'clear-halt', direction: 'in', phase: 'data' });
  assert.equal(sim.stats.bomsResets, 0);
  // The pipe works afterwards.
  const ok = await bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 });
  assert.equal(ok.status, 'passed');
});

test('STALL on bulk-OUT in the data phase: halt cleared, CSW read', async () => {
  const sim = readyReader();
  sim.inject({ type: 'stall-data-out', opcode: 0x2a });
  const bot = botOver(sim);
  const r = await bot.execute({ lun: 0, cdb: cdb.write10(0n, 1), data: new Uint8Array(512) });
  assert.equal(r.status, 'failed');
  assert.equal(r.residue, 512);
  assert.equal(sim.stats.clearHalts.out, 1);
  assert.equal(sim.stats.bomsResets, 0);
});

test('STALL on the CSW: cleared and the CSW read once more', async () => {
  const sim = readyReader();
  sim.inject({ type: 'stall-csw' });
  const events: BotEvent[] = [];
  const r = await botOver(sim, events).execute({ lun: 0, cdb: cdb.testUnitReady() });
  assert.equal(r.status, 'passed');
  assert.ok(events.some((e) => e.type === 'csw-retry' && e.why === 'stall'));
  assert.equal(sim.stats.bomsResets, 0);
});

test('zero-length CSW read is retried once', async () => {
  const sim = readyReader();
  sim.inject({ type: 'empty-csw' });
  const events: BotEvent[] = [];
  const r = await botOver(sim, events).execute({ lun: 0, cdb: cdb.testUnitReady() });
  assert.equal(r.status, 'passed');
  assert.ok(events.some((e) => e.type === 'csw-retry' && e.why === 'empty'));
});

for (const [name, fault, reason] of [
  ['phase error', { type: 'phase-error' }, 'phase-error'],
  ['bad CSW signature', { type: 'bad-csw-signature' }, 'invalid-csw'],
  ['bad CSW tag', { type: 'bad-csw-tag' }, 'invalid-csw'],
  ['short CSW (7 bytes)', { type: 'short-csw', length: 7 }, 'invalid-csw'],
  ['timeout in the data phase', { type: 'timeout', phase: 'data' }, 'timeout'],
  ['timeout on the CSW', { type: 'timeout', phase: 'csw' }, 'timeout'],
  ['timeout on the CBW', { type: 'timeout', phase: 'cbw' }, 'timeout'],
] as const) {
  test(`${name} ⇒ reset recovery (BOMS reset, clear IN, clear OUT), next command works`, async () => {
    const sim = readyReader();
    sim.inject({ ...fault, opcode: READ10 } as never);
    const events: BotEvent[] = [];
    const bot = botOver(sim, events);
    await assert.rejects(bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 }), (e: unknown) => {
      assert.ok(e instanceof BotTransportError);
      assert.equal(e.reason, reason);
      assert.equal(e.recovered, true);
      return true;
    });
    assert.equal(sim.stats.bomsResets, 1);
    const order = events.filter((e) => e.type === 'clear-halt' && e.phase === 'recovery').map((e) => (e as { direction: string }).direction);
    assert.deepEqual(order, ['in', 'out']);
    assert.ok(events.some((e) => e.type === 'reset-recovery' && e.reason === reason));
    const r = await bot.execute({ lun: 0, cdb: cdb.read10(3n, 1), inLength: 512 });
    assert.equal(r.status, 'passed');
    assert.deepEqual(r.data, sim.luns[0].card!.data.subarray(1536, 2048));
  });
}

test('babble in the data phase: CSW still read, typed babble error, pipe in step', async () => {
  const sim = readyReader();
  sim.inject({ type: 'babble', opcode: READ10 });
  const bot = botOver(sim);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 }), (e: unknown) => e instanceof BotTransportError && e.reason === 'babble' && e.recovered);
  assert.equal(sim.stats.bomsResets, 0);
  assert.equal((await bot.execute({ lun: 0, cdb: cdb.testUnitReady() })).status, 'passed');
});

test('device skipping the data phase: 13-byte CSW in the data-IN is taken as the CSW', async () => {
  const sim = readyReader();
  sim.inject({ type: 'skip-data-phase', opcode: READ10 });
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 });
  assert.equal(r.data.length, 0);
  assert.ok(events.some((e) => e.type === 'data-phase-skipped'));
  assert.equal(sim.stats.bomsResets, 0);
});

test('BOMS reset failing escalates to a port reset', async () => {
  const sim = readyReader({ bomsResetFails: true });
  sim.inject({ type: 'phase-error' });
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.testUnitReady() }), (e: unknown) => e instanceof BotTransportError && e.recovered);
  assert.equal(sim.stats.portResets, 1);
  assert.ok(events.some((e) => e.type === 'port-reset'));
});

test('a device that keeps failing right after reset recovery gets a port reset', async () => {
  const sim = readyReader();
  sim.inject({ type: 'timeout', phase: 'csw', times: 2 });
  const bot = botOver(sim);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.testUnitReady() }), BotTransportError);
  assert.equal(sim.stats.bomsResets, 1);
  assert.equal(sim.stats.portResets, 0);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.testUnitReady() }), BotTransportError);
  assert.equal(sim.stats.portResets, 1);
  // After the port reset the device reports the reset as a unit attention.
  const r = await bot.execute({ lun: 0, cdb: cdb.testUnitReady() });
  assert.equal(r.status, 'failed');
});

test('device vanishing: DeviceGoneError, no recovery attempts, later calls fail fast', async () => {
  const sim = readyReader();
  sim.inject({ type: 'vanish', phase: 'data' });
  const bot = botOver(sim);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 }), DeviceGoneError);
  assert.equal(sim.stats.bomsResets, 0);
  assert.equal(sim.stats.portResets, 0);
  assert.equal(bot.disconnected, true);
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.testUnitReady() }), DeviceGoneError);
  await assert.rejects(bot.getMaxLun(), DeviceGoneError);
});

test('IGNORE_RESIDUE auto-detection on a full INQUIRY with a bogus residue', async () => {
  const sim = readyReader();
  sim.inject({ type: 'wrong-residue', residue: 100, opcode: 0x12 });
  const events: BotEvent[] = [];
  const bot = botOver(sim, events);
  const r = await bot.execute({ lun: 0, cdb: cdb.inquiry(36), inLength: 36 });
  assert.equal(r.residue, 0);
  assert.equal(bot.ignoreResidue, true);
  assert.ok(events.some((e) => e.type === 'ignore-residue-detected'));
});

test('one command at a time: concurrent callers are serialised', async () => {
  const sim = readyReader();
  const bot = botOver(sim);
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => bot.execute({ lun: 0, cdb: cdb.read10(BigInt(i), 1), inLength: 512 })));
  rs.forEach((r, i) => assert.deepEqual(r.data, sim.luns[0].card!.data.subarray(i * 512, (i + 1) * 512)));
  assert.deepEqual(sim.stats.violations, []);
});

test('an aborted command rejects with the abort reason; the device is reset before the next one', async () => {
  const ac = new AbortController();
  const sim = readyReader({ onCbw: (cbw) => cbw.cdb[0] === READ10 && cbw.dataTransferLength === 1024 && ac.abort(new Error('stop')) });
  const bot = new BotDriver(sim, { ...FAST_BOT });
  // Aborted before it starts: nothing reaches the device.
  const early = new AbortController();
  early.abort(new Error('early'));
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512, signal: early.signal }), /early/);
  assert.equal(sim.stats.cbws, 0);
  // Aborted after the CBW went out: the device is mid-command.
  await assert.rejects(bot.execute({ lun: 0, cdb: cdb.read10(0n, 2), inLength: 1024, signal: ac.signal }), /stop/);
  assert.equal(sim.stats.bomsResets, 0);
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(0n, 1), inLength: 512 });
  assert.equal(r.status, 'passed');
  assert.equal(sim.stats.bomsResets, 1);
  assert.deepEqual(sim.stats.violations, []);
});

test('STALL on the CSW read together with the data (one bulk-IN transfer on the wire): the data went with the STALL, the READ is retried with data and CSW read apart', async () => {
  const sim = readyReader();
  sim.inject({ type: 'stall-csw', opcode: READ10, times: 2 });
  // bulk-IN as one URB: packets until the length is filled or a short packet; a STALL ends the
  // transfer and what it had brought is lost (libusb reports the transfer as stalled)
  const wire = new Proxy(sim, {
    get(t, p) {
      if (p === 'bulkIn')
        return async (length: number, opts: Parameters<SimReader['bulkIn']>[1]) => {
          let got = new Uint8Array(0);
          for (;;) {
            const c = await t.bulkIn(length - got.length, opts);
            got = Buffer.concat([got, c]);
            if (got.length >= length || c.length === 0 || c.length % 512 !== 0) return got;
          }
        };
      const v = Reflect.get(t, p);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const events: BotEvent[] = [];
  const bot = new BotDriver(wire, { ...FAST_BOT, onEvent: (e) => events.push(e) });
  await assert.rejects(
    bot.execute({ lun: 0, cdb: cdb.read10(0n, 8), inLength: 4096 }),
    (e: unknown) => e instanceof BotTransportError && e.reason === 'data-failed' && e.recovered,
  );
  assert.ok(events.some((e) => e.type === 'data-with-csw-off'));
  assert.equal(bot.dataWithCsw, false);
  // again: the data comes on its own, the CSW read stalls once more, is cleared and read again
  const r = await bot.execute({ lun: 0, cdb: cdb.read10(0n, 8), inLength: 4096 });
  assert.equal(r.status, 'passed');
  assert.equal(r.residue, 0);
  assert.ok(Buffer.from(r.data).equals(Buffer.from(sim.luns[0].card!.data.subarray(0, 4096))), 'the first blocks of the card');
  assert.equal(sim.stats.bomsResets, 0, 'no reset: the pipe stayed in step');
});
