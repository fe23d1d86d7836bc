/**
 * SCSI commands to one logical unit (one slot of a reader) over the Bulk-Only Transport, with
 * the retry policy for card readers:
 *  - transport failures the BOT engine recovered from: retried (`transportRetries`, timeouts
 *    only when the caller allows it — the block device shrinks its transfers instead),
 *  - CSW "failed": REQUEST SENSE (18 bytes, fixed format), then
 *    - 1/xx recovered error: success,
 *    - 6/29 (reset, power on) and other unit attentions: absorbed, retried (`unitAttentionRetries`),
 *    - 6/28 medium changed: reported through `onMediumChanged`; retried when the caller absorbs
 *      it (probing a fresh card), thrown otherwise (I/O on an open device must not continue on
 *      a card that may have been swapped — Linux refuses it the same way),
 *    - 2/04/01 becoming ready: polled every `readyPollMs` up to `becomingReadyTimeoutMs`,
 *    - 2/04/02 initializing command required: START STOP UNIT (start), then polled,
 *    - 4/xx hardware error, B/xx aborted command, empty sense: retried `hardwareRetries` times,
 *    - 3/xx medium error: retried once, then MediumError with the LBA,
 *    - everything else (no medium, write protected, LBA out of range, illegal request): thrown.
 */
import { IoError } from '../errors.js';
import { BotTransportError, isRecoveredTimeout } from '../usb/errors.js';
import type { BotDriver } from '../usb/bot.js';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cdb,
  INQUIRY_LENGTH,
  MODE_SENSE_ALL_PAGES_LENGTH,
  Op,
  parseInquiry,
  parseModeSenseWriteProtect,
  parseReadCapacity10,
  parseReadCapacity16,
  SENSE_LENGTH,
  type CapacityData,
  type InquiryData,
} from './cdb.js';
import {
  AbortedCommandError,
  HardwareError,
  IllegalRequestError,
  MediumChangedError,
  MediumError,
  NotReadyError,
  parseSense,
  senseToError,
  SenseKey,
  UnitAttentionError,
  type SenseData,
} from './sense.js';

export interface ScsiOptions {
  /** Unit attentions absorbed per command. Default 10 (Linux retries READ CAPACITY 10× on 06/29). */
  unitAttentionRetries?: number;
  /** Retries after a transport failure the BOT engine recovered from. Default 2. */
  transportRetries?: number;
  /** Retries on hardware error / aborted command / empty sense. Default 3. */
  hardwareRetries?: number;
  /** How long to wait for "becoming ready". Default 30 s. */
  becomingReadyTimeoutMs?: number;
  /** Poll interval while becoming ready. Default 1 s. */
  readyPollMs?: number;
  /** Send REQUEST SENSE after SYNCHRONIZE CACHE (SENSE_AFTER_SYNC devices). */
  senseAfterSync?: boolean;
  /** Never send READ CAPACITY(16); a READ CAPACITY(10) of FFFFFFFFh then means no capacity. */
  noReadCapacity16?: boolean;
  onEvent?: (e: ScsiEvent) => void;
}

export type ScsiEvent =
  | { type: 'unit-attention'; sense: SenseData; opcode: number }
  | { type: 'medium-changed'; sense: SenseData; opcode: number }
  | { type: 'retry'; reason: string; opcode: number; attempt: number }
  | { type: 'start-unit' }
  /** MODE SENSE gave no answer (timeout) or was refused: the card is taken as writable. */
  | { type: 'write-protect-unknown'; why: 'timeout' | 'unsupported' }
  /** SYNCHRONIZE CACHE is refused (05/20) or never answered: flushes are skipped from now on. */
  | { type: 'sync-cache-unsupported'; why: 'timeout' | 'unsupported' };

export interface CommandOptions {
  inLength?: number;
  data?: Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Retry after 06/28 instead of throwing MediumChangedError. */
  absorbMediumChange?: boolean;
  /** Retry after a transport timeout too (cheap commands only). Default true for no-data commands. */
  retryTimeouts?: boolean;
  /** Apply no sense-based retries at all (polling wants the raw answer). */
  raw?: boolean;
}

export interface CommandResult {
  data: Uint8Array;
  residue: number;
}

export class ScsiLun {
  readonly bot: BotDriver;
  readonly lun: number;
  private readonly o: Required<Omit<ScsiOptions, 'onEvent'>>;
  private readonly onEvent?: (e: ScsiEvent) => void;
  /** Set after SYNCHRONIZE CACHE answered "invalid command operation code". */
  syncCacheUnsupported = false;

  constructor(bot: BotDriver, lun: number, options: ScsiOptions = {}) {
    this.bot = bot;
    this.lun = lun;
    this.o = {
      unitAttentionRetries: options.unitAttentionRetries ?? 10,
      transportRetries: options.transportRetries ?? 2,
      hardwareRetries: options.hardwareRetries ?? 3,
      becomingReadyTimeoutMs: options.becomingReadyTimeoutMs ?? 30_000,
      readyPollMs: options.readyPollMs ?? 1_000,
      senseAfterSync: options.senseAfterSync ?? false,
      noReadCapacity16: options.noReadCapacity16 ?? false,
    };
    this.onEvent = options.onEvent;
  }

