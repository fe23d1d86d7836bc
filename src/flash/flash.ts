/**
 * Flashing: one decompression pass of an image fanned out to one or more destinations.
 *
 * - The producer decompresses (or reads mapped ranges of) the image, cuts it into chunks,
 *   checks bmap range checksums as the data passes, records a digest per written piece, and
 *   hands each piece to every live destination's bounded queue. Decompression runs while the
 *   destinations write; the slowest live destination sets the pace; memory is bounded by
 *   queue depth × chunk size per destination.
 * - Each destination writes its pieces except the first `headSize` bytes (partition table,
 *   boot loader), which are held back and written after everything else, so a card that fails
 *   half-way never boots. Writes are retried with back-off on transient errors; every
 *   `checkpointBytes` the device is flushed and the offset reported as a resume point.
 * - After writing, each destination is read back and compared piece by piece with the
 *   digests; a mismatch is reported as byte ranges.
 * - A destination that fails is dropped; the others go on. Source errors stop all of them
 *   (before the held-back head is written).
 */
import { createHash } from 'node:crypto';
import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange, writeRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { CancelledError, CrashcartError, ExitCode, WriteProtectedError, type ExitCodeValue } from '../errors.js';
import { rangeBytes, type Bmap } from './bmap.js';
import { decoderName } from './decompress.js';
import { DeviceGoneDuringFlashError, RefusedError, SourceError, VerificationError, type MismatchRange } from './errors.js';
import { BoundedQueue } from './queue.js';
import { RateMeter } from './progress.js';
import { classifyError, RetriesExhaustedError, withRetry } from './retry.js';
import { requiredSize, type ImageSource } from './source.js';

export const MiB = 1024 * 1024;

export interface FlashTarget {
  device: BlockDevice;
  /**
   * Continue an interrupted flash: image bytes below this offset (outside the held-back head)
   * are taken as already on the card and not written again. The last chunk before it is read
   * back and compared first, so a different card is not silently "resumed".
   */
  resumeFrom?: number;
}

export type FlashPhase = 'preflight' | 'writing' | 'finishing' | 'verifying' | 'done' | 'failed';

export type FlashEvent =
  | { type: 'phase'; target: number; device: string; phase: FlashPhase; message?: string }
  | {
      type: 'progress';
      target: number;
      device: string;
      phase: 'writing' | 'verifying';
      /** Bytes done in this phase. */
      bytes: number;
      /** Bytes this phase will handle, when known. */
      total: number | null;
      /** Bytes per second over the last two seconds. */
      speed: number;
      /** Seconds left, when known. */
      eta: number | null;
    }
  | { type: 'retry'; target: number; device: string; offset: number; attempt: number; delayMs: number; error: string }
  | { type: 'checkpoint'; target: number; device: string; offset: number }
  | { type: 'source'; compressedBytes: number; compressedTotal: number; imageBytes: number }
  | { type: 'warning'; message: string };

export interface FlashOptions {
  /** Read back and compare after writing. Default true. */
  verify?: boolean;
  /** Piece size for decompression output, writes and verification digests. Default 1 MiB. */
  chunkSize?: number;
  /** Chunks buffered per destination. Default 8. */
  queueDepth?: number;
  /** Bytes at the start of the image written last. Default 1 MiB. */
  headSize?: number;
  /** Retries per write/read/flush on transient errors. Default 5. */
  retries?: number;
  /** First back-off delay in ms (doubles per attempt). Default 250. */
  retryDelayMs?: number;
  /** Flush and report a resume point every this many written bytes. Default 32 MiB. */
  checkpointBytes?: number;
  /** Minimum interval between progress events per destination, ms. Default 250. */
  progressIntervalMs?: number;
  onEvent?: (e: FlashEvent) => void;
  signal?: AbortSignal;
}

export interface FlashErrorInfo {
  name: string;
  message: string;
  exitCode: ExitCodeValue;
  /**
   * Where `resumeFrom` should continue: for a device gone mid-write or a cancelled flash, the
   * image offset up to which data is written and flushed; after a failed verification, the
   * start of the first chunk that differs (0: write everything again).
   */
  resumeOffset?: number;
  /** Verification failure: the byte ranges that differ. */
  mismatches?: MismatchRange[];
}

