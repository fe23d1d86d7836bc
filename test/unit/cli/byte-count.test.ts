import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseByteCount, parseMaxTransfer } from '../../../src/cli/byte-count.js';
import { UsageError } from '../../../src/errors.js';

test('byte counts: plain, hex, binary and decimal units, sectors', () => {
  assert.equal(parseByteCount('4096', '--offset'), 4096);
  assert.equal(parseByteCount('0x1000', '--offset'), 4096);
  assert.equal(parseByteCount('1M', '--size'), 1024 * 1024);
  assert.equal(parseByteCount('2MB', '--size'), 2e6);
  assert.equal(parseByteCount('8s', '--size'), 4096);
  assert.throws(() => parseByteCount('1.5', '--size'), UsageError);
  assert.throws(() => parseByteCount('12 parsecs', '--size'), /not a byte count/);
});

test('--max-transfer: absent means the device default; one block up to 16 MiB', () => {
  assert.equal(parseMaxTransfer(undefined), undefined);
  assert.equal(parseMaxTransfer('1M'), 1024 * 1024);
  assert.equal(parseMaxTransfer('120K'), 120 * 1024);
  assert.throws(() => parseMaxTransfer('256'), /outside 512 bytes to 16 MiB/);
  assert.throws(() => parseMaxTransfer('32M'), UsageError);
});