  /** REQUEST SENSE; undefined when the device has nothing parseable to say. */
  async requestSense(signal?: AbortSignal): Promise<SenseData | undefined> {
    const r = await this.bot.execute({ lun: this.lun, cdb: cdb.requestSense(SENSE_LENGTH), inLength: SENSE_LENGTH, signal });
    if (r.status !== 'passed') return undefined;
    return parseSense(r.data);
  }

  /** Runs one command with the retry policy described at the top of this file. */
  async command(c: Uint8Array, opts: CommandOptions = {}): Promise<CommandResult> {
    const opcode = c[0];
    const noData = !opts.inLength && !(opts.data && opts.data.length);
    const retryTimeouts = opts.retryTimeouts ?? noData;
    let transportTries = 0;
    let uaTries = 0;
    let hwTries = 0;
    let mediumTries = 0;
    let startSent = false;
    let readyDeadline: number | undefined;
    for (;;) {
      let r;
      try {
        r = await this.bot.execute({ lun: this.lun, cdb: c, inLength: opts.inLength, data: opts.data, timeoutMs: opts.timeoutMs, signal: opts.signal });
      } catch (e) {
        if (e instanceof BotTransportError && e.recovered && transportTries < this.o.transportRetries && (e.reason !== 'timeout' || retryTimeouts) && !opts.signal?.aborted) {
          transportTries++;
          this.onEvent?.({ type: 'retry', reason: `transport: ${e.reason}`, opcode, attempt: transportTries });
          continue;
        }
        throw e;
      }
      if (r.status === 'passed') return { data: r.data, residue: r.residue };

      const sense = await this.requestSense(opts.signal);
      if (sense && sense.key === SenseKey.RECOVERED_ERROR) return { data: r.data, residue: r.residue };
      const err = senseToError(sense, opcode);
      if (opts.raw) throw err;

      if (err instanceof MediumChangedError) {
        this.onEvent?.({ type: 'medium-changed', sense: err.sense, opcode });
        if (opts.absorbMediumChange && uaTries < this.o.unitAttentionRetries) {
          uaTries++;
          continue;
        }
        throw err;
      }
      if (err instanceof UnitAttentionError) {
        this.onEvent?.({ type: 'unit-attention', sense: err.sense, opcode });
        if (uaTries < this.o.unitAttentionRetries) {
          uaTries++;
          continue;
        }
        throw err;
      }
      if (err instanceof NotReadyError && (err.becomingReady || err.needsStart)) {
        const now = Date.now();
        readyDeadline ??= now + this.o.becomingReadyTimeoutMs;
        if (err.needsStart && !startSent) {
          startSent = true;
          this.onEvent?.({ type: 'start-unit' });
          await this.bot.execute({ lun: this.lun, cdb: cdb.startStopUnit(true, { immediate: true }), signal: opts.signal });
          continue;
        }
        if (now >= readyDeadline) throw err;
        this.onEvent?.({ type: 'retry', reason: 'becoming ready', opcode, attempt: 0 });
        await sleep(Math.min(this.o.readyPollMs, readyDeadline - now));
        opts.signal?.throwIfAborted();
        continue;
      }
      if ((err instanceof HardwareError || err instanceof AbortedCommandError) && hwTries < this.o.hardwareRetries) {
        hwTries++;
        this.onEvent?.({ type: 'retry', reason: err.message, opcode, attempt: hwTries });
        continue;
      }
      if (err instanceof MediumError && mediumTries < 1) {
        mediumTries++;
        this.onEvent?.({ type: 'retry', reason: err.message, opcode, attempt: mediumTries });
        continue;
      }
      throw err;
    }
  }

  async inquiry(signal?: AbortSignal): Promise<InquiryData> {
    const r = await this.command(cdb.inquiry(INQUIRY_LENGTH), { inLength: INQUIRY_LENGTH, signal, absorbMediumChange: true, retryTimeouts: true });
    if (r.data.length < 5) throw new IoError(`INQUIRY returned ${r.data.length} bytes`);
    return parseInquiry(r.data);
  }

