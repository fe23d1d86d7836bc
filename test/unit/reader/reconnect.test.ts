/**
 * Readers that leave and come back: `wait` reports them (reader-gone / reader-back, matched by
 * port or serial), and a reconnecting USB device (reader/reconnecting-device.ts) reopens the slot
 * after an unplug or a re-enumeration, or stops cleanly (cancelled, write-protected, another card).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReconnectEvent } from '../../../src/blockdev/reconnect.js';
import { ExitCode, WriteProtectedError } from '../../../src/errors.js';
import { describeReaderEvent } from '../../../src/cli/commands/wait.js';
import { waitForCard, type ReaderPresenceEvent, type WaitOptions } from '../../../src/reader/card-wait.js';
import { openReconnectingUsbDevice } from '../../../src/reader/reconnecting-device.js';
import { matchReader } from '../../../src/reader/reader-identity.js';
import { FAST_BOT, FAST_SCSI, pattern } from '../../sim/helpers.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { assertContract } from '../../helpers/contract.js';

const fast = { bot: FAST_BOT, scsi: FAST_SCSI, profiles: [], sysfs: { sysRoot: '/nonexistent' } };
const waitBase = { ...fast, intervalMs: 5 } satisfies Partial<WaitOptions>;

/** Waits for a card while the reader (empty) is unplugged after poll 1 and `back` is plugged in after poll 2. */
async function waitAcrossReplug(back: (card: MemoryCard) => SimReader) {
  const first = new SimReader({ ports: [2], serial: 'W1', address: 4, luns: [null] });
  const host = new SimHost([first]);
  const seen: ReaderPresenceEvent[] = [];
  const r = await waitForCard({
    ...waitBase,
    host,
    event: 'insert',
    timeoutMs: 5_000,
    onReader: (e) => seen.push(e),
    onPoll: (_s, n) => {
      if (n === 1) {
        first.vanish();
        host.readers.splice(0, 1);
      }
      if (n === 2) host.readers.push(back(new MemoryCard(256)));
    },
  });
  return { r, seen };
}

test('wait: a watched reader leaves and comes back at a new address on its port → reader-gone, reader-back (port)', async () => {
  const { r, seen } = await waitAcrossReplug((card) => new SimReader({ ports: [2], serial: 'W1', address: 7, luns: [card] }));
  assert.equal(r.event, 'insert');
  assert.equal(r.polls, 3);
  assert.deepEqual(r.readerEvents, seen);
  assert.deepEqual(
    seen.map((e) => [e.type, e.port, e.address, e.type === 'reader-back' ? [e.match, e.previousAddress] : null]),
    [
      ['reader-gone', '1-2', 4, null],
      ['reader-back', '1-2', 7, ['port', 4]],
    ],
  );
  assertContract('wait', r);
  assert.match(describeReaderEvent(seen[0]), /^reader usb:1-2 \(1d6b:0104, serial W1\) left \(it was at address 4\)$/);
  assert.match(describeReaderEvent(seen[1]), /^reader usb:1-2 \(1d6b:0104, serial W1\) is back on the same port at address 7 \(was 4\)$/);
});

test('wait: the same serial on another port is the reader back; another serial on its port is not', async () => {
  const moved = await waitAcrossReplug((card) => new SimReader({ ports: [6], serial: 'W1', address: 9, luns: [card] }));
  const back = moved.seen[1];
  assert.ok(back?.type === 'reader-back');
  assert.deepEqual([back.match, back.port, back.previousPort], ['serial', '1-6', '1-2']);
  assert.match(describeReaderEvent(back), /is back on another port \(it was on 1-2\)/);
  const other = await waitAcrossReplug((card) => new SimReader({ ports: [2], serial: 'OTHER', address: 7, luns: [card] }));
  assert.deepEqual(
    other.seen.map((e) => e.type),
    ['reader-gone'],
  );
  assert.equal(other.r.event, 'insert', 'the other reader still ends the wait with its card');
});

test('reader identity: same VID:PID needed; a serial decides when there is one; without one only the port counts', () => {
  const a = new SimReader({ ports: [1], serial: 'S' }).device;
  assert.equal(matchReader(a, { ...a, address: 9 }), 'port');
  assert.equal(matchReader(a, { ...a, ports: [3], portPath: '1-3' }), 'serial');
  assert.equal(matchReader(a, { ...a, serial: 'T' }), undefined);
  assert.equal(matchReader(a, { ...a, productId: 1 }), undefined);
  const n = { ...a, serial: undefined };
  assert.equal(matchReader(n, { ...n, address: 8 }), 'port');
  assert.equal(matchReader(n, { ...n, ports: [3], portPath: '1-3' }), undefined);
});

async function openOn(host: SimHost, timeoutMs: number, events: ReconnectEvent[], write = true, signal?: AbortSignal) {
  return openReconnectingUsbDevice('usb:1-2', { ...fast, host, write, pollMs: 5, reconnect: { timeoutMs, onEvent: (e) => events.push(e) }, ...(signal ? { signal } : {}) });
}

