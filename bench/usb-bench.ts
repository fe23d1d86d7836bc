/**
 * npm run bench:usb — sequential write and read through crashcart against the kernel's
 * usb-storage (`dd`, 1 MiB blocks, O_DIRECT) on the same device in one VM boot, for both USB
 * targets the test VM offers: QEMU's usb-storage on qemu-xhci (SuperSpeed) and the kernel's
 * f_mass_storage gadget on dummy_hcd (high speed). For each device and direction it prints:
 *  - the kernel's dd (before and after crashcart, for reads: the mean),
 *  - crashcart's driver in-process (UsbBlockDevice, 4 MiB requests) at the default command size
 *    (Linux usb-storage's per speed) and at `--max-transfer` size,
 *  - whole `crashcart flash --no-verify` and `crashcart read` runs (seconds from their --json
 *    summaries, so node's start-up is not counted),
 *  - a bare usb@3 BOT loop with no crashcart code between the calls — (a) awaiting CBW, data, CSW
 *    one after the other, (b) with the transfer scheme crashcart uses (data-IN with its CSW in one
 *    transfer; the CSW read queued with the data-OUT where the device takes it) — the floor of
 *    what the binding allows,
 * each with its ratio to the kernel and the process's CPU seconds per GiB moved (user + system,
 * all threads: the binding runs transfers on worker threads), and the fixed cost of opening a
 * reader (find, claim, detach usb-storage, Get Max LUN, INQUIRY, TEST UNIT READY, READ CAPACITY,
 * MODE SENSE).
 *
 * Then many readers at once: 1, 2 and 4 QEMU usb-storage devices on the same xHCI root hub, each
 * N (a) the kernel's dd to all N in parallel (write, then read), (b) one `crashcart flash IMAGE usb:…
 * usb:… --no-verify` fanning the image out to all N, (c) N `crashcart read` processes in parallel;
 * aggregate MB/s over the N devices and its ratio to the same path with one reader.
 *
 * Everything runs inside the TCG VM (one vCPU unless CRASHCART_BENCH_CPUS says otherwise, every guest
 * instruction emulated), so absolute numbers say little about real readers; ratios on the same device
 * in the same run are the figures.
 *
 * Host: `node dist/bench/usb-bench.js [MiB] [maxTransfer]` (default 32 MiB, 1 MiB per command;
 *        CRASHCART_BENCH_MIB too). CRASHCART_BENCH_SECTIONS=single or =multi runs one section only.
 *        CRASHCART_BENCH_PROFILE=1 profiles every crashcart process in the VM and prints where each
 *        spent its time (a whole run: the part its summary times); CRASHCART_BENCH_PROFILE_DIR also
 *        keeps the .cpuprofile files there.
 * Guest: `node dist/bench/usb-bench.js guest usb:PORT MiB maxTransferBytes` prints JSON.
 */
import { performance } from 'node:perf_hooks';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeAllUsbTransports, type NativeDevice } from '../src/usb/node-usb-transport.js';
import { openUsbDevice } from '../src/reader/open-usb.js';
import { cdb } from '../src/scsi/cdb.js';
import { CSW_LENGTH, CSW_SIGNATURE, decodeCsw, encodeCbw } from '../src/usb/wire.js';
import { formatPortPath } from '../src/usb/transport.js';
import { createRawImage, runVm } from '../test/vm/harness.js';
import { repoRoot, USB_PRELUDE } from '../test/vm/usb-lib.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const REQUEST = 4 * MiB;

interface Measured {
  seconds: number;
  /** CPU seconds (user + system) of the whole process while it ran. */
  cpu: number;
}

async function measure(f: () => Promise<void>): Promise<Measured> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const t1 = performance.now();
  const c = process.cpuUsage(c0);
  return { seconds: (t1 - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

function patternOf(length: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >>> 12)) & 0xff;
  return data;
}

