import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadInputError, UsageError } from '../../../src/errors.js';
import { baseProfile } from '../../helpers/base-profile.js';
import {
  PARTITION_TYPE_ALIASES,
  allProfileParams,
  checkProfile,
  listProfiles,
  loadProfile,
  profileParams,
  resolvePartitionType,
  validateProfile,
} from '../../../src/profile/board-profile.js';

const BUNDLED = ['brcmstb-emmc', 'generic-armhf', 'imx8mm-sd', 'qemu-x86_64', 'rpi-hybrid', 'rpi-mbr', 'rpi-sd'];

const base = baseProfile;

function errorsOf(json: unknown): string[] {
  return checkProfile(json, '/nowhere/test-board.json').errors;
}

test('bundled profiles: the four boards are listed, load and validate without warnings', () => {
  assert.deepEqual(listProfiles(), BUNDLED);
  for (const name of BUNDLED) {
    const p = loadProfile(name);
    assert.equal(p.name, name);
    assert.ok(p.partitions && p.partitions.length >= 3, `${name} has a layout`);
    assert.ok(p.pstore?.partition, `${name} names its pstore partition`);
    assert.ok(p.notes && p.notes.length > 0, `${name} is commented`);
    const r = checkProfile(JSON.parse(readFileSync(p.path, 'utf8')), p.path);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, [], `${name} validates without warnings`);
  }
  const q = loadProfile('qemu-x86_64');
  assert.deepEqual(q.abi, { endian: 'le', layout: 'lp64' });
  assert.deepEqual(
    q.partitions!.map((x) => [x.name, x.typeAlias, x.size]),
    [
      ['esp', 'esp', 8 << 20],
      ['rootfs', 'linux-root-x86-64', 32 << 20],
      ['pstore', 'pstore', 2 << 20],
    ],
  );
  assert.equal(q.card?.min_size, 64 << 20);
  assert.equal(loadProfile('generic-armhf').abi?.layout, 'ilp32');
  assert.deepEqual(loadProfile('generic-armhf').partitions![0].attributes, [2]);
  assert.equal(loadProfile('brcmstb-emmc').pstore?.backend, 'mmcpstore');
  assert.equal(
    loadProfile('brcmstb-emmc').partitions!.findIndex((p) => p.name === 'pstore'),
    8,
    'pstore is p9 as on the boards',
  );
});

test('profile parameters: fields and the cmdline fragment, tagged "profile"', () => {
  const q = loadProfile('qemu-x86_64');
  const p = profileParams(q);
  assert.deepEqual(p.kmsg_size, { value: 64, source: 'profile' });
  assert.deepEqual(p.compress, { value: 'deflate', source: 'profile' });
  const all = allProfileParams(q);
  assert.deepEqual(all.blkdev, { value: '/dev/vda3', source: 'profile' });
  assert.deepEqual(all.pmsg_size, { value: 0, source: 'profile' });
});

test('backward compatible: a profile with only pstore geometry (no layout) still loads as before', () => {
  const p = validateProfile(
    { name: 'old', abi: { endian: 'be', layout: 'ilp32' }, pstore: { kmsg_size: 32, cpus: 2, ftrace_cpu_in_ip: 1 }, cmdline: 'pstore_blk.blkdev=/dev/sda3' },
    'old.json',
  );
  assert.deepEqual(p, {
    name: 'old',
    path: 'old.json',
    abi: { endian: 'be', layout: 'ilp32' },
    pstore: { kmsg_size: 32, cpus: 2, ftrace_cpu_in_ip: 1 },
    cmdline: 'pstore_blk.blkdev=/dev/sda3',
  });
});

