/**
 * An in-process simulated USB card reader: a Bulk-Only Transport device with a SCSI block target
 * over memory-backed cards, behind the same `UsbTransport` interface as real hardware. It follows
 * BOT 1.0 (the thirteen host/device cases, STALL after short replies, invalid CBW ⇒ both pipes
 * stalled until reset recovery, BOMS reset preserving halts) and SPC/SBC sense behaviour (unit
 * attention reported once, REQUEST SENSE clears it, 02/3A without a card, 07/27 on writes to a
 * locked card). Faults are injected per command or per transfer; time is simulated, so a
 * "timeout" fails at once.
 */
import { CSW_LENGTH, CSW_SIGNATURE, decodeCbw, encodeCsw, type Cbw } from '../../src/usb/wire.js';
import { DeviceGoneError, UsbTransferError } from '../../src/usb/errors.js';
import {
  formatPortPath,
  type ControlSetup,
  type MassStorageInterface,
  type OpenOptions,
  type TransferOptions,
  type UsbDeviceInfo,
  type UsbControlTransport,
  type UsbHost,
  type UsbTransport,
} from '../../src/usb/transport.js';

export class MemoryCard {
  readonly blockSize: number;
  readonly blocks: number;
  readonly data: Uint8Array;
  writeProtected = false;
  constructor(blocks: number, blockSize = 512, opts: { pattern?: boolean; writeProtected?: boolean; data?: Uint8Array } = {}) {
    this.blocks = blocks;
    this.blockSize = blockSize;
    this.data = opts.data ?? new Uint8Array(blocks * blockSize);
    if (opts.pattern) for (let i = 0; i < this.data.length; i++) this.data[i] = (i * 7 + (i >>> 9)) & 0xff;
    this.writeProtected = !!opts.writeProtected;
  }
}

export type Sense = [key: number, asc: number, ascq: number];

interface FaultBase {
  /** Only commands with this opcode trigger it. */
  opcode?: number;
  /** Only commands whose data phase is at least this many bytes trigger it. */
  minLength?: number;
  /** How many commands it hits (default 1; Infinity for a persistent fault). */
  times?: number;
  /** Only this LUN. */
  lun?: number;
}

export type Fault = FaultBase &
  (
    | { type: 'stall-data-in'; afterBytes?: number; sense?: Sense }
    | { type: 'stall-data-out'; sense?: Sense }
    | { type: 'stall-csw' }
    | { type: 'phase-error' }
    | { type: 'bad-csw-signature' }
    | { type: 'bad-csw-tag' }
    | { type: 'short-csw'; length: number }
    | { type: 'empty-csw' }
    | { type: 'timeout'; phase: 'cbw' | 'data' | 'csw' }
    | { type: 'babble'; extra?: number }
    | { type: 'delay'; ms: number }
    | { type: 'remove-medium'; afterBytes: number }
    | { type: 'vanish'; phase: 'cbw' | 'data' | 'csw' }
    | { type: 'skip-data-phase'; sense?: Sense }
    | { type: 'wrong-residue'; residue: number }
    | { type: 'sense'; sense: Sense }
  );

export interface SimLun {
  card: MemoryCard | null;
  /** Pending unit attentions (reported one per command, oldest first). */
  unitAttention: Sense[];
  /** Sense of the last failed command, returned by REQUEST SENSE. */
  sense: Sense | undefined;
  senseInformation?: number;
  /** TEST UNIT READY answers 02/04/01 this many more times. */
  becomingReady: number;
  /** Medium needs START STOP UNIT (02/04/02) before it is ready. */
  needsStart: boolean;
  /** A card swap in progress: the slot answers 02/3A `after` more times, then holds `card` (06/28). */
  swapping?: { card: MemoryCard | null; after: number };
}

