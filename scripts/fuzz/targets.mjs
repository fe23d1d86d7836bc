// Fuzz targets: each builds a corpus once (`setup`), generates input number i deterministically
// from a seeded PRNG (`gen`), and runs the code under test on it (`run`). Everything comes from
// the compiled tree (dist/), so `npm run build` (tsc) must have run.
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { crc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { mix, mutateBytes, mutateText, rng, INTERESTING32 } from './mutate.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const dist = join(root, 'dist');
const imp = (p) => import(join(dist, p));

const { CrashcartError } = await imp('src/errors.js');
const { extractPstore } = await imp('src/pstore/extract.js');
const { memorySource } = await imp('src/pstore/region-source.js');
const { parseCmdline } = await imp('src/pstore/cmdline.js');
const { computeLayout, normaliseSizes } = await imp('src/pstore/layout.js');
const { planGeometry } = await imp('src/pstore/plan-geometry.js');
const { loadSymbolTable, inferKaslrSlide } = await imp('src/symbols/index.js');
const { parseKconfig } = await imp('src/pstore/kconfig.js');
const { readPartitionTable } = await imp('src/partition/partition-table.js');
const { selectRegion, parseBlkdevSpec } = await imp('src/partition/select-region.js');
const { locatePstoreRegion } = await imp('src/pstore/locate-region.js');
const { MemoryDevice } = await imp('src/blockdev/memory-device.js');
const { parseBmap } = await imp('src/flash/bmap.js');
const { validateProfile, allProfileParams, partitionRequests, mbrPartitionRequests, layoutMinimumSize } = await imp('src/profile/board-profile.js');
const { layoutPartitions } = await imp('src/partition/gpt-write.js');
const { layoutMbrPartitions } = await imp('src/partition/mbr-write.js');
const zb = await imp('test/helpers/zone-builder.js');
const { readZipDirectory, selectImageEntry } = await imp('src/flash/zip-directory.js');
const { buildZip } = await imp('test/helpers/zip-builder.js');

export { CrashcartError };

const SIG = { dmesg: 0x43474244, console: 0x43474246, ftrace: 0x43474247, pmsg: 0x43474243 };
const TEXT_WORDS = [
  'Oops',
  'Panic',
  'BUG:',
  'kernel',
  'NULL',
  'pointer',
  'dereference',
  'RIP:',
  'Call Trace:',
  '<TASK>',
  'psz_zone_write',
  '[pstore_zone]',
  'Kernel Offset: 0x1e000000 from 0xffffffff81000000',
  '[<c0063b94>] (cpu_startup_entry+0x1b8/0x1e0)',
  '\n',
  '\t',
  ' ',
];

function words(r, n) {
  let s = '';
  for (let i = 0; i < n; i++) s += r.pick(TEXT_WORDS) + (r.chance(0.7) ? ' ' : '');
  return s;
}

const src = (value, source = 'cmdline') => ({ value, source });

// ------------------------------------------------------------------------------------------
// pstore regions

function kernelFixtureDirs() {
  const base = join(root, 'test/fixtures/kernel');
  return readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(base, d.name));
}

/** Byte offsets of the header fields of a zone at `off` (zone header, then kmsg header for each ABI). */
function zoneFields(off, kmsg) {
  const f = [off, off + 4, off + 8];
  if (kmsg) f.push(off + 12, off + 16, off + 20, off + 24, off + 28, off + 32, off + 36, off + 40, off + 44, off + 48);
  return f;
}

function layoutFields(layout, limit) {
  const fields = [];
  const hot = [];
  for (const z of layout.zones) {
    if (z.offset >= limit) continue;
    fields.push(...zoneFields(z.offset, z.type === 'dmesg'));
    hot.push([z.offset, z.offset + 64]);
  }
  return { fields, hot };
}

