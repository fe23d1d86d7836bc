/**
 * Which records a given reading kernel shows as `.enc.z`, checked against real kernels' output:
 * records written by 6.12 (zlib, window 15) read back by 6.1 (crypto deflate, window 11: shown),
 * and lz4 records written by 6.1 read back by 6.12 (deflate only: `.enc.z`). The decoded text
 * written beside each `.enc.z` must equal what the writing kernel itself showed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { UsageError } from '../../../src/errors.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { parseCmdline } from '../../../src/pstore/cmdline.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { cryptoBufferSize, kernelCannotDecompress, parseKernelVersion, refersBeyond2KiB } from '../../../src/pstore/kernel-version.js';
import { locatePstoreRegion } from '../../../src/pstore/locate-region.js';
import { kernelFixtures } from '../../helpers/kernel-fixtures.js';

const fixture = (name: string) => kernelFixtures().find((f) => f.name === name)!;

async function extractAs(name: string, version?: string) {
  const fx = fixture(name);
  const params = parseCmdline(fx.cmdline);
  const dev = new MemoryDevice(fx.disk(), { readOnly: true, blockSize: 512, alignment: 512 });
  const region = await locatePstoreRegion(dev, { blkdev: params.blkdev?.value });
  const x = await extractPstore(region.source, { params, kernelVersion: version ? parseKernelVersion(version) : undefined });
  return { fx, x };
}

describe('kernel versions', () => {
  it('parses releases and refuses kernels without pstore/blk', () => {
    assert.deepEqual(parseKernelVersion('6.1.0-56-amd64'), { major: 6, minor: 1, text: '6.1.0-56-amd64' });
    assert.equal(parseKernelVersion('v5.10.220').minor, 10);
    assert.throws(() => parseKernelVersion('5.7'), UsageError);
    assert.throws(() => parseKernelVersion('latest'), UsageError);
  });
  it('zbufsize() of the 5.8-6.5 crypto API', () => {
    const v61 = parseKernelVersion('6.1');
    assert.equal(cryptoBufferSize('deflate', 65484, v61), 109140);
    assert.equal(cryptoBufferSize('deflate', 5000, v61), Math.floor(500000 / 45));
    // include/linux/lzo.h: ((x) + ((x) / 16) + 64 + 3 + 2)
    assert.equal(cryptoBufferSize('lzo', 65484, v61), 65484 + 4092 + 69);
    assert.equal(cryptoBufferSize('lz4', 65484, v61), 65484 + 256 + 16);
    assert.equal(cryptoBufferSize('842', 65484, v61), 65484);
    // lib/zstd 1.3.1 (<= 5.15): FSE_COMPRESSBOUND(x) + 12 = 512 + x + (x >> 7) + 12; 1.4.10 (>= 5.16): ZSTD_COMPRESSBOUND
    assert.equal(cryptoBufferSize('zstd', 65484, parseKernelVersion('5.15')), 65484 + 511 + 524);
    assert.equal(cryptoBufferSize('zstd', 65484, parseKernelVersion('5.16')), 65484 + 255 + 32);
    assert.equal(cryptoBufferSize('zstd', 65484, v61), 65484 + 255 + 32);
  });
  it('decides like decompress_record() of each era', () => {
    const k = (v: string, compress?: string) => ({ version: parseKernelVersion(v), compress });
    const n = 4000 * 9;
    assert.equal(kernelCannotDecompress(k('6.12'), 'deflate', n, 65484), null);
    assert.match(kernelCannotDecompress(k('6.12'), 'lz4', n, 65484)!, /deflate only/);
    assert.equal(kernelCannotDecompress(k('6.12', 'lz4'), 'deflate', n, 65484), null, '6.6+: any other compress= falls back to deflate');
    assert.match(kernelCannotDecompress(k('6.12', 'none'), 'deflate', n, 65484)!, /no decompressor/);
    assert.match(kernelCannotDecompress(k('6.12'), 'deflate', 3 * 4000 + 1, 4000)!, /at most 3/);
    assert.equal(kernelCannotDecompress(k('6.1'), 'deflate', n, 65484), null);
    assert.match(kernelCannotDecompress(k('6.1', 'lz4'), 'deflate', n, 65484)!, /pstore.compress=lz4/);
    assert.match(kernelCannotDecompress(k('6.1', 'none'), 'deflate', n, 65484)!, /no decompressor/);
    assert.match(kernelCannotDecompress(k('5.10'), 'deflate', 200000, 65484)!, /zbufsize/);
  });
  it('tells a 6.6+ deflate stream (32 KiB window) from a 5.8-6.5 one (2 KiB window) by its back-references', () => {
    const text = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i % 97} ${'x'.repeat(i % 13)}\n`).join(''));
    assert.equal(refersBeyond2KiB(deflateRawSync(text, { windowBits: 11 }), 1 << 20), false);
    assert.equal(refersBeyond2KiB(deflateRawSync(text, { windowBits: 15 }), 1 << 20), true);
    // Repeats 3000 bytes apart inside the first 16 KiB of output: found although zlib's default chunk would hide them.
    let seed = 1;
    const block = Buffer.from(Array.from({ length: 3000 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff));
    const far = Buffer.concat([block, block, block]);
    assert.equal(refersBeyond2KiB(deflateRawSync(far, { windowBits: 15 }), 1 << 20), true);
    assert.equal(refersBeyond2KiB(deflateRawSync(far, { windowBits: 11 }), 1 << 20), false);
  });
});

describe('records as another kernel would show them (kernel-written fixtures)', () => {
  it('6.12-written deflate (window 15) read back by 6.1: shown decoded, as the 6.12 kernel showed it', async () => {
    // 6.1's crypto deflate inflates a record in one zlib_inflate() call into zbufsize(65484) = 109140
    // bytes: back-references past its 2 KiB window are inside that call's output and accepted.
    const { fx, x } = await extractAs('stock612-whole', '6.1');
    assert.equal(x.kernel.writer?.era, '6.6+');
    assert.deepEqual(x.records.map((r) => r.file).sort(), [...fx.readout.keys()].sort());
    for (const r of x.records) assert.ok(Buffer.from(r.content).equals(fx.readout.get(r.file)!), r.file);
    assert.equal(x.extraFiles.length, 0);
  });
  it('6.1-written lz4 read back by 6.12: .enc.z; read back by 6.1: the kernel readout', async () => {
    const as612 = await extractAs('c61-lz4-wrap', '6.12');
    assert.equal(as612.x.kernel.writer?.era, '5.8-6.5');
    const dmesg = as612.x.records.filter((r) => r.type === 'dmesg');
    assert.ok(dmesg.length > 0 && dmesg.every((r) => r.file.endsWith('.enc.z') && /deflate only/.test(r.encodedBecause!)));
    for (const r of dmesg) assert.ok(Buffer.from(r.decoded!).equals(as612.fx.readout.get(r.file.replace(/\.enc\.z$/, ''))!));
    const as61 = await extractAs('c61-lz4-wrap', '6.1.192');
    assert.deepEqual(as61.x.records.map((r) => r.file).sort(), [...as61.fx.readout.keys()].sort());
  });
  it('6.1-written deflate (window 11) read back by 6.12: shown decoded, as the kernel would', async () => {
    const { fx, x } = await extractAs('stock61-gpt', '6.12');
    assert.deepEqual(x.records.map((r) => r.file).sort(), [...fx.readout.keys()].sort());
    assert.equal(x.extraFiles.length, 0);
  });
});
