/**
 * npm run bench:usb — sequential read and write throughput through crashcart's user-space
 * driver (BOT + SCSI over usb@3) against the kernel's usb-storage (`dd` with O_DIRECT) on the
 * same device in the same VM run, for both USB targets the test VM offers: QEMU's usb-storage
 * on qemu-xhci (SuperSpeed) and the kernel's f_mass_storage gadget on dummy_hcd (high speed).
 *
 * Everything runs inside the TCG VM (test/vm), so absolute numbers say little about real
 * readers; the ratio crashcart / kernel on the same device is the figure to watch. crashcart is
 * measured twice: with its default transfer size (120 KiB per command, like usb-storage on
 * high-speed readers) and with the kernel's own per-command size (queue/max_sectors_kb).
 *
 * Host: `node dist/bench/usb-bench.js [MiB]` (default 32; CRASHCART_BENCH_MIB too).
 * Guest: `node dist/bench/usb-bench.js guest usb:PORT MiB [maxTransferBytes]` prints JSON.
 */
import { performance } from 'node:perf_hooks';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeAllUsbTransports } from '../src/usb/node-usb-transport.js';
import { openUsbDevice } from '../src/reader/open-usb.js';
import { createRawImage, runVm } from '../test/vm/harness.js';
import { repoRoot, USB_PRELUDE } from '../test/vm/usb-lib.js';

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;

async function guest(spec: string, mib: number, maxTransferBytes?: number): Promise<void> {
  const bytes = mib * MiB;
  const dev = await openUsbDevice(spec, { write: true, maxTransferBytes });
  try {
    if (dev.size < bytes) throw new Error(`${spec} holds ${dev.size} bytes, fewer than ${bytes}`);
    const data = new Uint8Array(CHUNK);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >>> 12)) & 0xff;
    const w0 = performance.now();
    for (let off = 0; off < bytes; off += CHUNK) await dev.write(off, data.subarray(0, Math.min(CHUNK, bytes - off)));
    await dev.flush();
    const w1 = performance.now();
    let check = 0;
    for (let off = 0; off < bytes; off += CHUNK) {
      const b = await dev.read(off, Math.min(CHUNK, bytes - off));
      check = (check + b[b.length - 1]) >>> 0;
    }
    const r1 = performance.now();
    process.stdout.write(
      JSON.stringify({ device: dev.info.name, bytes, transferBytes: dev.transferBytes, writeSeconds: (w1 - w0) / 1000, readSeconds: (r1 - w1) / 1000, check }) + '\n',
    );
  } finally {
    await dev.close();
  }
}

interface GuestResult {
  bytes: number;
  transferBytes: number;
  writeSeconds: number;
  readSeconds: number;
}

/** `dd` (GNU coreutils, from the host root) status line → seconds. */
function ddSeconds(text: string): number {
  const m = /copied, ([\d.]+) s/.exec(text);
  if (!m) throw new Error(`cannot parse dd output: ${text}`);
  return Number(m[1]);
}

const SCENARIO = (mib: number) => `${USB_PRELUDE}
usb_host_modules
mount_hostroot
bench_device() {
  _name=$1; _port=$2
  wait_driver $_port
  _d=$(kernel_disk $_port)
  _kb=$(cat /sys/block/\${_d#/dev/}/queue/max_sectors_kb)
  echo "$_kb" | save_text $_name-max-sectors-kb
  host_run dd if=/dev/zero of=$_d bs=1M count=${mib} oflag=direct conv=fsync 2> /out/$_name-dd-write.txt
  host_run dd if=$_d of=/dev/null bs=1M count=${mib} iflag=direct 2> /out/$_name-dd-read.txt
  guest_bench $_name-crashcart-default usb:$_port
  wait_driver $_port
  guest_bench $_name-crashcart-kernel-size usb:$_port $((_kb * 1024))
  wait_driver $_port
  _d=$(kernel_disk $_port)
  host_run dd if=$_d of=/dev/null bs=1M count=${mib} iflag=direct 2> /out/$_name-dd-read2.txt
}
guest_bench() {
  _n=$1; shift
  host_run node "$REPO/dist/bench/usb-bench.js" guest "$@" ${mib} > /out/$_n.json
}
i=0; until P=$(port_of_serial BENCH001); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "no USB disk"; sleep 0.1; done
bench_device qemu $P
dd if=/dev/zero of=/tmp/gadget.img bs=1M count=${mib + 1} 2>/dev/null
gadget_mass_storage /tmp/gadget.img > /dev/null
i=0; until G=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "no gadget"; sleep 0.1; done
bench_device gadget $G
`;

