/**
 * Yocto's output: `core-image-x.wic` (a sparse disk image with a partition table) beside
 * `core-image-x.wic.bmap`, the image also as `.wic.gz`, `.wic.bz2`, `.wic.xz`, `.wic.zst` (and
 * `.wic.zip`).
 * `crashcart flash X.wic.EXT` finds `X.wic.bmap` by itself, as bmaptool does, and writes only
 * its mapped ranges: the card is filled with a pattern first, and every block outside the map
 * must still hold it. The image is made with Debian's tools (sfdisk for a real MBR, bmaptool
 * create for the bmap, the compressors), and sfdisk reads the table back from the card.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadBmap, rangeBytes } from '../../../src/flash/bmap.js';
import { findTool, SFDISK } from '../../helpers/disk-tools.js';
import { pattern } from '../../helpers/pattern.js';
import { tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const BMAPTOOL = findTool('bmaptool');
const SKIP = !BMAPTOOL ? 'bmaptool not installed (Debian package bmap-tools); skipping the .wic + .wic.bmap test' : !SFDISK ? 'sfdisk not installed (Debian package fdisk)' : false;
const RUN = resolve('dist/test/unit/flash/run-cli.js');
const CARD_FILL = 0x5a;

/** The compressors Yocto's IMAGE_FSTYPES offer, with the suffix each writes. */
const COMPRESSORS: { ext: string; tool: string; args: (wic: string) => string[] }[] = [
  { ext: '', tool: '', args: () => [] },
  { ext: '.gz', tool: 'gzip', args: (w) => ['-k', '-n', '-6', w] },
  { ext: '.bz2', tool: 'bzip2', args: (w) => ['-k', '-6', w] },
  { ext: '.xz', tool: 'xz', args: (w) => ['-k', '-T1', w] },
  { ext: '.zst', tool: 'zstd', args: (w) => ['-q', '-k', w] },
  // not a Yocto output, but what a .wic is often shared as
  { ext: '.zip', tool: 'zip', args: (w) => ['-q', '-j', `${w}.zip`, w] },
];

/** A 16 MiB sparse .wic: an MBR from sfdisk (boot FAT partition, root Linux partition), data in a few places, holes elsewhere. */
async function makeWic(dir: string): Promise<string> {
  const wic = join(dir, 'core-image-x.wic');
  const fh = await open(wic, 'w');
  await fh.truncate(16 * MiB);
  // the boot partition's first 192 KiB and a root file system's scattered blocks
  await fh.write(pattern(192 * 1024, 1), 0, 192 * 1024, 1 * MiB);
  await fh.write(pattern(512 * 1024, 2), 0, 512 * 1024, 5 * MiB);
  await fh.write(pattern(12 * 1024, 3), 0, 12 * 1024, 9 * MiB + 4096);
  await fh.write(pattern(4096, 4), 0, 4096, 16 * MiB - 4096);
  await fh.close();
  const r = spawnSync(SFDISK!, ['--no-reread', '--no-tell-kernel', wic], {
    input: 'label: dos\nlabel-id: 0x1ce0c0de\nstart=2048, size=8192, type=c, bootable\nstart=10240, type=83\n',
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `sfdisk: ${r.stderr}`);
  const b = spawnSync(BMAPTOOL!, ['create', '-o', `${wic}.bmap`, wic], { encoding: 'utf8' });
  assert.equal(b.status, 0, `bmaptool create: ${b.stderr}`);
  return wic;
}

test('X.wic and X.wic.{gz,bz2,xz,zst,zip} find X.wic.bmap (bmaptool create) by themselves; only mapped blocks are written', { skip: SKIP }, async (t) => {
  const dir = tempDir(t);
  const wic = await makeWic(dir);
  const image = await readFile(wic);
  const bmap = await loadBmap(`${wic}.bmap`);
  assert.ok(bmap.mappedBytes < image.length / 4, `bmaptool saw the holes: ${bmap.mappedBytes} of ${image.length} bytes mapped`);
  const mapped = new Uint8Array(image.length / bmap.blockSize);
  for (const r of bmap.ranges) {
    const { start, end } = rangeBytes(bmap, r);
    mapped.fill(1, start / bmap.blockSize, Math.ceil(end / bmap.blockSize));
  }
  for (const c of COMPRESSORS) {
    if (c.tool) {
      if (spawnSync(c.tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
        t.diagnostic(`${c.tool} not installed: ${c.ext} skipped`);
        continue;
      }
      const r = spawnSync(c.tool, c.args(wic));
      assert.equal(r.status, 0, `${c.tool}: ${r.stderr}`);
    }
    const img = `${wic}${c.ext}`;
    const card = join(dir, `card${c.ext || '.raw'}.img`);
    await writeFile(card, new Uint8Array(image.length + MiB).fill(CARD_FILL));
    const r = spawnSync(process.execPath, [RUN, 'flash', img, card, '--yes', '--json'], { encoding: 'utf8', input: '', env: { ...process.env, XDG_STATE_HOME: dir } });
    assert.equal(r.status, 0, `${img}: ${r.stderr}`);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      image: { bmap?: { path: string; mappedBytes: number } };
      targets: { bytesWritten: number; verified: boolean }[];
    };
    assert.equal(summary.image.bmap?.path, `${wic}.bmap`, `${img}: the bmap beside it`);
    assert.equal(summary.targets[0].bytesWritten, bmap.mappedBytes, `${img}: only the mapped bytes written`);
    assert.equal(summary.targets[0].verified, true);
    const got = await readFile(card);
    for (let blk = 0; blk < mapped.length; blk++) {
      const a = blk * bmap.blockSize;
      const slice = got.subarray(a, a + bmap.blockSize);
      if (mapped[blk]) assert.ok(slice.equals(image.subarray(a, a + bmap.blockSize)), `${img}: mapped block ${blk} holds the image`);
      else
        assert.ok(
          slice.every((x) => x === CARD_FILL),
          `${img}: hole at block ${blk} keeps the card's bytes`,
        );
    }
    // the partition table came along in the mapped first block: sfdisk reads it from the card
    const table = JSON.parse(spawnSync(SFDISK!, ['--json', card], { encoding: 'utf8' }).stdout) as {
      partitiontable: { label: string; id: string; partitions: { start: number; size: number; type: string; bootable?: boolean }[] };
    };
    assert.equal(table.partitiontable.label, 'dos');
    assert.equal(table.partitiontable.id, '0x1ce0c0de');
    assert.deepEqual(
      table.partitiontable.partitions.map((p) => [p.start, p.size, p.type, p.bootable ?? false]),
      [
        [2048, 8192, 'c', true],
        [10240, 32768 - 10240, '83', false],
      ],
    );
  }
});
