// QEMU test harness: boots the distribution kernel provisioned by test/vm/provision.sh under
// TCG with a busybox initramfs, runs a shell scenario inside the VM and returns what the
// scenario saved (a tar stream the guest writes to a dedicated output disk), the serial
// console, the guest's kernel log and the scenario's own output.
//
// Inside the VM the scenario runs as `sh -e` with /bin/vm-lib.sh sourced (helpers:
// load_pstore_blk, mount_pstore, oops N, save_pstore, save_file, mount_hostroot, host_run,
// gadget_mass_storage, ... — see test/vm/vm-lib.sh). After it ends (or its watchdog fires)
// the guest writes /out to the output disk, syncs and powers off.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile, copyFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Directory holding provision.sh, vm-lib.sh and (by default) the cache. */
export const VM_SOURCE_DIR = resolveSourceDir();

function resolveSourceDir(): string {
  // Compiled: <repo>/dist/test/vm/harness.js ; source: <repo>/test/vm/harness.ts
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../../../test/vm'), here];
  for (const c of candidates) if (existsSync(join(c, 'provision.sh'))) return c;
  return candidates[0];
}

/** Guest architectures provision.sh can set up (CRASHCART_VM_ARCH). */
export type VmArch = 'amd64' | 'i386' | 'arm64' | 's390x';
export const VM_ARCHES: readonly VmArch[] = ['amd64', 'i386', 'arm64', 's390x'];

export interface VmEnv {
  arch: VmArch;
  kernelRelease: string;
  /** Kernel QEMU boots (uncompressed vmlinux via PVH when available, else the bzImage). */
  bootKernel: string;
  initrd: string;
  oopsCount: number;
  kernelRoot: string;
  qemu: string;
}

export class VmNotProvisionedError extends Error {}

/**
 * Reads the cache's current.env written by provision.sh; another `arch` reads the guest
 * provisioned with CRASHCART_VM_ARCH=ARCH (current-ARCH.env).
 */
export function loadVmEnv(cacheDir = process.env.CRASHCART_VM_CACHE ?? join(VM_SOURCE_DIR, 'cache'), arch: VmArch = 'amd64'): VmEnv {
  const file = join(cacheDir, arch === 'amd64' ? 'current.env' : `current-${arch}.env`);
  if (!existsSync(file)) {
    throw new VmNotProvisionedError(`VM harness not provisioned: ${file} missing; run ${arch === 'amd64' ? '' : `CRASHCART_VM_ARCH=${arch} `}test/vm/provision.sh`);
  }
  const kv = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) kv.set(m[1], m[2]);
  }
  const get = (k: string): string => {
    const v = kv.get(k);
    if (!v) throw new VmNotProvisionedError(`${file}: ${k} missing; re-run test/vm/provision.sh`);
    return v;
  };
  const env: VmEnv = {
    arch,
    kernelRelease: get('KERNEL_RELEASE'),
    bootKernel: kv.get('BOOT_KERNEL') || get('VMLINUZ'),
    initrd: get('INITRD'),
    oopsCount: Number(get('OOPS_COUNT')),
    kernelRoot: get('KERNEL_ROOT'),
    qemu: get('QEMU'),
  };
  for (const p of [env.bootKernel, env.initrd, env.qemu]) {
    if (!existsSync(p)) throw new VmNotProvisionedError(`${p} missing; re-run test/vm/provision.sh`);
  }
  return env;
}

interface Machine {
  args: string[];
  console: string;
  append: string;
  /** The -device of a virtio disk in slot `slot` (its PCI slot or CCW device number). */
  virtioBlk: (drive: string, slot: number) => string;
  /** PCI bus for qemu-xhci (USB disks). */
  pci: boolean;
}

const virtioBlkPci = (drive: string, slot: number): string => `virtio-blk-pci,drive=${drive},addr=${hex(slot)}`;

/**
 * The emulated machine per guest architecture. Disks are virtio-blk-pci on x86 (pc) and arm64
 * (virt's PCIe root bus) and virtio-blk-ccw on s390x (device numbers fe.0.SLOT); the guest
 * finds them in the order given (/dev/vda, /dev/vdb, ...) on every machine.
 */
