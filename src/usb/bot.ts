/**
 * USB Mass Storage Bulk-Only Transport (BOT 1.0) host engine.
 *
 * One command at a time (a FIFO lock): CBW → optional data phase → CSW, with
 *  - CBW/CSW signature and tag checks, residue handling (with IGNORE_RESIDUE auto-detection the
 *    way Linux usb-storage does it on INQUIRY / READ CAPACITY(10)),
 *  - STALL in the data phase: clear the halt and go on to the CSW; STALL on the CSW: clear the
 *    halt and read it once more; a zero-length CSW read is retried once,
 *  - a 13-byte data-IN that carries this command's CSW is taken as the CSW (device skipped the
 *    data phase),
 *  - back-to-back stages, as few transfers per command as the wire allows: a data-IN that ends on
 *    a packet boundary is read together with the CSW that follows it in one IN transfer (the
 *    device cannot end such a data stage with a short packet, so its next packet is the CSW);
 *    during a data-OUT the CSW read is already queued on the IN pipe, unless the device stalls
 *    such an early status read (QEMU's usb-storage does) — then status is read after the data
 *    from that command on,
 *  - phase error, invalid CSW, timeout or a transport error → reset recovery (Bulk-Only Mass
 *    Storage Reset, clear halt IN, clear halt OUT); when that fails, or the device keeps failing
 *    right after it, escalation to a USB port reset,
 *  - a timeout on every transfer, AbortSignal support (an aborted exchange leaves the device
 *    to be reset-recovered before the next command),
 *  - Get Max LUN (STALL, timeout, empty answer or a value over 15 ⇒ single LUN).
 */
import { BotTransportError, DeviceGoneError, UsbTransferError, type BotFailure } from './errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Mutex } from './mutex.js';
import type { ControlSetup, UsbTransport } from './transport.js';
import { CSW_SIGNATURE, CBW_LENGTH, CSW_LENGTH, BOMS_RESET, GET_MAX_LUN, MAX_LUN_LIMIT, encodeCbw, decodeCsw, type Csw } from './wire.js';

export interface BotOptions {
  /** Timeout for sending the CBW. Default 5 s. */
  cbwTimeoutMs?: number;
  /**
   * Default timeout for the data phase (a command may pass its own). Default 30 s: the SCSI disk
   * driver's command timeout (SD_TIMEOUT), so a slow card the kernel waits for is waited for here too.
   */
  dataTimeoutMs?: number;
  /** Timeout for reading the CSW. Default 30 s (the device answers after finishing the command). */
  cswTimeoutMs?: number;
  /** Timeout for Get Max LUN and clear-halt requests. Default 5 s. */
  controlTimeoutMs?: number;
  /** Timeout for the Bulk-Only Mass Storage Reset request. Default 5 s. */
  resetTimeoutMs?: number;
  /** Pause after the BOMS reset before clearing halts (Linux usb-storage waits 6 s). Default 6 s. */
  resetSettleMs?: number;
  /** Pause after a port reset before the next command. Default 1 s. */
  portResetSettleMs?: number;
  /** Accept a CSW tag that differs from the CBW tag (BULK_IGNORE_TAG devices). */
  ignoreTag?: boolean;
  /** Ignore dCSWDataResidue (IGNORE_RESIDUE devices); also switched on by auto-detection. */
  ignoreResidue?: boolean;
  /** Queue the CSW read with the data-OUT stage (default true; switched off when the device stalls it). */
  earlyStatus?: boolean;
  /** Observer for recovery actions, for logs and tests. */
  onEvent?: (event: BotEvent) => void;
}

export type BotEvent =
  | { type: 'clear-halt'; direction: 'in' | 'out'; phase: 'data' | 'csw' | 'recovery' }
  | { type: 'reset-recovery'; reason: BotFailure }
  | { type: 'port-reset'; reason: BotFailure }
  | { type: 'csw-retry'; why: 'stall' | 'empty' }
  | { type: 'ignore-residue-detected' }
  | { type: 'early-status-off' }
  /** A transfer of data and CSW together ended in a STALL: they are read apart from now on. */
  | { type: 'data-with-csw-off' }
  | { type: 'data-phase-skipped' };

