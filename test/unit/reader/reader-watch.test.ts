import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectReaders, type ListedReader } from '../../../src/reader/reader-list.js';
import { diffReaders, watchReaders, type ReaderWatchEvent } from '../../../src/reader/reader-watch.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import { assertContract } from '../../helpers/contract.js';

const fast = { bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' }, profiles: [] };
const brief = (e: ReaderWatchEvent) =>
  e.type === 'card-inserted' || e.type === 'card-removed'
    ? `${e.type} ${e.slot.selector}`
    : e.type === 'reader-added'
      ? `${e.type} ${e.reader.selector}`
      : e.type === 'reader-removed'
        ? `${e.type} ${e.selector}`
        : e.type;

test('watch: readers and cards present at the start, then inserted, swapped, removed and unplugged; every event in the schema', async () => {
  const a = new SimReader({ ports: [1], serial: 'A', luns: [new MemoryCard(2048), null] });
  const b = new SimReader({ ports: [2], serial: 'B', luns: [null] });
  const host = new SimHost([a]);
  const steps: (() => void)[] = [
    () => a.insertCard(1, new MemoryCard(4096)),
    () => host.readers.push(b),
    () => a.insertCard(0, new MemoryCard(8192)), // another card in slot 0: out, then in
    () => {
      a.removeCard(1);
      b.insertCard(0, new MemoryCard(1024));
    },
    () => host.readers.splice(0, 1),
  ];
  const ac = new AbortController();
  const events: ReaderWatchEvent[] = [];
  let poll = 0;
  await watchReaders({
    collect: async () => {
      if (poll > 0) steps[poll - 1]?.();
      if (poll++ === steps.length + 1) ac.abort();
      return collectReaders({ ...fast, host });
    },
    intervalMs: 1,
    signal: ac.signal,
    onEvent: (e) => events.push(e),
  });
  for (const e of events) assertContract('list-watch', e);
  assert.deepEqual(events.map(brief), [
    'reader-added usb:1-1',
    'card-inserted usb:1-1@lun=0',
    'synced',
    'card-inserted usb:1-1@lun=1',
    'reader-added usb:1-2',
    'card-removed usb:1-1@lun=0',
    'card-inserted usb:1-1@lun=0',
    'card-removed usb:1-1@lun=1',
    'card-inserted usb:1-2@lun=0',
    'card-removed usb:1-1@lun=0',
    'reader-removed usb:1-1',
  ]);
  const synced = events.find((e) => e.type === 'synced');
  assert.deepEqual(synced && synced.type === 'synced' ? [synced.readers, synced.cards] : [], [1, 1]);
  const swapped = events.filter((e) => e.type === 'card-inserted' && e.slot.selector === 'usb:1-1@lun=0');
  assert.deepEqual(
    swapped.map((e) => (e.type === 'card-inserted' ? e.slot.size : 0)),
    [2048 * 512, 8192 * 512],
  );
});

test('watch: a reader that cannot be probed this time (busy, no access) keeps its cards; no events for it', () => {
  const reader = (slots: ListedReader['slots'], error?: string): ListedReader => ({
    selector: 'usb:1-1',
    port: '1-1',
    bus: 1,
    address: 2,
    id: '1d6b:0104',
    vendorId: '1d6b',
    productId: '0104',
    revision: '1.00',
    interface: 0,
    profiles: [],
    quirks: {},
    slots,
    ...(error ? { error } : {}),
  });
  const card = { lun: 0, selector: 'usb:1-1@lun=0', present: true, size: 1 << 20 };
  const first = diffReaders([], [reader([card])], 't0');
  const busy = diffReaders(first.state, [reader([], 'busy: another program holds it')], 't1');
  assert.deepEqual(busy.events, []);
  assert.deepEqual(busy.state[0].slots, [card]);
  const back = diffReaders(busy.state, [reader([card])], 't2');
  assert.deepEqual(back.events, []);
  const slotError = diffReaders(back.state, [reader([{ lun: 0, selector: 'usb:1-1@lun=0', present: false, error: 'timeout' }])], 't3');
  assert.deepEqual(slotError.events, []);
  assert.deepEqual(slotError.state[0].slots, [card]);
});
