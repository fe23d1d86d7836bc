/**
 * The proof for `crashcart provision`: a card provisioned with the qemu-x86_64 profile boots in
 * QEMU, the kernel sees the GPT partitions exactly where the plan put them with the flashed
 * image in place, pstore_blk attaches to the pstore partition with the command line provision
 * printed and stores an Oops there, and crashcart extracts on the host what the kernel reads
 * back in a second boot. The card starts out holding another table with two kernel-written
 * records, which provisioning backs up before replacing the table. In the same boots, file
 * systems built from folders (`--fs`, profile `fs`): the guest kernel mounts the FAT esp of the
 * card and the FAT and ext4 partitions of a second card with an MBR profile (logical partitions
 * vdb5, vdb6) and sees exactly the folders' files. Run with scripts/vm-test.sh provision.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';
import { runVm } from './harness.js';

const bin = join(repoRoot, 'bin/crashcart');
const MiB = 1024 * 1024;

function crashcart(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `crashcart ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** A folder with nested folders, odd names, an empty file and a 2 MiB file; `link` adds a symbolic link (ext4 only). */
async function makeTree(dir: string, link: boolean): Promise<void> {
  await mkdir(join(dir, 'boot/extlinux'), { recursive: true });
  await mkdir(join(dir, 'with space/ünïcödé 名前'), { recursive: true });
  await writeFile(join(dir, 'boot/extlinux/extlinux.conf'), 'LABEL linux\n');
  await writeFile(join(dir, 'with space/ünïcödé 名前/a file name longer than eight dot three.txt'), 'unicode ✓\n');
  await writeFile(join(dir, 'empty'), '');
  const big = Buffer.alloc(2 * MiB + 77);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 9)) & 0xff;
  await writeFile(join(dir, 'big.bin'), big);
  if (link) await symlink('boot/extlinux/extlinux.conf', join(dir, 'conf link'));
}

/** What the guest's listing (see FS_LIST) should say about a folder: sorted `d PATH`, `l PATH -> TARGET`, `f PATH MD5`. */
async function expectedListing(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        lines.push(`d .${r}`);
        await walk(r);
      } else if (e.isSymbolicLink()) lines.push(`l .${r} -> ${await readlink(join(dir, r))}`);
      else lines.push(`f .${r} ${md5(await readFile(join(dir, r)))}`);
    }
  };
  await walk('');
  return lines.sort().join('\n');
}

/** Guest shell: mount a partition read-only and list what the kernel sees in it (lost+found left out). */
const FS_LIST = `
fs_list() { # DEVICE TYPE OPTIONS OUTPUT
  mkdir -p /mnt/fs && mount -t "$2" -o "ro,$3" "$1" /mnt/fs || vm_fail "mount $1 ($2) failed"
  cd /mnt/fs
  find . -mindepth 1 ! -path ./lost+found ! -path './lost+found/*' | while IFS= read -r p; do
    if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")"
    elif [ -d "$p" ]; then echo "d $p"
    else echo "f $p $(md5sum < "$p" | cut -d' ' -f1)"; fi
  done | LC_ALL=C sort | save_text "$4"
  cd / && umount /mnt/fs
}
modprobe vfat && modprobe nls_cp437 && modprobe nls_utf8 && modprobe crc32c_generic && modprobe ext4 || vm_fail "loading the file system modules failed"
`;
const VFAT_OPTS = 'codepage=437,iocharset=utf8';

