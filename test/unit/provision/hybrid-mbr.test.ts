/**
 * Provisioning a GPT profile with `hybrid_mbr`: the hybrid MBR is written with the table and
 * checked with Debian's sgdisk (-v) and sfdisk (the MBR side); a second run finds the card
 * matching and writes nothing; a card with the same GPT but a protective MBR (or a hybrid one
 * where the profile has none) is repaired in place, its GUIDs kept; another table is refused
 * unless --replace-table, as for any GPT profile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { UsageError } from '../../../src/errors.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { checkProfile, type BoardProfile } from '../../../src/profile/board-profile.js';
import { applyProvision, planProvision, type ProvisionOptions } from '../../../src/provision/provision.js';
import { baseProfile } from '../../helpers/base-profile.js';
import { SFDISK, SGDISK, sgdiskVerify } from '../../helpers/disk-tools.js';

const MiB = 1024 * 1024;
const SKIP_TOOLS = !SGDISK || !SFDISK ? 'sgdisk/sfdisk not installed (Debian packages gdisk, fdisk); skipping the independent checks' : false;

function profile(hybrid?: unknown[], change: (j: Record<string, unknown>) => void = () => undefined): BoardProfile {
  const j: Record<string, unknown> = { ...baseProfile(), ...(hybrid ? { hybrid_mbr: hybrid } : {}) };
  change(j);
  const r = checkProfile(j, '/nowhere/test-board.json');
  assert.deepEqual(r.errors, []);
  return r.profile!;
}

async function card(t: { after: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-hybrid-prov-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'card.img');
  writeFileSync(path, '');
  truncateSync(path, 64 * MiB);
  return { path, dir };
}

async function provision(path: string, p: BoardProfile, opts: ProvisionOptions = {}) {
  const dev = await openImageFile(path, { write: true });
  try {
    const plan = await planProvision(dev, p, { guidSeed: 'hybrid', ...opts });
    if (plan.changes) await applyProvision(dev, plan);
    return plan;
  } finally {
    await dev.close();
  }
}

const HYBRID = [{ partition: 'boot', type: 'fat32', bootable: true }, 'rootfs'];

test('a hybrid MBR is planned, written, accepted by sgdisk -v and read by sfdisk; the second run writes nothing', { skip: SKIP_TOOLS }, async (t) => {
  const { path } = await card(t);
  const plan = await provision(path, profile(HYBRID));
  assert.equal(plan.table.action, 'write');
  assert.deepEqual(plan.table.hybridMbr, [
    { slot: 1, type: '0xee', bootable: false, start: 512, size: MiB - 512 },
    { slot: 2, partition: 1, type: '0x0c', bootable: true, start: MiB, size: 8 * MiB },
    { slot: 3, partition: 3, type: '0x83', bootable: false, start: 10 * MiB, size: 54 * MiB - 1024 * 1024 },
  ]);
  const v = sgdiskVerify(path);
  assert.equal(v.status, 0, v.output);
  assert.match(v.output, /No problems found/);
  const dos = JSON.parse(spawnSync(SFDISK!, ['--label-nested', 'dos', '--json', path], { encoding: 'utf8' }).stdout) as {
    partitiontable: { partitions: { start: number; size: number; type: string; bootable?: boolean }[] };
  };
  assert.deepEqual(
    dos.partitiontable.partitions.map((x) => [x.start, x.size, x.type, x.bootable ?? false]),
    [
      [1, 2047, 'ee', false],
      [2048, 16384, 'c', true],
      [20480, 108544, '83', false],
    ],
  );
  const again = await provision(path, profile(HYBRID));
  assert.equal(again.table.action, 'keep', again.table.reasons.join('; '));
  assert.equal(again.changes, false);
});

test('same GPT, other sector 0: a protective MBR becomes the hybrid one (and back) as a repair, GUIDs kept', async (t) => {
  const { path } = await card(t);
  await provision(path, profile(), { guidSeed: 'first' });
  const dev = await openImageFile(path);
  const before = (await readPartitionTable(dev))!;
  await dev.close();
  const plan = await provision(
    path,
    profile(HYBRID, (j) => (j.hybrid_mbr as unknown[]).push('EE')),
  );
  assert.equal(plan.table.action, 'repair');
  assert.match(
    plan.table.reasons.join('\n'),
    /sector 0 holds slot 1: type 0xee, LBA 1\+131071; the profile's hybrid MBR is slot 1: type 0x0c bootable, LBA 2048\+16384; slot 2: type 0x83, LBA 20480\+108544; slot 3: type 0xee, LBA 1\+2047/,
  );
  assert.deepEqual(
    plan.table.partitions.map((p) => p.uuid),
    before.partitions.map((p) => p.uuid),
    'the GUIDs of the card are kept',
  );
  const dev2 = await openImageFile(path);
  const after = (await readPartitionTable(dev2))!;
  await dev2.close();
  assert.deepEqual(
    after.mbrSlots!.map((s) => [s.slot, s.type, s.bootable]),
    [
      [0, 0x0c, true],
      [1, 0x83, false],
      [2, 0xee, false],
    ],
  );
  assert.equal(after.diskGuid, before.diskGuid);
  const back = await provision(path, profile());
  assert.equal(back.table.action, 'repair');
  assert.match(back.table.reasons.join('\n'), /sector 0 holds a hybrid MBR .*; the profile asks for a protective MBR/);
  assert.equal((await provision(path, profile())).changes, false);
});

test('a card holding another table is refused without --replace-table, as for any GPT profile', async (t) => {
  const { path } = await card(t);
  await provision(
    path,
    profile(undefined, (j) => ((j.partitions as { size: string }[])[0].size = '16MiB')),
  );
  await assert.rejects(
    provision(path, profile(HYBRID)),
    (e: unknown) => e instanceof UsageError && /differs from profile test-board.*\n.*partition 1 "boot" spans LBA/s.test(e.message),
  );
  const replaced = await provision(path, profile(HYBRID), { replaceTable: true });
  assert.equal(replaced.table.action, 'replace');
  assert.equal((await provision(path, profile(HYBRID))).changes, false);
});