export interface SimReaderOptions {
  vendorId?: number;
  productId?: number;
  revision?: number;
  serial?: string;
  bus?: number;
  ports?: number[];
  /** Device address on the bus (default 5); a re-plugged reader comes back under a new one. */
  address?: number;
  /** Cards per LUN (null = empty slot). Default one 4 MiB card. */
  luns?: (MemoryCard | null)[];
  /** Queue 06/29/00 on every LUN at power-on (the Linux gadget does). Default true. */
  powerOnUnitAttention?: boolean;
  /** Get Max LUN is STALLed (single-LUN devices may). */
  maxLunStalls?: boolean;
  /** Pad short data-IN replies with zeros instead of STALLing (QEMU's behaviour). */
  padShortReplies?: boolean;
  /** BOMS reset fails (times out), forcing escalation to a port reset. */
  bomsResetFails?: boolean;
  /** SYNCHRONIZE CACHE is not implemented (05/20/00). */
  noSyncCache?: boolean;
  /** READ CAPACITY returns the block count instead of the last LBA (FIX_CAPACITY readers). */
  capacityReportsCount?: boolean;
  /** MODE SENSE is not implemented. */
  noModeSense?: boolean;
  /** READ CAPACITY reports this many blocks instead of the card's (capacity beyond memory). */
  reportedBlocks?: number;
  /**
   * Real time (the FunctionFS reader on the wire): a delay fault sleeps for real and the host's
   * timeouts are the host's business; babble sends the extra bytes instead of failing the transfer.
   * Default false: time is simulated (a delay longer than the transfer's timeout fails it at once).
   */
  realTime?: boolean;
  /** Called for every accepted CBW (tests use it to act mid-command). */
  onCbw?: (cbw: Cbw) => void;
  /** A status read that arrives during the data-OUT stage is STALLed (QEMU's usb-storage). */
  stallsEarlyStatus?: boolean;
  /** INQUIRY vendor (8 characters) and product (16 characters). */
  inquiryVendor?: string;
  inquiryProduct?: string;
  /** USB string descriptors. */
  manufacturer?: string;
  product?: string;
  /** Answers vendor-specific commands (opcodes C0h–FFh) before the medium is looked at. */
  vendorCommand?: (cdb: Uint8Array, lun: number, dataTransferLength: number) => VendorReply;
}

/** A vendor command's answer: data-IN, a data-OUT stage the handler receives, or a failure. */
export type VendorReply = { in: Uint8Array } | { outLength: number; received: (data: Uint8Array) => void } | { sense: Sense };

export type Phase = 'cbw' | 'data-in' | 'data-out' | 'csw';

interface Pending {
  cbw: Cbw;
  fault?: Fault;
  inData: Uint8Array;
  inPos: number;
  stallAfterData: boolean;
  outExpected: number;
  outBuf: Uint8Array;
  outPos: number;
  onOutDone?: (data: Uint8Array) => void;
  status: number;
  residue: number;
  cswStalled: boolean;
  emptyCswSent: boolean;
  delayed: boolean;
}

export interface SimStats {
  cbws: number;
  opcodes: number[];
  bomsResets: number;
  portResets: number;
  clearHalts: { in: number; out: number };
  /** Host protocol violations: a CBW while the device was in another phase, etc. */
  violations: string[];
  /** Largest data phase seen, in bytes. */
  maxDataLength: number;
  /** Bulk-IN transfers that brought data and CSW at once. */
  dataWithCsw: number;
  closed: number;
}

const MSC_IFACE: MassStorageInterface = {
  interfaceNumber: 0,
  alternateSetting: 0,
  subclass: 0x06,
  protocol: 0x50,
  bulkInEndpoint: 1,
  bulkOutEndpoint: 2,
  maxPacketSize: 512,
};

export class SimReader implements UsbTransport {
  readonly device: UsbDeviceInfo;
  readonly iface = MSC_IFACE;
  readonly luns: SimLun[];
  readonly faults: Fault[] = [];
  readonly stats: SimStats = { cbws: 0, opcodes: [], bomsResets: 0, portResets: 0, clearHalts: { in: 0, out: 0 }, violations: [], maxDataLength: 0, dataWithCsw: 0, closed: 0 };
  private readonly o: SimReaderOptions;
  private phase: Phase = 'cbw';
  private cur?: Pending;
  private haltIn = false;
  private haltOut = false;
  /** Invalid CBW received: both pipes STALL until reset recovery. */
  private needReset = false;
  /** Device stopped answering on the bulk pipes until a reset. */
  private hung = false;
  private gone = false;

  constructor(opts: SimReaderOptions = {}) {
    this.o = opts;
    const bus = opts.bus ?? 1;
    const ports = opts.ports ?? [1, 4];
    this.device = {
      vendorId: opts.vendorId ?? 0x1d6b,
      productId: opts.productId ?? 0x0104,
      revision: opts.revision ?? 0x0100,
      manufacturer: opts.manufacturer ?? 'crashcart',
      product: opts.product ?? 'Simulated card reader',
      serial: opts.serial ?? 'SIM0001',
      bus,
      address: opts.address ?? 5,
      ports,
      portPath: formatPortPath(bus, ports),
      speed: 'high',
      massStorage: [MSC_IFACE],
    };
    const cards = opts.luns ?? [new MemoryCard(8192)];
    this.luns = cards.map((card) => ({
      card,
      unitAttention: opts.powerOnUnitAttention === false ? [] : [[6, 0x29, 0x00]],
      sense: undefined,
      becomingReady: 0,
      needsStart: false,
    }));
  }

