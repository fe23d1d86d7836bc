/**
 * The extract command end to end: the real executable on kernel-written images, and the
 * exit codes scripts rely on (bad arguments, no pstore region, I/O error).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { MemoryDevice } from '../../src/blockdev/memory-device.js';
import { registerDeviceOpener } from '../../src/blockdev/open-device.js';
import { IoError } from '../../src/errors.js';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(repoRoot, 'bin/crashcart');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const fixtureImage = (name: string) => {
  const p = join(tmp, `${name}.img`);
  if (!existsSync(p)) writeFileSync(p, gunzipSync(readFileSync(join(kernelFixturesDir, name, 'disk.img.gz'))));
  return p;
};

describe('crashcart pstore extract', () => {
  it('extracts a GPT card image by the board command line and prints index.json with --json', () => {
    const out = join(tmp, 'gpt');
    const r = run('pstore', 'extract', fixtureImage('stock61-gpt'), '-o', out, '--json', '--cmdline', readFileSync(join(kernelFixturesDir, 'stock61-gpt/cmdline.txt'), 'utf8'));
    assert.equal(r.status, 0, r.stderr);
    const ix = JSON.parse(r.stdout);
    assert.equal(ix.region.offset, 2 * 1024 * 1024);
    assert.deepEqual(
      ix.records.map((x: { file: string }) => x.file),
      ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1'],
    );
    assert.equal(ix.records[0].algorithm, 'deflate');
    assert.equal(ix.geometry.kmsg_size.source, 'cmdline');
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')), ix);
    assert.ok(readFileSync(join(out, 'dmesg-pstore_blk-1')).equals(readFileSync(join(kernelFixturesDir, 'stock61-gpt/kernel-readout/dmesg-pstore_blk-1'))));
  });

  it('finds the pstore partition of a card by itself and renders ftrace with --symbols', () => {
    const out = join(tmp, 'full');
    const r = run('pstore', 'extract', fixtureImage('c61-full-deflate'), '-o', out, '--symbols', join(kernelFixturesDir, 'c61-full-deflate/kallsyms.gz'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ftrace-pstore_blk-0/);
    assert.match(r.stdout, /cpus 2 \(detected\)/);
    assert.match(readFileSync(join(out, 'ftrace-pstore_blk-0'), 'utf8'), /psz_zone_write \[pstore_zone\] <- psz_record_write\+0x67\/0x110 \[pstore_zone\]/);
  });

  it('exit 2 for bad arguments', () => {
    assert.equal(run('pstore', 'extract', fixtureImage('c61-none-rr')).status, 2, 'missing -o');
    assert.equal(run('pstore', 'extract', join(tmp, 'nope.img'), '-o', join(tmp, 'x')).status, 2, 'missing image');
    assert.equal(run('pstore', 'extract', fixtureImage('c61-none-rr'), '-o', join(tmp, 'x'), '--cmdline', 'pstore_blk.kmsg_size=lots').status, 2);
    assert.equal(run('pstore', 'extract', fixtureImage('c61-none-rr'), '-o', join(tmp, 'x'), '--partition', '3').status, 2, 'no partition table');
    assert.equal(run('frobnicate').status, 2);
  });

  it('exit 4 when there is no pstore region', () => {
    const zero = join(tmp, 'zero.img');
    writeFileSync(zero, new Uint8Array(1 << 20));
    const r = run('pstore', 'extract', zero, '-o', join(tmp, 'z'));
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /no pstore\/blk zone signatures/);
    assert.equal(run('pstore', 'extract', zero, '-o', join(tmp, 'z'), '--kmsg-size', '64', '--pmsg-size', '0', '--console-size', '0', '--ftrace-size', '0').status, 4);
  });

  it('a truncated image still yields what is there, with warnings', () => {
    const full = readFileSync(fixtureImage('c61-none-rr'));
    const cut = join(tmp, 'cut.img');
    writeFileSync(cut, full.subarray(0, 300 * 1024));
    const r = run('pstore', 'extract', cut, '-o', join(tmp, 'cut'), '--cmdline', readFileSync(join(kernelFixturesDir, 'c61-none-rr/cmdline.txt'), 'utf8'), '--json');
    assert.equal(r.status, 0, r.stderr);
    const ix = JSON.parse(r.stdout);
    assert.ok(ix.records.some((x: { file: string }) => x.file === 'dmesg-pstore_blk-0'));
    assert.ok(ix.warnings.length > 0);
  });

  it('exit 3 on an I/O error from the device', async () => {
    const { main } = await import('../../src/cli/main.js');
    registerDeviceOpener('failing:', async () => {
      const dev = new MemoryDevice(new Uint8Array(1 << 20), { name: 'failing:card' });
      dev.read = async () => {
        throw new IoError('medium error at LBA 2048');
      };
      return dev;
    });
    const origErr = process.stderr.write.bind(process.stderr);
    let err = '';
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    try {
      assert.equal(await main(['pstore', 'extract', 'failing:card', '-o', join(tmp, 'f')]), 3);
    } finally {
      process.stderr.write = origErr;
    }
    assert.match(err, /medium error at LBA 2048/);
  });
});

describe('crashcart pstore extract on a truncated card image', () => {
  it('--offset/--size may name a region longer than the image: zones are read as far as it goes', () => {
    const full = readFileSync(fixtureImage('c61-none-rr'));
    const cut = join(tmp, 'cut2.img');
    writeFileSync(cut, full.subarray(0, 300000));
    const r = run(
      'pstore',
      'extract',
      cut,
      '-o',
      join(tmp, 'cut2'),
      '--offset',
      '0',
      '--size',
      '1M',
      '--cmdline',
      readFileSync(join(kernelFixturesDir, 'c61-none-rr/cmdline.txt'), 'utf8'),
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const ix = JSON.parse(r.stdout);
    assert.equal(ix.geometry.kmsgZones, 12);
    const rec = ix.records.find((x: { file: string }) => x.file === 'dmesg-pstore_blk-0');
    assert.equal(rec.kernelVisible, false);
    assert.ok(readFileSync(join(tmp, 'cut2', 'dmesg-pstore_blk-0')).equals(readFileSync(join(kernelFixturesDir, 'c61-none-rr/kernel-readout/dmesg-pstore_blk-0'))));
    assert.ok(existsSync(join(tmp, 'cut2', 'raw', 'dmesg-zone0@0x40000.bin')));
  });
});
