/**
 * The USB-SD-Mux (Pengutronix / Linux Automation): a Microchip USB2642 card reader whose micro-SD
 * card a GPIO expander on the USB2642's I²C bus switches between the host (the reader) and the
 * device under test. Four expander pins: data lines off, card power off, select DUT, card-detect
 * "removed" (to the host). The sequences are those of the usbsdmux tool:
 *  - off:    card power and data off, selector to the host, card-detect removed; pins driven;
 *            a pause while the card's supply drains (usbsdmux waits 1 s),
 *  - host:   off, then power and data on with the selector at the host and the card "inserted",
 *  - dut:    off, selector to the DUT while still off (no glitch), then power and data on,
 *  - status: the expander's input port: power off ⇒ off, select DUT ⇒ dut, else host.
 *
 * Two hardware generations:
 *  - classic (INQUIRY product "sdmux HS-SD/MMC"): NXP PCA9536 at 41h; whole registers are written
 *    (output 0Bh, then configuration F0h, as usbsdmux 0.2 does),
 *  - fast (INQUIRY product "sdFST HS-SD/MMC"): TI TCA6408 at 20h with other pin assignments and
 *    two user GPIOs on the same port, so the output register is read, modified and written back;
 *    an expander still at its power-on state (all inputs) first gets the DUT state its pull
 *    resistors define, driven, so switching on does not glitch the card.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { I2cBus } from '../scsi/usb2642.js';

export type MuxMode = 'host' | 'dut' | 'off';
export type UsbSdMuxVariant = 'classic' | 'fast';

export const MUX_MODES: readonly MuxMode[] = ['host', 'dut', 'off'];
export const USB_SD_MUX_VARIANTS: readonly UsbSdMuxVariant[] = ['classic', 'fast'];

/** Expander registers (PCA9536 and TCA6408 share the layout). */
const REG_INPUT = 0x00;
const REG_OUTPUT = 0x01;
const REG_CONFIGURATION = 0x03;

interface Layout {
  expander: string;
  address: number;
  dataOff: number;
  powerOff: number;
  selectDut: number;
  cardRemoved: number;
}

const LAYOUTS: Record<UsbSdMuxVariant, Layout> = {
  classic: { expander: 'PCA9536', address: 0x41, dataOff: 0x01, powerOff: 0x02, selectDut: 0x04, cardRemoved: 0x08 },
  fast: { expander: 'TCA6408', address: 0x20, dataOff: 0x04, powerOff: 0x02, selectDut: 0x01, cardRemoved: 0x08 },
};

/** SCSI INQUIRY product strings of the two generations (usbsdmux tells them apart the same way). */
const INQUIRY_PRODUCTS: Record<string, UsbSdMuxVariant> = {
  'sdmux HS-SD/MMC': 'classic',
  'sdFST HS-SD/MMC': 'fast',
};

/** The generation an INQUIRY product string names, if any. */
export function usbSdMuxVariantOf(inquiryProduct: string): UsbSdMuxVariant | undefined {
  return INQUIRY_PRODUCTS[inquiryProduct.trim()];
}

export interface MuxState {
  mode: MuxMode;
  /** The expander's input port as read. */
  pins: number;
}

export interface UsbSdMuxOptions {
  /** Pause after switching the card off before switching it on again. Default 1000 ms. */
  offSettleMs?: number;
  signal?: AbortSignal;
}

/** Drives one USB-SD-Mux through its USB2642 I²C bus. */
export class UsbSdMux {
  readonly variant: UsbSdMuxVariant;
  private readonly bus: I2cBus;
  private readonly l: Layout;
  private readonly offSettleMs: number;
  private readonly signal?: AbortSignal;
  private prepared = false;

  constructor(bus: I2cBus, variant: UsbSdMuxVariant, opts: UsbSdMuxOptions = {}) {
    this.bus = bus;
    this.variant = variant;
    this.l = LAYOUTS[variant];
    this.offSettleMs = opts.offSettleMs ?? 1_000;
    this.signal = opts.signal;
  }

  /** Name of the GPIO expander and its 7-bit I²C address, for messages. */
  get expander(): { name: string; address: number } {
    return { name: this.l.expander, address: this.l.address };
  }

  async status(): Promise<MuxState> {
    await this.prepare();
    const pins = await this.readRegister(REG_INPUT);
    const mode: MuxMode = pins & this.l.powerOff ? 'off' : pins & this.l.selectDut ? 'dut' : 'host';
    return { mode, pins };
  }

  async switchTo(mode: MuxMode): Promise<void> {
    await this.prepare();
    const { dataOff, powerOff, selectDut, cardRemoved } = this.l;
    await this.off();
    if (mode === 'host') await this.setOutputs(0);
    else if (mode === 'dut') {
      await this.setOutputs(dataOff | powerOff | selectDut | cardRemoved);
      await this.setOutputs(selectDut | cardRemoved);
    }
  }

  private async off(): Promise<void> {
    const { dataOff, powerOff, cardRemoved } = this.l;
    await this.setOutputs(dataOff | powerOff | cardRemoved);
    if (this.variant === 'classic') await this.writeRegister(REG_CONFIGURATION, 0xff & ~this.switchPins());
    if (this.offSettleMs > 0) await sleep(this.offSettleMs, undefined, { signal: this.signal });
  }

  /** Fast generation: an expander still at power-on defaults gets its pull-resistor state driven. */
  private async prepare(): Promise<void> {
    if (this.variant !== 'fast' || this.prepared) return;
    this.prepared = true;
    if ((await this.readRegister(REG_CONFIGURATION)) !== 0xff) return;
    const { selectDut, cardRemoved } = this.l;
    await this.writeRegister(REG_OUTPUT, selectDut | cardRemoved);
    // The four switch pins and the two user GPIOs become outputs.
    const config = await this.readRegister(REG_CONFIGURATION);
    await this.writeRegister(REG_CONFIGURATION, config & ~(this.switchPins() | 0x30) & 0xff);
  }

  private switchPins(): number {
    const { dataOff, powerOff, selectDut, cardRemoved } = this.l;
    return dataOff | powerOff | selectDut | cardRemoved;
  }

  /** Classic: the whole output register; fast: only the switch pins (read-modify-write). */
  private async setOutputs(value: number): Promise<void> {
    if (this.variant === 'classic') return this.writeRegister(REG_OUTPUT, value);
    const mask = this.switchPins();
    const old = await this.readRegister(REG_OUTPUT);
    await this.writeRegister(REG_OUTPUT, (old & ~mask & 0xff) | (value & mask));
  }

  private writeRegister(register: number, value: number): Promise<void> {
    return this.bus.write(this.l.address, [register, value], this.signal);
  }

  private async readRegister(register: number): Promise<number> {
    return (await this.bus.writeRead(this.l.address, [register], 1, this.signal))[0];
  }
}
