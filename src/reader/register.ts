/**
 * Makes `usb:` device specs work everywhere a device is opened (`openDevice`).
 *
 * Signals are not handled here: the command line's one cancellation path
 * (src/cli/cancellation.ts) stops a running flash/read at a safe point, which closes its
 * device, and otherwise hands every claimed reader back to the kernel with
 * closeAllUsbTransports() (node-usb-transport.ts) before it exits.
 */
import { registerDeviceOpener } from '../blockdev/open-device.js';
import type { UsbOpenOptions } from './open-usb.js';

/**
 * Registers the `usb:` opener with `openDevice`; `defaults` apply to every open. An open with a
 * `reconnect` timeout above 0 gives a device that waits for its reader to come back.
 */
export function registerUsbDeviceOpener(defaults: Omit<UsbOpenOptions, 'write'> & { reconnectPollMs?: number } = {}): void {
  const { reconnectPollMs, ...base } = defaults;
  // The USB stack (open-usb.js, reconnecting-device.js and what they import) is loaded when a usb:
  // device is first opened: every command registers this opener, most open image files.
  registerDeviceOpener('usb:', async (spec, o) => {
    const opts: UsbOpenOptions = { ...base, write: o.write === true, ...(o.maxTransferBytes !== undefined ? { maxTransferBytes: o.maxTransferBytes } : {}) };
    if (o.reconnect && o.reconnect.timeoutMs > 0) {
      const { openReconnectingUsbDevice } = await import('./reconnecting-device.js');
      return openReconnectingUsbDevice(spec, { ...opts, reconnect: o.reconnect, ...(reconnectPollMs !== undefined ? { pollMs: reconnectPollMs } : {}) });
    }
    const { openUsbDevice } = await import('./open-usb.js');
    return openUsbDevice(spec, opts);
  });
}
