/**
 * `UsbHost`/`UsbTransport` over the npm `usb` package, major version 3 (Rust/nusb based,
 * WebUSB-style API). Why 3.x and not 2.x:
 *  - explicit per-call timeouts on every transfer (`native*` methods); 2.x's WebUSB layer has none
 *    and its legacy API needs per-endpoint timeout properties;
 *  - `clearHalt` uses nusb's clear_halt, which also resets the host-side data toggle (2.x's
 *    WebUSB `clearHalt` sends a raw CLEAR_FEATURE that does not, on Linux);
 *  - no runtime dependency on libudev (2.x's Linux prebuilds link libudev.so.1), prebuilt
 *    per-platform binaries as optional dependencies, no compiler at install;
 *  - it is the line the project's VM targets (QEMU usb-storage, the Linux f_mass_storage gadget)
 *    were checked against.
 * Costs, handled here: errors are plain Errors whose message carries the reason (mapped by
 * `mapNodeUsbError`), partial data of a failed transfer is lost (BOT recovery does not need
 * it), `getDevices()` throws where sysfs has no USB (treated as "no devices"), kernel-driver
 * detach is explicit and Linux-only, and macOS cannot open devices a kernel driver owns.
 *
 * The package is loaded lazily so that crashcart works on machines where its native binary is
 * missing, as long as no `usb:` device is used.
 */
import { DeviceGoneError, UsbAccessError, UsbBusyError, UsbNotSupportedError, UsbTransferError, type TransferErrorKind } from './errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  botInterfaceOf,
  formatPortPath,
  MSC_CLASS,
  type ControlSetup,
  type MassStorageInterface,
  type OpenOptions,
  type TransferOptions,
  type UsbControlTransport,
  type UsbDeviceInfo,
  type UsbHost,
  type UsbTransport,
} from './transport.js';

/** The subset of `usb@3`'s UsbDevice this adapter uses. */
export interface NativeEndpoint {
  endpointNumber: number;
  direction: 'in' | 'out';
  type: string;
  packetSize: number;
}
export interface NativeAlternate {
  alternateSetting: number;
  interfaceClass: number;
  interfaceSubclass: number;
  interfaceProtocol: number;
  endpoints: NativeEndpoint[];
}
export interface NativeInterface {
  interfaceNumber: number;
  alternates: NativeAlternate[];
}
export interface NativeDevice {
  vendorId: number;
  productId: number;
  deviceVersionMajor: number;
  deviceVersionMinor: number;
  deviceVersionSubminor: number;
  bus: string;
  address: number;
  ports: number[];
  speed?: string;
  readonly manufacturerName: string | null;
  readonly productName: string | null;
  readonly serialNumber: string | null;
  readonly configuration: { interfaces: NativeInterface[] } | null;
  open(): Promise<void>;
  close(): Promise<void>;
  reset(): Promise<void>;
  claimInterface(n: number): Promise<void>;
  releaseInterface(n: number): Promise<void>;
  selectAlternateInterface(n: number, alt: number): Promise<void>;
  nativeControlTransferIn(setup: ControlSetup, timeout: number, length: number): Promise<Uint8Array | null>;
  nativeControlTransferOut(setup: ControlSetup, timeout: number, data?: Uint8Array | null): Promise<number>;
  nativeTransferIn(ep: number, timeout: number, length: number): Promise<Uint8Array | null>;
  nativeTransferOut(ep: number, timeout: number, data: Uint8Array): Promise<number>;
  clearHalt(direction: 'in' | 'out', ep: number): Promise<void>;
  detachKernelDriver(n: number): Promise<void>;
  attachKernelDriver(n: number): Promise<void>;
}
interface NodeUsbModule {
  usb: { getDevices(): Promise<NativeDevice[]> };
}

let modulePromise: Promise<NodeUsbModule> | undefined;

async function loadUsb(): Promise<NodeUsbModule> {
  modulePromise ??= import('usb').then(
    (m) => ((m as unknown as { usb?: unknown }).usb ? m : (m as unknown as { default: unknown }).default) as unknown as NodeUsbModule,
    (e: unknown) => {
      modulePromise = undefined;
      throw new UsbNotSupportedError(
        `the 'usb' package could not be loaded (${e instanceof Error ? e.message : String(e)}); reinstall crashcart on this platform so npm installs the matching @node-usb/usb-* binary`,
        { cause: e },
      );
    },
  );
  return modulePromise;
}