const MACHINES: Record<VmArch, Machine> = {
  // i8042/tsc switches shorten the x86 boot (no PS/2 probing, no TSC calibration against the PIT)
  amd64: { args: [], console: 'ttyS0', append: 'i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable no_timer_check', virtioBlk: virtioBlkPci, pci: true },
  i386: { args: [], console: 'ttyS0', append: 'i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable no_timer_check', virtioBlk: virtioBlkPci, pci: true },
  // Cortex-A57 (ARMv8.0): fewer features to emulate than `max` (no pointer authentication, no SVE)
  arm64: { args: ['-machine', 'virt', '-cpu', 'cortex-a57'], console: 'ttyAMA0', append: '', virtioBlk: virtioBlkPci, pci: true },
  // -serial is the SCLP VT220 console (ttysclp0) on s390-ccw-virtio
  s390x: {
    args: ['-machine', 's390-ccw-virtio'],
    console: 'ttysclp0',
    append: '',
    virtioBlk: (drive, slot) => `virtio-blk-ccw,drive=${drive},devno=fe.0.${slot.toString(16).padStart(4, '0')}`,
    pci: false,
  },
};

export interface VmDisk {
  /** Image file on the host. */
  path: string;
  format?: 'raw' | 'qcow2';
  /** Serial number the guest sees (/sys/block/vdX/serial; vm_disk_by_serial finds it). */
  serial?: string;
  readonly?: boolean;
}

export interface VmUsbDisk {
  path: string;
  format?: 'raw' | 'qcow2';
  /** USB serial number string of the emulated mass-storage device. */
  serial?: string;
  /** Report the medium as removable (like a card reader); default true. */
  removable?: boolean;
  readonly?: boolean;
}

export interface RunVmOptions {
  /**
   * Virtio disks, in order: the first is /dev/vda, the second /dev/vdb, ... The harness adds
   * its output disk after them (serial "crashcart-out").
   */
  disks?: VmDisk[];
  /** Shell script run inside the VM (busybox sh, `set -e`, vm-lib.sh helpers sourced). */
  script: string;
  /** Extra kernel command line (e.g. "pstore_blk.blkdev=/dev/vda pstore_blk.kmsg_size=64"). */
  cmdline?: string;
  /** Variables exported to the scenario. */
  env?: Record<string, string>;
  /** Extra files placed into the VM's root filesystem (absolute guest paths). */
  files?: Record<string, string | Buffer>;
  /** Export the host's / read-only over 9p (tag hostroot); the guest mounts it with mount_hostroot. */
  virtfsHostRoot?: boolean;
  /** Emulated USB mass-storage devices on a qemu-xhci controller (guest: usb_host_modules). */
  usb?: { disks: VmUsbDisk[] };
  /** Hard limit for the whole VM run; QEMU is killed when it expires. Default 120 s. */
  timeoutMs?: number;
  /** Guest-side watchdog for the scenario (outputs are still saved). Default timeoutMs - 30 s. */
  scriptTimeoutMs?: number;
  memoryMiB?: number;
  cpus?: number;
  /** Size of the (sparse) output disk. Default 256 MiB. */
  outputDiskMiB?: number;
  /** Full kernel log on the serial console instead of `quiet`. */
  verboseKernel?: boolean;
  /** Resolve instead of throwing when the scenario exits non-zero. */
  allowFailure?: boolean;
  /** Stream the serial console to this callback (CRASHCART_VM_VERBOSE=1 streams to stderr). */
  onSerial?: (chunk: string) => void;
  /** Provisioned environment (default: loadVmEnv()). */
  vmEnv?: VmEnv;
  /**
   * Back the guest RAM with this host file (memory-backend-file, share=on). What the guest
   * writes to memory the kernel leaves alone (`memmap=SIZE$START` on the command line) is in
   * the file after QEMU exits, and the next run on the same file finds it again: RAM that
   * survives a reboot. Created sparse (zeros) at the guest RAM size when missing.
   */
  memoryFile?: string;
  /**
   * The scenario ends in a kernel panic (e.g. `echo c > /proc/sysrq-trigger`): resolve with
   * `panicked` when the guest panicked, throw when the scenario ended normally instead.
   */
  expectPanic?: boolean;
}

