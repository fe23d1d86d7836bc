import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, UsageError, WaitTimeoutError } from '../../../src/errors.js';
import { waitForCard, type WaitOptions } from '../../../src/reader/card-wait.js';
import { formatWaitResult, waitOptionsFrom } from '../../../src/cli/commands/wait.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';

const base = { bot: FAST_BOT, scsi: FAST_SCSI, profiles: [], sysfs: { sysRoot: '/nonexistent' }, intervalMs: 5 } satisfies Partial<WaitOptions>;

test('insert: a card put in while waiting is seen, with capacity and WP; the reader is held between polls and released at the end', async () => {
  const sim = new SimReader({ ports: [2], luns: [null] });
  let polls = 0;
  const r = await waitForCard({
    ...base,
    host: new SimHost([sim]),
    event: 'insert',
    timeoutMs: 5_000,
    onPoll: (slots, n) => {
      polls = n;
      assert.equal(sim.stats.closed, 0, 'still held while waiting');
      if (n === 3) sim.insertCard(0, new MemoryCard(256, 512, { writeProtected: true }));
      if (n < 4) assert.equal(slots[0].state, 'absent');
    },
  });
  assert.equal(r.event, 'insert');
  assert.equal(r.already, false);
  assert.equal(r.polls, 4);
  assert.equal(polls, 4);
  assert.deepEqual(
    r.slots.map((s) => ({ selector: s.selector, state: s.state, size: s.size, wp: s.writeProtected })),
    [{ selector: 'usb:1-2@lun=0', state: 'present', size: 256 * 512, wp: true }],
  );
  assert.equal(sim.stats.closed, 1);
  const text = formatWaitResult(r);
  assert.match(text, /^card present: usb:1-2@lun=0 \(128 KiB, write-protected\) \(after \d+\.\d s\)\n$/);
});

test('remove: waits until every matching slot is empty; the removed slot is reported', async () => {
  const sim = new SimReader({ ports: [3], luns: [new MemoryCard(64), new MemoryCard(64)] });
  const r = await waitForCard({
    ...base,
    host: new SimHost([sim]),
    event: 'remove',
    selector: { kind: 'port', portPath: '1-3', lun: 1 },
    timeoutMs: 5_000,
    onPoll: (_s, n) => {
      if (n === 2) sim.removeCard(1);
    },
  });
  assert.equal(r.polls, 3);
  assert.deepEqual(
    r.slots.map((s) => [s.selector, s.state]),
    [['usb:1-3@lun=1', 'absent']],
  );
  assert.deepEqual(
    r.all.map((s) => s.lun),
    [1],
    'only the named slot is watched',
  );
  assert.match(formatWaitResult(r), /^card removed: usb:1-3@lun=1 \(after/);
});

test('state already holding returns at the first poll; timeout is a WaitTimeoutError (exit 7) naming the state', async () => {
  const sim = new SimReader({ ports: [4] });
  const r = await waitForCard({ ...base, host: new SimHost([sim]), event: 'insert', timeoutMs: 0 });
  assert.equal(r.already, true);
  const started = Date.now();
  await assert.rejects(waitForCard({ ...base, host: new SimHost([sim]), event: 'remove', timeoutMs: 60 }), (e: unknown) => {
    assert.ok(e instanceof WaitTimeoutError);
    assert.equal(e.exitCode, ExitCode.TIMEOUT);
    assert.equal(ExitCode.TIMEOUT, 7);
    assert.match(e.message, /timed out after 0\.\d s: the card was not removed \(usb:1-4@lun=0 has a card\)/);
    return true;
  });
  assert.ok(Date.now() - started >= 60);
  assert.equal(sim.stats.closed, 2);
  const none = await waitForCard({ ...base, host: new SimHost([]), event: 'remove', timeoutMs: 0 });
  assert.deepEqual([none.already, none.slots.length], [true, 0]);
  assert.match(formatWaitResult(none), /^no card present \(already\)/);
});

test('reader hotplug: a reader that appears is opened, one that vanishes counts as empty', async () => {
  const sim = new SimReader({ ports: [5] });
  const host = new SimHost([]);
  const r = await waitForCard({
    ...base,
    host,
    event: 'insert',
    timeoutMs: 5_000,
    onPoll: (slots, n) => {
      assert.equal(slots.length, n < 3 ? 0 : 1);
      if (n === 2) host.readers.push(sim);
    },
  });
  assert.equal(r.polls, 3);
  const gone = await waitForCard({
    ...base,
    host,
    event: 'remove',
    timeoutMs: 5_000,
    onPoll: (_s, n) => {
      if (n === 1) sim.vanish();
    },
  });
  assert.equal(gone.polls, 2);
  assert.deepEqual(
    gone.slots.map((s) => s.selector),
    ['usb:1-5@lun=0'],
  );
});

test('a unit attention from card insertion is absorbed, not reported as a state', async () => {
  const sim = new SimReader({ ports: [6], luns: [null] });
  sim.insertCard(0, new MemoryCard(16));
  const r = await waitForCard({ ...base, host: new SimHost([sim]), event: 'insert', timeoutMs: 0 });
  assert.equal(r.slots[0].size, 16 * 512);
});

test('wait arguments: selector forms, exclusive events, timeout and interval checks', () => {
  assert.deepEqual(waitOptionsFrom({}), { selector: undefined, event: 'insert', timeoutMs: undefined, intervalMs: 1000 });
  assert.deepEqual(waitOptionsFrom({ selector: 'usb', remove: true, timeout: 2.5, interval: 0.2 }), { selector: undefined, event: 'remove', timeoutMs: 2500, intervalMs: 200 });
  assert.deepEqual(waitOptionsFrom({ selector: 'usb@lun=1' }).selector, { kind: 'any', lun: 1 });
  assert.deepEqual(waitOptionsFrom({ selector: 'usb:1-1.4' }).selector, { kind: 'port', portPath: '1-1.4' });
  assert.throws(() => waitOptionsFrom({ insert: true, remove: true }), UsageError);
  assert.throws(() => waitOptionsFrom({ selector: '/dev/sda' }), UsageError);
  assert.throws(() => waitOptionsFrom({ timeout: -1 }), UsageError);
  assert.throws(() => waitOptionsFrom({ interval: 0 }), UsageError);
});