async function pstoreCorpus() {
  const fixtures = [];
  for (const dir of kernelFixtureDirs()) {
    const disk = new Uint8Array(gunzipSync(readFileSync(join(dir, 'disk.img.gz'))));
    const cmdline = readFileSync(join(dir, 'cmdline.txt'), 'utf8');
    const params = parseCmdline(cmdline);
    const dev = new MemoryDevice(disk, { readOnly: true });
    const region = await locatePstoreRegion(dev, { blkdev: params.blkdev?.value });
    const bytes = (await region.source.read(0, region.size)).slice();
    const sizes = normaliseSizes(
      {
        kmsg_size: params.kmsg_size?.value ?? 64,
        pmsg_size: params.pmsg_size?.value ?? 0,
        console_size: params.console_size?.value ?? 0,
        ftrace_size: params.ftrace_size?.value ?? 0,
      },
      [],
    );
    const layout = computeLayout(bytes.length, sizes, 2, []);
    const { fields, hot } = layoutFields(layout, bytes.length);
    // Smaller partitions of the same geometry: the front-end zones and the first m kmsg zones.
    const front = sizes.pmsg + sizes.console + sizes.ftrace;
    // the fixtures' ftrace zones were written by 2-CPU kernels
    const p = { ...params, cpus: src(2) };
    delete p.blkdev;
    fixtures.push({ name: dir.split('/').pop(), bytes, params: p, fields, hot, front, kmsg: sizes.kmsg });
  }
  let symbols = null;
  const ks = join(root, 'test/fixtures/kernel/c61-full-deflate/kallsyms.gz');
  if (existsSync(ks)) symbols = loadSymbolTable(readFileSync(ks));
  // Synthetic regions are built once (deterministically) and mutated per input.
  const pool = Array.from({ length: 256 }, (_, k) => syntheticRegion(rng(mix(0x5eed, k))));
  return { fixtures, symbols, pool, donors: fixtures.map((f) => f.bytes.subarray(0, 65536)) };
}

/** A small synthetic region, zones written as the kernel writes them, then mutated. */
function syntheticRegion(r) {
  const e = r.chance(0.8) ? 'le' : 'be';
  const abi = r.pick(['lp64', 'lp64', 'ilp32', 'i386']);
  const kib = { kmsg_size: r.pick([4, 4, 8, 16]), pmsg_size: r.pick([0, 0, 4, 8]), console_size: r.pick([0, 4, 8]), ftrace_size: r.pick([0, 0, 4, 8, 16]) };
  const cpus = 1 + r.int(4);
  const kmsgCount = 1 + r.int(6);
  const regionSize = (kib.pmsg_size + kib.console_size + kib.ftrace_size + kib.kmsg_size * kmsgCount) * 1024 + r.pick([0, 0, 4096]);
  const sizes = normaliseSizes(kib, []);
  const layout = computeLayout(regionSize, sizes, cpus, []);
  const region = new Uint8Array(regionSize);
  let sec = BigInt(1700000000 + r.int(1000));
  for (const z of layout.zones) {
    const kind = r.int(10);
    if (kind === 0) continue; // never written
    if (z.type === 'dmesg') {
      const text = Buffer.from(`Oops#1 Part1\n${words(r, 5 + r.int(200))}`, 'latin1');
      const bs = z.size - 12 - (abi === 'i386' ? 28 : 40);
      let payload = text;
      let compressed = false;
      const c = r.int(4);
      if (c === 1) {
        payload = deflateRawSync(text);
        compressed = true;
      } else if (c === 2) {
        payload = Uint8Array.from({ length: 4 + r.int(200) }, () => r.int(256));
        if (r.chance(0.3)) payload.set([0x28, 0xb5, 0x2f, 0xfd], 0);
        compressed = true;
      }
      if (payload.length > bs) payload = payload.subarray(0, bs);
      zb.putKmsgZone(region, z.offset, z.size, { sec: sec++, nsec: r.int(1e9), compressed, counter: r.int(5), reason: r.int(6), payload }, e, abi);
      if (kind === 1) zb.putZoneHeader(region, z.offset, 'dmesg', 0, 0, e); // erased by unlink
    } else if (z.type === 'ftrace') {
      const bits = abi === 'lp64' ? 64 : 32;
      const n = r.int(Math.floor((z.size - 12) / (bits === 64 ? 24 : 16)) * 2 + 1);
      const recs = Array.from({ length: n }, (_, i) => ({
        ip: BigInt(bits === 64 ? '0xffffffff81000000' : '0xc0000000') + BigInt(r.int(0x100000)),
        parent: BigInt(bits === 64 ? '0xffffffff81000000' : '0xc0000000') + BigInt(r.int(0x100000)),
        ts: (BigInt(i) << 8n) | BigInt(z.index),
      }));
      zb.putCircularZone(region, z.offset, z.size, 'ftrace', zb.ftraceRecords(recs, e, bits), e);
    } else {
      const t = z.type === 'pmsg' && r.chance(0.5) ? androidPmsg(r) : Buffer.from(words(r, r.int((3 * z.size) / 8)), 'latin1');
      zb.putCircularZone(region, z.offset, z.size, z.type, t, e);
    }
  }
  const { fields, hot } = layoutFields(layout, regionSize);
  const params = {};
  for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size']) params[k] = src(kib[k]);
  params.cpus = src(cpus);
  return { bytes: region, params, fields, hot, abi: { endian: e, layout: abi } };
}

