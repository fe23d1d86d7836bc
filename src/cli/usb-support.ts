/**
 * USB reader support for the command line, loaded by main.ts for its side effects: `usb:`
 * devices open through `openDevice` in every command, and on Ctrl-C / SIGTERM the readers
 * crashcart holds are released and handed back to their kernel driver before the process
 * exits. Commands close their devices on normal ends and on errors themselves.
 */
import { closeUsbTransportsOnSignals, registerUsbDeviceOpener } from '../usb/register.js';

registerUsbDeviceOpener();
closeUsbTransportsOnSignals();
