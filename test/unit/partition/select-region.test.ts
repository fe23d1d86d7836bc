import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { parseBlkdevSpec, parseByteSize, regionSelectorFromOptions, selectRegion, type RegionSelector } from '../../../src/partition/select-region.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { BadInputError, UsageError } from '../../../src/errors.js';
import { fixtureBytes, fixtureDevice } from './fixtures.js';

const MiB = 1024 * 1024;

test('parseByteSize: integers, hex, binary and decimal units', () => {
  const cases: [string | number, number][] = [
    ['0', 0],
    ['4096', 4096],
    [' 512 ', 512],
    ['0x200000', 2 * MiB],
    ['512K', 512 * 1024],
    ['512KiB', 512 * 1024],
    ['2M', 2 * MiB],
    ['2MiB', 2 * MiB],
    ['2 mib', 2 * MiB],
    ['1G', 1024 * MiB],
    ['1GiB', 1024 * MiB],
    ['1T', 1024 * 1024 * MiB],
    ['1.5M', 1.5 * MiB],
    ['4KB', 4000],
    ['1MB', 1_000_000],
    ['100b', 100],
    [8192, 8192],
  ];
  for (const [s, n] of cases) assert.equal(parseByteSize(s), n, String(s));
  for (const bad of ['', 'abc', '-1', '1.3', '2X', '1e3', '0.5', '99999999999999999999', 'M', '1.0000001K']) {
    assert.throws(() => parseByteSize(bad), UsageError, bad);
  }
  assert.throws(() => parseByteSize(-4), UsageError);
  assert.throws(() => parseByteSize(1.5), UsageError);
});

test('parseBlkdevSpec: partition names of common kernels', () => {
  const parts: [string, string, number][] = [
    ['/dev/mmcblk1p9', 'mmcblk1', 9],
    ['/dev/sda3', 'sda', 3],
    ['/dev/vda2', 'vda', 2],
    ['/dev/nvme0n1p2', 'nvme0n1', 2],
    ['/dev/block/sdc81', 'sdc', 81],
    ['/dev/block/mmcblk0p12', 'mmcblk0', 12],
    ['/dev/sdab15', 'sdab', 15],
    ['/dev/xvda1', 'xvda', 1],
    ['/dev/loop0p1', 'loop0', 1],
    ['mmcblk0p3', 'mmcblk0', 3],
  ];
  for (const [s, disk, number] of parts) {
    assert.deepEqual(parseBlkdevSpec(s), { kind: 'partition', text: s, disk, number }, s);
  }
  for (const [s, disk] of [
    ['/dev/vda', 'vda'],
    ['/dev/mmcblk1', 'mmcblk1'],
    ['/dev/sda', 'sda'],
    ['/dev/nvme0n1', 'nvme0n1'],
  ]) {
    assert.deepEqual(parseBlkdevSpec(s), { kind: 'disk', text: s, disk }, s);
  }
});

test('parseBlkdevSpec: PARTLABEL, PARTUUID, PARTNROFF, by-name links', () => {
  assert.deepEqual(parseBlkdevSpec('PARTLABEL=pstore'), { kind: 'partlabel', text: 'PARTLABEL=pstore', label: 'pstore' });
  assert.deepEqual(parseBlkdevSpec('/dev/block/by-name/pstore').kind, 'partlabel');
  assert.deepEqual(parseBlkdevSpec('/dev/block/platform/soc/7824900.sdhci/by-name/misc'), {
    kind: 'partlabel',
    text: '/dev/block/platform/soc/7824900.sdhci/by-name/misc',
    label: 'misc',
  });
  assert.deepEqual(parseBlkdevSpec('/dev/disk/by-partlabel/pstore').kind, 'partlabel');
  const u = 'ccd5276a-b985-c54e-9422-de8856285ad9';
  assert.deepEqual(parseBlkdevSpec(`PARTUUID=${u}`), { kind: 'partuuid', text: `PARTUUID=${u}`, uuid: u, partnroff: 0 });
  assert.deepEqual(parseBlkdevSpec(`PARTUUID=${u}/PARTNROFF=-1`), { kind: 'partuuid', text: `PARTUUID=${u}/PARTNROFF=-1`, uuid: u, partnroff: -1 });
  assert.equal((parseBlkdevSpec('partuuid=deadbeef-05') as { uuid: string }).uuid, 'deadbeef-05');
  assert.equal(parseBlkdevSpec(`/dev/disk/by-partuuid/${u}`).kind, 'partuuid');
});

