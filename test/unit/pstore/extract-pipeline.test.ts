/**
 * Extraction decodes while the region is still being read: over a (simulated) USB reader the
 * first records are decompressed before the last READ command of the region is issued, with the
 * geometry given and detected alike, and the records are those of a zone-by-zone read. Also: the
 * per-card codec choice, the decoding on worker threads (same records as on the calling thread,
 * and decoded here when the workers fail) and the one-pass signature scan fed in pieces.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { decodeAhead } from '../../../src/pstore/decode-ahead.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { KmsgDecodePool } from '../../../src/pstore/kmsg-decode-pool.js';
import { KmsgDecompressor, decompressPreferring } from '../../../src/pstore/kmsg-decompressor.js';
import { computeLayout } from '../../../src/pstore/layout.js';
import type { PstoreParams } from '../../../src/pstore/params.js';
import { deviceSource, memorySource, streamRegion } from '../../../src/pstore/region-source.js';
import { SignatureScanner, scanAllSignatures } from '../../../src/pstore/scan.js';
import { putCircularZone, putKmsgZone } from '../../helpers/zone-builder.js';
import { MemoryCard } from '../../sim/sim-reader.js';
import { openSim } from '../../sim/helpers.js';
import { fixture, prng } from './codecs/helpers.js';

const MiB = 1 << 20;
const READ10 = 0x28;

/** A 16 MiB region (pmsg, console, 254 kmsg zones of 64 KiB), every kmsg zone holding a deflated dump. */
function region(): { bytes: Uint8Array; dumps: number } {
  const size = 16 * MiB;
  const layout = computeLayout(size, { kmsg: 65536, pmsg: 65536, console: 65536, ftrace: 0 }, 1);
  const bytes = new Uint8Array(size);
  let dumps = 0;
  for (const z of layout.zones) {
    if (z.type === 'dmesg') {
      const text = Buffer.from(Array.from({ length: 400 }, (_, i) => `<6>[${z.index}.${i}] zone ${z.index} line ${i}\n`).join(''));
      putKmsgZone(
        bytes,
        z.offset,
        z.size,
        { sec: 1700000000n + BigInt(z.index), nsec: 0, compressed: true, counter: z.index + 1, reason: 2, payload: deflateRawSync(text) },
        'le',
        'lp64',
      );
      dumps++;
    } else putCircularZone(bytes, z.offset, z.size, z.type as 'pmsg' | 'console', Buffer.from(`${z.type} text\n`), 'le');
  }
  return { bytes, dumps };
}

const GIVEN: PstoreParams = {
  kmsg_size: { value: 64, source: 'flag' },
  pmsg_size: { value: 64, source: 'flag' },
  console_size: { value: 64, source: 'flag' },
  ftrace_size: { value: 0, source: 'flag' },
};

/** Extracts over the simulated reader, noting how many READ commands had been issued when the first record was decoded. */
async function extractOverUsb(bytes: Uint8Array, params: PstoreParams, readStrategy?: 'zones') {
  const card = new MemoryCard(bytes.length / 512);
  card.data.set(bytes);
  let reads = 0;
  let readsAtFirstDecode: number | undefined;
  let decoded = 0;
  const { dev } = await openSim({ luns: [card], onCbw: (c) => void (c.cdb[0] === READ10 && reads++) }, { maxTransferBytes: 120 * 1024 });
  try {
    const x = await extractPstore(deviceSource(dev, 0, dev.size), {
      params,
      readStrategy,
      onProgress: (p) => {
        if (p.recordsDecoded > 0) readsAtFirstDecode ??= reads;
        decoded = p.recordsDecoded;
      },
    });
    return { x, reads, readsAtFirstDecode, decoded };
  } finally {
    await dev.close();
  }
}

