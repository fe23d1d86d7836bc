/**
 * `.zip` images: archives made by Info-ZIP's zip (the committed disk.img.zip, and fresh ones in
 * every layout it writes where it is installed), by Python's zipfile (ZIP64 forced) and byte
 * by byte (test/helpers/zip-builder.ts: ZIP64 end records, data descriptors in each form) are
 * flashed to an image file and compared with the original; damaged, truncated, encrypted,
 * multi-image and unsupported ones fail with a SourceError (exit 10, class image) and nothing
 * written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { EXIT_CLASS } from '../../../src/errors.js';
import { decompressFile } from '../../../src/flash/decompress.js';
import { sizeInfo } from '../../../src/flash/detect.js';
import { SourceError } from '../../../src/flash/errors.js';
import { flashImage } from '../../../src/flash/flash.js';
import { openImageSource } from '../../../src/flash/source.js';
import { UnsupportedZipError } from '../../../src/flash/zip-directory.js';
import { pattern } from '../../helpers/pattern.js';
import { buildZip, buildZipSegments, type ZipSpec } from '../../helpers/zip-builder.js';
import { DISK, fixture, tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const FILL = 0xa5;
const haveTool = (t: string, arg = '-v') => spawnSync(t, [arg], { stdio: 'ignore' }).status === 0;
const SKIP_ZIP = haveTool('zip') && haveTool('unzip') ? false : 'zip/unzip not installed (Debian packages zip, unzip); skipping archives made by Info-ZIP';
const SKIP_PYTHON = haveTool('python3', '--version') ? false : 'python3 not installed; skipping the zipfile-made archive';

/** 3 MiB: pseudo-random, zeros, text — what an image looks like to deflate. */
const IMAGE = Buffer.concat([Buffer.from(pattern(MiB, 7)), Buffer.alloc(MiB), Buffer.from('crashcart zip image\n'.repeat(52429)).subarray(0, MiB)]);

async function card(dir: string, name: string, size = 4 * MiB): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, new Uint8Array(size).fill(FILL));
  return p;
}

async function flashFile(image: string, cardPath: string, bmap?: string | false) {
  const source = await openImageSource(image, { bmap });
  const dev = await openImageFile(cardPath, { write: true });
  try {
    return { r: await flashImage(source, [{ device: dev }], { retryDelayMs: 1 }), format: source.format, size: source.size, bmap: source.bmap };
  } finally {
    await dev.close();
    await source.close();
  }
}

/** Flashes `zip` onto a fresh card and checks the card holds `expect` followed by the untouched fill. */
async function assertFlashes(dir: string, zip: string, expect: Uint8Array, label: string): Promise<void> {
  const c = await card(dir, `card-${label.replace(/\W+/g, '_')}.img`);
  const { r, format, size } = await flashFile(zip, c, false);
  assert.equal(format, 'zip', label);
  assert.equal(size.exact, expect.length, `${label}: size from the central directory`);
  assert.equal(r.exitCode, 0, `${label}: ${r.targets[0].error?.message}`);
  assert.equal(r.targets[0].verified, true, label);
  const got = await readFile(c);
  assert.ok(got.subarray(0, expect.length).equals(Buffer.from(expect)), `${label}: card holds the image`);
  assert.ok(
    got.subarray(expect.length).every((b) => b === FILL),
    `${label}: nothing past the image`,
  );
}

/**
 * Opening or flashing `bytes` fails with a SourceError (exit 10, class image) matching `re`, and
 * the card's first MiB keeps its fill. Errors found when the archive is opened are thrown
 * (their class is checked: `cls`); those found while streaming end the flash with the error in
 * the result.
 */
