import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { openImageFile } from '../../../src/blockdev/image-file-device.js';
import { BadInputError, UsageError, WriteProtectedError } from '../../../src/errors.js';
import { layoutPartitions, writeGpt } from '../../../src/partition/gpt-write.js';
import { readPartitionTable } from '../../../src/partition/partition-table.js';
import { loadProfile, validateProfile, type BoardProfile } from '../../../src/profile/board-profile.js';
import { applyProvision, planProvision } from '../../../src/provision/provision.js';
import { putKmsgZone } from '../../helpers/zone-builder.js';
import { pattern } from '../../helpers/pattern.js';
import { buildZip } from '../../helpers/zip-builder.js';

const MiB = 1024 * 1024;
const tmp = mkdtempSync(join(tmpdir(), 'crashcart-prov-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const qemu = () => loadProfile('qemu-x86_64');
const blank = (size = 64 * MiB, opts = {}) => new MemoryDevice(new Uint8Array(size), { name: 'card', ...opts });
/** qemu-x86_64: pstore is partition 3 at 41 MiB. */
const PSTORE_AT = 41 * MiB;

function plantOops(dev: MemoryDevice, regionOffset: number, zone = 0, text = 'Oops: 0000 [#1] planted by the test\n') {
  putKmsgZone(
    dev.data.subarray(regionOffset),
    zone * 65536,
    65536,
    { sec: 1700000000n, nsec: 5, compressed: false, counter: zone + 1, reason: 2, payload: new TextEncoder().encode(text) },
    'le',
    'lp64',
  );
}

/** A sparse image file of `size` bytes, open for writing. */
async function sparse(name: string, size: number) {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return openImageFile(p, { write: true });
}

function file(name: string, data: Uint8Array | string): string {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
}

test('blank card: GPT written, pstore already clean; the second run finds the card matching and writes nothing', async () => {
  const dev = blank();
  const plan = await planProvision(dev, qemu(), { guidSeed: 'x' });
  assert.equal(plan.table.action, 'write');
  assert.deepEqual(plan.table.reasons, ['the card has no partition table']);
  assert.equal(plan.pstore?.action, 'none');
  assert.equal(plan.changes, true);
  assert.equal(plan.bytesToWrite, 2 * 512 + 2 * 16384 + 512);
  assert.deepEqual(plan.recordsAtRisk, []);
  assert.equal(
    plan.cmdline,
    'pstore_blk.blkdev=/dev/vda3 pstore_blk.best_effort=y pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0 pstore_blk.max_reason=2 pstore.compress=deflate',
  );
  const r = await applyProvision(dev, plan);
  assert.equal(r.tableWritten, true);
  assert.equal(r.bytesWritten, plan.bytesToWrite);
  const t = await readPartitionTable(dev);
  assert.deepEqual(
    t?.partitions.map((p) => [p.number, p.name, p.start, p.size, p.uuid]),
    plan.table.partitions.map((p) => [p.number, p.name, p.start, p.size, p.uuid]),
  );
  const before = sha(dev.data);
  const again = await planProvision(dev, qemu());
  assert.equal(again.table.action, 'keep');
  assert.equal(again.changes, false);
  assert.equal(again.bytesToWrite, 0);
  assert.deepEqual(
    again.table.partitions.map((p) => p.uuid),
    plan.table.partitions.map((p) => p.uuid),
    "the card's GUIDs are kept",
  );
  const r2 = await applyProvision(dev, again);
  assert.equal(r2.unchanged, true);
  assert.equal(r2.bytesWritten, 0);
  assert.equal(sha(dev.data), before);
});

test('a dirty pstore partition is formatted; with headers the erased zone headers make it detectable', async () => {
  const dev = blank();
  dev.data.fill(0x5a, PSTORE_AT, PSTORE_AT + 2 * MiB);
  const plan = await planProvision(dev, qemu());
  assert.equal(plan.pstore?.action, 'format');
  assert.equal(plan.pstore?.reason, 'the region is not formatted');
  await applyProvision(dev, plan);
  assert.ok(dev.data.subarray(PSTORE_AT, PSTORE_AT + 2 * MiB).every((b) => b === 0));

  const json = JSON.parse(readFileSync(qemu().path, 'utf8'));
  json.name = 'qemu-headers';
  json.pstore.headers = true;
  const withHeaders = validateProfile(json, join(tmp, 'qemu-headers.json'));
  const p2 = await planProvision(dev, withHeaders);
  assert.equal(p2.pstore?.action, 'format', 'zeros are not what a headers format leaves');
  assert.equal(p2.pstore?.headers, 32);
  await applyProvision(dev, p2);
  assert.equal(new TextDecoder('latin1').decode(dev.data.subarray(PSTORE_AT, PSTORE_AT + 4)), 'DBGC');
  assert.equal(new TextDecoder('latin1').decode(dev.data.subarray(PSTORE_AT + 65536, PSTORE_AT + 65540)), 'DBGC');
  const p3 = await planProvision(dev, withHeaders);
  assert.equal(p3.pstore?.action, 'none');
  assert.equal(p3.changes, false);
});

test('images: raw and gzip are written, an identical partition is skipped, a changed one rewritten', async () => {
  const dev = blank();
  const data = pattern(3 * MiB + 1234, 7);
  const raw = file('root.img', data);
  const gz = file('root.img.gz', gzipSync(data));
  const plan = await planProvision(dev, qemu(), { images: { rootfs: { image: raw } } });
  assert.deepEqual(
    plan.images.map((i) => [i.name, i.format, i.size, i.action]),
    [['rootfs', 'raw', data.length, 'write']],
  );
  const r = await applyProvision(dev, plan);
  assert.deepEqual(r.imagesWritten, [{ partition: 2, name: 'rootfs', bytes: data.length }]);
  assert.ok(Buffer.from(dev.data.subarray(9 * MiB, 9 * MiB + data.length)).equals(Buffer.from(data)));

  const same = await planProvision(dev, qemu(), { images: { rootfs: { image: gz } } });
  assert.deepEqual(
    same.images.map((i) => [i.format, i.action, i.reason]),
    [['gzip', 'skip', 'the partition already holds this image']],
  );
  assert.equal(same.changes, false);

  dev.data[9 * MiB + 3 * MiB] ^= 0xff;
  const fix = await planProvision(dev, qemu(), { images: { rootfs: { image: gz } } });
  assert.deepEqual(
    fix.images.map((i) => [i.action, i.reason]),
    [['write', 'the partition differs from the image']],
  );
  assert.equal(fix.bytesToWrite, data.length);
  await applyProvision(dev, fix);
  assert.ok(Buffer.from(dev.data.subarray(9 * MiB, 9 * MiB + data.length)).equals(Buffer.from(data)));
});

const XZ = ['/usr/bin/xz', '/bin/xz'].find((p) => existsSync(p));
test('images: xz-compressed images go through the flash pipeline too', { skip: XZ ? false : 'xz not installed; skipping' }, async () => {
  const dev = blank();
  const data = pattern(2 * MiB + 77, 11);
  const raw = file('xz-root.img', data);
  const r = spawnSync(XZ!, ['-k', '-f', raw]);
  assert.equal(r.status, 0, String(r.stderr));
  const plan = await planProvision(dev, qemu(), { images: { rootfs: { image: `${raw}.xz` } } });
  assert.deepEqual(
    plan.images.map((i) => [i.format, i.size, i.action]),
    [['xz', data.length, 'write']],
  );
  await applyProvision(dev, plan);
  assert.ok(Buffer.from(dev.data.subarray(9 * MiB, 9 * MiB + data.length)).equals(Buffer.from(data)));
  assert.equal((await planProvision(dev, qemu(), { images: { rootfs: { image: `${raw}.xz` } } })).changes, false);
});

test('images: a .zip holding one image is written like any other; a zip with two is refused before anything is written', async () => {
  const dev = blank();
  const data = pattern(2 * MiB + 99, 13);
  const zip = file(
    'root.img.zip',
    buildZip([
      { name: 'out/', data: new Uint8Array(0), method: 0 },
      { name: 'out/root.img', data, descriptor: 'signed' },
    ]),
  );
  const plan = await planProvision(dev, qemu(), { images: { rootfs: { image: zip } } });
  assert.deepEqual(
    plan.images.map((i) => [i.format, i.size, i.action]),
    [['zip', data.length, 'write']],
  );
  await applyProvision(dev, plan);
  assert.ok(Buffer.from(dev.data.subarray(9 * MiB, 9 * MiB + data.length)).equals(Buffer.from(data)));
  assert.equal((await planProvision(dev, qemu(), { images: { rootfs: { image: zip } } })).changes, false);
  const h = sha(dev.data);
  const two = file(
    'two.zip',
    buildZip([
      { name: 'a.img', data },
      { name: 'b.img', data },
    ]),
  );
  await assert.rejects(planProvision(dev, qemu(), { images: { esp: { image: two } } }), /holds 2 files: "a\.img" \(2 MiB\), "b\.img" \(2 MiB\)/);
  assert.equal(sha(dev.data), h);
});

test('images: too large, corrupt, missing, or for an unknown partition are refused before anything is written', async () => {
  const dev = blank();
  const h = sha(dev.data);
  await assert.rejects(
    planProvision(dev, qemu(), { images: { esp: { image: file('big.img', new Uint8Array(8 * MiB + 1)) } } }),
    (e: unknown) => e instanceof BadInputError && /larger than its partition \(8388608 bytes/.test(e.message),
  );
  await assert.rejects(planProvision(dev, qemu(), { images: { esp: { image: file('x.img.xz', new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2])) } } }), BadInputError);
  await assert.rejects(
    planProvision(dev, qemu(), { images: { esp: { image: join(tmp, 'missing.img') } } }),
    (e: unknown) => e instanceof UsageError && /no such file/.test(e.message),
  );
  await assert.rejects(planProvision(dev, qemu(), { images: { boot: { image: file('b.img', 'x') } } }), /has no partition or raw region "boot" \(esp, rootfs, pstore\)/);
  await assert.rejects(planProvision(dev, qemu(), { images: { esp: { image: file('bad.gz', new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3])) } } }), BadInputError);
  assert.equal(sha(dev.data), h);
});

