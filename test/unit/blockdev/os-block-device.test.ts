import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir, symlink, stat, open } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { openOsBlockDevice } from '../../../src/blockdev/os-block-device.js';
import { systemDiskCheck } from '../../../src/host/system-disk.js';
import { parseMountinfo, parseProcMounts, parseProcSwaps } from '../../../src/host/proc-mounts.js';
import { UsageError, WriteProtectedError } from '../../../src/errors.js';

let root = '';
let sys = '';
let proc = '';
let devDir = '';

async function put(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
}

/**
 * A fake sysfs: disk sdz (4096-byte logical blocks) with partitions sdz1..sdz3, sdz2 held by
 * dm-0 ("cryptroot"); disk sdy with one partition and nothing on it; disk sdw marked ro.
 */
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'crashcart-sys-'));
  sys = join(root, 'sys');
  proc = join(root, 'proc');
  devDir = join(root, 'dev');
  const blk = join(sys, 'devices', 'pci0000:00', 'usb1', 'host6', 'block');
  const disk = async (name: string, devNum: string, sectors: number, parts: [string, string][]) => {
    const d = join(blk, name);
    await put(join(d, 'dev'), `${devNum}\n`);
    await put(join(d, 'size'), `${sectors}\n`);
    await put(join(d, 'ro'), '0\n');
    await put(join(d, 'queue', 'logical_block_size'), '4096\n');
    await put(join(d, 'device', 'vendor'), 'Generic \n');
    await put(join(d, 'device', 'model'), 'SD/MMC Reader   \n');
    await mkdir(join(d, 'holders'), { recursive: true });
    await mkdir(join(sys, 'class', 'block'), { recursive: true });
    await symlink(d, join(sys, 'class', 'block', name));
    for (const [p, num] of parts) {
      await put(join(d, p, 'partition'), `${p.slice(-1)}\n`);
      await put(join(d, p, 'dev'), `${num}\n`);
      await put(join(d, p, 'size'), '2048\n');
      await mkdir(join(d, p, 'holders'), { recursive: true });
      await symlink(join(d, p), join(sys, 'class', 'block', p));
    }
  };
  await disk('sdz', '8:0', 8192, [
    ['sdz1', '8:1'],
    ['sdz2', '8:2'],
    ['sdz3', '8:3'],
  ]);
  await disk('sdy', '8:16', 8192, [['sdy1', '8:17']]);
  await disk('sdw', '8:32', 8192, []);
  await put(join(blk, 'sdw', 'ro'), '1\n');
  const dm = join(sys, 'devices', 'virtual', 'block', 'dm-0');
  await put(join(dm, 'dev'), '254:0\n');
  await put(join(dm, 'dm', 'name'), 'cryptroot\n');
  await mkdir(join(dm, 'holders'), { recursive: true });
  await symlink(dm, join(sys, 'class', 'block', 'dm-0'));
  await put(join(blk, 'sdz', 'sdz2', 'holders', 'dm-0'), '');

  await put(
    join(proc, 'self', 'mountinfo'),
    [
      '22 27 0:21 / /proc rw,relatime - proc proc rw',
      '27 1 0:31 / / rw,relatime - btrfs /dev/mapper/cryptroot rw',
      '30 27 8:1 / /boot\\040efi rw,relatime - vfat /dev/sdz1 rw',
      '31 27 8:17 / /mnt/other rw - ext4 /dev/sdq9 rw', // dev number matches sdy1 even though the name differs
      '',
    ].join('\n'),
  );
  await put(join(proc, 'swaps'), 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdz3                               partition\t1048572\t\t0\t\t-2\n');
  // "Device nodes": regular files named like the kernel devices (found through sysfs by name).
  await mkdir(devDir, { recursive: true });
  for (const n of ['sdz', 'sdz1', 'sdz2', 'sdy', 'sdw', 'sdv']) {
    await writeFile(join(devDir, n), new Uint8Array(0));
  }
  const f = await open(join(devDir, 'sdw'), 'r+');
  await f.truncate(8192 * 512);
  await f.close();
  await writeFile(join(devDir, 'sdz'), new Uint8Array(8192 * 512 + 4096).fill(0x5a));
  await writeFile(join(devDir, 'sdv'), new Uint8Array(3 * 1024 * 1024 + 700).fill(7));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('mountinfo, /proc/mounts and /proc/swaps parsers undo octal escapes', () => {
  assert.deepEqual(parseMountinfo('36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n'), [
    { devNum: '98:0', mountPoint: '/mnt/my disk', fsType: 'ext3', source: '/dev/root' },
  ]);
  assert.deepEqual(parseMountinfo('garbage\n\n1 2 3\n'), []);
  assert.deepEqual(parseProcMounts('/dev/sda1 /boot\\040x vfat rw 0 0\nbad\n'), [{ source: '/dev/sda1', mountPoint: '/boot x', fsType: 'vfat' }]);
  assert.deepEqual(parseProcSwaps('Filename Type Size Used Priority\n/swap\\040file file 10 0 -2\n'), ['/swap file']);
});

test('systemDiskCheck: root through dm-crypt, mounted partition and swap are all found', async () => {
  const r = await systemDiskCheck(join(devDir, 'sdz'), { sysRoot: sys, procRoot: proc });
  assert.equal(r.isBlockDevice, true);
  assert.equal(r.name, 'sdz');
  assert.equal(r.disk, 'sdz');
  assert.deepEqual(r.partitions, ['sdz1', 'sdz2', 'sdz3']);
  assert.deepEqual(r.holders, ['dm-0']);
  assert.equal(r.holdsRoot, true);
  assert.equal(r.inUse, true);
  assert.deepEqual(
    r.mounts.map((m) => [m.source, m.mountPoint, m.device]),
    [
      ['/dev/mapper/cryptroot', '/', 'dm-0'],
      ['/dev/sdz1', '/boot efi', 'sdz1'],
    ],
  );
  assert.deepEqual(r.swaps, ['/dev/sdz3']);
  assert.match(r.reasons.join('\n'), /holds the root file system/);
  assert.match(r.reasons.join('\n'), /\/dev\/sdz1 is mounted on \/boot efi/);
  assert.match(r.reasons.join('\n'), /\/dev\/sdz3 is in use as swap/);
});

test('systemDiskCheck: a partition is checked with its disk and its siblings (a mounted neighbour means the disk is in use)', async () => {
  const r = await systemDiskCheck(join(devDir, 'sdz2'), { sysRoot: sys, procRoot: proc });
  assert.equal(r.name, 'sdz2');
  assert.equal(r.disk, 'sdz');
  assert.deepEqual(r.partitions, ['sdz1', 'sdz3']);
  assert.equal(r.holdsRoot, true);
  assert.equal(r.inUse, true);
  assert.deepEqual(r.swaps, ['/dev/sdz3']);
  assert.deepEqual(r.mounts.map((m) => m.device).sort(), ['dm-0', 'sdz1']);
});

test('systemDiskCheck: mount matched by device number; idle disk; unknown mount state', async () => {
  const y = await systemDiskCheck(join(devDir, 'sdy'), { sysRoot: sys, procRoot: proc });
  assert.equal(y.inUse, true);
  assert.equal(y.holdsRoot, false);
  assert.deepEqual(
    y.mounts.map((m) => [m.mountPoint, m.device]),
    [['/mnt/other', 'sdy1']],
  );

  const w = await systemDiskCheck(join(devDir, 'sdw'), { sysRoot: sys, procRoot: proc });
  assert.equal(w.inUse, false);
  assert.deepEqual(w.reasons, []);

  const noProc = await systemDiskCheck(join(devDir, 'sdw'), { sysRoot: sys, procRoot: join(root, 'nowhere') });
  assert.equal(noProc.inUse, true);
  assert.match(noProc.reasons[0], /mount state unknown/);

  const file = await systemDiskCheck(join(devDir, 'sdv'), { sysRoot: sys, procRoot: proc });
  assert.equal(file.isBlockDevice, false);
  assert.equal(file.inUse, false);
  await assert.rejects(systemDiskCheck(join(devDir, 'missing'), { sysRoot: sys }), UsageError);
});

test('openOsBlockDevice: size, logical block size and identity from sysfs', async () => {
  const dev = await openOsBlockDevice(join(devDir, 'sdz'), { sysRoot: sys });
  try {
    assert.equal(dev.size, 8192 * 512); // sysfs, not the (longer) node
    assert.equal(dev.blockSize, 4096);
    assert.equal(dev.alignment, 4096);
    assert.equal(dev.readOnly, true);
    assert.equal(dev.kernelName, 'sdz');
    assert.equal(dev.info.kind, 'os-block');
    assert.equal(dev.info.vendor, 'Generic');
    assert.equal(dev.info.model, 'SD/MMC Reader');
    assert.deepEqual(await dev.read(4096, 4096), new Uint8Array(4096).fill(0x5a));
    await assert.rejects(dev.read(100, 4096), /not aligned to 4096/);
    await assert.rejects(dev.write(0, new Uint8Array(4096)), WriteProtectedError);
  } finally {
    await dev.close();
  }
});

test('openOsBlockDevice: write-protected medium, and size probing without sysfs', async () => {
  await assert.rejects(openOsBlockDevice(join(devDir, 'sdw'), { sysRoot: sys, write: true }), (e: unknown) => e instanceof WriteProtectedError && /read-only/.test(e.message));
  const ro = await openOsBlockDevice(join(devDir, 'sdw'), { sysRoot: sys });
  await ro.close();

  const probed = await openOsBlockDevice(join(devDir, 'sdv'), { sysRoot: sys });
  try {
    assert.equal(probed.size, 3 * 1024 * 1024 + 700);
    assert.equal(probed.blockSize, 512);
    assert.equal(probed.info.vendor, undefined);
  } finally {
    await probed.close();
  }
  // sysfs says 4 MiB but the node delivers nothing: a short read, not a hang or a crash.
  const shrunk = await openOsBlockDevice(join(devDir, 'sdy'), { sysRoot: sys });
  try {
    assert.equal(shrunk.size, 8192 * 512);
    await assert.rejects(shrunk.read(0, 4096), /short read .* wanted 4096 bytes at offset 0, got only 0/);
  } finally {
    await shrunk.close();
  }
});

/** The block device holding "/" on this machine, if the root file system is on one. */
function rootBlockDevice(): string | undefined {
  try {
    const root = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => m.mountPoint === '/');
    if (root && root.source.startsWith('/dev/') && existsSync(root.source)) return root.source;
  } catch {
    return undefined;
  }
  return undefined;
}
const rootDev = rootBlockDevice();

test('real system: the root device holds /, and cannot be opened for writing', { skip: rootDev ? false : 'root file system is not on a block device here' }, async (t) => {
  const path = rootDev as string;
  assert.ok((await stat(path)).isBlockDevice());
  const r = await systemDiskCheck(path);
  assert.equal(r.isBlockDevice, true);
  assert.equal(r.holdsRoot, true);
  assert.equal(r.inUse, true);
  // O_EXCL on a mounted device fails with EBUSY ("in use"); a sandbox may refuse even earlier.
  await assert.rejects(openOsBlockDevice(path, { write: true }), (e: unknown) => e instanceof UsageError && /in use|permission denied/.test(e.message));
  let dev;
  try {
    dev = await openOsBlockDevice(path);
  } catch (e) {
    assert.ok(e instanceof UsageError && /permission denied/.test(e.message), String(e));
    t.diagnostic(`${path} cannot be opened here: ${e.message}`);
    return;
  }
  try {
    assert.ok(dev.size > 0 && dev.size % dev.blockSize === 0);
    assert.equal((await dev.read(0, dev.blockSize)).length, dev.blockSize);
  } finally {
    await dev.close();
  }
});
