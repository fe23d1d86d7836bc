import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { BadInputError, UsageError, WriteProtectedError } from '../../../src/errors.js';
import { parseGpt } from '../../../src/partition/gpt.js';
import { formatGuid } from '../../../src/partition/guid.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import {
  compareGpt,
  encodeGpt,
  encodeProtectiveMbr,
  guidToBytes,
  layoutPartitions,
  makeGuid,
  minimumDeviceSize,
  resolveGpt,
  writeGpt,
  type GptLayout,
  type PartitionRequest,
} from '../../../src/partition/gpt-write.js';
import { SKIP_SFDISK, SKIP_SGDISK, sfdiskJson, sgdiskVerify } from '../../helpers/disk-tools.js';

const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const RESERVED = '8DA63339-0007-60C0-C436-083AC8230908';
const MiB = 1024 * 1024;

const REQUESTS: PartitionRequest[] = [
  { name: 'esp', typeGuid: ESP, size: 8 * MiB, attributeBits: [2] },
  { name: 'pstore', typeGuid: RESERVED, size: 2 * MiB },
  { name: 'rootfs', typeGuid: LINUX, size: 'rest' },
];

function layoutFor(size: number, ss = 512): GptLayout {
  return { sectorSize: ss, partitions: layoutPartitions(REQUESTS, { sectorSize: ss, deviceSize: size }) };
}

test("GUID bytes: mixed-endian encoding round-trips through the reader's formatter", () => {
  const g = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
  const b = guidToBytes(g);
  assert.deepEqual([...b.subarray(0, 4)], [0xaf, 0x3d, 0xc6, 0x0f]);
  assert.deepEqual([...b.subarray(8)], [0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4]);
  assert.equal(formatGuid(b), g);
  assert.throws(() => guidToBytes('not-a-guid'), UsageError);
});