  // ---- test controls -------------------------------------------------------------------------

  inject(...faults: Fault[]): this {
    this.faults.push(...faults);
    return this;
  }

  /** Puts a card in a slot: the next command reports 06/28/00. */
  insertCard(lun: number, card: MemoryCard): void {
    this.luns[lun].card = card;
    this.luns[lun].unitAttention.push([6, 0x28, 0x00]);
  }

  removeCard(lun: number): void {
    this.luns[lun].card = null;
  }

  /**
   * The card in a slot is replaced by another, as a card reader reports it: the next command gets
   * 06/28/00 (medium may have changed), the following `storm` commands that need the medium get
   * 02/3A/00 (medium not present) while the slot is empty, then `card` is there and announces itself
   * with 06/28/00 once more.
   */
  swapCard(lun: number, card: MemoryCard | null, storm = 3): void {
    const l = this.luns[lun];
    l.card = null;
    l.unitAttention.push([6, 0x28, 0x00]);
    l.swapping = { card, after: storm };
  }

  /**
   * The device side as a wire driver sees it (the FunctionFS reader in the test VM): the BOT phase
   * the device is in, data-OUT bytes it still expects, endpoints it has halted and whether it hangs.
   */
  wireState(): { phase: Phase; outRemaining: number; haltIn: boolean; haltOut: boolean; hung: boolean } {
    const cur = this.cur;
    return { phase: this.phase, outRemaining: cur ? cur.outExpected - cur.outPos : 0, haltIn: this.haltIn, haltOut: this.haltOut, hung: this.hung };
  }

  /** The reader is unplugged: every later call fails with "disconnected". */
  vanish(): void {
    this.gone = true;
  }

  // ---- UsbTransport ---------------------------------------------------------------------------

  private checkGone(): void {
    if (this.gone) throw new UsbTransferError('disconnected', 'simulated reader: device disconnected');
  }

  private async enter(opts: TransferOptions): Promise<void> {
    opts.signal?.throwIfAborted();
    await Promise.resolve();
    opts.signal?.throwIfAborted();
    this.checkGone();
  }

  private timeout(what: string): never {
    throw new UsbTransferError('timeout', `simulated reader: ${what} timed out`);
  }

  private stall(dir: 'in' | 'out'): never {
    if (dir === 'in') this.haltIn = true;
    else this.haltOut = true;
    throw new UsbTransferError('stall', `simulated reader: bulk-${dir.toUpperCase()} stalled`);
  }

  async bulkOut(data: Uint8Array, opts: TransferOptions): Promise<number> {
    await this.enter(opts);
    if (this.haltOut) this.stall('out');
    if (this.hung) this.timeout('bulk-OUT');
    if (this.phase === 'cbw') return this.receiveCbw(data);
    if (this.phase === 'data-out') {
      const cur = this.cur!;
      if (cur.fault?.type === 'timeout' && cur.fault.phase === 'data') {
        this.hung = true;
        this.timeout('data-OUT');
      }
      if (cur.fault?.type === 'vanish' && cur.fault.phase === 'data') {
        this.gone = true;
        this.checkGone();
      }
      if (cur.fault?.type === 'stall-data-out') {
        this.phase = 'csw';
        cur.status = 1;
        cur.residue = cur.outExpected;
        this.setSense(cur.cbw.lun, cur.fault.sense ?? [0x0b, 0x00, 0x00]);
        this.stall('out');
      }
      const n = Math.min(data.length, cur.outExpected - cur.outPos);
      cur.outBuf.set(data.subarray(0, n), cur.outPos);
      cur.outPos += n;
      if (cur.outPos >= cur.outExpected) {
        this.phase = 'csw';
        cur.onOutDone?.(cur.outBuf);
      }
      return n;
    }
    // Host sent data while the device wanted to send (data-in / csw): a host bug.
    this.stats.violations.push(`bulk-OUT of ${data.length} bytes in phase ${this.phase}`);
    this.stall('out');
  }