export interface BotCommand {
  lun: number;
  cdb: Uint8Array;
  /** Data-IN length; omit (or 0) with no `data` for a command without data phase. */
  inLength?: number;
  /** Data-OUT payload. */
  data?: Uint8Array;
  /** Timeout for the data phase and the CSW of this command. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface BotResult {
  /** 'failed' = CSW status 01h: the caller fetches sense data with REQUEST SENSE. */
  status: 'passed' | 'failed';
  /** Bytes the device did not transfer, as the CSW says (or computed when residue is ignored). */
  residue: number;
  /** Data-IN bytes received (empty for OUT and no-data commands). */
  data: Uint8Array;
  /** The data phase ended with a STALL (cleared). */
  stalled: boolean;
}

const DEFAULTS = {
  cbwTimeoutMs: 5_000,
  dataTimeoutMs: 30_000,
  cswTimeoutMs: 30_000,
  controlTimeoutMs: 5_000,
  resetTimeoutMs: 5_000,
  resetSettleMs: 6_000,
  portResetSettleMs: 1_000,
};

type Phase = 'cbw' | 'data' | 'csw';

/** One command on its way through the phases. */
interface BotExchange {
  cmd: BotCommand;
  tag: number;
  /** dCBWDataTransferLength. */
  expected: number;
  /** Data-IN, or no data stage. */
  directionIn: boolean;
  dataTimeout: number;
  cswTimeout: number;
  /** The phase in progress, for classifying an unexpected transport error. */
  phase: Phase;
}

/** What the data stage brought. */
interface DataStage {
  data: Uint8Array;
  /** The data stage ended with a STALL (cleared). */
  stalled: boolean;
  /** Data-IN overflowed (more data than asked). */
  babble: boolean;
  /** Data and CSW were read in one transfer and it ended in a STALL: what it brought is lost. */
  lostWithStall?: boolean;
  /** The CSW, when it came with the data (in place of it, or after it in the same transfer). */
  earlyCsw?: Uint8Array;
  /** The CSW read queued together with a data-OUT stage. */
  queuedCsw?: Promise<Uint8Array>;
}

export class BotDriver {
  readonly transport: UsbTransport;
  private readonly opts: Required<Omit<BotOptions, 'onEvent' | 'ignoreTag' | 'ignoreResidue' | 'earlyStatus'>>;
  private readonly onEvent?: (e: BotEvent) => void;
  private readonly lock = new Mutex();
  private tag = (Math.random() * 0xffffffff) >>> 0;
  private needsRecovery = false;
  /** Transport failures since the last good command; ≥1 means the last recovery did not help. */
  private failuresSinceGood = 0;
  private gone?: DeviceGoneError;
  ignoreTag: boolean;
  ignoreResidue: boolean;
  /** Queue the CSW read with the data-OUT stage. */
  earlyStatus: boolean;
  /**
   * Read data-IN that ends on a packet boundary together with the CSW. Off once such a transfer
   * ended in a STALL (a device that stalls its status): the STALL takes the data with it.
   */
  dataWithCsw = true;

  constructor(transport: UsbTransport, options: BotOptions = {}) {
    this.transport = transport;
    this.opts = {
      cbwTimeoutMs: options.cbwTimeoutMs ?? DEFAULTS.cbwTimeoutMs,
      dataTimeoutMs: options.dataTimeoutMs ?? DEFAULTS.dataTimeoutMs,
      cswTimeoutMs: options.cswTimeoutMs ?? DEFAULTS.cswTimeoutMs,
      controlTimeoutMs: options.controlTimeoutMs ?? DEFAULTS.controlTimeoutMs,
      resetTimeoutMs: options.resetTimeoutMs ?? DEFAULTS.resetTimeoutMs,
      resetSettleMs: options.resetSettleMs ?? DEFAULTS.resetSettleMs,
      portResetSettleMs: options.portResetSettleMs ?? DEFAULTS.portResetSettleMs,
    };
    this.onEvent = options.onEvent;
    this.ignoreTag = options.ignoreTag ?? false;
    this.ignoreResidue = options.ignoreResidue ?? false;
    this.earlyStatus = options.earlyStatus ?? true;
  }

  /** True once the device vanished; every later call rejects with DeviceGoneError. */
  get disconnected(): boolean {
    return this.gone !== undefined;
  }

  private get ifnum(): number {
    return this.transport.iface.interfaceNumber;
  }

