/**
 * Opening a card by `usb` selector: find the reader, make sure the kernel is not using it (no
 * mounted filesystem on its disks), claim it (detaching usb-storage), pick the slot and open
 * the BlockDevice over BOT + SCSI.
 *
 * Slot choice: `@lun=N` names it; without it a single-slot reader uses LUN 0 and a multi-slot
 * reader the one slot holding a card. The bare `usb` selector means "the only card present":
 * every reader is probed and exactly one card must be found; otherwise the candidates are
 * listed in a UsageError.
 */
import { IoError, UsageError, WriteProtectedError } from '../errors.js';
import { formatBytes } from '../util/format-bytes.js';
import { UsbBlockDevice, type UsbBlockDeviceOptions } from '../blockdev/usb-device.js';
import type { ScsiOptions } from '../scsi/scsi-lun.js';
import { NoMediumError } from '../scsi/sense.js';
import type { BotOptions } from '../usb/bot.js';
import { BotDriver } from '../usb/bot.js';
import { UsbBusyError } from '../usb/errors.js';
import { loadReaderProfiles, quirksFor, type ReaderProfile, type ReaderQuirks } from './reader-profiles.js';
import { probeSlots, type SlotState } from './readers.js';
import { formatUsbSelector, matchUsbSelector, parseUsbSelector, resolveUsbSelector, type UsbSelector } from './selector.js';
import { kernelDisksOf, type SysfsOptions } from './sysfs.js';
import { QuirkHinter, type QuirkHint } from './quirk-hints.js';
import { botInterfaceOf, hex4, type UsbDeviceInfo, type UsbHost, type UsbTransport } from '../usb/transport.js';

export interface UsbOpenOptions {
  /** Open for writing (default read-only). A write-protected card is refused at once. */
  write?: boolean;
  /** USB host (default: the `usb` package). */
  host?: UsbHost;
  /** Reader profiles (default: hw-profiles/readers). */
  profiles?: readonly ReaderProfile[];
  bot?: Omit<BotOptions, 'onEvent'>;
  scsi?: Omit<ScsiOptions, 'onEvent'>;
  /** Where to look for the kernel's disks of a reader (tests). */
  sysfs?: SysfsOptions;
  onEvent?: UsbBlockDeviceOptions['onEvent'];
  /** Hints that a reader profile would help (quirk-hints.ts), and notices such as a skipped flush. */
  onHint?: (h: QuirkHint) => void;
  /** Bytes per SCSI command (default: the reader profile's maxSectors, else 120 KiB). */
  maxTransferBytes?: number;
  signal?: AbortSignal;
}

/** A slot with a card, as found by probing. */
export interface FoundCard {
  device: UsbDeviceInfo;
  slot: SlotState;
  /** `usb:2-1@lun=0`. */
  selector: string;
}

export function slotSelector(d: UsbDeviceInfo, lun: number): string {
  return `usb:${d.portPath}@lun=${lun}`;
}

export function describeCard(c: FoundCard): string {
  const name = [c.slot.vendor, c.slot.product].filter(Boolean).join(' ') || [c.device.manufacturer, c.device.product].filter(Boolean).join(' ');
  return `${c.selector}  ${hex4(c.device.vendorId)}:${hex4(c.device.productId)}  ${formatBytes(c.slot.size ?? 0)}${c.slot.writeProtected ? '  write-protected' : ''}  ${name}${c.device.serial ? `  serial=${c.device.serial}` : ''}`;
}

/**
 * Refuses a reader one of whose kernel disks (or their partitions) is mounted: detaching the
 * kernel driver would pull the block device out from under the filesystem.
 */
export function assertNotMounted(d: UsbDeviceInfo, sysfs?: SysfsOptions): void {
  const iface = botInterfaceOf(d);
  if (!iface) return;
  const mounts = kernelDisksOf(d.portPath, iface.interfaceNumber, sysfs).flatMap((k) => k.mounts);
  if (mounts.length) {
    throw new UsbBusyError(
      `usb:${d.portPath}: ${mounts.map((m) => `${m.device} is mounted on ${m.mountPoint}`).join(', ')}; unmount it first ` +
        '(crashcart takes the reader away from the kernel while it works, which would pull the disk out from under the filesystem)',
    );
  }
}

function quirksOf(d: UsbDeviceInfo, profiles: readonly ReaderProfile[]): ReaderQuirks {
  return quirksFor(profiles, d.vendorId, d.productId, d.revision).quirks;
}

async function maxLunOf(t: UsbTransport, quirks: ReaderQuirks, bot?: BotOptions): Promise<number> {
  if (quirks.singleLun) return 0;
  return new BotDriver(t, { ...bot }).getMaxLun();
}

/**
 * Opens the card a `usb…` selector names. The transport is closed again (kernel driver
 * re-attached) on every failure; on success closing the returned device does it.
 */