  async bulkIn(length: number, opts: TransferOptions): Promise<Uint8Array> {
    // Asked for while the host is still sending data: a status read queued with the data-OUT stage.
    const duringDataOut = this.phase === 'data-out';
    await this.enter(opts);
    if (duringDataOut && this.o.stallsEarlyStatus) this.stall('in');
    if (this.haltIn) this.stall('in');
    if (this.hung) this.timeout('bulk-IN');
    const cur = this.cur;
    if (this.phase === 'data-in' && cur) {
      const f = cur.fault;
      await this.delay(cur, opts);
      if (f?.type === 'timeout' && f.phase === 'data') {
        this.hung = true;
        this.timeout('data-IN');
      }
      if (f?.type === 'vanish' && f.phase === 'data') {
        this.gone = true;
        this.checkGone();
      }
      if (f?.type === 'babble') {
        // The device sends more than the host asked for; the rest of the data phase is lost.
        this.phase = 'csw';
        if (!this.o.realTime) throw new UsbTransferError('babble', 'simulated reader: babble on bulk-IN');
        // On the wire: the data and then `extra` bytes more (the host's controller reports babble).
        const more = new Uint8Array(cur.inData.length - cur.inPos + (f.extra ?? 512)).fill(0xa5);
        more.set(cur.inData.subarray(cur.inPos));
        cur.inPos = cur.inData.length;
        return more;
      }
      if (f?.type === 'skip-data-phase') {
        this.phase = 'cbw';
        return this.cswBytes(cur);
      }
      const n = Math.min(length, cur.inData.length - cur.inPos);
      if (n === 0 && cur.stallAfterData) {
        this.phase = 'csw';
        this.stall('in');
      }
      const chunk = cur.inData.slice(cur.inPos, cur.inPos + n);
      cur.inPos += n;
      if (cur.inPos >= cur.inData.length) {
        this.phase = 'csw';
        // A short reply ends with a short packet; the STALL then hits the CSW read.
        if (cur.stallAfterData) this.haltIn = true;
        else if (n % MSC_IFACE.maxPacketSize === 0 && length - n >= CSW_LENGTH && !this.cswDelayed(cur.fault)) {
          // No short packet ended the data: the next packet on the wire, the CSW, lands in the same transfer.
          this.phase = 'cbw';
          this.stats.dataWithCsw++;
          const both = new Uint8Array(n + CSW_LENGTH);
          both.set(chunk);
          both.set(this.cswBytes(cur), n);
          return both;
        }
      }
      return chunk;
    }
    if (this.phase === 'csw' && cur) {
      const f = cur.fault;
      await this.delay(cur, opts);
      if (f?.type === 'timeout' && f.phase === 'csw') {
        this.hung = true;
        this.timeout('CSW');
      }
      if (f?.type === 'vanish' && f.phase === 'csw') {
        this.gone = true;
        this.checkGone();
      }
      if (f?.type === 'stall-csw' && !cur.cswStalled) {
        cur.cswStalled = true;
        this.stall('in');
      }
      if (f?.type === 'empty-csw' && !cur.emptyCswSent) {
        cur.emptyCswSent = true;
        return new Uint8Array(0);
      }
      this.phase = 'cbw';
      const csw = this.cswBytes(cur);
      return csw.subarray(0, Math.min(length, csw.length));
    }
    // Nothing to send: the device NAKs until the host gives up.
    this.timeout(`bulk-IN in phase ${this.phase}`);
  }

  async clearHalt(direction: 'in' | 'out', opts: TransferOptions): Promise<void> {
    await this.enter(opts);
    this.stats.clearHalts[direction]++;
    // While an invalid CBW is pending, the device keeps its pipes stalled until BOMS reset.
    if (this.needReset) return;
    if (direction === 'in') this.haltIn = false;
    else this.haltOut = false;
  }

  async controlIn(setup: ControlSetup, length: number, opts: TransferOptions): Promise<Uint8Array> {
    await this.enter(opts);
    if (setup.requestType === 'class' && setup.request === 0xfe && length >= 1) {
      if (this.o.maxLunStalls) throw new UsbTransferError('stall', 'simulated reader: Get Max LUN stalled');
      return Uint8Array.of(this.luns.length - 1);
    }
    throw new UsbTransferError('stall', 'simulated reader: unsupported control request');
  }

  async controlOut(setup: ControlSetup, _data: Uint8Array | undefined, opts: TransferOptions): Promise<void> {
    await this.enter(opts);
    if (setup.requestType === 'class' && setup.request === 0xff) {
      if (this.o.bomsResetFails) this.timeout('Bulk-Only Mass Storage Reset');
      this.stats.bomsResets++;
      // Readies the device for the next CBW; halts and toggles are preserved (BOT 3.1).
      this.phase = 'cbw';
      this.cur = undefined;
      this.hung = false;
      this.needReset = false;
      return;
    }
    throw new UsbTransferError('stall', 'simulated reader: unsupported control request');
  }

