/**
 * The CPU count read from the card: synthetic regions laid out by psz_alloc_zones()'s arithmetic
 * (computed here independently of src/pstore/layout.ts) for every count 1-16 and many size
 * combinations, decoded without --cpus.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuCountGroups, detectCpuCount, kmsgShift } from '../../../src/pstore/cpu-count.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import type { PstoreParams } from '../../../src/pstore/params.js';
import { memorySource } from '../../../src/pstore/region-source.js';
import { mergeSignatures, scanSignatures, scanUnalignedSignatures } from '../../../src/pstore/scan.js';
import { ftraceRecords, putCircularZone, putKmsgZone } from '../../helpers/zone-builder.js';

const KiB = 1024;

interface Card {
  region: Uint8Array;
  kmsgStart: number;
  q: number;
}

/** psz_alloc_zones(): pmsg, console, floor(F/q) ftrace zones of q = F/n, kmsg zones from there. */
function buildCard(n: number, P: number, C: number, F: number, K: number, opts: { ftraceCpus: number; kmsgZones: number[]; kmsgCount?: number }): Card {
  const q = Math.floor(F / n);
  const cf = Math.floor(F / q);
  const kmsgStart = P + C + cf * q;
  const total = P + C + F + (opts.kmsgCount ?? 4) * K;
  const region = new Uint8Array(total);
  if (P) putCircularZone(region, 0, P, 'pmsg', Buffer.from('pmsg line\n'), 'le');
  if (C) putCircularZone(region, P, C, 'console', Buffer.from('[    0.000000] console\n'), 'le');
  let counter = 1n;
  for (let cpu = 0; cpu < opts.ftraceCpus; cpu++) {
    const recs = Array.from({ length: 3 }, (_, i) => ({
      ip: 0xffffffff81000000n + BigInt(cpu * 16 + i),
      parent: 0xffffffff81100000n,
      ts: ((counter++ as bigint) << 8n) | BigInt(cpu),
    }));
    putCircularZone(region, P + C + cpu * q, q, 'ftrace', ftraceRecords(recs, 'le', 64), 'le');
  }
  for (const j of opts.kmsgZones) {
    putKmsgZone(
      region,
      kmsgStart + j * K,
      K,
      { sec: 1700000000n + BigInt(j), nsec: 0, compressed: false, counter: j + 1, reason: 2, payload: Buffer.from(`Oops#${j + 1} Part1\n<4>[    1.0] oops ${j}\n`) },
      'le',
      'lp64',
    );
  }
  return { region, kmsgStart, q };
}

async function signatures(region: Uint8Array) {
  const src = memorySource(region);
  return mergeSignatures(await scanSignatures(src), await scanUnalignedSignatures(src));
}

const kib = (k: number) => ({ value: k, source: 'flag' as const });
const sizesParams = (P: number, C: number, F: number, K: number): PstoreParams => ({
  pmsg_size: kib(P / KiB),
  console_size: kib(C / KiB),
  ftrace_size: kib(F / KiB),
  kmsg_size: kib(K / KiB),
});

const recordsOf = async (region: Uint8Array, params: PstoreParams) => {
  const x = await extractPstore(memorySource(region), { params });
  return { x, files: new Map(x.records.map((r) => [r.file, Buffer.from(r.content).toString('latin1')])) };
};

describe('CPU count groups and kmsg shift (psz_alloc_zones arithmetic)', () => {
  it('groups every count 1..8192 by ftrace zone size, without gaps', () => {
    for (const F of [4096, 12 * KiB, 64 * KiB, 1024 * KiB, 128 * 1024 * KiB]) {
      let next = 1;
      for (const g of cpuCountGroups(F)) {
        assert.equal(g.lo, next);
        for (const n of [g.lo, g.hi]) assert.equal(Math.floor(F / n), g.q);
        next = g.hi + 1;
      }
      // Stops only where a zone could no longer hold its 12-byte header, or at 8192.
      assert.ok(next === 8193 || Math.floor(F / next) <= 12, `F=${F} stopped at ${next}`);
    }
  });
  it('kmsg zones start a few bytes early when the count does not divide ftrace_size', () => {
    assert.equal(kmsgShift(64 * KiB, 3), 1);
    assert.equal(kmsgShift(64 * KiB, 6), 4);
    assert.equal(kmsgShift(64 * KiB, 7), 65536 - 7 * 9362);
    assert.equal(kmsgShift(64 * KiB, 12), 65536 - 12 * 5461);
    assert.equal(kmsgShift(64 * KiB, 8), 0);
  });
});