function bmapXml(image: Uint8Array, blockSize: number, ranges: [number, number][], corrupt = false): string {
  const body = ranges
    .map(([a, b]) => {
      const bytes = image.subarray(a * blockSize, Math.min(image.length, (b + 1) * blockSize));
      let sum = sha(bytes);
      if (corrupt) sum = sum.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      return `    <Range chksum="${sum}">${a === b ? a : `${a}-${b}`}</Range>`;
    })
    .join('\n');
  const mapped = ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  const zeros = '0'.repeat(64);
  const xml = `<?xml version="1.0" ?>
<bmap version="2.0">
    <ImageSize> ${image.length} </ImageSize>
    <BlockSize> ${blockSize} </BlockSize>
    <BlocksCount> ${Math.ceil(image.length / blockSize)} </BlocksCount>
    <MappedBlocksCount> ${mapped} </MappedBlocksCount>
    <ChecksumType> sha256 </ChecksumType>
    <BmapFileChecksum> ${zeros} </BmapFileChecksum>
    <BlockMap>
${body}
    </BlockMap>
</bmap>
`;
  // bmap-tools: the file's own sha256, taken with this field set to zeros
  return xml.replace(zeros, sha(new TextEncoder().encode(xml)));
}

test('bmap: only mapped blocks are written (the rest of the partition is left as it was), checksums are verified first', async () => {
  const img = new Uint8Array(10 * 4096 + 100);
  img.set(pattern(4096, 1), 0);
  img.set(pattern(2 * 4096, 2), 5 * 4096);
  img.set(pattern(100, 3), 10 * 4096);
  const imgPath = file('sparse.img', img);
  const good = file(
    'sparse.bmap',
    bmapXml(img, 4096, [
      [0, 0],
      [5, 6],
      [10, 10],
    ]),
  );
  const bad = file(
    'sparse-bad.bmap',
    bmapXml(
      img,
      4096,
      [
        [0, 0],
        [5, 6],
        [10, 10],
      ],
      true,
    ),
  );

  const dev = blank();
  dev.data.fill(0xaa, 1 * MiB, 9 * MiB);
  const h = sha(dev.data);
  await assert.rejects(
    planProvision(dev, qemu(), { images: { esp: { image: imgPath, bmap: bad } } }),
    (e: unknown) => e instanceof BadInputError && /bytes 0–4095 do not match their sha256 checksum/.test(e.message),
  );
  assert.equal(sha(dev.data), h);

  const plan = await planProvision(dev, qemu(), { images: { esp: { image: imgPath, bmap: good } } });
  assert.equal(plan.images[0].dataBytes, 3 * 4096 + 100);
  await applyProvision(dev, plan);
  const part = dev.data.subarray(MiB, 9 * MiB);
  assert.ok(Buffer.from(part.subarray(0, 4096)).equals(Buffer.from(img.subarray(0, 4096))));
  assert.ok(
    part.subarray(4096, 5 * 4096).every((b) => b === 0xaa),
    'unmapped blocks are not written',
  );
  assert.ok(Buffer.from(part.subarray(5 * 4096, 7 * 4096)).equals(Buffer.from(img.subarray(5 * 4096, 7 * 4096))));
  assert.ok(Buffer.from(part.subarray(10 * 4096, 10 * 4096 + 100)).equals(Buffer.from(img.subarray(10 * 4096))));
  assert.equal(part[10 * 4096 + 100], 0xaa);
  const again = await planProvision(dev, qemu(), { images: { esp: { image: imgPath, bmap: good } } });
  assert.equal(again.images[0].action, 'skip');
});

