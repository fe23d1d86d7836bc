import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cdb, parseInquiry, parseModeSenseWriteProtect, parseReadCapacity10, parseReadCapacity16 } from '../../../src/scsi/cdb.js';

test('READ(10)/WRITE(10) layout and limits', () => {
  assert.deepEqual([...cdb.read10(0x01020304n, 0x0506)], [0x28, 0, 1, 2, 3, 4, 0, 5, 6, 0]);
  assert.equal(cdb.write10(0n, 1)[0], 0x2a);
  assert.throws(() => cdb.read10(0x100000000n, 1), RangeError);
  assert.throws(() => cdb.read10(0n, 0x10000), RangeError);
  assert.throws(() => cdb.read10(-1n, 1), RangeError);
  assert.throws(() => cdb.read10(0n, 1.5), RangeError);
});

test('READ(16)/WRITE(16) layout', () => {
  const c = cdb.read16(0x0102030405060708n, 0x0a0b0c0d);
  assert.deepEqual([...c], [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0]);
  assert.equal(cdb.write16(0n, 1)[0], 0x8a);
});

test('INQUIRY, REQUEST SENSE, READ CAPACITY(16), MODE SENSE, PREVENT, START STOP layouts', () => {
  assert.deepEqual([...cdb.inquiry()], [0x12, 0, 0, 0, 36, 0]);
  assert.deepEqual([...cdb.requestSense()], [0x03, 0, 0, 0, 18, 0]);
  assert.deepEqual([...cdb.readCapacity16()], [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  assert.deepEqual([...cdb.modeSense6()], [0x1a, 0, 0x3f, 0, 192, 0]);
  assert.deepEqual([...cdb.modeSense10()], [0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 192, 0]);
  assert.deepEqual([...cdb.preventAllowMediumRemoval(true)], [0x1e, 0, 0, 0, 1, 0]);
  assert.deepEqual([...cdb.startStopUnit(true, { immediate: true })], [0x1b, 1, 0, 0, 1, 0]);
  assert.deepEqual([...cdb.startStopUnit(false, { loadEject: true })], [0x1b, 0, 0, 0, 2, 0]);
  assert.deepEqual([...cdb.synchronizeCache10()], [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...cdb.testUnitReady()], [0, 0, 0, 0, 0, 0]);
});

test('INQUIRY parsing: qualifier, type, RMB, trimmed strings, short data', () => {
  const d = new Uint8Array(36).fill(0x20);
  d[0] = 0x00;
  d[1] = 0x80;
  d[2] = 4;
  d[3] = 2;
  d.set(new TextEncoder().encode('Generic-'), 8);
  d.set(new TextEncoder().encode('SD/MMC          '), 16);
  d.set(new TextEncoder().encode('1.00'), 32);
  const i = parseInquiry(d);
  assert.deepEqual(i, { qualifier: 0, deviceType: 0, removable: true, version: 4, responseFormat: 2, vendor: 'Generic-', product: 'SD/MMC', revision: '1.00' });
  const missing = d.slice();
  missing[0] = 0x7f;
  assert.equal(parseInquiry(missing).qualifier, 3);
  assert.equal(parseInquiry(missing).deviceType, 0x1f);
  // Truncated answer: strings cut short, control bytes become spaces.
  const short = d.slice(0, 12);
  short[9] = 0x01;
  assert.equal(parseInquiry(short).vendor, 'G ne');
  assert.throws(() => parseInquiry(new Uint8Array(4)), RangeError);
});

test('READ CAPACITY parsing', () => {
  assert.deepEqual(parseReadCapacity10(Uint8Array.of(0, 0x3b, 0x9f, 0xff, 0, 0, 2, 0)), { lastLba: 0x3b9fffn, blockSize: 512 });
  const b = new Uint8Array(32);
  new DataView(b.buffer).setBigUint64(0, 0x1_2345_6789n, false);
  new DataView(b.buffer).setUint32(8, 4096, false);
  assert.deepEqual(parseReadCapacity16(b), { lastLba: 0x1_2345_6789n, blockSize: 4096 });
  assert.throws(() => parseReadCapacity10(new Uint8Array(7)), RangeError);
  assert.throws(() => parseReadCapacity16(new Uint8Array(11)), RangeError);
});

test('MODE SENSE header WP bit', () => {
  assert.equal(parseModeSenseWriteProtect(Uint8Array.of(3, 0, 0x80, 0), false), true);
  assert.equal(parseModeSenseWriteProtect(Uint8Array.of(3, 0, 0x10, 0), false), false);
  assert.equal(parseModeSenseWriteProtect(Uint8Array.of(0, 6, 0, 0x80, 0, 0, 0, 0), true), true);
  assert.throws(() => parseModeSenseWriteProtect(Uint8Array.of(3, 0), false), RangeError);
});