export interface FlashTargetResult {
  device: string;
  kind: BlockDevice['info']['kind'];
  vendor?: string;
  model?: string;
  serial?: string;
  size: number;
  ok: boolean;
  /** Last phase reached. */
  phase: FlashPhase;
  bytesWritten: number;
  resumedFrom?: number;
  /**
   * The card was read back and equals the image, and the image passed every integrity check
   * it carries (the container's checksums — see decompress.ts — or the bmap's). Never true
   * when decoding failed, even after all the bytes were written.
   */
  verified: boolean;
  seconds: number;
  error?: FlashErrorInfo;
}

export interface FlashResult {
  image: {
    path: string;
    format: ImageSource['format'];
    decoder: string;
    /** Decompressed bytes that went through the pipeline. */
    bytes: number;
    /** Image size (bmap's ImageSize or decompressed size). */
    size: number;
    /** SHA-256 of the whole decompressed image (not for bmap reads that skip the holes). */
    sha256?: string;
    bmap?: { path: string; version: string; mappedBytes: number; checksumType?: string };
  };
  targets: FlashTargetResult[];
  ok: boolean;
  /** 0, or the exit code that sums up the failures (the table in ../errors.ts). */
  exitCode: ExitCodeValue;
  seconds: number;
}

interface Piece {
  start: number;
  data: Uint8Array;
}

interface DigestEntry {
  start: number;
  end: number;
  digest: Buffer;
}

