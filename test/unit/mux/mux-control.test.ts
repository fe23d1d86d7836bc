import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { UsageError } from '../../../src/errors.js';
import { controlMux, type MuxControlOptions } from '../../../src/mux/mux-control.js';
import { i2cWriteCommand, i2cWriteReadCommand } from '../../../src/scsi/usb2642.js';
import { openUsbDevice } from '../../../src/reader/open-usb.js';
import { loadReaderProfiles } from '../../../src/reader/reader-profiles.js';
import { SimHost, SimReader } from '../../sim/sim-reader.js';
import { SimUsbSdMux } from '../../sim/sim-usb-sd-mux.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import { repoRoot } from '../../helpers/kernel-fixtures.js';

const profiles = loadReaderProfiles();
const fast = { profiles, offSettleMs: 0, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' } };
const opts = (host: SimHost, more: MuxControlOptions = {}): MuxControlOptions => ({ ...fast, host, ...more });

test('USB2642 I²C CDBs: write and write-read layouts, checked arguments', () => {
  const w = i2cWriteCommand(0x41, [0x01, 0x0b]);
  assert.equal(Buffer.from(w.cdb).toString('hex'), 'cf238200000200000000000000000000');
  assert.equal(w.data.length, 512);
  assert.deepEqual([...w.data.subarray(0, 3)], [0x01, 0x0b, 0x00]);
  const r = i2cWriteReadCommand(0x20, [0x03], 1);
  assert.equal(Buffer.from(r.cdb).toString('hex'), 'cf224041000101030000000000000000');
  assert.equal(r.inLength, 512);
  assert.throws(() => i2cWriteCommand(0x80, [1]), RangeError);
  assert.throws(() => i2cWriteReadCommand(0x20, new Array(10).fill(0), 1), RangeError);
  assert.throws(() => i2cWriteReadCommand(0x20, [0], 0), RangeError);
  assert.throws(() => i2cWriteCommand(0x20, [256]), RangeError);
});

test('host puts the card in the reader (readable), dut and off take it away; status follows', async () => {
  const mux = new SimUsbSdMux('classic', { serial: 'MUX42' });
  const host = new SimHost([mux.reader]);
  const r = await controlMux('usb:serial=MUX42', 'host', opts(host));
  assert.deepEqual(r, { selector: 'usb:1-1.4', id: '0424:4041', serial: 'MUX42', variant: 'classic', expander: { name: 'PCA9536', address: 0x41 }, mode: 'host' });
  const dev = await openUsbDevice('usb:1-1.4', { host, profiles, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: fast.sysfs });
  const head = await dev.read(0, 4096);
  assert.deepEqual(head, mux.card.data.subarray(0, 4096));
  await dev.close();
  assert.equal((await controlMux('usb', 'status', opts(host))).mode, 'host');
  await controlMux('usb', 'dut', opts(host));
  assert.equal(mux.mode(), 'dut');
  assert.equal(mux.reader.luns[0].card, null);
  const st = await controlMux('usb:0424:4041', 'status', opts(host));
  assert.equal(st.mode, 'dut');
  assert.equal(typeof st.pins, 'number');
  await assert.rejects(openUsbDevice('usb:1-1.4', { host, profiles, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: fast.sysfs }), /no card/);
  await controlMux('usb', 'off', opts(host));
  assert.equal((await controlMux('usb', 'status', opts(host))).mode, 'off');
});

test('fast generation: TCA6408 at 20h, power-on state adopted, switch pins changed by read-modify-write', async () => {
  const mux = new SimUsbSdMux('fast');
  const host = new SimHost([mux.reader]);
  const st = await controlMux('usb', 'status', opts(host));
  assert.equal(st.variant, 'fast');
  assert.deepEqual(st.expander, { name: 'TCA6408', address: 0x20 });
  // Power-on (all inputs) is the DUT position its pull resistors define: kept, now driven.
  assert.equal(st.mode, 'dut');
  const cdbs = mux.log.map((c) => c.cdb.slice(0, 16) + (c.data ? `:${c.data.slice(0, 4)}` : ''));
  assert.deepEqual(cdbs, ['cf22404100010103', 'cf23400000020000:0109', 'cf22404100010103', 'cf23400000020000:03c0', 'cf22404100010100']);
  // The two user GPIOs (bits 4, 5) keep their output level through a switch.
  mux.expander.output |= 0x30;
  await controlMux('usb', 'host', opts(host));
  assert.equal(mux.mode(), 'host');
  assert.equal(mux.expander.output & 0x30, 0x30);
  assert.notEqual(mux.reader.luns[0].card, null);
  await controlMux('usb', 'dut', opts(host));
  assert.equal(mux.expander.output & 0x3f, 0x39);
});

test('selection: not a mux, no mux, two muxes, a LUN, an unknown generation', async () => {
  const plain = new SimReader({ ports: [2] });
  await assert.rejects(controlMux('usb:1-2', 'status', opts(new SimHost([plain]))), (e: unknown) => e instanceof UsageError && /not a known SD mux/.test(e.message));
  await assert.rejects(controlMux('usb', 'host', opts(new SimHost([plain]))), (e: unknown) => e instanceof UsageError && /no SD mux \(USB-SD-Mux, SDWire\) found/.test(e.message));
  const a = new SimUsbSdMux('classic', { ports: [3], serial: 'A' });
  const b = new SimUsbSdMux('classic', { ports: [4], serial: 'B' });
  await assert.rejects(
    controlMux('usb', 'host', opts(new SimHost([a.reader, b.reader]))),
    (e: unknown) => e instanceof UsageError && /ambiguous/.test(e.message) && /serial=B/.test(e.message),
  );
  await assert.rejects(controlMux('usb:1-3@lun=0', 'host', opts(new SimHost([a.reader]))), UsageError);
  assert.equal(a.log.length + b.log.length, 0);
  const odd = new SimUsbSdMux('classic', { inquiryProduct: 'USB2642 Reader' });
  await assert.rejects(controlMux('usb', 'status', opts(new SimHost([odd.reader]))), (e: unknown) => e instanceof UsageError && /--variant/.test(e.message));
  assert.equal((await controlMux('usb', 'host', opts(new SimHost([odd.reader]), { variant: 'classic' }))).mode, 'host');
  assert.equal(odd.mode(), 'host');
});

test('CLI: mux validates its action and --variant', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin/crashcart'), ...args], { encoding: 'utf8' });
  assert.match(run('--help').stdout, /crashcart mux <selector> <action>/);
  const bad = run('mux', 'usb', 'sideways');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown action "sideways"/);
  assert.equal(run('mux', 'usb', 'host', '--variant', 'turbo').status, 2);
  assert.equal(run('mux', 'usb').status, 2);
});
