/**
 * A simulated USB-SD-Mux on the simulated reader: the USB2642's vendor command CFh reaches a GPIO
 * expander register file (PCA9536 at 41h for the classic generation, TCA6408 at 20h for the fast
 * one), and the expander's pins decide whether the card is in the reader (host) or not (DUT, off).
 * Every CFh command is recorded as the usbsdmux capture records it (direction, CDB, length,
 * data-OUT), for byte-for-byte comparison.
 */
import { MemoryCard, SimReader, type SimReaderOptions } from './sim-reader.js';

/** Input, output, polarity and configuration registers; inputs read high (pull-ups). */
export class SimGpioExpander {
  output = 0xff;
  polarity = 0x00;
  config = 0xff;
  input(): number {
    return ((this.output & ~this.config) | this.config) & 0xff;
  }
  read(register: number): number {
    return [this.input(), this.output, this.polarity, this.config][register & 3];
  }
  write(register: number, value: number): void {
    if ((register & 3) === 1) this.output = value;
    else if ((register & 3) === 2) this.polarity = value;
    else if ((register & 3) === 3) this.config = value;
  }
}

export interface MuxCommandRecord {
  direction: 'in' | 'out';
  cdb: string;
  length: number;
  data?: string;
}

const PINS = {
  classic: { address: 0x41, product: 'sdmux HS-SD/MMC', dataOff: 0x01, powerOff: 0x02, selectDut: 0x04 },
  fast: { address: 0x20, product: 'sdFST HS-SD/MMC', dataOff: 0x04, powerOff: 0x02, selectDut: 0x01 },
};

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class SimUsbSdMux {
  readonly reader: SimReader;
  readonly expander = new SimGpioExpander();
  readonly log: MuxCommandRecord[] = [];
  readonly card: MemoryCard;
  private readonly pins: (typeof PINS)['classic'];

  constructor(variant: 'classic' | 'fast' = 'classic', opts: SimReaderOptions & { card?: MemoryCard } = {}) {
    this.pins = PINS[variant];
    this.card = opts.card ?? new MemoryCard(4096, 512, { pattern: true });
    this.reader = new SimReader({
      vendorId: 0x0424,
      productId: 0x4041,
      manufacturer: 'Linux Automation GmbH',
      product: variant === 'fast' ? 'usb-sd-mux-fast' : 'usb-sd-mux_rev4.0',
      inquiryVendor: 'Generic',
      inquiryProduct: this.pins.product,
      luns: [null],
      ...opts,
      vendorCommand: (cdb, _lun, length) => this.vendor(cdb, length),
    });
  }

  /** Where the card is, from the expander's pin levels. */
  mode(): 'host' | 'dut' | 'off' {
    const pins = this.expander.input();
    return pins & this.pins.powerOff ? 'off' : pins & this.pins.selectDut ? 'dut' : 'host';
  }

  private vendor(cdb: Uint8Array, length: number) {
    const address = cdb[2] >> 1;
    if (cdb[0] !== 0xcf || (cdb[1] !== 0x22 && cdb[1] !== 0x23)) return { sense: [5, 0x20, 0x00] as [number, number, number] };
    if (address !== this.pins.address) return { sense: [4, 0x00, 0x00] as [number, number, number] };
    const count = (cdb[4] << 8) | cdb[5];
    if (cdb[1] === 0x22) {
      this.log.push({ direction: 'in', cdb: hex(cdb), length });
      const register = cdb[6] > 0 ? cdb[7] : 0;
      return { in: Uint8Array.from({ length: count }, (_, i) => this.expander.read(register + i)) };
    }
    return {
      outLength: length,
      received: (data: Uint8Array) => {
        this.log.push({ direction: 'out', cdb: hex(cdb), length: data.length, data: hex(data) });
        if (count >= 2) this.expander.write(data[0], data[1]);
        this.updateCard();
      },
    };
  }

  private updateCard(): void {
    const inHost = this.mode() === 'host' && !(this.expander.input() & this.pins.dataOff);
    const lun = this.reader.luns[0];
    if (inHost && !lun.card) this.reader.insertCard(0, this.card);
    else if (!inHost && lun.card) this.reader.removeCard(0);
  }
}