function errInfo(e: unknown): FlashErrorInfo {
  const info: FlashErrorInfo = {
    name: (e as Error)?.name ?? 'Error',
    message: (e as Error)?.message ?? String(e),
    exitCode: e instanceof CrashcartError ? e.exitCode : ExitCode.INTERNAL,
  };
  if (e instanceof DeviceGoneDuringFlashError) info.resumeOffset = e.resumeOffset;
  if (e instanceof VerificationError) info.mismatches = e.ranges;
  return info;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** "bytes 1048576–2097151 (0x100000–0x1fffff, 1 MiB)". */
export function describeRange(r: MismatchRange): string {
  return `bytes ${r.start}–${r.end - 1} (${hex(r.start)}–${hex(r.end - 1)}, ${formatBytes(r.end - r.start)})`;
}

class Destination {
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
    private readonly o: Required<Omit<FlashOptions, 'onEvent' | 'signal'>> & Pick<FlashOptions, 'onEvent' | 'signal'>,
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

  async run(): Promise<void> {
    const { headSize, checkpointBytes } = this.o;
    this.setPhase('writing');
    this.progress('writing', 0, this.writeTotal, true);
    let p: Piece | null;
    while ((p = await this.queue.pop()) !== null) {
      const end = p.start + p.data.length;
      let start = p.start;
      let data = p.data;
      if (start < headSize) {
        const n = Math.min(data.length, headSize - start);
        this.head.push({ start, data: data.subarray(0, n) });
        start += n;
        data = data.subarray(n);
      }
      if (this.resumeFrom > 0 && !this.resumeChecked && this.resumeFrom > headSize && end <= this.resumeFrom && end > this.resumeFrom - this.o.chunkSize && data.length > 0) {
        await this.checkResume({ start, data });
        this.resumeChecked = true;
      }
      if (start < this.resumeFrom) {
        const skip = Math.min(data.length, this.resumeFrom - start);
        start += skip;
        data = data.subarray(skip);
      }
      if (data.length > 0) {
        this.lastEnd = start;
        await this.writeBytes(start, data);
        this.lastEnd = end;
        this.bytesWritten += data.length;
        this.sinceFlush += data.length;
        if (this.sinceFlush >= checkpointBytes) {
          await this.flush(end);
          this.sinceFlush = 0;
          this.durable = end;
          this.emit({ type: 'checkpoint', target: this.index, device: this.name, offset: end });
        }
      }
      this.progress('writing', this.bytesWritten + this.headBytes(), this.writeTotal);
      if (!this.live) return;
    }
    if (this.queue.error !== undefined) throw this.queue.error;
    if (!this.live) return;
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

  async verify(digests: DigestEntry[], source: ImageSource): Promise<void> {
    this.setPhase('verifying');
    let total = 0;
    for (const d of digests) total += d.end - d.start;
    let done = 0;
    this.progress('verifying', 0, total, true);
    const bad: MismatchRange[] = [];
    const MAX_READ = 4 * MiB;
    for (let i = 0; i < digests.length; ) {
      // Batch contiguous pieces into one read.
      let j = i;
      let len = 0;
      while (j < digests.length && (j === i || digests[j].start === digests[j - 1].end) && len + (digests[j].end - digests[j].start) <= MAX_READ) {
        len += digests[j].end - digests[j].start;
        j++;
      }
      const start = digests[i].start;
      let buf: Uint8Array;
      try {
        buf = await this.retry(() => readRange(this.dev, start, len, { signal: this.o.signal }), start);
      } catch (e) {
        const cls = classifyError(e);
        if (cls === 'abort') throw e;
        throw new CrashcartError(`${this.name}: reading back for verification failed at offset ${start}: ${(e as Error)?.message ?? String(e)}`, ExitCode.IO, { cause: e });
      }
      for (let k = i; k < j; k++) {
        const d = digests[k];
        const part = buf.subarray(d.start - start, d.end - start);
        const got = createHash('sha256').update(part).digest();
        if (!got.equals(d.digest)) bad.push(await this.narrow(d, part, source));
      }
      done += len;
      this.progress('verifying', done, total);
      i = j;
    }
    this.progress('verifying', done, total, true);
    if (bad.length > 0) {
      const merged: MismatchRange[] = [];
      for (const r of bad) {
        const last = merged[merged.length - 1];
        if (last && last.end === r.start && !last.exact && !r.exact) last.end = r.end;
        else merged.push({ ...r });
      }
      const shown = merged.slice(0, 5).map(describeRange).join('; ');
      const more = merged.length > 5 ? `; and ${merged.length - 5} more range(s)` : '';
      throw new VerificationError(`${this.name}: verification failed: the card differs from the image at ${shown}${more}`, merged);
    }
    this.verified = true;
  }

  /** Exact differing bytes when the image can be re-read; otherwise the whole piece. */
  private async narrow(d: DigestEntry, got: Uint8Array, source: ImageSource): Promise<MismatchRange> {
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

  finish(): void {
    this.seconds = (performance.now() - this.started) / 1000;
  }
}

function summarizeExit(results: FlashTargetResult[], sourceError: unknown, cancelled: boolean): ExitCodeValue {
  if (results.every((r) => r.ok)) return ExitCode.OK;
  if (cancelled) return ExitCode.CANCELLED;
  if (sourceError instanceof CrashcartError) return sourceError.exitCode;
  if (sourceError !== undefined) return ExitCode.SOURCE;
  const codes = results.filter((r) => !r.ok).map((r) => r.error?.exitCode ?? ExitCode.INTERNAL);
  if (codes.every((c) => c === codes[0])) return codes[0];
  if (codes.includes(ExitCode.VERIFY)) return ExitCode.VERIFY;
  return ExitCode.IO;
}

/**
 * Writes `source` to every target. Never throws for a destination's failure: each target's
 * outcome is in the result (`ok`, `error`), and `exitCode` sums them up. Devices are not
 * closed here.
 */
export async function flashImage(source: ImageSource, targets: FlashTarget[], opts: FlashOptions = {}): Promise<FlashResult> {
  const t0 = performance.now();
  const o = {
    verify: opts.verify ?? true,
    chunkSize: opts.chunkSize ?? MiB,
    queueDepth: opts.queueDepth ?? 8,
    headSize: opts.headSize ?? MiB,
    retries: opts.retries ?? 5,
    retryDelayMs: opts.retryDelayMs ?? 250,
    checkpointBytes: opts.checkpointBytes ?? 32 * MiB,
    progressIntervalMs: opts.progressIntervalMs ?? 250,
    onEvent: opts.onEvent,
    signal: opts.signal,
  };
  if (!Number.isSafeInteger(o.chunkSize) || o.chunkSize < 4096 || o.chunkSize % 4096 !== 0) {
    throw new CrashcartError(`chunk size must be a positive multiple of 4096, got ${o.chunkSize}`, ExitCode.USAGE);
  }
  if (targets.length === 0) throw new CrashcartError('no destination given', ExitCode.USAGE);
  const emit = (e: FlashEvent) => o.onEvent?.(e);
  const bmap: Bmap | undefined = source.bmap;
  const need = requiredSize(source);
  const writeTotal = bmap ? bmap.mappedBytes : (source.size.exact ?? null);

  if (source.nameSuggests) {
    emit({ type: 'warning', message: `${source.path}: the name suggests ${source.nameSuggests} but the content is ${source.format}; reading it as ${source.format}` });
  }

  const dests = targets.map((t, i) => {
    const resumeFrom = t.resumeFrom ?? 0;
    return new Destination(i, t.device, resumeFrom, o, writeTotal === null ? null : Math.max(0, writeTotal - Math.max(0, resumeFrom - o.headSize)));
  });

  // Preflight: refuse before a single byte is written.
  for (const d of dests) {
    d.setPhase('preflight');
    const dev = d.dev;
    if (dev.readOnly) {
      d.fail(new WriteProtectedError(`${d.name} is write-protected (lock switch on the card, or a read-only medium); refusing to flash`));
      continue;
    }
    if (need && need.bytes > dev.size) {
      d.fail(
        new RefusedError(
          `${d.name}: the image needs ${need.exact ? '' : 'at least '}${need.bytes} bytes (${formatBytes(need.bytes)}) but the card holds only ${dev.size} bytes (${formatBytes(dev.size)}); nothing was written`,
        ),
      );
      continue;
    }
    if (d.resumeFrom < 0 || !Number.isSafeInteger(d.resumeFrom) || (need && d.resumeFrom > need.bytes)) {
      d.fail(new CrashcartError(`${d.name}: resume offset ${d.resumeFrom} is outside the image`, ExitCode.USAGE));
    }
  }
  if (!need) {
    emit({ type: 'warning', message: `${source.path}: the ${source.format} container does not record the image size; a card that is too small is detected when the data reaches its end (the first MiB is written last, so such a card will not boot)` });
  }

  const digests: DigestEntry[] = [];
  const imageHash = source.sparseRead ? undefined : createHash('sha256');
  let streamed = 0;
  let sourceError: unknown;
  let cancelled = false;

  const runners = dests.map(async (d) => {
    if (!d.live) return;
    try {
      await d.run();
    } catch (e) {
      d.fail(e);
    }
  });

  const ranges = bmap?.ranges ?? [];
  let ri = 0;
  let rangeHash: ReturnType<typeof createHash> | undefined;

  const dispatch = async (start: number, data: Uint8Array): Promise<void> => {
    if (o.verify) digests.push({ start, end: start + data.length, digest: createHash('sha256').update(data).digest() });
    const end = start + data.length;
    const live = dests.filter((d) => d.live);
    for (const d of live) {
      if (end > d.dev.size) {
        d.fail(new RefusedError(`${d.name}: the image is larger than the card (${d.dev.size} bytes, ${formatBytes(d.dev.size)}): the data goes on past its end; the first MiB was not written, so the card will not boot`));
      }
    }
    await Promise.all(dests.filter((d) => d.live).map((d) => d.queue.push({ start, data })));
  };

  const onChunk = async (offset: number, data: Uint8Array): Promise<void> => {
    imageHash?.update(data);
    const end = offset + data.length;
    if (!bmap) return dispatch(offset, data);
    while (ri < ranges.length) {
      const r = ranges[ri];
      const rb = rangeBytes(bmap, r);
      if (rb.start >= end) break;
      const s = Math.max(rb.start, offset);
      const e = Math.min(rb.end, end);
      if (s < e) {
        const part = data.subarray(s - offset, e - offset);
        if (r.checksum && bmap.checksumType) {
          rangeHash ??= createHash(bmap.checksumType);
          rangeHash.update(part);
        }
        await dispatch(s, part);
      }
      if (rb.end <= end) {
        if (r.checksum && bmap.checksumType) {
          const got = (rangeHash ?? createHash(bmap.checksumType)).digest('hex');
          rangeHash = undefined;
          if (got !== r.checksum) {
            throw new SourceError(
              `${source.path}: checksum mismatch for blocks ${r.first}-${r.last} (bytes ${rb.start}–${rb.end - 1}): the bmap's ${bmap.checksumType} is ${r.checksum}, the image data gives ${got}; the image is corrupt or the bmap belongs to another image`,
            );
          }
        }
        ri++;
      } else break;
    }
  };

  try {
    let cur = new Uint8Array(o.chunkSize);
    let curStart = 0;
    let curLen = 0;
    const flushCur = async () => {
      if (curLen === 0) return;
      const chunk = cur.subarray(0, curLen);
      cur = new Uint8Array(o.chunkSize);
      const at = curStart;
      curStart += curLen;
      curLen = 0;
      await onChunk(at, chunk);
    };
    let lastSourceEvent = 0;
    let compressed = 0;
    for await (const ext of source.extents({ chunkSize: o.chunkSize, signal: o.signal, onInput: (n) => (compressed = n), onWarning: (message) => emit({ type: 'warning', message: `${source.path}: ${message}` }) })) {
      if (!dests.some((d) => d.live)) break;
      if (source.sparseRead) {
        streamed = Math.max(streamed, ext.offset + ext.data.length);
        await onChunk(ext.offset, ext.data);
      } else {
        let data = ext.data;
        while (data.length > 0) {
          const n = Math.min(o.chunkSize - curLen, data.length);
          cur.set(data.subarray(0, n), curLen);
          curLen += n;
          data = data.subarray(n);
          streamed += n;
          if (curLen === o.chunkSize) await flushCur();
        }
      }
      const now = performance.now();
      if (now - lastSourceEvent >= o.progressIntervalMs) {
        lastSourceEvent = now;
        emit({ type: 'source', compressedBytes: compressed, compressedTotal: source.fileSize, imageBytes: streamed });
      }
    }
    await flushCur();
    if (dests.some((d) => d.live)) {
      if (bmap && !source.sparseRead) {
        if (streamed < bmap.imageSize) {
          throw new SourceError(`${source.path} is truncated: it holds ${streamed} bytes but the bmap describes ${bmap.imageSize}`);
        }
        if (streamed > bmap.imageSize) {
          throw new SourceError(`${source.path} holds ${streamed} bytes, more than the ${bmap.imageSize} its bmap ${bmap.path} describes: wrong bmap for this image?`);
        }
      }
      if (!bmap && source.size.exact !== undefined && streamed !== source.size.exact) {
        throw new SourceError(`${source.path}: decompressed to ${streamed} bytes but the container records ${source.size.exact}`);
      }
      if (streamed === 0) throw new SourceError(`${source.path} decompresses to nothing`);
    }
    emit({ type: 'source', compressedBytes: compressed, compressedTotal: source.fileSize, imageBytes: streamed });
    for (const d of dests) d.queue.close();
  } catch (e) {
    if ((e as Error)?.name === 'AbortError' || o.signal?.aborted) {
      cancelled = true;
      const c = new CancelledError('flashing cancelled');
      for (const d of dests) if (d.live) d.fail(c);
    } else {
      sourceError = e instanceof CrashcartError ? e : new SourceError(`${source.path}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      for (const d of dests) d.queue.close(sourceError);
    }
  }
  await Promise.all(runners);
  // Stopped at a safe point: everything the finished writes put down is flushed and recorded.
  if (cancelled || o.signal?.aborted) await Promise.all(dests.map((d) => (d.error === undefined || d.error instanceof CancelledError ? d.saveProgress() : undefined)));

  if (o.verify && sourceError === undefined && !cancelled) {
    await Promise.all(
      dests.map(async (d) => {
        if (!d.live) return;
        try {
          await d.verify(digests, source);
        } catch (e) {
          d.fail(e);
        }
      }),
    );
  }
  if (o.signal?.aborted) cancelled = true;

  const results: FlashTargetResult[] = dests.map((d) => {
    const ok = d.error === undefined && !cancelled;
    const resumeOffset = ok ? undefined : d.resumeOffset(cancelled);
    const withResume = (info: FlashErrorInfo): FlashErrorInfo => (resumeOffset !== undefined ? { ...info, resumeOffset } : info);
    if (ok) {
      d.finish();
      d.setPhase('done');
    }
    const { vendor, model, serial, kind } = d.dev.info;
    return {
      device: d.name,
      kind,
      ...(vendor ? { vendor } : {}),
      ...(model ? { model } : {}),
      ...(serial ? { serial } : {}),
      size: d.dev.size,
      ok,
      phase: d.phase,
      bytesWritten: d.bytesWritten,
      ...(d.resumeFrom > 0 ? { resumedFrom: d.resumeFrom } : {}),
      verified: d.verified && sourceError === undefined,
      seconds: d.seconds,
      ...(d.error !== undefined ? { error: withResume(errInfo(d.error)) } : cancelled ? { error: withResume(errInfo(new CancelledError('flashing cancelled'))) } : {}),
    };
  });
  const exitCode = summarizeExit(results, sourceError, cancelled);
  return {
    image: {
      path: source.path,
      format: source.format,
      decoder: source.sparseRead ? 'bmap ranges read directly' : decoderName(source.format),
      bytes: streamed,
      size: bmap ? bmap.imageSize : streamed > 0 ? streamed : (source.size.exact ?? source.size.atLeast ?? 0),
      ...(imageHash && sourceError === undefined && !cancelled && dests.some((d) => d.error === undefined) ? { sha256: imageHash.digest('hex') } : {}),
      ...(bmap ? { bmap: { path: bmap.path, version: bmap.version, mappedBytes: bmap.mappedBytes, ...(bmap.checksumType ? { checksumType: bmap.checksumType } : {}) } } : {}),
    },
    targets: results,
    ok: exitCode === ExitCode.OK,
    exitCode,
    seconds: (performance.now() - t0) / 1000,
  };
}
