/**
 * Every decoder checks the container's integrity data, and a damaged image is never reported as
 * flashed and verified. Valid files made with the reference tools (test/fixtures/flash/integrity,
 * and fresh ones made now where gzip, zstd, xz and bzip2 are installed) are damaged here at
 * positions found from each format's layout.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { BadInputError, CrashcartError } from '../../../src/errors.js';
import { decompressFile } from '../../../src/flash/decompress.js';
import { gzipTrailerSize, sizeInfo, sniffFormat, type ImageFormat } from '../../../src/flash/detect.js';
import { SourceError } from '../../../src/flash/errors.js';
import { flashImage, type FlashEvent } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { inspectImage, writeImage } from '../../../src/provision/image-source.js';
import { DISK, fixture, tempDir } from './helpers.js';

const COMMITTED = fixture('integrity');
const DATA = readFileSync(join(COMMITTED, 'data.bin'));
const MiB = 1024 * 1024;
const FILL = 0xa5;

function haveTools(): boolean {
  return ['gzip', 'zstd', 'xz', 'bzip2'].every((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status === 0);
}

/** The committed fixtures, and a fresh set made by make.sh with the installed tools. */
const SETS: { name: string; dir: string }[] = [{ name: 'committed', dir: COMMITTED }];
if (haveTools()) {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-integrity-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync('sh', [join(COMMITTED, 'make.sh'), dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make.sh: ${r.stderr}`);
  SETS.push({ name: 'fresh', dir });
} else {
  test('fresh fixtures with the reference tools', { skip: 'gzip, zstd, xz or bzip2 not installed' }, () => undefined);
}

function formatOf(bytes: Uint8Array): ImageFormat {
  return sniffFormat(bytes.subarray(0, 512));
}

async function decode(path: string): Promise<{ bytes: Buffer; warnings: string[] }> {
  const format = formatOf(await readFile(path));
  const parts: Uint8Array[] = [];
  const warnings: string[] = [];
  for await (const c of decompressFile(path, format, { onWarning: (w) => warnings.push(w) })) parts.push(c);
  return { bytes: Buffer.concat(parts), warnings };
}

/** Decoding `bytes` fails with a SourceError (exit code 10) naming the format and matching `re`. */
async function assertCorrupt(dir: string, label: string, bytes: Uint8Array, re: RegExp): Promise<void> {
  const p = join(dir, label.replace(/[^a-z0-9.-]+/gi, '_'));
  await writeFile(p, bytes);
  const format = formatOf(bytes);
  assert.notEqual(format, 'raw', `${label}: detected as compressed`);
  await assert.rejects(
    (async () => {
      for await (const _ of decompressFile(p, format));
    })(),
    (e: unknown) => {
      assert.ok(e instanceof SourceError, `${label}: SourceError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
      assert.equal(e.exitCode as number, 10, label);
      assert.ok(e.message.includes(`${format} decompression failed`), `${label}: ${e.message}`);
      assert.match(e.message, re, label);
      return true;
    },
    label,
  );
}

function flipped(b: Uint8Array, at: number, mask = 0xff): Buffer {
  const c = Buffer.from(b);
  c[at < 0 ? c.length + at : at] ^= mask;
  return c;
}

function u32le(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

/** Offset of the last byte of the (single) block's check field of a one-stream xz file. */
function xzCheckEnd(b: Uint8Array): number {
  const indexSize = (u32le(b, b.length - 8) + 1) * 4;
  return b.length - 12 - indexSize - 1;
}

/** Offset and length of the frame content size field of the zstd frame at `at`. */
function zstdFcs(b: Uint8Array, at = 0): { at: number; len: number } {
  const fhd = b[at + 4];
  const single = (fhd >> 5) & 1;
  const fcf = fhd >> 6;
  return { at: at + 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3], len: fcf ? 1 << fcf : single };
}