describe('decoding while the region is read', () => {
  const { bytes, dumps } = region();

  it('geometry given: the first dump is decoded before the last READ is issued', async () => {
    const r = await extractOverUsb(bytes, GIVEN);
    assert.ok(r.readsAtFirstDecode !== undefined, 'records were decoded ahead');
    assert.ok(r.readsAtFirstDecode < r.reads, `first record decoded after ${r.readsAtFirstDecode} of ${r.reads} READ commands`);
    assert.equal(r.decoded, dumps, 'every dump decoded while reading');
    assert.equal(r.x.records.filter((x) => x.algorithm === 'deflate').length, dumps);
  });

  it('geometry detected: signatures scanned and dumps decoded as the chunks arrive', async () => {
    const r = await extractOverUsb(bytes, {});
    assert.ok(r.readsAtFirstDecode !== undefined && r.readsAtFirstDecode < r.reads, `first record decoded after ${r.readsAtFirstDecode} of ${r.reads} READ commands`);
    assert.equal(r.decoded, dumps);
    assert.equal(r.x.geometry.kmsg_size.value, 64);
  });

  it('the records equal those of a zone-by-zone read', async () => {
    const streamed = (await extractOverUsb(bytes, GIVEN)).x;
    const zones = (await extractOverUsb(bytes, GIVEN, 'zones')).x;
    assert.equal(streamed.records.length, dumps + 2);
    assert.deepEqual(
      streamed.records.map((r) => [r.file, Buffer.from(r.content).toString('latin1')]),
      zones.records.map((r) => [r.file, Buffer.from(r.content).toString('latin1')]),
    );
  });
});

describe('codec chosen once per card', () => {
  it('after the first record, the codec that decoded it is tried first', () => {
    const d = new KmsgDecompressor();
    const lz4 = fixture('vectors/dmesg.lz4');
    const first = d.decompress(lz4, 100, 4 * MiB);
    assert.ok(first.ok && first.algorithm === 'lz4');
    assert.deepEqual(
      first.attempts.map((a) => a.algorithm),
      ['deflate'],
      'detection tried deflate first',
    );
    const second = d.decompress(fixture('vectors/tiny.lz4'), 200, 4 * MiB);
    assert.ok(second.ok && second.algorithm === 'lz4');
    assert.deepEqual(second.attempts, [], 'lz4 tried alone first');
    // A record of another codec still decodes, through the whole detection.
    const other = d.decompress(fixture('vectors/tiny.deflate-w15'), 300, 4 * MiB);
    assert.ok(other.ok && other.algorithm === 'deflate');
  });

  it('a payload decoded once is not decoded again', () => {
    const d = new KmsgDecompressor();
    const p = fixture('vectors/dmesg.deflate-w15');
    assert.equal(d.decompress(p, 4096, 4 * MiB), d.decompress(p, 4096, 4 * MiB));
    assert.notEqual(d.decompress(p, 4096, 4 * MiB), d.decompress(p, 4096, 8 * MiB), 'another output limit decodes anew');
  });
});

/**
 * A 16 MiB region whose 254 kmsg zones hold, in region order, an LZ4 dump first (so LZ4 becomes
 * the codec tried first), then deflate dumps, with LZ4 dumps, payloads that no codec decodes and
 * uncompressed dumps among them.
 */
function mixedRegion(): Uint8Array {
  const size = 16 * MiB;
  const layout = computeLayout(size, { kmsg: 65536, pmsg: 65536, console: 65536, ftrace: 0 }, 1);
  const bytes = new Uint8Array(size);
  const rnd = prng(11);
  const lz4 = fixture('vectors/dmesg.lz4');
  for (const z of layout.zones) {
    if (z.type !== 'dmesg') continue;
    const i = z.index;
    const text = Buffer.from(Array.from({ length: 300 }, (_, k) => `<4>[${i}.${k}] zone ${i} line ${k}\n`).join(''));
    let payload: Uint8Array = deflateRawSync(text);
    let compressed = true;
    if (i % 50 === 0) payload = lz4;
    else if (i % 37 === 5) payload = Uint8Array.from({ length: 3000 }, () => Math.floor(rnd() * 256));
    else if (i % 41 === 7) [payload, compressed] = [text, false];
    putKmsgZone(bytes, z.offset, z.size, { sec: 1700000000n + BigInt(i), nsec: 0, compressed, counter: i + 1, reason: 1, payload }, 'le', 'lp64');
  }
  return bytes;
}

