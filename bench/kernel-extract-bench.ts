/**
 * npm run bench:kernel — crashcart against the Linux kernel's own path on the same emulated
 * device in the same VM run: a 128 MiB pstore/blk region on a virtio disk, every one of its
 * 2048 kmsg zones holding a deflate-compressed dump. The kernel's path is registering
 * pstore_blk, mounting pstorefs (its recovery reads and decompresses every zone) and reading
 * every file; crashcart's is `pstore extract` of the same disk, run by the host's node inside
 * the VM. A plain direct-I/O dd of the region is the floor. TCG makes absolute numbers slow;
 * the ratios are what to compare.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { computeLayout } from '../src/pstore/layout.js';
import { putKmsgZone } from '../test/helpers/zone-builder.js';
import { repoRoot } from '../test/helpers/kernel-fixtures.js';
import { runVm } from '../test/vm/harness.js';

const MiB = 1024 * 1024;
const SIZE = 128 * MiB;
const CMDLINE = 'pstore_blk.blkdev=/dev/vda pstore_blk.best_effort=y pstore_blk.kmsg_size=64 pstore_blk.pmsg_size=0 pstore_blk.console_size=0 pstore_blk.ftrace_size=0';

function buildRegion(): Uint8Array {
  const layout = computeLayout(SIZE, { kmsg: 65536, pmsg: 0, console: 0, ftrace: 0 }, 1);
  const img = new Uint8Array(SIZE);
  const text = Buffer.from(
    Array.from({ length: 1000 }, (_, i) => `<6>[ ${String(i).padStart(5)}.000000] kernel: subsystem ${i % 97} reports state ${(i * 2654435761) >>> 0}\n`).join(''),
  );
  // Window 11: what the 6.1 kernel's crypto deflate writes and reads.
  const payload = new Uint8Array(deflateRawSync(text, { windowBits: 11, level: 6 }));
  for (const z of layout.zones)
    putKmsgZone(img, z.offset, z.size, { sec: 1700000000n + BigInt(z.index), nsec: 0, compressed: true, counter: z.index + 1, reason: 2, payload }, 'le', 'lp64');
  return img;
}

const dir = mkdtempSync(join(tmpdir(), 'crashcart-kbench-'));
try {
  const disk = join(dir, 'region.img');
  writeFileSync(disk, buildRegion());
  const ms = 'echo $(( $(cut -d" " -f1 /proc/uptime | tr -d .) * 10 ))';
  const r = await runVm({
    disks: [{ path: disk, serial: 'pstore' }],
    cmdline: CMDLINE,
    virtfsHostRoot: true,
    memoryMiB: 1024,
    timeoutMs: 1_200_000,
    scriptTimeoutMs: 1_100_000,
    script: `
      mount_hostroot
      now() { ${ms}; }
      vm_sync; t0=$(now); dd if=/dev/vda of=/dev/null bs=8M iflag=direct 2>/dev/null; t1=$(now)
      echo $((t1 - t0)) | save_text dd_ms
      vm_sync; t0=$(now)
      load_pstore_blk
      mount_pstore
      n=$(ls /sys/fs/pstore | wc -l)
      cat /sys/fs/pstore/* > /dev/null
      t1=$(now)
      echo $((t1 - t0)) | save_text kernel_ms; echo $n | save_text kernel_records
      umount_pstore; unload_pstore_blk
      t0=$(now); host_run node -e 0; t1=$(now); echo $((t1 - t0)) | save_text node_start_ms
      vm_sync; t0=$(now)
      host_run node ${repoRoot}/bin/crashcart pstore extract /dev/vda -o /tmp/out --json --cmdline "${CMDLINE}" > /tmp/ix.json
      t1=$(now)
      echo $((t1 - t0)) | save_text crashcart_ms
      grep -c '"file": "dmesg' /tmp/ix.json | save_text crashcart_records
    `,
  });
  const num = (k: string) => Number(r.outputs.get(k)?.toString().trim());
  const dd = num('dd_ms');
  const kernel = num('kernel_ms');
  const cc = num('crashcart_ms');
  const node = num('node_start_ms');
  const line = (name: string, v: number) => console.log(`${name.padEnd(52)} ${String(v).padStart(7)} ms  ×${(v / kernel).toFixed(2)} of the kernel`);
  console.log(`128 MiB region, ${num('kernel_records')} records read by the kernel, ${num('crashcart_records')} by crashcart (QEMU TCG, 1 vCPU)`);
  line('dd of the region (direct I/O)', dd);
  line('kernel: modprobe + mount pstorefs + read every file', kernel);
  line('crashcart pstore extract (node start included)', cc);
  line('crashcart pstore extract (node start excluded)', cc - node);
  console.log(
    JSON.stringify({
      bench: 'kernel-vs-crashcart-extract-128MiB',
      ddMs: dd,
      kernelMs: kernel,
      crashcartMs: cc,
      nodeStartMs: node,
      ratio: cc / kernel,
      ratioNoStart: (cc - node) / kernel,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
