import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { parseGpt } from '../../../src/partition/gpt.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { BadInputError, CrashcartError } from '../../../src/errors.js';
import { fixtureBytes, fixtureDevice } from './fixtures.js';

const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const MSDATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';

/** What sgdisk wrote into gpt-named (see test/fixtures/partition/README.md). */
const NAMED = [
  { number: 1, name: 'boot', first: 2048, sectors: 1024, type: LINUX, bits: [2] },
  { number: 2, name: 'pstore', first: 4096, sectors: 2048, type: LINUX, bits: [] },
  { number: 3, name: 'data', first: 6144, sectors: 512, type: MSDATA, bits: [] },
  { number: 4, name: 'Data', first: 34, sectors: 512, type: LINUX, bits: [] },
  { number: 7, name: 'Ünïcødé 名前', first: 6656, sectors: 512, type: LINUX, bits: [60] },
];

function checkNamed(t: Awaited<ReturnType<typeof readPartitionTable>>): void {
  assert.ok(t);
  assert.equal(t.kind, 'gpt');
  assert.equal(t.sectorSize, 512);
  assert.equal(t.diskGuid, '11111111-2222-3333-4444-555555555555');
  assert.deepEqual(
    t.partitions.map((p) => ({ number: p.number, name: p.name, first: p.firstLba, sectors: p.size / 512, type: p.typeGuid, bits: p.attributeBits })),
    NAMED,
  );
  for (const p of t.partitions) {
    assert.equal(p.start, p.firstLba * 512);
    assert.equal(p.lastLba, p.firstLba + p.size / 512 - 1);
    assert.equal(p.uuid, `A0000000-0000-0000-0000-00000000000${p.number}`);
  }
}

test('GPT written by sgdisk: names, GUIDs, attributes, numbering with gaps', async () => {
  const t = await readPartitionTable(fixtureDevice('partition/gpt-named.img.gz'));
  checkNamed(t);
  assert.equal(t?.header, 'primary');
  assert.deepEqual(t?.warnings, []);
});

test('GPT is read the same through a 512-byte-aligned (block-only) device', async () => {
  checkNamed(await readPartitionTable(fixtureDevice('partition/gpt-named.img.gz', { alignment: 512 })));
  checkNamed(await readPartitionTable(fixtureDevice('partition/gpt-named.img.gz', { alignment: 4096 })));
});

test('corrupt primary header: backup is used and a warning says why', async () => {
  const t = await readPartitionTable(fixtureDevice('partition/gpt-bad-primary.img.gz'));
  checkNamed(t);
  assert.equal(t?.header, 'backup');
  assert.equal(t?.warnings.length, 1);
  assert.match(t?.warnings[0] ?? '', /primary GPT header CRC mismatch; using the backup header at LBA 8191/);
});

test('corrupt primary entry array: backup is used', async () => {
  const t = await readPartitionTable(fixtureDevice('partition/gpt-bad-primary-entries.img.gz'));
  checkNamed(t);
  assert.equal(t?.header, 'backup');
  assert.match(t?.warnings.join('\n') ?? '', /partition entry array CRC mismatch; using the backup header at LBA 8191/);
});

test('primary header zeroed out entirely: backup is used', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz');
  img.fill(0, 512, 1024);
  const t = await readPartitionTable(new MemoryDevice(img));
  checkNamed(t);
  assert.equal(t?.header, 'backup');
  assert.match(t?.warnings[0] ?? '', /no GPT signature/);
});

test('both headers corrupt: clear BadInputError naming both', async () => {
  const dev = fixtureDevice('partition/gpt-bad-both.img.gz');
  await assert.rejects(readPartitionTable(dev), (err: unknown) => {
    assert.ok(err instanceof BadInputError);
    assert.match(err.message, /protective MBR found but no valid GPT header/);
    assert.match(err.message, /primary: header CRC mismatch/);
    assert.match(err.message, /backup at LBA 8191: header CRC mismatch/);
    return true;
  });
});

test('backup header damaged: primary used, warning about backup', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz');
  img[8191 * 512 + 20] ^= 0xff;
  const t = await readPartitionTable(new MemoryDevice(img));
  checkNamed(t);
  assert.equal(t?.header, 'primary');
  assert.deepEqual(t?.warnings, ['backup GPT header at LBA 8191 is unusable: header CRC mismatch']);
});

test('4096-byte-sector GPT made by fdisk -b 4096 is found from a 512-byte image', async () => {
  for (const opts of [{}, { blockSize: 4096, alignment: 4096 }]) {
    const t = await readPartitionTable(fixtureDevice('partition/gpt-4k.img.gz', opts));
    assert.ok(t);
    assert.equal(t.kind, 'gpt');
    assert.equal(t.sectorSize, 4096);
    assert.equal(t.diskGuid, '22222222-3333-4444-5555-666666666666');
    assert.deepEqual(
      t.partitions.map((p) => [p.number, p.name, p.start, p.size, p.uuid]),
      [
        [1, 'first', 256 * 4096, 64 * 4096, 'B0000000-0000-0000-0000-000000000001'],
        [2, 'pstore4k', 512 * 4096, 256 * 4096, 'B0000000-0000-0000-0000-000000000002'],
      ],
    );
    assert.deepEqual(t.warnings, []);
  }
});

