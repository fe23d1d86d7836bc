/**
 * A simulated SDWire: an FTDI FT200XD (vendor requests on ep0, CBUS pins) and a card reader on
 * the same hub, whose card is in the reader while CBUS0 is high (test server) and taken away when
 * it is low (DUT). The FTDI answers the requests the reference tools send (libftdi's and pyftdi's
 * open, reset, purge, latency, bit mode, read pins, EEPROM reads) and records every control
 * request as it arrived (bmRequestType, bRequest, wValue, wIndex, wLength, data-OUT), for the
 * byte-for-byte comparison with sdwire-cli's and sd-mux-ctrl's sequences. The FunctionFS
 * emulator in the test VM (test/vm/ffs-reader.ts) serves the same chip on the real wire.
 *
 * Modelled from the FT-X behaviour the tools rely on: SIO_SET_BITMODE with mode 20h (CBUS) sets
 * the CBUS directions (high nibble of wValue's low byte) and output levels (low nibble);
 * SIO_READ_PINS returns the CBUS levels in the low nibble. A bit-mode reset (mode 00h, which
 * pyftdi sends when it opens and closes the chip) leaves the CBUS latch as it is: sdwire-cli
 * closes the chip that way after every switch and the card stays where it was switched. That
 * last point is an assumption drawn from the tool working on hardware, not checked on a chip.
 */
import { UsbTransferError } from '../../src/usb/errors.js';
import { formatPortPath, type ControlSetup, type TransferOptions, type UsbControlTransport, type UsbDeviceInfo } from '../../src/usb/transport.js';
import { MemoryCard, SimReader, type SimReaderOptions } from './sim-reader.js';

/** One control request as the device saw it. */
export interface ControlRecord {
  bmRequestType: number;
  bRequest: number;
  wValue: number;
  wIndex: number;
  wLength: number;
  /** data-OUT stage, hex ('' for none or an IN request). */
  data: string;
}

/** bmRequestType of a ControlSetup (direction, type, recipient). */
export function requestTypeByte(dirIn: boolean, s: Pick<ControlSetup, 'requestType' | 'recipient'>): number {
  const type = { standard: 0, class: 1, vendor: 2 }[s.requestType];
  const recipient = { device: 0, interface: 1, endpoint: 2, other: 3 }[s.recipient];
  return (dirIn ? 0x80 : 0) | (type << 5) | recipient;
}

/** The requests of an FTDI session that set or read the CBUS pins (pyftdi's housekeeping left out). */
export function pinRequests(session: readonly ControlRecord[]): ControlRecord[] {
  return session.filter((r) => (r.bRequest === 0x0b && r.wValue >> 8 === 0x20) || r.bRequest === 0x0c);
}

/** The FTDI chip's ep0 vendor requests and CBUS pins. */
export class SimFtdiCbus {
  readonly log: ControlRecord[] = [];
  /** Bit mode of the last SIO_SET_BITMODE (00h after reset). */
  bitmode = 0;
  /** CBUS directions (bit set = output) and latched output levels, low nibble each. */
  direction = 0;
  latch = 0;
  latency = 16;
  /** Levels of the pins that are inputs (the board's pull resistors). */
  private readonly inputLevels: number;
  private readonly onChange: () => void;

  constructor(opts: { inputLevels?: number; onChange?: () => void } = {}) {
    this.inputLevels = opts.inputLevels ?? 0x0f;
    this.onChange = opts.onChange ?? (() => undefined);
  }

  /** The CBUS pin levels (low nibble). */
  pins(): number {
    return ((this.latch & this.direction) | (this.inputLevels & ~this.direction)) & 0x0f;
  }

