import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadReaderProfiles, quirksFor, validateReaderProfile } from '../../../src/reader/reader-profiles.js';
import { BadInputError } from '../../../src/errors.js';

test('shipped reader profiles are valid and unique by match', () => {
  const ps = loadReaderProfiles();
  assert.ok(ps.length >= 5);
  const keys = ps.map((p) => JSON.stringify(p.match));
  assert.equal(new Set(keys).size, keys.length);
  const alcor = quirksFor(ps, 0x058f, 0x6387, 0x0141);
  assert.equal(alcor.quirks.maxSectors, 64);
  assert.deepEqual(quirksFor(ps, 0x058f, 0x6387, 0x0142).quirks, {});
  assert.equal(quirksFor(ps, 0x03ee, 0x6906, 0x1234).quirks.ignoreResidue, true);
  assert.deepEqual(
    quirksFor(ps, 0x0424, 0x4041, 0x0001).matched.map((p) => p.mux),
    ['usb-sd-mux'],
  );
  assert.deepEqual(
    quirksFor(ps, 0x04e8, 0x6001, 0x1000).matched.map((p) => p.mux),
    ['sdwire'],
  );
  assert.equal(quirksFor(ps, 0x0421, 0x005d, 0x0600).quirks.capacityOffByOne, true);
  assert.deepEqual(quirksFor(ps, 0x0421, 0x005d, 0x0601).quirks, {});
  assert.equal(quirksFor(ps, 0x046b, 0xff40, 0x0100).quirks.noWriteProtectDetect, true);
});

test('validator reports every problem with its path', () => {
  assert.throws(
    () =>
      validateReaderProfile(
        {
          name: '',
          match: { vendorId: '58f', productId: 6387, revisionMin: '0200', revisionMax: '0100', extra: 1 },
          quirks: { maxSectors: 0, ignoreResidue: 'yes', frobnicate: true },
          more: 1,
        },
        'x.json',
      ),
    (e: unknown) => {
      assert.ok(e instanceof BadInputError);
      for (const s of [
        'more: unknown property',
        'name: required',
        'match.vendorId',
        'match.productId',
        'match.extra: unknown',
        'revisionMin is greater',
        'quirks.maxSectors',
        'quirks.ignoreResidue: boolean',
        'quirks.frobnicate: unknown quirk',
      ]) {
        assert.ok(e.message.includes(s), `missing "${s}" in:\n${e.message}`);
      }
      return true;
    },
  );
  assert.throws(() => validateReaderProfile([], 'a.json'), BadInputError);
  assert.throws(() => validateReaderProfile({ name: 'n', match: { vendorId: '0001', productId: '0002' } }, 'a.json'), /quirks: required/);
  const ok = validateReaderProfile({ name: ' n ', match: { vendorId: 'ABCD', productId: '0002' }, quirks: {}, notes: 'x' }, 'a.json');
  assert.deepEqual(ok, { source: 'a.json', name: 'n', match: { vendorId: 0xabcd, productId: 2 }, quirks: {}, notes: 'x' });
  assert.throws(
    () => validateReaderProfile({ name: 'n', match: { vendorId: '0001', productId: '0002' }, quirks: {}, mux: 'sd-mux' }, 'a.json'),
    /mux: one of usb-sd-mux, sdwire expected/,
  );
});

test('loading a directory: malformed JSON is an error naming the file; missing dir is empty', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-profiles-'));
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ name: 'A', match: { vendorId: '0001', productId: '0002' }, quirks: { singleLun: true } }));
  writeFileSync(
    join(dir, 'b.json'),
    JSON.stringify({ name: 'B', match: { vendorId: '0001', productId: '0002', revisionMin: '0100' }, quirks: { singleLun: false, maxSectors: 128 } }),
  );
  writeFileSync(join(dir, 'readme.txt'), 'ignored');
  const ps = loadReaderProfiles(dir);
  assert.equal(ps.length, 2);
  // The revision-specific profile overrides the generic one.
  assert.deepEqual(quirksFor(ps, 1, 2, 0x0100).quirks, { singleLun: false, maxSectors: 128 });
  assert.deepEqual(quirksFor(ps, 1, 2, 0x0099).quirks, { singleLun: true });
  writeFileSync(join(dir, 'c.json'), '{ not json');
  assert.throws(
    () => loadReaderProfiles(dir),
    (e: unknown) => e instanceof BadInputError && e.message.includes('c.json') && /not valid JSON/.test(e.message),
  );
  assert.deepEqual(loadReaderProfiles(join(dir, 'nope')), []);
});