  /** Get Max LUN: the highest LUN (0 for single-LUN devices, which may STALL the request). */
  getMaxLun(): Promise<number> {
    return this.lock.run(async () => {
      this.throwIfGone();
      const setup: ControlSetup = { requestType: 'class', recipient: 'interface', request: GET_MAX_LUN, value: 0, index: this.ifnum };
      try {
        const r = await this.transport.controlIn(setup, 1, { timeoutMs: Math.max(this.opts.controlTimeoutMs, 10_000) });
        if (r.length < 1 || r[0] > MAX_LUN_LIMIT) return 0;
        return r[0];
      } catch (e) {
        this.noteGone(e);
        if (e instanceof UsbTransferError) {
          // A STALL is the documented answer of single-LUN devices; a timeout is treated the same
          // way (Linux does too), but the control pipe may now need a clear.
          return 0;
        }
        throw e;
      }
    });
  }

  /** Runs one BOT exchange. Rejects with BotTransportError, DeviceGoneError or the abort reason. */
  execute(cmd: BotCommand): Promise<BotResult> {
    return this.lock.run(() => this.exchange(cmd));
  }

  /** Performs reset recovery now (e.g. after an aborted command), escalating to a port reset. */
  reset(): Promise<void> {
    return this.lock.run(async () => {
      this.throwIfGone();
      const ok = await this.recover('timeout', true);
      if (!ok) throw new BotTransportError('timeout', false, 'reset recovery and port reset both failed');
    });
  }

  private throwIfGone(): void {
    if (this.gone) throw this.gone;
  }

  private noteGone(e: unknown): void {
    if (e instanceof DeviceGoneError) this.gone ??= e;
    else if (e instanceof UsbTransferError && e.kind === 'disconnected') this.gone ??= new DeviceGoneError(e.message, { cause: e });
    if (this.gone) throw this.gone;
  }

  /**
   * One BOT exchange, phase by phase: CBW → data stage → CSW (read with its retries, then
   * validated) → result. Any failure on the way goes through reset recovery (`fail`).
   */
  private async exchange(cmd: BotCommand): Promise<BotResult> {
    await this.readyForCommand(cmd);
    const x = this.beginExchange(cmd);
    try {
      await this.sendCbw(x);
      x.phase = 'data';
      const stage = await this.dataStage(x);
      x.phase = 'csw';
      const raw = stage.earlyCsw ?? (await this.statusStage(x, stage));
      const csw = await this.validateCsw(raw, x.tag);
      return this.completeExchange(x, stage, csw);
    } catch (e) {
      return await this.recoverFromError(e, x);
    }
  }

  /** Before a command: the device is still there, the caller has not aborted, an earlier failure is recovered. */
  private async readyForCommand(cmd: BotCommand): Promise<void> {
    this.throwIfGone();
    cmd.signal?.throwIfAborted();
    if (this.needsRecovery) {
      const ok = await this.recover('timeout', false);
      if (!ok) throw new BotTransportError('timeout', false, 'device did not recover from the previous failure');
    }
  }

  /** Direction, length, a fresh tag and the timeouts of one command. */
  private beginExchange(cmd: BotCommand): BotExchange {
    const inLength = cmd.inLength ?? 0;
    const out = cmd.data;
    if (inLength > 0 && out && out.length > 0) throw new RangeError('a BOT command moves data in one direction only');
    this.tag = (this.tag + 1) >>> 0;
    return {
      cmd,
      tag: this.tag,
      expected: out ? out.length : inLength,
      directionIn: !out || out.length === 0,
      dataTimeout: cmd.timeoutMs ?? this.opts.dataTimeoutMs,
      cswTimeout: Math.max(cmd.timeoutMs ?? 0, this.opts.cswTimeoutMs),
      phase: 'cbw',
    };
  }

  /** Phase 1: the 31-byte Command Block Wrapper. */
  private async sendCbw(x: BotExchange): Promise<void> {
    const { cmd, tag, expected, directionIn } = x;
    const cbw = encodeCbw({ tag, dataTransferLength: expected, directionIn: directionIn && expected > 0, lun: cmd.lun, cdb: cmd.cdb });
    const sent = await this.transport.bulkOut(cbw, { timeoutMs: this.opts.cbwTimeoutMs, signal: cmd.signal });
    if (sent !== CBW_LENGTH) await this.fail('cbw-failed', `CBW: ${sent} of 31 bytes sent`);
  }

