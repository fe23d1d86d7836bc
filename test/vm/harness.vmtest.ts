// Self-test of the VM harness (needs test/vm/provision.sh; run with scripts/vm-test.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRawImage, loadVmEnv, runVm, VmError } from './harness.js';

const PSTORE_CMDLINE = 'pstore_blk.blkdev=/dev/vda pstore_blk.best_effort=y pstore_blk.kmsg_size=64';

type Diag = { diagnostic(message: string): void };
function report(t: Diag, label: string, ms: number): void {
  t.diagnostic(`${label}: ${(ms / 1000).toFixed(1)} s`);
}

test('pstore/blk: an Oops written in boot 1 is read back by the kernel in boot 2', async (t) => {
  const env = loadVmEnv();
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vmtest-'));
  const started = Date.now();
  try {
    const disk = join(dir, 'pstore.img');
    await createRawImage(disk, 1024 * 1024);

    const boot1 = await runVm({
      disks: [{ path: disk, serial: 'pstore' }],
      cmdline: PSTORE_CMDLINE,
      timeoutMs: 90_000,
      script: `
        load_pstore_blk
        mount_pstore
        [ -z "$(ls /sys/fs/pstore)" ] || vm_fail "fresh region shows records"
        oops 1
        cat /sys/module/pstore_blk/parameters/kmsg_size | save_text kmsg_size
      `,
    });
    report(t, `boot 1 (host wall time; guest kernel boot ${boot1.guestBootMs} ms)`, boot1.durationMs);
    assert.equal(boot1.exitStatus, 0);
    assert.match(boot1.dmesg, /Registered pstore_blk as persistent store backend/);
    assert.match(boot1.dmesg, /RIP: 0010:oops_init\+0x[0-9a-f]+\/0x[0-9a-f]+ \[oops1\]/);
    assert.equal(boot1.outputs.get('kmsg_size')?.toString().trim(), '64');

    const image = await readFile(disk);
    // the kmsg zone header starts with the psz_buffer signature "DBGC" (0x43474244 LE)
    assert.equal(image.subarray(0, 4).toString('latin1'), 'DBGC', 'boot 1 left no pstore zone header on the disk');

    const boot2 = await runVm({
      disks: [{ path: disk, serial: 'pstore' }],
      cmdline: PSTORE_CMDLINE,
      timeoutMs: 90_000,
      script: `
        load_pstore_blk
        mount_pstore
        save_pstore
      `,
    });
    report(t, 'boot 2 (host wall time)', boot2.durationMs);
    const names = [...boot2.outputs.keys()].filter((k) => k.startsWith('pstore/')).sort();
    assert.deepEqual(names, ['pstore/dmesg-pstore_blk-0']);
    const record = boot2.outputs.get('pstore/dmesg-pstore_blk-0')!;
    const text = record.toString('utf8');
    assert.match(text, /Oops: 0000 \[#1\]/);
    assert.match(text, /crashcart test oops module 1: dereferencing NULL/);
    assert.match(text, /\[oops1\]/);
    // stat manifest: name, size and mtime of the kernel's file; size must match the bytes we got
    const stat = boot2.outputs.get('pstore.stat')!.toString().trim().split(/\s+/);
    assert.equal(stat[0], 'dmesg-pstore_blk-0');
    assert.equal(Number(stat[1]), record.length);
    assert.equal(env.kernelRelease.length > 0, true);
    report(t, 'two-boot scenario total', Date.now() - started);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('oops waits for the kernel to write: without pstorefs mounted nothing reaches the disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vmtest-'));
  try {
    const disk = join(dir, 'pstore.img');
    await createRawImage(disk, 1024 * 1024);
    const r = await runVm({
      disks: [{ path: disk }],
      cmdline: PSTORE_CMDLINE,
      env: { OOPS_FLUSH_TIMEOUT: '4' },
      allowFailure: true,
      timeoutMs: 90_000,
      script: 'load_pstore_blk\noops 2\n',
    });
    assert.equal(r.exitStatus, 1);
    assert.match(r.scriptLog, /Oops 2: nothing written to \/dev\/vda within 4 s/);
    assert.match(r.dmesg, /\[oops2\]/);
    const image = await readFile(disk);
    assert.ok(
      image.every((b) => b === 0),
      'the region was written although pstorefs was never mounted',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a failing scenario is reported with its status and output', async () => {
  await assert.rejects(runVm({ script: 'echo about to fail; false; echo not reached', timeoutMs: 60_000 }), (e: unknown) => {
    assert.ok(e instanceof VmError);
    assert.equal(e.result?.exitStatus, 1);
    assert.match(e.result!.scriptLog, /about to fail/);
    assert.doesNotMatch(e.result!.scriptLog, /not reached/);
    return true;
  });
  const r = await runVm({ script: 'exit 3', allowFailure: true, timeoutMs: 60_000 });
  assert.equal(r.exitStatus, 3);
});

test('guest watchdog ends a hanging scenario and outputs are still saved', async () => {
  const r = await runVm({
    script: 'echo before > /out/partial; sleep 600',
    timeoutMs: 60_000,
    scriptTimeoutMs: 5_000,
    allowFailure: true,
  });
  assert.equal(r.exitStatus, 124);
  assert.equal(r.outputs.get('partial')?.toString(), 'before\n');
});

test('host-side timeout kills QEMU and reports the serial log', async () => {
  // the guest watchdog is longer than the host limit, so only the host limit can end this run
  await assert.rejects(runVm({ script: 'echo still-running; sleep 600', timeoutMs: 25_000, scriptTimeoutMs: 600_000 }), (e: unknown) => {
    assert.ok(e instanceof VmError);
    assert.match(e.message, /timed out after 25000 ms/);
    assert.match(e.serialLog, /still-running/);
    return true;
  });
});

test('files in, files out: disks by serial, extra files, save_file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vmtest-'));
  try {
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    await writeFile(a, Buffer.alloc(64 * 1024, 0xa5));
    const bData = Buffer.alloc(128 * 1024);
    for (let i = 0; i < bData.length; i++) bData[i] = (i * 7 + 3) & 0xff;
    await writeFile(b, bData);
    const r = await runVm({
      disks: [
        { path: a, serial: 'alpha' },
        { path: b, serial: 'beta' },
      ],
      files: { '/data/in.txt': 'hello from the host\n' },
      env: { GREETING: "it's here" },
      timeoutMs: 60_000,
      script: `
        [ "$(vm_disk_by_serial alpha)" = /dev/vda ] || vm_fail "alpha is not vda"
        [ "$(vm_disk_by_serial beta)" = /dev/vdb ] || vm_fail "beta is not vdb"
        save_file /dev/vdb beta.bin
        save_file /data/in.txt copied/in.txt
        echo "$GREETING" | save_text greeting
        printf 'X' | dd of=/dev/vda bs=1 seek=100 conv=notrunc 2>/dev/null
        sync
      `,
    });
    assert.deepEqual(r.outputs.get('beta.bin'), bData);
    assert.equal(r.outputs.get('copied/in.txt')?.toString(), 'hello from the host\n');
    assert.equal(r.outputs.get('greeting')?.toString(), "it's here\n");
    const aAfter = await readFile(a);
    assert.equal(aAfter[100], 0x58);
    assert.equal(aAfter[99], 0xa5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("host root over 9p: the host's node runs inside the VM", async () => {
  const r = await runVm({
    virtfsHostRoot: true,
    timeoutMs: 120_000,
    script: `
      mount_hostroot
      host_run node -e 'process.stdout.write(String(6 * 7) + " " + process.version)' | save_text node.txt
    `,
  });
  assert.equal(r.outputs.get('node.txt')?.toString(), `42 ${process.version}`);
});

test('USB: a QEMU usb-storage disk and an f_mass_storage gadget appear as SCSI disks', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-vmtest-'));
  try {
    const usbImg = join(dir, 'usb.img');
    const content = Buffer.alloc(4 * 1024 * 1024);
    content.write('USB-DISK-MARKER', 512);
    await writeFile(usbImg, content);
    const r = await runVm({
      usb: { disks: [{ path: usbImg, serial: 'CARD0001' }] },
      timeoutMs: 120_000,
      script: `
        usb_host_modules
        i=0; until [ -n "$(usb_disks)" ]; do i=$((i+1)); [ $i -lt 200 ] || vm_fail "no USB disk"; sleep 0.1; done
        dev=$(usb_disks)
        vm_log "qemu usb-storage disk: $dev"
        cat /sys/block/\${dev#/dev/}/size | save_text usb-size
        cat /sys/block/\${dev#/dev/}/removable | save_text usb-removable
        dd if=$dev bs=512 skip=1 count=1 2>/dev/null | save_text usb-sector1
        dd if=/dev/zero of=/tmp/gadget.img bs=1M count=2 2>/dev/null
        printf 'GADGET-MARKER' | dd of=/tmp/gadget.img conv=notrunc 2>/dev/null
        g=$(gadget_mass_storage /tmp/gadget.img)
        vm_log "gadget disk: $g"
        cat /sys/block/\${g#/dev/}/size | save_text gadget-size
        dd if=$g bs=512 count=1 2>/dev/null | save_text gadget-sector0
        gadget_remove
      `,
    });
    assert.equal(r.outputs.get('usb-size')?.toString().trim(), String((4 * 1024 * 1024) / 512));
    assert.equal(r.outputs.get('usb-removable')?.toString().trim(), '1');
    assert.equal(r.outputs.get('usb-sector1')?.subarray(0, 15).toString(), 'USB-DISK-MARKER');
    assert.equal(r.outputs.get('gadget-size')?.toString().trim(), String((2 * 1024 * 1024) / 512));
    assert.equal(r.outputs.get('gadget-sector0')?.subarray(0, 13).toString(), 'GADGET-MARKER');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