async function host(mib: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-usb-bench-'));
  try {
    const disk = join(dir, 'bench.img');
    await createRawImage(disk, (mib + 1) * MiB);
    const r = await runVm({
      virtfsHostRoot: true,
      usb: { disks: [{ path: disk, serial: 'BENCH001' }] },
      env: { REPO: repoRoot },
      memoryMiB: 512 + 2 * mib,
      timeoutMs: 1_500_000,
      script: SCENARIO(mib),
    });
    const txt = (n: string) => r.outputs.get(n)?.toString('utf8') ?? '';
    const mbs = (bytes: number, s: number) => bytes / 1e6 / s;
    const rows: string[][] = [['device', 'op', 'kernel dd (O_DIRECT)', 'crashcart 120 KiB/cmd', 'ratio', 'crashcart kernel size/cmd', 'ratio']];
    const json: Record<string, unknown> = { mib };
    for (const [name, label] of [
      ['qemu', 'QEMU usb-storage (xhci, SuperSpeed)'],
      ['gadget', 'f_mass_storage gadget (dummy_hcd, high speed)'],
    ] as const) {
      const bytes = mib * MiB;
      const kr = mbs(bytes, ddSeconds(txt(`${name}-dd-read.txt`)));
      const kr2 = mbs(bytes, ddSeconds(txt(`${name}-dd-read2.txt`)));
      const kw = mbs(bytes, ddSeconds(txt(`${name}-dd-write.txt`)));
      const cd = JSON.parse(txt(`${name}-crashcart-default.json`)) as GuestResult;
      const ck = JSON.parse(txt(`${name}-crashcart-kernel-size.json`)) as GuestResult;
      const kread = (kr + kr2) / 2;
      const f = (x: number) => `${x.toFixed(1)} MB/s`;
      const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
      const kb = txt(`${name}-max-sectors-kb`).trim();
      rows.push([
        label,
        'read',
        f(kread),
        f(mbs(bytes, cd.readSeconds)),
        ratio(mbs(bytes, cd.readSeconds), kread),
        `${f(mbs(bytes, ck.readSeconds))} (${kb} KiB)`,
        ratio(mbs(bytes, ck.readSeconds), kread),
      ]);
      rows.push([
        '',
        'write',
        f(kw),
        f(mbs(bytes, cd.writeSeconds)),
        ratio(mbs(bytes, cd.writeSeconds), kw),
        `${f(mbs(bytes, ck.writeSeconds))} (${kb} KiB)`,
        ratio(mbs(bytes, ck.writeSeconds), kw),
      ]);
      json[name] = {
        kernelMaxSectorsKiB: Number(kb),
        kernel: { readMBs: kread, readMBsRuns: [kr, kr2], writeMBs: kw },
        crashcartDefault: { transferBytes: cd.transferBytes, readMBs: mbs(bytes, cd.readSeconds), writeMBs: mbs(bytes, cd.writeSeconds) },
        crashcartKernelSize: { transferBytes: ck.transferBytes, readMBs: mbs(bytes, ck.readSeconds), writeMBs: mbs(bytes, ck.writeSeconds) },
      };
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    console.log(`USB sequential throughput, ${mib} MiB per run, inside the TCG test VM (kernel read = mean of the runs before and after crashcart)`);
    for (const row of rows)
      console.log(
        row
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      );
    console.log(JSON.stringify(json));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'guest') {
  guest(rest[0], Number(rest[rest.length - 1]), rest.length > 2 ? Number(rest[1]) : undefined).catch(async (e) => {
    await closeAllUsbTransports();
    console.error(e);
    process.exitCode = 1;
  });
} else {
  const mib = Number(mode ?? process.env.CRASHCART_BENCH_MIB ?? 32);
  if (!Number.isInteger(mib) || mib < 1) throw new Error(`size in MiB expected, got ${mode}`);
  host(mib).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