test('kernel-written fixture (stock 6.1): partitions boot and pstore', async () => {
  const t = await readPartitionTable(fixtureDevice('kernel/stock61-gpt/disk.img.gz'));
  assert.ok(t);
  assert.equal(t.diskGuid, '2866D9A4-5141-B94F-A001-86A70659F8FB');
  assert.deepEqual(
    t.partitions.map((p) => [p.number, p.name, p.firstLba, p.size / 512, p.uuid]),
    [
      [1, 'boot', 2048, 2048, 'F6740AEB-97EA-5C4B-97C4-B18666EAD402'],
      [2, 'pstore', 4096, 10200, 'CCD5276A-B985-C54E-9422-DE8856285AD9'],
    ],
  );
});

test('truncated GPT image: primary is used, missing backup and cut partitions are reported', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz').slice(0, 3 * 1024 * 1024);
  const t = await readPartitionTable(new MemoryDevice(img));
  assert.ok(t);
  assert.equal(t.header, 'primary');
  assert.equal(t.partitions.length, 5);
  const w = t.warnings.join('\n');
  assert.match(w, /backup GPT header should be at LBA 8191, past the end of the device/);
  assert.match(w, /GPT describes a disk of at least 8159 sectors but the device has 6144; truncated image\?/);
  assert.match(w, /partition 3 \(LBA 6144–6655\) extends past the end of the device \(last LBA 6143\)/);
  assert.doesNotMatch(w, /partition 2 /);
  assert.match(w, /partition 7 .* extends past the end/);
});

test('GPT without a protective MBR is still read, with a warning', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz');
  img.fill(0, 0, 512);
  const t = await readPartitionTable(new MemoryDevice(img));
  checkNamed(t);
  assert.match(t?.warnings.join('\n') ?? '', /no protective MBR/);
});

/** Rewrites entry `index` of the primary array through `patch`, then fixes both CRCs. */
function patchPrimaryEntry(img: Uint8Array, index: number, patch: (entry: DataView) => void): void {
  const entry = new DataView(img.buffer, img.byteOffset + 1024 + index * 128, 128);
  patch(entry);
  const hdr = new DataView(img.buffer, img.byteOffset + 512, 92);
  hdr.setUint32(88, crc32(img.subarray(1024, 1024 + 128 * 128)) >>> 0, true);
  hdr.setUint32(16, 0, true);
  hdr.setUint32(16, crc32(img.subarray(512, 512 + 92)) >>> 0, true);
}

test('entries with an inverted LBA range are skipped with a warning; overlaps are reported', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz');
  patchPrimaryEntry(img, 2, (e) => {
    e.setBigUint64(32, 7000n, true);
    e.setBigUint64(40, 6000n, true);
  });
  patchPrimaryEntry(img, 3, (e) => e.setBigUint64(40, 2100n, true)); // partition 4: 34–2100 overlaps 1
  const t = await parseGpt(new MemoryDevice(img));
  assert.ok(t);
  assert.equal(t.header, 'primary');
  assert.deepEqual(
    t.partitions.map((p) => p.number),
    [1, 2, 4, 7],
  );
  const w = t.warnings.join('\n');
  assert.match(w, /GPT entry 3 has an invalid LBA range \(7000–6000\); ignored/);
  assert.match(w, /partitions 4 and 1 overlap/);
});

test('an empty / unpartitioned device has no table', async () => {
  assert.equal(await readPartitionTable(new MemoryDevice(new Uint8Array(1 << 20))), null);
  assert.equal(await readPartitionTable(new MemoryDevice(new Uint8Array(100))), null);
  assert.equal(await readPartitionTable(new MemoryDevice(new Uint8Array(0))), null);
});

test('damaged tables never crash: random byte flips give a table or a typed error', async () => {
  const base = fixtureBytes('partition/gpt-named.img.gz');
  let seed = 0x12345678;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  let tables = 0;
  let errors = 0;
  for (let round = 0; round < 300; round++) {
    const img = base.slice();
    const flips = 1 + Math.floor(rnd() * 8);
    for (let i = 0; i < flips; i++) {
      // Hit the MBR, both headers and both entry arrays.
      const regions = [
        [0, 512],
        [512, 1024],
        [1024, 1024 + 16384],
        [8191 * 512, 8192 * 512],
        [8159 * 512, 8191 * 512],
      ];
      const [a, b] = regions[Math.floor(rnd() * regions.length)];
      img[a + Math.floor(rnd() * (b - a))] = Math.floor(rnd() * 256);
    }
    try {
      const t = await readPartitionTable(new MemoryDevice(img));
      if (t) tables++;
    } catch (err) {
      assert.ok(err instanceof CrashcartError, `unexpected ${String(err)}`);
      errors++;
    }
  }
  assert.ok(tables > 0 && tables + errors <= 300);
});
