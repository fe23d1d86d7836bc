/**
 * Hybrid MBRs in front of a GPT: sector 0 is compared byte for byte with what Debian's
 * `sgdisk --hybrid` writes over the same GPT (0xEE first, and last with `:EE`); `sgdisk -v`
 * finds no problem, `sgdisk -p` still reads the GPT, and sfdisk and fdisk read the MBR side
 * (`--label-nested dos`, `-t dos`) with the types and boot flag asked for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { BadInputError } from '../../../src/errors.js';
import { compareGpt, layoutPartitions, resolveGpt, writeGpt, type GptLayout } from '../../../src/partition/gpt-write.js';
import type { HybridMbrSpec } from '../../../src/partition/hybrid-mbr.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { FDISK, SFDISK, SGDISK, SKIP_SGDISK, sgdiskVerify } from '../../helpers/disk-tools.js';

const MiB = 1024 * 1024;
const BASIC_DATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const SKIP = SKIP_SGDISK || (!SFDISK || !FDISK ? 'sfdisk/fdisk not installed (Debian package fdisk)' : false);

/** The layout of the sgdisk comparison: boot (basic data) 16 MiB at 1 MiB, rootfs 16 MiB, data to the end, on 64 MiB. */
function layout(hybridMbr?: HybridMbrSpec): GptLayout {
  const partitions = layoutPartitions(
    [
      { name: 'boot', typeGuid: BASIC_DATA, size: 16 * MiB },
      { name: 'rootfs', typeGuid: LINUX, size: 16 * MiB },
      { name: 'data', typeGuid: LINUX, size: 'rest' },
    ],
    { sectorSize: 512, deviceSize: 64 * MiB },
  );
  return { sectorSize: 512, partitions, diskGuid: '3DEFF764-F26D-4746-9E23-0A22F4E66856', ...(hybridMbr ? { hybridMbr } : {}) };
}

async function written(dir: string, name: string, l: GptLayout): Promise<string> {
  const path = join(dir, name);
  writeFileSync(path, '');
  truncateSync(path, 64 * MiB);
  const dev = await openImageFile(path, { write: true });
  try {
    await writeGpt(dev, l, { guidSeed: 'hybrid-test' });
  } finally {
    await dev.close();
  }
  return path;
}

const sector0Table = (path: string) => readFileSync(path).subarray(446, 512);

test('the hybrid MBR equals sgdisk --hybrid over the same GPT, byte for byte, with 0xEE first or last', { skip: SKIP }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-hybrid-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const plain = await written(dir, 'plain.img', layout());
  for (const [args, spec] of [
    [
      '1:2',
      {
        entries: [
          { partition: 1, type: 0x07 },
          { partition: 2, type: 0x83 },
        ],
      },
    ],
    [
      '1:2:EE',
      {
        entries: [
          { partition: 1, type: 0x07 },
          { partition: 2, type: 0x83 },
        ],
        protective: 'last',
      },
    ],
    ['2', { entries: [{ partition: 2, type: 0x83 }] }],
    [
      '3:1',
      {
        entries: [
          { partition: 3, type: 0x83 },
          { partition: 1, type: 0x07 },
        ],
      },
    ],
  ] as [string, HybridMbrSpec][]) {
    const ref = join(dir, `sgdisk-${args.replace(/:/g, '_')}.img`);
    copyFileSync(plain, ref);
    const r = spawnSync(SGDISK!, ['--hybrid', args, ref], { encoding: 'utf8' });
    assert.equal(r.status, 0, `sgdisk --hybrid ${args}: ${r.stdout}${r.stderr}`);
    const ours = await written(dir, `ours-${args.replace(/:/g, '_')}.img`, layout(spec));
    assert.deepEqual(sector0Table(ours), sector0Table(ref), `sector 0 as sgdisk --hybrid ${args} writes it`);
    // everything after sector 0 is the same GPT as without the hybrid MBR
    assert.ok(readFileSync(ours).subarray(512).equals(readFileSync(plain).subarray(512)), `${args}: the GPT itself is unchanged`);
    const v = sgdiskVerify(ours);
    assert.equal(v.status, 0, v.output);
    assert.match(v.output, /No problems found/);
    assert.doesNotMatch(v.output, /Warning|Problem:/i);
  }
});