  /**
   * Answers one control request: the data-IN bytes, `undefined` for an OUT request that was
   * accepted; throws a STALL for anything an FT-X would not take.
   */
  request(bmRequestType: number, bRequest: number, wValue: number, wIndex: number, wLength: number, data?: Uint8Array): Uint8Array | undefined {
    const dirIn = (bmRequestType & 0x80) !== 0;
    this.log.push({ bmRequestType, bRequest, wValue, wIndex, wLength, data: !dirIn && data ? Buffer.from(data).toString('hex') : '' });
    if ((bmRequestType & 0x60) !== 0x40) throw new UsbTransferError('stall', 'FTDI: not a vendor request');
    const answer = (...b: number[]) => Uint8Array.from(b.slice(0, wLength));
    switch (bRequest) {
      case 0x00: // SIO_RESET: 0 = reset, 1 = purge RX, 2 = purge TX
      case 0x01: // SIO_SET_MODEM_CTRL
      case 0x02: // SIO_SET_FLOW_CTRL
      case 0x03: // SIO_SET_BAUDRATE
      case 0x04: // SIO_SET_DATA
      case 0x06: // SIO_SET_EVENT_CHAR
      case 0x07: // SIO_SET_ERROR_CHAR
        if (dirIn) break;
        return undefined;
      case 0x05: // SIO_POLL_MODEM_STATUS
        if (!dirIn) break;
        return answer(0x01, 0x60);
      case 0x09: // SIO_SET_LATENCY_TIMER
        if (dirIn) break;
        this.latency = wValue & 0xff;
        return undefined;
      case 0x0a: // SIO_GET_LATENCY_TIMER
        if (!dirIn) break;
        return answer(this.latency);
      case 0x0b: {
        // SIO_SET_BITMODE: mode in the high byte; in CBUS mode the low byte is directions << 4 | levels
        if (dirIn) break;
        this.bitmode = wValue >> 8;
        if (this.bitmode === 0x20) {
          this.direction = (wValue >> 4) & 0x0f;
          this.latch = wValue & 0x0f;
          this.onChange();
        }
        return undefined;
      }
      case 0x0c: // SIO_READ_PINS
        if (!dirIn) break;
        return answer(this.pins());
      case 0x90: // SIO_READ_EEPROM: an unprogrammed word
        if (!dirIn) break;
        return answer(0xff, 0xff);
    }
    throw new UsbTransferError('stall', `FTDI: request ${bRequest.toString(16)}h not supported`);
  }
}

export interface SimSdWireOptions {
  serial?: string;
  /** The hub's port path below the bus (default [1, 3]); the FTDI is on its port 1, the reader on 2. */
  hubPorts?: number[];
  card?: MemoryCard;
  reader?: SimReaderOptions;
  /** USB product string of the FTDI (default `sd-wire`). */
  product?: string;
  vendorId?: number;
  productId?: number;
}

/** SDWire: the FTDI device and the reader beside it; the card follows CBUS0. */
export class SimSdWire {
  readonly ftdi: SimFtdiCbus;
  readonly reader: SimReader;
  readonly card: MemoryCard;
  readonly device: UsbDeviceInfo;
  /** Times the FTDI interface was claimed and released. */
  opens = 0;
  closes = 0;

  constructor(opts: SimSdWireOptions = {}) {
    const hub = opts.hubPorts ?? [1, 3];
    this.card = opts.card ?? new MemoryCard(4096, 512, { pattern: true });
    this.reader = new SimReader({ ports: [...hub, 2], serial: `${opts.serial ?? 'SDW'}-R`, luns: [null], ...opts.reader });
    this.ftdi = new SimFtdiCbus({ inputLevels: 0x00, onChange: () => this.updateCard() });
    const ports = [...hub, 1];
    this.device = {
      vendorId: opts.vendorId ?? 0x04e8,
      productId: opts.productId ?? 0x6001,
      revision: 0x1000,
      manufacturer: 'SRPOL',
      product: opts.product ?? 'sd-wire',
      serial: opts.serial ?? 'sdw-1',
      bus: 1,
      address: 7,
      ports,
      portPath: formatPortPath(1, ports),
      speed: 'full',
      massStorage: [],
    };
  }

  /** Where CBUS0 puts the card. */
  mode(): 'host' | 'dut' {
    return this.ftdi.pins() & 1 ? 'host' : 'dut';
  }

  private updateCard(): void {
    const lun = this.reader.luns[0];
    if (this.mode() === 'host' && !lun.card) this.reader.insertCard(0, this.card);
    else if (this.mode() === 'dut' && lun.card) this.reader.removeCard(0);
  }

  /** The claimed FTDI interface, as SimHost hands it out. */
  openControl(interfaceNumber: number): UsbControlTransport {
    if (interfaceNumber !== 0) throw new UsbTransferError('io', `FT200XD has no interface ${interfaceNumber}`);
    this.opens++;
    const chip = this.ftdi;
    const self = this;
    let closed = false;
    const check = (opts: TransferOptions) => {
      if (closed) throw new UsbTransferError('disconnected', 'closed');
      opts.signal?.throwIfAborted();
    };
    return {
      device: this.device,
      interfaceNumber,
      async controlIn(setup: ControlSetup, length: number, opts: TransferOptions) {
        check(opts);
        return chip.request(requestTypeByte(true, setup), setup.request, setup.value, setup.index, length) ?? new Uint8Array(0);
      },
      async controlOut(setup: ControlSetup, data: Uint8Array | undefined, opts: TransferOptions) {
        check(opts);
        chip.request(requestTypeByte(false, setup), setup.request, setup.value, setup.index, data?.length ?? 0, data);
      },
      async close() {
        if (!closed) self.closes++;
        closed = true;
      },
    };
  }
}