  async resetPort(opts: TransferOptions): Promise<void> {
    await this.enter(opts);
    this.stats.portResets++;
    this.phase = 'cbw';
    this.cur = undefined;
    this.hung = this.haltIn = this.haltOut = this.needReset = false;
    for (const l of this.luns) l.unitAttention.push([6, 0x29, 0x00]);
  }

  async close(): Promise<void> {
    this.stats.closed++;
  }

  // ---- BOT target -----------------------------------------------------------------------------

  /**
   * A slow command (delay fault): the device answers `ms` after the CBW. In simulated time a host
   * that gives up sooner sees a timeout (the device stays busy until reset); in real time it sleeps.
   */
  private async delay(cur: Pending, opts: TransferOptions): Promise<void> {
    const f = cur.fault;
    if (f?.type !== 'delay' || cur.delayed) return;
    cur.delayed = true;
    if (this.o.realTime) {
      await new Promise((r) => setTimeout(r, f.ms));
      return;
    }
    if (opts.timeoutMs < f.ms) {
      this.hung = true;
      this.timeout(`a command that takes ${f.ms} ms`);
    }
  }

  /** Faults that hold the CSW back from the packet right after the data. */
  private cswDelayed(f: Fault | undefined): boolean {
    return !!f && (f.type === 'stall-csw' || f.type === 'empty-csw' || f.type === 'short-csw' || ((f.type === 'timeout' || f.type === 'vanish') && f.phase === 'csw'));
  }

  private takeFault(cbw: Cbw): Fault | undefined {
    const i = this.faults.findIndex(
      (f) =>
        (f.opcode === undefined ? cbw.cdb[0] !== 0x03 : f.opcode === cbw.cdb[0]) &&
        (f.minLength === undefined || cbw.dataTransferLength >= f.minLength) &&
        (f.lun === undefined || f.lun === cbw.lun),
    );
    if (i < 0) return undefined;
    const f = this.faults[i];
    const left = (f.times ?? 1) - 1;
    if (left <= 0) this.faults.splice(i, 1);
    else this.faults[i] = { ...f, times: left };
    return f;
  }

  private receiveCbw(data: Uint8Array): number {
    const cbw = decodeCbw(data);
    if (!cbw || cbw.lun >= 16) {
      // Invalid CBW: STALL both pipes until reset recovery (BOT 6.6.1).
      this.needReset = this.haltIn = this.haltOut = true;
      this.stats.violations.push(`invalid CBW of ${data.length} bytes`);
      return data.length;
    }
    const fault = this.takeFault(cbw);
    if (fault?.type === 'timeout' && fault.phase === 'cbw') {
      this.hung = true;
      this.timeout('CBW');
    }
    if (fault?.type === 'vanish' && fault.phase === 'cbw') {
      this.gone = true;
      this.checkGone();
    }
    this.stats.cbws++;
    this.stats.opcodes.push(cbw.cdb[0]);
    this.stats.maxDataLength = Math.max(this.stats.maxDataLength, cbw.dataTransferLength);
    const cur: Pending = {
      cbw,
      fault,
      inData: new Uint8Array(0),
      inPos: 0,
      stallAfterData: false,
      outExpected: 0,
      outBuf: new Uint8Array(0),
      outPos: 0,
      status: 0,
      residue: 0,
      cswStalled: false,
      emptyCswSent: false,
      delayed: false,
    };
    this.cur = cur;
    this.execute(cur);
    this.o.onCbw?.(cbw);
    return data.length;
  }

  private cswBytes(cur: Pending): Uint8Array {
    const f = cur.fault;
    const b = encodeCsw({
      signature: f?.type === 'bad-csw-signature' ? 0x43425355 : CSW_SIGNATURE,
      tag: f?.type === 'bad-csw-tag' ? (cur.cbw.tag + 1) >>> 0 : cur.cbw.tag,
      residue: f?.type === 'wrong-residue' ? f.residue : cur.residue,
      status: f?.type === 'phase-error' ? 2 : cur.status,
    });
    return f?.type === 'short-csw' ? b.subarray(0, Math.min(f.length, CSW_LENGTH)) : b;
  }

  private setSense(lun: number, s: Sense, info?: number): void {
    const l = this.luns[lun];
    if (l) {
      l.sense = s;
      l.senseInformation = info;
    }
  }