test('sgdisk -p still reads the GPT; sfdisk and fdisk read the MBR side with the types and boot flag', { skip: SKIP }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-hybrid-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const img = await written(
    dir,
    'h.img',
    layout({
      entries: [
        { partition: 1, type: 0x0c, bootable: true },
        { partition: 2, type: 0x83 },
      ],
    }),
  );
  const p = spawnSync(SGDISK!, ['-p', img], { encoding: 'utf8' });
  assert.equal(p.status, 0);
  assert.match(p.stdout, /^\s+1\s+2048\s+34815\s+16\.0 MiB\s+0700\s+boot$/m);
  assert.match(p.stdout, /^\s+3\s+67584\s+129023\s+30\.0 MiB\s+8300\s+data$/m);
  const gpt = JSON.parse(spawnSync(SFDISK!, ['--json', img], { encoding: 'utf8' }).stdout) as { partitiontable: { label: string } };
  assert.equal(gpt.partitiontable.label, 'gpt', 'sfdisk prefers the GPT, as the kernel does');
  const dos = JSON.parse(spawnSync(SFDISK!, ['--label-nested', 'dos', '--json', img], { encoding: 'utf8' }).stdout) as {
    partitiontable: { label: string; partitions: { start: number; size: number; type: string; bootable?: boolean }[] };
  };
  assert.equal(dos.partitiontable.label, 'dos');
  assert.deepEqual(
    dos.partitiontable.partitions.map((x) => [x.start, x.size, x.type, x.bootable ?? false]),
    [
      [1, 2047, 'ee', false],
      [2048, 32768, 'c', true],
      [34816, 32768, '83', false],
    ],
  );
  const f = spawnSync(FDISK!, ['-t', 'dos', '-l', img], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(f.status, 0, f.stderr);
  assert.match(f.stdout, /^\S+h\.img1\s+1\s+2047\s+2047\s+\S+\s+ee GPT$/m);
  assert.match(f.stdout, /^\S+h\.img2\s+\*\s+2048\s+34815\s+32768\s+16M\s+c W95 FAT32 \(LBA\)$/m);
  assert.match(f.stdout, /^\S+h\.img3\s+34816\s+67583\s+32768\s+16M\s+83 Linux$/m);
});

test('the card is read as a GPT with its sector-0 slots; a protective MBR where a hybrid one belongs (and the reverse) is a repair', async () => {
  const spec: HybridMbrSpec = { entries: [{ partition: 1, type: 0x0c, bootable: true }] };
  const dev = new MemoryDevice(new Uint8Array(64 * MiB), { name: 'card' });
  await writeGpt(dev, layout(spec), { guidSeed: 's' });
  const t = (await readPartitionTable(dev))!;
  assert.equal(t.kind, 'gpt');
  assert.deepEqual(t.mbrSlots, [
    { slot: 0, bootable: false, type: 0xee, firstLba: 1, sectors: 2047 },
    { slot: 1, bootable: true, type: 0x0c, firstLba: 2048, sectors: 32768 },
  ]);
  assert.equal(compareGpt(t, layout(spec), dev.size).status, 'match');
  const other = compareGpt(t, layout({ entries: [{ partition: 1, type: 0x0c }] }), dev.size);
  assert.equal(other.status, 'repair');
  assert.match(
    other.differences.join('\n'),
    /sector 0 holds slot 1: type 0xee, LBA 1\+2047; slot 2: type 0x0c bootable, LBA 2048\+32768; the profile's hybrid MBR is .*slot 2: type 0x0c, LBA 2048\+32768/,
  );
  const plainWanted = compareGpt(t, layout(), dev.size);
  assert.equal(plainWanted.status, 'repair');
  assert.match(plainWanted.differences[0], /sector 0 holds a hybrid MBR .*; the profile asks for a protective MBR/);
  await writeGpt(dev, layout(), { guidSeed: 's' });
  const plain = (await readPartitionTable(dev))!;
  assert.equal(compareGpt(plain, layout(), dev.size).status, 'match');
  const hybridWanted = compareGpt(plain, layout(spec), dev.size);
  assert.equal(hybridWanted.status, 'repair');
  assert.match(hybridWanted.differences[0], /sector 0 holds slot 1: type 0xee, LBA 1\+131071; the profile's hybrid MBR is/);
});

test('a hybrid MBR is refused for more than three partitions, a partition twice, or one past 2^32 sectors', () => {
  const four = layoutPartitions(
    ['a', 'b', 'c', 'd'].map((name) => ({ name, typeGuid: LINUX, size: MiB })),
    { sectorSize: 512, deviceSize: 64 * MiB },
  );
  const entries = [1, 2, 3, 4].map((partition) => ({ partition, type: 0x83 }));
  assert.throws(
    () => resolveGpt({ sectorSize: 512, partitions: four, hybridMbr: { entries } }, 64 * MiB),
    (e: unknown) => e instanceof BadInputError && /1 to 3 partitions/.test(e.message),
  );
  assert.throws(() => resolveGpt({ sectorSize: 512, partitions: four, hybridMbr: { entries: [entries[0], entries[0]] } }, 64 * MiB), /partition 1 is listed twice/);
  assert.throws(() => resolveGpt({ sectorSize: 512, partitions: four, hybridMbr: { entries: [{ partition: 9, type: 0x83 }] } }, 64 * MiB), /no GPT partition 9/);
  const TiB = 1024 * 1024 * MiB;
  const big = layoutPartitions(
    [
      { name: 'boot', typeGuid: BASIC_DATA, size: 256 * MiB },
      { name: 'data', typeGuid: LINUX, size: 'rest' },
    ],
    { sectorSize: 512, deviceSize: 3 * TiB },
  );
  assert.throws(
    () => resolveGpt({ sectorSize: 512, partitions: big, hybridMbr: { entries: [{ partition: 2, type: 0x83 }] } }, 3 * TiB),
    /partition 2 "data" ends at LBA \d+, beyond the 2\^32 sectors an MBR can address/,
  );
  // the boot partition near the start of the same card is fine
  assert.equal(resolveGpt({ sectorSize: 512, partitions: big, hybridMbr: { entries: [{ partition: 1, type: 0x0c }] } }, 3 * TiB).hybridMbr?.entries.length, 1);
});
