/**
 * BlockDevice backend over the user-space USB mass-storage driver: one LUN (slot) of a reader,
 * reached through BOT + SCSI. Alignment is the logical block size. Transfers are split into
 * commands of at most `maxTransferBytes` (reader profile `maxSectors`, default like Linux
 * usb-storage: 1 MiB on SuperSpeed, 120 KiB below); after a timeout on a large transfer the size drops to 32 KiB for the rest
 * of the session. I/O touching the last 8 blocks is done one block per command (cards in some
 * readers fail multi-block reads of the final sectors — Linux does the same).
 */
import type { BlockDevice, BlockDeviceInfo, IoOptions } from './block-device.js';
import { IoError, UsageError, WriteProtectedError } from '../errors.js';
import { checkAccess, checkOpen } from './device-util.js';
import { BotDriver, type BotEvent, type BotOptions } from '../usb/bot.js';
import { DeviceGoneError, isRecoveredTimeout } from '../usb/errors.js';
import type { UsbDeviceInfo, UsbTransport } from '../usb/transport.js';
import { hex4 } from '../usb/transport.js';
import type { ReaderQuirks } from '../usb/quirk-types.js';
import { ScsiLun, type ScsiEvent, type ScsiOptions } from '../scsi/scsi-lun.js';
import type { InquiryData } from '../scsi/cdb.js';
import { LbaOutOfRangeError, MediumChangedError, MediumWriteProtectedError, NoMediumError } from '../scsi/sense.js';

/** Linux usb-storage default: 240 sectors of 512 bytes. */
export const DEFAULT_MAX_TRANSFER_BYTES = 240 * 512;
/** Linux usb-storage on SuperSpeed devices: 2048 sectors (usb_stor_adjust_quirks / slave_configure). */
export const SUPERSPEED_MAX_TRANSFER_BYTES = 2048 * 512;

/**
 * Bytes per command the way Linux usb-storage picks them: an explicit size, else the reader
 * profile's maxSectors, else 2048 sectors on SuperSpeed and 240 below.
 */
export function defaultTransferBytes(speed: UsbDeviceInfo['speed'], quirks: ReaderQuirks, explicit?: number): number {
  if (explicit !== undefined) return explicit;
  if (quirks.maxSectors) return quirks.maxSectors * 512;
  return speed === 'super' || speed === 'superPlus' ? SUPERSPEED_MAX_TRANSFER_BYTES : DEFAULT_MAX_TRANSFER_BYTES;
}
/** Fallback after timeouts (Linux MAX_SECTORS_64). */
export const FALLBACK_MAX_TRANSFER_BYTES = 64 * 512;
/** Blocks at the end of the medium accessed one at a time. */
export const LAST_BUGGY_BLOCKS = 8;

export type UsbDeviceEvent =
  | BotEvent
  | ScsiEvent
  | { type: 'transfer-size-fallback'; fromBytes: number; toBytes: number }
  /** The reader refused a block inside the capacity it reported (05/21): its READ CAPACITY is off. */
  | { type: 'capacity-beyond-end'; lba: number; blocks: number };

export interface UsbBlockDeviceOptions {
  /** Slot to open. Default 0. */
  lun?: number;
  /** Refuse writes even when the card is writable. */
  readOnly?: boolean;
  /** Reader quirks (from `quirksFor`). */
  quirks?: ReaderQuirks;
  /** Overrides the per-command transfer size (bytes, rounded down to whole blocks). */
  maxTransferBytes?: number;
  /** Device name for reports (e.g. `usb:1-1.4@lun=0`). */
  name?: string;
  bot?: Omit<BotOptions, 'onEvent'>;
  scsi?: Omit<ScsiOptions, 'onEvent'>;
  onEvent?: (e: UsbDeviceEvent) => void;
  signal?: AbortSignal;
}

export interface UsbMediumState {
  inquiry: InquiryData;
  maxLun: number;
  blockSize: number;
  blocks: bigint;
  writeProtected: boolean;
}

