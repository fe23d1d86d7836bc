import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDevice, unregisterDeviceOpener } from '../../../src/blockdev/open-device.js';
import { ExitCode, UsageError, WriteProtectedError } from '../../../src/errors.js';
import { findCards, openUsbDevice } from '../../../src/reader/open-usb.js';
import { UsbBusyError } from '../../../src/usb/errors.js';
import { registerUsbDeviceOpener } from '../../../src/reader/register.js';
import { boundDriverOf, kernelDisksOf } from '../../../src/reader/sysfs.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';

const fast = { bot: FAST_BOT, scsi: FAST_SCSI, profiles: [], sysfs: { sysRoot: '/nonexistent' } };

test('bare usb: the only card among several readers and slots is opened; the others are closed', async () => {
  const empty = new SimReader({ ports: [1], luns: [null] });
  const twoSlot = new SimReader({ ports: [2], serial: 'TWO', luns: [null, new MemoryCard(2048)] });
  const host = new SimHost([empty, twoSlot]);
  const dev = await openUsbDevice('usb', { ...fast, host });
  try {
    assert.equal(dev.info.name, 'usb:1-2@lun=1');
    assert.equal(dev.size, 2048 * 512);
    assert.equal(dev.readOnly, true, 'read-only unless asked for writing');
    assert.equal(empty.stats.closed, 1, 'the reader without a card was handed back');
    assert.equal(twoSlot.stats.closed, 0, 'the one with the card stays open for the device');
  } finally {
    await dev.close();
  }
  assert.equal(twoSlot.stats.closed, 1);
});

test('bare usb: two cards are refused with both candidates; no card lists the readers', async () => {
  const a = new SimReader({ ports: [1], serial: 'AAA' });
  const b = new SimReader({ ports: [2], serial: 'BBB', luns: [new MemoryCard(100), new MemoryCard(200, 512, { writeProtected: true })] });
  await assert.rejects(openUsbDevice('usb', { ...fast, host: new SimHost([a, b]) }), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /usb is ambiguous, 3 cards are present/);
    assert.match(e.message, /usb:1-1@lun=0 .*4 MiB.*serial=AAA/);
    assert.match(e.message, /usb:1-2@lun=1 .*100 KiB  write-protected/);
    return true;
  });
  assert.equal(a.stats.closed, 1);
  assert.equal(b.stats.closed, 1);
  const none = new SimReader({ ports: [3], luns: [null] });
  await assert.rejects(openUsbDevice('usb', { ...fast, host: new SimHost([none]) }), /no card in any reader; readers present:\n {2}usb:1-3 /);
  await assert.rejects(openUsbDevice('usb@lun=1', { ...fast, host: new SimHost([new SimReader()]) }), /no card in any reader/);
  await assert.rejects(openUsbDevice('usb', { ...fast, host: new SimHost([]) }), /no USB mass-storage reader found/);
});

test('a reader selector without @lun: LUN 0 on single-slot readers, the card on multi-slot ones, refused when two', async () => {
  const multi = new SimReader({ ports: [4], luns: [null, new MemoryCard(64), null] });
  let dev = await openUsbDevice('usb:1-4', { ...fast, host: new SimHost([multi]) });
  assert.equal(dev.scsi.lun, 1);
  await dev.close();
  multi.insertCard(2, new MemoryCard(32));
  await assert.rejects(openUsbDevice('usb:1-4', { ...fast, host: new SimHost([multi]) }), /the reader holds 2 cards:[\s\S]*@lun=1[\s\S]*@lun=2[\s\S]*add @lun=N/);
  dev = await openUsbDevice('usb:1-4@lun=2', { ...fast, host: new SimHost([multi]) });
  assert.equal(dev.size, 32 * 512);
  await dev.close();
  const single = new SimReader({ ports: [5], luns: [null] });
  await assert.rejects(
    openUsbDevice('usb:1-5', { ...fast, host: new SimHost([single]) }),
    (e: unknown) => e instanceof Error && /usb:1-5@lun=0: no card in the slot/.test(e.message) && (e as { exitCode?: number }).exitCode === ExitCode.IO,
  );
  assert.equal(multi.stats.closed, 3);
  assert.equal(single.stats.closed, 1);
});

test('opening a write-protected card for writing is refused at once; reading it is fine', async () => {
  const sim = new SimReader({ ports: [1], luns: [new MemoryCard(64, 512, { writeProtected: true })] });
  await assert.rejects(openUsbDevice('usb:1-1', { ...fast, host: new SimHost([sim]), write: true }), (e: unknown) => e instanceof WriteProtectedError && e.exitCode === 5);
  assert.equal(sim.stats.closed, 1);
  const dev = await openUsbDevice('usb:1-1', { ...fast, host: new SimHost([sim]) });
  assert.equal(dev.state.writeProtected, true);
  await dev.close();
});

