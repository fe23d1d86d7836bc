/**
 * One card being flashed: the per-destination stage of the pipeline. It takes pieces from its
 * bounded queue and writes them, in these steps:
 *
 * - preflight: refuse a write-protected or too small card, or a resume point outside the image,
 *   before a single byte is written;
 * - write: pieces go down as they arrive, except the first `headSize` bytes (partition table,
 *   boot loader), which are held back; on resume, the piece just below the resume point is
 *   read back and compared first, and what lies below it is skipped; every `checkpointBytes`
 *   the device is flushed and the offset reported as a resume point;
 * - finish: flush, write the held-back head, flush again, so a card that fails half-way never
 *   boots;
 * - verify: read the card back and compare it piece by piece with the digests the producer
 *   recorded, naming the differing byte ranges.
 *
 * Writes, flushes and reads are retried with back-off on transient errors. A failure ends this
 * destination only (`fail`); the others go on.
 */
import { createHash } from 'node:crypto';
import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange, writeRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { CancelledError, CardChangedError, CrashcartError, deviceFailureOf, ExitCode, exitClassOf, ioExitCode, WriteProtectedError } from '../errors.js';
import { DeviceGoneDuringFlashError, RefusedError, VerificationError, type MismatchRange } from './errors.js';
import { BoundedQueue } from './queue.js';
import { RateMeter } from './progress.js';
import { classifyError, RetriesExhaustedError, withRetry } from './retry.js';
import type { ImageSource } from './source.js';
import type { FlashErrorInfo, FlashEvent, FlashOptions, FlashPhase, FlashTargetResult } from './flash.js';

/** Image bytes handed to a destination: `data` belongs at image offset `start`. */
export interface Piece {
  start: number;
  data: Uint8Array;
}

/** SHA-256 of the image bytes `start`–`end` (exclusive), recorded as they were dispatched. */
export interface DigestEntry {
  start: number;
  end: number;
  digest: Buffer;
}

/** FlashOptions with every default filled in. */
export type ResolvedFlashOptions = Required<Omit<FlashOptions, 'onEvent' | 'signal'>> & Pick<FlashOptions, 'onEvent' | 'signal'>;

/** Largest read-back request during verification (contiguous pieces are batched up to it). */
const MAX_VERIFY_READ = 4 * 1024 * 1024;

/** Mismatching ranges named in a verification error message; the rest are counted. */
const SHOWN_MISMATCHES = 5;

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** "bytes 1048576–2097151 (0x100000–0x1fffff, 1 MiB)". */
export function describeRange(r: MismatchRange): string {
  return `bytes ${r.start}–${r.end - 1} (${hex(r.start)}–${hex(r.end - 1)}, ${formatBytes(r.end - r.start)})`;
}

/** What a failure looks like in a FlashTargetResult. */
export function errInfo(e: unknown): FlashErrorInfo {
  const exitCode = e instanceof CrashcartError ? e.exitCode : ExitCode.INTERNAL;
  const failure = deviceFailureOf(e);
  const info: FlashErrorInfo = {
    name: (e as Error)?.name ?? 'Error',
    message: (e as Error)?.message ?? String(e),
    exitCode,
    class: exitClassOf(exitCode),
    ...(failure ? { failure } : {}),
  };
  if (e instanceof DeviceGoneDuringFlashError) info.resumeOffset = e.resumeOffset;
  if (e instanceof VerificationError) info.mismatches = e.ranges;
  return info;
}

/** Digests `i`…`j - 1`: contiguous pieces from `i` on that fit one read of at most MAX_VERIFY_READ bytes. */
function contiguousBatch(digests: DigestEntry[], i: number): { j: number; len: number } {
  let j = i;
  let len = 0;
  while (j < digests.length && (j === i || digests[j].start === digests[j - 1].end) && len + (digests[j].end - digests[j].start) <= MAX_VERIFY_READ) {
    len += digests[j].end - digests[j].start;
    j++;
  }
  return { j, len };
}

/** Joins adjacent whole-piece mismatches (exact byte ranges stay as they are). */
function mergeMismatches(bad: MismatchRange[]): MismatchRange[] {
  const merged: MismatchRange[] = [];
  for (const r of bad) {
    const last = merged[merged.length - 1];
    if (last && last.end === r.start && !last.exact && !r.exact) last.end = r.end;
    else merged.push({ ...r });
  }
  return merged;
}

/** Exact differing bytes when the image can be re-read; otherwise the whole piece. */
async function narrowMismatch(d: DigestEntry, got: Uint8Array, source: ImageSource): Promise<MismatchRange> {
  if (source.readAt) {
    const want = await source.readAt(d.start, d.end - d.start);
    if (want.length === got.length) {
      let a = 0;
      while (a < got.length && got[a] === want[a]) a++;
      let b = got.length;
      while (b > a && got[b - 1] === want[b - 1]) b--;
      if (a < b) return { start: d.start + a, end: d.start + b, exact: true };
    }
  }
  return { start: d.start, end: d.end, exact: false };
}

