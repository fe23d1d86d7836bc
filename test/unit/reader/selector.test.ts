import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatUsbSelector, isUsbSelector, matchUsbSelector, parseUsbSelector, resolveUsbSelector } from '../../../src/reader/selector.js';
import { UsageError } from '../../../src/errors.js';
import { SimReader } from '../../sim/sim-reader.js';
import type { UsbDeviceInfo } from '../../../src/usb/transport.js';

test('parse: every form, with and without @lun', () => {
  assert.deepEqual(parseUsbSelector('usb'), { kind: 'any' });
  assert.deepEqual(parseUsbSelector('usb@lun=1'), { kind: 'any', lun: 1 });
  assert.deepEqual(parseUsbSelector('usb:1-1.4'), { kind: 'port', portPath: '1-1.4' });
  assert.deepEqual(parseUsbSelector('usb:1-1.4@lun=1'), { kind: 'port', portPath: '1-1.4', lun: 1 });
  assert.deepEqual(parseUsbSelector('usb:3-2'), { kind: 'port', portPath: '3-2' });
  assert.deepEqual(parseUsbSelector('usb:058F:6387'), { kind: 'id', vendorId: 0x058f, productId: 0x6387 });
  assert.deepEqual(parseUsbSelector('usb:serial=000000001206@lun=15'), { kind: 'serial', serial: '000000001206', lun: 15 });
  assert.deepEqual(parseUsbSelector('usb:serial=a@b'), { kind: 'serial', serial: 'a@b' });
  assert.deepEqual(parseUsbSelector('  usb:2-1.1.3  '), { kind: 'port', portPath: '2-1.1.3' });
});

test('parse: bad input is a usage error naming the accepted forms', () => {
  for (const bad of [
    'usb:',
    'usb:1-',
    'usb:1-1.',
    'usb:58f:6387',
    'usb:058f:63877',
    'usb:serial=',
    'usb@lun=16',
    'usb@lun=x',
    'usb:1-1@lun=',
    'usb:foo',
    'usbx',
    '/dev/sda',
    '',
    'usb:1-1.4@lun=1@lun=2',
  ]) {
    assert.throws(() => parseUsbSelector(bad), UsageError, bad);
  }
  assert.throws(() => parseUsbSelector('usb:foo'), /usb:PORT/);
  assert.equal(isUsbSelector('usb:1-1'), true);
  assert.equal(isUsbSelector('usbdisk.img'), false);
});

test('format round-trips', () => {
  for (const s of ['usb', 'usb@lun=2', 'usb:1-1.4', 'usb:058f:6387@lun=1', 'usb:serial=XYZ']) {
    assert.equal(formatUsbSelector(parseUsbSelector(s)), s);
  }
});

const a = new SimReader({ ports: [1, 4], serial: 'AAA' }).device;
const b = new SimReader({ ports: [1, 3], serial: 'BBB' }).device;
const c = new SimReader({ ports: [2], vendorId: 0x058f, productId: 0x6387, serial: 'CCC' }).device;
const keyboard: UsbDeviceInfo = { ...a, portPath: '1-5', ports: [5], vendorId: 0x046d, productId: 0xc31c, massStorage: [] };

test('match and resolve', () => {
  const all = [a, b, c, keyboard];
  assert.equal(resolveUsbSelector(parseUsbSelector('usb:1-1.3'), all), b);
  assert.equal(resolveUsbSelector(parseUsbSelector('usb:058f:6387'), all), c);
  assert.equal(resolveUsbSelector(parseUsbSelector('usb:serial=AAA@lun=1'), all), a);
  assert.equal(resolveUsbSelector(parseUsbSelector('usb'), [a, keyboard]), a);
  assert.deepEqual(matchUsbSelector(parseUsbSelector('usb:1-5'), all), []);
});

test('ambiguous and missing selectors are refused with the candidates', () => {
  const all = [a, b, c, keyboard];
  assert.throws(
    () => resolveUsbSelector(parseUsbSelector('usb'), all),
    (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /ambiguous, 3 readers/);
      assert.match(e.message, /usb:1-1\.4 {2}1d6b:0104/);
      assert.match(e.message, /usb:1-2 {2}058f:6387/);
      return true;
    },
  );
  assert.throws(() => resolveUsbSelector(parseUsbSelector('usb:1d6b:0104'), all), /ambiguous, 2 readers/);
  assert.throws(() => resolveUsbSelector(parseUsbSelector('usb:9-9'), all), /no such reader; present:/);
  assert.throws(() => resolveUsbSelector(parseUsbSelector('usb'), [keyboard]), /no USB mass-storage reader found/);
});