async function assertRefused(dir: string, label: string, bytes: Uint8Array, re: RegExp, cls: abstract new (...a: never[]) => Error = SourceError): Promise<Error> {
  const p = join(dir, `${label.replace(/\W+/g, '_')}.zip`);
  await writeFile(p, bytes);
  const c = await card(dir, `card-${label.replace(/\W+/g, '_')}.img`);
  let err: { name: string; message: string; exitCode: number };
  try {
    const { r } = await flashFile(p, c, false);
    assert.equal(r.targets[0].verified, false, label);
    assert.equal(r.targets[0].error?.name, 'SourceError', `${label}: ${r.targets[0].error?.message}`);
    assert.equal(cls, SourceError, `${label}: a ${cls.name} is found when the archive is opened`);
    err = { name: 'SourceError', message: r.targets[0].error?.message ?? '', exitCode: r.exitCode };
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(e instanceof cls, `${label}: ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    err = e as SourceError;
  }
  assert.equal(err.exitCode, 10, `${label}: exit code`);
  assert.equal(EXIT_CLASS[err.exitCode as 10], 'image', label);
  assert.match(err.message, re, label);
  // the first MiB is held back until the image has passed its checks, so a card never boots a damaged image
  assert.ok(
    (await readFile(c)).subarray(0, MiB).every((b) => b === FILL),
    `${label}: the card's first MiB is untouched`,
  );
  return err as Error;
}

async function decodeAll(path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of decompressFile(path, 'zip')) parts.push(c);
  return Buffer.concat(parts);
}

test('the committed Info-ZIP archive flashes byte-exactly, its size known before writing', async (t) => {
  const dir = tempDir(t);
  await assertFlashes(dir, fixture('disk.img.zip'), DISK(), 'disk.img.zip');
});