const UDEV_HINT =
  "grant your user read/write access to the reader's /dev/bus/usb node, e.g. a udev rule " +
  'SUBSYSTEM=="usb", ATTR{idVendor}=="VVVV", ATTR{idProduct}=="PPPP", MODE="0660", GROUP="plugdev" ' +
  '(`crashcart udev-rule` prints one for your readers), or run as root';

/**
 * Maps an error thrown by `usb@3` (plain Error, reason in the message) to a typed error.
 * Transfer failures become UsbTransferError with a kind; open/claim/detach failures become
 * access / busy / not-supported / gone errors with a hint.
 */
export function mapNodeUsbError(e: unknown, op: string): Error {
  if (e instanceof UsbTransferError || e instanceof DeviceGoneError || e instanceof UsbAccessError || e instanceof UsbBusyError) return e;
  const m = e instanceof Error ? e.message : String(e);
  const kind = (k: TransferErrorKind) => new UsbTransferError(k, `${op}: ${m}`, { cause: e });
  if (/permission denied|errno 13\b|EACCES|access denied/i.test(m)) return new UsbAccessError(`${op}: permission denied: ${UDEV_HINT}`, { cause: e });
  if (/busy|errno 16\b|EBUSY|already in use|already claimed/i.test(m)) {
    return new UsbBusyError(`${op}: the interface is in use by another driver or program (${m}); unmount the card and close other programs using the reader`, { cause: e });
  }
  if (/disconnect|no such device|not found.*device|errno 19\b|ENODEV|errno 108\b|ESHUTDOWN/i.test(m)) {
    return new DeviceGoneError(`${op}: device disconnected (${m})`, { cause: e });
  }
  if (/not supported|unsupported|errno 95\b/i.test(m)) {
    return new UsbNotSupportedError(
      `${op}: not supported on this platform (${m}); on Windows bind the reader to WinUSB, on macOS devices with a kernel driver are not accessible`,
      { cause: e },
    );
  }
  if (/stall|pipe|errno 32\b|EPIPE/i.test(m)) return kind('stall');
  if (/cancel|timed? ?out|timeout|errno 110\b/i.test(m)) return kind('timeout');
  if (/overflow|babble|errno 75\b/i.test(m)) return kind('babble');
  return kind('io');
}

/** bcdDevice from WebUSB's split version fields. */
export function bcdFromVersion(major: number, minor: number, subminor: number): number {
  return ((major & 0xff) << 8) | ((minor & 0x0f) << 4) | (subminor & 0x0f);
}

/** Bus number from `usb@3`'s `bus` string ("1", "001", or "1-1" style). */
export function busNumberOf(bus: string | number): number {
  const n = parseInt(String(bus).split('-')[0], 10);
  return Number.isFinite(n) ? n : 0;
}

/** Mass-storage interfaces (class 08h) of a configuration, with their bulk endpoints. */
export function massStorageInterfacesOf(interfaces: readonly NativeInterface[]): MassStorageInterface[] {
  const out: MassStorageInterface[] = [];
  for (const i of interfaces) {
    for (const alt of i.alternates ?? []) {
      if (alt.interfaceClass !== MSC_CLASS) continue;
      const bulkIn = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'in');
      const bulkOut = alt.endpoints.find((e) => e.type === 'bulk' && e.direction === 'out');
      if (!bulkIn || !bulkOut) continue;
      out.push({
        interfaceNumber: i.interfaceNumber,
        alternateSetting: alt.alternateSetting,
        subclass: alt.interfaceSubclass,
        protocol: alt.interfaceProtocol,
        bulkInEndpoint: bulkIn.endpointNumber,
        bulkOutEndpoint: bulkOut.endpointNumber,
        maxPacketSize: bulkIn.packetSize,
      });
    }
  }
  return out;
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

export function describeNativeDevice(d: NativeDevice): UsbDeviceInfo {
  const bus = busNumberOf(d.bus);
  const ports = Array.isArray(d.ports) ? [...d.ports] : [];
  const config = safe(() => d.configuration);
  const speed = d.speed as UsbDeviceInfo['speed'];
  return {
    vendorId: d.vendorId,
    productId: d.productId,
    revision: bcdFromVersion(d.deviceVersionMajor, d.deviceVersionMinor, d.deviceVersionSubminor),
    manufacturer: safe(() => d.manufacturerName) ?? undefined,
    product: safe(() => d.productName) ?? undefined,
    serial: safe(() => d.serialNumber) ?? undefined,
    bus,
    address: d.address,
    ports,
    portPath: formatPortPath(bus, ports),
    ...(speed ? { speed } : {}),
    massStorage: config ? massStorageInterfacesOf(config.interfaces ?? []) : [],
  };
}