test('parseBlkdevSpec: device numbers and unknown spellings are UsageErrors with a hint', () => {
  for (const s of ['179:9', '8:3', 'b309', '0x10301']) {
    assert.throws(
      () => parseBlkdevSpec(s),
      (e: unknown) => e instanceof UsageError && /cannot be mapped onto a card offline/.test(e.message),
      s,
    );
  }
  for (const s of ['', 'PARTLABEL=', 'PARTUUID=nope', 'PARTUUID=12345678-1234-1234-1234-123456789abc/PARTNROFF=x', '/dev/ubi0_1', 'pstore', '/dev/sda0']) {
    assert.throws(() => parseBlkdevSpec(s), UsageError, s);
  }
  assert.throws(() => parseBlkdevSpec('/dev/mmcblk0boot1'), /eMMC hardware area/);
  assert.throws(() => parseBlkdevSpec('/dev/mmcblk0rpmb'), /eMMC hardware area/);
});

test('kernel fixture: partition 2, pstore, /dev/vda2, PARTLABEL, PARTUUID all select 2 MiB', async () => {
  const dev = fixtureDevice('kernel/stock61-gpt/disk.img.gz');
  const table = await readPartitionTable(dev);
  const selectors: RegionSelector[] = [
    { kind: 'partition', partition: 2 },
    { kind: 'partition', partition: '2' },
    { kind: 'partition', partition: 'pstore' },
    { kind: 'blkdev', spec: '/dev/vda2' },
    { kind: 'blkdev', spec: '/dev/mmcblk1p2' },
    { kind: 'blkdev', spec: 'PARTLABEL=pstore' },
    { kind: 'blkdev', spec: 'PARTUUID=ccd5276a-b985-c54e-9422-de8856285ad9' },
    { kind: 'blkdev', spec: 'PARTUUID=F6740AEB-97EA-5C4B-97C4-B18666EAD402/PARTNROFF=1' },
    regionSelectorFromOptions({ partition: 'pstore' }),
    regionSelectorFromOptions({ blkdev: '/dev/vda2' }),
    regionSelectorFromOptions({ offset: '2MiB', size: '5222400' }),
  ];
  const expected = await dev.read(2 * MiB, 10200 * 512);
  for (const sel of selectors) {
    const r = selectRegion(dev, table, sel);
    assert.equal(r.device.offset, 2 * MiB, JSON.stringify(sel));
    assert.equal(r.device.size, 10200 * 512, JSON.stringify(sel));
    if (sel.kind !== 'range') {
      assert.equal(r.partition?.name, 'pstore');
      assert.match(r.description, /partition 2 "pstore": offset 2097152 \(2 MiB\), size 5222400/);
    }
    assert.deepEqual(await r.device.read(0, r.device.size), expected);
  }
  const viaBlkdev = selectRegion(dev, table, { kind: 'blkdev', spec: '/dev/vda2' });
  assert.match(viaBlkdev.description, /^blkdev=\/dev\/vda2 → partition 2/);
});

test('whole-disk selections', async () => {
  const dev = fixtureDevice('kernel/stock61-gpt/disk.img.gz');
  const table = await readPartitionTable(dev);
  for (const sel of [{ kind: 'whole' } as const, { kind: 'blkdev', spec: '/dev/vda' } as const, regionSelectorFromOptions({})]) {
    const r = selectRegion(dev, table, sel);
    assert.equal(r.device.offset, 0);
    assert.equal(r.device.size, 8 * MiB);
    assert.equal(r.partition, undefined);
    assert.match(r.description, /whole device: size 8388608 \(8 MiB\)/);
  }
  // Whole device also works with no table at all.
  const blank = new MemoryDevice(new Uint8Array(MiB));
  assert.equal(selectRegion(blank, null, { kind: 'whole' }).device.size, MiB);
});

test('GPT names: exact match first, then case-insensitive, ambiguity lists candidates', async () => {
  const dev = fixtureDevice('partition/gpt-named.img.gz');
  const table = await readPartitionTable(dev);
  const num = (p: string) => selectRegion(dev, table, { kind: 'partition', partition: p }).partition?.number;
  assert.equal(num('data'), 3);
  assert.equal(num('Data'), 4);
  assert.equal(num('PSTORE'), 2);
  assert.equal(num('ünïcødé 名前'), 7);
  assert.throws(
    () => num('DATA'),
    (e: unknown) => e instanceof UsageError && /"DATA" is ambiguous: 3 "data", 4 "Data"/.test(e.message),
  );
  assert.throws(
    () => num('nope'),
    (e: unknown) => e instanceof UsageError && /no partition named "nope" \(partitions: 1 "boot", 2 "pstore", 3 "data", 4 "Data", 7 "Ünïcødé 名前"\)/.test(e.message),
  );
  assert.throws(() => selectRegion(dev, table, { kind: 'partition', partition: 5 }), /has no partition 5/);
  assert.throws(() => selectRegion(dev, table, { kind: 'blkdev', spec: '/dev/mmcblk1p9' }), /blkdev=\/dev\/mmcblk1p9: .* has no partition 9/);
  assert.throws(() => selectRegion(dev, table, { kind: 'blkdev', spec: 'PARTUUID=A0000000-0000-0000-0000-000000000007/PARTNROFF=1' }), /has no partition 8/);
  assert.throws(() => selectRegion(dev, table, { kind: 'blkdev', spec: 'PARTUUID=A0000000-0000-0000-0000-000000000009' }), /no partition with PARTUUID/);
});

