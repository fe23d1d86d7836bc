/**
 * The proof for `pstore format` and `pstore clear`: a live Linux kernel accepts a region
 * crashcart formatted, writes its Oopses there, crashcart reads back exactly what that kernel
 * reads back, and after crashcart clears the records the kernel shows none and numbers the
 * next Oops as if it had erased them itself. Run with scripts/vm-test.sh pstore-format.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';
import { runVm } from './harness.js';

const bin = join(repoRoot, 'bin/crashcart');

function crashcart(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `crashcart ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Kernel readout saved by save_pstore: name → bytes. */
function readout(outputs: Map<string, Buffer>): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const [k, v] of outputs) if (k.startsWith('pstore/')) m.set(k.slice('pstore/'.length), v);
  return m;
}

async function assertSameFiles(dir: string, kernel: Map<string, Buffer>) {
  const ours = (await readdir(dir)).filter((f) => f !== 'index.json' && f !== 'raw').sort();
  assert.deepEqual(ours, [...kernel.keys()].sort(), 'same records as the kernel');
  for (const [name, bytes] of kernel) assert.ok((await readFile(join(dir, name))).equals(bytes), `${name} differs from the kernel's readout`);
}

interface Scenario {
  name: string;
  /** Card image to start from (holds old records that format must back up). */
  image: () => Promise<Buffer>;
  region: string[];
  geometry: string[];
  /** Kernel command line extras (compression etc.). */
  extra: string;
}

async function runScenario(t: { diagnostic(s: string): void }, s: Scenario) {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), `crashcart-vm-${s.name}-`));
  try {
    const disk = join(dir, 'card.img');
    await writeFile(disk, await s.image());

    // 1. crashcart formats the region; the old records are backed up first.
    const fmt = JSON.parse(crashcart('pstore', 'format', disk, ...s.region, ...s.geometry, '--yes', '--json', '--backup', join(dir, 'backup')));
    assert.ok(fmt.records.length > 0, 'the card held records before formatting');
    assert.deepEqual((await readdir(join(dir, 'backup'))).filter((f) => f !== 'index.json' && f !== 'raw').sort(), [...fmt.records].sort());
    const cmdline = `${fmt.cmdline} ${s.extra}`;
    // A boot that only registers pstore_blk and saves what the kernel shows in /sys/fs/pstore.
    const kernelReadout = async () =>
      readout((await runVm({ disks: [{ path: disk, serial: 'card' }], cmdline, timeoutMs: 120_000, script: 'load_pstore_blk\nmount_pstore\nsave_pstore\n' })).outputs);
    t.diagnostic(`${s.name}: board command line: ${cmdline}`);

    // 2. Boot 1: the kernel registers on the formatted region, shows nothing, takes two Oopses.
    const boot1 = await runVm({
      disks: [{ path: disk, serial: 'card' }],
      cmdline,
      timeoutMs: 120_000,
      script: `
        load_pstore_blk
        mount_pstore
        [ -z "$(ls /sys/fs/pstore)" ] || vm_fail "formatted region shows records: $(ls /sys/fs/pstore)"
        oops 1
        oops 2
      `,
    });
    assert.doesNotMatch(boot1.dmesg, /found (invalid|overtop) zone/);

    // 3. Boot 2: the kernel's own readout; crashcart must extract the same, file for file.
    const kernel2 = await kernelReadout();
    assert.deepEqual([...kernel2.keys()].sort(), ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-1']);
    const out2 = join(dir, 'extract2');
    // The command line format printed names the region by itself (/dev/vda2 → GPT partition 2).
    const ix = JSON.parse(crashcart('pstore', 'extract', disk, '-o', out2, '--json', '--cmdline', cmdline));
    await assertSameFiles(out2, kernel2);
    assert.deepEqual(ix.counters, { oops: 2, panic: 0 });

    // 4. crashcart clears; boot 3 shows no records and takes a new Oops; boot 4 reads it.
    crashcart('pstore', 'clear', disk, '--cmdline', cmdline, '--yes', '--backup', join(dir, 'backup-clear'));
    const boot3 = await runVm({
      disks: [{ path: disk, serial: 'card' }],
      cmdline,
      timeoutMs: 120_000,
      script: `
        load_pstore_blk
        mount_pstore
        ls /sys/fs/pstore | save_text listing
        oops 3
      `,
    });
    assert.equal(boot3.outputs.get('listing')?.toString(), '', 'the kernel shows no records after crashcart clear');
    const kernel4 = await kernelReadout();
    // The counters survived the clear: the kernel numbers this Oops 3 and writes the next zone.
    assert.deepEqual([...kernel4.keys()], ['dmesg-pstore_blk-2']);
    const out4 = join(dir, 'extract4');
    const ix4 = JSON.parse(crashcart('pstore', 'extract', disk, '-o', out4, '--json', '--cmdline', cmdline));
    await assertSameFiles(out4, kernel4);
    assert.equal(ix4.records[0].counter, 3);
    if (!ix4.records[0].compressed) assert.match(kernel4.get('dmesg-pstore_blk-2')!.toString(), /^Oops: Total 3 times\n/);
    t.diagnostic(`${s.name}: scenario run time ${((Date.now() - started) / 1000).toFixed(1)} s (4 boots)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('whole-disk region, default 64 KiB kmsg zones, deflate: format → 2 Oopses → extract = kernel → clear → counters survive', async (t) => {
  await runScenario(t, {
    name: 'whole',
    // A card that still holds four records from an earlier kernel (with another geometry).
    image: async () => gunzipSync(await readFile(join(kernelFixturesDir, 'c61-none-rr/disk.img.gz'))),
    region: [],
    geometry: ['--cmdline', 'pstore_blk.blkdev=/dev/vda pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0'],
    extra: '',
  });
});

test('GPT partition at 2 MiB, 16 KiB kmsg zones, uncompressed: the same cycle on another geometry', async (t) => {
  await runScenario(t, {
    name: 'gpt',
    image: async () => gunzipSync(await readFile(join(kernelFixturesDir, 'stock61-gpt/disk.img.gz'))),
    region: ['--partition', 'pstore'],
    geometry: ['--cmdline', 'pstore_blk.blkdev=/dev/vda2 pstore_blk.kmsg_size=16 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0'],
    extra: 'pstore.compress=none',
  });
});