/** Rejects with the signal's reason as soon as it aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Rejects with a timeout error when a call without its own timeout (clear halt, reset) hangs. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UsbTransferError('timeout', `${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const openTransports = new Set<{ close(): Promise<void> }>();

/**
 * Closes every transport still open (releasing interfaces and re-attaching kernel drivers).
 * The CLI calls it (src/cli/usb-support.ts) when it exits on a signal outside a flash/read.
 */
export async function closeAllUsbTransports(): Promise<void> {
  await Promise.allSettled([...openTransports].map((t) => t.close()));
}

/** How many transports are open (claimed, kernel driver possibly detached) right now. */
export function openUsbTransportCount(): number {
  return openTransports.size;
}

export class NodeUsbTransport implements UsbTransport {
  device: UsbDeviceInfo;
  readonly iface: MassStorageInterface;
  private dev: NativeDevice;
  private readonly detach: boolean;
  private detached = false;
  private closed = false;
  /** The claim in progress or done (open waits for it; close waits for it before releasing). */
  private claiming?: Promise<void>;
  /** Native transfers still running after an abort; the next transfer on that pipe waits. */
  private pendingIn: Promise<unknown> = Promise.resolve();
  private pendingOut: Promise<unknown> = Promise.resolve();

  private constructor(dev: NativeDevice, info: UsbDeviceInfo, iface: MassStorageInterface, detach: boolean) {
    this.dev = dev;
    this.device = info;
    this.iface = iface;
    this.detach = detach;
  }

  static async open(dev: NativeDevice, info: UsbDeviceInfo, opts: OpenOptions = {}): Promise<NodeUsbTransport> {
    const iface = botInterfaceOf(info, opts.interfaceNumber);
    if (!iface) {
      throw new UsbNotSupportedError(
        `${info.portPath}: no mass-storage Bulk-Only/SCSI interface (class 08h, subclass 06h, protocol 50h)` +
          (opts.interfaceNumber !== undefined ? ` numbered ${opts.interfaceNumber}` : ''),
      );
    }
    const t = new NodeUsbTransport(dev, info, iface, opts.detachKernelDriver ?? true);
    // Registered before the kernel driver is detached: a Ctrl-C arriving while the interface is
    // being claimed still finds the transport, and its close() waits for the claim to finish
    // and then re-attaches the driver.
    openTransports.add(t);
    t.claiming = t.claim();
    try {
      await t.claiming;
    } catch (e) {
      openTransports.delete(t);
      throw e;
    }
    if (t.closed) throw new DeviceGoneError(`${info.portPath}: closed while it was being opened`);
    return t;
  }

  private async claim(): Promise<void> {
    const n = this.iface.interfaceNumber;
    try {
      await this.dev.open();
    } catch (e) {
      throw mapNodeUsbError(e, `open ${this.device.portPath}`);
    }
    if (this.detach) {
      try {
        this.detached = await detachDriver(this.dev, n, this.device.portPath);
      } catch (e) {
        await this.dev.close().catch(() => undefined);
        throw e;
      }
    }
    try {
      await this.dev.claimInterface(n);
      if (this.iface.alternateSetting !== 0) await this.dev.selectAlternateInterface(n, this.iface.alternateSetting);
    } catch (e) {
      await this.reattach();
      await this.dev.close().catch(() => undefined);
      throw mapNodeUsbError(e, `claim ${this.device.portPath} interface ${n}`);
    }
  }

  private async reattach(): Promise<void> {
    if (!this.detached) return;
    this.detached = false;
    await this.dev.attachKernelDriver(this.iface.interfaceNumber).catch(() => undefined);
  }

  private check(): void {
    if (this.closed) throw new DeviceGoneError(`${this.device.portPath}: transport closed`);
  }