  /**
   * Phase 2: the data stage, if any. A STALL is cleared and the exchange goes on to the CSW; babble
   * on data-IN is remembered (the CSW still brings the pipe back in step); a 13-byte data-IN that
   * is this command's CSW means the device skipped the data stage. Anything else fails the exchange.
   */
  private async dataStage(x: BotExchange): Promise<DataStage> {
    const stage: DataStage = { data: new Uint8Array(0), stalled: false, babble: false };
    const { cmd, expected, directionIn } = x;
    if (expected === 0) return stage;
    const direction = directionIn ? 'in' : 'out';
    try {
      if (directionIn) {
        // Data that ends on a packet boundary: the CSW is the next packet, read it in the same transfer.
        const withCsw = this.dataWithCsw && expected % this.transport.iface.maxPacketSize === 0;
        stage.lostWithStall = withCsw;
        const got = await this.transport.bulkIn(withCsw ? expected + CSW_LENGTH : expected, { timeoutMs: x.dataTimeout, signal: cmd.signal });
        stage.lostWithStall = false;
        this.takeDataIn(x, stage, got);
      } else {
        const sent = this.transport.bulkOut(cmd.data!, { timeoutMs: x.dataTimeout, signal: cmd.signal });
        if (this.earlyStatus) {
          // The device NAKs the status read until it has taken the data and finished the command.
          stage.queuedCsw = this.transport.bulkIn(CSW_LENGTH, { timeoutMs: x.dataTimeout + x.cswTimeout, signal: cmd.signal });
          // Settled by statusStage, or by the error path below; never left unobserved.
          stage.queuedCsw.catch(() => undefined);
        }
        await sent;
      }
    } catch (e) {
      const kind = this.transferKind(e, cmd.signal);
      if (kind === 'stall') {
        stage.stalled = true;
        await this.clearHaltOrFail(direction, 'data');
      } else if (kind === 'babble' && directionIn) {
        stage.babble = true;
      } else {
        // The queued CSW read holds the IN pipe: let it end before reset recovery clears the halts.
        await stage.queuedCsw?.catch(() => undefined);
        await this.fail(kind === 'timeout' ? 'timeout' : 'data-failed', `data-${direction.toUpperCase()} phase: ${msg(e)}`, e);
      }
    }
    return stage;
  }

  /**
   * Sorts what a data-IN transfer brought: data only; data followed by the CSW (one transfer for
   * both); this command's CSW alone (the device skipped the data stage); or more than asked
   * (babble: the CSW is read on its own and brings the pipe back in step).
   */
  private takeDataIn(x: BotExchange, stage: DataStage, got: Uint8Array): void {
    const { expected, tag } = x;
    if (got.length === CSW_LENGTH && expected !== CSW_LENGTH && this.looksLikeOwnCsw(got, tag)) {
      this.onEvent?.({ type: 'data-phase-skipped' });
      stage.earlyCsw = got;
    } else if (got.length === expected + CSW_LENGTH) {
      // Validated as any CSW: a bad one means reset recovery, as it would when read on its own.
      stage.data = got.subarray(0, expected);
      stage.earlyCsw = got.subarray(expected);
    } else if (got.length > expected) {
      stage.babble = true;
    } else {
      stage.data = got;
    }
  }

  /**
   * Phase 3a: the CSW. A CSW read queued with the data-OUT stage is taken when it worked; when
   * the device stalled it although the data went through, it does not take early status reads:
   * the halt is cleared, status is read after the data from now on, and read once more here.
   */
  private async statusStage(x: BotExchange, stage: DataStage): Promise<Uint8Array> {
    const { cmd } = x;
    if (stage.queuedCsw) {
      try {
        const b = await stage.queuedCsw;
        // An empty read gets the same second chance as one made after the data.
        if (b.length > 0) return b;
        this.onEvent?.({ type: 'csw-retry', why: 'empty' });
      } catch (e) {
        const kind = this.transferKind(e, cmd.signal);
        if (kind !== 'stall') {
          const reason: BotFailure = kind === 'timeout' ? 'timeout' : kind === 'babble' ? 'invalid-csw' : 'csw-failed';
          return await this.fail(reason, `reading CSW: ${msg(e)}`, e);
        }
        if (!stage.stalled) {
          this.earlyStatus = false;
          this.onEvent?.({ type: 'early-status-off' });
        }
        await this.clearHaltOrFail('in', 'csw');
      }
    }
    return await this.readCsw(x.cswTimeout, cmd.signal);
  }

