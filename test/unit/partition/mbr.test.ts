import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { parseMbr } from '../../../src/partition/mbr.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { fixtureBytes, fixtureDevice } from './fixtures.js';

test('MBR written by sfdisk: primaries, extended, logical partitions numbered 5+', async () => {
  const t = await readPartitionTable(fixtureDevice('partition/mbr-logical.img.gz'));
  assert.ok(t);
  assert.equal(t.kind, 'mbr');
  assert.equal(t.sectorSize, 512);
  assert.equal(t.diskSignature, 'deadbeef');
  assert.deepEqual(t.warnings, []);
  assert.deepEqual(
    t.partitions.map((p) => [p.number, p.type, p.firstLba, p.size / 512, !!p.bootable, !!p.extended, !!p.logical, p.uuid]),
    [
      [1, 0x83, 2048, 2048, true, false, false, 'deadbeef-01'],
      [2, 0x0c, 4096, 2048, false, false, false, 'deadbeef-02'],
      [3, 0x05, 6144, 10240, false, true, false, 'deadbeef-03'],
      [5, 0x83, 8192, 2048, false, false, true, 'deadbeef-05'],
      [6, 0x82, 12288, 1024, false, false, true, 'deadbeef-06'],
      [7, 0x83, 15360, 1024, false, false, true, 'deadbeef-07'],
    ],
  );
  for (const p of t.partitions) assert.equal(p.start, p.firstLba * 512);
});

/** Sector of the n-th EBR (n from 0) in mbr-logical, found by following the chain. */
function ebrSectors(img: Uint8Array): number[] {
  const dv = new DataView(img.buffer, img.byteOffset);
  const ext = 6144;
  const out: number[] = [];
  let rel = 0;
  for (;;) {
    const lba = ext + rel;
    out.push(lba);
    const link = lba * 512 + 446 + 16;
    if (img[link + 4] === 0) break;
    rel = dv.getUint32(link + 8, true);
  }
  return out;
}

test('an EBR chain that loops is cut with a warning', async () => {
  const img = fixtureBytes('partition/mbr-logical.img.gz');
  const ebrs = ebrSectors(img);
  assert.deepEqual(ebrs.length, 3);
  const last = ebrs[2] * 512 + 446 + 16;
  const dv = new DataView(img.buffer, img.byteOffset);
  img[last + 4] = 0x05;
  dv.setUint32(last + 8, 0, true); // back to the first EBR
  dv.setUint32(last + 12, 100, true);
  const t = await parseMbr(new MemoryDevice(img));
  assert.ok(t);
  assert.deepEqual(
    t.partitions.map((p) => p.number),
    [1, 2, 3, 5, 6, 7],
  );
  assert.match(t.warnings.join('\n'), /EBR chain loops back to sector 6144/);
});

test('an EBR without signature stops the chain with a warning', async () => {
  const img = fixtureBytes('partition/mbr-logical.img.gz');
  const ebrs = ebrSectors(img);
  img[ebrs[1] * 512 + 510] = 0;
  const t = await parseMbr(new MemoryDevice(img));
  assert.deepEqual(
    t?.partitions.map((p) => p.number),
    [1, 2, 3, 5],
  );
  assert.equal(ebrs[1], 10240);
  assert.match(t?.warnings.join('\n') ?? '', /EBR at sector 10240 has no 0x55AA signature/);
});

test('MBR on a truncated image: partitions past the end are reported', async () => {
  const img = fixtureBytes('partition/mbr-logical.img.gz').slice(0, 5 * 1024 * 1024);
  const t = await readPartitionTable(new MemoryDevice(img));
  assert.ok(t);
  assert.equal(t.kind, 'mbr');
  assert.match(t.warnings.join('\n'), /partition 3 .* extends past the end of the device/);
  // EBRs from sector 10240 (5 MiB) on are outside the image: chain stops, no crash.
  assert.match(t.warnings.join('\n'), /EBR at sector 10240 lies outside/);
  assert.deepEqual(
    t.partitions.map((p) => p.number),
    [1, 2, 3, 5],
  );
});

test('not an MBR: FAT boot sector, bad boot flags, no signature', async () => {
  const vbr = new Uint8Array(1 << 20);
  vbr.set([0xeb, 0x3c, 0x90], 0);
  vbr.set(new TextEncoder().encode('mkfs.fat'), 3);
  vbr.set(new TextEncoder().encode('FAT16   '), 54);
  vbr[510] = 0x55;
  vbr[511] = 0xaa;
  assert.equal(await readPartitionTable(new MemoryDevice(vbr)), null);

  const badFlag = fixtureBytes('partition/mbr-logical.img.gz');
  badFlag[446 + 16] = 0x12;
  assert.equal(await readPartitionTable(new MemoryDevice(badFlag)), null);

  const noSig = fixtureBytes('partition/mbr-logical.img.gz');
  noSig[511] = 0;
  assert.equal(await readPartitionTable(new MemoryDevice(noSig)), null);
});

test('empty MBR (signature, no entries, no boot code) is an empty table', async () => {
  const img = new Uint8Array(1 << 20);
  img[510] = 0x55;
  img[511] = 0xaa;
  const t = await readPartitionTable(new MemoryDevice(img));
  assert.equal(t?.kind, 'mbr');
  assert.deepEqual(t?.partitions, []);
});

test('GPT behind a non-protective MBR: the MBR wins (as in Linux), with a warning', async () => {
  const img = fixtureBytes('partition/gpt-named.img.gz');
  img.set(fixtureBytes('partition/mbr-logical.img.gz').subarray(0, 512), 0);
  const t = await readPartitionTable(new MemoryDevice(img));
  assert.equal(t?.kind, 'mbr');
  assert.match(t?.warnings.join('\n') ?? '', /GPT header is present but the MBR is not protective/);
});