  /** Device intends to send `data`; resolves the host/device cases for a data-IN reply. */
  private replyIn(cur: Pending, data: Uint8Array, status = 0): void {
    const cbw = cur.cbw;
    cur.status = status;
    if (cbw.dataTransferLength === 0) {
      // Hn < Di (case 2): phase error.
      cur.status = data.length > 0 ? 2 : status;
      this.phase = 'csw';
      return;
    }
    if (!cbw.directionIn) {
      // Ho <> Di (case 10): STALL bulk-OUT, phase error.
      cur.status = 2;
      this.phase = 'csw';
      this.haltOut = true;
      return;
    }
    const hi = cbw.dataTransferLength;
    if (data.length > hi) {
      // Hi < Di (case 7): send what fits, phase error.
      cur.inData = data.subarray(0, hi);
      cur.status = 2;
    } else if (data.length < hi) {
      // Hi > Di (case 4/5): pad, or send less and STALL bulk-IN; residue = difference.
      if (this.o.padShortReplies) {
        const padded = new Uint8Array(hi);
        padded.set(data);
        cur.inData = padded;
      } else {
        cur.inData = data;
        cur.stallAfterData = true;
      }
      cur.residue = hi - data.length;
    } else {
      cur.inData = data;
    }
    this.phase = 'data-in';
  }

  /** Command without data, or one that failed before its data phase. */
  private replyNone(cur: Pending, status: number, sense?: Sense, info?: number): void {
    const cbw = cur.cbw;
    cur.status = status;
    if (sense) this.setSense(cbw.lun, sense, info);
    const h = cbw.dataTransferLength;
    if (h === 0) {
      this.phase = 'csw';
      return;
    }
    cur.residue = h;
    if (cbw.directionIn) {
      // Hi > Dn (case 4): STALL bulk-IN.
      if (this.o.padShortReplies) {
        cur.inData = new Uint8Array(h);
        this.phase = 'data-in';
      } else {
        cur.stallAfterData = true;
        this.phase = 'data-in';
      }
    } else {
      // Ho > Dn (case 9): STALL bulk-OUT.
      this.haltOut = true;
      this.phase = 'csw';
    }
  }

  private fail(cur: Pending, sense: Sense, info?: number): void {
    this.replyNone(cur, 1, sense, info);
  }

  /** Device intends to receive `length` bytes. */
  private expectOut(cur: Pending, length: number, done: (data: Uint8Array) => void): void {
    const cbw = cur.cbw;
    if (cbw.dataTransferLength === 0 || cbw.directionIn) {
      // Hn < Do (case 3) / Hi <> Do (case 8): phase error (STALL bulk-IN for case 8).
      cur.status = 2;
      if (cbw.directionIn && cbw.dataTransferLength > 0) cur.stallAfterData = true;
      this.phase = cbw.directionIn && cbw.dataTransferLength > 0 ? 'data-in' : 'csw';
      return;
    }
    const ho = cbw.dataTransferLength;
    if (ho < length) {
      // Ho < Do (case 13): take what the host sends, phase error.
      cur.outExpected = ho;
      cur.outBuf = new Uint8Array(ho);
      cur.onOutDone = () => {
        cur.status = 2;
      };
    } else {
      // Ho = Do (12) or Ho > Do (11): accept everything, residue = difference.
      cur.outExpected = ho;
      cur.outBuf = new Uint8Array(ho);
      cur.residue = ho - length;
      cur.onOutDone = (buf) => done(buf.subarray(0, length));
    }
    this.phase = 'data-out';
  }