describe('decoding on worker threads', () => {
  const bytes = mixedRegion();
  const view = (x: Awaited<ReturnType<typeof extractPstore>>) => ({
    records: x.records.map((r) => [r.file, r.algorithm, r.warnings, Buffer.from(r.content).toString('latin1')]),
    zones: x.zones.map((z) => [z.index, z.state, z.problem]),
    warnings: x.warnings,
  });

  it('gives the records decoding on the calling thread gives, geometry given and detected', async () => {
    for (const params of [GIVEN, {}]) {
      const here = await extractPstore(memorySource(bytes), { params, decodeThreads: 0 });
      const pooled = await extractPstore(memorySource(bytes), { params, decodeThreads: 2 });
      assert.deepEqual(view(pooled), view(here));
      const algorithms = new Set(here.records.map((r) => String(r.algorithm)));
      assert.deepEqual([...algorithms].sort(), ['deflate', 'lz4', 'null'], 'the region mixes codecs and failures');
      assert.ok(here.records.some((r) => r.file.endsWith('.enc.z')));
    }
  });

  it('a batch decodes as decompressPreferring does, in order', async () => {
    const pool = new KmsgDecodePool(2);
    try {
      const payloads = [fixture('vectors/dmesg.lz4'), fixture('vectors/dmesg.deflate-w15'), new Uint8Array([1, 2, 3]), fixture('vectors/tiny.zst')];
      const jobs = payloads.map((payload) => ({ payload, maxOutput: 4 * MiB }));
      const got = await pool.decode(jobs, 'lz4');
      assert.deepEqual(
        got,
        payloads.map((p) => decompressPreferring(p, 4 * MiB, 'lz4')),
      );
    } finally {
      await pool.close();
    }
  });

  it('when the workers fail, every record is decoded on the calling thread', async () => {
    const pool = new KmsgDecodePool(1);
    await pool.close(); // every batch handed to it is rejected
    const decompressor = new KmsgDecompressor();
    const stream = streamRegion(memorySource(bytes), bytes.length);
    let decoded = 0;
    await decodeAhead(stream, bytes.length, { decompressor, pool, scanner: new SignatureScanner(bytes.length), onProgress: (p) => (decoded = p.recordsDecoded) });
    const here = await extractPstore(memorySource(bytes), { params: GIVEN, decodeThreads: 0 });
    const compressed = here.records.filter((r) => r.compressed).length;
    assert.equal(decoded, compressed);
    for (const z of here.zones.filter((z) => z.kmsg?.compressed)) {
      assert.ok(decompressor.has(z.offset + 12 + 40, z.datalen - 40, 4 * MiB), `zone ${z.index} decoded`);
    }
  });
});

describe('signature scan in one pass over pieces', () => {
  it('finds what one scan of the whole region finds, at aligned and unaligned offsets, wherever the pieces end', async () => {
    const bytes = new Uint8Array(3 * MiB + 100);
    const dv = new DataView(bytes.buffer);
    const put = (at: number, sig: number, le: boolean, kmsg: boolean) => {
      dv.setUint32(at, sig, le);
      dv.setInt32(at + 4, 100, le);
      dv.setInt32(at + 8, 0, le);
      if (kmsg) dv.setUint32(at + 12, 0x4dfc3ae5, le);
    };
    // Around every piece boundary used below, aligned and not, both byte orders.
    const expected: number[] = [];
    for (let i = 1; i < 3 * 16; i++) {
      const at = i * 65536 - 8 - (i % 7);
      put(at, [0x43474244, 0x43474243, 0x43474246][i % 3], i % 2 === 0, i % 3 === 0);
      expected.push(at);
    }
    const whole = await scanAllSignatures(memorySource(bytes));
    assert.deepEqual(
      whole.map((f) => f.offset),
      expected,
    );
    for (const piece of [7, 12, 16, 4093, 65536, 65536 * 3, 1 << 20]) {
      const s = new SignatureScanner(bytes.length);
      for (let base = 0; base < bytes.length; base += piece) s.push(base, bytes.subarray(base, base + piece));
      assert.deepEqual(s.found, whole, `pieces of ${piece} bytes`);
    }
  });
});
