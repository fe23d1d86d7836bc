/**
 * `crashcart provision --fs NAME=DIR` and profile `fs`: FAT and ext4 file systems built from a
 * folder, written onto an image file, then checked with Debian's own tools on the partition cut
 * out of the card: `fsck.fat -n` / `e2fsck -fn`, the files read back with `mcopy` / `debugfs
 * rdump` and compared byte for byte with the folder, label and UUID with `blkid -p` / `dumpe2fs -h`.
 * Skips when dosfstools, mtools or e2fsprogs are missing (.ci/run installs them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/kernel-fixtures.js';
import { findTool } from '../helpers/disk-tools.js';
import { pattern } from '../helpers/pattern.js';
import { checkProfile } from '../../src/profile/board-profile.js';
import { requireTool } from '../../src/host/run-tool.js';
import { ExitCode, ToolMissingError } from '../../src/errors.js';

const MiB = 1024 * 1024;
const bin = join(repoRoot, 'bin/crashcart');
const tools = Object.fromEntries(['fsck.fat', 'mcopy', 'mkfs.fat', 'mke2fs', 'e2fsck', 'debugfs', 'dumpe2fs', 'blkid'].map((t) => [t, findTool(t)]));
const missing = Object.entries(tools).filter(([, p]) => !p);
const SKIP = missing.length ? `${missing.map(([t]) => t).join(', ')} not installed (Debian packages dosfstools, mtools, e2fsprogs, util-linux); skipping` : false;

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-prov-fs-'));
/** The temporary folder crashcart builds images in: must be empty after every run. */
const work = join(tmp, 'tmp');
mkdirSync(work);
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: work } });
const hash = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const tool = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync(tools[name]!, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8', ...env } });

function card(name: string, size: number): string {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

/** A folder with nested folders, odd names (spaces, unicode, long), an empty file, an empty folder and a 3 MiB file. */
function makeTree(dir: string): void {
  mkdirSync(join(dir, 'boot/extlinux'), { recursive: true });
  mkdirSync(join(dir, 'with space/ünïcödé 名前'), { recursive: true });
  mkdirSync(join(dir, 'empty folder'));
  writeFileSync(join(dir, 'boot/extlinux/extlinux.conf'), 'LABEL linux\n  KERNEL /vmlinuz\n');
  writeFileSync(join(dir, 'with space/ünïcödé 名前/файл.txt'), 'unicode content ✓\n');
  writeFileSync(join(dir, 'with space/a file name much longer than eight dot three allows.data'), pattern(5000, 7));
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'Big.bin'), pattern(3 * MiB + 123, 11));
  writeFileSync(join(dir, 'x[1] (copy).txt'), 'brackets\n');
}

/** Every entry below `dir`: relative path → "dir", "link:TARGET" or the file's SHA-256. */
function listTree(dir: string, skip: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip.includes(r)) continue;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) {
        out.set(r, 'dir');
        walk(r);
      } else if (st.isSymbolicLink()) out.set(r, `link:${readlinkSync(join(dir, r))}`);
      else
        out.set(
          r,
          createHash('sha256')
            .update(readFileSync(join(dir, r)))
            .digest('hex'),
        );
    }
  };
  walk('');
  return out;
}

/** Copies `size` bytes at `offset` of the card into a file of its own (the partition as a device would show it). */
function cutPartition(img: string, offset: number, size: number, out: string): string {
  const buf = Buffer.alloc(size);
  const fd = openSync(img, 'r');
  readSync(fd, buf, 0, size, offset);
  closeSync(fd);
  writeFileSync(out, buf);
  return out;
}

