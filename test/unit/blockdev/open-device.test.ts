import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDevice, registerDeviceOpener, unregisterDeviceOpener } from '../../../src/blockdev/open-device.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { UsageError } from '../../../src/errors.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crashcart-open-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a regular file opens as an image, read-only unless asked', async () => {
  const p = join(dir, 'card.img');
  await writeFile(p, new Uint8Array(2048));
  const ro = await openDevice(p);
  assert.equal(ro.info.kind, 'image');
  assert.equal(ro.readOnly, true);
  assert.equal(ro.size, 2048);
  await ro.close();
  const rw = await openDevice(p, { write: true });
  assert.equal(rw.readOnly, false);
  await rw.close();
  // A colon in a file name is not a prefix.
  const q = join(dir, 'odd:name.img');
  await writeFile(q, new Uint8Array(512));
  const odd = await openDevice(q);
  assert.equal(odd.size, 512);
  await odd.close();
});

test('usb: specs fail clearly until a USB opener is registered', async () => {
  unregisterDeviceOpener('usb:'); // in case a backend registered itself in this process
  await assert.rejects(
    openDevice('usb:1-1.4'),
    (e: unknown) => e instanceof UsageError && /USB readers are not registered in this program \(call registerUsbDeviceOpener\(\)/.test(e.message),
  );
});

test('registered openers receive the spec and options', async () => {
  const seen: unknown[] = [];
  registerDeviceOpener('test:', async (spec, opts) => {
    seen.push([spec, opts]);
    return new MemoryDevice(new Uint8Array(1024), { name: spec });
  });
  try {
    const dev = await openDevice('TEST:thing', { write: true });
    assert.equal(dev.info.name, 'TEST:thing');
    assert.deepEqual(seen, [['TEST:thing', { write: true }]]);
  } finally {
    assert.equal(unregisterDeviceOpener('test:'), true);
  }
  assert.throws(() => registerDeviceOpener('nocolon', async () => new MemoryDevice(new Uint8Array(0))), UsageError);
});

test('bad specs: empty, missing, directory, character device', async () => {
  await assert.rejects(openDevice(''), UsageError);
  await assert.rejects(openDevice(join(dir, 'missing.img')), (e: unknown) => e instanceof UsageError && /no such file/.test(e.message));
  await assert.rejects(openDevice(dir), /is a directory/);
  if (existsSync('/dev/null')) await assert.rejects(openDevice('/dev/null'), /character device/);
});

test('bare usb and usb@lun=N go to the usb: opener', async () => {
  const seen: string[] = [];
  registerDeviceOpener('usb:', async (spec) => {
    seen.push(spec);
    return new MemoryDevice(new Uint8Array(512));
  });
  try {
    await openDevice('usb');
    await openDevice('usb@lun=1');
    await openDevice('USB:1-1.4');
    assert.deepEqual(seen, ['usb', 'usb@lun=1', 'USB:1-1.4']);
  } finally {
    unregisterDeviceOpener('usb:');
  }
});