/** crashcart's block device: open cost, then write and read `bytes` in 4 MiB requests. */
async function driver(spec: string, bytes: number, maxTransferBytes?: number) {
  let dev!: Awaited<ReturnType<typeof openUsbDevice>>;
  const open = await measure(async () => {
    dev = await openUsbDevice(spec, { write: true, maxTransferBytes });
  });
  try {
    if (dev.size < bytes) throw new Error(`${spec} holds ${dev.size} bytes, fewer than ${bytes}`);
    const data = patternOf(REQUEST);
    const write = await measure(async () => {
      for (let off = 0; off < bytes; off += REQUEST) await dev.write(off, data.subarray(0, Math.min(REQUEST, bytes - off)));
      await dev.flush();
    });
    let check = 0;
    const read = await measure(async () => {
      for (let off = 0; off < bytes; off += REQUEST) check ^= (await dev.read(off, Math.min(REQUEST, bytes - off)))[0];
    });
    return { transferBytes: dev.transferBytes, open, write, read, check };
  } finally {
    await dev.close();
  }
}

/**
 * The floor: a BOT loop straight on usb@3 (WRITE(10)/READ(10) of `xfer` bytes), no crashcart code
 * in between. `packed`: data-IN and CSW in one transfer, the CSW read queued with the data-OUT
 * (given up for good at the first STALL of it, as crashcart does).
 */
async function bare(spec: string, bytes: number, xfer: number, packed: boolean) {
  const port = spec.replace(/^usb:/, '');
  const { usb } = (await import('usb')) as unknown as { usb: { getDevices(): Promise<NativeDevice[]> } };
  const d = (await usb.getDevices()).find((x) => formatPortPath(parseInt(String(x.bus), 10), x.ports ?? []) === port);
  if (!d) throw new Error(`no USB device at ${port}`);
  await d.open();
  await d.detachKernelDriver(0).catch(() => undefined);
  await d.claimInterface(0);
  const alt = d.configuration!.interfaces.find((i) => i.interfaceNumber === 0)!.alternates[0];
  const inEp = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'in')!.endpointNumber;
  const outEp = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'out')!.endpointNumber;
  let tag = 1;
  let earlyStatus = packed;
  const checkCsw = (b: Uint8Array | null) => {
    const c = b && decodeCsw(b);
    if (!c || c.signature !== CSW_SIGNATURE || c.status !== 0) throw new Error(`bad CSW ${b ? Buffer.from(b).toString('hex') : 'null'}`);
  };
  const command = async (write: boolean, lba: number, data: Uint8Array | number) => {
    const len = typeof data === 'number' ? data : data.length;
    const c = write ? cdb.write10(BigInt(lba), len / 512) : cdb.read10(BigInt(lba), len / 512);
    await d.nativeTransferOut(outEp, 5000, encodeCbw({ tag: tag++, dataTransferLength: len, directionIn: !write, lun: 0, cdb: c }));
    if (write) {
      const sent = d.nativeTransferOut(outEp, 20000, data as Uint8Array);
      // A STALL of the early status read (QEMU) switches it off; the halt is cleared once the data is in.
      const status = earlyStatus ? d.nativeTransferIn(inEp, 40000, CSW_LENGTH).catch(() => ((earlyStatus = false), null)) : undefined;
      await sent;
      let csw = await status;
      if (status && !csw) await d.clearHalt('in', inEp);
      csw ??= await d.nativeTransferIn(inEp, 20000, CSW_LENGTH);
      checkCsw(csw);
    } else {
      const got = (await d.nativeTransferIn(inEp, 20000, packed ? len + CSW_LENGTH : len))!;
      checkCsw(got.length === len + CSW_LENGTH ? got.subarray(len) : await d.nativeTransferIn(inEp, 20000, CSW_LENGTH));
    }
  };
  try {
    const data = patternOf(xfer);
    const write = await measure(async () => {
      for (let off = 0; off < bytes; off += xfer) await command(true, off / 512, data);
    });
    const read = await measure(async () => {
      for (let off = 0; off < bytes; off += xfer) await command(false, off / 512, xfer);
    });
    return { transferBytes: xfer, packed, write, read };
  } finally {
    await d.releaseInterface(0).catch(() => undefined);
    await d.attachKernelDriver(0).catch(() => undefined);
    await d.close().catch(() => undefined);
  }
}

