/**
 * Makes `usb:` device specs work everywhere a device is opened (`openDevice`).
 *
 * Signals are not handled here: the command line's one cancellation path
 * (src/cli/cancellation.ts) stops a running flash/read at a safe point, which closes its
 * device, and otherwise hands every claimed reader back to the kernel with
 * closeAllUsbTransports() (node-usb-transport.ts) before it exits.
 */
import { registerDeviceOpener } from '../blockdev/open-device.js';
import { openUsbDevice, type UsbOpenOptions } from './open-usb.js';

/** Registers the `usb:` opener with `openDevice`; `defaults` apply to every open. */
export function registerUsbDeviceOpener(defaults: Omit<UsbOpenOptions, 'write'> = {}): void {
  registerDeviceOpener('usb:', (spec, o) =>
    openUsbDevice(spec, { ...defaults, write: o.write === true, ...(o.maxTransferBytes !== undefined ? { maxTransferBytes: o.maxTransferBytes } : {}) }),
  );
}