  private execute(cur: Pending): void {
    const { cbw } = cur;
    const c = cbw.cdb;
    const op = c[0];
    const lun = this.luns[cbw.lun];
    const f = cur.fault;
    if (!lun) {
      if (op === 0x12) {
        // INQUIRY to a missing LUN: peripheral qualifier 3.
        const d = this.inquiryData();
        d[0] = 0x7f;
        this.replyIn(cur, d.subarray(0, Math.min(c[4] | (c[3] << 8), 36)));
        return;
      }
      if (op !== 0x03) return this.fail(cur, [5, 0x25, 0x00]);
    }
    if (f?.type === 'sense') return this.fail(cur, f.sense);
    if (op >= 0xc0 && this.o.vendorCommand) {
      const r = this.o.vendorCommand(c, cbw.lun, cbw.dataTransferLength);
      if ('in' in r) return this.replyIn(cur, r.in);
      if ('outLength' in r) return this.expectOut(cur, r.outLength, r.received);
      return this.fail(cur, r.sense);
    }
    if (op === 0x03) {
      const alloc = c[4];
      const sense = new Uint8Array(18);
      const s = lun ? (lun.sense ?? lun.unitAttention.shift() ?? [0, 0, 0]) : ([5, 0x25, 0x00] as Sense);
      sense[0] = 0x70;
      if (lun?.senseInformation !== undefined && lun.sense === s) {
        sense[0] |= 0x80;
        new DataView(sense.buffer).setUint32(3, lun.senseInformation, false);
      }
      sense[2] = s[0];
      sense[7] = 10;
      sense[12] = s[1];
      sense[13] = s[2];
      if (lun) {
        lun.sense = undefined;
        lun.senseInformation = undefined;
      }
      this.replyIn(cur, sense.subarray(0, Math.min(alloc, 18)));
      return;
    }
    if (op === 0x12) {
      const alloc = (c[3] << 8) | c[4];
      this.replyIn(cur, this.inquiryData().subarray(0, Math.min(alloc, 36)));
      return;
    }
    // Every other command reports a pending unit attention first.
    if (lun.unitAttention.length) {
      const ua = lun.unitAttention.shift()!;
      return this.fail(cur, ua);
    }
    const needsMedium = [0x00, 0x25, 0x9e, 0x28, 0x88, 0x2a, 0x8a, 0x35, 0x1a, 0x5a].includes(op);
    if (lun.swapping && needsMedium) {
      // A card swap: the slot is empty for a while, then the new card announces itself.
      if (lun.swapping.after > 0) {
        lun.swapping.after--;
        return this.fail(cur, [2, 0x3a, 0x00]);
      }
      lun.card = lun.swapping.card;
      lun.swapping = undefined;
      return this.fail(cur, [6, 0x28, 0x00]);
    }
    const card = lun.card;
    if (needsMedium && !card) return this.fail(cur, [2, 0x3a, 0x00]);
    if (op === 0x00) {
      if (lun.needsStart) return this.fail(cur, [2, 0x04, 0x02]);
      if (lun.becomingReady > 0) {
        lun.becomingReady--;
        return this.fail(cur, [2, 0x04, 0x01]);
      }
      return this.replyNone(cur, 0);
    }
    if (op === 0x1b) {
      if (c[4] & 1) lun.needsStart = false;
      else if (c[4] & 2) lun.card = null;
      return this.replyNone(cur, 0);
    }
    if (op === 0x1e) return this.replyNone(cur, 0);
    if (op === 0x35) {
      if (this.o.noSyncCache) return this.fail(cur, [5, 0x20, 0x00]);
      return this.replyNone(cur, 0);
    }
    const card2 = card!;
    if (op === 0x25) {
      const blocks = this.o.reportedBlocks ?? card2.blocks;
      const last = this.o.capacityReportsCount ? blocks : blocks - 1;
      const d = new Uint8Array(8);
      const v = new DataView(d.buffer);
      v.setUint32(0, last > 0xffffffff ? 0xffffffff : last, false);
      v.setUint32(4, card2.blockSize, false);
      return this.replyIn(cur, d);
    }
    if (op === 0x9e && (c[1] & 0x1f) === 0x10) {
      const d = new Uint8Array(32);
      const v = new DataView(d.buffer);
      const blocks = this.o.reportedBlocks ?? card2.blocks;
      v.setBigUint64(0, BigInt(this.o.capacityReportsCount ? blocks : blocks - 1), false);
      v.setUint32(8, card2.blockSize, false);
      const alloc = new DataView(c.buffer, c.byteOffset).getUint32(10, false);
      return this.replyIn(cur, d.subarray(0, Math.min(alloc, 32)));
    }
    if (op === 0x1a || op === 0x5a) {
      if (this.o.noModeSense) return this.fail(cur, [5, 0x20, 0x00]);
      const ten = op === 0x5a;
      const d = new Uint8Array(ten ? 8 : 4);
      if (ten) {
        d[1] = 6;
        d[3] = card2.writeProtected ? 0x80 : 0;
      } else {
        d[0] = 3;
        d[2] = card2.writeProtected ? 0x80 : 0;
      }
      const alloc = ten ? (c[7] << 8) | c[8] : c[4];
      return this.replyIn(cur, d.subarray(0, Math.min(alloc, d.length)));
    }
    if (op === 0x28 || op === 0x88 || op === 0x2a || op === 0x8a) {
      const sixteen = op === 0x88 || op === 0x8a;
      const v = new DataView(c.buffer, c.byteOffset, c.byteLength);
      const lba = sixteen ? Number(v.getBigUint64(2, false)) : v.getUint32(2, false);
      const count = sixteen ? v.getUint32(10, false) : v.getUint16(7, false);
      const bs = card2.blockSize;
      if (lba + count > card2.blocks) return this.fail(cur, [5, 0x21, 0x00], lba);
      const isWrite = op === 0x2a || op === 0x8a;
      if (!isWrite) {
        if (f?.type === 'stall-data-in' && cbw.directionIn) {
          const after = Math.min(f.afterBytes ?? 0, count * bs);
          cur.status = 1;
          this.setSense(cbw.lun, f.sense ?? [0x0b, 0x00, 0x00], f.sense?.[0] === 3 ? lba + Math.floor(after / bs) : undefined);
          cur.inData = card2.data.slice(lba * bs, lba * bs + after);
          cur.stallAfterData = true;
          cur.residue = cbw.dataTransferLength - after;
          this.phase = 'data-in';
          return;
        }
        if (f?.type === 'remove-medium' && cbw.directionIn) {
          const after = Math.min(f.afterBytes, count * bs);
          lun.card = null;
          cur.status = 1;
          this.setSense(cbw.lun, [2, 0x3a, 0x00]);
          cur.inData = card2.data.slice(lba * bs, lba * bs + after);
          cur.stallAfterData = true;
          cur.residue = cbw.dataTransferLength - after;
          this.phase = 'data-in';
          return;
        }
        return this.replyIn(cur, card2.data.slice(lba * bs, (lba + count) * bs));
      }
      if (card2.writeProtected) return this.fail(cur, [7, 0x27, 0x00]);
      this.expectOut(cur, count * bs, (buf) => {
        if (f?.type === 'remove-medium') {
          const after = Math.min(f.afterBytes, buf.length);
          card2.data.set(buf.subarray(0, after), lba * bs);
          lun.card = null;
          cur.status = 1;
          cur.residue = cbw.dataTransferLength - after;
          this.setSense(cbw.lun, [2, 0x3a, 0x00]);
          return;
        }
        card2.data.set(buf, lba * bs);
      });
      return;
    }
    return this.fail(cur, [5, 0x20, 0x00]);
  }

