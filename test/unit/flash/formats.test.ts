import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sniffFormat, sniffSource, sizeInfo, formatFromName } from '../../../src/flash/detect.js';
import { decompressFile } from '../../../src/flash/decompress.js';
import { parseBmap, loadBmap, findBmapFor, rangeBytes } from '../../../src/flash/bmap.js';
import { SourceError } from '../../../src/flash/errors.js';
import { DISK, fixture, tempDir } from './helpers.js';

const FORMATS = [
  ['disk.img', 'raw'],
  ['disk.img.gz', 'gzip'],
  ['disk.img.xz', 'xz'],
  ['disk.img.zst', 'zstd'],
  ['disk.img.bz2', 'bzip2'],
] as const;

async function collect(path: string, format: Parameters<typeof decompressFile>[1]): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of decompressFile(path, format)) parts.push(c);
  return Buffer.concat(parts);
}

for (const [name, format] of FORMATS) {
  test(`${name}: detected as ${format} from content and decompresses to the fixture image`, async () => {
    const bytes = await readFile(fixture(name));
    assert.equal(sniffFormat(bytes.subarray(0, 512)), format);
    const out = await collect(fixture(name), format);
    assert.ok(out.equals(Buffer.from(DISK())), 'decompressed bytes equal disk.img');
  });
}

test('container size records: xz and zstd exact, gzip a lower bound, bzip2 unknown', async () => {
  const size = DISK().length;
  const expect = { raw: { exact: size }, gzip: { atLeast: size }, xz: { exact: size }, zstd: { exact: size }, bzip2: {} } as const;
  for (const [name, format] of FORMATS) {
    const fh = await open(fixture(name));
    try {
      const st = await fh.stat();
      assert.deepEqual(await sizeInfo(fh, format, st.size), expect[format], name);
    } finally {
      await fh.close();
    }
  }
});

test('content beats the name: a gzip file named .xz is read as gzip', async (t) => {
  const dir = tempDir(t);
  const p = join(dir, 'misnamed.img.xz');
  await writeFile(p, await readFile(fixture('disk.img.gz')));
  assert.equal(formatFromName(p), 'xz');
  assert.equal(sniffFormat((await readFile(p)).subarray(0, 512)), 'gzip');
});

test('known but unsupported containers and a bmap given as the image are refused with a reason', () => {
  assert.throws(
    () => sniffFormat(Uint8Array.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]), 'x.7z'),
    (e: unknown) => e instanceof SourceError && /7-Zip archive/.test((e as Error).message),
  );
  // zip archives are read (zip.test.ts): a local header first, the end record alone (an empty archive), or a file cut inside the magic
  for (const head of [
    [0x50, 0x4b, 3, 4, 0, 0],
    [0x50, 0x4b, 5, 6],
    [0x50, 0x4b, 3],
  ])
    assert.equal(sniffFormat(Uint8Array.from(head), 'x.zip'), 'zip');
  assert.equal(sniffSource(Uint8Array.from([0x3a, 0xff, 0x26, 0xed]), 's.img'), 'android-sparse');
  const xml = new TextEncoder().encode('<?xml version="1.0" ?>\n<!-- c -->\n<bmap version="2.0">');
  assert.throws(() => sniffFormat(xml, 'a.bmap'), /bmap file, not an image/);
  assert.equal(sniffFormat(new Uint8Array(512)), 'raw');
});