test('GUIDs: a seed gives the same v4-shaped GUIDs every time, no seed gives new ones', () => {
  const a = makeGuid('disk', 'seed');
  assert.equal(a, makeGuid('disk', 'seed'));
  assert.notEqual(a, makeGuid('disk', 'other seed'));
  assert.notEqual(a, makeGuid('partition-1', 'seed'));
  assert.match(a, /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
  assert.notEqual(makeGuid('disk'), makeGuid('disk'));
});

test('layout: partitions start on 1 MiB boundaries, "rest" ends on one, sizes are exact', () => {
  const parts = layoutPartitions(REQUESTS, { sectorSize: 512, deviceSize: 64 * MiB });
  assert.deepEqual(
    parts.map((p) => [p.number, p.name, p.firstLba, p.lastLba]),
    [
      [1, 'esp', 2048, 2048 + 16384 - 1],
      [2, 'pstore', 18432, 18432 + 4096 - 1],
      [3, 'rootfs', 22528, 64 * 2048 - 2048 - 1],
    ],
  );
  // explicit start; gap before it is kept
  const withStart = layoutPartitions(
    [
      { name: 'a', typeGuid: LINUX, size: MiB, start: 4 * MiB },
      { name: 'b', typeGuid: LINUX, size: MiB },
    ],
    { sectorSize: 512, deviceSize: 16 * MiB },
  );
  assert.deepEqual(
    withStart.map((p) => p.firstLba),
    [8192, 10240],
  );
  // 4Kn: LBAs in 4096-byte sectors
  const k4 = layoutPartitions(REQUESTS, { sectorSize: 4096, deviceSize: 64 * MiB });
  assert.equal(k4[0].firstLba, 256);
  assert.equal(k4[0].lastLba - k4[0].firstLba + 1, 2048);
});

test('layout: overlaps, "rest" in the middle and too-small devices are refused with numbers', () => {
  assert.throws(
    () =>
      layoutPartitions(
        [
          { name: 'a', typeGuid: LINUX, size: 4 * MiB },
          { name: 'b', typeGuid: LINUX, size: MiB, start: 2 * MiB },
        ],
        { sectorSize: 512, deviceSize: 64 * MiB },
      ),
    (e: unknown) => e instanceof BadInputError && /partition 2 "b": start 2097152 .* overlaps partition 1 "a"/.test(e.message),
  );
  assert.throws(
    () =>
      layoutPartitions(
        [
          { name: 'a', typeGuid: LINUX, size: 'rest' },
          { name: 'b', typeGuid: LINUX, size: MiB },
        ],
        { sectorSize: 512, deviceSize: 64 * MiB },
      ),
    /only the last partition/,
  );
  const need = minimumDeviceSize(REQUESTS, 512);
  assert.equal(need, MiB + 8 * MiB + 2 * MiB + MiB + 33 * 512);
  assert.throws(
    () => layoutPartitions(REQUESTS.slice(0, 2), { sectorSize: 512, deviceSize: 8 * MiB }),
    (e: unknown) => e instanceof BadInputError && /needs a device of at least \d+ bytes/.test(e.message),
  );
  assert.throws(
    () => layoutPartitions([{ name: 'a', typeGuid: LINUX, size: 1000 }], { sectorSize: 512, deviceSize: 8 * MiB }),
    /not a positive multiple of the 512-byte sector size/,
  );
});

test('written GPT: our reader finds every partition, GUID and attribute; headers and CRCs are where the spec puts them', async () => {
  const dev = new MemoryDevice(new Uint8Array(64 * MiB));
  const g = await writeGpt(dev, layoutFor(dev.size), { guidSeed: 't1' });
  const t = await readPartitionTable(dev);
  assert.ok(t);
  assert.equal(t.kind, 'gpt');
  assert.equal(t.header, 'primary');
  assert.deepEqual(t.warnings, []);
  assert.equal(t.diskGuid, g.diskGuid);
  assert.deepEqual(
    t.partitions.map((p) => ({ n: p.number, name: p.name, type: p.typeGuid, uuid: p.uuid, first: p.firstLba, last: p.lastLba, bits: p.attributeBits })),
    g.partitions.map((p) => ({ n: p.number, name: p.name, type: p.typeGuid, uuid: p.uuid, first: p.firstLba, last: p.lastLba, bits: p.attributeBits ?? [] })),
  );
  const d = dev.data;
  const dv = new DataView(d.buffer);
  // protective MBR
  assert.equal(d[446 + 4], 0xee);
  assert.equal(dv.getUint32(446 + 8, true), 1);
  assert.equal(dv.getUint32(446 + 12, true), 64 * 2048 - 1);
  assert.equal(d[510], 0x55);
  assert.equal(d[511], 0xaa);
  // backup header in the last LBA pointing back at LBA 1, its array right before it
  const last = 64 * 2048 - 1;
  const bh = d.subarray(last * 512, last * 512 + 92);
  assert.equal(new TextDecoder().decode(bh.subarray(0, 8)), 'EFI PART');
  assert.equal(Number(new DataView(bh.buffer, bh.byteOffset).getBigUint64(24, true)), last);
  assert.equal(Number(new DataView(bh.buffer, bh.byteOffset).getBigUint64(32, true)), 1);
  assert.equal(Number(new DataView(bh.buffer, bh.byteOffset).getBigUint64(72, true)), last - 32);
  const copy = bh.slice();
  copy.fill(0, 16, 20);
  assert.equal(crc32(copy) >>> 0, new DataView(bh.buffer, bh.byteOffset).getUint32(16, true));
  assert.ok(Buffer.from(d.subarray(1024, 1024 + 16384)).equals(Buffer.from(d.subarray((last - 32) * 512, last * 512))), 'backup array equals the primary one');
});

test('the backup copy alone is valid: with the primary header destroyed the reader falls back to it', async () => {
  const dev = new MemoryDevice(new Uint8Array(32 * MiB));
  await writeGpt(dev, layoutFor(dev.size), { guidSeed: 'bk' });
  dev.data.fill(0, 512, 1024);
  const t = await parseGpt(dev);
  assert.ok(t);
  assert.equal(t.header, 'backup');
  assert.deepEqual(
    t.partitions.map((p) => p.name),
    ['esp', 'pstore', 'rootfs'],
  );
});

test('4Kn devices get a table in 4096-byte sectors that the reader accepts', async () => {
  const dev = new MemoryDevice(new Uint8Array(64 * MiB), { blockSize: 4096 });
  await writeGpt(dev, layoutFor(dev.size, 4096), { guidSeed: '4k' });
  const t = await parseGpt(dev);
  assert.ok(t);
  assert.equal(t.sectorSize, 4096);
  assert.deepEqual(t.warnings, []);
  assert.deepEqual(
    t.partitions.map((p) => [p.name, p.start, p.size]),
    [
      ['esp', MiB, 8 * MiB],
      ['pstore', 9 * MiB, 2 * MiB],
      ['rootfs', 11 * MiB, 64 * MiB - 12 * MiB],
    ],
  );
});

test('same seed, same bytes; the protective MBR caps its size at 2^32-1 sectors on huge disks', () => {
  const a = encodeGpt(resolveGpt(layoutFor(64 * MiB), 64 * MiB, { guidSeed: 's' }));
  const b = encodeGpt(resolveGpt(layoutFor(64 * MiB), 64 * MiB, { guidSeed: 's' }));
  assert.deepEqual(
    a.map((w) => [w.offset, Buffer.from(w.bytes).toString('hex')]),
    b.map((w) => [w.offset, Buffer.from(w.bytes).toString('hex')]),
  );
  const huge = 3 * 1024 ** 4;
  const mbr = encodeProtectiveMbr(resolveGpt({ sectorSize: 512, partitions: [] }, huge));
  assert.equal(new DataView(mbr.buffer).getUint32(446 + 12, true), 0xffffffff);
});

test('resolveGpt refuses overlapping entries, duplicate numbers and long names', () => {
  const base = { sectorSize: 512, partitions: [{ number: 1, name: 'a', typeGuid: LINUX, firstLba: 2048, lastLba: 4095 }] };
  assert.throws(() => resolveGpt({ ...base, partitions: [...base.partitions, { number: 2, name: 'b', typeGuid: LINUX, firstLba: 4000, lastLba: 5000 }] }, 8 * MiB), /overlap/);
  assert.throws(() => resolveGpt({ ...base, partitions: [...base.partitions, { number: 1, name: 'b', typeGuid: LINUX, firstLba: 5000, lastLba: 6000 }] }, 8 * MiB), /used twice/);
  assert.throws(
    () => resolveGpt({ sectorSize: 512, partitions: [{ number: 1, name: 'x'.repeat(37), typeGuid: LINUX, firstLba: 2048, lastLba: 4095 }] }, 8 * MiB),
    /longer than 36/,
  );
  assert.throws(
    () => resolveGpt({ sectorSize: 512, partitions: [{ number: 1, name: 'a', typeGuid: LINUX, firstLba: 2048, lastLba: 16383 }] }, 8 * MiB),
    /outside the usable range/,
  );
});

test('writeGpt refuses read-only devices without touching them', async () => {
  const dev = new MemoryDevice(new Uint8Array(16 * MiB), { readOnly: true });
  await assert.rejects(writeGpt(dev, layoutFor(dev.size)), WriteProtectedError);
  assert.ok(dev.data.every((b) => b === 0));
});

test('compareGpt: match, no table, MBR, other partitions, and a damaged backup that needs repair', async () => {
  const dev = new MemoryDevice(new Uint8Array(32 * MiB));
  const layout = layoutFor(dev.size);
  assert.equal(compareGpt(await readPartitionTable(dev), layout, dev.size).status, 'none');
  await writeGpt(dev, layout, { guidSeed: 'c' });
  assert.deepEqual(compareGpt(await readPartitionTable(dev), layout, dev.size), { status: 'match', differences: [], notes: [] });

  const renamed: GptLayout = { ...layout, partitions: layout.partitions.map((p) => (p.number === 2 ? { ...p, name: 'crash' } : p)) };
  const c1 = compareGpt(await readPartitionTable(dev), renamed, dev.size);
  assert.equal(c1.status, 'differs');
  assert.deepEqual(c1.differences, ['partition 2 is named "pstore", expected "crash"']);

  const shorter = layoutFor(16 * MiB);
  const c2 = compareGpt(await readPartitionTable(dev), shorter, dev.size);
  assert.equal(c2.status, 'differs');
  assert.match(c2.differences.join('\n'), /partition 3 "rootfs" spans LBA 22528–63487, expected 22528–30719/);

  const fixedUuid: GptLayout = { ...layout, partitions: layout.partitions.map((p) => ({ ...p, uuid: '11111111-2222-4333-8444-555555555555' })) };
  assert.match(compareGpt(await readPartitionTable(dev), fixedUuid, dev.size).differences.join('\n'), /has GUID .*, expected 11111111-2222-4333-8444-555555555555/);

  // wipe the backup header: same partitions, table needs rewriting
  dev.data.fill(0, dev.size - 512);
  const c3 = compareGpt(await readPartitionTable(dev), layout, dev.size);
  assert.equal(c3.status, 'repair');
  assert.match(c3.differences.join('\n'), /backup GPT header .* unusable/);

  // an MBR card
  const mbr = new MemoryDevice(new Uint8Array(16 * MiB));
  mbr.data[446 + 4] = 0x83;
  new DataView(mbr.data.buffer).setUint32(446 + 8, 2048, true);
  new DataView(mbr.data.buffer).setUint32(446 + 12, 4096, true);
  mbr.data[510] = 0x55;
  mbr.data[511] = 0xaa;
  const c4 = compareGpt(await readPartitionTable(mbr), layoutFor(16 * MiB), 16 * MiB);
  assert.equal(c4.status, 'differs');
  assert.match(c4.differences[0], /MBR partition table with 1 partition/);
});

async function writtenImage(
  size: number,
  requests: PartitionRequest[],
  seed: string,
): Promise<{ path: string; dir: string; layout: GptLayout; g: Awaited<ReturnType<typeof writeGpt>> }> {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-gptw-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, '');
  const fd = openSync(path, 'r+');
  ftruncateSync(fd, size);
  closeSync(fd);
  const dev = await openImageFile(path, { write: true });
  const layout: GptLayout = { sectorSize: 512, partitions: layoutPartitions(requests, { sectorSize: 512, deviceSize: size }) };
  const g = await writeGpt(dev, layout, { guidSeed: seed });
  await dev.close();
  return { path, dir, layout, g };
}

