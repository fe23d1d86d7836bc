/**
 * Writing MBR tables: layout (primary, extended, logical numbered from 5, alignment, order and
 * slot rules), the encoded sectors read back by crashcart's own parser and by Debian's sfdisk and
 * fdisk, seeded disk signatures, and the comparison provisioning uses for idempotence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { BadInputError } from '../../../src/errors.js';
import { compareMbr, layoutMbrPartitions, makeDiskSignature, resolveMbr, resolveMbrType, writeMbr, type MbrPartitionRequest } from '../../../src/partition/mbr-write.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { SKIP_FDISK, SKIP_SFDISK, fdiskList, sfdiskJson } from '../../helpers/disk-tools.js';

const MiB = 1024 * 1024;
const tmp = mkdtempSync(join(tmpdir(), 'crashcart-mbr-write-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** Two primaries (the first bootable), then three logical partitions, the last filling the card. */
const REQUESTS: MbrPartitionRequest[] = [
  { name: 'boot', type: 0x0c, size: 8 * MiB, bootable: true },
  { name: 'root', type: 0x83, size: 16 * MiB },
  { name: 'swap', type: 0x82, size: 4 * MiB, logical: true },
  { name: 'pstore', type: 0xda, size: 2 * MiB, logical: true },
  { name: 'data', type: 0x83, size: 'rest', logical: true },
];

async function written(requests = REQUESTS, size = 64 * MiB, signature = 0x1234abcd) {
  const dev = new MemoryDevice(new Uint8Array(size), { name: 'card' });
  const layout = { ...layoutMbrPartitions(requests, { sectorSize: 512, deviceSize: size }), diskSignature: signature };
  const mbr = resolveMbr(layout, size);
  await writeMbr(dev, mbr);
  return { dev, layout, mbr };
}

test('layout: primaries numbered 1, 2, the extended partition in slot 3, logical partitions 5, 6, 7 each behind its EBR', () => {
  const l = layoutMbrPartitions(REQUESTS, { sectorSize: 512, deviceSize: 64 * MiB });
  assert.deepEqual(l.extended, { number: 3, firstLba: 25 * 2048, lastLba: 64 * 2048 - 1 });
  assert.deepEqual(
    l.partitions.map((p) => [p.number, p.firstLba, p.lastLba, p.ebrLba]),
    [
      [1, 2048, 9 * 2048 - 1, undefined],
      [2, 9 * 2048, 25 * 2048 - 1, undefined],
      // first EBR at the start of the extended partition, the partition on the next MiB
      [5, 26 * 2048, 30 * 2048 - 1, 25 * 2048],
      // later EBRs right after the previous logical partition
      [6, 31 * 2048, 33 * 2048 - 1, 30 * 2048],
      [7, 34 * 2048, 64 * 2048 - 1, 33 * 2048],
    ],
  );
});

test('layout rules: slots, order, overlaps and size are refused with the reason', () => {
  const lay =
    (r: MbrPartitionRequest[], size = 64 * MiB) =>
    () =>
      layoutMbrPartitions(r, { sectorSize: 512, deviceSize: size });
  const p = (name: string, extra: Partial<MbrPartitionRequest> = {}): MbrPartitionRequest => ({ name, type: 0x83, size: MiB, ...extra });
  assert.throws(lay([p('a'), p('b'), p('c'), p('d'), p('e')]), (e: unknown) => e instanceof BadInputError && /need 5 slots; an MBR has 4/.test(e.message));
  assert.throws(lay([p('a'), p('b'), p('c'), p('d'), p('e', { logical: true })]), /need 5 slots/);
  assert.throws(lay([p('a', { logical: true }), p('b')]), /partition 2 is primary but follows a logical one/);
  assert.throws(lay([p('a', { size: 2 * MiB }), p('b', { start: 2 * MiB })]), /start 2097152 \(2 MiB\) overlaps partition 1 "a"/);
  assert.throws(lay([p('a', { size: 64 * MiB })]), /the layout needs a device of at least 68157440 bytes/);
  assert.throws(lay([p('a', { size: 'rest' }), p('b')]), /only the last partition can take the rest/);
  // four primaries fit; so do three and logical ones
  assert.equal(layoutMbrPartitions([p('a'), p('b'), p('c'), p('d')], { sectorSize: 512, deviceSize: 64 * MiB }).extended, undefined);
  assert.equal(layoutMbrPartitions([p('a'), p('b'), p('c'), p('d', { logical: true })], { sectorSize: 512, deviceSize: 64 * MiB }).extended?.number, 4);
});

test('alignment: 4 MiB boundaries when asked', () => {
  const l = layoutMbrPartitions(REQUESTS, { sectorSize: 512, deviceSize: 128 * MiB, alignment: 4 * MiB });
  for (const q of l.partitions) assert.equal((q.firstLba * 512) % (4 * MiB), 0, `partition ${q.number}`);
});

test('types by name and number; extended and GPT-protective types are not partition types', () => {
  assert.equal(resolveMbrType('linux'), 0x83);
  assert.equal(resolveMbrType('FAT32'), 0x0c);
  assert.equal(resolveMbrType('c'), 0x0c);
  assert.equal(resolveMbrType('0x83'), 0x83);
  assert.equal(resolveMbrType(0xda), 0xda);
  for (const bad of [0, 5, '0f', 0x85, 'ee', 256, 'ext4', 'constructor', 1.5]) assert.equal(resolveMbrType(bad), undefined, String(bad));
});

