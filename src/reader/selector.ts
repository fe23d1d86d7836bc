/**
 * `usb:` device selectors:
 *   usb                      the only reader (the CLI narrows to "the only card" by probing)
 *   usb:1-1.4                physical port path (stable on a bench)
 *   usb:058f:6387            VID:PID (hex)
 *   usb:serial=XYZ           USB serial number
 * each optionally followed by `@lun=N` (slot of a multi-slot reader, 0..15).
 */
import { UsageError } from '../errors.js';
import { botInterfaceOf, hex4, type UsbDeviceInfo } from '../usb/transport.js';

export type UsbSelector =
  | { kind: 'any'; lun?: number }
  | { kind: 'port'; portPath: string; lun?: number }
  | { kind: 'id'; vendorId: number; productId: number; lun?: number }
  | { kind: 'serial'; serial: string; lun?: number };

const FORMS = 'usb, usb:PORT (e.g. usb:1-1.4), usb:VID:PID (e.g. usb:058f:6387), usb:serial=SERIAL, each optionally with @lun=N';

/** True when the string is meant as a USB selector (starts with `usb` followed by end, `:` or `@`). */
export function isUsbSelector(s: string): boolean {
  return /^usb($|[:@])/i.test(s);
}

export function parseUsbSelector(input: string): UsbSelector {
  const s = input.trim();
  if (!isUsbSelector(s)) throw new UsageError(`not a USB device selector: ${JSON.stringify(input)} (forms: ${FORMS})`);
  let body = s.slice(3);
  let lun: number | undefined;
  const suffix = /@lun=([^@]*)$/i.exec(body);
  if (suffix) {
    if (!/^\d{1,2}$/.test(suffix[1])) throw new UsageError(`bad LUN suffix in ${JSON.stringify(input)}: expected @lun=N with N in 0..15`);
    lun = Number(suffix[1]);
    if (lun > 15) throw new UsageError(`LUN ${lun} in ${JSON.stringify(input)} is out of range 0..15`);
    body = body.slice(0, suffix.index);
  }
  const withLun = <T extends object>(o: T) => (lun === undefined ? o : { ...o, lun });
  if (body === '') return withLun({ kind: 'any' as const });
  if (body[0] !== ':') throw new UsageError(`cannot parse USB selector ${JSON.stringify(input)} (forms: ${FORMS})`);
  body = body.slice(1);
  const serial = /^serial=(.+)$/i.exec(body);
  if (serial) return withLun({ kind: 'serial' as const, serial: serial[1] });
  if (/^\d{1,3}-\d{1,3}(\.\d{1,3})*$/.test(body)) return withLun({ kind: 'port' as const, portPath: body });
  const id = /^([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(body);
  if (id) return withLun({ kind: 'id' as const, vendorId: parseInt(id[1], 16), productId: parseInt(id[2], 16) });
  throw new UsageError(`cannot parse USB selector ${JSON.stringify(input)} (forms: ${FORMS})`);
}

export function formatUsbSelector(sel: UsbSelector): string {
  const lun = sel.lun === undefined ? '' : `@lun=${sel.lun}`;
  switch (sel.kind) {
    case 'any':
      return `usb${lun}`;
    case 'port':
      return `usb:${sel.portPath}${lun}`;
    case 'id':
      return `usb:${hex4(sel.vendorId)}:${hex4(sel.productId)}${lun}`;
    case 'serial':
      return `usb:serial=${sel.serial}${lun}`;
  }
}

/** The devices a selector matches, among those with a usable mass-storage interface. */
export function matchUsbSelector(sel: UsbSelector, devices: readonly UsbDeviceInfo[], accept: (d: UsbDeviceInfo) => boolean = isReader): UsbDeviceInfo[] {
  return devices.filter((d) => {
    if (!accept(d)) return false;
    switch (sel.kind) {
      case 'any':
        return true;
      case 'port':
        return d.portPath === sel.portPath;
      case 'id':
        return d.vendorId === sel.vendorId && d.productId === sel.productId;
      case 'serial':
        return d.serial === sel.serial;
    }
  });
}

/** The devices a selector names by default: those with a mass-storage interface crashcart can use. */
function isReader(d: UsbDeviceInfo): boolean {
  return botInterfaceOf(d) !== undefined;
}

function describeCandidate(d: UsbDeviceInfo): string {
  const name = [d.manufacturer, d.product].filter(Boolean).join(' ') || 'USB mass storage';
  return `usb:${d.portPath}  ${hex4(d.vendorId)}:${hex4(d.productId)}  ${name}${d.serial ? `  serial=${d.serial}` : ''}`;
}

/**
 * The one reader a selector names. No match and several matches are usage errors; the latter
 * lists the candidates with selectors that tell them apart.
 */
export function resolveUsbSelector(sel: UsbSelector, devices: readonly UsbDeviceInfo[], accept: (d: UsbDeviceInfo) => boolean = isReader): UsbDeviceInfo {
  const found = matchUsbSelector(sel, devices, accept);
  if (found.length === 1) return found[0];
  const text = formatUsbSelector(sel);
  if (found.length === 0) {
    const readers = devices.filter(accept);
    throw new UsageError(
      readers.length === 0 ? `${text}: no USB mass-storage reader found` : `${text}: no such reader; present:\n  ${readers.map(describeCandidate).join('\n  ')}`,
    );
  }
  throw new UsageError(`${text} is ambiguous, ${found.length} readers match:\n  ${found.map(describeCandidate).join('\n  ')}\nuse a port path (usb:PORT) to pick one`);
}
