import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeLayout, normaliseSizes } from '../../../src/pstore/layout.js';

const K = 1024;
const layoutOf = (region: number, kib: { kmsg_size: number; pmsg_size: number; console_size: number; ftrace_size: number }, cpus = 1) => {
  const w: string[] = [];
  return computeLayout(region, normaliseSizes(kib, w), cpus, w);
};

describe('zone layout (worked examples of psz_alloc_zones)', () => {
  it('defaults with PMSG+CONSOLE+FTRACE, 4 CPUs, 1 MiB', () => {
    const l = layoutOf(1024 * K, { kmsg_size: 64, pmsg_size: 64, console_size: 64, ftrace_size: 64 }, 4);
    assert.deepEqual(l.errors, []);
    assert.deepEqual(
      l.zones.filter((z) => z.type !== 'dmesg').map((z) => [z.type, z.index, z.offset, z.size]),
      [
        ['pmsg', 0, 0, 64 * K],
        ['console', 0, 64 * K, 64 * K],
        ['ftrace', 0, 128 * K, 16 * K],
        ['ftrace', 1, 144 * K, 16 * K],
        ['ftrace', 2, 160 * K, 16 * K],
        ['ftrace', 3, 176 * K, 16 * K],
      ],
    );
    assert.equal(l.kmsgCount, 13);
    assert.equal(l.zones.find((z) => z.type === 'dmesg' && z.index === 12)!.offset, 192 * K + 12 * 64 * K);
  });
  it('kmsg only, 16 MiB: 256 zones from 0', () => {
    const l = layoutOf(16 * 1024 * K, { kmsg_size: 64, pmsg_size: -1, console_size: -1, ftrace_size: -1 });
    assert.equal(l.kmsgCount, 256);
    assert.equal(l.zones[0].offset, 0);
  });
  it('console 512 KiB + kmsg 64 KiB in 4 MiB: 56 kmsg zones from 512 KiB', () => {
    const l = layoutOf(4 * 1024 * K, { kmsg_size: 64, pmsg_size: 0, console_size: 512, ftrace_size: 0 });
    assert.equal(l.kmsgCount, 56);
    assert.equal(l.zones.find((z) => z.type === 'dmesg')!.offset, 512 * K);
  });
  it('1 GiB capped to 128 MiB, 8 CPUs', () => {
    const l = layoutOf(1024 * 1024 * K, { kmsg_size: 64, pmsg_size: 64, console_size: 64, ftrace_size: 64 }, 8);
    assert.equal(l.totalSize, 128 * 1024 * K);
    assert.equal(l.kmsgCount, 2045);
    assert.equal(l.ftraceCount, 8);
    assert.ok(l.warnings.some((w) => /capping/.test(w)));
  });
  it('ftrace not divisible by CPUs: kmsg zones start early (F=64K, n=6)', () => {
    const l = layoutOf(1024 * K, { kmsg_size: 64, pmsg_size: 0, console_size: 0, ftrace_size: 64 }, 6);
    const q = Math.floor(65536 / 6);
    assert.equal(l.ftraceCount, 6);
    assert.equal(l.zones.find((z) => z.type === 'dmesg')!.offset, 6 * q);
    assert.equal(64 * K - 6 * q, 4);
    assert.equal(l.kmsgCount, Math.floor((1024 - 64) / 64));
  });
  it('F < n² yields more ftrace zones than CPUs (F=4096, n=100)', () => {
    const l = layoutOf(1024 * K, { kmsg_size: 64, pmsg_size: 0, console_size: 0, ftrace_size: 4 }, 100);
    // q = 40 bytes is not a multiple of 512: the kernel refuses (size % 512 checks apply to F only) but computes 102 zones.
    assert.equal(l.ftraceCount, 102);
  });
  it('check_size() ALIGNs the KiB number, not the bytes', () => {
    const w: string[] = [];
    assert.deepEqual(normaliseSizes({ kmsg_size: 6, pmsg_size: 4097, console_size: 5000, ftrace_size: -1 }, w), { kmsg: 4096, pmsg: 8192, console: 5000 * 1024, ftrace: 0 });
    assert.equal(w.length, 2);
  });
  it('reports what the kernel rejects', () => {
    assert.match(layoutOf(1000, { kmsg_size: 4, pmsg_size: 0, console_size: 0, ftrace_size: 0 }).errors.join(), />= 4096/);
    assert.match(layoutOf(64 * K + 512, { kmsg_size: 4, pmsg_size: 0, console_size: 0, ftrace_size: 0 }).errors.join(), /multiple of 4096/);
    assert.match(layoutOf(64 * K, { kmsg_size: 0, pmsg_size: 0, console_size: 0, ftrace_size: 0 }).errors.join(), /all zone sizes are 0/);
    assert.match(layoutOf(64 * K, { kmsg_size: 64, pmsg_size: 64, console_size: 0, ftrace_size: 0 }).errors.join(), /too small|no room/);
    assert.match(layoutOf(64 * K, { kmsg_size: 4, pmsg_size: 128, console_size: 0, ftrace_size: 0 }).errors.join(), /no room for pmsg/);
  });
});