function androidPmsg(r) {
  const parts = [];
  for (let i = 0, n = 1 + r.int(20); i < n; i++) {
    const msg = Buffer.from(`\x04tag\0${words(r, 1 + r.int(5))}\0`, 'latin1');
    const h = Buffer.alloc(7 + 11);
    h[0] = r.chance(0.9) ? 0x6c : r.int(256);
    h.writeUInt16LE(r.chance(0.8) ? 18 + msg.length : r.pick([0, 1, 7, 0xffff]), 1);
    h.writeUInt16LE(r.int(65536), 3);
    h.writeUInt16LE(r.int(65536), 5);
    h[7] = r.int(8);
    h.writeUInt16LE(r.int(65536), 8);
    h.writeUInt32LE(1700000000 + r.int(1000), 10);
    h.writeUInt32LE(r.int(1e9), 14);
    parts.push(h, msg);
  }
  return Buffer.concat(parts);
}

function randomParams(r, base) {
  // Detection (any size missing) scores ~250 000 candidate geometries: ~40–300 ms per region,
  // so it gets ~5% of the inputs; the decoder proper gets the rest.
  const choice = r.int(40);
  if (choice < 32) return base; // the geometry the region was written with
  if (choice < 33) return {}; // detect everything
  const partial = choice === 33;
  const p = {};
  for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size']) if (!partial || r.chance(0.6)) p[k] = src(r.pick([-1, 0, 1, 4, 6, 8, 16, 32, 64, 128, 5000]));
  if (!partial || r.chance(0.5)) p.cpus = src(r.pick([1, 2, 3, 4, 6, 8, 100]));
  if (r.chance(0.2)) p.ftrace_cpu_in_ip = src(r.pick([0, 1, 3]));
  if (r.chance(0.3)) p.compress = src(r.pick(['deflate', 'lz4', 'lz4hc', 'lzo', 'zstd', '842', 'none', 'bogus']));
  return p;
}

export const pstore = {
  name: 'pstore',
  describe: 'pstore region decoding: extractPstore() (geometry, decode, codecs, ftrace, pmsg) on mutated kernel-written and synthetic regions',
  setup: pstoreCorpus,
  gen(r, c) {
    let abi;
    if (r.chance(0.25)) {
      const f = r.pick(c.fixtures);
      // Whole kernel-written regions (decoding one costs up to ~60 ms, detection ~300 ms), or —
      // most of the time — the same geometry on a smaller partition: the pmsg/console/ftrace
      // zones and the first m kmsg zones, which is where the kernel wrote its records.
      const whole = r.chance(0.15);
      const len = whole ? f.bytes.length : Math.min(f.bytes.length, f.front + f.kmsg * (1 + r.int(8)));
      const p = r.chance(whole ? 0.9 : 0.85) ? f.params : randomParams(r, f.params);
      const bytes = mutateBytes(f.bytes.subarray(0, len), r, { fields: f.fields, hot: f.hot, donors: c.donors, maxOps: 12, allowGrow: false });
      return { bytes, declared: len, params: p, symbols: r.chance(0.05), fixture: f.name };
    }
    const s = r.chance(0.1) ? syntheticRegion(r) : r.pick(c.pool);
    if (r.chance(0.3)) abi = r.chance(0.5) ? s.abi : { endian: r.pick(['le', 'be']), layout: r.pick(['lp64', 'ilp32', 'i386']) };
    const bytes = r.chance(0.05) ? s.bytes : mutateBytes(s.bytes, r, { fields: s.fields, hot: s.hot, donors: c.donors, maxOps: 10 });
    const declared = r.chance(0.8) ? s.bytes.length : bytes.length;
    return { bytes, declared, params: randomParams(r, s.params), abi, symbols: r.chance(0.05) };
  },
  async run(x, c) {
    const res = await extractPstore(memorySource(x.bytes, x.declared), {
      params: x.params,
      abi: x.abi,
      androidPmsg: true,
      symbols: x.symbols ? c.symbols : undefined,
    });
    for (const rec of res.records) if (!(rec.content instanceof Uint8Array)) throw new Error('record content is not bytes');
  },
  save: (x) => ({ bin: x.bytes, meta: { declared: x.declared, params: x.params, abi: x.abi, symbols: x.symbols, fixture: x.fixture } }),
  load: (bin, meta) => ({ ...meta, bytes: new Uint8Array(bin) }),
};

// ------------------------------------------------------------------------------------------
// partition tables