test("crashcart's parser reads back the table: numbers, types, boot flag, PARTUUIDs SSSSSSSS-NN", async () => {
  const { dev, mbr } = await written();
  const t = (await readPartitionTable(dev))!;
  assert.equal(t.kind, 'mbr');
  assert.equal(t.diskSignature, '1234abcd');
  assert.deepEqual(t.warnings, []);
  assert.deepEqual(
    t.partitions.map((p) => [p.number, p.type, p.firstLba, p.lastLba, !!p.bootable, !!p.logical, !!p.extended, p.uuid]),
    [
      ...mbr.partitions.slice(0, 2).map((p) => [p.number, p.type, p.firstLba, p.lastLba, p.bootable, false, false, `1234abcd-0${p.number}`]),
      [3, 0x05, mbr.extended!.firstLba, mbr.extended!.lastLba, false, false, true, '1234abcd-03'],
      ...mbr.partitions.slice(2).map((p) => [p.number, p.type, p.firstLba, p.lastLba, false, true, false, `1234abcd-0${p.number}`]),
    ],
  );
  assert.deepEqual(compareMbr(t, mbr), { status: 'match', differences: [] });
});

test('the same seed gives the same disk signature; no seed, a random one', () => {
  assert.equal(makeDiskSignature('bench-7'), makeDiskSignature('bench-7'));
  assert.notEqual(makeDiskSignature('bench-7'), makeDiskSignature('bench-8'));
  assert.notEqual(makeDiskSignature(), makeDiskSignature());
  const a = resolveMbr(layoutMbrPartitions(REQUESTS, { sectorSize: 512, deviceSize: 64 * MiB }), 64 * MiB, { seed: 's' });
  assert.equal(a.diskSignature, makeDiskSignature('s'));
});

test('comparison: a changed type, boot flag, size or signature makes the table differ', async () => {
  const { dev, layout } = await written();
  const t = (await readPartitionTable(dev))!;
  const changed = (f: (l: typeof layout) => void) => {
    const l = structuredClone(layout);
    f(l);
    return compareMbr(t, l);
  };
  assert.deepEqual(changed((l) => (l.partitions[3].type = 0x83)).differences, ['partition 6 "pstore" has type 0xda, expected 0x83']);
  assert.deepEqual(changed((l) => (l.partitions[0].bootable = false)).differences, ['partition 1 "boot" is marked bootable, expected not bootable']);
  assert.match(changed((l) => (l.diskSignature = 1)).differences[0], /disk signature is 0x1234abcd, expected 0x00000001/);
  assert.match(changed((l) => l.partitions.pop()).differences.join('\n'), /partition 7 .* is not in the layout/);
  assert.equal(compareMbr(null, layout).status, 'none');
});

test('sfdisk --json reads back exactly the planned table', { skip: SKIP_SFDISK }, async () => {
  const { dev, mbr } = await written();
  const img = join(tmp, 'sfdisk.img');
  writeFileSync(img, dev.data);
  const { table, stderr } = sfdiskJson(img);
  assert.equal(stderr, '');
  assert.equal(table.label, 'dos');
  assert.equal(table.id, '0x1234abcd');
  const ext = mbr.extended!;
  assert.deepEqual(
    table.partitions.map((q) => ({ node: q.node.slice(img.length), start: q.start, size: q.size, type: q.type, bootable: !!q.bootable })),
    [
      ...mbr.partitions.slice(0, 2).map((p) => ({ node: String(p.number), start: p.firstLba, size: p.lastLba - p.firstLba + 1, type: p.type.toString(16), bootable: p.bootable })),
      { node: '3', start: ext.firstLba, size: ext.lastLba - ext.firstLba + 1, type: '5', bootable: false },
      ...mbr.partitions.slice(2).map((p) => ({ node: String(p.number), start: p.firstLba, size: p.lastLba - p.firstLba + 1, type: p.type.toString(16), bootable: false })),
    ],
  );
});

test('fdisk -l lists exactly the planned table', { skip: SKIP_FDISK }, async () => {
  const { dev, mbr } = await written();
  const img = join(tmp, 'fdisk.img');
  writeFileSync(img, dev.data);
  const l = fdiskList(img);
  assert.equal(l.label, 'dos');
  assert.equal(l.identifier, '0x1234abcd');
  assert.doesNotMatch(l.output, /warning|error|overlap/i);
  const ext = mbr.extended!;
  assert.deepEqual(
    l.rows.map((r) => [r.number, r.boot, r.start, r.end, r.sectors, r.id, r.typeName]),
    [
      [1, true, 2048, 9 * 2048 - 1, 8 * 2048, 'c', 'W95 FAT32 (LBA)'],
      [2, false, 9 * 2048, 25 * 2048 - 1, 16 * 2048, '83', 'Linux'],
      [3, false, ext.firstLba, ext.lastLba, ext.lastLba - ext.firstLba + 1, '5', 'Extended'],
      [5, false, 26 * 2048, 30 * 2048 - 1, 4 * 2048, '82', 'Linux swap / Solaris'],
      [6, false, 31 * 2048, 33 * 2048 - 1, 2 * 2048, 'da', 'Non-FS data'],
      [7, false, 34 * 2048, 64 * 2048 - 1, 30 * 2048, '83', 'Linux'],
    ],
  );
});