test('type aliases and GUIDs', () => {
  assert.equal(resolvePartitionType('linux'), '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  assert.equal(resolvePartitionType('ESP'), 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  assert.equal(resolvePartitionType('linux-swap'), '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F');
  assert.equal(resolvePartitionType('pstore'), PARTITION_TYPE_ALIASES['linux-reserved']);
  assert.equal(resolvePartitionType('0fc63daf-8483-4772-8e79-3d69d8477de4'), '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  assert.equal(resolvePartitionType('ext4'), undefined);
  for (const inherited of ['constructor', '__proto__', 'hasOwnProperty']) assert.equal(resolvePartitionType(inherited), undefined, inherited);
});

test('a valid custom profile: sizes with units, relative image paths, the rest partition', () => {
  const json = base();
  (json.partitions[2] as Record<string, unknown>).image = 'images/root.img';
  const r = checkProfile(json, '/boards/test-board.json');
  assert.deepEqual(r.errors, []);
  assert.equal(r.profile!.partitions![0].size, 8 * 1024 * 1024);
  assert.equal(r.profile!.partitions![2].size, 'rest');
  assert.equal(r.profile!.partitions![2].image, '/boards/images/root.img');
  assert.match(r.warnings.join('\n'), /partitions\[2\]\.image: \/boards\/images\/root\.img does not exist/);
});

test('every error names its field, and all of them are reported at once', () => {
  const json = base() as Record<string, unknown>;
  const parts = json.partitions as Record<string, unknown>[];
  parts[0].type = 'ext4';
  parts[1].size = 1000;
  parts.push({ name: 'boot', type: 'linux', size: 'lots' });
  json.abi = { endian: 'middle' };
  json.colour = 'blue';
  const errs = errorsOf(json);
  assert.deepEqual(
    errs.map((e) => e.split(':')[0]).sort(),
    ['abi.endian', 'colour', 'partitions[0].type', 'partitions[1].size', 'partitions[2].size', 'partitions[3].name', 'partitions[3].size'].sort(),
  );
  assert.match(
    errs.find((e) => e.startsWith('partitions[0].type'))!,
    /"ext4" is neither a GUID nor a known alias \(linux, esp/,
  );
  assert.match(
    errs.find((e) => e.startsWith('partitions[3].name'))!,
    /"boot" is already used by partitions\[0\]/,
  );
  assert.match(
    errs.find((e) => e.startsWith('partitions[2].size'))!,
    /"rest" is only allowed for the last partition/,
  );
  assert.throws(
    () => validateProfile(json, 'x.json'),
    (e: unknown) => e instanceof BadInputError && /profile x\.json: 7 problems:\n {2}/.test(e.message),
  );
});

test('cross-field checks: pstore partition, geometry the kernel refuses, cmdline disagreements', () => {
  const cases: [string, (j: ReturnType<typeof base>) => void, RegExp][] = [
    ['unknown pstore partition', (j) => (j.pstore.partition = 'crash'), /^pstore\.partition: "crash" is not one of the profile's partitions \(1 "boot", 2 "pstore", 3 "rootfs"\)/],
    ['pstore partition by number out of range', (j) => ((j.pstore as Record<string, unknown>).partition = 7), /^pstore\.partition: 7 is not one of/],
    [
      'region not a multiple of 4 KiB',
      (j) => (j.partitions[1].size = '6K'),
      /^partitions\[1\]\.size: the kernel would refuse this pstore region: total_size must be a multiple of 4096/,
    ],
    ['kmsg zone larger than the region', (j) => (j.pstore.kmsg_size = 2048), /^partitions\[1\]\.size: the kernel would refuse this pstore region: .*(no room|too small)/],
    ['cmdline size disagrees', (j) => (j.cmdline += ' pstore_blk.kmsg_size=32'), /^pstore\.kmsg_size: is 16 but cmdline says 32/],
    [
      'blkdev names another partition',
      (j) => (j.cmdline = 'pstore_blk.blkdev=/dev/mmcblk0p3'),
      /^cmdline: pstore_blk\.blkdev=\/dev\/mmcblk0p3 names partition 3, but pstore\.partition is partition 2 "pstore"/,
    ],
    ['blkdev by label', (j) => (j.cmdline = 'pstore_blk.blkdev=PARTLABEL=oops'), /^cmdline: pstore_blk\.blkdev=PARTLABEL=oops names "oops"/],
    ['blkdev PARTUUID without a fixed uuid', (j) => (j.cmdline = 'pstore_blk.blkdev=PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4'), /needs partitions\[1\]\.uuid/],
    ['bad kernel number', (j) => (j.cmdline = 'pstore_blk.kmsg_size=lots'), /^cmdline: pstore_blk\.kmsg_size=lots: not an integer/],
    ['pstore without partition on a layout', (j) => delete (j.pstore as Record<string, unknown>).partition, /^pstore\.partition: must name the pstore partition/],
    ['overlapping start', (j) => ((j.partitions[1] as Record<string, unknown>).start = '4MiB'), /^partitions: partition 2 "pstore": start 4194304 .* overlaps partition 1 "boot"/],
    ['bmap without image', (j) => ((j.partitions[0] as Record<string, unknown>).bmap = 'x.bmap'), /^partitions\[0\]\.bmap: needs an image/],
    ['bad attribute', (j) => ((j.partitions[0] as Record<string, unknown>).attributes = [64]), /^partitions\[0\]\.attributes: must be a list of attribute bit numbers 0–63/],
    ['bad backend', (j) => ((j.pstore as Record<string, unknown>).backend = 'ramoops'), /^pstore\.backend: must be "best_effort" or "mmcpstore"/],
    ['name', (j) => ((j as Record<string, unknown>).name = 'Test Board'), /^name: must be a lowercase identifier/],
    ['long partition name', (j) => (j.partitions[0].name = 'x'.repeat(37)), /^partitions\[0\]\.name: .* longer than the 36 characters/],
    ['type named like an Object.prototype member', (j) => (j.partitions[0].type = 'constructor'), /^partitions\[0\]\.type: "constructor" is neither a GUID nor a known alias/],
    ['$comment of a nested object', (j) => ((j.pstore as Record<string, unknown>).$comment = 4), /^pstore\.\$comment: must be a string or a list of strings$/],
  ];
  for (const [what, mutate, re] of cases) {
    const j = base();
    mutate(j);
    const errs = errorsOf(j);
    assert.ok(
      errs.some((e) => re.test(e)),
      `${what}: got ${JSON.stringify(errs)}`,
    );
  }
  assert.deepEqual(errorsOf(base()), []);
});

test('loadProfile: by name, by path, unknown names and broken JSON', () => {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-prof-'));
  try {
    const good = join(dir, 'test-board.json');
    writeFileSync(good, JSON.stringify(base()));
    assert.equal(loadProfile(good).name, 'test-board');
    assert.throws(
      () => loadProfile('no-such-board'),
      (e: unknown) =>
        e instanceof UsageError && /no board profile "no-such-board" \(bundled: brcmstb-emmc, generic-armhf, imx8mm-sd, qemu-x86_64, rpi-hybrid, rpi-mbr, rpi-sd\)/.test(e.message),
    );
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "name": ');
    assert.throws(() => loadProfile(broken), BadInputError);
    const renamed = join(dir, 'other.json');
    writeFileSync(renamed, JSON.stringify(base()));
    assert.match(checkProfile(base(), renamed).warnings.join('\n'), /differs from the file name other\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MBR profiles: numbers from 5 for logical partitions, types by number or name, the fields of each table kind', () => {
  const mbr = (change: (j: Record<string, any>) => void = () => undefined) => {
    // eslint-disable-line @typescript-eslint/no-explicit-any
    const j: Record<string, any> = {
      // eslint-disable-line @typescript-eslint/no-explicit-any
      name: 'test-board',
      table: 'mbr',
      disk_signature: '0xA1B2C3D4',
      partitions: [
        { name: 'boot', type: 'c', size: '8MiB', bootable: true },
        { name: 'root', type: 131, size: '16MiB' },
        { name: 'pstore', type: 'pstore', size: '1MiB', logical: true },
        { name: 'data', type: '0x83', size: 'rest', logical: true },
      ],
      pstore: { partition: 'pstore', kmsg_size: 16, pmsg_size: 0, console_size: 0, ftrace_size: 0 },
      cmdline: 'pstore_blk.blkdev=/dev/mmcblk0p5 pstore_blk.best_effort=y',
    };
    change(j);
    return checkProfile(j, '/nowhere/test-board.json');
  };
  const ok = mbr();
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.profile!.diskSignature, 'a1b2c3d4');
  assert.deepEqual(
    ok.profile!.partitions!.map((p) => [p.type, !!p.bootable, !!p.logical]),
    [
      ['0x0c', true, false],
      ['0x83', false, false],
      ['0xda', false, true],
      ['0x83', false, true],
    ],
  );
  assert.deepEqual(mbr((j) => (j.cmdline = 'pstore_blk.blkdev=PARTUUID=a1b2c3d4-05')).errors, []);
  assert.deepEqual(mbr((j) => (j.pstore.partition = 5)).errors, []);
  const errors = (change: (j: Record<string, any>) => void) => mbr(change).errors.join('\n'); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(
    errors((j) => (j.pstore.partition = 3)),
    /pstore\.partition: 3 is not one of the profile's partitions \(1 "boot", 2 "root", 5 "pstore", 6 "data"\)/,
  );
  assert.match(
    errors((j) => (j.cmdline = 'pstore_blk.blkdev=/dev/mmcblk0p3')),
    /names partition 3, but pstore\.partition is partition 5 "pstore"/,
  );
  assert.match(
    errors((j) => (j.cmdline = 'pstore_blk.blkdev=PARTUUID=a1b2c3d4-03')),
    /is not partition 5 "pstore", whose PARTUUID is a1b2c3d4-05/,
  );
  assert.match(
    errors((j) => {
      delete j.disk_signature;
      j.cmdline = 'pstore_blk.blkdev=PARTUUID=a1b2c3d4-05';
    }),
    /needs disk_signature/,
  );
  assert.match(
    errors((j) => (j.partitions[0].uuid = '0FC63DAF-8483-4772-8E79-3D69D8477DE4')),
    /partitions\[0\]\.uuid: is only for GPT tables/,
  );
  assert.match(
    errors((j) => (j.partitions[1].type = 5)),
    /partitions\[1\]\.type: 5 is not an MBR type/,
  );
  assert.match(
    errors((j) => (j.partitions[1].type = 'esp-x')),
    /partitions\[1\]\.type: "esp-x" is not an MBR type/,
  );
  assert.match(
    errors((j) => (j.partitions[1].type = '0FC63DAF-8483-4772-8E79-3D69D8477DE4')),
    /is a GPT type, but the table is "mbr"/,
  );
  assert.match(
    errors((j) => (j.partitions[3].logical = false)),
    /^partitions: partition 4 is primary but follows a logical one/m,
  );
  assert.match(
    errors((j) => (j.disk_signature = 'xyz')),
    /disk_signature: must be 8 hex digits/,
  );
  assert.match(
    errors((j) => (j.table = 'msdos')),
    /table: must be "gpt" or "mbr"/,
  );
  const gpt = checkProfile({ ...base(), disk_signature: '12345678', partitions: [{ name: 'a', type: 'c', size: '1MiB', bootable: true }] }, 'x.json').errors.join('\n');
  assert.match(gpt, /disk_signature: is only for "table": "mbr"/);
  assert.match(gpt, /partitions\[0\]\.type: "c" is an MBR type, but the table is "gpt"/);
  assert.match(gpt, /partitions\[0\]\.bootable: is only for "table": "mbr"/);
});

test('raw regions: after the table head, before the first partition, not overlapping, names unique', () => {
  const withRaw = (raw: unknown, table: 'gpt' | 'mbr' = 'gpt') =>
    checkProfile(
      { ...base(), ...(table === 'mbr' ? { table, partitions: base().partitions.map((p) => ({ ...p, type: 'linux' })) } : {}), raw },
      '/nowhere/test-board.json',
    ).errors.join('\n');
  assert.equal(withRaw([{ name: 'spl', offset: '32KiB', size: '512KiB' }]), '');
  assert.equal(withRaw([{ name: 'spl', offset: '8KiB', size: '32KiB' }], 'mbr'), '');
  assert.match(withRaw([{ name: 'spl', offset: '8KiB', size: '32KiB' }]), /raw\[0\]\.offset: 8192 lies in the GPT/);
  assert.match(withRaw([{ name: 'spl', offset: '32KiB', size: '1MiB' }]), /raw\[0\]\.size: region "spl" \(bytes 32768–1081343\) runs into the first partition at 1048576/);
  assert.match(
    withRaw([
      { name: 'a', offset: '32KiB', size: '64KiB' },
      { name: 'b', offset: '64KiB', size: '64KiB' },
    ]),
    /raw\[1\]\.offset: region "b" overlaps region "a"/,
  );
  assert.match(withRaw([{ name: 'boot', offset: '32KiB', size: '64KiB' }]), /raw\[0\]\.name: "boot" is already the name of a partition or region/);
  assert.match(withRaw([{ name: 'x', offset: 1000, size: '64KiB' }]), /raw\[0\]\.offset: 1000 is not a multiple of 512/);
  assert.match(withRaw([{ name: 'x', size: '64KiB' }]), /raw\[0\]\.offset: is required/);
  assert.match(withRaw([]), /^raw: must be a non-empty list of regions$/);
});