function fixGptCrcs(b, sector) {
  // Recompute the CRCs of both headers (and their entry arrays) from the mutated fields, so
  // mutations get past the CRC checks into the parser proper.
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (const lba of [1, Math.floor(b.length / sector) - 1]) {
    const h = lba * sector;
    if (h + 92 > b.length) continue;
    const entryLba = Number(dv.getBigUint64(h + 72, true));
    const count = dv.getUint32(h + 80, true);
    const size = dv.getUint32(h + 84, true);
    const start = entryLba * sector;
    const len = count * size;
    if (len > 0 && len < 1 << 22 && start >= 0 && start + len <= b.length) dv.setUint32(h + 88, crc32(b.subarray(start, start + len)) >>> 0, true);
    const hs = dv.getUint32(h + 12, true);
    if (hs >= 92 && hs <= sector && h + hs <= b.length) {
      const copy = b.slice(h, h + hs);
      copy.fill(0, 16, 20);
      dv.setUint32(h + 16, crc32(copy) >>> 0, true);
    }
  }
}

async function partitionCorpus() {
  const images = [];
  const pdir = join(root, 'test/fixtures/partition');
  for (const f of readdirSync(pdir).filter((n) => n.endsWith('.img.gz'))) {
    images.push({ name: f, bytes: new Uint8Array(gunzipSync(readFileSync(join(pdir, f)))), sector: f.includes('4k') ? 4096 : 512 });
  }
  images.push({ name: 'stock61-gpt', bytes: new Uint8Array(gunzipSync(readFileSync(join(root, 'test/fixtures/kernel/stock61-gpt/disk.img.gz')))), sector: 512 });
  for (const im of images) {
    const s = im.sector;
    const end = im.bytes.length;
    // MBR entries, both GPT headers and the first entries of both arrays
    im.hot = [
      [440, 512],
      [s, s + 96],
      [2 * s, 2 * s + 512],
      [end - s, end - s + 96],
      [end - 33 * 512, end - 33 * 512 + 512],
    ];
    im.fields = [454, 458, 470, 474, 486, 490, 502, 506];
    for (const h of [s, end - s]) for (const o of [12, 16, 24, 28, 32, 36, 40, 44, 48, 52, 72, 76, 80, 84, 88]) im.fields.push(h + o);
    for (let e = 0; e < 4; e++) for (const o of [32, 36, 40, 44, 48]) im.fields.push(2 * s + e * 128 + o);
  }
  return { images };
}

export const partition = {
  name: 'partition',
  describe: 'GPT/MBR parsing: readPartitionTable(), selectRegion() and locatePstoreRegion() on mutated tables (CRCs fixed up most of the time)',
  setup: partitionCorpus,
  gen(r, c) {
    const im = r.pick(c.images);
    const bytes = mutateBytes(im.bytes, r, { fields: im.fields, hot: im.hot, maxOps: 8, allowGrow: false });
    if (r.chance(0.7)) fixGptCrcs(bytes, im.sector);
    return { bytes, blockSize: r.chance(0.8) ? im.sector : r.pick([512, 4096]), locate: r.chance(0.3), image: im.name };
  },
  async run(x) {
    const dev = new MemoryDevice(x.bytes, { readOnly: true, blockSize: x.blockSize });
    const table = await readPartitionTable(dev);
    if (table) {
      for (const p of table.partitions.slice(0, 8)) {
        try {
          selectRegion(dev, table, { kind: 'partition', partition: p.number });
          if (p.name) selectRegion(dev, table, { kind: 'partition', partition: p.name });
        } catch (e) {
          if (!(e instanceof CrashcartError)) throw e;
        }
      }
    }
    if (x.locate) await locatePstoreRegion(dev, {});
  },
  save: (x) => ({ bin: x.bytes, meta: { blockSize: x.blockSize, locate: x.locate, image: x.image } }),
  load: (bin, meta) => ({ ...meta, bytes: new Uint8Array(bin) }),
};

// ------------------------------------------------------------------------------------------
// bmap files

function bmapCorpus() {
  const dir = join(root, 'test/fixtures/flash');
  const texts = readdirSync(dir)
    .filter((f) => f.endsWith('.bmap'))
    .map((f) => readFileSync(join(dir, f), 'latin1'));
  // a 1.4 variant and one without the file checksum
  texts.push(texts[0].replace('version="2.0"', 'version="1.4"'));
  texts.push(texts[0].replace(/<BmapFileChecksum>[^<]*<\/BmapFileChecksum>/, ''));
  return { texts };
}

const BMAP_NUMBERS = ['0', '1', '-1', '4096', '4095', '512', '9007199254740991', '9007199254740993', '99999999999999999999', '1e3', '0x10', '', ' ', '18446744073709551616'];

function fixBmapChecksum(text) {
  const m = /<(BmapFileChecksum|BmapFileSHA1)>\s*([0-9a-fA-F]+)\s*<\//.exec(text);
  if (!m) return text;
  const type = /<ChecksumType>\s*([a-z0-9]+)\s*</.exec(text)?.[1] ?? 'sha1';
  const zeroed = text.replace(m[2], '0'.repeat(m[2].length));
  let sum;
  try {
    sum = createHash(type).update(Buffer.from(zeroed, 'latin1')).digest('hex');
  } catch {
    return text;
  }
  return sum.length === m[2].length ? text.replace(m[2], sum) : text;
}

