/**
 * `pstore extract --kernel-version` against a real reading kernel of another era: the stock612-whole
 * card (Debian 6.12, zlib deflate with a 32 KiB window) is read back by Debian's 6.1 kernel (crypto
 * deflate, 2 KiB window). 6.1 inflates each record in one zlib call, so it shows them decoded, byte
 * for byte as 6.12 did; crashcart's `--kernel-version 6.1` view must be that readout, no `.enc.z`.
 * Run with scripts/vm-test.sh pstore-cross-version.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';
import { loadVmEnv, runVm } from './harness.js';

test('Linux 6.1 reads 6.12-written deflate records as crashcart --kernel-version 6.1 says', async (t) => {
  const env = loadVmEnv();
  if (!env.kernelRelease.startsWith('6.1.')) return t.skip(`the provisioned kernel is ${env.kernelRelease}, not 6.1`);
  const fixture = join(kernelFixturesDir, 'stock612-whole');
  const cmdline = (await readFile(join(fixture, 'cmdline.txt'), 'utf8')).trim();
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vm-cross-'));
  try {
    const disk = join(dir, 'card.img');
    await writeFile(disk, gunzipSync(await readFile(join(fixture, 'disk.img.gz'))));
    const r = await runVm({
      disks: [{ path: disk, format: 'raw', serial: 'pstore' }],
      cmdline,
      script: 'load_pstore_blk\nmount_pstore\nsave_pstore pstore\n',
      timeoutMs: 240_000,
    });
    const kernel = new Map<string, Buffer>();
    for (const [k, v] of r.outputs) if (k.startsWith('pstore/')) kernel.set(k.slice('pstore/'.length), v);
    assert.ok(kernel.size > 0, 'Linux 6.1 shows the records');

    const out = join(dir, 'out');
    const x = spawnSync(process.execPath, [join(repoRoot, 'bin/crashcart'), 'pstore', 'extract', disk, '--cmdline', cmdline, '--kernel-version', env.kernelRelease, '-o', out], {
      encoding: 'utf8',
    });
    assert.equal(x.status, 0, x.stderr);
    const ours = (await readdir(out)).filter((f) => f !== 'index.json' && f !== 'raw').sort();
    assert.deepEqual(ours, [...kernel.keys()].sort(), 'the same file names, no .enc.z');
    for (const [name, bytes] of kernel) assert.ok((await readFile(join(out, name))).equals(bytes), `${name} equals Linux 6.1's readout`);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8'));
    assert.equal(index.kernel.writer.era, '6.6+', 'the card still shows a 6.6+ writer');
    t.diagnostic(`${r.durationMs} ms in the VM`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