async function guest(spec: string, mib: number, xfer: number): Promise<void> {
  const bytes = mib * MiB;
  const first = await driver(spec, bytes); // also loads the usb@3 binding
  const sized = await driver(spec, bytes, xfer);
  const bareNaive = await bare(spec, bytes, xfer, false);
  const barePacked = await bare(spec, bytes, xfer, true);
  process.stdout.write(JSON.stringify({ bytes, driverDefault: first, driverSized: sized, bareNaive, barePacked }) + '\n');
}

/** `dd` (GNU coreutils, from the host root) status line → seconds. */
function ddSeconds(text: string): number {
  const m = /copied, ([\d.]+) s/.exec(text);
  if (!m) throw new Error(`cannot parse dd output: ${text}`);
  return Number(m[1]);
}

/** Reader counts of the multi-reader section. */
const MULTI_COUNTS = [1, 2, 4];
const MULTI_MAX = Math.max(...MULTI_COUNTS);

const SCENARIO = (mib: number, xfer: number) => `${USB_PRELUDE}
usb_host_modules
mount_hostroot
host_run dd if=/dev/urandom of=/tmp/bench-image bs=1M count=${mib} 2>/dev/null
bench_device() {
  _name=$1; _port=$2
  wait_driver $_port
  _d=$(kernel_disk $_port)
  cat /sys/block/\${_d#/dev/}/queue/max_sectors_kb | save_text $_name-max-sectors-kb
  host_run dd if=/dev/zero of=$_d bs=1M count=${mib} oflag=direct conv=fsync 2> /out/$_name-dd-write.txt
  host_run dd if=$_d of=/dev/null bs=1M count=${mib} iflag=direct 2> /out/$_name-dd-read.txt
  host_run node $(prof $_name-lib) "$REPO/dist/bench/usb-bench.js" guest usb:$_port ${mib} ${xfer} > /out/$_name-lib.json
  wait_driver $_port
  host_run node $(prof $_name-flash) "$REPO/bin/crashcart" flash /tmp/bench-image usb:$_port --no-verify --yes --json --max-transfer ${xfer} > /out/$_name-flash.json
  wait_driver $_port
  host_run node $(prof $_name-read) "$REPO/bin/crashcart" read usb:$_port -o /tmp/$_name-read.img --size ${mib}M --json --max-transfer ${xfer} > /out/$_name-read.json
  rm -f /host/tmp/$_name-read.img /host/tmp/$_name-read.img.map
  wait_driver $_port
  _d=$(kernel_disk $_port)
  host_run dd if=$_d of=/dev/null bs=1M count=${mib} iflag=direct 2> /out/$_name-dd-read2.txt
}
# With profiles: node --cpu-prof for every crashcart process; the profiles end up in /out/prof/NAME.
prof() { if [ -n "$PROFILE" ]; then echo "--cpu-prof --cpu-prof-dir=/tmp/prof/$1"; fi; }
save_profiles() { [ -n "$PROFILE" ] || return 0; for _p in /host/tmp/prof/*/*.cpuprofile; do _n=\${_p%/*}; _n=\${_n##*/}; save_file "$_p" "prof/$_n.cpuprofile"; done; }
now() { cut -d' ' -f1 /proc/uptime; }
# bench_multi N: the first N QEMU disks at once; start and end times (guest uptime) of each parallel batch.
bench_multi() {
  _n=$1; _sels=""; _disks=""; _k=1
  while [ $_k -le $_n ]; do
    _p=$(port_of_serial BENCH00$_k); wait_driver $_p
    _sels="$_sels usb:$_p"; _disks="$_disks $(kernel_disk $_p)"; _k=$((_k + 1))
  done
  for _op in write read; do
    now > /out/multi$_n-dd-$_op.t0; _k=0
    for _d in $_disks; do
      _k=$((_k + 1))
      if [ $_op = write ]; then host_run dd if=/dev/zero of=$_d bs=1M count=${mib} oflag=direct conv=fsync 2> /out/multi$_n-dd-$_op-$_k.txt &
      else host_run dd if=$_d of=/dev/null bs=1M count=${mib} iflag=direct 2> /out/multi$_n-dd-$_op-$_k.txt &
      fi
    done
    wait
    now > /out/multi$_n-dd-$_op.t1
  done
  host_run node $(prof multi$_n-flash) "$REPO/bin/crashcart" flash /tmp/bench-image $_sels --no-verify --yes --json --max-transfer ${xfer} > /out/multi$_n-flash.json
  for _p in $_sels; do wait_driver \${_p#usb:}; done
  _k=0
  for _p in $_sels; do
    _k=$((_k + 1))
    ( host_run node "$REPO/bin/crashcart" read $_p -o /tmp/multi-read-$_k.img --size ${mib}M --json --max-transfer ${xfer} > /out/multi$_n-read-$_k.json
      now > /out/multi$_n-read-$_k.t1 ) &
  done
  wait
  rm -f /host/tmp/multi-read-*
  for _p in $_sels; do wait_driver \${_p#usb:}; done
}
if [ "$SECTIONS" != multi ]; then
  i=0; until P=$(port_of_serial BENCH001); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "no USB disk"; sleep 0.1; done
  bench_device qemu $P
  dd if=/dev/zero of=/tmp/gadget.img bs=1M count=${mib + 1} 2>/dev/null
  gadget_mass_storage /tmp/gadget.img > /dev/null
  i=0; until G=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "no gadget"; sleep 0.1; done
  bench_device gadget $G
fi
if [ "$SECTIONS" != single ]; then
  i=0; until port_of_serial BENCH00${MULTI_MAX} > /dev/null; do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "no USB disk ${MULTI_MAX}"; sleep 0.1; done
  for n in ${MULTI_COUNTS.join(' ')}; do bench_multi $n; done
fi
save_profiles
`;