test('corrupt and truncated compressed images give SourceErrors naming the format', async (t) => {
  const dir = tempDir(t);
  for (const [name, format] of FORMATS.slice(1)) {
    const bytes = await readFile(fixture(name));
    const trunc = join(dir, `trunc-${name}`);
    await writeFile(trunc, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(collect(trunc, format), (e: unknown) => e instanceof SourceError && (e.exitCode as number) === 10 && e.message.includes(format), `truncated ${name}`);
    const bad = Buffer.from(bytes);
    for (let i = 40; i < 240; i++) bad[Math.floor(bytes.length / 3) + i] ^= 0x5a;
    const corrupt = join(dir, `corrupt-${name}`);
    await writeFile(corrupt, bad);
    await assert.rejects(collect(corrupt, format), (e: unknown) => e instanceof SourceError, `corrupt ${name}`);
  }
});

test('bmap 2.0 from bmaptool: ranges, sha256 checksums, sizes', async () => {
  const b = await loadBmap(fixture('disk.img.bmap'));
  assert.equal(b.version, '2.0');
  assert.equal(b.checksumType, 'sha256');
  assert.equal(b.imageSize, DISK().length);
  assert.equal(b.blockSize, 4096);
  assert.deepEqual(
    b.ranges.map((r) => [r.first, r.last]),
    [
      [0, 15],
      [256, 319],
      [512, 512],
      [514, 515],
      [768, 768],
    ],
  );
  assert.ok(b.ranges.every((r) => r.checksum && r.checksum.length === 64));
  // The last block is partial: the image ends 1000 bytes into block 768.
  assert.deepEqual(rangeBytes(b, b.ranges[4]), { start: 768 * 4096, end: DISK().length });
  assert.equal(b.mappedBytes, 83 * 4096 + 1000);
});

test('bmap 1.3 (SHA-1) parses with per-range sha1 and its file checksum', async () => {
  const b = await loadBmap(fixture('disk-v1.3.bmap'));
  assert.equal(b.version, '1.3');
  assert.equal(b.checksumType, 'sha1');
  assert.ok(b.ranges.every((r) => r.checksum && r.checksum.length === 40));
});

test('bmap 1.0 without checksums and a one-block range form parse', () => {
  const x = `<?xml version="1.0" ?><bmap version="1.0"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount><MappedBlocksCount>1</MappedBlocksCount><BlockMap><Range>1</Range></BlockMap></bmap>`;
  const b = parseBmap(new TextEncoder().encode(x));
  assert.equal(b.checksumType, undefined);
  assert.deepEqual(b.ranges, [{ first: 1, last: 1 }]);
});

test('a bmap whose own checksum does not match is rejected', async () => {
  const text = await readFile(fixture('disk.img.bmap'), 'utf8');
  const edited = text.replace('<ImageSize> 3146728 </ImageSize>', '<ImageSize> 3146729 </ImageSize>');
  assert.notEqual(edited, text);
  assert.throws(() => parseBmap(new TextEncoder().encode(edited), 'edited.bmap'), /bmap file is corrupt/);
});

test('inconsistent bmaps are rejected: counts, overlapping ranges, future versions', () => {
  const mk = (ver: string, mapped: number, ranges: string) =>
    new TextEncoder().encode(
      `<bmap version="${ver}"><ImageSize>16384</ImageSize><BlockSize>4096</BlockSize><BlocksCount>4</BlocksCount><MappedBlocksCount>${mapped}</MappedBlocksCount><BlockMap>${ranges}</BlockMap></bmap>`,
    );
  assert.throws(() => parseBmap(mk('1.0', 3, '<Range>0-1</Range>')), /MappedBlocksCount/);
  assert.throws(() => parseBmap(mk('1.0', 3, '<Range>0-1</Range><Range>1</Range>')), /overlaps/);
  assert.throws(() => parseBmap(mk('1.0', 1, '<Range>4</Range>')), /runs past/);
  assert.throws(() => parseBmap(mk('3.0', 1, '<Range>0</Range>')), /not supported/);
});

test('IMAGE.bmap is found next to the image, also for compressed names', async () => {
  assert.equal(await findBmapFor(fixture('disk.img')), fixture('disk.img.bmap'));
  assert.equal(await findBmapFor(fixture('disk.img.zst')), fixture('disk.img.bmap'));
  assert.equal(await findBmapFor(fixture('README.md')), undefined);
});