export interface VmResult {
  /** Exit status of the scenario (124: guest watchdog fired; -1: the guest panicked, see expectPanic). */
  exitStatus: number;
  /** The kernel panicked (only with expectPanic; outputs are then empty). */
  panicked: boolean;
  /** Everything QEMU's serial port printed. */
  serialLog: string;
  /** stdout+stderr of the scenario script. */
  scriptLog: string;
  /** The guest's full kernel log (dmesg) at the end of the scenario. */
  dmesg: string;
  /** Files the scenario saved (save_pstore/save_file/...), keyed by path relative to /out. */
  outputs: Map<string, Buffer>;
  /** Host wall time from QEMU start to its exit. */
  durationMs: number;
  /** Guest uptime when init started (kernel boot time), in ms, if reported. */
  guestBootMs?: number;
  /** Guest uptime at the end of the scenario, in ms. */
  guestUptimeMs?: number;
}

export class VmError extends Error {
  constructor(
    message: string,
    readonly serialLog: string,
    readonly result?: VmResult,
  ) {
    super(message);
  }
}

const OUTPUT_SERIAL = 'crashcart-out';

export async function runVm(opts: RunVmOptions): Promise<VmResult> {
  const env = opts.vmEnv ?? loadVmEnv();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const scriptTimeoutS = Math.max(5, Math.floor((opts.scriptTimeoutMs ?? timeoutMs - 30_000) / 1000));
  const work = await mkdtemp(join(tmpdir(), 'crashcart-vm-'));
  try {
    // initramfs = provisioned base archive + a second archive with the scenario
    const extra = new Map<string, Buffer>();
    // Where this checkout lives on the host, for mount_hostroot (see vm-lib.sh).
    const exports = Object.entries({ CRASHCART_HOST_REPO: resolve(VM_SOURCE_DIR, '../..'), ...opts.env })
      .map(([k, v]) => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad env name ${k}`);
        return `export ${k}=${shellQuote(v)}\n`;
      })
      .join('');
    // the current init and helpers replace the provisioned copies (edits apply without re-provisioning)
    for (const [src, dst] of [
      ['init.sh', '/init'],
      ['vm-lib.sh', '/bin/vm-lib.sh'],
    ] as const) {
      const p = join(VM_SOURCE_DIR, src);
      if (existsSync(p)) extra.set(dst, await readFile(p));
    }
    extra.set('/scenario.sh', Buffer.from(`OOPS_COUNT=${env.oopsCount}\n${exports}${opts.script}\n`));
    for (const [p, c] of Object.entries(opts.files ?? {})) {
      if (!p.startsWith('/')) throw new Error(`files: guest path must be absolute: ${p}`);
      extra.set(p, Buffer.isBuffer(c) ? c : Buffer.from(c));
    }
    const initrd = join(work, 'initrd.cpio');
    await copyFile(env.initrd, initrd);
    await appendFile(initrd, buildCpio(extra));

    const outImg = join(work, 'out.img');
    const fh = await open(outImg, 'w');
    await fh.truncate((opts.outputDiskMiB ?? 256) * 1024 * 1024);
    await fh.close();

    const machine = MACHINES[env.arch];
    const append = [
      `console=${machine.console}`,
      'panic=-1',
      'nokaslr',
      opts.verboseKernel ? '' : 'quiet',
      machine.append,
      `crashcart.timeout=${scriptTimeoutS}`,
      opts.cmdline ?? '',
    ]
      .filter(Boolean)
      .join(' ');

    const args = [
      ...machine.args,
      '-accel',
      'tcg',
      '-m',
      String(opts.memoryMiB ?? 512),
      '-smp',
      String(opts.cpus ?? 1),
      '-nodefaults',
      '-no-reboot',
      '-display',
      'none',
      '-monitor',
      'none',
      '-serial',
      'stdio',
      '-kernel',
      env.bootKernel,
      '-initrd',
      initrd,
      '-append',
      append,
    ];
    if (opts.memoryFile) {
      const memBytes = (opts.memoryMiB ?? 512) * 1024 * 1024;
      if (!existsSync(opts.memoryFile)) await createRawImage(opts.memoryFile, memBytes);
      args.push('-object', `memory-backend-file,id=ram,size=${memBytes},mem-path=${qemuPath(opts.memoryFile)},share=on`, '-machine', 'memory-backend=ram');
    }
    const disks = opts.disks ?? [];
    if (disks.length > 16) throw new Error('at most 16 disks');
    // explicit PCI slots keep vda, vdb, ... in the order given; the output disk comes last
    disks.forEach((d, i) => {
      if (d.serial !== undefined && !/^[A-Za-z0-9_.-]{1,20}$/.test(d.serial)) throw new Error(`bad disk serial ${d.serial}`);
      args.push(
        '-drive',
        `file=${qemuPath(d.path)},format=${d.format ?? 'raw'},if=none,id=disk${i}${d.readonly ? ',readonly=on' : ''}`,
        '-device',
        `${machine.virtioBlk(`disk${i}`, 4 + i)}${d.serial ? `,serial=${d.serial}` : ''}`,
      );
    });
    args.push('-drive', `file=${qemuPath(outImg)},format=raw,if=none,id=out`, '-device', `${machine.virtioBlk('out', 0x18)},serial=${OUTPUT_SERIAL}`);
    if (opts.virtfsHostRoot) {
      args.push('-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap');
    }
    if (opts.usb && opts.usb.disks.length > 0) {
      if (!machine.pci) throw new Error(`usb: no PCI bus for qemu-xhci on the ${env.arch} machine`);
      args.push('-device', `qemu-xhci,id=xhci,addr=${hex(0x19)}`);
      opts.usb.disks.forEach((d, i) => {
        args.push(
          '-drive',
          `file=${qemuPath(d.path)},format=${d.format ?? 'raw'},if=none,id=usb${i}${d.readonly ? ',readonly=on' : ''}`,
          '-device',
          `usb-storage,bus=xhci.0,drive=usb${i},removable=${d.removable === false ? 'off' : 'on'}` + (d.serial ? `,serial=${d.serial}` : ''),
        );
      });
    }

    const verbose = process.env.CRASHCART_VM_VERBOSE === '1';
    const started = Date.now();
    let serial = '';
    const { code, signal, timedOut, spawnError } = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      timedOut: boolean;
      spawnError?: Error;
    }>((resolvePromise) => {
      const child = spawn(env.qemu, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      const onData = (b: Buffer): void => {
        const s = b.toString('latin1');
        serial += s;
        opts.onSerial?.(s);
        if (verbose) process.stderr.write(s);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', (e) => {
        clearTimeout(timer);
        resolvePromise({ code: null, signal: null, timedOut, spawnError: e });
      });
      child.on('close', (c, s) => {
        clearTimeout(timer);
        resolvePromise({ code: c, signal: s, timedOut });
      });
    });
    const durationMs = Date.now() - started;
    if (spawnError) throw new VmError(`cannot start ${env.qemu}: ${spawnError.message}`, serial);
    if (timedOut) {
      throw new VmError(`VM timed out after ${timeoutMs} ms and was killed\n--- serial (tail) ---\n${tail(serial)}`, serial);
    }
    if (code !== 0) {
      throw new VmError(`QEMU exited with ${code ?? signal}\n--- serial (tail) ---\n${tail(serial)}`, serial);
    }

    const files = parseTar(await readFile(outImg));
    const meta = (name: string): Buffer | undefined => files.get(`.vm/${name}`);
    const statusText = meta('status')?.toString('utf8').trim();
    const panicked = statusText === undefined && /Kernel panic - not syncing/.test(serial);
    if (opts.expectPanic) {
      if (panicked) return { exitStatus: -1, panicked, serialLog: serial, scriptLog: '', dmesg: '', outputs: new Map(), durationMs };
      throw new VmError(`expected a kernel panic; the scenario ended with status ${statusText ?? '(none)'}\n--- serial (tail) ---\n${tail(serial)}`, serial);
    }
    if (statusText === undefined || !/^\d+$/.test(statusText)) {
      throw new VmError(`VM stopped without reporting a scenario status (kernel panic or crash?)\n--- serial (tail) ---\n${tail(serial)}`, serial);
    }
    const outputs = new Map<string, Buffer>();
    for (const [k, v] of files) if (!k.startsWith('.vm/')) outputs.set(k, v);
    const bootMatch = /crashcart-vm: init started \([^)]*\) after ([\d.]+) s/.exec(serial);
    const uptime = meta('uptime')?.toString('utf8').split(' ')[0];
    const result: VmResult = {
      exitStatus: Number(statusText),
      panicked: false,
      serialLog: serial,
      scriptLog: meta('script.log')?.toString('utf8') ?? '',
      dmesg: meta('dmesg')?.toString('utf8') ?? '',
      outputs,
      durationMs,
      guestBootMs: bootMatch ? Math.round(Number(bootMatch[1]) * 1000) : undefined,
      guestUptimeMs: uptime ? Math.round(Number(uptime) * 1000) : undefined,
    };
    if (result.exitStatus !== 0 && !opts.allowFailure) {
      const why = result.exitStatus === 124 ? `scenario timed out after ${scriptTimeoutS} s` : `scenario exited with status ${result.exitStatus}`;
      throw new VmError(`${why}\n--- scenario output (tail) ---\n${tail(result.scriptLog)}\n--- serial (tail) ---\n${tail(serial, 40)}`, serial, result);
    }
    return result;
  } finally {
    if (process.env.CRASHCART_VM_KEEP !== '1') await rm(work, { recursive: true, force: true });
    else process.stderr.write(`crashcart-vm: work directory kept: ${work}\n`);
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function qemuPath(p: string): string {
  // QEMU option values use ',' as separator; ',,' escapes a comma
  return resolve(p).replace(/,/g, ',,');
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function tail(s: string, lines = 60): string {
  return s.split('\n').slice(-lines).join('\n');
}

/** A newc ("070701") cpio archive with the given files (parent directories are added). */
export function buildCpio(files: Map<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  let ino = 0x40000;
  const dirs = new Set<string>();
  const entry = (name: string, mode: number, data: Buffer): void => {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
    parts.push(Buffer.from(header, 'ascii'), nameBuf, pad4(110 + nameBuf.length), data, pad4(data.length));
  };
  for (const [path, data] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const rel = path.replace(/^\/+/, '');
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const d = segs.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        entry(d, 0o040755, Buffer.alloc(0));
      }
    }
    entry(rel, 0o100755, data);
  }
  entry('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

/**
 * Regular files of a tar stream (ustar, GNU long names, pax path records), keyed by their
 * path without a leading "./". Stops at the first zero block.
 */
export function parseTar(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  const str = (b: Buffer): string => {
    const z = b.indexOf(0);
    return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
  };
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    let checksum = 0;
    for (let i = 0; i < 512; i++) checksum += i >= 148 && i < 156 ? 32 : h[i];
    if (checksum !== parseInt(str(h.subarray(148, 156)).trim(), 8)) throw new Error(`tar: bad header checksum at offset ${off}`);
    let size: number;
    if (h[124] & 0x80) {
      size = 0;
      for (let i = 125; i < 136; i++) size = size * 256 + h[i];
    } else {
      size = parseInt(str(h.subarray(124, 136)).trim() || '0', 8);
    }
    const type = String.fromCharCode(h[156] || 0x30);
    let name = str(h.subarray(0, 100));
    if (str(h.subarray(257, 262)) === 'ustar') {
      const prefix = str(h.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    const data = buf.subarray(off + 512, off + 512 + size);
    if (data.length !== size) throw new Error(`tar: truncated entry ${name}`);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = str(data);
      continue;
    }
    if (type === 'x') {
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
      if (m) paxPath = m[1];
      continue;
    }
    const full = (paxPath ?? longName ?? name).replace(/^\.\//, '');
    longName = paxPath = undefined;
    if (type === '0' || type === '7') out.set(full, Buffer.from(data));
  }
  return out;
}

/** Creates a zero-filled raw image of `bytes` bytes. */
export async function createRawImage(path: string, bytes: number): Promise<void> {
  await writeFile(path, Buffer.alloc(0));
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}
