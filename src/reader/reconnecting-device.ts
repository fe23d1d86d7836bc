/**
 * A card in a USB reader that survives the reader going away for a moment: unplugged and plugged
 * back, re-enumerated under a new address after a port reset, or the card pulled and pushed back.
 *
 * Every read, write and flush runs on the current `UsbBlockDevice`. When one fails because the
 * device is gone (failure kind `gone`: the reader disconnected, BOT could not recover it, the slot
 * is empty or reports a medium change), the reader is looked for again — on the same port path
 * (and with the same serial, when it has one), or by its serial on another port — for at most
 * `timeoutMs`. The slot is reopened and checked to hold the same card before anything else is
 * sent to it:
 *  - the reader: the same VID:PID and INQUIRY vendor/product;
 *  - the card: the same capacity and logical block size;
 *  - its contents: the first bytes of the card as read at open (until something is written there)
 *    and the last bytes read or written before it went away are read back and compared (SHA-256).
 *    A different card of the same size fails here, and so does the same card if it lost a write the
 *    reader had confirmed.
 * A device that passes is admitted again (`admit`: the write gate), and the command that failed is
 * run again from its start — the whole chunk the caller asked for, so data the reader took but did
 * not confirm is written again. A different card ends the operation with CardChangedError (exit
 * 13) before anything is written to it; no reader in time ends it with DeviceGoneError (exit 3).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlockDevice, BlockDeviceInfo, IoOptions } from '../blockdev/block-device.js';
import type { ReconnectEvent, ReconnectMatch, ReconnectOptions } from '../blockdev/reconnect.js';
import type { UsbBlockDevice } from '../blockdev/usb-device.js';
import { CardChangedError, deviceFailureOf } from '../errors.js';
import { DeviceGoneError, UsbAccessError, UsbBusyError } from '../usb/errors.js';
import type { UsbDeviceInfo, UsbHost } from '../usb/transport.js';
import { formatBytes } from '../util/format-bytes.js';
import { openUsbDevice, openUsbSlot, type UsbOpenOptions } from './open-usb.js';
import { loadReaderProfiles, type ReaderProfile } from './reader-profiles.js';
import { matchReader } from './reader-identity.js';

/** Bytes of the card remembered per sample (rounded up to a whole block). */
const SAMPLE_BYTES = 4096;
/** Pause between looks for the reader. */
const POLL_MS = 250;
/** Reconnections for one command before it fails all the same (a reader that keeps dropping out). */
const MAX_RECONNECTS_PER_COMMAND = 3;

/** Where on the card a sample was taken and the SHA-256 of what was there. */
interface Sample {
  offset: number;
  length: number;
  digest: string;
  /** `open`: read when the device was opened; `last`: the tail of the last completed read or write. */
  kind: 'open' | 'last';
}

