/**
 * Whether a USB device is a reader seen before: after an unplug or a reset it comes back under a
 * new bus address, on the same port path or — recognised by its serial number — on another port.
 */
import type { ReconnectMatch } from '../blockdev/reconnect.js';
import type { UsbDeviceInfo } from '../usb/transport.js';

/**
 * How `d` relates to reader `was`: the same reader on its port (`port`), the same reader by serial on
 * another port (`serial`), or another device (undefined). Both need the same VID:PID; a reader with a
 * serial number matches only a device with the same one, even on its own port.
 */
export function matchReader(was: UsbDeviceInfo, d: UsbDeviceInfo): ReconnectMatch | undefined {
  if (d.vendorId !== was.vendorId || d.productId !== was.productId) return undefined;
  if (was.serial) {
    if (d.serial !== was.serial) return undefined;
    return d.portPath === was.portPath ? 'port' : 'serial';
  }
  return d.portPath === was.portPath ? 'port' : undefined;
}
