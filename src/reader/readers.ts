/**
 * Reader discovery: which USB devices are mass-storage readers, and — by talking to them —
 * what is in their slots.
 */
import { CancelledError } from '../errors.js';
import { BotDriver, type BotOptions } from '../usb/bot.js';
import { ScsiLun, type ScsiOptions } from '../scsi/scsi-lun.js';
import { NoMediumError } from '../scsi/sense.js';
import { loadReaderProfiles, quirksFor, type ReaderProfile, type ReaderQuirks } from './reader-profiles.js';
import { botInterfaceOf, hex4, type OpenOptions, type UsbDeviceInfo, type UsbHost, type UsbTransport } from '../usb/transport.js';

export interface ReaderSummary {
  device: UsbDeviceInfo;
  /** `1d6b:0104`. */
  id: string;
  /** Selector that names this reader: `usb:1-1.4`. */
  selector: string;
  /** Interface number of the BOT/SCSI interface. */
  interfaceNumber: number;
  quirks: ReaderQuirks;
  /** Names of the reader profiles that matched. */
  profiles: string[];
}

/**
 * USB devices that expose a mass-storage Bulk-Only/SCSI interface, sorted by port path. Does
 * not open them. Uses the `usb` package unless another host is given.
 */
export async function listReaders(opts: { host?: UsbHost; profiles?: readonly ReaderProfile[] } = {}): Promise<ReaderSummary[]> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const devices = await host.list();
  const out: ReaderSummary[] = [];
  for (const d of devices) {
    const iface = botInterfaceOf(d);
    if (!iface) continue;
    const q = quirksFor(profiles, d.vendorId, d.productId, d.revision);
    out.push({
      device: d,
      id: `${hex4(d.vendorId)}:${hex4(d.productId)}`,
      selector: `usb:${d.portPath}`,
      interfaceNumber: iface.interfaceNumber,
      quirks: q.quirks,
      profiles: q.matched.map((p) => p.name),
    });
  }
  return out.sort((a, b) => a.device.portPath.localeCompare(b.device.portPath, 'en', { numeric: true }));
}

export interface SlotState {
  lun: number;
  vendor?: string;
  product?: string;
  revision?: string;
  removable?: boolean;
  present: boolean;
  /** Capacity in bytes and logical block size, when a card is present. */
  size?: number;
  blockSize?: number;
  writeProtected?: boolean;
  /** Why the slot could not be read, when it could not. */
  error?: string;
}

/**
 * Opens a reader, asks every slot (LUN) whether a card is present, its capacity and WP state,
 * and closes it again (re-attaching the kernel driver). Unit attentions from insertion or
 * reset are absorbed; an empty slot is `present: false`.
 */
export async function probeReader(
  host: UsbHost,
  device: UsbDeviceInfo,
  opts: { quirks?: ReaderQuirks; open?: OpenOptions; bot?: BotOptions; scsi?: ScsiOptions; signal?: AbortSignal } = {},
): Promise<SlotState[]> {
  const transport = await host.open(device, opts.open);
  try {
    return await probeSlots(transport, opts);
  } finally {
    await transport.close();
  }
}

/**
 * Same as probeReader on a transport that is already open (it stays open): `wait` polls a
 * reader it holds, and the `usb` selector probes before opening the one card it finds.
 */
export async function probeSlots(
  transport: UsbTransport,
  opts: { quirks?: ReaderQuirks; bot?: BotOptions; scsi?: ScsiOptions; signal?: AbortSignal; luns?: readonly number[] } = {},
): Promise<SlotState[]> {
  const bot = new BotDriver(transport, { ignoreTag: opts.quirks?.ignoreTag, ignoreResidue: opts.quirks?.ignoreResidue, ...opts.bot });
  const maxLun = opts.quirks?.singleLun ? 0 : await bot.getMaxLun();
  const slots: SlotState[] = [];
  for (let lun = 0; lun <= maxLun; lun++) {
    if (opts.luns && !opts.luns.includes(lun)) continue;
    if (opts.signal?.aborted) throw new CancelledError();
    const scsi = new ScsiLun(bot, lun, { noReadCapacity16: opts.quirks?.noReadCapacity16, ...opts.scsi });
    const slot: SlotState = { lun, present: false };
    try {
      const inq = await scsi.inquiry(opts.signal);
      Object.assign(slot, { vendor: inq.vendor, product: inq.product, revision: inq.revision, removable: inq.removable });
      if (inq.qualifier === 3) {
        slot.error = 'LUN not present';
        slots.push(slot);
        continue;
      }
      await scsi.testUnitReady({ absorbMediumChange: true, signal: opts.signal });
      const cap = await scsi.readCapacity({ absorbMediumChange: true, signal: opts.signal });
      let last = cap.lastLba;
      if (opts.quirks?.capacityOffByOne && last >= 0n) last -= 1n;
      if (last >= 0n) {
        slot.present = true;
        slot.blockSize = cap.blockSize;
        slot.size = Number((last + 1n) * BigInt(cap.blockSize));
        slot.writeProtected = opts.quirks?.noWriteProtectDetect ? false : await scsi.writeProtected(opts.signal);
      }
    } catch (e) {
      if (bot.disconnected || !(e instanceof Error) || e.name === 'AbortError') throw e;
      if (!(e instanceof NoMediumError)) slot.error = e.message;
    }
    slots.push(slot);
  }
  return slots;
}
