import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { readDevice, type ReadEvent } from '../../../src/flash/read.js';
import { formatRescueMap, parseRescueMap, StatusMap } from '../../../src/flash/ddrescue-map.js';
import { DeviceGoneError } from '../../../src/usb/errors.js';
import { eio, FaultyDevice, tempDir } from './helpers.js';

const SIZE = 2 * 1024 * 1024;
function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 9)) & 0xff;
  return b;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('read copies the whole device and prints its sha256', async (t) => {
  const data = pattern(SIZE);
  const out = join(tempDir(t), 'out.img');
  const r = await readDevice(new MemoryDevice(data), out);
  assert.ok(Buffer.from(await readFile(out)).equals(Buffer.from(data)));
  assert.equal(r.sha256, sha(data));
  assert.equal(r.badBytes, 0);
  const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
  assert.deepEqual(map.blocks, [{ pos: 0, size: SIZE, status: '+' }]);
});

test('read with --offset/--size copies that range; the map covers the whole device', async (t) => {
  const data = pattern(SIZE);
  const out = join(tempDir(t), 'part.img');
  const r = await readDevice(new MemoryDevice(data), out, { offset: 4096, size: 10000 });
  assert.ok(Buffer.from(await readFile(out)).equals(Buffer.from(data.subarray(4096, 14096))));
  assert.equal(r.sha256, sha(data.subarray(4096, 14096)));
  const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
  assert.deepEqual(map.blocks, [
    { pos: 0, size: 4096, status: '?' },
    { pos: 4096, size: 10000, status: '+' },
    { pos: 14096, size: SIZE - 14096, status: '?' },
  ]);
  await assert.rejects(readDevice(new MemoryDevice(data), out, { offset: SIZE - 10, size: 100 }), /runs past the end/);
});

test('unreadable sectors are retried, skipped, zero-filled and mapped as bad; a re-run retries only them', async (t) => {
  const data = pattern(SIZE);
  const dir = tempDir(t);
  const out = join(dir, 'rescue.img');
  const dev = new FaultyDevice(new MemoryDevice(data), 'scratched');
  const badAt = 1024 * 1024 + 3 * 512;
  dev.faults.push({ op: 'read', start: badAt, end: badAt + 1024, times: Infinity, error: () => eio('read') });
  const events: ReadEvent[] = [];
  const r = await readDevice(dev, out, { retries: 1, retryDelayMs: 1, onEvent: (e) => events.push(e) });
  assert.equal(r.badBytes, 1024);
  assert.deepEqual(r.badRanges, [{ start: badAt, end: badAt + 1024 }]);
  const got = new Uint8Array(await readFile(out));
  const want = new Uint8Array(data);
  want.fill(0, badAt, badAt + 1024);
  assert.ok(Buffer.from(got).equals(Buffer.from(want)), 'good data copied, bad sectors zero');
  assert.equal(r.sha256, sha(want));
  assert.ok(events.some((e) => e.type === 'bad-area' && e.start === badAt));
  const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
  assert.deepEqual(
    map.blocks.filter((b) => b.status === '-'),
    [{ pos: badAt, size: 1024, status: '-' }],
  );

  // The sectors come back (a cleaned contact): only they are read again.
  dev.faults = [];
  const reads: number[] = [];
  const watch = new FaultyDevice(new MemoryDevice(data), 'scratched');
  const origRead = watch.read.bind(watch);
  watch.read = async (o, l, opts) => {
    reads.push(o);
    return origRead(o, l, opts);
  };
  const r2 = await readDevice(watch, out);
  assert.equal(r2.resumed, true);
  assert.equal(r2.bytesRead, 1024);
  assert.deepEqual(reads, [badAt]);
  assert.equal(r2.badBytes, 0);
  assert.ok(Buffer.from(await readFile(out)).equals(Buffer.from(data)));
  assert.equal(r2.sha256, sha(data));
});

test('device gone while reading: error names the offset, map saved for a later run', async (t) => {
  const data = pattern(SIZE);
  const out = join(tempDir(t), 'gone.img');
  const dev = new FaultyDevice(new MemoryDevice(data), 'unplugged');
  dev.faults.push({ op: 'read', start: 1536 * 1024, times: Infinity, error: () => new DeviceGoneError() });
  await assert.rejects(readDevice(dev, out), (e: unknown) => (e as { exitCode?: number }).exitCode === 3 && /went away while reading at offset 1048576/.test((e as Error).message));
  const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
  assert.deepEqual(map.blocks, [
    { pos: 0, size: 1024 * 1024, status: '+' },
    { pos: 1024 * 1024, size: SIZE - 1024 * 1024, status: '?' },
  ]);
  const r = await readDevice(new MemoryDevice(data), out);
  assert.equal(r.bytesRead, SIZE - 1024 * 1024);
  assert.equal(r.sha256, sha(data));
});

test('the next chunk is read while the last one is written out, one read on the device at a time', async (t) => {
  const data = pattern(SIZE);
  const out = join(tempDir(t), 'overlap.img');
  const chunk = 256 * 1024;
  const dev = new FaultyDevice(new MemoryDevice(data), 'overlap');
  const log: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const origRead = dev.read.bind(dev);
  dev.read = async (o, l, opts) => {
    log.push(`read ${o}`);
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    try {
      return await origRead(o, l, opts);
    } finally {
      inFlight--;
    }
  };
  const r = await readDevice(dev, out, {
    chunkSize: chunk,
    progressIntervalMs: 0,
    onEvent: (e) => {
      if (e.type === 'progress') log.push(`done ${e.bytes}`);
    },
  });
  assert.equal(r.sha256, sha(data));
  assert.ok(Buffer.from(await readFile(out)).equals(Buffer.from(data)));
  assert.equal(maxInFlight, 1);
  for (let k = 1; k < SIZE / chunk; k++) {
    // chunk k is asked for before chunk k - 1 is stored (hashed, written, counted as done)
    assert.ok(log.indexOf(`read ${k * chunk}`) < log.indexOf(`done ${k * chunk}`), `chunk ${k}: ${log.join(', ')}`);
  }
});

test('ddrescue mapfiles: parse what ddrescue writes, format round-trips, status map merges', () => {
  const text = `# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdb card.img card.map
# Start time:   2024-01-01 10:00:00
# current_pos  current_status  current_pass
0x00100000     +               1
#      pos        size  status
0x00000000  0x00100000  +
0x00100000  0x00000200  -
0x00100200  0x000FFE00  *
`;
  const m = parseRescueMap(text);
  assert.equal(m.currentPos, 0x100000);
  assert.deepEqual(
    m.blocks.map((b) => b.status),
    ['+', '-', '*'],
  );
  assert.deepEqual(parseRescueMap(formatRescueMap(m)), m);
  assert.throws(() => parseRescueMap('0x0 +\n0x0 0x10 +\n0x20 0x10 +\n'), /does not follow/);
  const s = new StatusMap(100);
  s.set(10, 20, '+');
  s.set(30, 10, '+');
  s.set(15, 2, '-');
  assert.deepEqual(
    s.blocks.map((b) => [b.pos, b.size, b.status]),
    [
      [0, 10, '?'],
      [10, 5, '+'],
      [15, 2, '-'],
      [17, 23, '+'],
      [40, 60, '?'],
    ],
  );
  assert.deepEqual(s.pending(0, 100), [
    { pos: 0, size: 10 },
    { pos: 15, size: 2 },
    { pos: 40, size: 60 },
  ]);
});