  async bulkOut(data: Uint8Array, opts: TransferOptions): Promise<number> {
    this.check();
    await this.pendingOut.catch(() => undefined);
    const p = this.dev.nativeTransferOut(this.iface.bulkOutEndpoint, opts.timeoutMs, data);
    this.pendingOut = p;
    try {
      return await raceAbort(p, opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw mapNodeUsbError(e, 'bulk-OUT');
    }
  }

  async bulkIn(length: number, opts: TransferOptions): Promise<Uint8Array> {
    this.check();
    await this.pendingIn.catch(() => undefined);
    const p = this.dev.nativeTransferIn(this.iface.bulkInEndpoint, opts.timeoutMs, length);
    this.pendingIn = p;
    let r: Uint8Array | null;
    try {
      r = await raceAbort(p, opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw mapNodeUsbError(e, 'bulk-IN');
    }
    if (r === null) throw new UsbTransferError('stall', 'bulk-IN: stalled');
    if (r.length > length) throw new UsbTransferError('babble', `bulk-IN: ${r.length} bytes received, ${length} requested`);
    return r;
  }

  async clearHalt(direction: 'in' | 'out', opts: TransferOptions): Promise<void> {
    this.check();
    const ep = direction === 'in' ? this.iface.bulkInEndpoint : this.iface.bulkOutEndpoint;
    // usb@3 lends an endpoint to one call at a time: a transfer still running on it (a status read
    // queued with a failed data stage) ends first — every transfer has its own timeout.
    await (direction === 'in' ? this.pendingIn : this.pendingOut).catch(() => undefined);
    try {
      await withTimeout(this.dev.clearHalt(direction, ep), opts.timeoutMs, `clear halt ${direction}`);
    } catch (e) {
      throw mapNodeUsbError(e, `clear halt ${direction}`);
    }
  }

  async controlIn(setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array> {
    this.check();
    return controlIn(this.dev, setup, length, opts);
  }

  async controlOut(setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions): Promise<void> {
    this.check();
    return controlOut(this.dev, setup, data, opts);
  }

  /**
   * Port reset. The device may re-enumerate under a new address: the interface is re-claimed on
   * the same handle when possible, otherwise the device is looked up again by port path.
   */
  async resetPort(opts: TransferOptions): Promise<void> {
    this.check();
    try {
      await withTimeout(this.dev.reset(), opts.timeoutMs, 'port reset');
    } catch (e) {
      const mapped = mapNodeUsbError(e, 'port reset');
      if (mapped instanceof UsbTransferError && mapped.kind !== 'io') throw mapped;
      // A reset that re-enumerates the device invalidates the handle: look it up again below.
    }
    try {
      await this.dev.claimInterface(this.iface.interfaceNumber);
      return;
    } catch {
      // fall through to re-discovery
    }
    const { usb } = await loadUsb();
    const deadline = Date.now() + Math.max(opts.timeoutMs, 5_000);
    while (Date.now() < deadline) {
      const list = await usb.getDevices().catch(() => [] as NativeDevice[]);
      const again = list.find(
        (d) => formatPortPath(busNumberOf(d.bus), d.ports ?? []) === this.device.portPath && d.vendorId === this.device.vendorId && d.productId === this.device.productId,
      );
      if (again) {
        await this.dev.close().catch(() => undefined);
        this.dev = again;
        this.device = describeNativeDevice(again);
        this.detached = false;
        await this.claim();
        return;
      }
      await sleep(200);
    }
    throw new DeviceGoneError(`${this.device.portPath}: device did not come back after a port reset`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    openTransports.delete(this);
    await Promise.allSettled([this.claiming, this.pendingIn, this.pendingOut]);
    await this.dev.releaseInterface(this.iface.interfaceNumber).catch(() => undefined);
    await this.reattach();
    await this.dev.close().catch(() => undefined);
  }
}

/**
 * A claimed interface of any class, for vendor control transfers (the FTDI chip of an SDWire). The
 * kernel driver bound to it (ftdi_sio) is detached while crashcart holds it and re-attached on
 * close, as for the mass-storage transport.
 */
export class NodeUsbControlTransport implements UsbControlTransport {
  readonly device: UsbDeviceInfo;
  readonly interfaceNumber: number;
  private readonly dev: NativeDevice;
  private detached = false;
  private closed = false;

  private constructor(dev: NativeDevice, info: UsbDeviceInfo, interfaceNumber: number) {
    this.dev = dev;
    this.device = info;
    this.interfaceNumber = interfaceNumber;
  }

  static async open(dev: NativeDevice, info: UsbDeviceInfo, interfaceNumber: number): Promise<NodeUsbControlTransport> {
    const t = new NodeUsbControlTransport(dev, info, interfaceNumber);
    try {
      await dev.open();
    } catch (e) {
      throw mapNodeUsbError(e, `open ${info.portPath}`);
    }
    // registered before the kernel driver is detached: a Ctrl-C from here on re-attaches it
    openTransports.add(t);
    try {
      t.detached = await detachDriver(dev, interfaceNumber, info.portPath);
    } catch (e) {
      openTransports.delete(t);
      await dev.close().catch(() => undefined);
      throw e;
    }
    try {
      await dev.claimInterface(interfaceNumber);
    } catch (e) {
      openTransports.delete(t);
      await t.reattach();
      await dev.close().catch(() => undefined);
      throw mapNodeUsbError(e, `claim ${info.portPath} interface ${interfaceNumber}`);
    }
    return t;
  }

  private async reattach(): Promise<void> {
    if (!this.detached) return;
    this.detached = false;
    await this.dev.attachKernelDriver(this.interfaceNumber).catch(() => undefined);
  }

  async controlIn(setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array> {
    if (this.closed) throw new DeviceGoneError(`${this.device.portPath}: transport closed`);
    return controlIn(this.dev, setup, length, opts);
  }

  async controlOut(setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions): Promise<void> {
    if (this.closed) throw new DeviceGoneError(`${this.device.portPath}: transport closed`);
    return controlOut(this.dev, setup, data, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    openTransports.delete(this);
    await this.dev.releaseInterface(this.interfaceNumber).catch(() => undefined);
    await this.reattach();
    await this.dev.close().catch(() => undefined);
  }
}

/**
 * Detaches the kernel driver from interface `n` (Linux only): true when one was detached, false when
 * none was bound ("no kernel driver attached (errno 61)" is the normal case then). Other failures
 * are thrown, mapped; the caller closes the device.
 */
async function detachDriver(dev: NativeDevice, n: number, portPath: string): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  try {
    await dev.detachKernelDriver(n);
    return true;
  } catch (e) {
    const m = e instanceof Error ? e.message : String(e);
    if (/no kernel driver|errno 61|ENODATA|not found/i.test(m)) return false;
    throw mapNodeUsbError(e, `detach kernel driver from ${portPath} interface ${n}`);
  }
}

/** A control transfer from the device; a stall is a typed error. */
async function controlIn(dev: NativeDevice, setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array> {
  let r: Uint8Array | null;
  try {
    r = await raceAbort(dev.nativeControlTransferIn(setup, opts.timeoutMs, length), opts.signal);
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw mapNodeUsbError(e, `control IN 0x${setup.request.toString(16)}`);
  }
  if (r === null) throw new UsbTransferError('stall', `control IN 0x${setup.request.toString(16)}: stalled`);
  return r;
}

/** A control transfer to the device; a stall is a typed error. */
async function controlOut(dev: NativeDevice, setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions): Promise<void> {
  let n: number;
  try {
    n = await raceAbort(dev.nativeControlTransferOut(setup, opts.timeoutMs, data ?? new Uint8Array(0)), opts.signal);
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw mapNodeUsbError(e, `control OUT 0x${setup.request.toString(16)}`);
  }
  if (n < 0) throw new UsbTransferError('stall', `control OUT 0x${setup.request.toString(16)}: stalled`);
}

/** The host over the real USB stack. */
export class NodeUsbHost implements UsbHost {
  private native = new Map<string, NativeDevice>();

  /**
   * Every USB device with its mass-storage interfaces. A system without USB (no sysfs entry,
   * as in containers) has no devices rather than an error.
   */
  async list(): Promise<UsbDeviceInfo[]> {
    const { usb } = await loadUsb();
    let devices: NativeDevice[];
    try {
      devices = await usb.getDevices();
    } catch (e) {
      const m = e instanceof Error ? e.message : String(e);
      if (/not found|errno 2\b|ENOENT/i.test(m)) return [];
      throw mapNodeUsbError(e, 'list USB devices');
    }
    this.native.clear();
    return devices.map((d) => {
      const info = describeNativeDevice(d);
      this.native.set(`${info.bus}:${info.address}`, d);
      return info;
    });
  }

  async open(device: UsbDeviceInfo, opts?: OpenOptions): Promise<UsbTransport> {
    return NodeUsbTransport.open(await this.nativeDevice(device), device, opts);
  }

  async openControl(device: UsbDeviceInfo, interfaceNumber: number): Promise<UsbControlTransport> {
    return NodeUsbControlTransport.open(await this.nativeDevice(device), device, interfaceNumber);
  }

  /** The binding's device at `device`'s bus address, listing again if it is not known yet. */
  private async nativeDevice(device: UsbDeviceInfo): Promise<NativeDevice> {
    const key = `${device.bus}:${device.address}`;
    if (!this.native.has(key)) await this.list();
    const d = this.native.get(key);
    if (!d) throw new DeviceGoneError(`${device.portPath}: device no longer present`);
    return d;
  }
}