for (const set of SETS) {
  const f = (name: string) => readFileSync(join(set.dir, name));

  test(`${set.name}: valid files in every layout decode to the original`, async () => {
    for (const name of ['data.gz', 'data.multi.gz', 'data.zst', 'data.multi.zst', 'data.crc32.xz', 'data.crc64.xz', 'data.bz2', 'data.multi.bz2']) {
      const r = await decode(join(set.dir, name));
      assert.ok(r.bytes.equals(DATA), `${name}: decoded bytes`);
      assert.deepEqual(r.warnings, [], `${name}: no warning`);
    }
  });

  test(`${set.name}: files that record no check decode with a warning; SHA-256 xz is refused, not decoded unchecked`, async (t) => {
    let r = await decode(join(set.dir, 'data.none.xz'));
    assert.ok(r.bytes.equals(DATA));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /no integrity check.*--check=none/);
    r = await decode(join(set.dir, 'data.nocheck.zst'));
    assert.ok(r.bytes.equals(DATA));
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /no content checksum.*--no-check/);
    const dir = tempDir(t);
    await assertCorrupt(dir, 'sha256.xz', f('data.sha256.xz'), /SHA-256 integrity checks, which this decoder cannot verify/);
    // a SHA-256 stream after a CRC64 one fails in the decoder, with the reason among the causes
    await assertCorrupt(dir, 'crc64-then-sha256.xz', Buffer.concat([f('data.crc64.xz'), f('data.sha256.xz')]), /integrity check other than CRC32\/CRC64, such as SHA-256/);
  });

  test(`${set.name}: a flipped byte only in the checksum or trailer is caught`, async (t) => {
    const dir = tempDir(t);
    const gz = f('data.gz');
    await assertCorrupt(dir, 'gz-crc', flipped(gz, -8), /CRC-32 mismatch/);
    await assertCorrupt(dir, 'gz-isize', flipped(gz, -4, 0x01), /ISIZE.*mismatch/);
    const zst = f('data.zst');
    await assertCorrupt(dir, 'zst-checksum', flipped(zst, -1, 0x01), /zstd frame 1 \(at byte 0\): content checksum mismatch/);
    await assertCorrupt(dir, 'zst-checksum-first', flipped(zst, -4, 0x80), /content checksum mismatch/);
    const fcs = zstdFcs(zst);
    assert.ok(fcs.len > 0, 'the zstd CLI records the content size of a file');
    const big = Buffer.from(zst);
    big[fcs.at] += 1; // declares one byte more than the frame holds
    await assertCorrupt(dir, 'zst-fcs', big, /a decoded size other than the 16385 bytes its header declares/);
    const multi = f('data.multi.zst');
    await assertCorrupt(dir, 'multi-zst-second-checksum', flipped(multi, -2), /zstd frame 2 \(at byte \d+\): content checksum mismatch/);
    for (const check of ['crc32', 'crc64']) {
      const xz = f(`data.${check}.xz`);
      await assertCorrupt(dir, `xz-${check}-block-check`, flipped(xz, xzCheckEnd(xz), 0x01), /corrupt data/);
      await assertCorrupt(dir, `xz-${check}-index`, flipped(xz, xzCheckEnd(xz) + 3, 0x01), /corrupt data/);
    }
    const bz = f('data.bz2');
    await assertCorrupt(dir, 'bz2-block-crc', flipped(bz, 10), /CRC mismatch/);
    // the combined stream CRC: the last byte holds padding bits, the one before is CRC bits only
    await assertCorrupt(dir, 'bz2-stream-crc', flipped(bz, -2), /CRC mismatch/);
    await assertCorrupt(dir, 'multi-bz2-second-stream-crc', flipped(f('data.multi.bz2'), -2), /CRC mismatch/);
  });

  test(`${set.name}: a flipped byte anywhere in the payload never gives wrong bytes silently`, async (t) => {
    const dir = tempDir(t);
    for (const name of ['data.gz', 'data.multi.gz', 'data.zst', 'data.multi.zst', 'data.crc32.xz', 'data.crc64.xz', 'data.bz2', 'data.multi.bz2']) {
      const b = f(name);
      const p = join(dir, name);
      let tried = 0;
      let caught = 0;
      for (let at = 16; at < b.length; at += Math.floor(b.length / 24)) {
        await writeFile(p, flipped(b, at, 0x10));
        tried++;
        try {
          const out = (await decode(p)).bytes;
          // a bit no decoder reads (padding, an unused table entry): the reference tool accepts it too
          assert.ok(out.equals(DATA), `${name}: byte ${at} flipped gave wrong bytes without an error`);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.ok(e instanceof SourceError && (e.exitCode as number) === 10, `${name}@${at}: ${(e as Error)?.message}`);
          caught++;
        }
      }
      assert.ok(caught >= tried * 0.75, `${name}: ${caught} of ${tried} flips caught`);
    }
  });

  test(`${set.name}: files cut short anywhere, trailers included, are caught`, async (t) => {
    const dir = tempDir(t);
    for (const name of [
      'data.gz',
      'data.multi.gz',
      'data.zst',
      'data.multi.zst',
      'data.nocheck.zst',
      'data.crc32.xz',
      'data.crc64.xz',
      'data.none.xz',
      'data.bz2',
      'data.multi.bz2',
    ]) {
      const b = f(name);
      for (const keep of [6, 12, 40, Math.floor(b.length / 2), b.length - 9, b.length - 6, b.length - 3, b.length - 1]) {
        await assertCorrupt(dir, `${name}-cut-${keep}`, b.subarray(0, keep), /truncated|corrupt/);
      }
    }
  });

  test(`${set.name}: trailing garbage is an error; zero padding only where the format allows it`, async (t) => {
    const dir = tempDir(t);
    const junk = Buffer.from('garbage!');
    await assertCorrupt(dir, 'gz-junk', Buffer.concat([f('data.gz'), junk]), /not a gzip member \(trailing garbage/);
    await assertCorrupt(dir, 'multi-gz-junk', Buffer.concat([f('data.multi.gz'), junk]), /trailing garbage/);
    await assertCorrupt(dir, 'gz-zeros-junk', Buffer.concat([f('data.gz'), Buffer.alloc(100), junk]), /after the last gzip member and zero padding .* \(trailing garbage\)/);
    await assertCorrupt(dir, 'multi-gz-zeros-junk', Buffer.concat([f('data.multi.gz'), Buffer.alloc(70000), junk]), /trailing garbage/);
    await assertCorrupt(dir, 'zst-junk', Buffer.concat([f('data.zst'), junk]), /not a zstd frame \(trailing garbage/);
    await assertCorrupt(dir, 'zst-zeros', Buffer.concat([f('data.zst'), Buffer.alloc(8)]), /trailing garbage/);
    await assertCorrupt(dir, 'zst-3', Buffer.concat([f('data.zst'), junk.subarray(0, 3)]), /not a zstd frame/);
    await assertCorrupt(dir, 'bz2-junk', Buffer.concat([f('data.bz2'), junk]), /not a bzip2 stream \(trailing garbage/);
    await assertCorrupt(dir, 'xz-junk', Buffer.concat([f('data.crc64.xz'), junk]), /corrupt/);
    await assertCorrupt(dir, 'xz-3-zeros', Buffer.concat([f('data.crc64.xz'), Buffer.alloc(3)]), /corrupt/);
    await assertCorrupt(dir, 'xz-padding-junk', Buffer.concat([f('data.crc64.xz'), Buffer.alloc(8), junk]), /corrupt/);
    await assertCorrupt(dir, 'bz2-zeros', Buffer.concat([f('data.bz2'), Buffer.alloc(8)]), /trailing garbage/);
    // decided: zero bytes after the last gzip member are ignored with a warning, as gzip -d does
    // (block-device padding); xz allows stream padding (zeros, multiples of 4 bytes) by its format
    for (const [name, pad, warning] of [
      ['data.gz', 512, /512 zero byte\(s\) of padding after the last gzip member/],
      ['data.crc64.xz', 8, undefined],
    ] as const) {
      const p = join(dir, `${name}-padded`);
      await writeFile(p, Buffer.concat([f(name), Buffer.alloc(pad)]));
      const r = await decode(p);
      assert.ok(r.bytes.equals(DATA), `${name} with ${pad} zero bytes after it`);
      if (warning) assert.match(r.warnings.join('\n'), warning);
      else assert.deepEqual(r.warnings, []);
    }
  });

  test(`${set.name}: a damaged later member, frame or stream is caught`, async (t) => {
    const dir = tempDir(t);
    const gz = f('data.multi.gz');
    let second = -1;
    for (let i = 10; i < gz.length - 3 && second < 0; i++) if (gz[i] === 0x1f && gz[i + 1] === 0x8b && gz[i + 2] === 8) second = i;
    assert.ok(second > 0, 'second gzip member found');
    await assertCorrupt(dir, 'multi-gz-second-crc', flipped(gz, second - 8), /CRC-32 mismatch/);
    await assertCorrupt(dir, 'multi-gz-last-crc', flipped(gz, -6), /CRC-32 mismatch/);
    await assertCorrupt(dir, 'multi-gz-cut-second-header', gz.subarray(0, second + 5), /truncated/);
    await assertCorrupt(dir, 'two-xz-streams-second-check', Buffer.concat([f('data.crc32.xz'), flipped(f('data.crc64.xz'), xzCheckEnd(f('data.crc64.xz')))]), /corrupt/);
    const zst = f('data.multi.zst');
    // the skippable frame's length field says more than the file holds
    const skip = Buffer.from(zst);
    skip[4] = 0xff;
    skip[5] = 0xff;
    await assertCorrupt(dir, 'multi-zst-skippable-cut', skip, /truncated \(the file ends inside the skippable frame/);
  });
}

test('a file that starts with a compression magic is never read as raw, even cut short', () => {
  const bz = readFileSync(join(COMMITTED, 'data.bz2'));
  for (const n of [1, 2, 3, 4, 5, 9, 10]) assert.equal(formatOf(bz.subarray(0, n)), 'bzip2', `bzip2 cut to ${n} bytes`);
  // an empty bzip2 stream: "BZh9" then the end-of-stream magic, no block
  assert.equal(formatOf(Buffer.from('425a683917724538509000000000', 'hex')), 'bzip2');
  const xz = readFileSync(join(COMMITTED, 'data.crc64.xz'));
  for (const n of [1, 3, 5]) assert.equal(formatOf(xz.subarray(0, n)), 'xz', `xz cut to ${n} bytes`);
  const zst = readFileSync(join(COMMITTED, 'data.zst'));
  for (const n of [1, 3]) assert.equal(formatOf(zst.subarray(0, n)), 'zstd', `zstd cut to ${n} bytes`);
  assert.equal(formatOf(Buffer.from([0x1f])), 'gzip');
  assert.equal(formatOf(Buffer.from('BZh0 not bzip2')), 'raw');
  assert.equal(formatOf(new Uint8Array(512)), 'raw');
});

test('the gzip trailer size is taken only when it fits the compressed size', async (t) => {
  const gz = readFileSync(join(COMMITTED, 'data.gz'));
  const tail = (n: number) => Buffer.from([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);
  assert.equal(gzipTrailerSize(gz, gz.subarray(-4), gz.length), DATA.length);
  // 2.88 GiB claimed by a 9 KiB file: more than deflate can pack into it
  assert.equal(gzipTrailerSize(gz, tail(0xb8000000), gz.length), undefined);
  // less than the deflate data itself
  assert.equal(gzipTrailerSize(gz, tail(100), gz.length), undefined);
  assert.equal(gzipTrailerSize(Buffer.from('not gzip at all'), tail(16384), 9000), undefined);
  const dir = tempDir(t);
  // cut where the 4 bytes before the cut would claim more than 1 GiB
  let keep = gz.length - 100;
  while (keep > 20 && u32le(gz, keep - 4) < 0x40000000) keep--;
  assert.ok(keep > 20, 'a cut point with a large false ISIZE');
  const p = join(dir, 'cut.gz');
  await writeFile(p, gz.subarray(0, keep));
  const fh = await open(p);
  try {
    assert.deepEqual(await sizeInfo(fh, 'gzip', keep), {});
  } finally {
    await fh.close();
  }
});

async function card(dir: string, name: string, size = 4 * MiB): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, new Uint8Array(size).fill(FILL));
  return p;
}

async function flashFile(image: string, cardPath: string) {
  const events: FlashEvent[] = [];
  const source = await openImageSource(image, { bmap: false });
  const dev = await openImageFile(cardPath, { write: true });
  try {
    const r = await flashImage(source, [{ device: dev }], { retryDelayMs: 1, onEvent: (e) => events.push(e) });
    return { r, events };
  } finally {
    await dev.close();
    await source.close();
  }
}

/** The disk fixture (3 MiB) with only its checksum/trailer damaged, per format. */
function damagedDisks(): { name: string; bytes: Buffer; re: RegExp }[] {
  const zst = readFileSync(fixture('disk.img.zst'));
  const gz = readFileSync(fixture('disk.img.gz'));
  const xz = readFileSync(fixture('disk.img.xz'));
  const bz = readFileSync(fixture('disk.img.bz2'));
  return [
    { name: 'disk.img.zst', bytes: flipped(zst, -1, 0x01), re: /content checksum mismatch/ },
    { name: 'disk.img.gz', bytes: flipped(gz, -7), re: /CRC-32 mismatch/ },
    { name: 'disk.img.xz', bytes: flipped(xz, xzCheckEnd(xz), 0x01), re: /corrupt data/ },
    { name: 'disk.img.bz2', bytes: flipped(bz, -2), re: /CRC mismatch/ },
  ];
}

test('flash: an image that fails its own check after data was written fails with a SourceError, not verified', async (t) => {
  const dir = tempDir(t);
  for (const d of damagedDisks()) {
    const img = join(dir, d.name);
    await writeFile(img, d.bytes);
    const c = await card(dir, `card-${d.name}`);
    const { r } = await flashFile(img, c);
    const tr = r.targets[0];
    assert.equal(r.ok, false, d.name);
    assert.equal(r.exitCode, 10, d.name);
    assert.equal(tr.ok, false, d.name);
    assert.equal(tr.verified, false, `${d.name}: not verified`);
    assert.equal(tr.error?.name, 'SourceError', d.name);
    assert.match(tr.error?.message ?? '', d.re, d.name);
    assert.equal(r.image.sha256, undefined, `${d.name}: no image digest for a damaged image`);
    const written = await readFile(c);
    // the whole image was decoded before the check failed, so everything past the held-back
    // first MiB was written; the first MiB never is, so the card cannot boot a damaged image
    if (d.name.endsWith('.zst')) assert.ok(tr.bytesWritten > 0, 'bytes were written before the check failed');
    assert.ok(
      written.subarray(0, MiB).every((b) => b === FILL),
      `${d.name}: the first MiB was not written`,
    );
  }
});

test('flash: a valid image still flashes and verifies; an unchecked one says so in a warning', async (t) => {
  const dir = tempDir(t);
  const c = await card(dir, 'ok.img');
  let { r, events } = await flashFile(fixture('disk.img.zst'), c);
  assert.equal(r.exitCode, 0);
  assert.equal(r.targets[0].verified, true);
  assert.ok((await readFile(c)).subarray(0, DISK().length).equals(Buffer.from(DISK())));
  assert.ok(!events.some((e) => e.type === 'warning'));
  ({ r, events } = await flashFile(join(COMMITTED, 'data.none.xz'), await card(dir, 'none.img')));
  assert.equal(r.exitCode, 0);
  assert.ok(events.some((e) => e.type === 'warning' && /data\.none\.xz: the xz file records no integrity check/.test(e.message)));
});

test('flash: a truncated .gz whose cut-off tail claims gigabytes fails as truncated, not as "card too small"', async (t) => {
  const dir = tempDir(t);
  const gz = readFileSync(fixture('disk.img.gz'));
  let keep = gz.length - 100;
  while (keep > 20 && u32le(gz, keep - 4) < 0x80000000) keep--;
  assert.ok(keep > 20);
  const img = join(dir, 'cut.img.gz');
  await writeFile(img, gz.subarray(0, keep));
  const { r } = await flashFile(img, await card(dir, 'c.img'));
  assert.equal(r.exitCode, 10);
  assert.equal(r.targets[0].error?.name, 'SourceError');
  assert.match(r.targets[0].error?.message ?? '', /truncated/);
  assert.doesNotMatch(r.targets[0].error?.message ?? '', /holds only/);
});

test('flash: a bzip2 file cut inside its header or holding an empty stream is never flashed as raw', async (t) => {
  const dir = tempDir(t);
  const bz = readFileSync(fixture('disk.img.bz2'));
  for (const [name, bytes] of [
    ['cut3.bz2', bz.subarray(0, 3)],
    ['cut8.bz2', bz.subarray(0, 8)],
    ['empty.bz2', Buffer.from('425a683917724538509000000000', 'hex')],
  ] as const) {
    const img = join(dir, name);
    await writeFile(img, bytes);
    const c = await card(dir, `card-${name}`);
    const { r } = await flashFile(img, c);
    assert.equal(r.image.format, 'bzip2', name);
    assert.equal(r.exitCode, 10, name);
    assert.equal(r.targets[0].verified, false, name);
    assert.ok(
      (await readFile(c)).every((b) => b === FILL),
      `${name}: nothing written`,
    );
  }
});

test('flash: a file named as compressed whose magic is damaged is refused, not flashed as raw', async (t) => {
  const dir = tempDir(t);
  for (const name of ['disk.img.bz2', 'disk.img.gz', 'disk.img.xz', 'disk.img.zst']) {
    const img = join(dir, name);
    await writeFile(img, flipped(readFileSync(fixture(name)), 0));
    await assert.rejects(openImageSource(img, { bmap: false }), (e: unknown) => e instanceof SourceError && /never flashed as raw data/.test((e as Error).message), name);
  }
});

test('provisioning gets the same checks: a partition image failing its checksum is refused and not written', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'part.img.zst');
  await writeFile(img, flipped(readFileSync(fixture('disk.img.zst')), -1, 0x01));
  await assert.rejects(inspectImage({ path: img }), (e: unknown) => e instanceof BadInputError && /content checksum mismatch/.test((e as Error).message));
  const dev = new MemoryDevice(new Uint8Array(8 * MiB).fill(FILL), { name: 'card' });
  const info = { path: img, format: 'zstd' as const, size: DISK().length, dataBytes: DISK().length };
  await assert.rejects(
    writeImage(dev, MiB, { path: img }, info, { capacity: 4 * MiB }),
    (e: unknown) => e instanceof CrashcartError && (e.exitCode as number) === 10 && /content checksum mismatch/.test((e as Error).message),
  );
  assert.ok(
    dev.data.subarray(MiB, 2 * MiB).every((b) => b === FILL),
    'the partition start was not written',
  );
});