  /** TEST UNIT READY; resolves when ready, rejects with the typed sense error otherwise. */
  async testUnitReady(opts: { raw?: boolean; absorbMediumChange?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.command(cdb.testUnitReady(), opts);
  }

  /** READ CAPACITY(10), then (16) when the device needs more than 32 bits. */
  async readCapacity(opts: { signal?: AbortSignal; absorbMediumChange?: boolean } = {}): Promise<CapacityData> {
    const r10 = await this.command(cdb.readCapacity10(), { inLength: 8, retryTimeouts: true, ...opts });
    if (r10.data.length < 8) throw new IoError(`READ CAPACITY(10) returned ${r10.data.length} bytes`);
    const c10 = parseReadCapacity10(r10.data);
    if (c10.lastLba !== 0xffffffffn) return c10;
    if (this.o.noReadCapacity16) {
      // Buggy readers answer FFFFFFFFh for "size 0"; Linux does the same with NO_READ_CAPACITY_16.
      return { lastLba: -1n, blockSize: c10.blockSize };
    }
    const r16 = await this.command(cdb.readCapacity16(32), { inLength: 32, retryTimeouts: true, ...opts });
    if (r16.data.length < 12) throw new IoError(`READ CAPACITY(16) returned ${r16.data.length} bytes`);
    return parseReadCapacity16(r16.data);
  }

  /** Reads `blocks` blocks at `lba` (READ(10), or READ(16) past 2^32 blocks). */
  async read(lba: bigint, blocks: number, blockSize: number, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Uint8Array> {
    const length = blocks * blockSize;
    const c = lba + BigInt(blocks) > 0x100000000n || blocks > 0xffff ? cdb.read16(lba, blocks) : cdb.read10(lba, blocks);
    const r = await this.command(c, { inLength: length, ...opts });
    if (r.data.length !== length) {
      throw new IoError(`short read at LBA ${lba}: ${r.data.length} of ${length} bytes (residue ${r.residue})`);
    }
    return r.data;
  }

  async write(lba: bigint, data: Uint8Array, blockSize: number, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    if (data.length % blockSize !== 0) throw new RangeError(`write of ${data.length} bytes is not a multiple of ${blockSize}`);
    const blocks = data.length / blockSize;
    const c = lba + BigInt(blocks) > 0x100000000n || blocks > 0xffff ? cdb.write16(lba, blocks) : cdb.write10(lba, blocks);
    const r = await this.command(c, { data, ...opts });
    if (r.residue !== 0) throw new IoError(`short write at LBA ${lba}: device took ${data.length - r.residue} of ${data.length} bytes`);
  }

  /**
   * SYNCHRONIZE CACHE(10) for the whole medium, best effort: a reader that refuses it (05/20) or
   * never answers it (reset-recovered after the timeout, not retried) is not asked again, and the
   * `sync-cache-unsupported` event says so. Linux sends it only to devices whose caching mode page
   * shows a write cache, which card readers rarely do; data written is in the reader either way.
   */
  async synchronizeCache(signal?: AbortSignal): Promise<void> {
    if (this.syncCacheUnsupported) return;
    try {
      await this.command(cdb.synchronizeCache10(), { signal, timeoutMs: 60_000, retryTimeouts: false });
    } catch (e) {
      const unsupported = e instanceof IllegalRequestError && e.unsupportedCommand;
      const hung = isRecoveredTimeout(e);
      if (unsupported || hung) {
        this.syncCacheUnsupported = true;
        this.onEvent?.({ type: 'sync-cache-unsupported', why: hung ? 'timeout' : 'unsupported' });
        return;
      }
      throw e;
    }
    if (this.o.senseAfterSync) await this.requestSense(signal);
  }

  /**
   * Write-protect state from the MODE SENSE header (WP bit). MODE SENSE(6) page 3Fh with 192
   * bytes first, MODE SENSE(10) if (6) is refused; when both fail the medium is assumed writable
   * (as Linux does) — a real lock still shows up as 7/27 on the first write. A reader that does
   * not answer MODE SENSE at all (hangs until reset) is asked once, not retried, and not asked the
   * (10) form either: such readers hang on both (Linux's NO_WP_DETECT entries).
   */
  async writeProtected(signal?: AbortSignal): Promise<boolean> {
    const unknown = (why: 'timeout' | 'unsupported') => {
      this.onEvent?.({ type: 'write-protect-unknown', why });
      return false;
    };
    try {
      const r = await this.command(cdb.modeSense6(0x3f, MODE_SENSE_ALL_PAGES_LENGTH), { inLength: MODE_SENSE_ALL_PAGES_LENGTH, signal, retryTimeouts: false });
      return parseModeSenseWriteProtect(r.data, false);
    } catch (e) {
      if (isRecoveredTimeout(e)) return unknown('timeout');
      if (!(e instanceof IllegalRequestError) && !(e instanceof RangeError)) {
        if (!(e instanceof BotTransportError && e.recovered)) throw e;
      }
    }
    try {
      const r = await this.command(cdb.modeSense10(0x3f, MODE_SENSE_ALL_PAGES_LENGTH), { inLength: MODE_SENSE_ALL_PAGES_LENGTH, signal, retryTimeouts: false });
      return parseModeSenseWriteProtect(r.data, true);
    } catch (e) {
      if (isRecoveredTimeout(e)) return unknown('timeout');
      if (e instanceof IllegalRequestError || e instanceof RangeError || (e instanceof BotTransportError && e.recovered)) return unknown('unsupported');
      throw e;
    }
  }

  async preventMediumRemoval(prevent: boolean, signal?: AbortSignal): Promise<void> {
    await this.command(cdb.preventAllowMediumRemoval(prevent), { signal });
  }

  /** START STOP UNIT: `start` readies the medium; `eject` (with start=false) ejects it. */
  async startStopUnit(start: boolean, opts: { eject?: boolean; immediate?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.command(cdb.startStopUnit(start, { loadEject: opts.eject, immediate: opts.immediate }), { signal: opts.signal });
  }
}

export { Op };
