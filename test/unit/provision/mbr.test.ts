/**
 * Provisioning MBR layouts: the bundled rpi-mbr profile end to end through the executable (dry
 * run, idempotence, sfdisk and fdisk reading back the plan, the printed command line naming the
 * logical pstore partition), and through the library: replacing a GPT only when asked with its
 * records backed up first and its headers wiped, seeded disk signatures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { UsageError } from '../../../src/errors.js';
import { layoutPartitions, writeGpt } from '../../../src/partition/gpt-write.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { selectRegion } from '../../../src/partition/select-region.js';
import { splitCmdline } from '../../../src/pstore/cmdline.js';
import { loadProfile, validateProfile } from '../../../src/profile/board-profile.js';
import { applyProvision, planProvision, type ProvisionPlan } from '../../../src/provision/provision.js';
import { repoRoot } from '../../helpers/kernel-fixtures.js';
import { SKIP_FDISK, SKIP_SFDISK, fdiskList, sfdiskJson } from '../../helpers/disk-tools.js';
import { putKmsgZone } from '../../helpers/zone-builder.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const bin = join(repoRoot, 'bin/crashcart');
const tmp = mkdtempSync(join(tmpdir(), 'crashcart-prov-mbr-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
/** Where rpi-mbr writes table sectors: the MBR and the EBRs in the extended partition (6660 MiB on). */
const TABLE_AREAS = [0, 6660 * MiB, 6665 * MiB];