test('qemu-x86_64 profile: provision → kernel sees the partitions and image → pstore_blk attaches with the printed command line → Oops → crashcart extracts what the kernel reads back', async (t) => {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vm-provision-'));
  try {
    // A 64 MiB card that still carries the stock61-gpt fixture: another GPT and two Oopses.
    const disk = join(dir, 'card.img');
    const old = gunzipSync(await readFile(join(kernelFixturesDir, 'stock61-gpt/disk.img.gz')));
    const fh = await open(disk, 'w');
    await fh.write(old, 0, old.length, 0);
    await fh.truncate(64 * MiB);
    await fh.close();
    const rootImage = Buffer.alloc(3 * MiB + 4096);
    for (let i = 0; i < rootImage.length; i++) rootImage[i] = (i * 131 + (i >> 12)) & 0xff;
    const root = join(dir, 'root.img');
    await writeFile(root, rootImage);
    // Folders for the file systems: the card's esp (FAT12), and a second, MBR card (FAT16 boot, logical pstore vdb5, logical ext4 root vdb6).
    const espDir = join(dir, 'esp-src');
    const mbrDir = join(dir, 'mbr');
    await makeTree(espDir, false);
    await makeTree(join(mbrDir, 'firmware'), false);
    await makeTree(join(mbrDir, 'root'), true);
    const mbrProfile = join(mbrDir, 'vm-mbr-fs.json');
    await writeFile(
      mbrProfile,
      JSON.stringify({
        name: 'vm-mbr-fs',
        table: 'mbr',
        disk_signature: '0x0ddba11c',
        partitions: [
          { name: 'boot', type: 'fat16', size: '20MiB', fs: { label: 'FIRMWARE', dir: 'firmware' } },
          { name: 'pstore', type: 'pstore', size: '3MiB', logical: true },
          { name: 'rootfs', type: 'linux', size: 'rest', logical: true, fs: { dir: 'root', label: 'vmroot' } },
        ],
        pstore: { partition: 'pstore', kmsg_size: 64, pmsg_size: 0, console_size: 0, ftrace_size: 0 },
      }),
    );
    const mbrDisk = join(dir, 'mbr.img');
    const mfh = await open(mbrDisk, 'w');
    await mfh.truncate(48 * MiB);
    await mfh.close();
    const mbrRun = JSON.parse(crashcart('provision', mbrDisk, '--profile', mbrProfile, '--yes', '--json'));
    const mbrParts: { number: number; start: number; size: number }[] = mbrRun.plan.table.partitions;
    assert.deepEqual(
      mbrParts.map((p) => p.number),
      [1, 5, 6],
    );

    // 1. Without --replace-table provisioning refuses; with it, the old records are saved first.
    const refused = spawnSync(process.execPath, [bin, 'provision', disk, '--profile', 'qemu-x86_64', '--yes'], { encoding: 'utf8' });
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /pass --replace-table/);
    const backup = join(dir, 'backup');
    const run1 = JSON.parse(
      crashcart('provision', disk, '--profile', 'qemu-x86_64', '--yes', '--json', '--replace-table', '--image', `rootfs=${root}`, '--fs', `esp=${espDir}`, '--backup', backup),
    );
    assert.equal(run1.plan.table.action, 'replace');
    assert.deepEqual(run1.result.backups[0].records.sort(), ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1']);
    const oldReadout = join(kernelFixturesDir, 'stock61-gpt/kernel-readout');
    for (const f of await readdir(oldReadout)) {
      assert.ok((await readFile(join(backup, f))).equals(await readFile(join(oldReadout, f))), `backup ${f} equals the old kernel's readout`);
    }
    const cmdline: string = run1.plan.cmdline;
    t.diagnostic(`board command line: ${cmdline}`);
    assert.match(cmdline, /^pstore_blk\.blkdev=\/dev\/vda3 pstore_blk\.best_effort=y pstore_blk\.kmsg_size=64 pstore_blk\.pmsg_size=0 /);
    const parts: { number: number; start: number; size: number; name: string }[] = run1.plan.table.partitions;

    // 2. Boot 1: partitions, image, pstore_blk on vda3, one Oops.
    const boot1 = await runVm({
      disks: [
        { path: disk, serial: 'card' },
        { path: mbrDisk, serial: 'mbr' },
      ],
      cmdline,
      timeoutMs: 150_000,
      env: { ROOT_BYTES: String(rootImage.length), VFAT_OPTS },
      script: `${FS_LIST}
        fs_list /dev/vda1 vfat "$VFAT_OPTS" esp.list
        fs_list /dev/vdb1 vfat "$VFAT_OPTS" mbr-boot.list
        fs_list /dev/vdb6 ext4 "" mbr-root.list
        for p in 1 5 6; do echo "$p $(cat /sys/block/vdb/vdb$p/start) $(cat /sys/block/vdb/vdb$p/size)"; done | save_text mbr-partitions
        for p in 1 2 3; do echo "$p $(cat /sys/block/vda/vda$p/start) $(cat /sys/block/vda/vda$p/size) $(grep PARTNAME /sys/block/vda/vda$p/uevent | cut -d= -f2)"; done | save_text partitions
        head -c "$ROOT_BYTES" /dev/vda2 | md5sum | cut -d' ' -f1 | save_text root.md5
        load_pstore_blk
        mount_pstore
        [ -z "$(ls /sys/fs/pstore)" ] || vm_fail "provisioned region shows records: $(ls /sys/fs/pstore)"
        cat /sys/module/pstore_blk/parameters/blkdev | save_text blkdev
        oops 1
      `,
    });
    const seen = boot1.outputs
      .get('partitions')!
      .toString()
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    assert.deepEqual(
      seen.map(([n, start, size, name]) => ({ number: Number(n), start: Number(start) * 512, size: Number(size) * 512, name })),
      parts.map((p) => ({ number: p.number, start: p.start, size: p.size, name: p.name })),
      'the kernel sees the partitions the plan made',
    );
    assert.equal(boot1.outputs.get('root.md5')!.toString().trim(), md5(rootImage), 'the flashed image is in partition 2');
    assert.equal(boot1.outputs.get('blkdev')!.toString().trim(), '/dev/vda3');
    assert.equal(boot1.outputs.get('esp.list')!.toString().trim(), await expectedListing(espDir), 'the kernel sees the folder in the FAT esp');
    assert.equal(
      boot1.outputs.get('mbr-boot.list')!.toString().trim(),
      await expectedListing(join(mbrDir, 'firmware')),
      'the kernel sees the folder in the MBR FAT16 boot partition',
    );
    assert.equal(boot1.outputs.get('mbr-root.list')!.toString().trim(), await expectedListing(join(mbrDir, 'root')), 'the kernel sees the folder in the logical ext4 partition');
    assert.deepEqual(
      boot1.outputs
        .get('mbr-partitions')!
        .toString()
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map(Number)),
      mbrParts.map((p) => [p.number, p.start / 512, p.size / 512]),
      'the kernel sees the logical partitions vdb5 and vdb6 where the plan put them',
    );
    assert.match(boot1.dmesg, /Registered pstore_blk as persistent store backend/);
    assert.doesNotMatch(boot1.dmesg, /found (invalid|overtop) zone/);

    // 3. Provisioning again changes nothing: the table and image match, the region now holds the board's record.
    const before = md5(await readFile(disk));
    const run2 = JSON.parse(crashcart('provision', disk, '--profile', 'qemu-x86_64', '--yes', '--json', '--image', `rootfs=${root}`, '--fs', `esp=${espDir}`));
    assert.equal(run2.plan.images.find((i: { name: string }) => i.name === 'esp').action, 'skip', 'the esp file system is in place after a boot that mounted it read-only');
    assert.equal(run2.plan.changes, false);
    assert.equal(run2.plan.pstore.action, 'keep');
    assert.deepEqual(run2.plan.pstore.records, ['dmesg-pstore_blk-0']);
    assert.equal(md5(await readFile(disk)), before, 'the second run wrote nothing');

    // 4. Boot 2: the kernel's readout; crashcart extracts the same from the card by profile.
    const boot2 = await runVm({ disks: [{ path: disk, serial: 'card' }], cmdline, timeoutMs: 120_000, script: 'load_pstore_blk\nmount_pstore\nsave_pstore\n' });
    const kernel = new Map<string, Buffer>();
    for (const [k, v] of boot2.outputs) if (k.startsWith('pstore/')) kernel.set(k.slice('pstore/'.length), v);
    assert.deepEqual([...kernel.keys()], ['dmesg-pstore_blk-0']);
    assert.match(kernel.get('dmesg-pstore_blk-0')!.toString(), /crashcart test oops module 1: dereferencing NULL/);
    const out = join(dir, 'extract');
    const ix = JSON.parse(crashcart('pstore', 'extract', disk, '--profile', 'qemu-x86_64', '-o', out, '--json'));
    assert.deepEqual(
      (await readdir(out)).filter((f) => f !== 'index.json' && f !== 'raw'),
      ['dmesg-pstore_blk-0'],
    );
    assert.ok((await readFile(join(out, 'dmesg-pstore_blk-0'))).equals(kernel.get('dmesg-pstore_blk-0')!), 'crashcart extracts exactly what the kernel reads back');
    assert.equal(ix.records.length, 1);
    t.diagnostic(`scenario run time ${((Date.now() - started) / 1000).toFixed(1)} s (2 boots)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
