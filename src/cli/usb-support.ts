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

// Readers that misbehave in a way a reader profile would cover get a warning naming the quirk.
registerUsbDeviceOpener({ onHint: (h) => diag('warning', h.message, { hint: h.quirk, reader: h.reader, revision: h.revision }) });
registerExitCleanup(async (reason: StopReason) => {
  if (openUsbTransportCount() === 0) return;
  if (reason !== 'EPIPE')
    diag('warning', `${reason === 'SIGINT' ? 'interrupted' : reason === 'SIGTERM' ? 'terminated' : 'hung up'}; handing the USB reader back to the kernel driver`);
  await closeAllUsbTransports();
});