test('too small: the card and the profile minimum are both checked', async () => {
  await assert.rejects(
    planProvision(blank(40 * MiB), qemu()),
    (e: unknown) =>
      e instanceof BadInputError && /card is too small for profile qemu-x86_64: 41943040 bytes \(40 MiB\), it needs at least 67108864 bytes \(64 MiB\)/.test(e.message),
  );
  const json = JSON.parse(readFileSync(qemu().path, 'utf8'));
  delete json.card;
  json.name = 'qemu-nomin';
  const p = validateProfile(json, join(tmp, 'qemu-nomin.json'));
  await assert.rejects(planProvision(blank(43 * MiB), p), /it needs at least 45105664 bytes/);
  assert.equal((await planProvision(blank(44 * MiB), p)).table.action, 'write');
});

test('write-protected cards: nothing is written, but a matching one is reported as matching', async () => {
  const dev = blank(64 * MiB, { readOnly: true });
  const plan = await planProvision(dev, qemu());
  assert.equal(plan.device.readOnly, true);
  await assert.rejects(applyProvision(dev, plan), (e: unknown) => e instanceof WriteProtectedError && /read-only or write-protected; provisioning would write/.test(e.message));
  assert.ok(dev.data.every((b) => b === 0));

  const rw = blank();
  await applyProvision(rw, await planProvision(rw, qemu()));
  const ro = new MemoryDevice(rw.data, { name: 'card', readOnly: true });
  const r = await applyProvision(ro, await planProvision(ro, qemu()));
  assert.equal(r.unchanged, true);
});