interface Phase {
  seconds: number;
  cpu: number;
}
interface DriverRun {
  transferBytes: number;
  open: Phase;
  write: Phase;
  read: Phase;
}
interface GuestResult {
  bytes: number;
  driverDefault: DriverRun;
  driverSized: DriverRun;
  bareNaive: { transferBytes: number; write: Phase; read: Phase };
  barePacked: { transferBytes: number; write: Phase; read: Phase };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/** Functions whose presence on the stack marks the start of a whole run's timed part (its --json seconds). */
const RUN_ENTRY = new Set(['flashImage', 'readDevice']);
/** Code of the data path: the last sample in it ends the timed part. */
const DATA_PATH = /\/dist\/src\/(flash|usb|scsi|blockdev)\//;

/**
 * The samples of a whole `flash`/`read` run between its first one under flashImage/readDevice and
 * its last one in the data path — the part its summary times, without node's start-up, argument
 * parsing and device opening; all samples for other processes.
 */
function timedWindow(p: CpuProfile): [number, number] {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frame = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const stackHas = (id: number, test: (f: CpuProfile['nodes'][number]['callFrame']) => boolean) => {
    for (let q: number | undefined = id; q !== undefined; q = parent.get(q)) if (test(frame.get(q)!)) return true;
    return false;
  };
  const first = p.samples.findIndex((id) => stackHas(id, (f) => RUN_ENTRY.has(f.functionName)));
  if (first < 0) return [0, p.samples.length];
  let last = p.samples.length - 1;
  while (last > first && !stackHas(p.samples[last], (f) => DATA_PATH.test(f.url))) last--;
  return [first, last + 1];
}

/** Where each profiled process spent its time: self time by function, the top entries (for whole runs: of their timed part). */
function printProfiles(outputs: Map<string, Buffer>, top = 12): void {
  for (const [name, buf] of [...outputs].filter(([n]) => n.startsWith('prof/')).sort(([a], [b]) => a.localeCompare(b))) {
    const p = JSON.parse(buf.toString('utf8')) as CpuProfile;
    const frame = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const self = new Map<string, number>();
    let total = 0;
    let all = 0;
    const [from, to] = timedWindow(p);
    p.samples.forEach((id, i) => {
      const dt = p.timeDeltas[i] ?? 0;
      all += dt;
      if (i < from || i >= to) return;
      const f = frame.get(id)!;
      const key = `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : ''}`.trim();
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
    const part = total < all ? ` (${(total / 1e6).toFixed(2)} s from the first sample under ${[...RUN_ENTRY].join('/')} to the last in the data path)` : '';
    console.log(`\n${name.slice(5)}: ${(all / 1e6).toFixed(2)} s sampled${part}; self time, top ${top}:`);
    for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
}

/** The `seconds` of the last JSON line with type "summary" (or of a bare result object). */
function summarySeconds(text: string): number {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type?: string; seconds?: number; status?: string });
  const s = lines.reverse().find((o) => o.type === 'summary' || o.type === 'result' || typeof o.seconds === 'number');
  if (!s || typeof s.seconds !== 'number') throw new Error(`no summary with seconds in: ${text.slice(-500)}`);
  return s.seconds;
}

/**
 * MB/s of a whole run once it is going: the median `speed` (bytes per second over the last two
 * seconds) of its progress events in the second half of the data — what the run costs per byte,
 * without its fixed costs (first calls, the final flushes).
 */
function steadyRate(text: string): number | undefined {
  const speeds = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type?: string; bytes?: number; total?: number | null; speed?: number; phase?: string })
    .filter((e) => e.type === 'progress' && e.phase !== 'verifying' && e.total && e.bytes! >= e.total / 2 && e.bytes! < e.total && e.speed! > 0)
    .map((e) => e.speed!)
    .sort((a, b) => a - b);
  return speeds.length ? speeds[Math.floor(speeds.length / 2)] / 1e6 : undefined;
}

