import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/errors.js';
import { controlMux, readerBesideMux, type MuxControlOptions } from '../../../src/mux/mux-control.js';
import { sdwireBitmodeValue } from '../../../src/mux/sdwire.js';
import { openUsbDevice } from '../../../src/reader/open-usb.js';
import { loadReaderProfiles } from '../../../src/reader/reader-profiles.js';
import { SimHost, SimReader } from '../../sim/sim-reader.js';
import { SimSdWire, type ControlRecord } from '../../sim/sim-sdwire.js';
import { SimUsbSdMux } from '../../sim/sim-usb-sd-mux.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';

const profiles = loadReaderProfiles();
const sysfs = { sysRoot: '/nonexistent' };
const opts = (host: SimHost, more: MuxControlOptions = {}): MuxControlOptions => ({ profiles, offSettleMs: 0, bot: FAST_BOT, scsi: FAST_SCSI, sysfs, host, ...more });
const hostOf = (w: SimSdWire, ...readers: SimReader[]) => new SimHost([w.reader, ...readers], [], [w]);

// The requests sd-mux-ctrl (libftdi ftdi_set_bitmode / ftdi_read_pins) and sdwire-cli (pyftdi
// set_bitmode(0xF0 | target, CBUS)) send to switch and to read the SDWire.
const TO_HOST: ControlRecord = { bmRequestType: 0x40, bRequest: 0x0b, wValue: 0x20f1, wIndex: 1, wLength: 0, data: '' };
const TO_DUT: ControlRecord = { bmRequestType: 0x40, bRequest: 0x0b, wValue: 0x20f0, wIndex: 1, wLength: 0, data: '' };
const READ_PINS: ControlRecord = { bmRequestType: 0xc0, bRequest: 0x0c, wValue: 0, wIndex: 1, wLength: 1, data: '' };

test('SIO_SET_BITMODE values: CBUS mode, four outputs, CBUS0 high for the test server', () => {
  assert.equal(sdwireBitmodeValue('host'), 0x20f1);
  assert.equal(sdwireBitmodeValue('dut'), 0x20f0);
});

test('SDWire: host puts the card in the reader beside it, dut takes it away, status reads CBUS0; one request each', async () => {
  const w = new SimSdWire({ serial: 'sdw-7' });
  const host = hostOf(w);
  const r = await controlMux('usb:serial=sdw-7', 'host', opts(host));
  assert.deepEqual(r, { selector: 'usb:1-1.3.1', id: '04e8:6001', serial: 'sdw-7', variant: 'sdwire', reader: 'usb:1-1.3.2', mode: 'host' });
  assert.deepEqual(w.ftdi.log, [TO_HOST]);
  const dev = await openUsbDevice(r.reader!, { host, profiles, bot: FAST_BOT, scsi: FAST_SCSI, sysfs });
  assert.deepEqual(await dev.read(0, 4096), w.card.data.subarray(0, 4096));
  await dev.close();

  const st = await controlMux('usb', 'status', opts(host));
  assert.deepEqual({ mode: st.mode, pins: st.pins }, { mode: 'host', pins: 0x01 });
  await controlMux('usb:04e8:6001', 'dut', opts(host));
  assert.equal(w.mode(), 'dut');
  assert.equal(w.reader.luns[0].card, null);
  await assert.rejects(openUsbDevice('usb:1-1.3.2', { host, profiles, bot: FAST_BOT, scsi: FAST_SCSI, sysfs }), /no card/);
  assert.equal((await controlMux('usb:1-1.3.1', 'status', opts(host))).mode, 'dut');
  assert.deepEqual(w.ftdi.log, [TO_HOST, READ_PINS, TO_DUT, READ_PINS]);
  // the FTDI interface is released after every command
  assert.deepEqual([w.opens, w.closes], [4, 4]);
});

