/**
 * `crashcart mux`: finds an SD multiplexer by its USB selector and switches the card or reports
 * where it is. Two kinds:
 *  - the USB-SD-Mux: its mass-storage interface is claimed (as every crashcart command does: no
 *    kernel `sg` device, usb-storage detached while crashcart holds it and re-attached afterwards),
 *    the generation told from the SCSI INQUIRY product string, the GPIO expander driven over I²C;
 *  - the SDWire / SDWireC: an FTDI chip beside a card reader on one hub; the FTDI interface is
 *    claimed (ftdi_sio detached and re-attached) for its vendor control requests, and the reader is
 *    the mass-storage device on the same hub (`reader` in the report: the card the mux switches).
 *
 * A device counts as a USB-SD-Mux when a reader profile says so (`"mux": "usb-sd-mux"`, matched by
 * VID:PID) or its INQUIRY names a known generation; as an SDWire when its USB product string is
 * `sd-wire` (what sdwire-cli and sd-mux-ctrl look for; the VID:PID, 04e8:6001 as sd-mux-ctrl
 * programs it, is shared with Tizen's other muxes, told apart by the same string). The bare `usb`
 * selector means "the only mux". A mux whose card has a mounted partition is refused (switching
 * takes the card away), as for every command that takes a reader.
 */
import { UsageError } from '../errors.js';
import { BotDriver, type BotOptions } from '../usb/bot.js';
import { ScsiLun, type ScsiOptions } from '../scsi/scsi-lun.js';
import { usb2642I2cBus } from '../scsi/usb2642.js';
import { assertNotMounted } from '../reader/open-usb.js';
import { loadReaderProfiles, quirksFor, type ReaderProfile } from '../reader/reader-profiles.js';
import { formatUsbSelector, matchUsbSelector, parseUsbSelector, resolveUsbSelector } from '../reader/selector.js';
import type { SysfsOptions } from '../reader/sysfs.js';
import { botInterfaceOf, hex4, parentPortPath, type UsbDeviceInfo, type UsbHost } from '../usb/transport.js';
import { SdWire, sdwireHasNoOff } from './sdwire.js';
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
  /** USB-SD-Mux generation, or `sdwire`. */
  variant: UsbSdMuxVariant | 'sdwire';
  /** USB-SD-Mux: the GPIO expander and its I²C address. */
  expander?: { name: string; address: number };
  /** SDWire: the card reader on the same hub, when exactly one is there (`usb:1-1.4.2`). */
  reader?: string;
  /** Where the card is now: after a switch the mode switched to, after `status` the one read. */
  mode: MuxMode;
  /** `status`: the expander's input port (USB-SD-Mux) or the FTDI's CBUS pins (SDWire). */
  pins?: number;
}

/** The USB product string an SDWire's FTDI EEPROM holds (sdwire-cli, sd-mux-ctrl `--device-type sd-wire`). */
export const SDWIRE_PRODUCT = 'sd-wire';
/** Product strings sd-mux-ctrl gives Tizen's other FTDI boards on the same VID:PID. */
const OTHER_TIZEN_PRODUCTS: Record<string, string> = {
  'sd-mux': "Tizen's SD-MUX (FT232RL in asynchronous bit-bang mode with a power relay) is not supported; use sd-mux-ctrl",
  'usb-mux': "Tizen's USB-MUX switches a USB port, not an SD card",
};

type MuxKind = 'usb-sd-mux' | 'sdwire';

function muxKindByProfile(d: UsbDeviceInfo, profiles: readonly ReaderProfile[]): MuxKind | undefined {
  if (d.product === SDWIRE_PRODUCT) return 'sdwire';
  return quirksFor(profiles, d.vendorId, d.productId, d.revision).matched.find((p) => p.mux)?.mux;
}

function isMuxByProfile(d: UsbDeviceInfo, profiles: readonly ReaderProfile[]): boolean {
  return muxKindByProfile(d, profiles) !== undefined;
}

/**
 * The card reader an SDWire switches: a mass-storage device on the same hub as its FTDI chip (or
 * the FTDI's own device, should one device carry both interfaces). Undefined when there is none
 * or more than one.
 */
export function readerBesideMux(mux: UsbDeviceInfo, devices: readonly UsbDeviceInfo[]): UsbDeviceInfo | undefined {
  const hub = parentPortPath(mux);
  const found = devices.filter((d) => d.bus === mux.bus && botInterfaceOf(d) && (d.portPath === mux.portPath || parentPortPath(d) === hub));
  return found.length === 1 ? found[0] : undefined;
}

function describe(d: UsbDeviceInfo): string {
  return `usb:${d.portPath}  ${hex4(d.vendorId)}:${hex4(d.productId)}  ${[d.manufacturer, d.product].filter(Boolean).join(' ')}${d.serial ? `  serial=${d.serial}` : ''}`;
}