  private inquiryData(): Uint8Array {
    const d = new Uint8Array(36);
    d[0] = 0x00;
    d[1] = 0x80;
    d[2] = 0x04;
    d[3] = 0x02;
    d[4] = 31;
    const put = (at: number, len: number, s: string) => {
      for (let i = 0; i < len; i++) d[at + i] = i < s.length ? s.charCodeAt(i) : 0x20;
    };
    put(8, 8, this.o.inquiryVendor ?? 'CRASHCRT');
    put(16, 16, this.o.inquiryProduct ?? 'Sim Card Reader');
    put(32, 4, '1.00');
    return d;
  }
}

/** A UsbHost over a set of simulated readers, for enumeration and selector tests. */
/** A simulated non-reader device whose interface can be claimed for control transfers (an SDWire's FTDI). */
export interface SimControlDevice {
  readonly device: UsbDeviceInfo;
  openControl(interfaceNumber: number): UsbControlTransport;
}

export class SimHost implements UsbHost {
  readonly readers: SimReader[];
  /** Extra non-reader devices (e.g. a keyboard) to make enumeration realistic. */
  readonly others: UsbDeviceInfo[];
  readonly controls: SimControlDevice[];
  constructor(readers: SimReader[], others: UsbDeviceInfo[] = [], controls: SimControlDevice[] = []) {
    this.readers = readers;
    this.others = others;
    this.controls = controls;
  }
  async list(): Promise<UsbDeviceInfo[]> {
    return [...this.readers.map((r) => r.device), ...this.controls.map((c) => c.device), ...this.others];
  }
  async open(device: UsbDeviceInfo, _opts?: OpenOptions): Promise<UsbTransport> {
    const r = this.readers.find((x) => x.device === device);
    if (!r) throw new DeviceGoneError(`no simulated reader at ${device.portPath}`);
    return r;
  }
  async openControl(device: UsbDeviceInfo, interfaceNumber: number): Promise<UsbControlTransport> {
    const c = this.controls.find((x) => x.device === device);
    if (!c) throw new DeviceGoneError(`no simulated control device at ${device.portPath}`);
    return c.openControl(interfaceNumber);
  }
}