test('a different partition table is only replaced when asked, and its pstore records are backed up first', async () => {
  const dev = blank();
  // an old layout: one big partition, then a pstore partition at 60 MiB with a record in it
  await writeGpt(dev, {
    sectorSize: 512,
    partitions: layoutPartitions(
      [
        { name: 'data', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', size: 50 * MiB },
        { name: 'pstore', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', size: 2 * MiB, start: 60 * MiB },
      ],
      { sectorSize: 512, deviceSize: dev.size },
    ),
  });
  plantOops(dev, 60 * MiB, 0, 'Oops: 0000 [#1] under the old table\n');
  const h = sha(dev.data);
  await assert.rejects(planProvision(dev, qemu()), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /holds a partition table that differs from profile qemu-x86_64:/);
    assert.match(e.message, /partition 1 is named "data", expected "esp"/);
    assert.match(e.message, /partition 3 "pstore" is missing/);
    assert.match(e.message, /pass --replace-table/);
    return true;
  });
  const plan = await planProvision(dev, qemu(), { replaceTable: true });
  assert.equal(plan.table.action, 'replace');
  assert.deepEqual(
    plan.recordsAtRisk.map((r) => [r.offset, r.records]),
    [[60 * MiB, ['dmesg-pstore_blk-0']]],
  );
  assert.match(plan.recordsAtRisk[0].description, /old partition 2 "pstore"/);
  await assert.rejects(applyProvision(dev, plan), /give a backup folder or discard them explicitly/);
  assert.equal(sha(dev.data), h, 'refusing to destroy records wrote nothing');
  const backup = join(tmp, 'backup-replace');
  const r = await applyProvision(dev, plan, { backupDir: backup });
  assert.deepEqual(
    r.backups.map((b) => [b.dir, b.records]),
    [[backup, ['dmesg-pstore_blk-0']]],
  );
  assert.match(readFileSync(join(backup, 'dmesg-pstore_blk-0'), 'utf8'), /under the old table/);
  assert.equal((await planProvision(dev, qemu())).changes, false);
});

