import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDestinationSpec, describeDestination } from '../../../src/flash/safety.js';
import { RefusedError } from '../../../src/flash/errors.js';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { fixture, tempDir } from './helpers.js';

/** A whole-disk block device node this machine has (for the OS-device checks), if any. */
function someBlockDevice(): string | undefined {
  let names: string[] = [];
  try {
    names = readdirSync('/sys/class/block');
  } catch {
    return undefined;
  }
  for (const n of names) {
    const p = `/dev/${n}`;
    try {
      if (statSync(p).isBlockDevice()) return p;
    } catch {
      /* no node */
    }
  }
  return undefined;
}

test('an OS block device that is mounted is refused unless --allow-system-disk', async (t) => {
  const dev = someBlockDevice();
  if (!dev) return t.skip('no block device node on this machine');
  const dir = tempDir(t);
  const proc = join(dir, 'proc');
  mkdirSync(join(proc, 'self'), { recursive: true });
  writeFileSync(join(proc, 'self', 'mountinfo'), `36 25 0:99 / /mnt/card rw,relatime shared:1 - ext4 ${dev} rw\n`);
  writeFileSync(join(proc, 'swaps'), 'Filename\tType\tSize\tUsed\tPriority\n');
  await assert.rejects(checkDestinationSpec(dev, fixture('disk.img'), { procRoot: proc }), (e: unknown) => e instanceof RefusedError && (e.exitCode as number) === 12 && /mounted on \/mnt\/card/.test(e.message) && /--allow-system-disk/.test(e.message));
  await checkDestinationSpec(dev, fixture('disk.img'), { procRoot: proc, allowSystemDisk: true });
  writeFileSync(join(proc, 'self', 'mountinfo'), `1 0 0:99 / / rw - ext4 ${dev} rw\n`);
  await assert.rejects(checkDestinationSpec(dev, fixture('disk.img'), { procRoot: proc }), /holds the root file system/);
  writeFileSync(join(proc, 'self', 'mountinfo'), `36 25 0:98 / /data rw - ext4 /dev/some-other-disk rw\n`);
  await checkDestinationSpec(dev, fixture('disk.img'), { procRoot: proc });
});

test('the image itself is never a destination; usb: specs and image files pass', async (t) => {
  const dir = tempDir(t);
  const other = join(dir, 'card.img');
  writeFileSync(other, new Uint8Array(4096));
  await assert.rejects(checkDestinationSpec(fixture('disk.img'), fixture('disk.img')), /image being flashed/);
  await checkDestinationSpec(other, fixture('disk.img'));
  await checkDestinationSpec('usb:1-1.4', fixture('disk.img'));
});

test('the confirmation line names model, size and serial', () => {
  const dev = new MemoryDevice(new Uint8Array(1024 * 1024));
  (dev as unknown as { info: object }).info = { name: 'usb:1-1.4@lun=0', kind: 'usb', vendor: 'Generic', model: 'SD/MMC Reader', serial: '000000001206' };
  assert.equal(describeDestination(dev), 'usb:1-1.4@lun=0, Generic SD/MMC Reader, 1 MiB (1048576 bytes), serial 000000001206');
  assert.equal(describeDestination(new MemoryDevice(new Uint8Array(512))), 'memory, 512 B (512 bytes), no serial number');
});