export class Destination {
  readonly queue: BoundedQueue<Piece>;
  readonly name: string;
  phase: FlashPhase = 'preflight';
  error?: unknown;
  bytesWritten = 0;
  /** Image offset up to which everything outside the head is written and flushed. */
  durable: number;
  private head: Piece[] = [];
  private sinceFlush = 0;
  private lastEnd = 0;
  private readonly meter = new RateMeter();
  private lastProgress = 0;
  private readonly started = performance.now();
  seconds = 0;
  verified = false;
  private resumeChecked = false;

  constructor(
    readonly index: number,
    readonly dev: BlockDevice,
    readonly resumeFrom: number,
    private readonly o: ResolvedFlashOptions,
    private readonly writeTotal: number | null,
  ) {
    this.queue = new BoundedQueue<Piece>(o.queueDepth);
    this.name = dev.info.name;
    this.durable = resumeFrom;
  }

  get live(): boolean {
    return this.error === undefined && !this.queue.isDead;
  }

  emit(e: FlashEvent): void {
    this.o.onEvent?.(e);
  }

  setPhase(phase: FlashPhase, message?: string): void {
    this.phase = phase;
    this.emit({ type: 'phase', target: this.index, device: this.name, phase, ...(message ? { message } : {}) });
  }

  fail(e: unknown): void {
    if (this.error !== undefined) return;
    this.error = (e as Error)?.name === 'AbortError' ? new CancelledError('flashing cancelled') : e;
    this.queue.kill();
    this.seconds = (performance.now() - this.started) / 1000;
    this.setPhase('failed', (this.error as Error)?.message ?? String(this.error));
  }

  progress(phase: 'writing' | 'verifying', bytes: number, total: number | null, force = false): void {
    const now = performance.now();
    const speed = this.meter.update(bytes, now);
    if (!force && now - this.lastProgress < this.o.progressIntervalMs) return;
    this.lastProgress = now;
    const eta = total !== null ? this.meter.eta(Math.max(0, total - bytes)) : null;
    this.emit({ type: 'progress', target: this.index, device: this.name, phase, bytes, total, speed, eta });
  }

  /**
   * Refuses the card before anything is written: write-protected, smaller than the image
   * (`need`, when the size is known), or a resume point outside the image.
   */
  preflight(need: { bytes: number; exact: boolean } | undefined): void {
    this.setPhase('preflight');
    const dev = this.dev;
    if (dev.readOnly) {
      this.fail(new WriteProtectedError(`${this.name} is write-protected (lock switch on the card, or a read-only medium); refusing to flash`));
      return;
    }
    if (need && need.bytes > dev.size) {
      this.fail(
        new RefusedError(
          `${this.name}: the image needs ${need.exact ? '' : 'at least '}${need.bytes} bytes (${formatBytes(need.bytes)}) but the card holds only ${dev.size} bytes (${formatBytes(dev.size)}); nothing was written`,
        ),
      );
      return;
    }
    if (this.resumeFrom < 0 || !Number.isSafeInteger(this.resumeFrom) || (need && this.resumeFrom > need.bytes)) {
      this.fail(new CrashcartError(`${this.name}: resume offset ${this.resumeFrom} is outside the image`, ExitCode.USAGE));
    }
  }

  private retry<T>(op: () => Promise<T>, offset: number): Promise<T> {
    return withRetry(op, {
      retries: this.o.retries,
      baseDelayMs: this.o.retryDelayMs,
      signal: this.o.signal,
      onRetry: (attempt, delayMs, err) =>
        this.emit({ type: 'retry', target: this.index, device: this.name, offset, attempt, delayMs, error: (err as Error)?.message ?? String(err) }),
    });
  }

  /** Turns a write-phase error into what the user should see. */
  private writeError(e: unknown, offset: number): unknown {
    const cls = classifyError(e);
    if (cls === 'abort' || cls === 'write-protected') return e;
    if (cls === 'gone' || e instanceof RetriesExhaustedError) {
      const why = cls === 'gone' ? 'the card or reader went away' : 'the device kept failing';
      const resume =
        this.durable > 0
          ? `data up to offset ${this.durable} (${formatBytes(this.durable)}) is written and flushed; re-insert the card and run the same command with --resume`
          : 'nothing was flushed yet; re-insert the card and flash again';
      return new DeviceGoneDuringFlashError(`${this.name}: ${why} while writing at offset ${offset}: ${(e as Error)?.message ?? String(e)}; ${resume}`, this.durable, { cause: e });
    }
    return e;
  }