test('records of the board in the pstore partition are kept; --reformat-pstore backs them up, then formats', async () => {
  const dev = blank();
  await applyProvision(dev, await planProvision(dev, qemu()));
  plantOops(dev, PSTORE_AT, 0, 'Oops: 0000 [#1] first\n');
  plantOops(dev, PSTORE_AT, 1, 'Oops: 0000 [#2] second\n');
  const keep = await planProvision(dev, qemu());
  assert.equal(keep.pstore?.action, 'keep');
  assert.deepEqual(keep.pstore?.records, ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1']);
  assert.equal(keep.changes, false);

  const plan = await planProvision(dev, qemu(), { reformatPstore: true });
  assert.equal(plan.pstore?.action, 'format');
  assert.deepEqual(
    plan.recordsAtRisk.map((r) => r.records.length),
    [2],
  );
  const backup = join(tmp, 'backup-reformat');
  const r = await applyProvision(dev, plan, { backupDir: backup });
  assert.equal(r.pstoreFormatted, true);
  assert.deepEqual(
    readdirSync(backup)
      .filter((f) => f.startsWith('dmesg'))
      .sort(),
    ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1'],
  );
  assert.ok(existsSync(join(backup, 'index.json')));
  assert.ok(dev.data.subarray(PSTORE_AT, PSTORE_AT + 2 * MiB).every((b) => b === 0));

  // discarding explicitly is allowed and saves nothing
  plantOops(dev, PSTORE_AT, 0);
  const p2 = await planProvision(dev, qemu(), { reformatPstore: true });
  const r2 = await applyProvision(dev, p2, { discardRecords: true });
  assert.deepEqual(r2.backups, []);
  assert.equal(r2.pstoreFormatted, true);
});

test("a damaged backup table is repaired in place, keeping the card's GUIDs", async () => {
  const dev = blank();
  const first = await planProvision(dev, qemu());
  await applyProvision(dev, first);
  dev.data.fill(0, dev.size - 512);
  const plan = await planProvision(dev, qemu());
  assert.equal(plan.table.action, 'repair');
  assert.equal(plan.table.diskGuid, first.table.diskGuid);
  await applyProvision(dev, plan);
  const t = await readPartitionTable(dev);
  assert.deepEqual(t?.warnings, []);
  assert.deepEqual(
    t?.partitions.map((p) => p.uuid),
    first.table.partitions.map((p) => p.uuid),
  );
});

test('kernel command lines: mmcpstore boards get no best_effort, PARTUUID is used when the profile names no device', async () => {
  const brcmDev = await sparse('brcm.img', 2 * 1024 * MiB);
  const brcm = await planProvision(brcmDev, loadProfile('brcmstb-emmc'));
  await brcmDev.close();
  assert.equal(brcm.pstore?.partition, 9);
  assert.equal(
    brcm.cmdline,
    'pstore_blk.blkdev=/dev/mmcblk1p9 pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0 pstore_blk.max_reason=2',
  );
  const armDev = await sparse('arm.img', 1024 * MiB);
  const arm = await planProvision(armDev, loadProfile('generic-armhf'));
  await armDev.close();
  assert.equal(
    arm.cmdline,
    'console=ttyAMA0,115200 root=/dev/mmcblk0p3 rootwait pstore_blk.blkdev=/dev/mmcblk0p2 pstore_blk.best_effort=y pstore_blk.kmsg_size=16 pstore_blk.pmsg_size=8 pstore_blk.console_size=8 pstore_blk.ftrace_size=0 pstore_blk.max_reason=2 pstore.compress=lz4',
  );
  assert.equal(arm.pstore?.layout.kmsgCount, 63);
  const json = JSON.parse(readFileSync(qemu().path, 'utf8'));
  json.name = 'qemu-partuuid';
  json.cmdline = 'console=ttyS0';
  const p: BoardProfile = validateProfile(json, join(tmp, 'qemu-partuuid.json'));
  const plan = await planProvision(blank(), p, { guidSeed: 'cmd' });
  const uuid = plan.table.partitions[2].uuid.toLowerCase();
  assert.match(plan.cmdline!, new RegExp(`^console=ttyS0 pstore_blk\\.blkdev=\\S*${uuid} pstore_blk\\.best_effort=y`));
  assert.match(plan.notes.join('\n'), new RegExp(`the profile's cmdline has no pstore_blk\\.blkdev: naming the partition \\S*${uuid}`));
});

test('a profile without a layout cannot provision', async () => {
  const p = validateProfile({ name: 'geometry-only', pstore: { kmsg_size: 64 } }, 'geometry-only.json');
  await assert.rejects(planProvision(blank(), p), /has no partition layout/);
});
