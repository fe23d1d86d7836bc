/**
 * The write gate, tried the way an adversary would: every spelling of an input as a target
 * (symlink, hard link, relative, a name with colons), loop devices over an input, files that
 * already exist or are links, a folder of another run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { link, mkdir, readFile, readdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { WriteGate } from '../../../src/gate/write-gate.js';
import { createExclusive, createRunDir, prepareOutputDir, replaceFile, writeNewFiles } from '../../../src/gate/outputs.js';
import { footprintsConflict, type Footprint } from '../../../src/host/block-topology.js';
import { openDevice } from '../../../src/blockdev/open-device.js';
import { RefusedError } from '../../../src/errors.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'crashcart-gate-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const refused = (re?: RegExp) => (e: unknown) => e instanceof RefusedError && e.exitCode === 12 && (!re || re.test(e.message));

/** Every way of naming `file` that a user or a script might type. */
async function spellings(dir: string, file: string): Promise<string[]> {
  await symlink(file, join(dir, 'via-symlink.img'));
  await link(file, join(dir, 'hard-link.img'));
  await symlink(file, join(dir, 'pci-0000:00:17.0-ata-1'));
  await mkdir(join(dir, 'sub'));
  await symlink('..', join(dir, 'sub', 'up'));
  return [
    file,
    join(dir, 'via-symlink.img'),
    join(dir, 'hard-link.img'),
    join(dir, 'pci-0000:00:17.0-ata-1'),
    relative(process.cwd(), file),
    join(dir, 'sub', 'up', 'sub', '..', 'card.img'),
  ];
}

test('a target that is an input is refused under every spelling; another file passes', async (t) => {
  const dir = tempDir(t);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(65536).fill(7));
  const other = join(dir, 'other.img');
  await writeFile(other, new Uint8Array(65536));
  for (const name of await spellings(dir, card)) {
    const gate = new WriteGate();
    await gate.addInput(card, 'the image being flashed');
    await assert.rejects(gate.openDevice(name), refused(/the image being flashed/), name);
  }
  const gate = new WriteGate();
  await gate.addInput(card);
  const dev = await gate.openDevice(other);
  await dev.close();
  assert.deepEqual(await readFile(card), Buffer.alloc(65536, 7));
});

test('one target named twice under two spellings is refused the second time', async (t) => {
  const dir = tempDir(t);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(4096));
  await symlink(card, join(dir, 'alias'));
  const gate = new WriteGate();
  const first = await gate.openDevice(card);
  await assert.rejects(gate.openDevice(join(dir, 'alias')), refused(/already a destination/));
  await first.close();
});

test('an input given as an opened device protects its file: output, map and folder checks', async (t) => {
  const dir = tempDir(t);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(8192).fill(1));
  const dev = await openDevice(card);
  t.after(() => dev.close());
  const gate = new WriteGate();
  await gate.addInput(dev, 'the device being read');
  await assert.rejects(gate.checkPath(join(dir, '.', 'card.img')), refused(/the device being read/));
  await link(card, join(dir, 'hl'));
  await assert.rejects(gate.createFile(join(dir, 'hl'), { continueExisting: true }), refused());
  await assert.rejects(gate.replaceFile(join(dir, 'hl'), 'x'), refused());
  assert.deepEqual(await readFile(card), Buffer.alloc(8192, 1));
  await gate.checkLocation(join(dir, 'new', 'deeper'));
});

test('output files are created exclusively, one or many at once: existing files, symlinks and dangling symlinks are refused', async (t) => {
  const dir = tempDir(t);
  const precious = join(dir, 'precious');
  await writeFile(precious, 'keep me');
  await symlink(precious, join(dir, 'link'));
  await symlink(join(dir, 'nowhere'), join(dir, 'dangling'));
  await assert.rejects(createExclusive(precious), refused(/already exists/));
  await assert.rejects(createExclusive(join(dir, 'link')), refused(/already exists/));
  await assert.rejects(createExclusive(join(dir, 'dangling')), refused(/already exists/));
  for (const name of ['precious', 'link', 'dangling']) {
    await assert.rejects(
      writeNewFiles([
        { path: join(dir, `new-${name}`), data: 'a' },
        { path: join(dir, name), data: 'overwritten' },
      ]),
      refused(/already exists/),
    );
    await unlink(join(dir, `new-${name}`));
  }
  await assert.rejects(replaceFile(join(dir, 'link'), 'overwritten'), refused(/symbolic link/));
  assert.equal(await readFile(precious, 'utf8'), 'keep me');
  assert.deepEqual((await readdir(dir)).sort(), ['dangling', 'link', 'precious']);
  const many = Array.from({ length: 40 }, (_, i) => ({ path: join(dir, `record-${i}`), data: i % 2 ? new Uint8Array(70000).fill(i) : `text ${i}` }));
  await writeNewFiles(many);
  for (const f of many) assert.deepEqual(await readFile(f.path), Buffer.from(f.data));
  await assert.rejects(writeNewFiles([{ path: join(dir, 'missing', 'record'), data: 'x' }]), (e: Error) => /does not exist/.test(e.message));
  for (const f of many) await unlink(f.path);
  const fh = await createExclusive(join(dir, 'fresh'));
  await fh.close();
  await replaceFile(join(dir, 'fresh'), 'v2');
  assert.equal(await readFile(join(dir, 'fresh'), 'utf8'), 'v2');
  assert.ok(!(await readdir(dir)).some((n) => n.endsWith('.tmp')), 'no temporary file left behind');
});