  /** Phase 3b: a CSW of 13 bytes, with the right signature and tag and a defined status (0 passed, 1 failed). */
  private async validateCsw(raw: Uint8Array, tag: number): Promise<Csw> {
    const csw = decodeCsw(raw);
    if (!csw) return await this.fail('invalid-csw', `CSW of ${raw.length} bytes (expected 13)`);
    if (csw.signature !== CSW_SIGNATURE) {
      return await this.fail('invalid-csw', `CSW signature 0x${csw.signature.toString(16).padStart(8, '0')} (expected 0x53425355)`);
    }
    if (csw.tag !== tag && !this.ignoreTag) {
      return await this.fail('invalid-csw', `CSW tag 0x${csw.tag.toString(16)} does not match CBW tag 0x${tag.toString(16)}`);
    }
    if (csw.status === 2) return await this.fail('phase-error', 'device reported a phase error');
    if (csw.status > 2) return await this.fail('invalid-csw', `CSW status 0x${csw.status.toString(16)} is reserved`);
    return csw;
  }

  /** Phase 4: a good CSW ends the exchange; the result carries the data and the residue. */
  private completeExchange(x: BotExchange, stage: DataStage, csw: Csw): BotResult {
    this.failuresSinceGood = 0;
    if (stage.babble) {
      // The device sent more than asked. The exchange is back in step (good CSW), but the data is
      // unusable: report it as a transport failure the caller may retry (Linux fakes 05/24/00).
      throw new BotTransportError('babble', true, 'device sent more data than requested (babble)');
    }
    if (stage.lostWithStall && csw.status === 0 && Math.min(csw.residue, x.expected) < x.expected) {
      // The device sent data (its CSW says so) and stalled the status read that came with it: the
      // data went with the STALL. The exchange is back in step; the caller may send it again.
      this.dataWithCsw = false;
      this.onEvent?.({ type: 'data-with-csw-off' });
      throw new BotTransportError('data-failed', true, 'the bulk-IN transfer of data and CSW ended in a STALL, the data with it; data and status are read apart from now on');
    }
    const { data, stalled } = stage;
    return { status: csw.status === 0 ? 'passed' : 'failed', residue: this.residueOf(x, stage, csw), data, stalled };
  }

  /**
   * Bytes not transferred: the CSW's residue (never less than what data-IN came short), or, for
   * IGNORE_RESIDUE devices, what the transfer itself shows. Switches IGNORE_RESIDUE on the way Linux
   * does: a full INQUIRY / READ CAPACITY(10) answer with a non-zero residue.
   */
  private residueOf(x: BotExchange, { data, stalled }: DataStage, csw: Csw): number {
    const { cmd, expected, directionIn } = x;
    const moved = directionIn ? data.length : stalled ? 0 : expected;
    let residue = Math.min(csw.residue, expected);
    if (!this.ignoreResidue && csw.status === 0 && directionIn && expected > 0 && data.length === expected && csw.residue !== 0 && (cmd.cdb[0] === 0x12 || cmd.cdb[0] === 0x25)) {
      // Full INQUIRY / READ CAPACITY data with a non-zero residue: this device gets residue wrong.
      this.ignoreResidue = true;
      this.onEvent?.({ type: 'ignore-residue-detected' });
    }
    if (this.ignoreResidue) residue = expected - moved;
    else if (directionIn) residue = Math.max(residue, expected - data.length);
    return residue;
  }

  /**
   * Recovery for an error no phase has handled yet: BOT failures and a vanished device pass through;
   * an abort leaves the device marked for recovery before the next command and rejects with the
   * abort reason; anything else is a transport failure of the current phase (reset recovery).
   */
  private async recoverFromError(e: unknown, x: BotExchange): Promise<never> {
    if (e instanceof BotTransportError || e instanceof DeviceGoneError) throw e;
    const { signal } = x.cmd;
    if (signal?.aborted) {
      // Cancelled mid-exchange: the device is somewhere in the middle of the protocol.
      this.needsRecovery = true;
      throw signal.reason;
    }
    this.noteGone(e);
    const kind = e instanceof UsbTransferError ? e.kind : 'io';
    const { phase } = x;
    return await this.fail(kind === 'timeout' ? 'timeout' : phase === 'cbw' ? 'cbw-failed' : phase === 'csw' ? 'csw-failed' : 'data-failed', `${phase}: ${msg(e)}`, e);
  }