export class UsbBlockDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly size: number;
  readonly blockSize: number;
  readonly alignment: number;
  readonly scsi: ScsiLun;
  readonly state: UsbMediumState;
  private ro: boolean;
  private maxTransferBytes: number;
  private readonly quirks: ReaderQuirks;
  private readonly onEvent?: (e: UsbDeviceEvent) => void;
  private closed = false;
  private changed?: MediumChangedError;
  /** Bus address of the reader when the slot was opened. */
  private readonly address: number;

  private constructor(scsi: ScsiLun, state: UsbMediumState, opts: UsbBlockDeviceOptions, name: string) {
    this.scsi = scsi;
    this.state = state;
    this.blockSize = state.blockSize;
    this.alignment = state.blockSize;
    this.size = Number(state.blocks) * state.blockSize;
    this.quirks = opts.quirks ?? {};
    this.ro = !!opts.readOnly || state.writeProtected;
    this.onEvent = opts.onEvent;
    const dev = scsi.bot.transport.device;
    this.info = {
      name,
      kind: 'usb',
      vendor: state.inquiry.vendor || dev.manufacturer,
      model: state.inquiry.product || dev.product,
      serial: dev.serial,
      identity: { kind: 'usb', key: name },
    };
    this.address = dev.address;
    const bytes = defaultTransferBytes(dev.speed, this.quirks, opts.maxTransferBytes);
    this.maxTransferBytes = Math.max(state.blockSize, bytes - (bytes % state.blockSize));
  }

  /**
   * Opens a LUN over a claimed transport: Get Max LUN, INQUIRY, TEST UNIT READY until ready
   * (absorbing the unit attentions of a fresh card or a reset), READ CAPACITY, MODE SENSE for
   * the WP bit. Rejects with NoMediumError when the slot is empty. The transport is closed on
   * failure.
   */
  static async open(transport: UsbTransport, opts: UsbBlockDeviceOptions = {}): Promise<UsbBlockDevice> {
    const quirks = opts.quirks ?? {};
    const lun = opts.lun ?? 0;
    const emit = opts.onEvent;
    const bot = new BotDriver(transport, {
      ...opts.bot,
      ignoreTag: opts.bot?.ignoreTag ?? quirks.ignoreTag,
      ignoreResidue: opts.bot?.ignoreResidue ?? quirks.ignoreResidue,
      onEvent: emit,
    });
    const scsi = new ScsiLun(bot, lun, {
      ...opts.scsi,
      senseAfterSync: opts.scsi?.senseAfterSync ?? quirks.senseAfterSync,
      noReadCapacity16: opts.scsi?.noReadCapacity16 ?? quirks.noReadCapacity16,
      onEvent: emit,
    });
    try {
      const maxLun = quirks.singleLun ? 0 : await bot.getMaxLun();
      if (!Number.isInteger(lun) || lun < 0 || lun > maxLun) {
        throw new UsageError(`LUN ${lun} does not exist: the reader has ${maxLun + 1} LUN(s) (0..${maxLun})`);
      }
      const inquiry = await scsi.inquiry(opts.signal);
      if (inquiry.qualifier === 3) throw new UsageError(`LUN ${lun} is not present on this reader`);
      if (inquiry.deviceType !== 0) {
        throw new IoError(`LUN ${lun} is not a direct-access block device (peripheral type 0x${inquiry.deviceType.toString(16)})`);
      }
      await scsi.testUnitReady({ absorbMediumChange: true, signal: opts.signal });
      const cap = await scsi.readCapacity({ absorbMediumChange: true, signal: opts.signal });
      let lastLba = cap.lastLba;
      if (quirks.capacityOffByOne && lastLba >= 0n) lastLba -= 1n;
      const blocks = lastLba + 1n;
      if (blocks <= 0n) throw new NoMediumError({ responseCode: 0x70, deferred: false, key: 2, asc: 0x3a, ascq: 0 }, 0x25, 'no card in the slot (reader reports capacity 0)');
      if (!Number.isInteger(cap.blockSize) || cap.blockSize < 512 || cap.blockSize > 65536 || (cap.blockSize & (cap.blockSize - 1)) !== 0) {
        throw new IoError(`reader reports an unusable block size of ${cap.blockSize} bytes`);
      }
      if (blocks * BigInt(cap.blockSize) > BigInt(Number.MAX_SAFE_INTEGER)) throw new IoError(`capacity of ${blocks} blocks is beyond what crashcart can address`);
      const writeProtected = quirks.noWriteProtectDetect ? false : await scsi.writeProtected(opts.signal);
      const dev = transport.device;
      const name = opts.name ?? `usb:${dev.portPath}@lun=${lun} (${hex4(dev.vendorId)}:${hex4(dev.productId)})`;
      return new UsbBlockDevice(scsi, { inquiry, maxLun, blockSize: cap.blockSize, blocks, writeProtected }, opts, name);
    } catch (e) {
      await transport.close().catch(() => undefined);
      throw e;
    }
  }

  get readOnly(): boolean {
    return this.ro;
  }

  /** Current per-command transfer size in bytes. */
  get transferBytes(): number {
    return this.maxTransferBytes;
  }

  private check(op: 'read' | 'write', offset: number, length: number): void {
    checkOpen(this.closed, this.info.name);
    if (this.changed) throw this.changed;
    checkAccess(this, op, offset, length);
  }

  /**
   * Refuses to send a command once the reader re-enumerated under a new address (a port reset the
   * transport recovered from by finding the device again): whatever answers now may hold another
   * card, so the slot counts as gone and has to be opened (and checked) again.
   */
  private checkSameReader(): void {
    const now = this.scsi.bot.transport.device.address;
    if (now !== this.address) {
      throw new DeviceGoneError(`${this.info.name}: the reader re-enumerated (address ${this.address} → ${now}) after a reset; the card has to be opened and checked again`);
    }
  }

  /** Splits [lba, lba+blocks) into commands and runs `op` on each. */
  private async forEachChunk(firstLba: number, blocks: number, op: (lba: number, count: number, index: number) => Promise<void>): Promise<void> {
    const total = Number(this.state.blocks);
    const buggyFrom = this.quirks.lastSectorBug === false ? total : Math.max(0, total - LAST_BUGGY_BLOCKS);
    let lba = firstLba;
    const end = firstLba + blocks;
    while (lba < end) {
      const maxBlocks = Math.max(1, Math.floor(this.maxTransferBytes / this.blockSize));
      let count = Math.min(end - lba, maxBlocks);
      if (lba >= buggyFrom) count = 1;
      else if (lba + count > buggyFrom) count = buggyFrom - lba;
      const done = await this.withTimeoutFallback(lba, count, () => {
        this.checkSameReader();
        return op(lba, count, lba - firstLba);
      });
      if (done) lba += count;
    }
  }

  /**
   * Runs one command. On a transport timeout the device has been reset-recovered: a transfer
   * above the fallback size shrinks the transfer size and returns false (caller re-splits); a
   * small one is retried once before the error goes up.
   */
  private async withTimeoutFallback(lba: number, count: number, run: () => Promise<void>): Promise<boolean> {
    let retried = false;
    for (;;) {
      try {
        await run();
        return true;
      } catch (e) {
        if (e instanceof MediumChangedError) this.changed = e;
        if (e instanceof LbaOutOfRangeError) this.onEvent?.({ type: 'capacity-beyond-end', lba: lba + count - 1, blocks: Number(this.state.blocks) });
        if (!isRecoveredTimeout(e)) throw e;
        const bytes = count * this.blockSize;
        if (bytes > FALLBACK_MAX_TRANSFER_BYTES && this.maxTransferBytes > FALLBACK_MAX_TRANSFER_BYTES) {
          const to = Math.max(this.blockSize, FALLBACK_MAX_TRANSFER_BYTES - (FALLBACK_MAX_TRANSFER_BYTES % this.blockSize));
          this.onEvent?.({ type: 'transfer-size-fallback', fromBytes: this.maxTransferBytes, toBytes: to });
          this.maxTransferBytes = to;
          return false;
        }
        if (retried) throw e;
        retried = true;
      }
    }
  }

  async read(offset: number, length: number, opts: IoOptions = {}): Promise<Uint8Array> {
    this.check('read', offset, length);
    opts.signal?.throwIfAborted();
    const bs = this.blockSize;
    let out: Uint8Array | undefined;
    await this.forEachChunk(offset / bs, length / bs, async (lba, count, index) => {
      const data = await this.scsi.read(BigInt(lba), count, bs, { signal: opts.signal });
      // One command covering the whole request hands its buffer over as it is, without a copy.
      if (index === 0 && count * bs === length) out = data;
      else (out ??= new Uint8Array(length)).set(data, index * bs);
    });
    return out ?? new Uint8Array(0);
  }

  async write(offset: number, data: Uint8Array, opts: IoOptions = {}): Promise<void> {
    this.check('write', offset, data.length);
    if (this.ro) {
      throw new WriteProtectedError(
        this.state.writeProtected ? `${this.info.name}: the card is write-protected (lock switch or read-only medium)` : `${this.info.name}: opened read-only`,
      );
    }
    opts.signal?.throwIfAborted();
    const bs = this.blockSize;
    try {
      await this.forEachChunk(offset / bs, data.length / bs, async (lba, count, index) => {
        await this.scsi.write(BigInt(lba), data.subarray(index * bs, (index + count) * bs), bs, { signal: opts.signal });
      });
    } catch (e) {
      if (e instanceof MediumWriteProtectedError) {
        this.ro = true;
        this.state.writeProtected = true;
      }
      throw e;
    }
  }

  async flush(opts: IoOptions = {}): Promise<void> {
    checkOpen(this.closed, this.info.name);
    if (this.changed) throw this.changed;
    if (this.ro || this.quirks.noSynchronizeCache) return;
    this.checkSameReader();
    try {
      await this.scsi.synchronizeCache(opts.signal);
    } catch (e) {
      if (e instanceof MediumChangedError) this.changed = e;
      throw e;
    }
  }

  /** Releases the interface and hands the reader back to the kernel driver. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.scsi.bot.transport.close();
  }
}

/** Convenience wrapper for `UsbBlockDevice.open`. */
export function openUsbBlockDevice(transport: UsbTransport, opts?: UsbBlockDeviceOptions): Promise<UsbBlockDevice> {
  return UsbBlockDevice.open(transport, opts);
}