test('CLI: flashing a .zst whose content checksum fails exits 10 and nowhere says verified', async (t) => {
  const RUN = resolve('dist/test/unit/flash/run-cli.js');
  const dir = tempDir(t);
  const img = join(dir, 'bad.img.zst');
  await writeFile(img, flipped(readFileSync(fixture('disk.img.zst')), -1, 0x01));
  const cli = (args: string[]) => spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', input: '', env: { ...process.env, CI: '', XDG_STATE_HOME: dir } });
  let r = cli(['flash', img, await card(dir, 'a.img'), '--yes', '--no-bmap']);
  assert.equal(r.status, 10, r.stderr);
  assert.match(r.stdout + r.stderr, /content checksum mismatch/);
  assert.doesNotMatch(r.stdout + r.stderr, /(?<!not )verified/);
  r = cli(['flash', img, await card(dir, 'b.img'), '--yes', '--no-bmap', '--json']);
  assert.equal(r.status, 10, r.stderr);
  // The error object closes stdout of a failed --json run; the summary is the line before it.
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-2) as string) as {
    type: string;
    ok: boolean;
    exitCode: number;
    targets: { ok: boolean; verified: boolean; error?: { name: string } }[];
  };
  assert.equal(summary.type, 'summary');
  assert.equal(summary.ok, false);
  assert.equal(summary.exitCode, 10);
  assert.deepEqual(
    summary.targets.map((x) => [x.ok, x.verified, x.error?.name]),
    [[false, false, 'SourceError']],
  );
});
