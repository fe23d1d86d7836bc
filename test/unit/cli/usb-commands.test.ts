import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { collectReaders, formatReaders } from '../../../src/cli/commands/list.js';
import { deviceInfo, formatDeviceInfo, openForInfo } from '../../../src/cli/commands/info.js';
import { udevRules } from '../../../src/reader/udev-rule.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import type { UsbDeviceInfo } from '../../../src/usb/transport.js';
import { kernelFixtures, repoRoot } from '../../helpers/kernel-fixtures.js';

const fast = { bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' } };

test('list: readers with their slots; an unreachable reader carries its error; text is lsblk-like', async () => {
  const two = new SimReader({ ports: [1, 4], serial: 'SER1', luns: [new MemoryCard(2048), null] });
  const broken = new SimReader({ ports: [2], vendorId: 0x058f, productId: 0x6387, revision: 0x0141 });
  broken.vanish();
  const keyboard: UsbDeviceInfo = { ...two.device, ports: [3], portPath: '1-3', massStorage: [] };
  const readers = await collectReaders({ ...fast, host: new SimHost([two, broken], [keyboard]) });
  assert.deepEqual(
    readers.map((r) => r.selector),
    ['usb:1-1.4', 'usb:1-2'],
  );
  const r = readers[0];
  assert.equal(r.serial, 'SER1');
  assert.equal(r.id.length, 9);
  assert.equal(r.slots.length, 2);
  assert.deepEqual(r.slots[0], {
    lun: 0,
    selector: 'usb:1-1.4@lun=0',
    present: true,
    size: 1 << 20,
    blockSize: 512,
    writeProtected: false,
    vendor: 'CRASHCRT',
    product: 'Sim Card Reader',
    revision: '1.00',
    removable: true,
  });
  assert.deepEqual({ present: r.slots[1].present, sel: r.slots[1].selector }, { present: false, sel: 'usb:1-1.4@lun=1' });
  assert.equal(readers[1].revision, '1.41');
  assert.deepEqual(readers[1].profiles, ['Alcor Micro AU6387 (revision 0141)']);
  assert.match(readers[1].error ?? '', /disconnected/);
  assert.deepEqual(readers[1].slots, []);
  assert.equal(two.stats.closed, 1, 'probed reader handed back');
  const text = formatReaders(readers);
  const lines = text.split('\n');
  assert.match(lines[0], /^DEVICE\s+SIZE\s+WP\s+CARD\s+MODEL\s+SERIAL\s+ID\s+KERNEL$/);
  assert.match(lines[2], /^├─usb:1-1\.4@lun=0\s+1 MiB\s+no\s+yes\s+CRASHCRT Sim Card Reader 1\.00$/);
  assert.match(lines[3], /^└─usb:1-1\.4@lun=1\s+no\s+CRASHCRT/);
  assert.match(text, /note: usb:1-2: .*disconnected/);
  assert.equal(formatReaders([]), 'no USB mass-storage readers found\n');
});

test('info: capacity, WP, reader details, partition table and the pstore region of a kernel-written card', async () => {
  const fx = kernelFixtures().find((f) => f.name === 'stock61-gpt')!;
  const disk = fx.disk();
  const card = new MemoryCard(disk.length / 512);
  card.data.set(disk);
  const sim = new SimReader({ ports: [9], luns: [card] });
  const dev = await openForInfo('usb', { ...fast, profiles: [], host: new SimHost([sim]) });
  try {
    const r = await deviceInfo(dev);
    assert.equal(r.device, 'usb:1-9@lun=0');
    assert.equal(r.size, disk.length);
    assert.equal(r.writeProtected, false);
    assert.deepEqual(r.usb, {
      port: '1-9',
      id: r.usb!.id,
      lun: 0,
      luns: 1,
      inquiry: { vendor: 'CRASHCRT', product: 'Sim Card Reader', revision: '1.00' },
      transferBytes: 240 * 512,
    });
    assert.equal(r.partitionTable?.kind, 'gpt');
    assert.deepEqual(
      r.partitionTable?.partitions.map((p) => [p.number, p.name, p.start]),
      [
        [1, 'boot', 1 << 20],
        [2, 'pstore', 2 << 20],
      ],
    );
    assert.deepEqual(r.pstore.region?.partition, 2);
    assert.deepEqual(r.pstore.signatures, { total: 2, byType: { dmesg: 2 }, endian: 'le' });
    const text = formatDeviceInfo(r);
    assert.match(text, /^device {5}usb:1-9@lun=0 \(CRASHCRT Sim Card Reader, serial SIM0001\)/);
    assert.match(text, /\ncapacity {3}8388608 bytes \(8 MiB\), 16384 blocks of 512 bytes\n/);
    assert.match(text, /\nwrite {6}writable\n/);
    assert.match(text, /\npstore {5}partition 2 "pstore" \(found by its pstore signatures\)/);
  } finally {
    await dev.close();
  }
  const blank = new SimReader({ ports: [8], luns: [new MemoryCard(4096, 512, { writeProtected: true })] });
  const dev2 = await openForInfo('usb:1-8', { ...fast, profiles: [], host: new SimHost([blank]) });
  try {
    const r = await deviceInfo(dev2);
    assert.equal(r.writeProtected, true);
    assert.equal(r.partitionTable, null);
    assert.equal(r.pstore.found, false);
    assert.match(formatDeviceInfo(r), /\nwrite {6}write-protected\n[\s\S]*partitions none[\s\S]*pstore {5}no pstore\/blk zone signatures in whole device/);
  } finally {
    await dev2.close();
  }
});

test('udev rules: one line per VID:PID, generic class-08 rule without readers, checked arguments', () => {
  const text = udevRules([
    { vendorId: 0x058f, productId: 0x6387, name: 'Generic Mass\nStorage' },
    { vendorId: 0x058f, productId: 0x6387 },
    { vendorId: 0x0bda, productId: 0x0158 },
  ]);
  const rules = text.split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(rules, [
    'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="058f", ATTR{idProduct}=="6387", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
    'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0bda", ATTR{idProduct}=="0158", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
  ]);
  assert.match(text, /# 058f:6387 Generic Mass Storage\n/);
  assert.match(text, /sudo udevadm control --reload/);
  const generic = udevRules([], { group: 'dialout', mode: '660' })
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(generic, [
    'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", IMPORT{builtin}="usb_id", ENV{ID_USB_INTERFACES}=="*:080650:*", MODE="0660", GROUP="dialout", TAG+="uaccess"',
  ]);
  assert.throws(() => udevRules([], { group: 'a b' }), RangeError);
  assert.throws(() => udevRules([], { mode: '999' }), RangeError);
});

test('CLI: the new commands exist, validate their arguments, and info reads images', () => {
  const bin = join(repoRoot, 'bin/crashcart');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  const help = run('--help');
  assert.equal(help.status, 0);
  for (const c of ['list', 'wait [selector]', 'info <device>', 'udev-rule']) assert.ok(help.stdout.includes(`crashcart ${c}`), c);
  assert.equal(run('wait', '--insert', '--remove').status, 2);
  assert.equal(run('wait', '/dev/sda').status, 2);
  assert.equal(run('wait', '--timeout', '-3').status, 2);
  assert.equal(run('info').status, 2);
  assert.equal(run('udev-rule', '--generic', '--group', 'bad group').status, 2);
  const rule = run('udev-rule', '--generic');
  assert.equal(rule.status, 0);
  assert.match(rule.stdout, /ID_USB_INTERFACES/);
});
