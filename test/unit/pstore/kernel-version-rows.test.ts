/**
 * One test per row of the kernel version table (docs/kernel-versions.md): synthetic regions built
 * byte by byte (test/helpers/zone-builder.ts), read back "as Linux X would", asserting the exact
 * file names, the "Total N times" line and every `.enc.z` decision. The compressed payloads are
 * built independently of crashcart's codecs: node's zlib for deflate, and LZ4 blocks and zstd
 * frames written by hand from their format specifications, sized to fall just inside or just
 * outside each kernel's decompression buffer for 64 KiB zones (psinfo->bufsize 65484 on lp64).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { parseCmdline } from '../../../src/pstore/cmdline.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { parseKernelVersion } from '../../../src/pstore/kernel-version.js';
import type { RegionSource } from '../../../src/pstore/region-source.js';
import { memorySource } from '../../../src/pstore/region-source.js';
import { putKmsgZone } from '../../helpers/zone-builder.js';

const ZONE = 64 * 1024;
/** psinfo->bufsize for 64 KiB zones on lp64: 65536 - sizeof(psz_buffer) - sizeof(psz_kmsg_header). */
const BUFSIZE = ZONE - 12 - 40;
const GEOMETRY = 'pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0';

/** Kernel log text of exactly `length` bytes, starting like pstore_dump()'s "%s#%d Part%u\n". */
function dumpText(length: number, head = 'Panic#1 Part1\n'): Buffer {
  const lines: string[] = [head];
  let n = head.length;
  for (let i = 0; n < length; i++) {
    const line = `<6>[${(i * 0.0137).toFixed(6)}] pstore test line ${i % 113}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, length);
}

/** Text whose repeats lie 3000 bytes apart: raw deflate with a 32 KiB window references them, a 2 KiB window cannot. */
function farRepeats(length: number): Buffer {
  let x = 12345;
  const block = Buffer.alloc(3000);
  for (let i = 0; i < block.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    block[i] = 0x20 + ((x >>> 16) % 90);
  }
  const out = Buffer.alloc(length);
  for (let o = 0; o < length; o += block.length) block.copy(out, o);
  return out;
}

/** An LZ4 block (lz4_Block_format.md) decoding to `length` bytes: 13 literals, a match at offset 1, 5 closing literals. */
function lz4Block(length: number): { block: Uint8Array; text: Buffer } {
  const head = Buffer.from('Panic#1 Part1');
  const tail = Buffer.from('\nend\n');
  const match = length - head.length - tail.length;
  const bytes: number[] = [(head.length << 4) | Math.min(match - 4, 15), ...head, 0x01, 0x00];
  if (match - 4 >= 15) {
    let rest = match - 4 - 15;
    while (rest >= 255) {
      bytes.push(255);
      rest -= 255;
    }
    bytes.push(rest);
  }
  bytes.push(tail.length << 4, ...tail);
  const text = Buffer.concat([head, Buffer.alloc(match, head[head.length - 1]), tail]);
  return { block: Uint8Array.from(bytes), text };
}

/** A zstd frame (RFC 8878): single segment, 4-byte content size, a raw block with the dump header and an RLE block. */
function zstdFrame(length: number): { frame: Uint8Array; text: Buffer } {
  const head = Buffer.from('Panic#1 Part1\n');
  const rle = length - head.length;
  const f = Buffer.alloc(4 + 1 + 4 + 3 + head.length + 3 + 1);
  f.writeUInt32LE(0xfd2fb528, 0);
  f[4] = 0xa0; // Frame_Content_Size_flag 2 (4 bytes), Single_Segment_flag
  f.writeUInt32LE(length, 5);
  f.writeUIntLE((head.length << 3) | (0 << 1) | 0, 9, 3); // raw block, not last
  head.copy(f, 12);
  const o = 12 + head.length;
  f.writeUIntLE((rle << 3) | (1 << 1) | 1, o, 3); // RLE block, last
  f[o + 3] = 0x78; // 'x'
  return { frame: new Uint8Array(f), text: Buffer.concat([head, Buffer.alloc(rle, 0x78)]) };
}

interface Rec {
  compressed: boolean;
  stored: Uint8Array;
  /** What /sys/fs/pstore shows (or the decoded text beside an .enc.z). */
  text: Buffer;
  reason?: number;
  counter?: number;
}

function region(records: Rec[], zones = records.length + 1): RegionSource {
  const bytes = new Uint8Array(zones * ZONE);
  records.forEach((r, i) =>
    putKmsgZone(
      bytes,
      i * ZONE,
      ZONE,
      { sec: 1764300000n + BigInt(i), nsec: 0, compressed: r.compressed, counter: r.counter ?? i + 1, reason: r.reason ?? 1, payload: r.stored },
      'le',
      'lp64',
    ),
  );
  return memorySource(bytes);
}

async function readAs(src: RegionSource, version: string, cmdline = GEOMETRY) {
  return extractPstore(src, { params: parseCmdline(cmdline), kernelVersion: parseKernelVersion(version) });
}

/** The names /sys/fs/pstore would list, and checks that each decoded text is the one written. */
async function namesAs(src: RegionSource, records: Rec[], version: string, cmdline?: string): Promise<string[]> {
  const x = await readAs(src, version, cmdline);
  const dmesg = x.records.filter((r) => r.type === 'dmesg');
  assert.equal(dmesg.length, records.length, `${version}: one record per written zone`);
  for (const r of dmesg) {
    const want = records[r.id];
    if (!want.compressed) continue;
    if (r.file.endsWith('.enc.z')) {
      assert.ok(Buffer.from(r.content).equals(Buffer.from(want.stored)), `${version} ${r.file}: the stored bytes, as the kernel shows them`);
      assert.ok(Buffer.from(r.decoded!).equals(want.text), `${version} ${r.file}: decoded text kept beside it`);
      const beside = x.extraFiles.find((f) => f.file === r.file.replace(/\.enc\.z$/, '.decoded.txt'));
      assert.ok(beside && Buffer.from(beside.content).equals(want.text), `${version} ${r.file}: .decoded.txt written`);
      assert.ok(r.encodedBecause, `${version} ${r.file}: says why`);
    } else {
      assert.ok(Buffer.from(r.content).equals(want.text), `${version} ${r.file}: decoded text`);
    }
  }
  return dmesg.map((r) => r.file);
}

const ALL = ['5.8', '5.10', '5.11', '5.13', '5.14', '5.15', '5.16', '6.1', '6.5', '6.6', '6.12', '6.14'];
const crypto = (v: string) => parseKernelVersion(v).major === 5 || (parseKernelVersion(v).major === 6 && parseKernelVersion(v).minor <= 5);

describe('kernel version rows: dmesg records and headers', () => {
  it('"<Reason>: Total N times" and the file names are the same in every version', async () => {
    const plain = (reason: number, counter: number, body: string): Rec => ({ compressed: false, stored: Buffer.from(body), text: Buffer.from(body), reason, counter });
    const recs = [plain(2, 3, 'Oops#1 Part1\nBUG: kernel NULL pointer dereference\n'), plain(1, 1, 'Panic#2 Part1\nKernel panic\n'), plain(4, 0, 'Shutdown#3 Part1\nreboot\n')];
    for (const v of ALL) {
      const x = await readAs(region(recs), v);
      const dmesg = x.records.filter((r) => r.type === 'dmesg');
      assert.deepEqual(
        dmesg.map((r) => r.file),
        ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1', 'dmesg-pstore_blk-2'],
        v,
      );
      assert.deepEqual(
        dmesg.map((r) => Buffer.from(r.content).toString()),
        [
          'Oops: Total 3 times\nOops#1 Part1\nBUG: kernel NULL pointer dereference\n',
          'Panic: Total 1 times\nPanic#2 Part1\nKernel panic\n',
          'Shutdown: Total 0 times\nShutdown#3 Part1\nreboot\n',
        ],
        v,
      );
      assert.equal(dmesg[0].time?.iso, '2025-11-28T03:20:00.000Z', `${v}: mtime source (psz_kmsg_header.time)`);
      assert.equal(x.extraFiles.length, 0, v);
    }
  });
});

describe('kernel version rows: deflate (crypto API 5.8–6.5, zlib 6.6+)', () => {
  const w11 = (n: number): Rec => {
    const text = dumpText(n);
    return { compressed: true, stored: deflateRawSync(text, { windowBits: 11, level: 9 }), text };
  };
  const recs: Rec[] = [
    { compressed: false, stored: dumpText(300, 'Oops#1 Part1\n'), text: dumpText(300, 'Oops#1 Part1\n') },
    w11(20000),
    // 6.6+ zlib (window 15): ≤ 6.5 crypto deflate reads it too, in one zlib_inflate() call.
    (() => {
      const text = farRepeats(12000);
      return { compressed: true, stored: deflateRawSync(text, { windowBits: 15, level: 9 }), text };
    })(),
    w11(109140), // zbufsize_deflate(65484) = 65484 * 100 / 60
    w11(109141),
    w11(3 * BUFSIZE), // 6.6+: 3 * psinfo->bufsize
    w11(3 * BUFSIZE + 1),
  ];
  const src = region(recs);
  const n = (i: number, enc: boolean) => `dmesg-pstore_blk-${i}${enc ? '.enc.z' : ''}`;
  for (const v of ALL) {
    it(`Linux ${v}`, async () => {
      const old = crypto(v);
      assert.deepEqual(await namesAs(src, recs, v), [n(0, false), n(1, false), n(2, false), n(3, false), n(4, old), n(5, old), n(6, true)]);
    });
  }
  it('why, in the words of each era', async () => {
    const as61 = await readAs(src, '6.1');
    assert.match(as61.records[4].encodedBecause!, /into 109140 bytes \(zbufsize\)/);
    const as66 = await readAs(src, '6.6');
    assert.match(as66.records[6].encodedBecause!, /at most 3 × 65484 bytes/);
  });
  it('pstore.compress=none on 6.6+ and CONFIG_PSTORE_COMPRESS=n: no decompressor, every compressed record is .enc.z', async () => {
    for (const v of ['6.1', '6.6', '6.12']) {
      const names = await namesAs(src, recs, v, `${GEOMETRY} pstore.compress=none`);
      assert.deepEqual(names, [n(0, false), n(1, true), n(2, true), n(3, true), n(4, true), n(5, true), n(6, true)], v);
    }
  });
});

describe('kernel version rows: lz4 (crypto API until 6.5: LZ4_compressBound)', () => {
  const bound = BUFSIZE + Math.floor(BUFSIZE / 255) + 16; // 65756
  const recs: Rec[] = [bound, bound + 1].map((len) => {
    const { block, text } = lz4Block(len);
    return { compressed: true, stored: block, text };
  });
  const src = region(recs);
  for (const v of ALL) {
    it(`Linux ${v}`, async () => {
      const names = await namesAs(src, recs, v, `${GEOMETRY} pstore.compress=lz4`);
      if (crypto(v)) assert.deepEqual(names, ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1.enc.z']);
      else assert.deepEqual(names, ['dmesg-pstore_blk-0.enc.z', 'dmesg-pstore_blk-1.enc.z']);
    });
  }
  it('a 5.8–6.5 kernel built for deflate cannot read lz4', async () => {
    assert.deepEqual(await namesAs(src, recs, '5.10', `${GEOMETRY} pstore.compress=deflate`), ['dmesg-pstore_blk-0.enc.z', 'dmesg-pstore_blk-1.enc.z']);
  });
});

describe('kernel version rows: zstd (ZSTD_compressBound of lib/zstd 1.3.1 until 5.15, 1.4.10 from 5.16)', () => {
  // 5.16+: 65484 + 65484/256 + (131072 - 65484)/2048 = 65771; <= 5.15: 512 + 65484 + 65484/128 + 12 = 66519.
  const recs: Rec[] = [65771, 65772, 66519, 66520].map((len) => {
    const { frame, text } = zstdFrame(len);
    return { compressed: true, stored: frame, text };
  });
  const src = region(recs);
  const expected = (v: string): boolean[] => {
    if (!crypto(v)) return [true, true, true, true];
    const pre516 = parseKernelVersion(v).major === 5 && parseKernelVersion(v).minor < 16;
    return pre516 ? [false, false, false, true] : [false, true, true, true];
  };
  for (const v of ALL) {
    it(`Linux ${v}`, async () => {
      const names = await namesAs(src, recs, v, `${GEOMETRY} pstore.compress=zstd`);
      assert.deepEqual(
        names,
        expected(v).map((enc, i) => `dmesg-pstore_blk-${i}${enc ? '.enc.z' : ''}`),
      );
    });
  }
});

/** A region of `size` bytes that is all zeros except for the kmsg zones written into it. */
function sparseRegion(size: number, zones: Map<number, Uint8Array>): RegionSource {
  return {
    size,
    available: size,
    async read(offset, length) {
      const len = Math.max(0, Math.min(length, size - offset));
      const out = new Uint8Array(len);
      for (const [at, bytes] of zones) {
        const from = Math.max(at, offset);
        const to = Math.min(at + bytes.length, offset + len);
        if (from < to) out.set(bytes.subarray(from - at, to - at), from - offset);
      }
      return out;
    },
  };
}

function kmsgZone(counter: number, body: string): Uint8Array {
  const z = new Uint8Array(ZONE);
  putKmsgZone(z, 0, ZONE, { sec: 1764300000n + BigInt(counter), nsec: 0, compressed: false, counter, reason: 2, payload: Buffer.from(body) }, 'le', 'lp64');
  return z;
}

describe('kernel version rows: regions larger than 128 MiB (whole partition until 5.10, 128 MiB cap since 5.11)', () => {
  const SIZE = 136 * 1024 * 1024; // 2176 zones of 64 KiB; 2048 fit in 128 MiB
  const CAP = 128 * 1024 * 1024;
  const written = () =>
    sparseRegion(
      SIZE,
      new Map([
        [0, kmsgZone(2049, 'Oops#1 Part1\nnewest\n')],
        [CAP, kmsgZone(2048, 'Oops#1 Part1\npast 128 MiB\n')],
      ]),
    );
  const names = (x: Awaited<ReturnType<typeof extractPstore>>) => x.records.filter((r) => r.type === 'dmesg').map((r) => [r.file, r.kernelVisible]);

  it('Linux 5.8 and 5.10 use the whole region: 2176 kmsg zones, the record past 128 MiB is dmesg-pstore_blk-2048', async () => {
    for (const v of ['5.8', '5.10']) {
      const x = await readAs(written(), v);
      assert.equal(x.geometry.layout.kmsgCount, 2176, v);
      assert.deepEqual(
        names(x),
        [
          ['dmesg-pstore_blk-0', true],
          ['dmesg-pstore_blk-2048', true],
        ],
        v,
      );
      assert.equal(Buffer.from(x.records[1].content).toString(), 'Oops: Total 2048 times\nOops#1 Part1\npast 128 MiB\n');
      assert.ok(x.warnings.some((w) => /does not cap the region at 128 MiB/.test(w)));
    }
  });
  it('without --kernel-version the card tells: a kmsg signature past 128 MiB means a 5.8–5.10 writer', async () => {
    const x = await extractPstore(written(), { params: parseCmdline(GEOMETRY) });
    assert.equal(x.kernel.writer?.era, '5.8-5.10');
    assert.equal(x.geometry.layout.kmsgCount, 2176);
    assert.deepEqual(names(x), [
      ['dmesg-pstore_blk-0', true],
      ['dmesg-pstore_blk-2048', true],
    ]);
  });
  it('Linux 5.11+ reads the first 128 MiB only: the record past it is extracted but not shown by that kernel', async () => {
    for (const v of ['5.11', '6.1', '6.12']) {
      const x = await readAs(written(), v);
      assert.equal(x.kernel.writer?.era, '5.8-5.10', v);
      assert.deepEqual(
        names(x),
        [
          ['dmesg-pstore_blk-0', true],
          ['dmesg-pstore_blk-2048', false],
        ],
        v,
      );
      assert.ok(x.warnings.some((w) => /reads the first 128 MiB only/.test(w)));
    }
  });
  it('a region written only below 128 MiB keeps the 5.11+ layout when nothing says otherwise', async () => {
    const x = await extractPstore(sparseRegion(SIZE, new Map([[0, kmsgZone(1, 'Oops#1 Part1\nonly\n')]])), { params: parseCmdline(GEOMETRY) });
    assert.equal(x.geometry.layout.kmsgCount, 2048);
    assert.equal(x.kernel.writer, null);
    assert.deepEqual(names(x), [['dmesg-pstore_blk-0', true]]);
  });
});