/** The one device a mux selector names (`usb` alone: the only SD mux a profile or the `sd-wire` product string recognises). */
function resolveMux(spec: string, devices: UsbDeviceInfo[], profiles: readonly ReaderProfile[]): UsbDeviceInfo {
  const sel = parseUsbSelector(spec);
  if (sel.lun !== undefined) throw new UsageError(`${spec}: a mux has no slots to choose; leave out @lun=`);
  // readers (a USB-SD-Mux is one) and the FTDI chips of SDWires
  const candidate = (d: UsbDeviceInfo) => botInterfaceOf(d) !== undefined || isMuxByProfile(d, profiles);
  if (sel.kind !== 'any') return resolveUsbSelector(sel, devices, candidate);
  const muxes = matchUsbSelector(sel, devices, candidate).filter((d) => isMuxByProfile(d, profiles));
  if (muxes.length === 1) return muxes[0];
  if (muxes.length === 0) throw new UsageError(`${formatUsbSelector(sel)}: no SD mux (USB-SD-Mux, SDWire) found (name one with usb:PORT or usb:serial=…)`);
  throw new UsageError(`${formatUsbSelector(sel)} is ambiguous, ${muxes.length} SD muxes are present:\n  ${muxes.map(describe).join('\n  ')}\nname one with its selector`);
}

/**
 * Runs `action` on the mux `spec` names: `status` reads the card's position, a mode switches it
 * (the usbsdmux sequence, including the pause with the card off).
 */
export async function controlMux(spec: string, action: MuxMode | 'status', opts: MuxControlOptions = {}): Promise<MuxReport> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const devices = await host.list();
  const d = resolveMux(spec, devices, profiles);
  if (muxKindByProfile(d, profiles) === 'sdwire' || (d.product && OTHER_TIZEN_PRODUCTS[d.product])) return controlSdWire(host, d, devices, action, opts);
  assertNotMounted(d, opts.sysfs);
  const transport = await host.open(d);
  try {
    const lun = new ScsiLun(new BotDriver(transport, { ...opts.bot }), 0, { ...opts.scsi });
    const inquiry = await lun.inquiry(opts.signal);
    const variant = opts.variant ?? usbSdMuxVariantOf(inquiry.product) ?? (isMuxByProfile(d, profiles) ? undefined : null);
    if (variant === null) {
      throw new UsageError(
        `usb:${d.portPath} (${hex4(d.vendorId)}:${hex4(d.productId)}, "${inquiry.vendor} ${inquiry.product}") is not a known SD mux; ` +
          'crashcart mux drives the USB-SD-Mux (classic and fast) and the SDWire; --variant forces a USB-SD-Mux generation',
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

/** The SDWire path: the FTDI's interface 0 claimed for two vendor requests, the reader found beside it. */
async function controlSdWire(host: UsbHost, d: UsbDeviceInfo, devices: UsbDeviceInfo[], action: MuxMode | 'status', opts: MuxControlOptions): Promise<MuxReport> {
  if (d.product !== SDWIRE_PRODUCT) {
    const other = d.product ? OTHER_TIZEN_PRODUCTS[d.product] : undefined;
    throw new UsageError(
      `usb:${d.portPath} (${hex4(d.vendorId)}:${hex4(d.productId)}, product ${JSON.stringify(d.product ?? '')}): ` +
        (other ?? `not an SDWire: its USB product string is not "${SDWIRE_PRODUCT}" (sd-mux-ctrl --device-type sd-wire writes it)`),
    );
  }
  if (opts.variant !== undefined) throw new UsageError(`usb:${d.portPath} is an SDWire; --variant applies to the USB-SD-Mux only`);
  if (action === 'off') throw sdwireHasNoOff(d.portPath);
  const reader = readerBesideMux(d, devices);
  // switching to the DUT takes the card from this machine: refused while one of its partitions is mounted
  if (reader && action !== 'status') assertNotMounted(reader, opts.sysfs);
  const ctl = await host.openControl(d, 0);
  try {
    const mux = new SdWire(ctl, { signal: opts.signal });
    const base = {
      selector: `usb:${d.portPath}`,
      id: `${hex4(d.vendorId)}:${hex4(d.productId)}`,
      ...(d.serial ? { serial: d.serial } : {}),
      variant: 'sdwire' as const,
      ...(reader ? { reader: `usb:${reader.portPath}` } : {}),
    };
    if (action === 'status') return { ...base, ...(await mux.status()) };
    await mux.switchTo(action);
    return { ...base, mode: action };
  } finally {
    await ctl.close();
  }
}
