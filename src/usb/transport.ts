/**
 * The small transport interface the Bulk-Only Transport engine talks to. The npm `usb` package
 * sits behind it (`node-usb-transport.ts`), and so does the in-process simulated reader used by
 * the tests. Every transfer takes an explicit timeout; failures are `UsbTransferError`s whose
 * `kind` says stall / timeout / babble / disconnected / cancelled / io.
 */

/** Mass-storage interface found in the active configuration (class 08h). */
export interface MassStorageInterface {
  interfaceNumber: number;
  alternateSetting: number;
  /** bInterfaceSubClass: 06h = SCSI transparent, 01h = RBC, 04h = UFI, 05h = SFF-8070i… */
  subclass: number;
  /** bInterfaceProtocol: 50h = Bulk-Only Transport. */
  protocol: number;
  /** Endpoint numbers (without the direction bit). */
  bulkInEndpoint: number;
  bulkOutEndpoint: number;
  /** wMaxPacketSize of the bulk-IN endpoint (512 on high speed, 1024 on SuperSpeed). */
  maxPacketSize: number;
}

/** What enumeration tells about a USB device without opening it for I/O. */
export interface UsbDeviceInfo {
  vendorId: number;
  productId: number;
  /** bcdDevice, e.g. 0x0141. */
  revision: number;
  manufacturer?: string;
  product?: string;
  serial?: string;
  /** Bus number (1-based). */
  bus: number;
  /** Device address on the bus (changes on every re-enumeration). */
  address: number;
  /** Hub port numbers from the root hub down. */
  ports: number[];
  /** Physical port path as Linux names it in sysfs: `1-1.4`. Stable on a bench. */
  portPath: string;
  speed?: 'low' | 'full' | 'high' | 'super' | 'superPlus';
  /** All class-08h interfaces; the usable ones have subclass 06h and protocol 50h. */
  massStorage: MassStorageInterface[];
}

export interface TransferOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ControlSetup {
  requestType: 'standard' | 'class' | 'vendor';
  recipient: 'device' | 'interface' | 'endpoint' | 'other';
  request: number;
  value: number;
  index: number;
}

/**
 * One claimed mass-storage interface of one device. Created by a `UsbHost`; the BOT engine is
 * its only user.
 */
export interface UsbTransport {
  readonly device: UsbDeviceInfo;
  readonly iface: MassStorageInterface;
  /** Sends `data` on the bulk-OUT endpoint; resolves with the number of bytes written. */
  bulkOut(data: Uint8Array, opts: TransferOptions): Promise<number>;
  /** Reads up to `length` bytes from the bulk-IN endpoint (fewer on a short packet). */
  bulkIn(length: number, opts: TransferOptions): Promise<Uint8Array>;
  /** CLEAR_FEATURE(ENDPOINT_HALT) on a bulk endpoint, resetting the host-side data toggle too. */
  clearHalt(direction: 'in' | 'out', opts: TransferOptions): Promise<void>;
  controlIn(setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array>;
  controlOut(setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions): Promise<void>;
  /**
   * USB port reset of the whole device. The transport re-opens and re-claims the interface
   * afterwards; it rejects with DeviceGoneError when the device did not come back.
   */
  resetPort(opts: TransferOptions): Promise<void>;
  /** Releases the interface, re-attaches any kernel driver it detached, closes the handle. */
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Interface to claim; defaults to the first 08h/06h/50h interface. */
  interfaceNumber?: number;
  /**
   * Detach a kernel driver (usb-storage, uas) bound to the interface while we own it, and
   * re-attach it on close. Default true.
   */
  detachKernelDriver?: boolean;
}

/**
 * One claimed interface of a device that is not a card reader (an FTDI chip driving an SD mux):
 * control transfers only. The interface is claimed so that no kernel driver (ftdi_sio) talks to
 * the chip at the same time; a driver detached on open is re-attached on close.
 */
export interface UsbControlTransport {
  readonly device: UsbDeviceInfo;
  readonly interfaceNumber: number;
  controlIn(setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array>;
  controlOut(setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions): Promise<void>;
  close(): Promise<void>;
}

/** Enumerates devices and opens transports. */
export interface UsbHost {
  list(): Promise<UsbDeviceInfo[]>;
  open(device: UsbDeviceInfo, opts?: OpenOptions): Promise<UsbTransport>;
  /** Claims interface `interfaceNumber` of any class, for control transfers. */
  openControl(device: UsbDeviceInfo, interfaceNumber: number): Promise<UsbControlTransport>;
}

/** USB class codes used to spot a mass-storage BOT interface. */
export const MSC_CLASS = 0x08;
export const MSC_SUBCLASS_SCSI = 0x06;
export const MSC_PROTOCOL_BOT = 0x50;

/** True for an interface the driver can speak to: SCSI transparent command set over BOT. */
export function isBotScsiInterface(i: MassStorageInterface): boolean {
  return i.subclass === MSC_SUBCLASS_SCSI && i.protocol === MSC_PROTOCOL_BOT;
}

/** The interface crashcart uses on a device, or undefined when it has none. */
export function botInterfaceOf(dev: UsbDeviceInfo, interfaceNumber?: number): MassStorageInterface | undefined {
  return dev.massStorage.find((i) => isBotScsiInterface(i) && (interfaceNumber === undefined || i.interfaceNumber === interfaceNumber));
}

/**
 * Linux sysfs-style port path (`1-1.4`) from a bus number and the hub port chain. A device
 * on the root hub itself (no ports) is named `usbN`.
 */
export function formatPortPath(bus: number, ports: readonly number[]): string {
  return ports.length === 0 ? `usb${bus}` : `${bus}-${ports.join('.')}`;
}

/**
 * The port path of the hub a device hangs off (`1-1.4` → `1-1`; a device on the root hub: `usb1`).
 * Two devices with the same parent are on the same hub, as the FTDI chip and the card reader of an
 * SDWire are.
 */
export function parentPortPath(d: Pick<UsbDeviceInfo, 'bus' | 'ports'>): string {
  return formatPortPath(d.bus, d.ports.slice(0, -1));
}

/** `0x058f` → `058f`. */
export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Throws the signal's reason when it is aborted. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) signal.throwIfAborted();
}
