/**
 * Generates a kernel-written fixture (run once; the outputs are committed):
 * - with a CPU count that does not divide ftrace_size, so that psz_alloc_zones() starts the kmsg
 *   zones off the 4 KiB grid (3 CPUs: 1 byte early);
 * - with the 32-bit x86 kernel (i386: 28-byte kmsg header, 4-byte aligned 64-bit fields);
 * - with Debian's arm64 kernel under qemu-system-aarch64 (virt, Cortex-A57).
 *
 *   export CRASHCART_VM_CACHE=...; npm run build
 *   flock /tmp/crashcart-vm.lock node dist/test/vm/make-fixture.js stock61-smp3 3
 *   CRASHCART_VM_ARCH=i386 bash test/vm/provision.sh
 *   flock /tmp/crashcart-vm.lock node dist/test/vm/make-fixture.js stock61-i386 1 i386
 *   CRASHCART_VM_ARCH=arm64 bash test/vm/provision.sh
 *   flock /tmp/crashcart-vm.lock node dist/test/vm/make-fixture.js stock61-arm64 2 arm64
 *   CRASHCART_VM_ARCH=s390x bash test/vm/provision.sh   (builds the kernel: Debian's has no pstore)
 *   flock /tmp/crashcart-vm.lock node dist/test/vm/make-fixture.js c61-s390x 2 s390x
 *
 * Boot 1 (qemu -smp N) registers pstore_blk on a zeroed 1 MiB virtio disk with ftrace_size=64
 * (the module parameter exists even where CONFIG_PSTORE_FTRACE is off, and the zones are laid
 * out from it all the same), mounts pstorefs and takes three Oopses. Boot 2 (same CPU count)
 * reads the disk back; its /sys/fs/pstore is the expected output. The module is given the disk
 * found by its serial: virtio-blk-ccw disks (s390x) come up in any order with -smp > 1. Writes disk.img.gz,
 * cmdline.txt, effective and kernel-readout/ into test/fixtures/kernel/NAME/.
 *
 * Panic mode (`make-fixture.js NAME panic deflate|none`): Panics are only stored by a pstore/blk
 * device driver with panic_write (mmcpstore, vendor BSP drivers, mtdpstore), never by the
 * best_effort block backend. panic_blk.ko (test/vm/panic_blk.c) is such a driver over 1 MiB of
 * guest RAM at 256 MiB, kept from the kernel with memmap=; QEMU backs the guest RAM with a host
 * file, so the region survives each panic (panic=-1, -no-reboot: QEMU exits). Boot 1 mounts
 * pstorefs, takes two Oopses and panics (sysrq c); boot 2 mounts pstorefs (the recovery reads
 * the counters back) and panics again; boot 3 reads the region back. The fixture's disk.img.gz
 * is the region: kmsg zones 0, 1 (Oops#1, Oops#2), 2 (Panic#3, panic counter 1), 3 (Panic#1,
 * panic counter 2), with pstore.compress= as given.
 */
import { copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { kernelFixturesDir } from '../helpers/kernel-fixtures.js';
import { createRawImage, loadVmEnv, runVm, VM_ARCHES, type VmArch } from './harness.js';

/** Physical range of the panic_blk region (memmap=1M$0x10000000) inside the 512 MiB guest. */
const PANIC_REGION = { phys: 0x1000_0000, size: 1 << 20 };

async function makePanicFixture(name: string, compress: string) {
  if (compress !== 'deflate' && compress !== 'none') throw new Error('usage: make-fixture.js NAME panic deflate|none');
  const vmEnv = loadVmEnv();
  const { phys, size } = PANIC_REGION;
  const sizes = 'pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0 pstore_blk.max_reason=2';
  const cmdline = `memmap=${size >> 20}M$0x${phys.toString(16)} ${sizes} pstore.compress=${compress}`;
  const load = `load_panic_blk 0x${phys.toString(16)} 0x${size.toString(16)}\nmount_pstore\n`;
  const work = await mkdtemp(join(tmpdir(), `crashcart-fixture-${name}-`));
  try {
    const memoryFile = join(work, 'ram.img');
    const common = { cmdline, vmEnv, memoryFile, timeoutMs: 180_000 };
    const boot1 = await runVm({ ...common, expectPanic: true, script: `${load}oops_nowait 1\noops_nowait 2\npanic_now\n` });
    const boot2 = await runVm({ ...common, expectPanic: true, script: `${load}panic_now\n` });
    const boot3 = await runVm({
      ...common,
      script: `${load}save_pstore
        { for p in kmsg_size pmsg_size console_size ftrace_size max_reason; do echo "$p=$(cat /sys/module/pstore_blk/parameters/$p)"; done
          echo "compress=$(cat /sys/module/pstore/parameters/compress)"; uname -r; } | save_text effective
      `,
    });
    const fh = await open(memoryFile, 'r');
    const region = Buffer.alloc(size);
    try {
      await fh.read(region, 0, size, phys);
    } finally {
      await fh.close();
    }
    const dir = join(kernelFixturesDir, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'kernel-readout'), { recursive: true });
    await writeFile(join(dir, 'disk.img.gz'), gzipSync(region, { level: 9 }));
    await writeFile(join(dir, 'cmdline.txt'), `${cmdline} nokaslr\n`);
    await writeFile(join(dir, 'effective'), boot3.outputs.get('effective') ?? '');
    await writeFile(join(dir, 'boot-panic.log'), boot2.serialLog);
    let n = 0;
    for (const [k, v] of boot3.outputs) {
      if (!k.startsWith('pstore/')) continue;
      await writeFile(join(dir, 'kernel-readout', k.slice('pstore/'.length)), v);
      n++;
    }
    process.stdout.write(`${name}: ${n} record(s) from the kernel; boots ${boot1.durationMs}, ${boot2.durationMs}, ${boot3.durationMs} ms\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main() {
  const [name, cpusArg, arch = 'amd64'] = process.argv.slice(2);
  if (name && cpusArg === 'panic') return makePanicFixture(name, arch);
  const cpus = Number(cpusArg);
  if (!name || !Number.isInteger(cpus) || cpus < 1 || !VM_ARCHES.includes(arch as VmArch))
    throw new Error(`usage: make-fixture.js NAME CPUS [${VM_ARCHES.join('|')}] | NAME panic deflate|none`);
  const vmEnv = loadVmEnv(undefined, arch as VmArch);
  // The s390x kernel (built for the harness) has PSTORE_PMSG and PSTORE_CONSOLE: its fixture has
  // big-endian pmsg and console zones too. Debian's kernels have neither.
  const frontends = arch === 's390x';
  const sizes = `pstore_blk.kmsg_size=32 pstore_blk.pmsg_size=${frontends ? 16 : 0} pstore_blk.console_size=${frontends ? 16 : 0} pstore_blk.ftrace_size=64 pstore_blk.max_reason=2`;
  const cmdline = `pstore_blk.blkdev=/dev/vda pstore_blk.best_effort=y ${sizes}`;
  const work = await mkdtemp(join(tmpdir(), `crashcart-fixture-${name}-`));
  try {
    const disk = join(work, 'disk.img');
    await createRawImage(disk, 1 << 20);
    const boot1 = await runVm({
      disks: [{ path: disk, serial: 'pstore' }],
      cmdline,
      cpus,
      vmEnv,
      timeoutMs: 180_000,
      script: `
        load_pstore_blk blkdev=$(vm_disk_by_serial pstore)
        mount_pstore
        ${frontends ? 'for i in 1 2 3; do echo "crashcart pmsg line $i from $(uname -m)" > /dev/pmsg0; done' : ''}
        oops 1
        oops 2
        oops 3
        { for p in blkdev kmsg_size pmsg_size console_size ftrace_size max_reason; do echo "$p=$(cat /sys/module/pstore_blk/parameters/$p)"; done
          echo "possible_cpus=$(cat /sys/devices/system/cpu/possible)"; uname -r; } | save_text effective
      `,
    });
    const copy = join(work, 'boot2.img');
    await copyFile(disk, copy);
    const boot2 = await runVm({
      disks: [{ path: copy, serial: 'pstore' }],
      cmdline,
      cpus,
      vmEnv,
      timeoutMs: 150_000,
      script: 'load_pstore_blk blkdev=$(vm_disk_by_serial pstore)\nmount_pstore\nsave_pstore\n',
    });
    const dir = join(kernelFixturesDir, name);
    await mkdir(join(dir, 'kernel-readout'), { recursive: true });
    await writeFile(join(dir, 'disk.img.gz'), gzipSync(await readFile(disk), { level: 9 }));
    await writeFile(join(dir, 'cmdline.txt'), `${cmdline} nokaslr\n`);
    await writeFile(join(dir, 'effective'), boot1.outputs.get('effective') ?? '');
    await writeFile(join(dir, 'kernel-readout.stat'), boot2.outputs.get('pstore.stat') ?? '');
    let n = 0;
    for (const [k, v] of boot2.outputs) {
      if (!k.startsWith('pstore/')) continue;
      await writeFile(join(dir, 'kernel-readout', k.slice('pstore/'.length)), v);
      n++;
    }
    process.stdout.write(`${name}: ${n} record(s) from the kernel; boot 1 ${boot1.durationMs} ms, boot 2 ${boot2.durationMs} ms\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