export const bmap = {
  name: 'bmap',
  describe: 'bmap XML parsing: parseBmap() on mutated bmaptool files (file checksum fixed up most of the time)',
  setup: bmapCorpus,
  gen(r, c) {
    let t = r.pick(c.texts);
    const k = r.int(6);
    if (k <= 4) {
      // structural: numbers in tags and ranges
      t = t.replace(/>(\s*)(\d+)(\s*)</g, (all, a, n, b) => (r.chance(0.15) ? `>${a}${r.pick(BMAP_NUMBERS)}${b}<` : all));
      t = t.replace(/(\d+)-(\d+)/g, (all, a, b) => (r.chance(0.1) ? `${r.pick(BMAP_NUMBERS)}-${r.pick(BMAP_NUMBERS)}` : all));
      if (r.chance(0.3)) t = t.replace(/version="[^"]*"/, `version="${r.pick(['1.0', '1.2', '1.3', '1.4', '2.0', '3.0', '2', 'x', '1.99999999999999999999'])}"`);
      if (r.chance(0.2)) t = t.replace(/<ChecksumType>[^<]*</, `<ChecksumType>${r.pick(['sha1', 'sha256', 'md5', 'blake2b', 'SHA256', '', 'x'.repeat(50)])}<`);
      if (r.chance(0.2)) {
        const lines = t.split('\n');
        const i = r.int(lines.length);
        lines.splice(r.int(lines.length), 0, lines[i]);
        t = lines.join('\n');
      }
    }
    if (r.chance(0.15)) {
      // non-ASCII text (UTF-8), some of which changes length under toLowerCase()/toUpperCase()
      const u = Buffer.from(r.pick(['\u0130', '\u1e9e', '\ufb00', '\u00df', '\u03a3', '\u{1f600}', '\ufffd', '\u212a']).repeat(1 + r.int(50)), 'utf8').toString('latin1');
      const at = r.int(t.length + 1);
      t = t.slice(0, at) + u + t.slice(at);
    }
    if (k >= 3) t = mutateText(t, r, { maxOps: k === 5 ? 6 : 2, hot: [[t.indexOf('<bmap'), t.length]] });
    if (r.chance(0.6)) t = fixBmapChecksum(t);
    return { bytes: Buffer.from(t, 'latin1') };
  },
  run(x) {
    parseBmap(x.bytes, 'fuzz.bmap');
  },
  save: (x) => ({ bin: x.bytes, meta: {} }),
  load: (bin) => ({ bytes: new Uint8Array(bin) }),
};

// ------------------------------------------------------------------------------------------
// zip archives (the central directory and end records, read before an image is streamed)

function zipCorpus() {
  const data = Buffer.from('crashcart zip fuzz image '.repeat(40));
  const archives = [
    readFileSync(join(root, 'test/fixtures/flash/disk.img.zip')),
    buildZip([{ name: 'image.img', data }]),
    buildZip(
      [
        { name: 'd/', data: new Uint8Array(0), method: 0 },
        { name: 'd/image.img', data, descriptor: 'signed', zip64: true },
      ],
      { zip64End: true },
    ),
    buildZip([
      { name: 'a.img', data, method: 0 },
      { name: '__MACOSX/._a.img', data: data.subarray(0, 10) },
      { name: 'b.img', data, unixMode: 0o120777 },
    ]),
    buildZip([]),
  ];
  return {
    archives: archives.map((a) => {
      const bytes = new Uint8Array(a);
      // the directory and the end records: the last ~400 bytes of every archive here
      return { bytes, hot: [[Math.max(0, bytes.length - 400), bytes.length]] };
    }),
  };
}

export const zip = {
  name: 'zip',
  describe: 'zip central directory: readZipDirectory() and selectImageEntry() on mutated archives (Info-ZIP, ZIP64 end records, descriptors)',
  setup: zipCorpus,
  gen(r, c) {
    const a = r.pick(c.archives);
    return { bytes: mutateBytes(a.bytes, r, { hot: a.hot, maxOps: 8 }) };
  },
  async run(x) {
    const b = x.bytes;
    // a FileHandle over the bytes: readZipDirectory only calls read(buffer, offset, length, position)
    const fh = {
      async read(buf, off, len, pos) {
        const n = Math.max(0, Math.min(len, b.length - pos));
        if (n > 0) buf.set(b.subarray(pos, pos + n), off);
        return { bytesRead: n };
      },
    };
    const dir = await readZipDirectory(fh, b.length, 'fuzz.zip');
    try {
      selectImageEntry(dir, 'fuzz.zip');
    } catch (e) {
      if (!(e instanceof CrashcartError)) throw e;
    }
  },
  save: (x) => ({ bin: x.bytes, meta: {} }),
  load: (bin) => ({ bytes: new Uint8Array(bin) }),
};