describe('CPU count from the card, every count 1-16', () => {
  const combos: [number, number, number, number][] = [];
  for (const P of [0, 4 * KiB, 64 * KiB])
    for (const C of [0, 8 * KiB, 64 * KiB])
      for (const F of [4 * KiB, 12 * KiB, 32 * KiB, 64 * KiB, 128 * KiB]) for (const K of [4 * KiB, 16 * KiB, 64 * KiB]) combos.push([P, C, F, K]);

  it(`every CPU's ftrace zone written plus kmsg records: the exact count (${combos.length} size combinations x 16 counts)`, async () => {
    for (let n = 1; n <= 16; n++) {
      for (const [P, C, F, K] of combos) {
        const card = buildCard(n, P, C, F, K, { ftraceCpus: n, kmsgZones: [0, 2] });
        const d = detectCpuCount(await signatures(card.region), { pmsg: P, console: C, ftrace: F, kmsg: K }, card.region.length);
        const what = `n=${n} P=${P} C=${C} F=${F} K=${K}: ${d.decision} ${d.message ?? ''}`;
        assert.equal(d.cpus, n, what);
        assert.ok(['single', 'same-records', 'records'].includes(d.decision), what);
        assert.equal(d.fits[0].kmsgStart, card.kmsgStart, what);
      }
    }
  });

  it('only kmsg records and CPU 0 traced: the kmsg zones are found where the kernel put them', async () => {
    for (let n = 1; n <= 16; n++) {
      for (const [P, C, F, K] of combos) {
        const card = buildCard(n, P, C, F, K, { ftraceCpus: 1, kmsgZones: [1, 3] });
        const d = detectCpuCount(await signatures(card.region), { pmsg: P, console: C, ftrace: F, kmsg: K }, card.region.length);
        const what = `n=${n} P=${P} C=${C} F=${F} K=${K}: ${d.decision} ${d.message ?? ''}`;
        assert.ok(d.fits.length > 0, what);
        assert.equal(kmsgShift(F, d.cpus), P + C + F - card.kmsgStart, what);
        assert.ok(d.fits.some((f) => n >= f.cpus && n <= f.cpusMax) || d.decision === 'same-records', what);
      }
    }
  });

  it('extraction without --cpus gives the records extraction with the true count gives (3, 5, 6, 7, 12 CPUs and more)', async () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]) {
      for (const [P, C, F, K] of [
        [64 * KiB, 64 * KiB, 64 * KiB, 64 * KiB],
        [0, 8 * KiB, 12 * KiB, 16 * KiB],
        [4 * KiB, 0, 128 * KiB, 4 * KiB],
      ]) {
        const card = buildCard(n, P, C, F, K, { ftraceCpus: n, kmsgZones: [0, 1, 3] });
        const given = sizesParams(P, C, F, K);
        const truth = await recordsOf(card.region, { ...given, cpus: { value: n, source: 'flag' } });
        const detected = await recordsOf(card.region, given);
        const what = `n=${n} P=${P} C=${C} F=${F} K=${K}`;
        assert.equal(detected.x.geometry.cpus.value, n, what);
        assert.equal(detected.x.geometry.cpus.source, 'detected', what);
        assert.deepEqual([...detected.files.keys()].sort(), [...truth.files.keys()].sort(), what);
        for (const [f, c] of truth.files) assert.equal(detected.files.get(f), c, `${what}: ${f}`);
        assert.equal([...truth.files.keys()].filter((f) => f.startsWith('dmesg-')).length, 3, what);
        assert.ok(truth.files.get('ftrace-pstore_blk-0')!.includes(`CPU:${n - 1} `), what);
      }
    }
  });

  it('with nothing given (sizes detected too) a 3-CPU and a 6-CPU card are read right', async () => {
    for (const n of [3, 6, 7, 12]) {
      const card = buildCard(n, 64 * KiB, 64 * KiB, 64 * KiB, 64 * KiB, { ftraceCpus: n, kmsgZones: [0, 1], kmsgCount: 8 });
      const { x, files } = await recordsOf(card.region, {});
      assert.equal(x.geometry.cpus.value, n);
      assert.equal(x.geometry.ftrace_size.value, 64);
      assert.deepEqual([...files.keys()].sort(), ['console-pstore_blk-0', 'dmesg-pstore_blk-0', 'dmesg-pstore_blk-1', 'ftrace-pstore_blk-0', 'pmsg-pstore_blk-0']);
    }
  });

  it('with nothing given and every kmsg zone written (thousands of signatures), the front-end zones still place the kmsg zones', async () => {
    // 2045 kmsg zones of 8 KiB after pmsg, console and two CPUs' ftrace zones: the signatures of the
    // few front-end zones must weigh in the detection as much as with a handful of kmsg records
    const zones = Array.from({ length: 2045 }, (_, j) => j);
    const card = buildCard(2, 64 * KiB, 64 * KiB, 64 * KiB, 8 * KiB, { ftraceCpus: 2, kmsgZones: zones, kmsgCount: zones.length });
    const { x, files } = await recordsOf(card.region, {});
    const g = x.geometry;
    assert.deepEqual([g.pmsg_size.value, g.console_size.value, g.ftrace_size.value, g.kmsg_size.value, g.cpus.value, g.layout.kmsgCount], [64, 64, 64, 8, 2, 2045]);
    assert.equal([...files.keys()].filter((f) => f.startsWith('dmesg-')).length, 2045);
  });
});

