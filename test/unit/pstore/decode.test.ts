/**
 * Decoding synthetic regions built from the kernel's struct layouts, in every ABI and byte order,
 * and the bad-input cases: each gives a warning, the best recoverable output and raw bytes.
 */
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { describe, it } from 'node:test';
import type { Endian, KmsgLayoutName } from '../../../src/pstore/abi.js';
import { decodeRegion } from '../../../src/pstore/decode.js';
import { computeLayout } from '../../../src/pstore/layout.js';
import { memorySource } from '../../../src/pstore/region-source.js';
import { ftraceRecords, putCircularZone, putKmsgZone, putZoneHeader } from '../../helpers/zone-builder.js';

const K = 1024;
// P=4K, C=4K, F=8K over 2 CPUs, K=8K in 64 KiB: kmsg zones at 16K + j*8K (6 zones).
const SIZES = { pmsg: 4 * K, console: 4 * K, ftrace: 8 * K, kmsg: 8 * K };
const layout = () => computeLayout(64 * K, SIZES, 2);
const text = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const str = (b: Uint8Array) => Buffer.from(b).toString('latin1');

const oopsText = 'Oops#1 Part1\n<4>[   12.345678] BUG: kernel NULL pointer dereference\n'.repeat(20);
const panicText = 'Panic#1 Part1\n<0>[   99.000001] Kernel panic - not syncing: test\n'.repeat(40);
const pmsgStream = text(Array.from({ length: 300 }, (_, i) => `pmsg line ${i}\n`).join('')); // > 4 KiB: wraps
const consoleStream = text('[    0.000000] Linux version 6.1\n[    1.000000] console line\n');

function buildRegion(e: Endian, lay: KmsgLayoutName) {
  const r = new Uint8Array(64 * K);
  putKmsgZone(r, 16 * K, 8 * K, { sec: 1700000000n, nsec: 123456789, compressed: false, counter: 3, reason: 2, payload: text(oopsText) }, e, lay);
  const z = deflateRawSync(Buffer.from(panicText), { windowBits: 11, level: 6 });
  putKmsgZone(r, 24 * K, 8 * K, { sec: 1700000100n, nsec: 5, compressed: true, counter: 1, reason: 1, payload: new Uint8Array(z) }, e, lay);
  putCircularZone(r, 0, 4 * K, 'pmsg', pmsgStream, e);
  putCircularZone(r, 4 * K, 4 * K, 'console', consoleStream, e);
  const bits = lay === 'lp64' ? 64 : 32;
  const base = bits === 64 ? 0xffffffff81000000n : 0xc0100000n;
  // Global stamp interleaved between CPUs; CPU in the low 8 bits of ts.
  const cpu0 = [0, 2, 3, 7].map((s) => ({ ip: base + BigInt(s * 16), parent: base + 0x1000n, ts: (BigInt(s) << 8n) | 0n }));
  const cpu1 = [1, 4, 5, 6].map((s) => ({ ip: base + BigInt(s * 16), parent: base + 0x2000n, ts: (BigInt(s) << 8n) | 1n }));
  putCircularZone(r, 8 * K, 4 * K, 'ftrace', ftraceRecords(cpu0, e, bits), e);
  putCircularZone(r, 12 * K, 4 * K, 'ftrace', ftraceRecords(cpu1, e, bits), e);
  return r;
}