type Sections = 'all' | 'single' | 'multi';

/** Seconds between two guest uptime stamps saved by the scenario. */
function elapsed(txt: (n: string) => string, t0: string, t1: string): number {
  return Number(txt(t1).trim()) - Number(txt(t0).trim());
}

/** One device at a time: the kernel, crashcart's driver, whole runs and the bare usb@3 floor. */
function reportSingle(txt: (n: string) => string, mib: number, xfer: number, json: Record<string, unknown>): void {
  const bytes = mib * MiB;
  const mbs = (s: number) => bytes / 1e6 / s;
  const rows: string[][] = [['device', 'op', 'path', 'KiB/cmd', 'MB/s', '× kernel', 'CPU s/GiB']];
  const opens: string[] = [];
  for (const [name, label] of [
    ['qemu', 'QEMU usb-storage (xhci, SuperSpeed)'],
    ['gadget', 'f_mass_storage (dummy_hcd, high speed)'],
  ] as const) {
    const kb = Number(txt(`${name}-max-sectors-kb`).trim());
    const g = JSON.parse(txt(`${name}-lib.json`)) as GuestResult;
    const kernel = {
      write: mbs(ddSeconds(txt(`${name}-dd-write.txt`))),
      read: (mbs(ddSeconds(txt(`${name}-dd-read.txt`))) + mbs(ddSeconds(txt(`${name}-dd-read2.txt`)))) / 2,
    };
    const cli = { write: mbs(summarySeconds(txt(`${name}-flash.json`))), read: mbs(summarySeconds(txt(`${name}-read.json`))) };
    const steady = { write: steadyRate(txt(`${name}-flash.json`)), read: steadyRate(txt(`${name}-read.json`)) };
    const entry: Record<string, unknown> = { kernelMaxSectorsKiB: kb, kernel, cli, steady };
    for (const op of ['write', 'read'] as const) {
      const k = kernel[op];
      const row = (path: string, xferBytes: number | string, rate: number, cpu?: number) =>
        rows.push([
          label,
          op,
          path,
          String(typeof xferBytes === 'number' ? xferBytes / 1024 : xferBytes),
          rate.toFixed(1),
          `${(rate / k).toFixed(2)}×`,
          cpu === undefined ? '' : ((cpu / bytes) * GiB).toFixed(1),
        ]);
      row('kernel dd 1 MiB O_DIRECT', kb * 1024, k);
      row('crashcart driver, default size', g.driverDefault.transferBytes, mbs(g.driverDefault[op].seconds), g.driverDefault[op].cpu);
      row('crashcart driver, --max-transfer', g.driverSized.transferBytes, mbs(g.driverSized[op].seconds), g.driverSized[op].cpu);
      row(op === 'write' ? 'crashcart flash --no-verify' : 'crashcart read', xfer, cli[op]);
      if (steady[op] !== undefined) row(`  its rate in the second half`, xfer, steady[op]);
      row('bare usb@3: CBW, data, CSW', g.bareNaive.transferBytes, mbs(g.bareNaive[op].seconds), g.bareNaive[op].cpu);
      row('bare usb@3: packed stages', g.barePacked.transferBytes, mbs(g.barePacked[op].seconds), g.barePacked[op].cpu);
    }
    opens.push(
      `${label}: opening a reader ${(g.driverSized.open.seconds * 1000).toFixed(0)} ms (${(g.driverSized.open.cpu * 1000).toFixed(0)} ms CPU); the first open, loading the usb@3 binding, ${(g.driverDefault.open.seconds * 1000).toFixed(0)} ms`,
    );
    entry.guest = g;
    json[name] = entry;
  }
  // Label only the first row of each device.
  let last = '';
  for (const row of rows.slice(1)) {
    if (row[0] === last) row[0] = '';
    else if (row[0]) last = row[0];
  }
  console.log(`USB sequential throughput, ${mib} MiB per run, inside the TCG test VM (one boot; kernel read = mean of the runs before and after crashcart)`);
  printTable(rows, 3);
  for (const o of opens) console.log(o);
}

