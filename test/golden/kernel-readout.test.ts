/**
 * Golden tests: for every disk image written by a real kernel, our records must equal what the
 * kernel itself showed in /sys/fs/pstore on the next boot, file for file, byte for byte.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryDevice } from '../../src/blockdev/memory-device.js';
import { parseCmdline } from '../../src/pstore/cmdline.js';
import { extractPstore } from '../../src/pstore/extract.js';
import { locatePstoreRegion } from '../../src/pstore/locate-region.js';
import type { PstoreParams } from '../../src/pstore/params.js';
import { loadSymbolTable } from '../../src/symbols/index.js';
import { ftraceMismatch, kernelFixtures } from '../helpers/kernel-fixtures.js';

const fixtures = kernelFixtures();

async function extract(disk: Uint8Array, params: PstoreParams, kallsyms?: Uint8Array, readStrategy: 'bulk' | 'zones' = 'bulk') {
  const dev = new MemoryDevice(disk, { readOnly: true, blockSize: 512, alignment: 512 });
  const region = await locatePstoreRegion(dev, { blkdev: params.blkdev?.value });
  const symbols = kallsyms ? loadSymbolTable(kallsyms) : null;
  return extractPstore(region.source, { params, symbols, readStrategy });
}

function assertMatchesReadout(files: Map<string, Uint8Array>, readout: Map<string, Buffer>) {
  assert.deepEqual([...files.keys()].sort(), [...readout.keys()].sort(), 'same set of files as the kernel');
  for (const [name, expected] of readout) {
    const actual = Buffer.from(files.get(name)!);
    if (name.startsWith('ftrace-')) {
      assert.equal(ftraceMismatch(expected.toString('latin1'), actual.toString('latin1')), null, name);
    } else {
      assert.ok(actual.equals(expected), `${name}: ${actual.length} bytes differ from the kernel's ${expected.length}`);
    }
  }
}

describe('kernel readout golden tests', () => {
  it('stock61-i386: detected as the i386 ABI (28-byte kmsg header) and read byte-exactly', async () => {
    const fx = fixtures.find((f) => f.name === 'stock61-i386')!;
    const x = await extract(fx.disk(), { blkdev: parseCmdline(fx.cmdline).blkdev });
    assert.equal(x.decoded.abi.layout, 'i386');
    assert.equal(x.records.length, 3);
  });
  it('has the fixtures', () => assert.ok(fixtures.length >= 6, `found ${fixtures.length} fixtures`));
  for (const fx of fixtures) {
    it(`${fx.name}: records equal the kernel's /sys/fs/pstore (geometry from cmdline.txt)`, async () => {
      const x = await extract(fx.disk(), parseCmdline(fx.cmdline), fx.kallsyms);
      assertMatchesReadout(new Map(x.records.map((r) => [r.file, r.content])), fx.readout);
      assert.ok(x.records.every((r) => r.kernelVisible));
    });
    it(`${fx.name}: the same when zones are read one by one (as from a slow USB reader)`, async () => {
      const x = await extract(fx.disk(), parseCmdline(fx.cmdline), fx.kallsyms, 'zones');
      assertMatchesReadout(new Map(x.records.map((r) => [r.file, r.content])), fx.readout);
    });
    it(`${fx.name}: records equal the kernel's with the geometry auto-detected`, async () => {
      const given = parseCmdline(fx.cmdline);
      // Only the region is named; every size, the CPU count, ABI and byte order are detected.
      const x = await extract(fx.disk(), { blkdev: given.blkdev }, fx.kallsyms);
      assertMatchesReadout(new Map(x.records.map((r) => [r.file, r.content])), fx.readout);
    });
  }
});
