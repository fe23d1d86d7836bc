import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AbortedCommandError,
  describeSense,
  HardwareError,
  IllegalRequestError,
  LbaOutOfRangeError,
  LunNotSupportedError,
  MediumChangedError,
  MediumError,
  MediumWriteProtectedError,
  NoMediumError,
  NotReadyError,
  parseSense,
  ScsiCommandError,
  senseToError,
  UnitAttentionError,
} from '../../../src/scsi/sense.js';
import { ExitCode, WriteProtectedError } from '../../../src/errors.js';

function fixed(key: number, asc: number, ascq: number, info?: number, code = 0x70): Uint8Array {
  const b = new Uint8Array(18);
  b[0] = code | (info !== undefined ? 0x80 : 0);
  b[2] = key;
  if (info !== undefined) new DataView(b.buffer).setUint32(3, info, false);
  b[7] = 10;
  b[12] = asc;
  b[13] = ascq;
  return b;
}

test('fixed-format sense: key, ASC, ASCQ, INFORMATION only when VALID', () => {
  assert.deepEqual(parseSense(fixed(2, 0x3a, 0)), { responseCode: 0x70, deferred: false, key: 2, asc: 0x3a, ascq: 0 });
  const m = parseSense(fixed(3, 0x11, 0, 0x12345678))!;
  assert.equal(m.information, 0x12345678n);
  const d = parseSense(fixed(3, 0x11, 0, undefined, 0x71))!;
  assert.equal(d.deferred, true);
  assert.equal(d.information, undefined);
  // Bits above the sense key (ILI, EOM, FILEMARK) are not part of it.
  const b = fixed(5, 0x24, 0);
  b[2] |= 0xe0;
  assert.equal(parseSense(b)!.key, 5);
});

test('short fixed sense (8 bytes) still yields the key; missing ASC reads as 0', () => {
  const b = fixed(6, 0x29, 0).subarray(0, 8);
  assert.deepEqual(parseSense(b), { responseCode: 0x70, deferred: false, key: 6, asc: 0, ascq: 0 });
});

test('descriptor-format sense with an INFORMATION descriptor', () => {
  const b = new Uint8Array(8 + 12);
  b[0] = 0x72;
  b[1] = 3;
  b[2] = 0x11;
  b[3] = 0x00;
  b[7] = 12;
  b[8] = 0x00;
  b[9] = 0x0a;
  b[10] = 0x80;
  new DataView(b.buffer).setBigUint64(12, 0x1_0000_0005n, false);
  const s = parseSense(b)!;
  assert.equal(s.key, 3);
  assert.equal(s.asc, 0x11);
  assert.equal(s.information, 0x1_0000_0005n);
});

test('garbage and empty sense are not sense', () => {
  assert.equal(parseSense(new Uint8Array(0)), undefined);
  assert.equal(parseSense(Uint8Array.of(0x00, 0, 5, 0)), undefined);
  assert.equal(parseSense(Uint8Array.of(0x70, 0)), undefined);
  assert.equal(parseSense(Uint8Array.of(0x72, 5)), undefined);
  // A descriptor length running past the buffer is tolerated.
  const b = Uint8Array.of(0x72, 5, 0x24, 0, 0, 0, 0, 200, 0x00, 0x0a, 0x80);
  assert.equal(parseSense(b)!.information, undefined);
});

const cases: [number, number, number, Function, string][] = [
  [2, 0x3a, 0x00, NoMediumError, 'no card'],
  [6, 0x3a, 0x00, NoMediumError, 'no card'],
  [6, 0x28, 0x00, MediumChangedError, 'medium may have changed'],
  [6, 0x29, 0x00, UnitAttentionError, 'Power on, reset'],
  [2, 0x04, 0x01, NotReadyError, 'becoming ready'],
  [3, 0x11, 0x00, MediumError, 'Unrecovered read error'],
  [3, 0x0c, 0x00, MediumError, 'Write error'],
  [4, 0x44, 0x00, HardwareError, 'hardware error'],
  [5, 0x21, 0x00, LbaOutOfRangeError, 'out of range'],
  [5, 0x25, 0x00, LunNotSupportedError, 'logical unit not supported'],
  [5, 0x20, 0x00, IllegalRequestError, 'Invalid command operation code'],
  [5, 0x24, 0x00, IllegalRequestError, 'Invalid field in cdb'],
  [0xb, 0x00, 0x00, AbortedCommandError, 'aborted command'],
  [7, 0x27, 0x00, MediumWriteProtectedError, 'write-protected'],
  [7, 0x27, 0x01, MediumWriteProtectedError, 'Hardware write protected'],
];
for (const [k, asc, ascq, cls, text] of cases) {
  test(`sense ${k.toString(16)}/${asc.toString(16)}/${ascq.toString(16)} → ${cls.name}`, () => {
    const e = senseToError(parseSense(fixed(k, asc, ascq)), 0x28);
    assert.ok(e instanceof cls, `${e.constructor.name}`);
    assert.match(e.message, new RegExp(text, 'i'));
    assert.equal(e.sense.key, k);
  });
}

test('medium error carries the failing LBA', () => {
  const e = senseToError(parseSense(fixed(3, 0x11, 0, 4242)), 0x28);
  assert.ok(e instanceof MediumError);
  assert.equal(e.lba, 4242n);
  assert.match(e.message, /at LBA 4242/);
});

test('not ready flavours', () => {
  const a = senseToError(parseSense(fixed(2, 4, 1)), 0) as NotReadyError;
  const b = senseToError(parseSense(fixed(2, 4, 2)), 0) as NotReadyError;
  const c = senseToError(parseSense(fixed(2, 4, 3)), 0) as NotReadyError;
  assert.deepEqual([a.becomingReady, a.needsStart], [true, false]);
  assert.deepEqual([b.becomingReady, b.needsStart], [false, true]);
  assert.deepEqual([c.becomingReady, c.needsStart], [false, false]);
});

test('failed command without sense, or with NO SENSE, is a hardware error', () => {
  assert.ok(senseToError(undefined, 0x2a) instanceof HardwareError);
  assert.ok(senseToError(parseSense(fixed(0, 0, 0)), 0x2a) instanceof HardwareError);
});

test('exit codes: write-protect maps to WRITE_PROTECTED, the rest to IO', () => {
  const wp = senseToError(parseSense(fixed(7, 0x27, 0)), 0x2a);
  assert.ok(wp instanceof WriteProtectedError);
  assert.equal(wp.exitCode, ExitCode.WRITE_PROTECTED);
  const nm = senseToError(parseSense(fixed(2, 0x3a, 0)), 0x28);
  assert.ok(nm instanceof ScsiCommandError);
  assert.equal(nm.exitCode, ExitCode.IO);
});

test('describeSense names unknown codes numerically', () => {
  assert.equal(describeSense({ key: 2, asc: 0x3a, ascq: 0 }), 'not ready: Medium not present (2/3A/00)');
  assert.equal(describeSense({ key: 9, asc: 0x80, ascq: 0x01 }), 'vendor specific: additional sense 80h/01h (9/80/01)');
  // Unknown ASCQ under a known ASC falls back to the ASC text.
  assert.match(describeSense({ key: 6, asc: 0x29, ascq: 0x07 }), /Power on/);
});