// ------------------------------------------------------------------------------------------
// board profiles

const JSON_VALUES = [
  null,
  true,
  false,
  0,
  -1,
  1,
  2,
  511,
  512,
  513,
  4096,
  8192,
  8193,
  131072,
  131073,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e308,
  -1e308,
  0.5,
  -0.0,
  '',
  'rest',
  '64MiB',
  '1 MiB',
  '0x1000',
  '99999999999999999999MiB',
  '1.5K',
  '-1',
  'linux',
  'esp',
  'pstore',
  'nope',
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  '/dev/mmcblk0p2',
  'PARTLABEL=pstore',
  'PARTUUID=00000000-0000-0000-0000-000000000000/PARTNROFF=-5',
  'pstore_blk.kmsg_size=99999999999 nr_cpus=0',
  [],
  {},
  [1, 2],
  { a: 1 },
];

function mutateJson(v, r, depth = 0) {
  if (depth > 6) return v;
  if (Array.isArray(v)) {
    const a = v.map((x) => (r.chance(0.3) ? mutateJson(x, r, depth + 1) : x));
    if (r.chance(0.1) && a.length) a.splice(r.int(a.length), 1);
    if (r.chance(0.1) && a.length) a.push(structuredClone(r.pick(a)));
    if (r.chance(0.05)) a.push(r.pick(JSON_VALUES));
    return a;
  }
  if (v && typeof v === 'object') {
    const o = { ...v };
    for (const k of Object.keys(o)) {
      if (r.chance(0.25)) o[k] = mutateJson(o[k], r, depth + 1);
      else if (r.chance(0.05)) delete o[k];
    }
    if (r.chance(0.05)) o[r.pick(['pstore', 'cpus', 'kmsg_size', 'start', 'size', 'image', 'bmap', 'extra'])] = r.pick(JSON_VALUES);
    return o;
  }
  if (r.chance(0.7)) return structuredClone(r.pick(JSON_VALUES));
  if (typeof v === 'number') return v + r.int(9) - 4;
  if (typeof v === 'string') return mutateText(v, r, { maxOps: 3 });
  return v;
}

function profileCorpus() {
  const dir = join(root, 'hw-profiles/boards');
  const profiles = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
  return { profiles };
}

export const profile = {
  name: 'profile',
  describe: 'board profiles: JSON text → validateProfile(), then the pstore parameters, zone plan and partition layout the commands derive from it',
  setup: profileCorpus,
  gen(r, c) {
    const p = r.pick(c.profiles);
    let text;
    if (r.chance(0.8)) {
      const m = mutateJson(p, r);
      if (m && typeof m === 'object' && !Array.isArray(m)) m.name = r.chance(0.9) ? 'fuzz' : m.name;
      text = JSON.stringify(m);
    } else text = mutateText(JSON.stringify(p, null, 1), r, { maxOps: 4 });
    return { text, deviceSize: r.pick([64 << 20, 8 << 20, 1 << 30, 2 ** 40, 4096]) };
  },
  run(x) {
    let json;
    try {
      json = JSON.parse(x.text);
    } catch {
      return; // readProfileJson() turns syntax errors into BadInputError
    }
    const p = validateProfile(json, '/nonexistent/fuzz.json');
    const params = allProfileParams(p);
    const region = p.partitions && typeof p.pstore?.partition === 'number' ? p.partitions[p.pstore.partition - 1]?.size : undefined;
    planGeometry(typeof region === 'number' ? region : 2 << 20, params);
    if (p.partitions) {
      const deviceSize = Math.max(layoutMinimumSize(p, 512), x.deviceSize);
      if (p.table === 'mbr') layoutMbrPartitions(mbrPartitionRequests(p.partitions), { sectorSize: 512, deviceSize, alignment: p.alignment });
      else layoutPartitions(partitionRequests(p.partitions), { sectorSize: 512, deviceSize, alignment: p.alignment });
    }
  },
  save: (x) => ({ bin: Buffer.from(x.text, 'latin1'), meta: { deviceSize: x.deviceSize } }),
  load: (bin, meta) => ({ text: Buffer.from(bin).toString('latin1'), deviceSize: meta.deviceSize }),
};

// ------------------------------------------------------------------------------------------
// kernel command lines