test('MBR: numbers and PARTUUID=<signature>-<nn> select logical partitions; names cannot', async () => {
  const dev = fixtureDevice('partition/mbr-logical.img.gz');
  const table = await readPartitionTable(dev);
  const r = selectRegion(dev, table, { kind: 'blkdev', spec: 'PARTUUID=DEADBEEF-06' });
  assert.equal(r.partition?.number, 6);
  assert.equal(r.device.offset, 12288 * 512);
  assert.equal(r.device.size, 1024 * 512);
  assert.equal(selectRegion(dev, table, { kind: 'blkdev', spec: '/dev/sda7' }).device.offset, 15360 * 512);
  assert.throws(() => selectRegion(dev, table, { kind: 'partition', partition: 'root' }), /MBR partitions have no names/);
});

test('partition selectors need a table; truncated images give BadInputError', async () => {
  const blank = new MemoryDevice(new Uint8Array(MiB), { name: 'blank.img' });
  assert.throws(
    () => selectRegion(blank, null, { kind: 'partition', partition: 1 }),
    (e: unknown) => e instanceof UsageError && /blank.img has no partition table/.test(e.message),
  );
  assert.throws(() => selectRegion(blank, null, { kind: 'blkdev', spec: 'PARTLABEL=pstore' }), UsageError);

  const cut = new MemoryDevice(fixtureBytes('partition/gpt-named.img.gz').slice(0, 3 * MiB));
  const table = await readPartitionTable(cut);
  assert.throws(
    () => selectRegion(cut, table, { kind: 'partition', partition: 'data' }),
    (e: unknown) => e instanceof BadInputError && /partition 3 .* extends past the end .* truncated/.test(e.message),
  );
  // pstore (sectors 4096–6143) ends exactly at the cut and is still usable.
  assert.equal(selectRegion(cut, table, { kind: 'partition', partition: 'pstore' }).device.offset, 2 * MiB);
});

test('offset/size ranges: defaults, bounds and alignment', () => {
  const dev = new MemoryDevice(new Uint8Array(8 * MiB), { alignment: 4096, blockSize: 4096 });
  const r = selectRegion(dev, null, regionSelectorFromOptions({ offset: '6M' }));
  assert.equal(r.device.offset, 6 * MiB);
  assert.equal(r.device.size, 2 * MiB);
  assert.equal(r.device.alignment, 4096);
  assert.equal(selectRegion(dev, null, regionSelectorFromOptions({ size: '1M' })).device.offset, 0);
  assert.throws(() => selectRegion(dev, null, { kind: 'range', offset: 512, size: 4096 }), /not aligned to the 4096-byte blocks/);
  assert.throws(() => selectRegion(dev, null, { kind: 'range', offset: 7 * MiB, size: 2 * MiB }), /runs past the end/);
  assert.throws(() => selectRegion(dev, null, { kind: 'range', offset: 9 * MiB }), /past the end/);
  assert.throws(() => selectRegion(dev, null, { kind: 'range', offset: 8 * MiB }), /empty region/);
});

test('regionSelectorFromOptions refuses contradictory options', () => {
  assert.throws(() => regionSelectorFromOptions({ partition: 2, offset: '1M' }), /--partition and --offset\/--size cannot be combined/);
  assert.throws(() => regionSelectorFromOptions({ partition: 'x', blkdev: '/dev/vda2' }), UsageError);
  assert.throws(() => regionSelectorFromOptions({ blkdev: '/dev/vda2', size: '1M' }), UsageError);
  assert.throws(() => regionSelectorFromOptions({ partition: '  ' }), UsageError);
  assert.throws(() => regionSelectorFromOptions({ blkdev: '179:2' }), UsageError);
  assert.deepEqual(regionSelectorFromOptions({ partition: '12' }), { kind: 'partition', partition: 12 });
});