test('the usb: opener makes openDevice work on readers; writes go to the card', async () => {
  const card = new MemoryCard(128);
  const sim = new SimReader({ ports: [7], luns: [card] });
  registerUsbDeviceOpener({ ...fast, host: new SimHost([sim]) });
  try {
    const dev = await openDevice('usb:1-7', { write: true });
    await dev.write(512, new Uint8Array(1024).fill(0xab));
    await dev.flush();
    await dev.close();
    assert.ok(card.data.subarray(512, 1536).every((b) => b === 0xab));
    const ro = await openDevice('usb:1-7@lun=0');
    assert.equal(ro.readOnly, true);
    await assert.rejects(ro.write(0, new Uint8Array(512)), WriteProtectedError);
    await ro.close();
  } finally {
    unregisterDeviceOpener('usb:');
  }
});

test('findCards reports every card with its selector and leaves the readers closed', async () => {
  const a = new SimReader({ ports: [1], luns: [new MemoryCard(8), null] });
  const cards = await findCards({ kind: 'any' }, { ...fast, host: new SimHost([a]) });
  assert.deepEqual(
    cards.map((c) => [c.selector, c.slot.size]),
    [['usb:1-1@lun=0', 4096]],
  );
  assert.equal(a.stats.closed, 1);
});

function fakeSysfs(mounted: boolean): { root: string; mountinfo: string } {
  const root = mkdtempSync(join(tmpdir(), 'crashcart-sysfs-'));
  const usb = join(root, 'bus/usb/devices');
  mkdirSync(join(usb, '1-1'), { recursive: true });
  writeFileSync(join(usb, '1-1/bConfigurationValue'), '1\n');
  const block = join(usb, '1-1:1.0/host3/target3:0:0/3:0:0:1/block/sdc');
  mkdirSync(join(block, 'sdc1'), { recursive: true });
  writeFileSync(join(block, 'dev'), '8:32\n');
  writeFileSync(join(block, 'size'), '16384\n');
  writeFileSync(join(block, 'sdc1/dev'), '8:33\n');
  writeFileSync(join(block, 'sdc1/partition'), '1\n');
  mkdirSync(join(root, 'bus/usb/drivers/usb-storage'), { recursive: true });
  symlinkSync(join(root, 'bus/usb/drivers/usb-storage'), join(usb, '1-1:1.0/driver'));
  const mountinfo = join(root, 'mountinfo');
  writeFileSync(mountinfo, `22 1 0:21 / /proc rw - proc proc rw\n${mounted ? '40 22 8:33 / /media/my\\040card rw - vfat /dev/sdc1 rw\n' : ''}`);
  return { root, mountinfo };
}

test('sysfs: the kernel disk of a reader, its LUN, partitions and mounts; a mounted card is not taken away', async () => {
  const fs1 = fakeSysfs(true);
  try {
    const disks = kernelDisksOf('1-1', 0, { sysRoot: fs1.root, mountinfo: fs1.mountinfo });
    assert.deepEqual(disks, [{ name: 'sdc', path: '/dev/sdc', lun: 1, devNumber: '8:32', size: 16384 * 512, mounts: [{ device: '/dev/sdc1', mountPoint: '/media/my card' }] }]);
    assert.equal(boundDriverOf('1-1', 0, { sysRoot: fs1.root }), 'usb-storage');
    assert.equal(boundDriverOf('1-2', 0, { sysRoot: fs1.root }), undefined);
    assert.deepEqual(kernelDisksOf('1-2', 0, { sysRoot: fs1.root }), []);
    const sim = new SimReader({ ports: [1] });
    await assert.rejects(
      openUsbDevice('usb:1-1', { ...fast, host: new SimHost([sim]), sysfs: { sysRoot: fs1.root, mountinfo: fs1.mountinfo } }),
      (e: unknown) => e instanceof UsbBusyError && /\/dev\/sdc1 is mounted on \/media\/my card; unmount it first/.test(e.message),
    );
    assert.equal(sim.stats.closed, 0, 'never opened');
  } finally {
    rmSync(fs1.root, { recursive: true, force: true });
  }
  const fs2 = fakeSysfs(false);
  try {
    assert.deepEqual(kernelDisksOf('1-1', 0, { sysRoot: fs2.root, mountinfo: fs2.mountinfo })[0].mounts, []);
  } finally {
    rmSync(fs2.root, { recursive: true, force: true });
  }
});
