/**
 * Makes `usb:` device specs work everywhere a device is opened (`openDevice`), and hands
 * readers back to the kernel when the process is interrupted.
 */
import { registerDeviceOpener } from '../blockdev/open-device.js';
import { closeAllUsbTransports, openUsbTransportCount } from './node-usb-transport.js';
import { openUsbDevice, type UsbOpenOptions } from './open-usb.js';

/** Registers the `usb:` opener with `openDevice`; `defaults` apply to every open. */
export function registerUsbDeviceOpener(defaults: Omit<UsbOpenOptions, 'write'> = {}): void {
  registerDeviceOpener('usb:', (spec, o) => openUsbDevice(spec, { ...defaults, write: o.write === true }));
}

let signalsInstalled = false;
/** Upper bound for handing readers back after a signal (in-flight transfers finish or time out first). */
const CLOSE_ON_SIGNAL_LIMIT_MS = 25_000;

/**
 * On SIGINT/SIGTERM: release every claimed reader and re-attach the kernel drivers that were
 * detached, then exit with 128 + signal number (130, 143). A second signal exits at once.
 * Without open readers the process exits straight away, as it would without the handler.
 * For library users: the crashcart command line does not install it; its signals (also
 * SIGHUP) go through src/cli/cancellation.ts, which stops a running flash/read at a safe point
 * and uses closeAllUsbTransports() for the readers still held.
 */
export function closeUsbTransportsOnSignals(opts: { log?: (line: string) => void } = {}): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let closing = false;
  const handler = (sig: NodeJS.Signals): void => {
    const code = sig === 'SIGINT' ? 130 : 143;
    if (closing || openUsbTransportCount() === 0) process.exit(code);
    closing = true;
    log(`crashcart: ${sig === 'SIGINT' ? 'interrupted' : 'terminated'}; handing the USB reader back to the kernel driver`);
    const limit = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_ON_SIGNAL_LIMIT_MS).unref());
    void Promise.race([closeAllUsbTransports(), limit]).finally(() => process.exit(code));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