test('archives from Info-ZIP in each layout it writes: deflate, stored, from a pipe (data descriptor, ZIP64), in a folder, with __MACOSX', { skip: SKIP_ZIP }, async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'image.img');
  await writeFile(img, IMAGE);
  const zip = (args: string[], opts: { input?: Buffer; cwd?: string } = {}) => {
    const r = spawnSync('zip', args, { cwd: opts.cwd ?? dir, input: opts.input, maxBuffer: 64 * MiB });
    assert.equal(r.status, 0, `zip ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  zip(['-q', 'deflate.img.zip', 'image.img']);
  await assertFlashes(dir, join(dir, 'deflate.img.zip'), IMAGE, 'zip deflate');
  zip(['-q', '-0', 'stored.zip', 'image.img']);
  await assertFlashes(dir, join(dir, 'stored.zip'), IMAGE, 'zip -0 (stored)');
  // from a pipe to a pipe: sizes unknown when the header is written, so bit 3 and a data descriptor, ZIP64 local header
  await writeFile(join(dir, 'pipe.zip'), zip(['-q', '-', '-'], { input: IMAGE }));
  const listing = spawnSync('zipinfo', ['-v', join(dir, 'pipe.zip')], { encoding: 'utf8' }).stdout;
  assert.match(listing, /extended local header:\s+yes/, 'Info-ZIP wrote a data descriptor');
  assert.match(listing, /minimum software version required to extract:\s+4\.5/, 'Info-ZIP wrote ZIP64 fields');
  await assertFlashes(dir, join(dir, 'pipe.zip'), IMAGE, 'zip - - (pipe)');
  // -fz to a pipe: Info-ZIP 3.0 leaves out the ZIP64 end record its end record points to; unzip -t fails on it too
  const broken = zip(['-q', '-fz', '-', '-'], { input: IMAGE });
  await writeFile(join(dir, 'fz.zip'), broken);
  assert.notEqual(spawnSync('unzip', ['-tq', join(dir, 'fz.zip')]).status, 0, 'unzip refuses it as well');
  await assertRefused(dir, 'zip -fz to a pipe', broken, /end record defers to a ZIP64 record, but there is none before it/);
  // a folder: a directory entry before the image; and macOS Finder's resource fork beside it
  await mkdir(join(dir, 'tree', 'release', '__MACOSX', 'release'), { recursive: true });
  await copyFile(img, join(dir, 'tree', 'release', 'board.img'));
  await writeFile(join(dir, 'tree', 'release', '__MACOSX', 'release', '._board.img'), 'Mac OS X resource fork');
  zip(['-q', '-r', '../tree.zip', 'release'], { cwd: join(dir, 'tree', 'release', '..') });
  // zip -r stores release/__MACOSX/...: move it to the top as Finder does
  zip(['-q', '-r', '../../finder.zip', 'board.img', '__MACOSX'], { cwd: join(dir, 'tree', 'release') });
  const names = spawnSync('unzip', ['-Z1', join(dir, 'finder.zip')], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  assert.ok(names.includes('__MACOSX/') && names.includes('__MACOSX/release/._board.img'), names.join(','));
  await assertFlashes(dir, join(dir, 'finder.zip'), IMAGE, 'zip with __MACOSX/');
  await assertRefused(dir, 'tree', await readFile(join(dir, 'tree.zip')), /holds 2 files: "release\/board\.img" \(3 MiB\), "release\/__MACOSX\/release\/\._board\.img"/);
  zip(['-q', '-r', '../../folder.zip', '.', '-x', '__MACOSX/*'], { cwd: join(dir, 'tree', 'release') });
  await assertFlashes(dir, join(dir, 'folder.zip'), IMAGE, 'zip -r with a directory entry');
});

test('Info-ZIP: two images, an encrypted image (zip -e -P) are refused with what to do; the list names both', { skip: SKIP_ZIP }, async (t) => {
  const dir = tempDir(t);
  await writeFile(join(dir, 'a.img'), IMAGE);
  await writeFile(join(dir, 'b.img'), IMAGE.subarray(0, 5000));
  spawnSync('zip', ['-q', 'two.zip', 'a.img', 'b.img'], { cwd: dir });
  const e = await assertRefused(dir, 'two', await readFile(join(dir, 'two.zip')), /holds 2 files: "a\.img" \(3 MiB\), "b\.img" \(4\.88 KiB\); .*exactly one image/);
  assert.doesNotMatch(e.message, /UnsupportedZip/);
  spawnSync('zip', ['-q', '-e', '-P', 'secret', 'enc.zip', 'a.img'], { cwd: dir });
  const enc = await assertRefused(
    dir,
    'encrypted',
    await readFile(join(dir, 'enc.zip')),
    /"a\.img" in the zip is encrypted \(PKWARE encryption, deflate \(method 8\)\)/,
    UnsupportedZipError,
  );
  assert.equal((enc as UnsupportedZipError).encrypted, true);
  assert.equal((enc as UnsupportedZipError).method, 8);
});

test('Python zipfile with force_zip64 (ZIP64 extra field in the local header)', { skip: SKIP_PYTHON }, async (t) => {
  const dir = tempDir(t);
  await writeFile(join(dir, 'image.img'), IMAGE);
  const py = `import zipfile\nwith zipfile.ZipFile('z64.zip', 'w', compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:\n  with z.open('image.img', 'w', force_zip64=True) as f:\n    f.write(open('image.img', 'rb').read())\n`;
  const r = spawnSync('python3', ['-c', py], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const z = await readFile(join(dir, 'z64.zip'));
  assert.equal(z.readUInt16LE(4), 45, 'version needed 4.5 (ZIP64) in the local header');
  await assertFlashes(dir, join(dir, 'z64.zip'), IMAGE, 'zipfile force_zip64');
});

/** The layouts built byte by byte: every combination of ZIP64 and data descriptor, both methods. */
const LAYOUTS: { label: string; spec: Partial<ZipSpec>; zip64End?: boolean }[] = [
  { label: 'deflate', spec: {} },
  { label: 'stored', spec: { method: 0 } },
  { label: 'deflate + signed descriptor', spec: { descriptor: 'signed' } },
  { label: 'deflate + unsigned descriptor', spec: { descriptor: 'unsigned' } },
  { label: 'stored + signed descriptor', spec: { method: 0, descriptor: 'signed' } },
  { label: 'ZIP64 everywhere, deflate', spec: { zip64: true }, zip64End: true },
  { label: 'ZIP64 everywhere + signed 64-bit descriptor', spec: { zip64: true, descriptor: 'signed' }, zip64End: true },
  { label: 'ZIP64 everywhere + unsigned 64-bit descriptor, stored', spec: { zip64: true, descriptor: 'unsigned', method: 0 }, zip64End: true },
];

test('archives built by hand in every ZIP64 / data descriptor layout flash byte-exactly (and unzip agrees where installed)', async (t) => {
  const dir = tempDir(t);
  for (const l of LAYOUTS) {
    const p = join(dir, `${l.label.replace(/\W+/g, '_')}.zip`);
    await writeFile(
      p,
      buildZip(
        [
          { name: 'dir/', data: new Uint8Array(0), method: 0 },
          { name: 'dir/image.img', data: IMAGE, ...l.spec },
        ],
        { zip64End: l.zip64End },
      ),
    );
    if (!SKIP_ZIP) {
      const u = spawnSync('unzip', ['-tq', p], { encoding: 'utf8' });
      assert.equal(u.status, 0, `${l.label}: unzip -t: ${u.stdout}${u.stderr}`);
    }
    await assertFlashes(dir, p, IMAGE, l.label);
  }
});

test('a damaged CRC, data, size or descriptor is caught, never flashed as verified', async (t) => {
  const dir = tempDir(t);
  const img = { name: 'image.img', data: IMAGE };
  await assertRefused(dir, 'crc recorded wrong', buildZip([{ ...img, crc: 0x12345678 }]), /CRC-32 mismatch: the data gives [0-9a-f]{8}, the central directory records 12345678/);
  await assertRefused(dir, 'crc recorded wrong, stored', buildZip([{ ...img, method: 0, crc: 0x12345678 }]), /CRC-32 mismatch/);
  // a flipped byte inside stored data: only the CRC can tell
  const stored = buildZip([{ ...img, method: 0 }]);
  stored[30 + 9 + 2 * MiB + 77] ^= 0x01;
  await assertRefused(dir, 'stored data flipped', stored, /CRC-32 mismatch/);
  // flipped bytes inside deflate data: inflate fails, or the CRC does; a bit no decoder reads
  // (unzip and Python accept those too) gives the image itself, never other bytes
  const good = buildZip([img]);
  const deflated = good.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) - 39;
  let caught = 0;
  let tried = 0;
  for (let at = 100; at < deflated; at += Math.floor(deflated / 16)) {
    const z = Buffer.from(good);
    z[39 + at] ^= 0x10;
    tried++;
    const p = join(dir, 'flip.zip');
    await writeFile(p, z);
    const c = await card(dir, 'flip.img');
    const { r } = await flashFile(p, c, false);
    if (r.exitCode === 0) {
      assert.ok((await readFile(c)).subarray(0, IMAGE.length).equals(IMAGE), `deflate byte ${at} flipped: flashed, so the bytes must be the image's`);
      continue;
    }
    assert.equal(r.exitCode, 10);
    assert.match(r.targets[0].error?.message ?? '', /corrupt deflate data|CRC-32 mismatch|inflates to more|decompressed to \d+ bytes but|deflate data ends/, `deflate byte ${at}`);
    caught++;
  }
  assert.ok(caught >= tried * 0.75, `${caught} of ${tried} flips caught`);
  // the descriptor disagrees with the data
  const desc = buildZip([{ ...img, descriptor: 'signed' }]);
  const cdAt = desc.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const d = Buffer.from(desc);
  d[cdAt - 16 + 4] ^= 0x01; // the descriptor's CRC (signature, CRC, sizes: 16 bytes)
  await assertRefused(dir, 'descriptor crc', d, /CRC-32 mismatch: the data gives [0-9a-f]{8}, the data descriptor records/);
  const s = Buffer.from(desc);
  s[cdAt - 4] ^= 0x01; // the descriptor's uncompressed size
  await assertRefused(dir, 'descriptor size', s, /the data descriptor records \d+ compressed \/ \d+ bytes, the central directory/);
  // the local header disagrees with the central directory
  const lh = Buffer.from(good);
  lh[14] ^= 0x01;
  await assertRefused(dir, 'local header crc', lh, /the local header records CRC-32/);
  // the central directory claims more bytes than the deflate stream gives
  const more = Buffer.from(good);
  const cd = more.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  more.writeUInt32LE(IMAGE.length + 1, cd + 24);
  more.writeUInt32LE(IMAGE.length + 1, 22);
  await assertRefused(dir, 'size recorded larger', more, /decompressed to 3145728 bytes but the zip records 3145729/);
});