test('SDWire has no off position: a usage error before anything is sent', async () => {
  const w = new SimSdWire();
  await assert.rejects(controlMux('usb', 'off', opts(hostOf(w))), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && /no off position/.test(e.message));
  assert.deepEqual([w.ftdi.log.length, w.opens], [0, 0]);
});

test('status reads what the pins say, also when another program switched the chip', async () => {
  const w = new SimSdWire();
  w.ftdi.request(0x40, 0x0b, 0x20f1, 1, 0);
  const st = await controlMux('usb', 'status', opts(hostOf(w)));
  assert.equal(st.mode, 'host');
  assert.notEqual(w.reader.luns[0].card, null);
});

test('identification: product string sd-wire on any VID:PID; other Tizen boards and --variant refused', async () => {
  // an FT200XD left at FTDI's VID:PID but named sd-wire (sdwire-cli finds SDWireC by the string alone)
  const plainIds = new SimSdWire({ vendorId: 0x0403, productId: 0x6015 });
  assert.equal((await controlMux('usb', 'host', opts(hostOf(plainIds)))).mode, 'host');
  const sdMux = new SimSdWire({ product: 'sd-mux' });
  await assert.rejects(controlMux('usb', 'host', opts(hostOf(sdMux))), (e: unknown) => e instanceof UsageError && /SD-MUX .*not supported/.test(e.message));
  const usbMux = new SimSdWire({ product: 'usb-mux' });
  await assert.rejects(controlMux('usb:1-1.3.1', 'status', opts(hostOf(usbMux))), (e: unknown) => e instanceof UsageError && /USB port, not an SD card/.test(e.message));
  const other = new SimSdWire({ product: 'FT200XD' });
  await assert.rejects(controlMux('usb:1-1.3.1', 'host', opts(hostOf(other))), (e: unknown) => e instanceof UsageError && /not an SDWire/.test(e.message));
  await assert.rejects(controlMux('usb', 'host', opts(hostOf(new SimSdWire()), { variant: 'classic' })), /--variant applies to the USB-SD-Mux only/);
  assert.equal(sdMux.ftdi.log.length + usbMux.ftdi.log.length + other.ftdi.log.length, 0);
});

test('an SDWire beside a USB-SD-Mux: the bare selector is ambiguous, each is reached by its own', async () => {
  const w = new SimSdWire({ serial: 'sdw-1' });
  const m = new SimUsbSdMux('classic', { ports: [2], serial: 'MUX1' });
  const host = new SimHost([w.reader, m.reader], [], [w]);
  await assert.rejects(controlMux('usb', 'host', opts(host)), (e: unknown) => e instanceof UsageError && /ambiguous, 2 SD muxes/.test(e.message));
  assert.equal((await controlMux('usb:serial=sdw-1', 'host', opts(host))).variant, 'sdwire');
  assert.equal((await controlMux('usb:serial=MUX1', 'host', opts(host))).variant, 'classic');
});

test('the reader is the mass-storage device on the FTDI’s hub: none or two there, none reported', async () => {
  const w = new SimSdWire();
  const elsewhere = new SimReader({ ports: [2, 1], serial: 'FAR' });
  assert.equal(readerBesideMux(w.device, [w.device, w.reader.device, elsewhere.device])?.portPath, '1-1.3.2');
  assert.equal(readerBesideMux(w.device, [w.device, elsewhere.device]), undefined);
  const second = new SimReader({ ports: [1, 3, 4], serial: 'SECOND' });
  assert.equal(readerBesideMux(w.device, [w.device, w.reader.device, second.device]), undefined);
  const r = await controlMux('usb', 'host', opts(new SimHost([w.reader, second], [], [w])));
  assert.equal(r.reader, undefined);
  assert.equal(r.mode, 'host');
  // one device carrying both interfaces (the FunctionFS emulator of the VM test): its own reader
  const composite = { ...w.device, massStorage: w.reader.device.massStorage };
  assert.equal(readerBesideMux(composite, [composite])?.portPath, '1-1.3.1');
});
