import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { RegionDevice } from '../../../src/blockdev/region-device.js';
import { readRange, writeRange } from '../../../src/blockdev/io.js';
import type { IoOptions } from '../../../src/blockdev/block-device.js';
import { WrappedDevice } from '../../helpers/wrapped-device.js';
import { CrashcartError, IoError, UsageError, WriteProtectedError } from '../../../src/errors.js';

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
}

/** Records every call that reaches the wrapped device. */
class Spy extends WrappedDevice {
  calls: string[] = [];
  override read(offset: number, length: number, opts?: IoOptions) {
    this.calls.push(`r${offset}+${length}`);
    return this.inner.read(offset, length, opts);
  }
  override write(offset: number, data: Uint8Array, opts?: IoOptions) {
    this.calls.push(`w${offset}+${data.length}`);
    return this.inner.write(offset, data, opts);
  }
}

test('MemoryDevice reads copies and writes through', async () => {
  const data = pattern(8192);
  const dev = new MemoryDevice(data);
  assert.equal(dev.size, 8192);
  assert.equal(dev.blockSize, 512);
  assert.equal(dev.alignment, 1);
  assert.equal(dev.info.kind, 'memory');
  const r = await dev.read(100, 50);
  assert.deepEqual(r, data.slice(100, 150));
  r[0] ^= 0xff; // a copy: the device is unchanged
  assert.equal(data[100], pattern(8192)[100]);
  await dev.write(10, new Uint8Array([1, 2, 3]));
  assert.deepEqual(data.subarray(10, 13), new Uint8Array([1, 2, 3]));
  assert.deepEqual(await dev.read(8192, 0), new Uint8Array(0));
});

test('MemoryDevice: bounds, read-only, alignment, closed, bad options', async () => {
  const dev = new MemoryDevice(new Uint8Array(4096), { readOnly: true, alignment: 512, name: 'ram' });
  await assert.rejects(dev.read(4096, 512), (e: unknown) => e instanceof IoError && /read of 512 bytes at offset 4096 on ram goes past the end/.test(e.message));
  await assert.rejects(dev.read(-512, 512), IoError);
  await assert.rejects(dev.read(0.5, 512), IoError);
  await assert.rejects(dev.write(0, new Uint8Array(512)), WriteProtectedError);
  await assert.rejects(dev.read(1, 512), (e: unknown) => e instanceof CrashcartError && /not aligned to 512 bytes/.test(e.message));
  await dev.close();
  await assert.rejects(dev.read(0, 512), /ram is closed/);
  assert.throws(() => new MemoryDevice(new Uint8Array(1), { alignment: 0 }), UsageError);
  assert.throws(() => new MemoryDevice(new Uint8Array(1), { blockSize: 1.5 }), UsageError);
});

test('AbortSignal: an aborted signal rejects reads, writes and flushes', async () => {
  const dev = new MemoryDevice(new Uint8Array(4096));
  const ac = new AbortController();
  ac.abort();
  for (const p of [dev.read(0, 1, ac), dev.write(0, new Uint8Array(1), ac), dev.flush(ac)]) {
    await assert.rejects(p, { name: 'AbortError' });
  }
  const region = new RegionDevice(dev, 512, 1024);
  await assert.rejects(region.read(0, 16, { signal: ac.signal }), { name: 'AbortError' });
});

test('readRange/writeRange do aligned I/O only, with read-modify-write of partial blocks', async () => {
  const backing = pattern(16 * 512);
  const expected = backing.slice();
  const spy = new Spy(new MemoryDevice(backing, { alignment: 512 }));
  assert.deepEqual(await readRange(spy, 700, 1000), expected.slice(700, 1700));
  assert.deepEqual(spy.calls, ['r512+1536']);
  spy.calls = [];
  const patch = new Uint8Array(600).fill(0xab);
  await writeRange(spy, 1000, patch);
  expected.set(patch, 1000);
  assert.deepEqual(spy.calls, ['r512+1536', 'w512+1536']);
  assert.deepEqual(backing, expected);
  // Unaligned near the end of the device never reads past the end.
  assert.deepEqual(await readRange(spy, 16 * 512 - 3, 3), expected.slice(-3));
});

test('RegionDevice translates offsets and confines I/O to its range', async () => {
  const backing = pattern(64 * 1024);
  const parent = new MemoryDevice(backing, { blockSize: 4096 });
  const region = new RegionDevice(parent, 8192, 16384, 'card#2');
  assert.equal(region.info.name, 'card#2');
  assert.equal(region.info.kind, 'region');
  assert.equal(region.blockSize, 4096);
  assert.equal(region.readOnly, false);
  assert.deepEqual(await region.read(0, 16), backing.slice(8192, 8208));
  await region.write(16384 - 4, new Uint8Array([9, 9, 9, 9]));
  assert.deepEqual(backing.subarray(8192 + 16380, 8192 + 16384), new Uint8Array([9, 9, 9, 9]));
  await assert.rejects(region.read(16380, 8), (e: unknown) => e instanceof IoError && /goes past the end/.test(e.message));
  await assert.rejects(region.write(16384, new Uint8Array(1)), IoError);
  assert.equal(backing[8192 + 16384], pattern(64 * 1024)[8192 + 16384]);
  assert.equal(new RegionDevice(parent, 0, 0).size, 0);
  // Closing the region leaves the parent usable.
  await region.close();
  await assert.rejects(region.read(0, 1), /closed/);
  assert.equal((await parent.read(0, 1)).length, 1);
});

test('RegionDevice: bounds and alignment are checked, read-only is inherited', async () => {
  const parent = new MemoryDevice(new Uint8Array(65536), { alignment: 4096, readOnly: true, name: 'usb' });
  assert.throws(
    () => new RegionDevice(parent, 512, 4096),
    (e: unknown) => e instanceof UsageError && /not aligned to the 4096-byte blocks of usb/.test(e.message),
  );
  assert.throws(() => new RegionDevice(parent, 4096, 100), UsageError);
  assert.throws(() => new RegionDevice(parent, 61440, 8192), /runs past the end of usb/);
  assert.throws(() => new RegionDevice(parent, -4096, 4096), UsageError);
  assert.throws(() => new RegionDevice(parent, 2 ** 60, 4096), UsageError);
  const r = new RegionDevice(parent, 4096, 8192);
  assert.equal(r.alignment, 4096);
  assert.equal(r.readOnly, true);
  assert.equal(r.info.name, 'usb[4096+8192]');
  await assert.rejects(r.write(0, new Uint8Array(4096)), WriteProtectedError);
  await assert.rejects(r.read(100, 4096), /not aligned/);
});

test('writeRange through an aligned region does RMW within the region only', async () => {
  const backing = pattern(32 * 512);
  const expected = backing.slice();
  const spy = new Spy(new MemoryDevice(backing, { alignment: 512 }));
  const region = new RegionDevice(spy, 4 * 512, 8 * 512);
  await writeRange(region, 10, new Uint8Array([1, 2, 3]));
  expected.set([1, 2, 3], 4 * 512 + 10);
  assert.deepEqual(spy.calls, ['r2048+512', 'w2048+512']);
  assert.deepEqual(backing, expected);
  assert.deepEqual(await readRange(region, 8 * 512 - 2, 2), expected.slice(12 * 512 - 2, 12 * 512));
});