describe('CPU count: ties and misfits are reported', () => {
  it('a wrapped ftrace zone confirms its size between counts that place the zones alike (5 vs 3)', async () => {
    // F=64K: 3 CPUs (q=21845) and 5 CPUs (q=13107) both start the kmsg zones 1 byte early; a
    // full zone of 5 CPUs also fits in a zone of 3.
    const F = 64 * KiB;
    const card = buildCard(5, 0, 0, F, 16 * KiB, { ftraceCpus: 0, kmsgZones: [0] });
    const q = 13107;
    const stream = ftraceRecords(
      Array.from({ length: 1000 }, (_, i) => ({ ip: 0xffffffff81000000n, parent: 0xffffffff81000010n, ts: BigInt(i) << 8n })),
      'le',
      64,
    );
    putCircularZone(card.region, 0, q, 'ftrace', stream, 'le');
    const d = detectCpuCount(await signatures(card.region), { pmsg: 0, console: 0, ftrace: F, kmsg: 16 * KiB }, card.region.length);
    assert.equal(d.decision, 'records', d.message);
    assert.equal(d.cpus, 5);
    assert.ok(d.fits.some((f) => f.cpus === 3));
    assert.match(d.message!, /confirms 5/);
  });
  it('only ftrace zone 0 and no kmsg record: says the count cannot be seen', async () => {
    const card = buildCard(6, 0, 0, 64 * KiB, 16 * KiB, { ftraceCpus: 1, kmsgZones: [] });
    const d = detectCpuCount(await signatures(card.region), { pmsg: 0, console: 0, ftrace: 64 * KiB, kmsg: 16 * KiB }, card.region.length);
    assert.equal(d.decision, 'no-evidence');
    assert.match(d.message!, /cannot be seen/);
  });
  it('a kmsg record where no count puts a zone: warns instead of guessing silently', async () => {
    const card = buildCard(1, 0, 0, 64 * KiB, 16 * KiB, { ftraceCpus: 1, kmsgZones: [] });
    // 3 bytes past where any count starts kmsg zone 1.
    putKmsgZone(card.region, 64 * KiB + 16 * KiB + 3, 16 * KiB - 16, { sec: 1n, nsec: 0, compressed: false, counter: 1, reason: 2, payload: Buffer.from('x') }, 'le', 'lp64');
    const params = sizesParams(0, 0, 64 * KiB, 16 * KiB);
    const { x } = await recordsOf(card.region, params);
    assert.equal(x.geometry.cpuDetection?.decision, 'none');
    assert.ok(x.warnings.some((w) => /no CPU count from 1 to 8192/.test(w)));
  });
  it('a given --cpus is used as given', async () => {
    const card = buildCard(3, 0, 0, 64 * KiB, 16 * KiB, { ftraceCpus: 3, kmsgZones: [0] });
    const { x } = await recordsOf(card.region, { ...sizesParams(0, 0, 64 * KiB, 16 * KiB), cpus: { value: 3, source: 'flag' } });
    assert.equal(x.geometry.cpus.source, 'flag');
    assert.equal(x.geometry.cpuDetection, undefined);
  });
});

describe('unaligned signature scan', () => {
  it('finds zones at every byte offset, in both byte orders, and nothing on the 4-byte grid twice', async () => {
    for (const e of ['le', 'be'] as const) {
      for (let shift = 0; shift < 4; shift++) {
        const region = new Uint8Array(64 * KiB);
        putCircularZone(region, 4096 + shift, 4096, 'console', Buffer.from('hello'), e);
        const un = await scanUnalignedSignatures(memorySource(region));
        const al = await scanSignatures(memorySource(region));
        assert.equal(un.length + al.length, 1, `${e} shift ${shift}`);
        assert.deepEqual((shift ? un : al)[0], { offset: 4096 + shift, type: 'console', endian: e, datalen: 5, start: 5 });
      }
    }
  });
  it('sees a signature across a 4 MiB chunk boundary', async () => {
    const region = new Uint8Array((4 << 20) + 8192);
    putCircularZone(region, (4 << 20) - 5, 4096, 'pmsg', Buffer.from('x'), 'le');
    const un = await scanUnalignedSignatures(memorySource(region));
    assert.deepEqual(
      un.map((f) => f.offset),
      [(4 << 20) - 5],
    );
  });
});