  private looksLikeOwnCsw(b: Uint8Array, tag: number): boolean {
    const c = decodeCsw(b);
    return !!c && c.signature === CSW_SIGNATURE && (c.tag === tag || this.ignoreTag) && c.status <= 2;
  }

  /** Classifies a transfer failure; aborts and disconnects are rethrown. */
  private transferKind(e: unknown, signal: AbortSignal | undefined): string {
    if (signal?.aborted) throw e;
    this.noteGone(e);
    return e instanceof UsbTransferError ? e.kind : 'io';
  }

  private async clearHaltOrFail(direction: 'in' | 'out', phase: 'data' | 'csw'): Promise<void> {
    this.onEvent?.({ type: 'clear-halt', direction, phase });
    try {
      await this.transport.clearHalt(direction, { timeoutMs: this.opts.controlTimeoutMs });
    } catch (e) {
      this.noteGone(e);
      await this.fail(phase === 'data' ? 'data-failed' : 'csw-failed', `clear halt (${direction}) failed: ${msg(e)}`, e);
    }
  }

  /** Reads the CSW: an empty read is retried once, a STALL is cleared and retried once. */
  private async readCsw(timeoutMs: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    let retried = false;
    for (;;) {
      try {
        const b = await this.transport.bulkIn(CSW_LENGTH, { timeoutMs, signal });
        if (b.length === 0 && !retried) {
          retried = true;
          this.onEvent?.({ type: 'csw-retry', why: 'empty' });
          continue;
        }
        return b;
      } catch (e) {
        const kind = this.transferKind(e, signal);
        if (kind === 'stall' && !retried) {
          retried = true;
          await this.clearHaltOrFail('in', 'csw');
          this.onEvent?.({ type: 'csw-retry', why: 'stall' });
          continue;
        }
        const reason: BotFailure = kind === 'timeout' ? 'timeout' : kind === 'babble' ? 'invalid-csw' : 'csw-failed';
        return this.fail(reason, `reading CSW: ${msg(e)}`, e);
      }
    }
  }

  /** Recovers the device and throws a BotTransportError saying whether that worked. */
  private async fail(reason: BotFailure, message: string, cause?: unknown): Promise<never> {
    this.failuresSinceGood++;
    const recovered = await this.recover(reason, this.failuresSinceGood > 1);
    throw new BotTransportError(reason, recovered, recovered ? `${message} (device reset-recovered)` : `${message}; device did not recover`, {
      cause,
    });
  }

  /**
   * Reset recovery: BOMS reset, settle, clear halt IN, clear halt OUT. Escalates to a port reset
   * when that fails or when `escalate` is set (the previous recovery did not help).
   * Returns false when the device could not be brought back (it stays marked for recovery).
   */
  private async recover(reason: BotFailure, escalate: boolean): Promise<boolean> {
    this.needsRecovery = true;
    if (!escalate) {
      try {
        const setup: ControlSetup = { requestType: 'class', recipient: 'interface', request: BOMS_RESET, value: 0, index: this.ifnum };
        await this.transport.controlOut(setup, undefined, { timeoutMs: this.opts.resetTimeoutMs });
        await sleep(this.opts.resetSettleMs);
        this.onEvent?.({ type: 'clear-halt', direction: 'in', phase: 'recovery' });
        await this.transport.clearHalt('in', { timeoutMs: this.opts.controlTimeoutMs });
        this.onEvent?.({ type: 'clear-halt', direction: 'out', phase: 'recovery' });
        await this.transport.clearHalt('out', { timeoutMs: this.opts.controlTimeoutMs });
        this.onEvent?.({ type: 'reset-recovery', reason });
        this.needsRecovery = false;
        return true;
      } catch (e) {
        this.noteGone(e);
      }
    }
    try {
      await this.transport.resetPort({ timeoutMs: this.opts.resetTimeoutMs });
      await sleep(this.opts.portResetSettleMs);
      this.onEvent?.({ type: 'port-reset', reason });
      this.needsRecovery = false;
      return true;
    } catch (e) {
      this.noteGone(e);
      return false;
    }
  }
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