function checkFat(part: string, src: string, label: string, volumeId: string, version: string): void {
  const fsck = tool('fsck.fat', ['-n', part]);
  assert.equal(fsck.status, 0, `fsck.fat -n: ${fsck.stdout}${fsck.stderr}`);
  const ids = Object.fromEntries(
    tool('blkid', ['-p', '-o', 'export', part])
      .stdout.trim()
      .split('\n')
      .map((l) => l.split('=')),
  );
  assert.deepEqual([ids.TYPE, ids.LABEL, ids.UUID, ids.VERSION], ['vfat', label, volumeId, version]);
  const back = mkdtempSync(join(tmp, 'fat-back-'));
  const cp = tool('mcopy', ['-s', '-n', '-m', '-i', part, '::/*', `${back}/`], { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' });
  assert.equal(cp.status, 0, cp.stderr);
  assert.deepEqual(listTree(back), listTree(src), 'mcopy reads back exactly the folder');
}

function checkExt4(part: string, src: string, label: string, uuid: string): void {
  const fsck = tool('e2fsck', ['-fn', part]);
  assert.equal(fsck.status, 0, `e2fsck -fn: ${fsck.stdout}${fsck.stderr}`);
  const head = tool('dumpe2fs', ['-h', part]).stdout;
  assert.match(head, new RegExp(`^Filesystem volume name:\\s+${label}$`, 'm'));
  assert.match(head, new RegExp(`^Filesystem UUID:\\s+${uuid}$`, 'm'));
  const back = mkdtempSync(join(tmp, 'ext4-back-'));
  const dump = tool('debugfs', ['-R', `rdump / ${back}`, part]);
  assert.equal(dump.status, 0, dump.stderr);
  assert.deepEqual(listTree(back, ['lost+found']), listTree(src), 'debugfs rdump reads back exactly the folder (symlinks included)');
}

test('qemu-x86_64 with --fs esp=DIR --fs rootfs=DIR: fsck-clean FAT12 and ext4 holding exactly the folders; a second run writes nothing', { skip: SKIP }, () => {
  const fat = join(tmp, 'fat-src');
  const ext = join(tmp, 'ext-src');
  makeTree(fat);
  makeTree(ext);
  symlinkSync('boot/extlinux/extlinux.conf', join(ext, 'link to conf'));
  symlinkSync('/nowhere/at/all', join(ext, 'boot/dangling'));
  const img = card('qemu.img', 64 * MiB);

  const dry = run('provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${fat}`, '--fs', `rootfs=${ext}`, '--guid-seed', 'fs-test', '--dry-run');
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(
    dry.stdout,
    /^fs {9}write FAT12 from .*fat-src → partition 1 "esp": label "ESP", volume ID [0-9A-F]{4}-[0-9A-F]{4}, 6 file\(s\), 5 folder\(s\), 3 MiB — new partition table$/m,
  );
  assert.match(
    dry.stdout,
    /^fs {9}write ext4 from .*ext-src → partition 2 "rootfs": label "rootfs", UUID [0-9a-f-]{36}, 6 file\(s\), 5 folder\(s\), 2 symlink\(s\), 3 MiB — new partition table$/m,
  );
  assert.equal(
    hash(img),
    createHash('sha256')
      .update(Buffer.alloc(64 * MiB))
      .digest('hex'),
    'the dry run wrote nothing',
  );

  const r1 = run('provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${fat}`, '--fs', `rootfs=${ext}`, '--guid-seed', 'fs-test', '--yes', '--json');
  assert.equal(r1.status, 0, r1.stderr);
  const { plan, result } = JSON.parse(r1.stdout);
  assert.deepEqual(
    result.imagesWritten.map((w: { name: string; bytes: number }) => [w.name, w.bytes]),
    [
      ['esp', 8 * MiB],
      ['rootfs', 32 * MiB],
    ],
  );
  const [esp, rootfs] = plan.table.partitions;
  const fsEsp = plan.images[0].filesystem;
  const fsRoot = plan.images[1].filesystem;
  assert.equal(fsEsp.fat, 12);
  checkFat(cutPartition(img, esp.start, esp.size, join(tmp, 'esp.part')), fat, 'ESP', fsEsp.uuid, 'FAT12');
  checkExt4(cutPartition(img, rootfs.start, rootfs.size, join(tmp, 'rootfs.part')), ext, 'rootfs', fsRoot.uuid);
  assert.deepEqual(readdirSync(work), [], 'the temporary images are gone');

  // Reading the folders moved their access times; a second run finds both file systems in place.
  for (const d of [fat, ext])
    for (const rel of listTree(d).keys()) if (!lstatSync(join(d, rel)).isSymbolicLink()) utimesSync(join(d, rel), new Date('2021-05-05'), lstatSync(join(d, rel)).mtime);
  const before = hash(img);
  const r2 = run('provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${fat}`, '--fs', `rootfs=${ext}`, '--yes', '--json');
  assert.equal(r2.status, 0, r2.stderr);
  const second = JSON.parse(r2.stdout);
  assert.deepEqual(
    second.plan.images.map((i: { action: string; reason: string }) => [i.action, i.reason]),
    [
      ['skip', 'the partition already holds this file system'],
      ['skip', 'the partition already holds this file system'],
    ],
  );
  assert.equal(second.result.unchanged, true);
  assert.equal(hash(img), before, 'the second run wrote nothing');

  // A changed file: only its file system is written again.
  writeFileSync(join(fat, 'empty'), 'not empty any more');
  const r3 = run('provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${fat}`, '--fs', `rootfs=${ext}`, '--yes', '--json');
  assert.equal(r3.status, 0, r3.stderr);
  const third = JSON.parse(r3.stdout);
  assert.deepEqual(
    third.plan.images.map((i: { action: string }) => i.action),
    ['write', 'skip'],
  );
  checkFat(cutPartition(img, esp.start, esp.size, join(tmp, 'esp2.part')), fat, 'ESP', fsEsp.uuid, 'FAT12');
  assert.deepEqual(readdirSync(work), []);
});

test('an MBR profile with fs (label, volume ID, UUID, folder) on a primary FAT16 and a logical ext4 partition', { skip: SKIP }, () => {
  const dir = join(tmp, 'mbr-profile');
  mkdirSync(join(dir, 'firmware'), { recursive: true });
  mkdirSync(join(dir, 'root'));
  makeTree(join(dir, 'firmware'));
  makeTree(join(dir, 'root'));
  const profile = join(dir, 'mbr-fs.json');
  writeFileSync(
    profile,
    JSON.stringify({
      name: 'mbr-fs',
      table: 'mbr',
      disk_signature: '0x1234abcd',
      partitions: [
        { name: 'boot', type: 'fat16', size: '20MiB', fs: { label: 'FIRMWARE', uuid: '1234-abcd', dir: 'firmware' } },
        { name: 'pstore', type: 'pstore', size: '2MiB', logical: true },
        { name: 'rootfs', type: 'linux', size: 'rest', logical: true, fs: { type: 'ext4', label: 'root', uuid: '0A1B2C3D-0000-4000-8000-00000000abcd', dir: 'root' } },
      ],
      pstore: { partition: 'pstore', kmsg_size: 64, pmsg_size: 0, console_size: 0, ftrace_size: 0 },
    }),
  );
  const img = card('mbr.img', 64 * MiB);
  const r = run('provision', img, '--profile', profile, '--yes', '--json');
  assert.equal(r.status, 0, r.stderr);
  const { plan } = JSON.parse(r.stdout);
  const parts = plan.table.partitions;
  assert.deepEqual(
    parts.map((p: { number: number; name: string }) => [p.number, p.name]),
    [
      [1, 'boot'],
      [5, 'pstore'],
      [6, 'rootfs'],
    ],
  );
  checkFat(cutPartition(img, parts[0].start, parts[0].size, join(tmp, 'mbr-boot.part')), join(dir, 'firmware'), 'FIRMWARE', '1234-ABCD', 'FAT16');
  checkExt4(cutPartition(img, parts[2].start, parts[2].size, join(tmp, 'mbr-root.part')), join(dir, 'root'), 'root', '0a1b2c3d-0000-4000-8000-00000000abcd');
  const before = hash(img);
  const again = run('provision', img, '--profile', profile, '--yes');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /nothing written/);
  assert.equal(hash(img), before);
});

test('--fs refusals: exit codes, clear messages, nothing written, no temporary file left', { skip: SKIP }, () => {
  const img = card('refuse.img', 64 * MiB);
  const h = hash(img);
  const src = join(tmp, 'refuse-src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.txt'), 'a');
  const expect = (args: string[], code: number, message: RegExp) => {
    const r = run('provision', img, '--profile', 'qemu-x86_64', '--yes', ...args);
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(hash(img), h, `${args.join(' ')} wrote nothing`);
    assert.deepEqual(readdirSync(work), [], `${args.join(' ')} left no temporary file`);
  };
  expect(['--fs', `rootfs=${src}`, '--image', `rootfs=${join(src, 'a.txt')}`], 2, /--fs rootfs=… and --image rootfs=… both fill partition "rootfs"/);
  expect(['--fs', `pstore=${src}`], 2, /partition "pstore" is the pstore partition/);
  expect(['--fs', `nope=${src}`], 2, /has no partition "nope"/);
  expect(['--fs', `rootfs=${join(tmp, 'no-such-folder')}`], 2, /no such folder/);
  expect(['--fs', 'rootfs='], 2, /expected NAME=DIR/);

  // FAT cannot hold symbolic links, device nodes or names that differ only in case: refused, not followed.
  const links = join(tmp, 'links');
  mkdirSync(join(links, 'sub'), { recursive: true });
  writeFileSync(join(links, 'sub/target'), 't');
  symlinkSync('target', join(links, 'sub/link'));
  expect(['--fs', `esp=${links}`], 6, /a FAT file system cannot hold this folder:\n {2}symbolic links, which FAT cannot hold .*: sub\/link/);
  const cases = join(tmp, 'cases');
  mkdirSync(cases);
  writeFileSync(join(cases, 'README'), '1');
  writeFileSync(join(cases, 'readme'), '2');
  expect(['--fs', `esp=${cases}`], 6, /names that differ only in case, which are one name on FAT: README and readme/);

  // Too big for the 8 MiB esp / 32 MiB rootfs: refused before any write.
  const big = join(tmp, 'big');
  mkdirSync(big);
  writeFileSync(join(big, 'nine.bin'), pattern(9 * MiB, 3));
  expect(['--fs', `esp=${big}`], 6, /does not fit in a 8 MiB vfat file system: its files alone take 9 MiB; nothing was written/);
  const many = join(tmp, 'many');
  mkdirSync(many);
  for (let i = 0; i < 7; i++) writeFileSync(join(many, `f${i}.bin`), pattern(1_195_000, i));
  expect(['--fs', `esp=${many}`], 6, /does not fit in a 8 MiB vfat file system: mcopy: /);
  const ext = join(tmp, 'ext-big');
  mkdirSync(ext);
  for (let i = 0; i < 31; i++) writeFileSync(join(ext, `f${i}.bin`), pattern(MiB, i));
  expect(['--fs', `rootfs=${ext}`], 6, /does not fit in a 32 MiB ext4 file system: mke2fs: /);

  // The card lies inside the folder: refused by the write gate.
  const holder = join(tmp, 'holder');
  mkdirSync(holder);
  const inside = join(holder, 'card.img');
  writeFileSync(inside, '');
  truncateSync(inside, 64 * MiB);
  const r = run('provision', inside, '--profile', 'qemu-x86_64', '--yes', '--fs', `rootfs=${holder}`);
  assert.equal(r.status, 12, r.stderr);
  assert.match(r.stderr, /lies inside --fs folder/);
  assert.deepEqual(readdirSync(work), []);
});

/** The names of the processes whose parent is `pid` (from /proc). */
function childCommands(pid: number): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (Number(stat.slice(close + 2).split(' ')[1]) === pid) out.push(stat.slice(stat.indexOf('(') + 1, close));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

test('Ctrl-C while a file system is being built: exit 130, the card untouched, no temporary file or tool left; the same command then finishes', { skip: SKIP }, async () => {
  const img = card('sigint.img', 64 * MiB);
  const h = hash(img);
  const src = join(tmp, 'sigint-src');
  mkdirSync(src);
  // enough files that mcopy runs for a while (in folders: FAT12's root directory holds 512 entries)
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(src, `dir-${d}`));
    for (let i = 0; i < 30; i++) writeFileSync(join(src, `dir-${d}`, `file-${i}.txt`), pattern(2000, d * 30 + i));
  }
  const args = [bin, 'provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${src}`, '--guid-seed', 'sigint', '--yes'];
  const child = spawn(process.execPath, args, { env: { ...process.env, TMPDIR: work }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let ended = false;
  void done.then(() => (ended = true));
  let tools: string[] = [];
  while (!ended && !(tools = childCommands(child.pid!)).some((c) => /^(mkfs\.fat|mcopy|mke2fs|debugfs)$/.test(c))) await new Promise((r) => setTimeout(r, 5));
  assert.ok(!ended, `the build ended before a file system tool was seen:\n${stderr}`);
  child.kill('SIGINT');
  const code = await done;
  assert.equal(code, 130, `interrupted during ${tools.join(', ')}:\n${stderr}`);
  assert.equal(hash(img), h, 'nothing was written to the card');
  assert.deepEqual(readdirSync(work), [], 'no temporary file left');
  assert.deepEqual(childCommands(child.pid!), [], 'no tool left running');

  const again = run('provision', img, '--profile', 'qemu-x86_64', '--fs', `esp=${src}`, '--guid-seed', 'sigint', '--yes');
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(readdirSync(work), []);
});

test('--fs on a partition whose type implies no file system asks for an fs in the profile', { skip: SKIP }, () => {
  const profile = join(tmp, 'swap.json');
  writeFileSync(
    profile,
    JSON.stringify({
      name: 'swap',
      partitions: [
        { name: 'swap', type: 'linux-swap', size: '8MiB' },
        { name: 'data', type: 'linux', size: '8MiB' },
      ],
    }),
  );
  const src = join(tmp, 'swap-src');
  mkdirSync(src);
  const img = card('swap.img', 32 * MiB);
  const r = run('provision', img, '--profile', profile, '--yes', '--fs', `swap=${src}`);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /partition "swap" has type linux-swap, which implies no file system; give the partition an "fs"/);
});

test('profile fs: checked field by field', () => {
  const base = (fs: unknown, extra: object = {}) => ({ name: 'x', partitions: [{ name: 'p', type: 'esp', size: '8MiB', fs, ...extra }] });
  const errs = (json: unknown) => checkProfile(json, '/nonexistent/x.json').errors;
  assert.deepEqual(errs(base({})), []);
  assert.equal(checkProfile(base({ label: 'EFI', uuid: '1234-abcd', fat: 16 }), '/x/x.json').profile!.partitions![0].fs!.uuid, '1234ABCD');
  assert.deepEqual(errs(base({ label: 'MUCH TOO LONG' })), [
    'partitions[0].fs.label: "MUCH TOO LONG": a FAT label is up to 11 printable ASCII characters, without " * + , . / : ; < = > ? [ \\ ] |',
  ]);
  assert.deepEqual(errs(base({ uuid: '12345' })), ['partitions[0].fs.uuid: "12345": a FAT volume ID is 8 hex digits, e.g. "1234-ABCD"']);
  assert.deepEqual(errs(base({ type: 'ext4', uuid: '1234-ABCD' })), ['partitions[0].fs.uuid: "1234-ABCD": an ext4 UUID is 8-4-4-4-12 hex digits']);
  assert.deepEqual(errs(base({ type: 'ext4', fat: 32 })), ['partitions[0].fs.fat: is 12, 16 or 32, and only for "type": "vfat"']);
  assert.deepEqual(errs(base({ type: 'btrfs' })), ['partitions[0].fs.type: must be "vfat" or "ext4"']);
  assert.deepEqual(errs(base({}, { image: 'x.img' })), ['partitions[0].fs: excludes "image": the partition gets either an image or a file system built from a folder']);
  assert.deepEqual(errs({ name: 'x', partitions: [{ name: 'p', type: 'linux-swap', size: '8MiB', fs: {} }] }), [
    'partitions[0].fs.type: is required: partition type linux-swap implies no file system ("vfat" or "ext4")',
  ]);
  assert.deepEqual(errs({ name: 'x', partitions: [{ name: 'p', type: 'pstore', size: '2MiB', fs: { type: 'ext4' } }], pstore: { partition: 'p', kmsg_size: 64 } }), [
    'partitions[0].fs: the pstore partition holds the pstore region, not a file system',
  ]);
  assert.deepEqual(checkProfile(base({ type: 'ext4' }), '/x/x.json').warnings, ['partitions[0].fs.type: "ext4" in a partition of type esp, which implies vfat']);
});

test('a missing host tool is a ToolMissingError (exit 9) naming the Debian package', () => {
  assert.throws(
    () => requireTool({ name: 'crashcart-no-such-mkfs', debianPackage: 'dosfstools' }, 'to build the FAT file system of --fs esp=DIR'),
    (e: unknown) =>
      e instanceof ToolMissingError &&
      e.exitCode === ExitCode.TOOL_MISSING &&
      e.message === 'crashcart-no-such-mkfs is not installed; it is needed to build the FAT file system of --fs esp=DIR (Debian package dosfstools: apt-get install dosfstools)',
  );
});
