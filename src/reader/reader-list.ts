/**
 * What `crashcart list` reports: every USB mass-storage reader with the state of each slot, read by
 * talking to it (each reader is claimed for the probe and handed back to its kernel driver).
 */
import { UsbAccessError } from '../usb/errors.js';
import { assertNotMounted, slotSelector } from './open-usb.js';
import type { ReaderProfile } from './reader-profiles.js';
import { listReaders, probeReader, type SlotState } from './readers.js';
import { boundDriverOf, kernelDisksOf, type SysfsOptions } from './sysfs.js';
import type { BotOptions } from '../usb/bot.js';
import type { ScsiOptions } from '../scsi/scsi-lun.js';
import type { UsbHost } from '../usb/transport.js';

export interface ListedSlot {
  lun: number;
  /** `usb:2-1@lun=0`. */
  selector: string;
  present: boolean;
  size?: number;
  blockSize?: number;
  writeProtected?: boolean;
  vendor?: string;
  product?: string;
  revision?: string;
  removable?: boolean;
  /** The kernel's disk for this slot before crashcart looked (`/dev/sdb`). */
  kernelDevice?: string;
  error?: string;
}

export interface ListedReader {
  /** `usb:2-1`. */
  selector: string;
  port: string;
  bus: number;
  address: number;
  /** `1d6b:0104`. */
  id: string;
  vendorId: string;
  productId: string;
  /** bcdDevice as `1.04`. */
  revision: string;
  manufacturer?: string;
  product?: string;
  serial?: string;
  speed?: string;
  interface: number;
  /** Kernel driver bound to the interface before crashcart looked (usb-storage, uas). */
  driver?: string;
  profiles: string[];
  quirks: Record<string, unknown>;
  /** Slots (LUNs); empty when the reader could not be probed (see `error`). */
  slots: ListedSlot[];
  error?: string;
}

export interface ListDeps {
  host?: UsbHost;
  profiles?: readonly ReaderProfile[];
  sysfs?: SysfsOptions;
  bot?: BotOptions;
  scsi?: ScsiOptions;
}

function bcd(rev: number): string {
  return `${(rev >> 8).toString(16)}.${(rev & 0xff).toString(16).padStart(2, '0')}`;
}

/** Every reader with the state of each slot. Readers that cannot be probed carry `error`. */
export async function collectReaders(deps: ListDeps = {}): Promise<ListedReader[]> {
  const host = deps.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const readers = await listReaders({ host, profiles: deps.profiles });
  const out: ListedReader[] = [];
  for (const r of readers) {
    const d = r.device;
    const kernel = kernelDisksOf(d.portPath, r.interfaceNumber, deps.sysfs);
    const entry: ListedReader = {
      selector: r.selector,
      port: d.portPath,
      bus: d.bus,
      address: d.address,
      id: r.id,
      vendorId: r.id.slice(0, 4),
      productId: r.id.slice(5),
      revision: bcd(d.revision),
      ...(d.manufacturer ? { manufacturer: d.manufacturer } : {}),
      ...(d.product ? { product: d.product } : {}),
      ...(d.serial ? { serial: d.serial } : {}),
      ...(d.speed ? { speed: d.speed } : {}),
      interface: r.interfaceNumber,
      ...(boundDriverOf(d.portPath, r.interfaceNumber, deps.sysfs) ? { driver: boundDriverOf(d.portPath, r.interfaceNumber, deps.sysfs) } : {}),
      profiles: r.profiles,
      quirks: { ...r.quirks },
      slots: [],
    };
    try {
      assertNotMounted(d, deps.sysfs);
      const slots: SlotState[] = await probeReader(host, d, { quirks: r.quirks, bot: deps.bot, scsi: deps.scsi });
      entry.slots = slots.map((s) => {
        const k = kernel.find((x) => x.lun === s.lun);
        return {
          lun: s.lun,
          selector: slotSelector(d, s.lun),
          present: s.present,
          ...(s.size !== undefined ? { size: s.size } : {}),
          ...(s.blockSize !== undefined ? { blockSize: s.blockSize } : {}),
          ...(s.writeProtected !== undefined ? { writeProtected: s.writeProtected } : {}),
          ...(s.vendor !== undefined ? { vendor: s.vendor } : {}),
          ...(s.product !== undefined ? { product: s.product } : {}),
          ...(s.revision !== undefined ? { revision: s.revision } : {}),
          ...(s.removable !== undefined ? { removable: s.removable } : {}),
          ...(k ? { kernelDevice: k.path } : {}),
          ...(s.error ? { error: s.error } : {}),
        };
      });
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
      if (e instanceof UsbAccessError) entry.error = e.message;
    }
    out.push(entry);
  }
  return out;
}