test('a zip cut short anywhere is refused as truncated before anything is written', async (t) => {
  const dir = tempDir(t);
  for (const l of [LAYOUTS[0], LAYOUTS[2], LAYOUTS[6]]) {
    const z = buildZip([{ name: 'image.img', data: IMAGE, ...l.spec }], { zip64End: l.zip64End });
    for (const keep of [2, 30, 100, Math.floor(z.length / 2), z.length - 60, z.length - 22, z.length - 1]) {
      await assertRefused(dir, `${l.label} cut at ${keep}`, z.subarray(0, keep), /truncated|damaged zip/);
    }
  }
  // data removed from the middle with the directory intact: the entry runs into the directory
  const z = buildZip([{ name: 'image.img', data: IMAGE, method: 0 }]);
  const cd = z.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const cut = Buffer.concat([z.subarray(0, 1000), z.subarray(cd)]);
  cut.writeUInt32LE(1000, cut.length - 6);
  await assertRefused(dir, 'middle removed', cut, /runs into the central directory/);
});

test('several images, none, links, a compressed file inside, unsupported methods and encryption are refused with the reason', async (t) => {
  const dir = tempDir(t);
  const data = IMAGE.subarray(0, 70000);
  await assertRefused(
    dir,
    'three',
    buildZip([
      { name: 'boot.img', data },
      { name: 'folder/', data: new Uint8Array(0), method: 0 },
      { name: 'rootfs.img', data },
      { name: '__MACOSX/._boot.img', data: Buffer.from('fork') },
      { name: 'README.txt', data: Buffer.from('hello') },
    ]),
    /holds 3 files: "boot\.img" \(68\.4 KiB\), "rootfs\.img" \(68\.4 KiB\), "README\.txt" \(5 B\)/,
  );
  await assertRefused(dir, 'empty', buildZip([]), /holds no file to flash/);
  // a compressed image inside: never written as its compressed bytes
  await assertRefused(dir, 'nested', buildZip([{ name: 'disk.img.xz', data, method: 0 }]), /holds "disk\.img\.xz", itself an archive or compressed file \(\.xz\)/);
  await assertRefused(dir, 'folders only', buildZip([{ name: 'a/', data: new Uint8Array(0), method: 0 }]), /holds no file to flash/);
  await assertRefused(
    dir,
    'symlink',
    buildZip([{ name: 'image.img', data: Buffer.from('real.img'), method: 0, unixMode: 0o120777 }]),
    /only "image\.img", which is a symbolic link/,
  );
  for (const [method, re] of [
    [9, /Deflate64 \(what Windows Explorer uses for large files\) \(method 9\)/],
    [12, /bzip2 \(method 12\)/],
    [93, /Zstandard \(method 93\)/],
    [14, /LZMA \(method 14\)/],
  ] as const) {
    const e = await assertRefused(dir, `method ${method}`, buildZip([{ name: 'image.img', data, method }]), re, UnsupportedZipError);
    assert.equal((e as UnsupportedZipError).method, method);
    assert.equal((e as UnsupportedZipError).encrypted, false);
  }
  const e = await assertRefused(dir, 'aes', buildZip([{ name: 'image.img', data, method: 99, flags: 1 }]), /encrypted \(WinZip AES encryption/, UnsupportedZipError);
  assert.equal((e as UnsupportedZipError).encrypted, true);
});

test('a ZIP64 archive of a stored image over 4 GiB: the central directory gives its exact size (unzip agrees)', async (t) => {
  const dir = tempDir(t);
  // a stored entry whose data is a hole of 4 GiB + 4 KiB zeros, with every ZIP64 field
  const size = 4 * 1024 * MiB + 4096;
  let crc = 0;
  const zeros = new Uint8Array(64 * MiB);
  for (let left = size; left > 0; left -= Math.min(left, zeros.length)) crc = crc32(zeros.subarray(0, Math.min(left, zeros.length)), crc);
  const p = join(dir, 'big.img.zip');
  const fh = await open(p, 'w');
  let at = 0;
  for (const s of buildZipSegments([{ name: 'big.img', data: new Uint8Array(0), zeros: size, crc, zip64: true }], { zip64End: true })) {
    if (typeof s !== 'number') await fh.write(s, 0, s.length, at);
    at += typeof s === 'number' ? s : s.length;
  }
  await fh.truncate(at);
  await fh.close();
  if (!SKIP_ZIP) {
    const u = spawnSync('unzip', ['-Zl', p], { encoding: 'utf8' });
    assert.match(u.stdout, new RegExp(`\\b${size}\\b.*big\\.img`), `unzip -Zl: ${u.stdout}${u.stderr}`);
  }
  const f = await open(p);
  try {
    assert.deepEqual(await sizeInfo(f, 'zip', (await f.stat()).size, p), { exact: size });
  } finally {
    await f.close();
  }
  // the first and last MiB of the entry stream are the zeros (not the whole 4 GiB: the test stays short)
  let n = 0;
  for await (const c of decompressFile(p, 'zip')) {
    assert.ok(c.every((b) => b === 0));
    n += c.length;
    if (n >= 2 * MiB) break;
  }
  assert.ok(n >= 2 * MiB);
});

test('X.img.zip finds X.img.bmap beside it: only the mapped ranges are written', async (t) => {
  const dir = tempDir(t);
  await copyFile(fixture('disk.img.zip'), join(dir, 'disk.img.zip'));
  await copyFile(fixture('disk.img.bmap'), join(dir, 'disk.img.bmap'));
  const c = await card(dir, 'card.img');
  const { r, bmap } = await flashFile(join(dir, 'disk.img.zip'), c);
  assert.equal(r.exitCode, 0, r.targets[0].error?.message);
  assert.equal(bmap?.path, join(dir, 'disk.img.bmap'));
  const got = await readFile(c);
  const disk = DISK();
  for (let blk = 0; blk * 4096 < disk.length; blk++) {
    const mapped = bmap!.ranges.some((x) => blk >= x.first && blk <= x.last);
    const slice = got.subarray(blk * 4096, Math.min((blk + 1) * 4096, disk.length));
    if (mapped) assert.ok(slice.equals(Buffer.from(disk.subarray(blk * 4096, blk * 4096 + slice.length))), `block ${blk} written`);
    else
      assert.ok(
        slice.every((b) => b === FILL),
        `hole at block ${blk} keeps the card's bytes`,
      );
  }
});

test('decompressFile reads the zip entry directly, and the CLI maps a truncated zip to exit 10 (class image) with nothing written', async (t) => {
  const dir = tempDir(t);
  assert.ok((await decodeAll(fixture('disk.img.zip'))).equals(Buffer.from(DISK())));
  const z = await readFile(fixture('disk.img.zip'));
  const img = join(dir, 'cut.img.zip');
  await writeFile(img, z.subarray(0, z.length - 10));
  const c = await card(dir, 'c.img');
  const r = spawnSync(process.execPath, [resolve('dist/test/unit/flash/run-cli.js'), 'flash', img, c, '--yes', '--json'], {
    encoding: 'utf8',
    input: '',
    env: { ...process.env, XDG_STATE_HOME: dir },
  });
  assert.equal(r.status, 10, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { type: string; class: string; message: string };
  assert.equal(last.type, 'error');
  assert.equal(last.class, 'image');
  assert.match(last.message, /no zip end-of-central-directory record .* truncated/);
  assert.ok((await readFile(c)).every((b) => b === FILL));
});