// node:crypto when a reconnect first compares data, not when a command starts (loading it: ~4 ms).
const sha256 = (b: Uint8Array) => process.getBuiltinModule('node:crypto').createHash('sha256').update(b).digest('hex');
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Errors of a reopen that can clear up while the reader settles (enumeration, udev, the kernel driver's probe). */
function settling(e: unknown): boolean {
  const f = deviceFailureOf(e);
  return f === 'gone' || f === 'transient' || e instanceof UsbAccessError || e instanceof UsbBusyError;
}

export interface ReconnectContext {
  host: UsbHost;
  profiles: readonly ReaderProfile[];
  /** How the slot is opened again (write, BOT/SCSI options, transfer size…). */
  open: UsbOpenOptions;
  reconnect: ReconnectOptions;
  /** Pause between looks (tests). Default 250 ms. */
  pollMs?: number;
}

export class ReconnectingUsbDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly alignment: number;
  /** How many times the reader came back. */
  reconnects = 0;
  private dev: UsbBlockDevice;
  private reader: UsbDeviceInfo;
  private readonly lun: number;
  private readonly inquiry: { vendor: string; product: string };
  private samples: Sample[] = [];
  private closed = false;

  private constructor(
    dev: UsbBlockDevice,
    private readonly ctx: ReconnectContext,
  ) {
    this.dev = dev;
    this.size = dev.size;
    this.blockSize = dev.blockSize;
    this.alignment = dev.alignment;
    this.lun = dev.scsi.lun;
    // A copy: a transport that finds its device again after a reset updates its own record.
    this.reader = { ...dev.scsi.bot.transport.device };
    this.inquiry = { vendor: dev.state.inquiry.vendor, product: dev.state.inquiry.product };
  }

  /**
   * Wraps an open slot and takes the first sample of the card. A card whose first block cannot be
   * read (a damaged card being rescued) gets no such sample; a cancellation closes the device.
   */
  static async wrap(dev: UsbBlockDevice, ctx: ReconnectContext): Promise<ReconnectingUsbDevice> {
    const r = new ReconnectingUsbDevice(dev, ctx);
    const len = r.sampleLength(dev.size);
    try {
      r.samples.push({ offset: 0, length: len, digest: sha256(await dev.read(0, len, { signal: ctx.open.signal })), kind: 'open' });
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' || deviceFailureOf(e) === 'gone') {
        await dev.close().catch(() => undefined);
        throw e;
      }
    }
    return r;
  }

  get info(): BlockDeviceInfo {
    return this.dev.info;
  }

  get readOnly(): boolean {
    return this.dev.readOnly;
  }

  /** The reader as it is now (port path and address change when it comes back elsewhere). */
  get usbDevice(): UsbDeviceInfo {
    return this.reader;
  }

  read(offset: number, length: number, opts: IoOptions = {}): Promise<Uint8Array> {
    return this.run(opts, undefined, async (d) => {
      const data = await d.read(offset, length, opts);
      this.remember(offset, data);
      return data;
    });
  }

  write(offset: number, data: Uint8Array, opts: IoOptions = {}): Promise<void> {
    return this.run(opts, { offset, length: data.length }, async (d) => {
      await d.write(offset, data, opts);
      this.remember(offset, data);
    });
  }

  flush(opts: IoOptions = {}): Promise<void> {
    return this.run(opts, undefined, (d) => d.flush(opts));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dev.close();
  }

  private sampleLength(upTo: number): number {
    const bs = this.blockSize;
    return Math.min(upTo, Math.ceil(SAMPLE_BYTES / bs) * bs);
  }

  /** After `data` was read or written at `offset`: its tail is the new "last" sample; samples it covers are stale. */
  private remember(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    this.forget(offset, data.length);
    const len = this.sampleLength(data.length);
    this.samples = this.samples.filter((s) => s.kind !== 'last');
    this.samples.push({ offset: offset + data.length - len, length: len, digest: sha256(data.subarray(data.length - len)), kind: 'last' });
  }

  /** Drops the samples overlapping `offset`+`length` (written, or possibly half-written). */
  private forget(offset: number, length: number): void {
    this.samples = this.samples.filter((s) => s.offset + s.length <= offset || s.offset >= offset + length);
  }

  /** Runs `op` on the current device, reconnecting and running it again when the device went away. */
  private async run<T>(opts: IoOptions, writing: { offset: number; length: number } | undefined, op: (d: UsbBlockDevice) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op(this.dev);
      } catch (e) {
        if (this.closed || opts.signal?.aborted || deviceFailureOf(e) !== 'gone' || this.ctx.reconnect.timeoutMs <= 0) throw e;
        if (attempt >= MAX_RECONNECTS_PER_COMMAND) {
          throw new DeviceGoneError(`${this.info.name}: the reader went away ${attempt + 1} times during one command: ${message(e)}`, { cause: e });
        }
        // A write cut off half-way may have changed what a sample covers.
        if (writing) this.forget(writing.offset, writing.length);
        await this.reconnect(e, opts.signal);
      }
    }
  }

  private emit(e: ReconnectEvent): void {
    this.ctx.reconnect.onEvent?.(e);
  }

  /** Waits for the reader, reopens the slot, checks the card and admits it; throws when any of it fails. */
  private async reconnect(cause: unknown, signal: AbortSignal | undefined): Promise<void> {
    const started = performance.now();
    const { timeoutMs } = this.ctx.reconnect;
    const gone = this.reader;
    const previous = this.dev.info;
    this.emit({ type: 'reader-gone', device: previous.name, port: gone.portPath, address: gone.address, error: message(cause), timeoutMs });
    await this.dev.close().catch(() => undefined);
    let lastError: unknown;
    for (;;) {
      signal?.throwIfAborted();
      const found = await this.look(gone);
      if (found) {
        const next = await this.reopen(found.device).catch((e: unknown) => {
          if (!settling(e)) throw e;
          lastError = e;
          return undefined;
        });
        if (next && (await this.accept(next, previous, signal))) {
          this.dev = next;
          this.reader = { ...found.device };
          this.reconnects++;
          const afterMs = Math.round(performance.now() - started);
          this.emit({
            type: 'reader-back',
            device: next.info.name,
            port: found.device.portPath,
            address: found.device.address,
            previousPort: gone.portPath,
            previousAddress: gone.address,
            match: found.match,
            afterMs,
          });
          return;
        }
      }
      const left = started + timeoutMs - performance.now();
      if (left <= 0) {
        const seen = lastError === undefined ? '' : `; the last attempt to reopen it: ${message(lastError)}`;
        throw new DeviceGoneError(
          `${previous.name}: the reader went away (${message(cause)}) and did not come back within ${(timeoutMs / 1000).toFixed(1)} s (looked for port ${gone.portPath}${gone.serial ? ` or serial ${gone.serial}` : ''})${seen}`,
          { cause },
        );
      }
      await sleep(Math.min(this.ctx.pollMs ?? POLL_MS, left), undefined, { signal });
    }
  }

  /** The reader that went away, if it is listed again (its own port first). */
  private async look(gone: UsbDeviceInfo): Promise<{ device: UsbDeviceInfo; match: ReconnectMatch } | undefined> {
    let list: UsbDeviceInfo[];
    try {
      list = await this.ctx.host.list();
    } catch {
      return undefined;
    }
    const found = list.map((device) => ({ device, match: matchReader(gone, device) })).filter((c): c is { device: UsbDeviceInfo; match: ReconnectMatch } => c.match !== undefined);
    return found.find((c) => c.match === 'port') ?? found[0];
  }

  private reopen(d: UsbDeviceInfo): Promise<UsbBlockDevice> {
    return openUsbSlot(this.ctx.host, d, this.lun, this.ctx.profiles, this.ctx.open);
  }

  /**
   * Checks that `next` holds the same card and admits it; closes it and throws when it does not.
   * False (closed) when it went away again during the check.
   */
  private async accept(next: UsbBlockDevice, previous: BlockDeviceInfo, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.checkSameCard(next, previous, signal);
      await this.ctx.reconnect.admit?.(next, previous);
      return true;
    } catch (e) {
      await next.close().catch(() => undefined);
      if (!(e instanceof CardChangedError) && deviceFailureOf(e) === 'gone' && !signal?.aborted) return false;
      throw e;
    }
  }

  private async checkSameCard(next: UsbBlockDevice, previous: BlockDeviceInfo, signal: AbortSignal | undefined): Promise<void> {
    const was = `${previous.name} went away and came back as ${next.info.name}`;
    const nothing = 'nothing was written to it; check the card and run the command again';
    const inq = next.state.inquiry;
    if (inq.vendor !== this.inquiry.vendor || inq.product !== this.inquiry.product) {
      throw new CardChangedError(
        `${was}, but the reader now answers "${inq.vendor} ${inq.product}" instead of "${this.inquiry.vendor} ${this.inquiry.product}": another reader; ${nothing}`,
      );
    }
    if (next.size !== this.size || next.blockSize !== this.blockSize) {
      throw new CardChangedError(
        `${was} holding a card of ${next.size} bytes (${formatBytes(next.size)}) in blocks of ${next.blockSize}, not ${this.size} bytes (${formatBytes(this.size)}) in blocks of ${this.blockSize}: a different card; ${nothing}`,
      );
    }
    for (const s of this.samples) {
      const got = sha256(await next.read(s.offset, s.length, { signal }));
      if (got !== s.digest) {
        const what = s.kind === 'open' ? 'as it was read when the command started' : 'as they were last read or written';
        throw new CardChangedError(
          `${was}, but its bytes ${s.offset}–${s.offset + s.length - 1} are not ${what}: a different card of the same size, or the card lost data the reader had confirmed; ${nothing}`,
        );
      }
    }
  }
}

/**
 * Opens the card a `usb…` selector names, like openUsbDevice, as a device that waits for its
 * reader to come back (`opts.reconnect`) when it goes away.
 */
export async function openReconnectingUsbDevice(spec: string, opts: UsbOpenOptions & { reconnect: ReconnectOptions; pollMs?: number }): Promise<ReconnectingUsbDevice> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const { reconnect, pollMs, ...open } = opts;
  const dev = await openUsbDevice(spec, { ...open, host, profiles });
  return ReconnectingUsbDevice.wrap(dev, { host, profiles, open: { ...open, host, profiles }, reconnect, ...(pollMs !== undefined ? { pollMs } : {}) });
}