export async function openUsbDevice(spec: string, opts: UsbOpenOptions = {}): Promise<UsbBlockDevice> {
  const sel = parseUsbSelector(spec);
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const devices = await host.list();
  if (sel.kind === 'any') return openOnlyCard(sel, host, devices, profiles, opts);
  const d = resolveUsbSelector(sel, devices);
  assertNotMounted(d, opts.sysfs);
  const quirks = quirksOf(d, profiles);
  const t = await host.open(d);
  let lun = sel.lun;
  try {
    if (lun === undefined) {
      const maxLun = await maxLunOf(t, quirks, opts.bot);
      if (maxLun === 0) lun = 0;
      else {
        const slots = await probeSlots(t, { quirks, bot: opts.bot, scsi: opts.scsi, signal: opts.signal });
        const cards = slots.filter((s) => s.present);
        if (cards.length === 1) lun = cards[0].lun;
        else if (cards.length === 0) throw new UsageError(`${formatUsbSelector(sel)}: no card in any of the reader's ${maxLun + 1} slots`);
        else {
          throw new UsageError(
            `${formatUsbSelector(sel)} is ambiguous, the reader holds ${cards.length} cards:\n  ${cards.map((s) => describeCard({ device: d, slot: s, selector: slotSelector(d, s.lun) })).join('\n  ')}\nadd @lun=N to pick one`,
          );
        }
      }
    }
  } catch (e) {
    await t.close().catch(() => undefined);
    throw e;
  }
  return openOn(t, d, lun, quirks, opts);
}

async function openOn(t: UsbTransport, d: UsbDeviceInfo, lun: number, quirks: ReaderQuirks, opts: UsbOpenOptions): Promise<UsbBlockDevice> {
  const name = slotSelector(d, lun);
  const hinter = opts.onHint ? new QuirkHinter(d, quirks, opts.onHint) : undefined;
  const onEvent: UsbBlockDeviceOptions['onEvent'] = hinter
    ? (e) => {
        opts.onEvent?.(e);
        hinter.onEvent(e);
      }
    : opts.onEvent;
  let dev: UsbBlockDevice;
  try {
    dev = await UsbBlockDevice.open(t, {
      lun,
      quirks,
      readOnly: !opts.write,
      name,
      bot: opts.bot,
      scsi: opts.scsi,
      onEvent,
      signal: opts.signal,
      maxTransferBytes: opts.maxTransferBytes,
    });
  } catch (e) {
    // UsbBlockDevice.open has closed the transport.
    if (e instanceof NoMediumError) throw new IoError(`${name}: no card in the slot`, { cause: e });
    throw e;
  }
  if (opts.write && dev.state.writeProtected) {
    await dev.close();
    throw new WriteProtectedError(`${name}: the card is write-protected (lock switch or read-only medium); refusing to open it for writing`);
  }
  return dev;
}

/**
 * Opens slot `lun` of reader `d` (found by listing `host`): refused when its kernel disks are
 * mounted, with the reader's quirk profile, closed again on every failure.
 */
export async function openUsbSlot(host: UsbHost, d: UsbDeviceInfo, lun: number, profiles: readonly ReaderProfile[], opts: UsbOpenOptions): Promise<UsbBlockDevice> {
  assertNotMounted(d, opts.sysfs);
  const t = await host.open(d);
  return openOn(t, d, lun, quirksOf(d, profiles), opts);
}

/** Probes every reader the selector matches and returns the cards, leaving nothing open. */
export async function findCards(sel: UsbSelector, opts: UsbOpenOptions = {}): Promise<FoundCard[]> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const found = await probeAll(sel, host, await host.list(), profiles, opts);
  await Promise.allSettled(found.map((f) => f.transport.close()));
  return found.flatMap((f) => f.cards);
}

interface Probed {
  device: UsbDeviceInfo;
  transport: UsbTransport;
  quirks: ReaderQuirks;
  cards: FoundCard[];
}

async function probeAll(sel: UsbSelector, host: UsbHost, devices: UsbDeviceInfo[], profiles: readonly ReaderProfile[], opts: UsbOpenOptions): Promise<Probed[]> {
  const out: Probed[] = [];
  try {
    for (const d of matchUsbSelector(sel, devices)) {
      assertNotMounted(d, opts.sysfs);
      const quirks = quirksOf(d, profiles);
      const transport = await host.open(d);
      const entry: Probed = { device: d, transport, quirks, cards: [] };
      out.push(entry);
      const slots = await probeSlots(transport, { quirks, bot: opts.bot, scsi: opts.scsi, signal: opts.signal, luns: sel.lun === undefined ? undefined : [sel.lun] });
      entry.cards = slots.filter((s) => s.present).map((s) => ({ device: d, slot: s, selector: slotSelector(d, s.lun) }));
    }
  } catch (e) {
    await Promise.allSettled(out.map((f) => f.transport.close()));
    throw e;
  }
  return out;
}

async function openOnlyCard(sel: UsbSelector, host: UsbHost, devices: UsbDeviceInfo[], profiles: readonly ReaderProfile[], opts: UsbOpenOptions): Promise<UsbBlockDevice> {
  const readers = matchUsbSelector(sel, devices);
  if (readers.length === 0) throw new UsageError(`${formatUsbSelector(sel)}: no USB mass-storage reader found`);
  const probed = await probeAll(sel, host, devices, profiles, opts);
  const cards = probed.flatMap((p) => p.cards);
  const keep = cards.length === 1 ? probed.find((p) => p.cards.length === 1) : undefined;
  await Promise.allSettled(probed.filter((p) => p !== keep).map((p) => p.transport.close()));
  if (!keep) {
    if (cards.length === 0) {
      throw new UsageError(
        `${formatUsbSelector(sel)}: no card in any reader; readers present:\n  ${readers.map((d) => `usb:${d.portPath}  ${hex4(d.vendorId)}:${hex4(d.productId)}  ${[d.manufacturer, d.product].filter(Boolean).join(' ')}`).join('\n  ')}`,
      );
    }
    throw new UsageError(`${formatUsbSelector(sel)} is ambiguous, ${cards.length} cards are present:\n  ${cards.map(describeCard).join('\n  ')}\nname one with its selector`);
  }
  return openOn(keep.transport, keep.device, keep.cards[0].slot.lun, keep.quirks, opts);
}