const CMD_VALUES = [
  '-1',
  '0',
  '1',
  '4',
  '6',
  '64',
  '5000',
  '131072',
  '131073',
  '134217728',
  '0x7fffffff',
  '0x80000000',
  '9223372036854775807',
  '9223372036854775808',
  '99999999999999999999',
  '08',
  '0x',
  '+5',
  '-0x10',
  '1e3',
  '',
  '"',
  '""',
  '8192',
  '8193',
  'y',
  'deflate',
  'zstd',
  '/dev/mmcblk0p9',
  'PARTUUID=1234abcd-02/PARTNROFF=1',
  '179:9',
];
const CMD_KEYS = [
  'pstore_blk.kmsg_size',
  'pstore_blk.pmsg_size',
  'pstore_blk.console_size',
  'pstore_blk.ftrace_size',
  'pstore_blk.max_reason',
  'pstore_blk.blkdev',
  'pstore.compress',
  'mmcpstore.sector_offset',
  'mmcpstore.sector_count',
  'nr_cpus',
  'possible_cpus',
  'pstore-blk.kmsg-size',
  'quiet',
];

function cmdlineCorpus() {
  const lines = kernelFixtureDirs().map((d) => readFileSync(join(d, 'cmdline.txt'), 'utf8'));
  for (const p of profileCorpus().profiles) if (typeof p.cmdline === 'string') lines.push(p.cmdline);
  return { lines };
}

export const cmdline = {
  name: 'cmdline',
  describe: 'kernel command lines: parseCmdline(), planGeometry() of the parameters on random region sizes, parseBlkdevSpec()',
  setup: cmdlineCorpus,
  gen(r, c) {
    let t = r.pick(c.lines);
    if (r.chance(0.7)) {
      const toks = t.split(/\s+/).filter(Boolean);
      for (let i = 0, n = 1 + r.int(4); i < n; i++) {
        const tok = `${r.pick(CMD_KEYS)}=${r.pick(CMD_VALUES)}`;
        if (toks.length && r.chance(0.5)) toks[r.int(toks.length)] = tok;
        else toks.push(tok);
      }
      t = toks.join(r.pick([' ', '  ', '\t', '\n']));
    }
    if (r.chance(0.4)) t = mutateText(t, r, { maxOps: 4 });
    return { text: t, regionSize: r.pick([0, 4095, 4096, 65536, 1 << 20, 5222400, 128 << 20, 1 << 30, 2 ** 40]) };
  },
  run(x) {
    const p = parseCmdline(x.text);
    planGeometry(x.regionSize, p);
    if (p.blkdev) parseBlkdevSpec(p.blkdev.value);
  },
  save: (x) => ({ bin: Buffer.from(x.text, 'latin1'), meta: { regionSize: x.regionSize } }),
  load: (bin, meta) => ({ text: Buffer.from(bin).toString('latin1'), regionSize: meta.regionSize }),
};

// ------------------------------------------------------------------------------------------
// symbol tables

function symbolsCorpus() {
  const tables = [];
  for (const d of kernelFixtureDirs()) {
    const ks = join(d, 'kallsyms.gz');
    if (!existsSync(ks)) continue;
    const text = gunzipSync(readFileSync(ks)).toString('latin1');
    tables.push(text.split('\n'));
  }
  // a System.map-style table (nm -n output with the kallsyms_* table symbols)
  const sm = [
    'ffffffff81000000 T _stext',
    'ffffffff81000000 T startup_64',
    'ffffffff81000100 t foo',
    'ffffffff81000200 T kallsyms_names',
    'ffffffff81000300 W weak',
    'ffffffff81001000 T _etext',
    'ffffffff81002000 D _end',
  ];
  tables.push(sm);
  return { tables };
}