test('a reset that re-enumerates the reader under a new address: the slot is opened and checked again, then the write goes on', async () => {
  const card = new MemoryCard(2048);
  const sim = new SimReader({ ports: [2], serial: 'R', address: 4, luns: [card] });
  const host = new SimHost([sim]);
  const events: ReconnectEvent[] = [];
  const dev = await openOn(host, 2_000, events);
  try {
    await dev.write(0, pattern(4096, 1));
    // What the transport does after a port reset that re-enumerates: it finds the device again by
    // port path and goes on under the new address (node-usb-transport.ts resetPort).
    sim.device.address = 11;
    const data = pattern(8192, 2);
    await dev.write(65536, data);
    await dev.flush();
    assert.ok(Buffer.from(card.data.subarray(65536, 65536 + 8192)).equals(Buffer.from(data)));
    assert.deepEqual(
      events.map((e) => [e.type, e.address]),
      [
        ['reader-gone', 4],
        ['reader-back', 11],
      ],
    );
    assert.match(events[0].type === 'reader-gone' ? events[0].error : '', /re-enumerated \(address 4 → 11\)/);
    assert.equal(dev.reconnects, 1);
  } finally {
    await dev.close();
  }
});

test('an unplug during a flush: the flush is sent again to the reader that came back', async () => {
  const card = new MemoryCard(2048);
  const host = new SimHost([]);
  const sim: SimReader = new SimReader({
    ports: [2],
    serial: 'R',
    address: 4,
    luns: [card],
    onCbw: (cbw) => {
      if (cbw.cdb[0] !== 0x35) return;
      sim.vanish();
      host.readers.length = 0;
      setTimeout(() => host.readers.push(again), 10);
    },
  });
  const again = new SimReader({ ports: [2], serial: 'R', address: 5, luns: [card] });
  host.readers.push(sim);
  const events: ReconnectEvent[] = [];
  const dev = await openOn(host, 2_000, events);
  try {
    await dev.write(512, pattern(512, 3));
    await dev.flush();
    assert.ok(again.stats.opcodes.includes(0x35), 'SYNCHRONIZE CACHE reached the reader that came back');
    assert.deepEqual(
      events.map((e) => e.type),
      ['reader-gone', 'reader-back'],
    );
  } finally {
    await dev.close();
  }
});

test('Ctrl-C while waiting for the reader ends the wait at once (AbortError), never a hang', async () => {
  const sim = new SimReader({ ports: [2], serial: 'R', address: 4, luns: [new MemoryCard(2048)] });
  const host = new SimHost([sim]);
  const events: ReconnectEvent[] = [];
  const dev = await openOn(host, 3_600_000, events);
  const ac = new AbortController();
  try {
    sim.vanish();
    host.readers.length = 0;
    const p = dev.read(0, 512, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p, (e: unknown) => (e as Error).name === 'AbortError');
    assert.deepEqual(
      events.map((e) => e.type),
      ['reader-gone'],
    );
  } finally {
    await dev.close();
  }
});

test('the card comes back write-protected while writing → WriteProtectedError (exit 5), nothing written', async () => {
  const card = new MemoryCard(2048);
  const host = new SimHost([]);
  const sim = new SimReader({ ports: [2], serial: 'R', address: 4, luns: [card] });
  host.readers.push(sim);
  const events: ReconnectEvent[] = [];
  const dev = await openOn(host, 2_000, events);
  try {
    sim.vanish();
    host.readers.length = 0;
    card.writeProtected = true;
    const back = new SimReader({ ports: [2], serial: 'R', address: 6, luns: [card] });
    setTimeout(() => host.readers.push(back), 10);
    await assert.rejects(dev.write(0, pattern(512, 4)), (e: unknown) => e instanceof WriteProtectedError && e.exitCode === ExitCode.WRITE_PROTECTED);
    assert.ok(!back.stats.opcodes.includes(0x2a));
  } finally {
    await dev.close();
  }
});

test('a card whose first block cannot be read still opens (no sample of it); the rest of it reads', async () => {
  const card = new MemoryCard(2048, 512, { pattern: true });
  const sim = new SimReader({ ports: [2], serial: 'R', address: 4, luns: [card] });
  // MEDIUM ERROR on the two attempts the SCSI layer makes at the first read (the sample).
  sim.inject({ type: 'sense', sense: [3, 0x11, 0x00], opcode: 0x28, times: 2 });
  const dev = await openOn(new SimHost([sim]), 2_000, [], false);
  try {
    assert.deepEqual(sim.faults, [], 'the sample read met the medium error');
    assert.ok(Buffer.from(await dev.read(4096, 512)).equals(Buffer.from(card.data.subarray(4096, 4608))));
  } finally {
    await dev.close();
  }
});