describe('decodeRegion in every ABI and byte order', () => {
  for (const e of ['le', 'be'] as const) {
    for (const lay of ['lp64', 'ilp32', 'i386'] as const) {
      it(`${e} ${lay}: detects the ABI and decodes every zone type`, async () => {
        const d = await decodeRegion(memorySource(buildRegion(e, lay)), layout());
        assert.equal(d.abi.endian, e);
        // Little-endian lp64 and ilp32 headers are byte-identical; either reading is right.
        if (!(e === 'le' && lay !== 'i386')) assert.equal(d.abi.layout, lay);
        const files = new Map(d.records.map((r) => [r.file, r]));
        assert.deepEqual([...files.keys()], ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1', 'ftrace-pstore_blk-0', 'pmsg-pstore_blk-0', 'console-pstore_blk-0']);
        const oops = files.get('dmesg-pstore_blk-0')!;
        assert.equal(str(oops.content), `Oops: Total 3 times\n${oopsText}`);
        assert.equal(oops.time!.sec, '1700000000');
        assert.equal(oops.time!.nsec, 123456789);
        assert.equal(oops.counter, 3);
        const panic = files.get('dmesg-pstore_blk-1')!;
        assert.equal(str(panic.content), panicText);
        assert.equal(panic.algorithm, 'deflate');
        assert.equal(panic.reasonName, 'Panic');
        assert.equal(str(files.get('pmsg-pstore_blk-0')!.content), str(pmsgStream.subarray(pmsgStream.length - (4 * K - 12))));
        assert.equal(str(files.get('console-pstore_blk-0')!.content), str(consoleStream));
        const ftrace = str(files.get('ftrace-pstore_blk-0')!.content).trim().split('\n');
        assert.deepEqual(
          ftrace.map((l) => /^CPU:(\d) ts:(\d+)/.exec(l)!.slice(1).join('/')),
          ['0/0', '1/1', '0/2', '0/3', '1/4', '1/5', '1/6', '0/7'],
        );
        assert.match(
          ftrace[0],
          lay === 'lp64'
            ? /^CPU:0 ts:0 ffffffff81000000  ffffffff81001000  0xffffffff81000000 <- 0xffffffff81001000$/
            : /^CPU:0 ts:0 c0100000  c0101000  0xc0100000 <- 0xc0101000$/,
        );
        assert.deepEqual(d.counters, { oops: 3, panic: 1 });
        assert.equal(d.nextKmsgZone, 2);
        assert.deepEqual(d.warnings, []);
      });
    }
  }

  it('32-bit ARM ftrace with the CPU in the low bits of ip (PSTORE_CPU_IN_IP=3)', async () => {
    const r = new Uint8Array(64 * K);
    const recs = (cpu: number, stamps: number[]) => stamps.map((s) => ({ ip: 0xc0063828n | BigInt(cpu), parent: 0xc0063b94n, ts: BigInt(s) }));
    putCircularZone(r, 8 * K, 4 * K, 'ftrace', ftraceRecords(recs(0, [10, 12, 13]), 'le', 32), 'le');
    putCircularZone(r, 12 * K, 4 * K, 'ftrace', ftraceRecords(recs(1, [11, 14]), 'le', 32), 'le');
    putKmsgZone(r, 16 * K, 8 * K, { sec: 1n, nsec: 0, compressed: false, counter: 1, reason: 2, payload: text('x') }, 'le', 'ilp32');
    const d = await decodeRegion(memorySource(r), layout(), { layout: 'ilp32' });
    assert.deepEqual(d.ftraceFormat, { endian: 'le', layout: 'ilp32', cpuInIp: 3 });
    const lines = str(d.records.find((x) => x.type === 'ftrace')!.content)
      .trim()
      .split('\n');
    assert.equal(lines[0], 'CPU:0 ts:10 c0063828  c0063b94  0xc0063828 <- 0xc0063b94');
    assert.equal(lines[1], 'CPU:1 ts:11 c0063829  c0063b94  0xc0063829 <- 0xc0063b94');
    assert.equal(lines.length, 5);
  });

  it('keeps erased kmsg zones out of the records but counts them', async () => {
    const r = new Uint8Array(64 * K);
    putKmsgZone(r, 16 * K, 8 * K, { sec: 5n, nsec: 0, compressed: false, counter: 7, reason: 2, payload: text('old') }, 'le', 'lp64');
    putZoneHeader(r, 16 * K, 'dmesg', 0, 0, 'le'); // what the kernel's unlink writes
    const d = await decodeRegion(memorySource(r), layout());
    assert.equal(d.records.length, 0);
    assert.equal(d.zones.find((z) => z.type === 'dmesg' && z.index === 0)!.state, 'erased');
    assert.deepEqual(d.counters, { oops: 7, panic: 0 });
    assert.equal(d.nextKmsgZone, 1);
  });
});

describe('bad input: warnings, best recoverable output, raw bytes kept', () => {
  const base = () => buildRegion('le', 'lp64');

  it('kmsg datalen beyond the zone: ignored like the kernel, raw kept', async () => {
    const r = base();
    putZoneHeader(r, 16 * K, 'dmesg', 9000, 0, 'le');
    const d = await decodeRegion(memorySource(r), layout());
    const z = d.zones.find((x) => x.type === 'dmesg' && x.index === 0)!;
    assert.equal(z.state, 'overtop');
    assert.equal(z.raw!.length, 8 * K);
    assert.ok(!d.records.some((x) => x.file === 'dmesg-pstore_blk-0'));
    assert.ok(d.warnings.some((w) => /exceeds/.test(w)));
  });

  it('wrong kmsg magic: ignored, raw kept', async () => {
    const r = base();
    r[16 * K + 12] ^= 0xff;
    const d = await decodeRegion(memorySource(r), layout());
    assert.equal(d.zones.find((x) => x.type === 'dmesg' && x.index === 0)!.state, 'invalid');
    assert.ok(d.zones.find((x) => x.index === 0 && x.type === 'dmesg')!.raw);
  });

  it('kmsg datalen shorter than its header: header line only, flagged', async () => {
    const r = base();
    putZoneHeader(r, 16 * K, 'dmesg', 20, 0, 'le');
    const d = await decodeRegion(memorySource(r), layout());
    const rec = d.records.find((x) => x.file === 'dmesg-pstore_blk-0')!;
    assert.equal(str(rec.content), 'Oops: Total 3 times\n');
    assert.ok(rec.warnings.some((w) => /shorter than/.test(w)));
  });

  it('corrupt compressed payload: .enc.z with the stored bytes', async () => {
    const r = base();
    for (let i = 24 * K + 52; i < 24 * K + 52 + 64; i++) r[i] ^= 0x5a;
    const d = await decodeRegion(memorySource(r), layout());
    const rec = d.records.find((x) => x.id === 1 && x.type === 'dmesg')!;
    assert.equal(rec.file, 'dmesg-pstore_blk-1.enc.z');
    assert.equal(rec.content.length, rec.storedBytes);
    assert.ok(rec.warnings.some((w) => /could not be decompressed/.test(w)));
  });

  it('datalen < start in a circular zone: the kernel shows nothing; we recover and say so', async () => {
    const r = base();
    putZoneHeader(r, 4 * K, 'console', 10, 40, 'le');
    const d = await decodeRegion(memorySource(r), layout());
    assert.match(d.kernelRecoveryFails!, /datalen 10 < start 40/);
    const con = d.records.find((x) => x.type === 'console')!;
    assert.equal(con.content.length, 40);
    assert.ok(d.records.every((x) => !x.kernelVisible));
    assert.ok(d.zones.find((x) => x.type === 'console')!.raw);
  });

  it('truncated image: what is there is decoded, the cut zone is flagged', async () => {
    const full = base();
    const d = await decodeRegion(memorySource(full.subarray(0, 24 * K + 4000), 64 * K), layout());
    const cut = d.records.find((x) => x.id === 1 && x.type === 'dmesg');
    assert.ok(cut, 'partial compressed record still reported');
    assert.ok(d.zones.some((z) => z.state === 'truncated'));
    assert.ok(d.records.some((x) => x.file === 'dmesg-pstore_blk-0' && str(x.content).startsWith('Oops: Total 3 times')));
    assert.ok(d.kernelRecoveryFails);
  });
});
