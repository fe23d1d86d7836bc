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
  it('c61-s390x: detected as big-endian LP64 (s390x) and its kmsg, pmsg and console zones read byte-exactly', async () => {
    const fx = fixtures.find((f) => f.name === 'c61-s390x')!;
    const x = await extract(fx.disk(), { blkdev: parseCmdline(fx.cmdline).blkdev });
    assert.deepEqual([x.decoded.abi.endian, x.decoded.abi.layout], ['be', 'lp64']);
    assert.deepEqual(x.records.map((r) => r.type).sort(), ['console', 'dmesg', 'dmesg', 'dmesg', 'pmsg']);
  });
  it('stock61-arm64: detected as little-endian LP64', async () => {
    const fx = fixtures.find((f) => f.name === 'stock61-arm64')!;
    const x = await extract(fx.disk(), { blkdev: parseCmdline(fx.cmdline).blkdev });
    assert.deepEqual([x.decoded.abi.endian, x.decoded.abi.layout], ['le', 'lp64']);
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
    if (fx.readoutStat) {
      it(`${fx.name}: every Oops record has the time the kernel gave its file (mtime = the header's tv_sec, tv_nsec)`, async () => {
        const x = await extract(fx.disk(), { blkdev: parseCmdline(fx.cmdline).blkdev });
        const dumps = x.records.filter((r) => r.type === 'dmesg');
        assert.ok(dumps.length > 0);
        for (const r of dumps) {
          const st = fx.readoutStat!.get(r.file)!;
          assert.equal(r.time?.sec, String(st.mtime), `${r.file}: tv_sec`);
          if (st.mtimeNsec !== undefined) assert.equal(r.time?.nsec, st.mtimeNsec, `${r.file}: tv_nsec`);
        }
      });
    }
    it(`${fx.name}: records equal the kernel's with the geometry auto-detected`, async () => {
      const given = parseCmdline(fx.cmdline);
      // Only the region is named; every size, the CPU count, ABI and byte order are detected.
      const x = await extract(fx.disk(), { blkdev: given.blkdev }, fx.kallsyms);
      assertMatchesReadout(new Map(x.records.map((r) => [r.file, r.content])), fx.readout);
    });
  }
});

/**
 * Panics are only stored by a pstore/blk device driver with panic_write (test/vm/panic_blk.c;
 * scenario in test/vm/make-fixture.ts, panic mode): boot 1 took two Oopses and panicked, boot 2
 * mounted pstorefs (the kernel recovered its counters) and panicked again. The same scenario ran
 * with pstore.compress=deflate and none; only the uncompressed records carry the kernel's
 * "<Reason>: Total <counter> times" line, so it is the reference for both.
 */
describe('Panic records written through panic_write', () => {
  const totals = (fx: (typeof fixtures)[number]) =>
    [...fx.readout.keys()].sort().map((f) => {
      const m = /^(\w+): Total (\d+) times\n/.exec(fx.readout.get(f)!.toString('latin1'));
      assert.ok(m, `${f}: no Total line in the kernel's readout`);
      return { reason: m[1], counter: Number(m[2]) };
    });
  for (const [name, compressed] of [
    ['stock61-panic', true],
    ['stock61-panic-nocompress', false],
  ] as const) {
    it(`${name}: reason, counter and compression of every record as the kernel wrote them`, async () => {
      const fx = fixtures.find((f) => f.name === name)!;
      const x = await extract(fx.disk(), parseCmdline(fx.cmdline));
      const recs = [...x.records].sort((a, b) => a.id - b.id);
      const expected = totals(fixtures.find((f) => f.name === 'stock61-panic-nocompress')!);
      assert.deepEqual(
        expected.map((e) => e.reason),
        ['Oops', 'Oops', 'Panic', 'Panic'],
      );
      assert.deepEqual(
        recs.map((r) => ({ reason: r.reasonName, counter: r.counter })),
        expected,
      );
      for (const r of recs) {
        // The kernel's own dump header ("Panic#3 Part1") names the reason crashcart read from the zone header.
        const head = /^(\w+)#\d+ Part1$/m.exec(fx.readout.get(r.file)!.toString('latin1'));
        assert.equal(head?.[1], r.reasonName, `${r.file}: dump header`);
        assert.equal(r.compressed, compressed, `${r.file}: compressed flag`);
        assert.equal(r.algorithm, compressed ? 'deflate' : null, `${r.file}: algorithm`);
      }
      // What the kernel recovers at mount: the counters go on from 2 and 2; the next dump goes to zone 4.
      assert.deepEqual(x.decoded.counters, { oops: 2, panic: 2 });
      assert.equal(x.decoded.nextKmsgZone, 4);
    });
  }
});
