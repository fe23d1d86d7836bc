/**
 * Panic records end to end: a pstore/blk device driver with panic_write (test/vm/panic_blk.c,
 * over guest RAM reserved with memmap= and backed by a host file) stores a real kernel panic;
 * the next boot's /sys/fs/pstore and `crashcart pstore extract` on that RAM file (the region
 * given by offset and size) must agree file for file. Run with scripts/vm-test.sh panic-write.
 * The fixtures stock61-panic* (test/vm/make-fixture.ts, panic mode) keep a longer scenario.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/kernel-fixtures.js';
import { runVm } from './harness.js';

const REGION = { phys: 0x1000_0000, size: 1 << 20 };

test('a panic stored through panic_write reads back the same through the kernel and crashcart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vm-panic-'));
  try {
    const memoryFile = join(dir, 'ram.img');
    const cmdline = `memmap=1M$0x${REGION.phys.toString(16)} pstore_blk.kmsg_size=64 pstore_blk.max_reason=2`;
    const load = `load_panic_blk 0x${REGION.phys.toString(16)} 0x${REGION.size.toString(16)}\nmount_pstore\n`;
    const common = { cmdline, memoryFile, timeoutMs: 120_000 };
    const boot1 = await runVm({ ...common, expectPanic: true, script: `${load}oops_nowait 1\npanic_now\n` });
    assert.ok(boot1.panicked);
    const boot2 = await runVm({ ...common, script: `${load}save_pstore\n` });
    t.diagnostic(`boots: ${boot1.durationMs} ms (panic), ${boot2.durationMs} ms (readout)`);
    const kernel = new Map([...boot2.outputs].filter(([k]) => k.startsWith('pstore/')).map(([k, v]) => [k.slice('pstore/'.length), v]));
    assert.deepEqual([...kernel.keys()].sort(), ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1']);
    assert.match(kernel.get('dmesg-pstore_blk-1')!.toString('latin1'), /^Panic#2 Part1\n[^]*Kernel panic - not syncing: sysrq triggered crash/);

    const out = join(dir, 'out');
    const r = spawnSync(
      process.execPath,
      [join(repoRoot, 'bin/crashcart'), 'pstore', 'extract', memoryFile, '--offset', String(REGION.phys), '--size', String(REGION.size), '--cmdline', cmdline, '-o', out, '--json'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const index = JSON.parse(r.stdout);
    assert.deepEqual(
      index.records.map((x: { file: string; reasonName: string; counter: number }) => [x.file, x.reasonName, x.counter]),
      [
        ['dmesg-pstore_blk-0', 'Oops', 1],
        ['dmesg-pstore_blk-1', 'Panic', 1],
      ],
    );
    assert.deepEqual((await readdir(out)).filter((f) => f.startsWith('dmesg-')).sort(), [...kernel.keys()].sort());
    for (const [name, bytes] of kernel) assert.ok((await readFile(join(out, name))).equals(bytes), `${name} differs from the kernel's readout`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
