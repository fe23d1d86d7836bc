/**
 * Fuzz-style robustness: fixture regions mutated with random bytes, truncation and header
 * fields at their extremes. Every run must end in records or a typed CrashcartError — never
 * another exception — and terminate (each case runs under the test's timeout).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CrashcartError } from '../../../src/errors.js';
import { parseCmdline } from '../../../src/pstore/cmdline.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { memorySource } from '../../../src/pstore/region-source.js';
import { kernelFixtures } from '../../helpers/kernel-fixtures.js';

/** mulberry32: small seeded PRNG so failures reproduce. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXTREMES = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 11, 12, 39, 40, 41, 4095, 4096, 65535, 65536];

function mutate(src: Uint8Array, rand: () => number, zoneStarts: number[]): Uint8Array {
  const b = src.slice();
  const dv = new DataView(b.buffer);
  const kind = Math.floor(rand() * 4);
  const n = 1 + Math.floor(rand() * 8);
  for (let i = 0; i < n; i++) {
    const z = zoneStarts[Math.floor(rand() * zoneStarts.length)];
    switch (kind) {
      case 0: // random bytes anywhere
        b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        break;
      case 1: // header fields (datalen, start, kmsg fields) at extremes
        dv.setUint32(z + 4 * (1 + Math.floor(rand() * 12)), EXTREMES[Math.floor(rand() * EXTREMES.length)], true);
        break;
      case 2: // a burst of garbage inside a zone (payload corruption)
        for (let j = 0; j < 64; j++) b[Math.min(b.length - 1, z + 12 + Math.floor(rand() * 4096))] = Math.floor(rand() * 256);
        break;
      case 3: // compressed flag / reason bytes flipped
        b[z + 36] = Math.floor(rand() * 3);
        b[z + 44] = Math.floor(rand() * 8);
        break;
    }
  }
  return b;
}

describe('fuzzed kernel-written regions', () => {
  for (const fx of kernelFixtures().filter((f) => !f.cmdline.includes('vda2'))) {
    it(`${fx.name}: 60 mutations and truncations never throw anything but typed errors`, { timeout: 120_000 }, async () => {
      const disk = fx.disk();
      const params = parseCmdline(fx.cmdline);
      const rand = rng(fx.name.length * 7919);
      // Zone starts: every 4 KiB boundary in use (headers live there for all fixture geometries).
      const zoneStarts = Array.from({ length: Math.min(256, disk.length / 4096) }, (_, i) => i * 4096);
      let outcomes = 0;
      for (let i = 0; i < 60; i++) {
        let input = mutate(disk, rand, zoneStarts);
        if (i % 5 === 4) input = input.subarray(0, Math.floor(rand() * input.length));
        const useParams = i % 3 === 0 ? {} : params;
        try {
          const x = await extractPstore(memorySource(input, disk.length), { params: useParams });
          for (const r of x.records) assert.ok(r.content instanceof Uint8Array);
          outcomes++;
        } catch (e) {
          assert.ok(e instanceof CrashcartError, `mutation ${i}: ${(e as Error)?.stack}`);
          outcomes++;
        }
      }
      assert.equal(outcomes, 60);
    });
  }
});