/** 1, 2, 4 readers at once: aggregate MB/s of each path and its ratio to one reader. */
function reportMulti(txt: (n: string) => string, mib: number, json: Record<string, unknown>): void {
  const bytes = mib * MiB;
  const paths = ['kernel dd write', 'kernel dd read', 'crashcart flash --no-verify (one process, N targets)', 'crashcart read (N processes)'] as const;
  const rates = new Map<string, number[]>(paths.map((p) => [p, []]));
  const multi: Record<string, unknown>[] = [];
  for (const n of MULTI_COUNTS) {
    const total = n * bytes;
    const ddWrite = elapsed(txt, `multi${n}-dd-write.t0`, `multi${n}-dd-write.t1`);
    const ddRead = elapsed(txt, `multi${n}-dd-read.t0`, `multi${n}-dd-read.t1`);
    // the flash summary's seconds: from the first byte to the last target verified or flushed
    const flash = summarySeconds(txt(`multi${n}-flash.json`));
    // parallel reads: from the earliest start of a transfer (its end minus its summary seconds) to the last end
    const reads = Array.from({ length: n }, (_, i) => {
      const end = Number(txt(`multi${n}-read-${i + 1}.t1`).trim());
      const seconds = summarySeconds(txt(`multi${n}-read-${i + 1}.json`));
      return { start: end - seconds, end, seconds };
    });
    const readWindow = Math.max(...reads.map((x) => x.end)) - Math.min(...reads.map((x) => x.start));
    const each = [ddWrite, ddRead, flash, readWindow];
    paths.forEach((p, i) => rates.get(p)!.push(total / 1e6 / each[i]));
    multi.push({ readers: n, bytesPerReader: bytes, seconds: { ddWrite, ddRead, flash, readWindow, reads: reads.map((x) => x.seconds) } });
  }
  json.multi = multi;
  const rows: string[][] = [['path', ...MULTI_COUNTS.flatMap((n) => [`${n} reader${n > 1 ? 's' : ''} MB/s`, `× 1`])]];
  for (const p of paths) {
    const r = rates.get(p)!;
    rows.push([p, ...r.flatMap((x) => [x.toFixed(1), `${(x / r[0]).toFixed(2)}×`])]);
  }
  console.log(`\nMany readers at once: QEMU usb-storage devices on one qemu-xhci root hub, ${mib} MiB each; aggregate MB/s over all readers, and its ratio to one reader`);
  printTable(rows, 1);
}