test('output folders: new or empty only; --replace only over an earlier extraction', async (t) => {
  const dir = tempDir(t);
  await prepareOutputDir(join(dir, 'a', 'b'));
  await prepareOutputDir(join(dir, 'a', 'b'));
  const other = join(dir, 'other');
  await mkdir(other);
  await writeFile(join(other, 'notes.txt'), 'mine');
  await assert.rejects(prepareOutputDir(other), refused(/not empty/));
  await assert.rejects(prepareOutputDir(other, { replace: true }), refused(/earlier crashcart extraction/));
  assert.equal(await readFile(join(other, 'notes.txt'), 'utf8'), 'mine');
  await writeFile(join(dir, 'file'), 'x');
  await assert.rejects(prepareOutputDir(join(dir, 'file')), refused(/not a folder/));
  await symlink(other, join(dir, 'linkdir'));
  await assert.rejects(prepareOutputDir(join(dir, 'linkdir')), refused(/symbolic link/));
  const prev = join(dir, 'prev');
  await mkdir(prev);
  await writeFile(join(prev, 'index.json'), JSON.stringify({ records: [], geometry: {} }));
  await symlink(join(other, 'notes.txt'), join(prev, 'dmesg-pstore_blk-0'));
  await prepareOutputDir(prev, { replace: true });
  assert.deepEqual(await readdir(prev), []);
  assert.equal(await readFile(join(other, 'notes.txt'), 'utf8'), 'mine', 'a link in the old extraction is removed, not followed');
});

test('backup folders belong to one run: a used folder gets a new one inside, never merged', async (t) => {
  const dir = tempDir(t);
  const b = join(dir, 'backup');
  assert.equal(await createRunDir(b, 'run'), b);
  await writeFile(join(b, 'dmesg-pstore_blk-0'), 'first card');
  const second = await createRunDir(b, 'run');
  assert.equal(second, join(b, 'run'));
  const third = await createRunDir(b, 'run');
  assert.equal(third, join(b, 'run-2'));
  assert.equal(await readFile(join(b, 'dmesg-pstore_blk-0'), 'utf8'), 'first card');
  await writeFile(join(dir, 'afile'), '');
  await assert.rejects(createRunDir(join(dir, 'afile'), 'run'), refused(/not a folder/));
});

test('footprints: a partition and its disk overlap, two partitions do not, files only by inode', () => {
  const fp = (p: Partial<Footprint>): Footprint => ({ objects: new Set(), is: [], on: [], ...p });
  const disk = fp({ is: [{ disk: '8:0' }] });
  const p1 = fp({ is: [{ disk: '8:0', partition: '8:1' }] });
  const p2 = fp({ is: [{ disk: '8:0', partition: '8:2' }] });
  const fileOnP1 = fp({ objects: new Set(['file:1:2']), on: [{ disk: '8:0', partition: '8:1' }] });
  const otherFileOnP1 = fp({ objects: new Set(['file:1:3']), on: [{ disk: '8:0', partition: '8:1' }] });
  assert.equal(footprintsConflict(disk, p1), true);
  assert.equal(footprintsConflict(p1, p2), false);
  assert.equal(footprintsConflict(p1, fileOnP1), true, 'writing the partition a file lives on');
  assert.equal(footprintsConflict(p2, fileOnP1), false);
  assert.equal(footprintsConflict(fileOnP1, otherFileOnP1), false, 'two files on one file system');
  assert.equal(footprintsConflict(fileOnP1, fp({ objects: new Set(['file:1:2']) })), true);
});

/** Attaches a loop device over `file`, or returns undefined where that is not possible. */
function loopOver(file: string): string | undefined {
  try {
    return execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

test('a loop device over an input is that input; over a file on the system disk it is a system disk', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'image.img');
  await writeFile(img, new Uint8Array(1024 * 1024).fill(3));
  const loop = loopOver(img);
  if (!loop) return t.skip('cannot attach a loop device here');
  t.after(() => execFileSync('losetup', ['-d', loop]));
  await symlink(loop, join(dir, 'pci-0000:00:17.0-usb-0:1:1.0-scsi-0:0:0:0'));
  for (const name of [loop, join(dir, 'pci-0000:00:17.0-usb-0:1:1.0-scsi-0:0:0:0')]) {
    const gate = new WriteGate({ allowSystemDisk: true });
    await gate.addInput(img, 'the image being flashed');
    await assert.rejects(gate.openDevice(name), refused(/the image being flashed/), name);
    // and the other way round: reading the loop device into its own backing file
    const rgate = new WriteGate({ allowSystemDisk: true });
    const dev = await openDevice(name);
    await rgate.addInput(dev, 'the device being read');
    await assert.rejects(rgate.checkPath(img), refused(/the device being read/));
    await dev.close();
  }
  // A loop device over a file whose disk is in use by this system counts as a system disk.
  const other = join(dir, 'other.img');
  await writeFile(other, new Uint8Array(1024 * 1024));
  const loop2 = loopOver(other);
  if (!loop2) return;
  t.after(() => execFileSync('losetup', ['-d', loop2]));
  const { systemDiskCheck } = await import('../../../src/host/system-disk.js');
  const host = await systemDiskCheck(loop2);
  if (!host.inUse) return; // this temp folder is on a disk the system does not use
  await assert.rejects(new WriteGate().openDevice(loop2, { dryRun: true }), refused(/loop device backed by .*--force-system-disk/s));
  const ok = await new WriteGate({ allowSystemDisk: true }).openDevice(loop2, { dryRun: true });
  await ok.close();
  assert.deepEqual(await readFile(img), Buffer.alloc(1024 * 1024, 3));
});
