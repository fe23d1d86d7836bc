/**
 * Failure kinds are part of the BlockDevice contract: every backend puts one on its errors and
 * retry/resume logic reads nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { failureOfErrno } from '../../../src/blockdev/device-util.js';
import { mapWriteError } from '../../../src/blockdev/file-handle-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { deviceFailureOf, IoError } from '../../../src/errors.js';
import { classifyError, RetriesExhaustedError } from '../../../src/flash/retry.js';
import { LbaOutOfRangeError, MediumChangedError, MediumError, NoMediumError, NotReadyError, UnitAttentionError } from '../../../src/scsi/sense.js';
import { BotTransportError, DeviceGoneError, UsbTransferError } from '../../../src/usb/errors.js';

const errno = (code: string) => Object.assign(new Error(`x: ${code}`), { code });
const sense = { responseCode: 0x70, deferred: false, key: 2, asc: 0x3a, ascq: 0 };

test('OS errors: gone, medium, transient, or final', () => {
  assert.equal(failureOfErrno(errno('ENODEV')), 'gone');
  assert.equal(failureOfErrno(errno('ENOMEDIUM')), 'gone');
  assert.equal(failureOfErrno(errno('EIO')), 'medium');
  assert.equal(failureOfErrno(errno('EBUSY')), 'transient');
  assert.equal(failureOfErrno(errno('ENOSPC')), undefined);
  assert.equal((mapWriteError('card', 0, 512, errno('ENXIO')) as IoError).failure, 'gone');
});

test('USB and SCSI errors carry their kind', () => {
  assert.equal(new DeviceGoneError().failure, 'gone');
  assert.equal(new UsbTransferError('disconnected', 'x').failure, 'gone');
  assert.equal(new UsbTransferError('stall', 'x').failure, 'transient');
  assert.equal(new UsbTransferError('cancelled', 'x').failure, 'cancelled');
  assert.equal(new BotTransportError('timeout', true, 'x').failure, 'transient');
  assert.equal(new BotTransportError('timeout', false, 'x').failure, 'gone');
  assert.equal(new NoMediumError(sense, 0x28).failure, 'gone');
  assert.equal(new MediumChangedError(sense, 0x28).failure, 'gone');
  assert.equal(new UnitAttentionError(sense, 0x28).failure, 'transient');
  assert.equal(new NotReadyError(sense, 0x28).failure, 'transient');
  assert.equal(new MediumError(sense, 0x28).failure, 'medium');
  assert.equal(new LbaOutOfRangeError(sense, 0x28).failure, 'out-of-range');
});

test('retry logic reads the kind, never the message', async (t) => {
  assert.equal(classifyError(new IoError('device is closed')), 'fatal', 'a message alone means nothing');
  assert.equal(classifyError(new IoError('anything', { failure: 'gone' })), 'gone');
  assert.equal(classifyError(new IoError('anything', { failure: 'medium' })), 'transient');
  assert.equal(classifyError(new IoError('anything', { failure: 'out-of-range' })), 'fatal');
  assert.equal(classifyError(new UsbTransferError('cancelled', 'x')), 'abort');
  const wrapped = new Error('wrapper', { cause: new IoError('inner', { failure: 'gone' }) });
  assert.equal(deviceFailureOf(wrapped), 'gone');
  assert.equal(classifyError(new RetriesExhaustedError(3, new IoError('eio', { failure: 'medium' }))), 'transient');
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-kinds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.img'), new Uint8Array(1024));
  const dev = await openImageFile(join(dir, 'a.img'));
  await assert.rejects(dev.read(1000, 100), (e: unknown) => e instanceof IoError && e.failure === 'out-of-range' && classifyError(e) === 'fatal');
  await dev.close();
  await assert.rejects(dev.read(0, 1), (e: unknown) => classifyError(e) === 'gone');
});