function printTable(rows: string[][], firstNumeric: number): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows)
    console.log(
      row
        .map((c, i) => (i >= firstNumeric ? c.padStart(widths[i]) : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    );
}

async function host(mib: number, xfer: number, profile: boolean, sections: Sections, cpus: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-usb-bench-'));
  try {
    const disks = [];
    for (let i = 1; i <= (sections === 'single' ? 1 : MULTI_MAX); i++) {
      const path = join(dir, `bench${i}.img`);
      await createRawImage(path, (mib + 1) * MiB);
      disks.push({ path, serial: `BENCH00${i}` });
    }
    const r = await runVm({
      virtfsHostRoot: true,
      usb: { disks },
      env: { REPO: repoRoot, PROFILE: profile ? '1' : '', SECTIONS: sections },
      memoryMiB: 640 + (sections === 'single' ? 3 : 3 + MULTI_MAX) * mib,
      cpus,
      timeoutMs: 2_400_000,
      script: SCENARIO(mib, xfer),
    });
    const txt = (n: string) => r.outputs.get(n)?.toString('utf8') ?? '';
    const json: Record<string, unknown> = { mib, maxTransferBytes: xfer, cpus };
    if (sections !== 'multi') reportSingle(txt, mib, xfer, json);
    if (sections !== 'single') reportMulti(txt, mib, json);
    if (profile) printProfiles(r.outputs);
    if (profile && process.env.CRASHCART_BENCH_PROFILE_DIR) {
      // The raw profiles, for a closer look (Chrome DevTools, speedscope).
      const out = process.env.CRASHCART_BENCH_PROFILE_DIR;
      await mkdir(out, { recursive: true });
      for (const [n, b] of r.outputs) if (n.startsWith('prof/')) await writeFile(join(out, n.slice(5)), b);
    }
    console.log(JSON.stringify(json));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'guest') {
  guest(rest[0], Number(rest[1]), Number(rest[2])).catch(async (e) => {
    await closeAllUsbTransports();
    console.error(e);
    process.exitCode = 1;
  });
} else {
  const mib = Number(mode ?? process.env.CRASHCART_BENCH_MIB ?? 32);
  const xfer = Number(rest[0] ?? MiB);
  if (!Number.isInteger(mib) || mib < 1) throw new Error(`size in MiB expected, got ${mode}`);
  if (!Number.isInteger(xfer) || xfer < 512 || xfer % 512 !== 0) throw new Error(`bytes per command expected, got ${rest[0]}`);
  const sections = (process.env.CRASHCART_BENCH_SECTIONS ?? 'all') as Sections;
  if (!['all', 'single', 'multi'].includes(sections)) throw new Error(`CRASHCART_BENCH_SECTIONS: all, single or multi, got ${sections}`);
  const cpus = Number(process.env.CRASHCART_BENCH_CPUS ?? 1);
  if (!Number.isInteger(cpus) || cpus < 1) throw new Error(`CRASHCART_BENCH_CPUS: a vCPU count, got ${process.env.CRASHCART_BENCH_CPUS}`);
  host(mib, xfer, process.env.CRASHCART_BENCH_PROFILE === '1', sections, cpus).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