  private async writeBytes(pos: number, data: Uint8Array): Promise<void> {
    try {
      await this.retry(() => writeRange(this.dev, pos, data, { signal: this.o.signal }), pos);
    } catch (e) {
      throw this.writeError(e, pos);
    }
  }

  private async flush(at: number): Promise<void> {
    try {
      await this.retry(() => this.dev.flush({ signal: this.o.signal }), at);
    } catch (e) {
      throw this.writeError(e, at);
    }
  }

  /** On resume: the chunk just below the resume point must already be on the card. */
  private async checkResume(p: Piece): Promise<void> {
    const data = await this.retry(() => readRange(this.dev, p.start, p.data.length, { signal: this.o.signal }), p.start);
    if (!Buffer.from(data).equals(Buffer.from(p.data))) {
      throw new RefusedError(
        `${this.name}: cannot resume at offset ${this.resumeFrom}: the card does not hold this image's bytes at ${p.start}–${p.start + p.data.length - 1} (a different card, or it was written since); flash again without --resume`,
      );
    }
  }

  /** Keeps the part of `p` inside the head for the end; returns the rest. */
  private holdBackHead(p: Piece): Piece {
    const { headSize } = this.o;
    if (p.start >= headSize) return p;
    const n = Math.min(p.data.length, headSize - p.start);
    this.head.push({ start: p.start, data: p.data.subarray(0, n) });
    return { start: p.start + n, data: p.data.subarray(n) };
  }

  /** Whether `p` (ending at `end`) is the piece just below the resume point, not yet compared. */
  private isResumeCheckPiece(p: Piece, end: number): boolean {
    const { resumeFrom } = this;
    return resumeFrom > 0 && !this.resumeChecked && resumeFrom > this.o.headSize && end <= resumeFrom && end > resumeFrom - this.o.chunkSize && p.data.length > 0;
  }

  /** Drops the part of `p` below the resume point: it is on the card already. */
  private skipResumed(p: Piece): Piece {
    if (p.start >= this.resumeFrom) return p;
    const skip = Math.min(p.data.length, this.resumeFrom - p.start);
    return { start: p.start + skip, data: p.data.subarray(skip) };
  }

  /** Writes `p` (which ends the dispatched piece at `end`), flushing at each checkpoint. */
  private async writePiece(p: Piece, end: number): Promise<void> {
    this.lastEnd = p.start;
    await this.writeBytes(p.start, p.data);
    this.lastEnd = end;
    this.bytesWritten += p.data.length;
    this.sinceFlush += p.data.length;
    if (this.sinceFlush >= this.o.checkpointBytes) {
      await this.flush(end);
      this.sinceFlush = 0;
      this.durable = end;
      this.emit({ type: 'checkpoint', target: this.index, device: this.name, offset: end });
    }
  }

  /** One dispatched piece through the write steps. */
  private async take(piece: Piece): Promise<void> {
    const end = piece.start + piece.data.length;
    let p = this.holdBackHead(piece);
    if (this.isResumeCheckPiece(p, end)) {
      await this.checkResume(p);
      this.resumeChecked = true;
    }
    p = this.skipResumed(p);
    if (p.data.length > 0) await this.writePiece(p, end);
    this.progress('writing', this.bytesWritten + this.headBytes(), this.writeTotal);
  }

  /** After the last piece: flush, then write the held-back head and flush again. */
  private async finishWrites(): Promise<void> {
    this.setPhase('finishing');
    await this.flush(this.lastEnd);
    if (this.lastEnd > this.durable) {
      this.durable = this.lastEnd;
      this.emit({ type: 'checkpoint', target: this.index, device: this.name, offset: this.durable });
    }
    for (const h of this.head) {
      await this.writeBytes(h.start, h.data);
      this.bytesWritten += h.data.length;
    }
    await this.flush(0);
    this.progress('writing', this.bytesWritten, this.writeTotal, true);
  }

  /** Writes everything the queue delivers, then finishes the card (unless it failed or the source did). */
  async run(): Promise<void> {
    this.setPhase('writing');
    this.progress('writing', 0, this.writeTotal, true);
    let p: Piece | null;
    while ((p = await this.queue.pop()) !== null) {
      await this.take(p);
      if (!this.live) return;
    }
    if (this.queue.error !== undefined) throw this.queue.error;
    if (!this.live) return;
    await this.finishWrites();
  }

  /**
   * After a cancellation: flush what the completed writes put on the card and advance the
   * resume point to the end of the last one, so the journal does not fall back to the last
   * periodic checkpoint. Errors keep the older resume point.
   */
  async saveProgress(): Promise<void> {
    if (this.lastEnd <= this.durable) return;
    const upTo = this.lastEnd;
    try {
      await this.dev.flush();
    } catch {
      return;
    }
    this.durable = upTo;
    this.emit({ type: 'checkpoint', target: this.index, device: this.name, offset: upTo });
  }

