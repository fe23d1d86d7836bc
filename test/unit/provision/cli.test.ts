/**
 * `crashcart provision` and `crashcart profile` end to end: the real executable on image files,
 * checked by hashing the image and by independent partitioning tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/kernel-fixtures.js';
import { SKIP_SFDISK, SKIP_SGDISK, sfdiskJson, sgdiskVerify } from '../../helpers/disk-tools.js';
import { loadProfile, resolvePartitionType } from '../../../src/profile/board-profile.js';

const MiB = 1024 * 1024;
const bin = join(repoRoot, 'bin/crashcart');
const tmp = mkdtempSync(join(tmpdir(), 'crashcart-prov-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const hash = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function card(name: string, size: number): string {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

test('dry run prints the plan and leaves the image byte for byte unchanged', () => {
  const img = card('dry.img', 64 * MiB);
  const before = hash(img);
  const r = run('provision', img, '--profile', 'qemu-x86_64', '--dry-run');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^table {6}write a new GPT \(512-byte sectors/m);
  assert.match(r.stdout, /^ {2}3 {2}pstore {2}pstore +41 MiB +2 MiB {2}[0-9a-f-]{36}$/m);
  assert.match(r.stdout, /^cmdline {4}pstore_blk\.blkdev=\/dev\/vda3 pstore_blk\.best_effort=y pstore_blk\.kmsg_size=64 /m);
  assert.match(r.stdout, /^dry run: nothing written$/m);
  assert.equal(hash(img), before);
  const j = run('provision', img, '--profile', 'qemu-x86_64', '--dry-run', '--json');
  assert.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.dryRun, true);
  assert.equal(out.plan.table.action, 'write');
  assert.equal(out.result, null);
  assert.equal(hash(img), before);
});

test('provision, then a second run that finds the card matching and writes nothing', () => {
  const img = card('twice.img', 64 * MiB);
  const root = join(tmp, 'root.img');
  writeFileSync(root, Buffer.alloc(MiB + 512, 0x3c));
  const r1 = run('provision', img, '--profile', 'qemu-x86_64', '--yes', '--image', `rootfs=${root}`, '--guid-seed', 'cli');
  assert.equal(r1.status, 0, r1.stderr);
  assert.match(r1.stdout, /^done {7}wrote the GPT \(3 partitions\)$/m);
  assert.match(r1.stdout, /^done {7}wrote .*root\.img to partition 2 "rootfs" \(1 MiB\)$/m);
  assert.match(r1.stdout, /^boot the board with:\n {2}pstore_blk\.blkdev=\/dev\/vda3 /m);
  const after1 = hash(img);
  const r2 = run('provision', img, '--profile', 'qemu-x86_64', '--yes', '--image', `rootfs=${root}`, '--json');
  assert.equal(r2.status, 0, r2.stderr);
  const out = JSON.parse(r2.stdout);
  assert.equal(out.plan.changes, false);
  assert.equal(out.plan.table.action, 'keep');
  assert.equal(out.plan.images[0].action, 'skip');
  assert.equal(out.result.unchanged, true);
  assert.equal(out.result.bytesWritten, 0);
  const r3 = run('provision', img, '--profile', 'qemu-x86_64');
  assert.equal(r3.status, 0, r3.stderr);
  assert.match(r3.stdout, /^the card already matches profile qemu-x86_64; nothing written$/m);
  assert.equal(hash(img), after1);
});

test('refusals have their own exit codes and write nothing', () => {
  const small = card('small.img', 32 * MiB);
  const hs = hash(small);
  let r = run('provision', small, '--profile', 'qemu-x86_64', '--yes');
  assert.equal(r.status, 6, r.stderr);
  assert.match(r.stderr, /too small for profile qemu-x86_64: 33554432 bytes \(32 MiB\), it needs at least 67108864 bytes/);
  assert.equal(hash(small), hs);

  const other = card('other.img', 64 * MiB);
  const otherProfile = join(tmp, 'other-board.json');
  writeFileSync(
    otherProfile,
    JSON.stringify({
      name: 'other-board',
      partitions: [
        { name: 'boot', type: 'basic-data', size: '16MiB' },
        { name: 'data', type: 'linux', size: 'rest' },
      ],
    }),
  );
  assert.equal(run('provision', other, '--profile', otherProfile, '--yes').status, 0);
  const ho = hash(other);
  r = run('provision', other, '--profile', 'qemu-x86_64', '--yes');
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /differs from profile qemu-x86_64:\n {2}partition 1 is named "boot", expected "esp"\n {2}partition 1 "boot" has type EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, expected C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n/,
  );
  assert.match(r.stderr, /pass --replace-table/);
  assert.equal(hash(other), ho);
  r = run('provision', other, '--profile', 'qemu-x86_64', '--yes', '--replace-table');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^table {6}REPLACE the partition table/m);
  assert.notEqual(hash(other), ho);

  const img = card('noconfirm.img', 64 * MiB);
  const hi = hash(img);
  r = spawnSync(process.execPath, [bin, 'provision', img, '--profile', 'qemu-x86_64'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no terminal to confirm on: pass --yes/);
  assert.equal(hash(img), hi);

  r = run('provision', img, '--profile', 'no-such-board');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no board profile "no-such-board"/);
  r = run('provision', img, '--profile', 'qemu-x86_64', '--image', 'rootfs');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--image rootfs: expected NAME=FILE/);
  r = run('provision', join(tmp, 'missing.img'), '--profile', 'qemu-x86_64');
  assert.equal(r.status, 2);
  assert.equal(hash(img), hi);
});

test('profile list, show and validate', () => {
  let r = run('profile', 'list');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]),
    ['brcmstb-emmc', 'generic-armhf', 'imx8mm-sd', 'qemu-x86_64', 'rpi-hybrid', 'rpi-mbr', 'rpi-sd'],
  );
  r = run('profile', 'show', 'generic-armhf');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^abi {8}little-endian, ilp32$/m);
  assert.match(r.stdout, /^ {2}1 {2}boot +linux +64 MiB {2}- {2}\[attributes 2\]$/m);
  assert.match(r.stdout, /^ {2}dmesg 0\.\.62 /m);
  r = run('profile', 'show', 'qemu-x86_64', '--json');
  assert.equal(JSON.parse(r.stdout).pstore.kmsg_size, 64);

  const bad = join(tmp, 'bad-board.json');
  writeFileSync(
    bad,
    JSON.stringify({
      name: 'bad-board',
      partitions: [
        { name: 'a', type: 'fat', size: '1MiB' },
        { name: 'p', type: 'pstore', size: 'rest' },
        { name: 'q', type: 'linux', size: '1MiB' },
      ],
    }),
  );
  r = run('profile', 'validate', bad);
  assert.equal(r.status, 6);
  assert.match(r.stderr, /is invalid \(2 problems\):\n {2}partitions\[0\]\.type: "fat" is neither a GUID nor a known alias/);
  assert.match(r.stderr, /\n {2}partitions\[1\]\.size: "rest" is only allowed for the last partition/);
  r = run('profile', 'validate', bad, '--json');
  assert.equal(r.status, 6);
  const lines = r.stdout.trim().split('\n');
  assert.equal(JSON.parse(lines.pop()!).class, 'image', 'the error object closes stdout');
  assert.equal(JSON.parse(lines.join('\n')).valid, false);
  r = run('profile', 'validate', join(repoRoot, 'hw-profiles/boards/rpi-sd.json'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /valid profile "rpi-sd", 3 partitions, pstore on pstore/);
  r = run('profile', 'validate', join(tmp, 'nope.json'));
  assert.equal(r.status, 2);
});

for (const name of ['qemu-x86_64', 'brcmstb-emmc', 'rpi-sd', 'generic-armhf']) {
  const provisioned = () => {
    const p = loadProfile(name);
    const img = card(`tools-${name}.img`, Math.max(p.card?.min_size ?? 0, 64 * MiB));
    const r = run('provision', img, '--profile', name, '--yes', '--json');
    assert.equal(r.status, 0, r.stderr);
    return { img, p, plan: JSON.parse(r.stdout).plan };
  };
  test(`sfdisk --json reads the ${name} card back as planned`, { skip: SKIP_SFDISK }, () => {
    const { img, p, plan } = provisioned();
    const { table, stderr } = sfdiskJson(img);
    assert.equal(stderr, '');
    assert.equal(table.label, 'gpt');
    assert.equal(table.id, plan.table.diskGuid);
    assert.deepEqual(
      table.partitions.map((q) => ({ name: q.name, type: q.type, uuid: q.uuid, start: q.start * 512, size: q.size * 512 })),
      p.partitions!.map((q, i) => ({
        name: q.name,
        type: resolvePartitionType(q.type),
        uuid: plan.table.partitions[i].uuid,
        start: plan.table.partitions[i].start,
        size: plan.table.partitions[i].size,
      })),
    );
    for (const q of table.partitions) assert.equal(q.start % 2048, 0, `${q.name} is 1 MiB aligned`);
  });
  test(`sgdisk --verify: no problems on the ${name} card`, { skip: SKIP_SGDISK }, () => {
    const { img } = provisioned();
    const v = sgdiskVerify(img);
    assert.equal(v.status, 0, v.output);
    assert.match(v.output, /No problems found/);
  });
}
