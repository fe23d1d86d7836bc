import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listReaders, probeReader } from '../../../src/reader/readers.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import type { UsbDeviceInfo } from '../../../src/usb/transport.js';
import { DeviceGoneError } from '../../../src/usb/errors.js';

test('listReaders: only mass-storage BOT devices, sorted by port, with matching profiles', async () => {
  const r1 = new SimReader({ ports: [10] });
  const r2 = new SimReader({ ports: [2, 1], vendorId: 0x058f, productId: 0x6387, revision: 0x0141 });
  const hub: UsbDeviceInfo = { ...r1.device, ports: [1], portPath: '1-1', massStorage: [] };
  const ufi: UsbDeviceInfo = { ...r1.device, ports: [3], portPath: '1-3', massStorage: [{ ...r1.iface, subclass: 0x04, protocol: 0x00 }] };
  const list = await listReaders({ host: new SimHost([r1, r2], [hub, ufi]) });
  assert.deepEqual(
    list.map((r) => r.selector),
    ['usb:1-2.1', 'usb:1-10'],
  );
  assert.equal(list[0].id, '058f:6387');
  assert.deepEqual(list[0].profiles, ['Alcor Micro AU6387 (revision 0141)']);
  assert.equal(list[0].quirks.maxSectors, 64);
  assert.deepEqual(list[1].quirks, {});
});

test('probeReader: two-slot reader, one card, one empty; WP and capacity; transport closed', async () => {
  const sim = new SimReader({ luns: [null, new MemoryCard(2048, 512, { writeProtected: true })] });
  sim.insertCard(0, new MemoryCard(1024));
  const slots = await probeReader(new SimHost([sim]), sim.device, { bot: FAST_BOT, scsi: FAST_SCSI });
  assert.deepEqual(slots, [
    { lun: 0, vendor: 'CRASHCRT', product: 'Sim Card Reader', revision: '1.00', removable: true, present: true, blockSize: 512, size: 512 * 1024, writeProtected: false },
    { lun: 1, vendor: 'CRASHCRT', product: 'Sim Card Reader', revision: '1.00', removable: true, present: true, blockSize: 512, size: 2048 * 512, writeProtected: true },
  ]);
  sim.removeCard(1);
  const again = await probeReader(new SimHost([sim]), sim.device, { bot: FAST_BOT, scsi: FAST_SCSI });
  assert.equal(again[1].present, false);
  assert.equal(again[1].error, undefined);
  assert.equal(sim.stats.closed, 2);
});

test('probeReader: a vanished reader is an error, and the transport is still closed', async () => {
  const sim = new SimReader();
  sim.inject({ type: 'vanish', phase: 'cbw', opcode: 0x00 });
  await assert.rejects(probeReader(new SimHost([sim]), sim.device, { bot: FAST_BOT, scsi: FAST_SCSI }), DeviceGoneError);
  assert.equal(sim.stats.closed, 1);
});
