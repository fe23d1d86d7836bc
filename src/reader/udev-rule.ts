/**
 * udev rules that let a non-root user drive card readers with crashcart. Linux needs nothing
 * but read/write access to the reader's /dev/bus/usb/BBB/DDD node: detaching usb-storage
 * through usbfs (USBDEVFS_DISCONNECT_CLAIM) has no capability check.
 */
import { hex4, MSC_CLASS, MSC_PROTOCOL_BOT, MSC_SUBCLASS_SCSI } from '../usb/transport.js';

export const UDEV_RULE_FILE = '/etc/udev/rules.d/70-crashcart.rules';

export interface UdevRuleReader {
  vendorId: number;
  productId: number;
  /** For the comment above the line. */
  name?: string;
}

export interface UdevRuleOptions {
  /** Group given access. Default plugdev. */
  group?: string;
  /** File mode. Default 0660. */
  mode?: string;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/**
 * One rule line per VID:PID (duplicates dropped); with no readers, one generic rule matching
 * every USB device with a mass-storage Bulk-Only/SCSI interface (class 08h/06h/50h).
 */
export function udevRules(readers: readonly UdevRuleReader[], opts: UdevRuleOptions = {}): string {
  const group = opts.group ?? 'plugdev';
  const mode = opts.mode ?? '0660';
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(group)) throw new RangeError(`not a valid group name: ${group}`);
  if (!/^0?[0-7]{3}$/.test(mode)) throw new RangeError(`not a valid file mode: ${mode}`);
  const access = `MODE="${mode.padStart(4, '0')}", GROUP="${group}", TAG+="uaccess"`;
  const lines = [
    `# ${UDEV_RULE_FILE}: read/write access for crashcart to USB card readers.`,
    `# Install: sudo tee ${UDEV_RULE_FILE} < this-file`,
    '#          sudo udevadm control --reload && sudo udevadm trigger --subsystem-match=usb',
    `#          (and be in group ${group}: sudo usermod -aG ${group} $USER, then log in again)`,
  ];
  const seen = new Set<string>();
  for (const r of readers) {
    const id = `${hex4(r.vendorId)}:${hex4(r.productId)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    lines.push(`# ${id}${r.name ? ` ${r.name.replace(/[\r\n]+/g, ' ')}` : ''}`);
    lines.push(`SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="${hex4(r.vendorId)}", ATTR{idProduct}=="${hex4(r.productId)}", ${access}`);
  }
  if (seen.size === 0) {
    const iface = `${hex2(MSC_CLASS)}${hex2(MSC_SUBCLASS_SCSI)}${hex2(MSC_PROTOCOL_BOT)}`;
    lines.push('# every USB device with a mass-storage Bulk-Only/SCSI interface (class 08h, subclass 06h, protocol 50h)');
    lines.push(`SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", IMPORT{builtin}="usb_id", ENV{ID_USB_INTERFACES}=="*:${iface}:*", ${access}`);
  }
  return lines.join('\n') + '\n';
}