  /** See FlashErrorInfo.resumeOffset. */
  resumeOffset(cancelled: boolean): number | undefined {
    const e = this.error;
    if (e instanceof VerificationError && e.ranges.length > 0) {
      const first = Math.min(...e.ranges.map((r) => r.start));
      return Math.floor(first / this.o.chunkSize) * this.o.chunkSize;
    }
    if (e instanceof DeviceGoneDuringFlashError) return e.resumeOffset;
    if ((cancelled || e instanceof CancelledError) && this.durable > 0) return this.durable;
    return undefined;
  }

  private headBytes(): number {
    let n = 0;
    for (const h of this.head) n += h.data.length;
    return n;
  }

  /** Reads `len` bytes at `start` back for verification. */
  private async readBack(start: number, len: number): Promise<Uint8Array> {
    try {
      return await this.retry(() => readRange(this.dev, start, len, { signal: this.o.signal }), start);
    } catch (e) {
      const cls = classifyError(e);
      if (cls === 'abort' || e instanceof CardChangedError) throw e;
      throw new CrashcartError(`${this.name}: reading back for verification failed at offset ${start}: ${(e as Error)?.message ?? String(e)}`, ioExitCode(deviceFailureOf(e)), {
        cause: e,
      });
    }
  }

  /** Compares what the card holds (`buf`, from image offset `start`) with digests `i`…`j - 1`. */
  private async compareBatch(digests: DigestEntry[], i: number, j: number, start: number, buf: Uint8Array, source: ImageSource): Promise<MismatchRange[]> {
    const bad: MismatchRange[] = [];
    for (let k = i; k < j; k++) {
      const d = digests[k];
      const part = buf.subarray(d.start - start, d.end - start);
      const got = createHash('sha256').update(part).digest();
      if (!got.equals(d.digest)) bad.push(await narrowMismatch(d, part, source));
    }
    return bad;
  }

  /** Reads the card back and compares it with `digests`; throws a VerificationError naming the differing ranges. */
  async verify(digests: DigestEntry[], source: ImageSource): Promise<void> {
    this.setPhase('verifying');
    let total = 0;
    for (const d of digests) total += d.end - d.start;
    let done = 0;
    this.progress('verifying', 0, total, true);
    const bad: MismatchRange[] = [];
    for (let i = 0; i < digests.length;) {
      const { j, len } = contiguousBatch(digests, i);
      const start = digests[i].start;
      const buf = await this.readBack(start, len);
      bad.push(...(await this.compareBatch(digests, i, j, start, buf, source)));
      done += len;
      this.progress('verifying', done, total);
      i = j;
    }
    this.progress('verifying', done, total, true);
    if (bad.length > 0) {
      const merged = mergeMismatches(bad);
      const shown = merged.slice(0, SHOWN_MISMATCHES).map(describeRange).join('; ');
      const more = merged.length > SHOWN_MISMATCHES ? `; and ${merged.length - SHOWN_MISMATCHES} more range(s)` : '';
      throw new VerificationError(`${this.name}: verification failed: the card differs from the image at ${shown}${more}`, merged);
    }
    this.verified = true;
  }

  finish(): void {
    this.seconds = (performance.now() - this.started) / 1000;
  }

  /**
   * This card's outcome. `cancelled`: the flash was stopped; `sourceFailed`: the image could not
   * be read to the end (the card then never counts as verified).
   */
  result(cancelled: boolean, sourceFailed: boolean): FlashTargetResult {
    const ok = this.error === undefined && !cancelled;
    const resumeOffset = ok ? undefined : this.resumeOffset(cancelled);
    const withResume = (info: FlashErrorInfo): FlashErrorInfo => (resumeOffset !== undefined ? { ...info, resumeOffset } : info);
    if (ok) {
      this.finish();
      this.setPhase('done');
    }
    const { vendor, model, serial, kind } = this.dev.info;
    return {
      device: this.name,
      kind,
      ...(vendor ? { vendor } : {}),
      ...(model ? { model } : {}),
      ...(serial ? { serial } : {}),
      size: this.dev.size,
      ok,
      phase: this.phase,
      bytesWritten: this.bytesWritten,
      ...(this.resumeFrom > 0 ? { resumedFrom: this.resumeFrom } : {}),
      verified: this.verified && !sourceFailed,
      seconds: this.seconds,
      ...(this.error !== undefined ? { error: withResume(errInfo(this.error)) } : cancelled ? { error: withResume(errInfo(new CancelledError('flashing cancelled'))) } : {}),
    };
  }
}