/** SHA-256 of the first MiB of each table area of an 8 GiB card image. */
function hash(p: string): string {
  const h = createHash('sha256');
  const fd = openSync(p, 'r');
  try {
    for (const at of TABLE_AREAS) {
      const b = Buffer.alloc(MiB);
      readSync(fd, b, 0, MiB, at);
      h.update(b);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** A sparse card image of `size` bytes. */
function card(name: string, size: number): string {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

/** rpi-mbr provisioned on a sparse 8 GiB card image (`card` makes a new one); the plan as the executable printed it. */
function provisionRpi(img: string): { img: string; plan: ProvisionPlan; stdout: string } {
  const r = run('provision', img, '--profile', 'rpi-mbr', '--yes');
  assert.equal(r.status, 0, r.stderr);
  const j = run('provision', img, '--profile', 'rpi-mbr', '--dry-run', '--json');
  assert.equal(j.status, 0, j.stderr);
  return { img, plan: JSON.parse(j.stdout).plan, stdout: r.stdout };
}

let shared: ReturnType<typeof provisionRpi> | undefined;
/** One provisioned rpi-mbr card for the read-back tests. */
const provisionedRpi = () => (shared ??= provisionRpi(card('rpi-shared.img', 8 * GiB)));

test('rpi-mbr: dry run writes nothing; provisioning writes the MBR; a second run finds it matching', () => {
  const img = card('rpi-dry.img', 8 * GiB);
  const before = hash(img);
  const d = run('provision', img, '--profile', 'rpi-mbr', '--dry-run');
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stdout, /^table {6}write a new MBR \(512-byte sectors, disk signature 0x5452574f\)$/m);
  assert.match(d.stdout, /^ {2}3 {2}\(extended\) {2}0x05 +6\.5 GiB +1\.5 GiB {2}-$/m);
  assert.match(d.stdout, /^ {2}5 {2}pstore +pstore +6\.5 GiB +4 MiB {2}5452574f-05$/m);
  assert.equal(hash(img), before);
  const { stdout } = provisionRpi(img);
  assert.match(stdout, /^done {7}wrote the MBR \(4 partitions\)$/m);
  const after = hash(img);
  const again = run('provision', img, '--profile', 'rpi-mbr', '--yes', '--json');
  assert.equal(again.status, 0, again.stderr);
  const out = JSON.parse(again.stdout);
  assert.equal(out.plan.table.action, 'keep');
  assert.equal(out.plan.changes, false);
  assert.equal(hash(img), after);
});

test('rpi-mbr: sfdisk --json reads back exactly the planned table', { skip: SKIP_SFDISK }, () => {
  const { img, plan } = provisionedRpi();
  const { table, stderr } = sfdiskJson(img);
  assert.equal(stderr, '');
  assert.equal(table.label, 'dos');
  assert.equal(table.id, `0x${plan.table.diskSignature}`);
  const ext = plan.table.extended!;
  const hex = (t: string) => parseInt(t, 16).toString(16);
  assert.deepEqual(
    table.partitions.map((q) => ({ n: Number(q.node.slice(img.length)), start: q.start * 512, size: q.size * 512, type: q.type, boot: !!q.bootable })),
    [
      ...plan.table.partitions.filter((p) => !p.logical).map((p) => ({ n: p.number, start: p.start, size: p.size, type: hex(p.type), boot: !!p.bootable })),
      { n: ext.number, start: ext.start, size: ext.size, type: '5', boot: false },
      ...plan.table.partitions.filter((p) => p.logical).map((p) => ({ n: p.number, start: p.start, size: p.size, type: hex(p.type), boot: !!p.bootable })),
    ],
  );
  assert.deepEqual(
    plan.table.partitions.map((p) => [p.number, p.type, p.start]),
    [
      [1, '0x0c', 4 * MiB],
      [2, '0x83', 516 * MiB],
      [5, '0xda', 6661 * MiB],
      [6, '0x83', 6666 * MiB],
    ],
  );
});

test('rpi-mbr: fdisk -l lists the planned table', { skip: SKIP_FDISK }, () => {
  const { img, plan } = provisionedRpi();
  const l = fdiskList(img);
  assert.equal(l.label, 'dos');
  assert.equal(l.identifier, '0x5452574f');
  assert.deepEqual(
    l.rows.map((r) => [r.number, r.start * 512, r.sectors * 512, r.id, r.typeName]),
    [
      [1, 4 * MiB, 512 * MiB, 'c', 'W95 FAT32 (LBA)'],
      [2, 516 * MiB, 6 * GiB, '83', 'Linux'],
      [3, plan.table.extended!.start, plan.table.extended!.size, '5', 'Extended'],
      [5, 6661 * MiB, 4 * MiB, 'da', 'Non-FS data'],
      [6, 6666 * MiB, 8 * GiB - 6666 * MiB, '83', 'Linux'],
    ],
  );
});

test('rpi-mbr: the printed pstore_blk.blkdev and root=PARTUUID name the planned partitions, logical ones included', async () => {
  const { img, plan } = provisionedRpi();
  const cmdline = new Map(splitCmdline(plan.cmdline!).map(({ key, value }) => [key, value]));
  assert.equal(cmdline.get('pstore_blk.blkdev'), '/dev/mmcblk0p5');
  assert.equal(cmdline.get('root'), 'PARTUUID=5452574f-02');
  const dev = await openImageFile(img);
  try {
    const table = await readPartitionTable(dev);
    const pstore = plan.table.partitions.find((p) => p.name === 'pstore')!;
    assert.equal(pstore.uuid, '5452574f-05');
    for (const spec of ['/dev/mmcblk0p5', `PARTUUID=${pstore.uuid}`, 'PARTUUID=5452574f-02/PARTNROFF=3', `/dev/disk/by-partuuid/${pstore.uuid}`]) {
      const r = selectRegion(dev, table, { kind: 'blkdev', spec });
      assert.equal(r.partition?.number, 5, spec);
      assert.deepEqual([r.device.offset, r.device.size], [pstore.start, pstore.size], spec);
    }
    const root = selectRegion(dev, table, { kind: 'blkdev', spec: cmdline.get('root')! });
    assert.deepEqual([root.partition?.number, root.device.offset], [2, 516 * MiB]);
  } finally {
    await dev.close();
  }
});

const small = (extra: Record<string, unknown> = {}) =>
  validateProfile(
    {
      name: 'small-mbr',
      table: 'mbr',
      partitions: [
        { name: 'boot', type: 'fat32', size: '8MiB', bootable: true },
        { name: 'root', type: '83', size: '16MiB' },
        { name: 'pstore', type: 'pstore', size: '2MiB', logical: true },
        { name: 'data', type: 'linux', size: 'rest', logical: true },
      ],
      pstore: { partition: 'pstore', kmsg_size: 64, pmsg_size: 0, console_size: 0, ftrace_size: 0 },
      ...extra,
    },
    '/nowhere/small-mbr.json',
  );

test('a GPT card is only replaced when asked: its records are backed up first, its GPT headers wiped', async () => {
  const dev = new MemoryDevice(new Uint8Array(64 * MiB), { name: 'card' });
  await writeGpt(dev, {
    sectorSize: 512,
    partitions: layoutPartitions([{ name: 'pstore', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', size: 2 * MiB, start: 40 * MiB }], {
      sectorSize: 512,
      deviceSize: dev.size,
    }),
  });
  const payload = new TextEncoder().encode('Oops: 0000 [#1] under the GPT\n');
  putKmsgZone(dev.data.subarray(40 * MiB), 0, 65536, { sec: 1700000000n, nsec: 5, compressed: false, counter: 1, reason: 2, payload }, 'le', 'lp64');
  await assert.rejects(planProvision(dev, small()), (e: unknown) => e instanceof UsageError && /the card has a GPT with 1 partition\(s\)[\s\S]*--replace-table/.test(e.message));
  const plan = await planProvision(dev, small(), { replaceTable: true });
  assert.equal(plan.table.action, 'replace');
  assert.deepEqual(
    plan.recordsAtRisk.map((r) => [r.offset, r.records]),
    [[40 * MiB, ['dmesg-pstore_blk-0']]],
  );
  const backup = join(tmp, 'backup-gpt');
  const r = await applyProvision(dev, plan, { backupDir: backup });
  assert.match(readFileSync(join(backup, 'dmesg-pstore_blk-0'), 'utf8'), /under the GPT/);
  assert.equal(r.tableWritten, true);
  const t = (await readPartitionTable(dev))!;
  assert.equal(t.kind, 'mbr');
  assert.deepEqual(t.warnings, [], 'no GPT header is left behind the MBR');
  for (const lba of [1, dev.size / 512 - 1]) assert.notEqual(Buffer.from(dev.data.subarray(lba * 512, lba * 512 + 8)).toString('latin1'), 'EFI PART');
  assert.deepEqual(
    t.partitions.map((p) => [p.number, p.type, !!p.bootable]),
    [
      [1, 0x0c, true],
      [2, 0x83, false],
      [3, 0x05, false],
      [5, 0xda, false],
      [6, 0x83, false],
    ],
  );
  assert.equal((await planProvision(dev, small())).changes, false);
});

test('an MBR card is not replaced by a GPT profile unless asked; the card keeps its signature when the profile fixes none', async () => {
  const dev = new MemoryDevice(new Uint8Array(64 * MiB), { name: 'card' });
  await applyProvision(dev, await planProvision(dev, small()));
  const sig = (await readPartitionTable(dev))!.diskSignature;
  const again = await planProvision(dev, small());
  assert.equal(again.table.action, 'keep');
  assert.equal(again.table.diskSignature, sig);
  await assert.rejects(planProvision(dev, loadProfile('qemu-x86_64')), /the card has an MBR partition table with 5 partition/);
  // a fixed signature that differs makes the table differ
  await assert.rejects(planProvision(dev, small({ disk_signature: sig === 'a1b2c3d4' ? '0a0b0c0d' : 'a1b2c3d4' })), /disk signature is 0x/);
});

test('--guid-seed gives reproducible disk signatures and PARTUUIDs', async () => {
  const plans = await Promise.all([1, 2].map(() => planProvision(new MemoryDevice(new Uint8Array(64 * MiB), { name: 'card' }), small(), { guidSeed: 'bench-3' })));
  assert.equal(plans[0].table.diskSignature, plans[1].table.diskSignature);
  assert.deepEqual(
    plans[0].table.partitions.map((p) => p.uuid),
    [1, 2, 5, 6].map((n) => `${plans[0].table.diskSignature}-0${n}`),
  );
  assert.match(plans[0].cmdline!, new RegExp(`pstore_blk\\.blkdev=/dev/disk/by-partuuid/${plans[0].table.diskSignature}-05 `));
});

test('imx8mm-sd: the boot loader goes to its raw offset before the first partition through the flash pipeline; once there it is skipped; too large is refused before writing', () => {
  const img = card('imx.img', 2 * GiB);
  const boot = join(tmp, 'imx-boot.bin');
  const loader = Buffer.alloc(1234567);
  for (let i = 0; i < loader.length; i++) loader[i] = (i * 131 + (i >> 9)) & 0xff;
  writeFileSync(boot, loader);
  const r = run('provision', img, '--profile', 'imx8mm-sd', '--image', `bootloader=${boot}`, '--yes', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(
    out.plan.images.map((i: { name: string; offset: number; capacity: number; partition?: number }) => [i.name, i.offset, i.capacity, i.partition]),
    [['bootloader', 33 * 1024, 8159 * 1024, undefined]],
  );
  assert.deepEqual(out.result.imagesWritten, [{ name: 'bootloader', bytes: loader.length }]);
  const fd = openSync(img, 'r');
  const got = Buffer.alloc(loader.length + 1024);
  readSync(fd, got, 0, got.length, 33 * 1024 - 512);
  closeSync(fd);
  assert.ok(got.subarray(512, 512 + loader.length).equals(loader), 'the boot loader is at byte 33792');
  assert.ok(got.subarray(0, 512).every((b) => b === 0) && got.subarray(512 + loader.length).every((b) => b === 0), 'nothing around it is touched');
  const again = run('provision', img, '--profile', 'imx8mm-sd', '--image', `bootloader=${boot}`, '--yes', '--json');
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).plan.images[0].action, 'skip');
  assert.equal(JSON.parse(again.stdout).plan.changes, false);
  const big = join(tmp, 'big-boot.bin');
  writeFileSync(big, Buffer.alloc(8159 * 1024 + 512, 1));
  const tooBig = run('provision', img, '--profile', 'imx8mm-sd', '--image', `bootloader=${big}`, '--yes');
  assert.equal(tooBig.status, 6, tooBig.stderr);
  assert.match(tooBig.stderr, /larger than its partition \(8354816 bytes/);
});
