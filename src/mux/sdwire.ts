/**
 * The SDWire / SDWireC (Tizen / Badgerd): an FTDI FT200XD whose CBUS0 pin drives the SD switch
 * between the test server (TS: the card reader on the same hub) and the device under test. The
 * chip is put in CBUS bit-bang mode by the vendor request SIO_SET_BITMODE (bRequest 0Bh) whose
 * wValue carries the mode (20h, CBUS) in its high byte and, in its low byte, the pin directions
 * (high nibble, 1 = output) and levels (low nibble). Both reference tools send the same byte:
 *  - Tizen's sd-mux-ctrl (libftdi): `ftdi_set_bitmode(ftdi, 0xF0 | (target == TS), BITMODE_CBUS)`,
 *  - Badgerd's sdwire-cli (pyftdi): `set_bitmode(0xF0 | target, Ftdi.BitMode.CBUS)`, target 1 = TS;
 * so TS (host) is 20F1h and DUT 20F0h, to wIndex 1 (the FT200XD's only port, interface A), request
 * type 40h (vendor, device, OUT), no data.
 * `status` is sd-mux-ctrl's `--status`: SIO_READ_PINS (0Ch, type C0h, wValue 0, wIndex 1, one byte),
 * CBUS0 high ⇒ TS. The SDWire switches the data lines only; the card keeps its supply and there is
 * no "off" position.
 */
import { IoError, UsageError } from '../errors.js';
import type { ControlSetup, UsbControlTransport } from '../usb/transport.js';
import type { MuxMode } from './usb-sd-mux.js';

/** FTDI vendor requests (libftdi's ftdi.h names). */
export const SIO_SET_BITMODE_REQUEST = 0x0b;
export const SIO_READ_PINS_REQUEST = 0x0c;
/** Bit mode in the high byte of SIO_SET_BITMODE's wValue. */
export const BITMODE_CBUS = 0x20;
/** The FT200XD's one port: interface A, wIndex 1. */
export const FTDI_INTERFACE_A = 1;
/** CBUS0: high = card to the test server (the reader), low = card to the DUT. */
export const SDWIRE_CBUS_TS = 0x01;
/** CBUS0..3 as outputs (the high nibble of the pin byte). */
const CBUS_ALL_OUTPUTS = 0xf0;

/** The wValue of SIO_SET_BITMODE that puts the card at `mode` (20F1h host, 20F0h DUT). */
export function sdwireBitmodeValue(mode: 'host' | 'dut'): number {
  return (BITMODE_CBUS << 8) | CBUS_ALL_OUTPUTS | (mode === 'host' ? SDWIRE_CBUS_TS : 0);
}

export interface SdWireState {
  mode: 'host' | 'dut';
  /** The byte SIO_READ_PINS returned (CBUS pin levels in the low nibble). */
  pins: number;
}

export interface SdWireOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** `mux off` on an SDWire: a usage error (exit 2), before anything is sent. */
export function sdwireHasNoOff(portPath: string): UsageError {
  return new UsageError(`usb:${portPath}: an SDWire has no off position (it switches the card's data lines between host and DUT; the card stays powered); use host or dut`);
}

const setup = (request: number, value: number): ControlSetup => ({ requestType: 'vendor', recipient: 'device', request, value, index: FTDI_INTERFACE_A });

/** Drives one SDWire through its FTDI chip's claimed interface. */
export class SdWire {
  private readonly ctl: UsbControlTransport;
  private readonly timeoutMs: number;
  private readonly signal?: AbortSignal;

  constructor(ctl: UsbControlTransport, opts: SdWireOptions = {}) {
    this.ctl = ctl;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.signal = opts.signal;
  }

  async switchTo(mode: MuxMode): Promise<void> {
    if (mode === 'off') throw sdwireHasNoOff(this.ctl.device.portPath);
    await this.ctl.controlOut(setup(SIO_SET_BITMODE_REQUEST, sdwireBitmodeValue(mode)), undefined, { timeoutMs: this.timeoutMs, signal: this.signal });
  }

  async status(): Promise<SdWireState> {
    const r = await this.ctl.controlIn(setup(SIO_READ_PINS_REQUEST, 0), 1, { timeoutMs: this.timeoutMs, signal: this.signal });
    if (r.length !== 1) throw new IoError(`usb:${this.ctl.device.portPath}: SIO_READ_PINS returned ${r.length} bytes instead of 1; is this an FTDI chip?`);
    return { mode: r[0] & SDWIRE_CBUS_TS ? 'host' : 'dut', pins: r[0] };
  }
}