export const symbols = {
  name: 'symbols',
  describe: 'symbol tables: loadSymbolTable() on mutated slices of real /proc/kallsyms dumps (plain and gzip), lookups, inferKaslrSlide()',
  setup: symbolsCorpus,
  gen(r, c) {
    const lines = r.pick(c.tables);
    const n = 1 + r.int(Math.min(lines.length, 1500));
    const from = r.int(lines.length - n + 1);
    let part = lines.slice(from, from + n);
    if (r.chance(0.3)) part.unshift(...lines.slice(0, 20)); // keep _stext & co
    let bytes = Buffer.from(part.join('\n'), 'latin1');
    if (r.chance(0.8)) bytes = mutateBytes(bytes, r, { maxOps: 8 });
    if (r.chance(0.2)) {
      bytes = gzipSync(bytes);
      if (r.chance(0.3)) bytes = mutateBytes(bytes, r, { maxOps: 2 });
    }
    const opts = {};
    if (r.chance(0.2)) opts.bits = r.pick([32, 64]);
    if (r.chance(0.2)) opts.format = r.pick(['auto', 'kallsyms', 'system.map']);
    if (r.chance(0.2)) opts.kallsymsAll = r.chance(0.5);
    if (r.chance(0.2)) opts.slide = BigInt(r.pick(INTERESTING32)) << BigInt(r.int(33));
    if (r.chance(0.1)) opts.pageSize = r.pick([4096, 16384, 65536, 1, 3]);
    const probes = Array.from({ length: 8 }, () => r.int(0x100000000) * 0x100000000 + r.int(0x100000000));
    return { bytes, opts, probes, dmesg: words(r, 20) };
  },
  run(x) {
    const t = loadSymbolTable(x.bytes, x.opts);
    for (const p of x.probes) {
      const a = BigInt(p);
      t.ps(a);
      t.pS(a);
      t.lookup(a);
    }
    t.coreAddressOf('_stext');
    inferKaslrSlide(x.dmesg, t);
    t.withSlide(0x1000n);
  },
  save: (x) => ({ bin: x.bytes, meta: { opts: { ...x.opts, slide: x.opts.slide?.toString() }, probes: x.probes, dmesg: x.dmesg } }),
  load: (bin, meta) => ({
    bytes: new Uint8Array(bin),
    opts: { ...meta.opts, slide: meta.opts.slide === undefined ? undefined : BigInt(meta.opts.slide) },
    probes: meta.probes,
    dmesg: meta.dmesg,
  }),
};

// ------------------------------------------------------------------------------------------
// kernel configs

const KCONFIG_BASE = [
  'CONFIG_64BIT=y',
  'CONFIG_X86_64=y',
  'CONFIG_ARM=y',
  'CONFIG_AEABI=y',
  'CONFIG_NR_CPUS=4',
  'CONFIG_ARM_THUMB=y',
  'CONFIG_PSTORE=y',
  'CONFIG_PSTORE_BLK=y',
  'CONFIG_PSTORE_BLK_KMSG_SIZE=64',
  'CONFIG_PSTORE_PMSG=y',
  'CONFIG_PSTORE_BLK_PMSG_SIZE=64',
  '# CONFIG_PSTORE_CONSOLE is not set',
  'CONFIG_PSTORE_FTRACE=y',
  'CONFIG_PSTORE_BLK_FTRACE_SIZE=64',
  'CONFIG_PSTORE_BLK_MAX_REASON=2',
  'CONFIG_PSTORE_BLK_BLKDEV="/dev/mmcblk0p9"',
  'CONFIG_PSTORE_COMPRESS_DEFAULT="deflate"',
  'CONFIG_CPU_BIG_ENDIAN=y',
];

export const kconfig = {
  name: 'kconfig',
  describe: 'kernel configs: parseKconfig() on mutated .config text (plain and gzip)',
  setup: () => ({}),
  gen(r) {
    const lines = KCONFIG_BASE.filter(() => r.chance(0.6)).map((l) => (r.chance(0.2) ? l.replace(/=.*/, `=${r.pick(CMD_VALUES)}`) : l));
    let bytes = Buffer.from(lines.join('\n'), 'utf8');
    if (r.chance(0.5)) bytes = mutateBytes(bytes, r, { maxOps: 4 });
    if (r.chance(0.2)) bytes = gzipSync(bytes);
    return { bytes };
  },
  run(x) {
    parseKconfig(x.bytes);
  },
  save: (x) => ({ bin: x.bytes, meta: {} }),
  load: (bin) => ({ bytes: new Uint8Array(bin) }),
};

/** Checks the harness itself (`--target selftest`): n=3 throws a TypeError, n=4 a typed error, n=5 never ends (FUZZ_SELFTEST_HANG), n=6 is slow once (FUZZ_SELFTEST_SLOW). */
export const selftest = {
  name: 'selftest',
  describe: 'harness check: one untyped exception, one typed error, one hang',
  setup: () => ({}),
  gen: (r) => ({ n: r.int(8) }),
  run(x) {
    if (x.n === 3) throw new TypeError('deliberate untyped exception');
    if (x.n === 4) throw new CrashcartError('deliberate typed error');
    if (x.n === 5 && process.env.FUZZ_SELFTEST_HANG) for (;;);
    // slow only the first time (FUZZ_SELFTEST_SLOW names a marker file): a busy machine, not a hang
    if (x.n === 6 && process.env.FUZZ_SELFTEST_SLOW && !existsSync(process.env.FUZZ_SELFTEST_SLOW)) {
      writeFileSync(process.env.FUZZ_SELFTEST_SLOW, '');
      for (const t = Date.now(); Date.now() - t < 2000;);
    }
  },
  save: (x) => ({ bin: Buffer.from([x.n]), meta: {} }),
  load: (bin) => ({ n: bin[0] }),
};

export const TARGETS = { pstore, partition, bmap, zip, profile, cmdline, symbols, kconfig, selftest };
export { SIG };