const MANY: PartitionRequest[] = [
  { name: 'boot', typeGuid: LINUX, size: 64 * MiB, attributeBits: [2] },
  ...Array.from({ length: 9 }, (_, i) => ({ name: `p${i + 2}`, typeGuid: i % 2 ? RESERVED : LINUX, size: (i + 1) * MiB })),
  { name: 'Ünïcødé data', typeGuid: LINUX, size: 'rest' as const },
];

test('sfdisk --json reads back the partitions crashcart wrote', { skip: SKIP_SFDISK }, async () => {
  for (const [size, reqs] of [
    [64 * MiB, REQUESTS],
    [300 * MiB, MANY],
  ] as const) {
    const { path, dir, g } = await writtenImage(size, reqs, `sf-${size}`);
    try {
      const { table, stderr } = sfdiskJson(path);
      assert.equal(stderr, '', 'sfdisk printed warnings');
      assert.equal(table.label, 'gpt');
      assert.equal(table.id, g.diskGuid);
      assert.equal(table.firstlba, 34);
      assert.equal(table.lastlba, size / 512 - 34);
      assert.deepEqual(
        table.partitions.map((p) => ({ start: p.start, size: p.size, type: p.type, uuid: p.uuid, name: p.name ?? '', legacyBoot: /LegacyBIOSBootable/.test(p.attrs ?? '') })),
        g.partitions.map((p) => ({
          start: p.firstLba,
          size: p.lastLba - p.firstLba + 1,
          type: p.typeGuid,
          uuid: p.uuid,
          name: p.name,
          legacyBoot: (p.attributeBits ?? []).includes(2),
        })),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('sgdisk --verify finds no problems in the table crashcart wrote', { skip: SKIP_SGDISK }, async () => {
  for (const [size, reqs] of [
    [64 * MiB, REQUESTS],
    [300 * MiB, MANY],
  ] as const) {
    const { path, dir } = await writtenImage(size, reqs, `sg-${size}`);
    try {
      const v = sgdiskVerify(path);
      assert.equal(v.status, 0, v.output);
      assert.match(v.output, /No problems found/);
      assert.doesNotMatch(v.output, /Warning|Problem:|Caution/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('sgdisk notices a corrupted table (the verify check can fail)', { skip: SKIP_SGDISK }, async () => {
  const { path, dir } = await writtenImage(64 * MiB, REQUESTS, 'bad');
  try {
    const dev = await openImageFile(path, { write: true });
    await dev.write(64 * MiB - 512 + 100, new Uint8Array([0xff]));
    await dev.write(2 * 512 + 40, new Uint8Array([0x77])); // primary entry 1 first LBA: array CRC breaks
    await dev.close();
    const v = sgdiskVerify(path);
    assert.doesNotMatch(v.output, /^No problems found/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
