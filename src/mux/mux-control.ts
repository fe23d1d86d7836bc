/**
 * `crashcart mux`: finds an SD multiplexer by its USB selector, claims its mass-storage
 * interface (as every crashcart command does: no kernel `sg` device, usb-storage detached while
 * crashcart holds it and re-attached afterwards), tells the generation from the SCSI INQUIRY
 * product string and switches the card or reports where it is.
 *
 * A device counts as a USB-SD-Mux when a reader profile says so (`"mux": "usb-sd-mux"`, matched by
 * VID:PID) or its INQUIRY names a known generation. The bare `usb` selector means "the only mux".
 * A mux whose card has a mounted partition is refused (switching cuts the card's power, and claiming
 * the interface takes the disk from the kernel), as for every command that takes a reader.
 */
import { UsageError } from '../errors.js';
import { BotDriver, type BotOptions } from '../usb/bot.js';
import { ScsiLun, type ScsiOptions } from '../scsi/scsi-lun.js';
import { usb2642I2cBus } from '../scsi/usb2642.js';
import { assertNotMounted } from '../reader/open-usb.js';
import { loadReaderProfiles, quirksFor, type ReaderProfile } from '../reader/reader-profiles.js';
import { formatUsbSelector, matchUsbSelector, parseUsbSelector, resolveUsbSelector } from '../reader/selector.js';
import type { SysfsOptions } from '../reader/sysfs.js';
import { hex4, type UsbDeviceInfo, type UsbHost } from '../usb/transport.js';
import { usbSdMuxVariantOf, UsbSdMux, type MuxMode, type UsbSdMuxVariant } from './usb-sd-mux.js';

export interface MuxControlOptions {
  host?: UsbHost;
  profiles?: readonly ReaderProfile[];
  /** Overrides the generation read from INQUIRY. */
  variant?: UsbSdMuxVariant;
  /** Pause with the card off before switching it on (default 1000 ms, as usbsdmux). */
  offSettleMs?: number;
  bot?: Omit<BotOptions, 'onEvent'>;
  scsi?: Omit<ScsiOptions, 'onEvent'>;
  sysfs?: SysfsOptions;
  signal?: AbortSignal;
}

export interface MuxReport {
  /** `usb:1-1.2`. */
  selector: string;
  /** `0424:4041`. */
  id: string;
  serial?: string;
  variant: UsbSdMuxVariant;
  /** GPIO expander and its I²C address. */
  expander: { name: string; address: number };
  /** Where the card is now: after a switch the mode switched to, after `status` the one read. */
  mode: MuxMode;
  /** The expander's input port, when it was read (`status`). */
  pins?: number;
}

function isMuxByProfile(d: UsbDeviceInfo, profiles: readonly ReaderProfile[]): boolean {
  return quirksFor(profiles, d.vendorId, d.productId, d.revision).matched.some((p) => p.mux === 'usb-sd-mux');
}

function describe(d: UsbDeviceInfo): string {
  return `usb:${d.portPath}  ${hex4(d.vendorId)}:${hex4(d.productId)}  ${[d.manufacturer, d.product].filter(Boolean).join(' ')}${d.serial ? `  serial=${d.serial}` : ''}`;
}

/** The one device a mux selector names (`usb` alone: the only USB-SD-Mux a profile recognises). */
function resolveMux(spec: string, devices: UsbDeviceInfo[], profiles: readonly ReaderProfile[]): UsbDeviceInfo {
  const sel = parseUsbSelector(spec);
  if (sel.lun !== undefined) throw new UsageError(`${spec}: a mux has no slots to choose; leave out @lun=`);
  if (sel.kind !== 'any') return resolveUsbSelector(sel, devices);
  const muxes = matchUsbSelector(sel, devices).filter((d) => isMuxByProfile(d, profiles));
  if (muxes.length === 1) return muxes[0];
  if (muxes.length === 0) throw new UsageError(`${formatUsbSelector(sel)}: no USB-SD-Mux found (name one with usb:PORT or usb:serial=…)`);
  throw new UsageError(`${formatUsbSelector(sel)} is ambiguous, ${muxes.length} USB-SD-Muxes are present:\n  ${muxes.map(describe).join('\n  ')}\nname one with its selector`);
}

/**
 * Runs `action` on the mux `spec` names: `status` reads the card's position, a mode switches it
 * (the usbsdmux sequence, including the pause with the card off).
 */
export async function controlMux(spec: string, action: MuxMode | 'status', opts: MuxControlOptions = {}): Promise<MuxReport> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const d = resolveMux(spec, await host.list(), profiles);
  assertNotMounted(d, opts.sysfs);
  const transport = await host.open(d);
  try {
    const lun = new ScsiLun(new BotDriver(transport, { ...opts.bot }), 0, { ...opts.scsi });
    const inquiry = await lun.inquiry(opts.signal);
    const variant = opts.variant ?? usbSdMuxVariantOf(inquiry.product) ?? (isMuxByProfile(d, profiles) ? undefined : null);
    if (variant === null) {
      throw new UsageError(
        `usb:${d.portPath} (${hex4(d.vendorId)}:${hex4(d.productId)}, "${inquiry.vendor} ${inquiry.product}") is not a known SD mux; ` +
          'crashcart mux drives the USB-SD-Mux (classic and fast); --variant forces a generation',
      );
    }
    if (variant === undefined) {
      throw new UsageError(`usb:${d.portPath}: USB-SD-Mux of unknown generation (INQUIRY product "${inquiry.product}"); name it with --variant classic|fast`);
    }
    const mux = new UsbSdMux(usb2642I2cBus(lun), variant, { offSettleMs: opts.offSettleMs, signal: opts.signal });
    const base = { selector: `usb:${d.portPath}`, id: `${hex4(d.vendorId)}:${hex4(d.productId)}`, ...(d.serial ? { serial: d.serial } : {}), variant, expander: mux.expander };
    if (action === 'status') return { ...base, ...(await mux.status()) };
    await mux.switchTo(action);
    return { ...base, mode: action };
  } finally {
    await transport.close();
  }
}
