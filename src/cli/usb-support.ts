/**
 * USB reader support for the command line, loaded for its side effects with every command that
 * runs (args/load-command.ts): `usb:` devices open through `openDevice` in every command. Signals go through the one cancellation
 * path (cancellation.ts): a running flash/read stops at a safe point and closes its device
 * itself; elsewhere, and on a forced quit, the readers crashcart still holds are released and
 * handed back to their kernel driver here before the process exits.
 */
import { registerUsbDeviceOpener } from '../reader/register.js';
import { closeAllUsbTransports, openUsbTransportCount } from '../usb/node-usb-transport.js';
import { registerExitCleanup, type StopReason } from './cancellation.js';
import { diag } from './diagnostics.js';

registerUsbDeviceOpener();
registerExitCleanup(async (reason: StopReason) => {
  if (openUsbTransportCount() === 0) return;
  if (reason !== 'EPIPE')
    diag('warning', `${reason === 'SIGINT' ? 'interrupted' : reason === 'SIGTERM' ? 'terminated' : 'hung up'}; handing the USB reader back to the kernel driver`);
  await closeAllUsbTransports();
});
