/**
 * Flashing: one decompression pass of an image fanned out to one or more destinations.
 * flashImage() wires the stages together:
 *
 * - the producer (producer.ts) decompresses (or reads mapped ranges of) the image, cuts it into
 *   chunks (rechunk.ts), keeps the image's SHA-256 (when verifying), keeps only the bmap's mapped ranges and
 *   checks their checksums as the data passes (bmap-ranges.ts), and hands each piece, with a
 *   digest of it, to every live destination's bounded queue (fan-out.ts). Decompression runs
 *   while the destinations write; the slowest live destination sets the pace; memory is
 *   bounded by queue depth × chunk size per destination.
 * - each destination (destination.ts) is checked before anything is written, writes its
 *   pieces with the first `headSize` bytes (partition table, boot loader) held back until the
 *   end, so a card that fails half-way never boots, flushes and reports a resume point every
 *   `checkpointBytes`, and is then read back and compared with the digests.
 * - a destination that fails is dropped; the others go on. Source errors stop all of them
 *   (before the held-back head is written).
 */
import type { BlockDevice } from '../blockdev/block-device.js';
import { CancelledError, CrashcartError, ExitCode, type DeviceFailure, type ExitClass, type ExitCodeValue } from '../errors.js';
import { Destination, type DigestEntry, type ResolvedFlashOptions } from './destination.js';
import type { MismatchRange } from './errors.js';
import { FanOut } from './fan-out.js';
import { Producer } from './producer.js';
import { requiredSize, sourceDecoder, type ImageSource } from './source.js';

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
  /** What kind of fault `exitCode` reports (EXIT_CLASS in ../errors.ts). */
  class: ExitClass;
  /** The device failure kind, when the error carries one. */
  failure?: DeviceFailure;
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
   * it carries (the container's checksums — see decompress.ts — or the bmap's; a zstd frame
   * skipped because it lies wholly in a bmap hole is not checked, and none of it is written). Never true
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
    /** SHA-256 of the whole decompressed image (not for bmap reads that skip the holes, nor without verification). */
    sha256?: string;
    bmap?: { path: string; version: string; mappedBytes: number; checksumType?: string };
  };
  targets: FlashTargetResult[];
  ok: boolean;
  /** 0, or the exit code that sums up the failures (the table in ../errors.ts). */
  exitCode: ExitCodeValue;
  seconds: number;
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

/** The options with their defaults; a chunk size that is not a multiple of 4096 is refused. */
function resolveOptions(opts: FlashOptions): ResolvedFlashOptions {
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
  return o;
}

/** One Destination per target; each knows how many bytes it will write (for progress), when known. */
function createDestinations(source: ImageSource, targets: FlashTarget[], o: ResolvedFlashOptions): Destination[] {
  const writeTotal = source.bmap ? source.bmap.mappedBytes : (source.size.exact ?? null);
  return targets.map((t, i) => {
    const resumeFrom = t.resumeFrom ?? 0;
    return new Destination(i, t.device, resumeFrom, o, writeTotal === null ? null : Math.max(0, writeTotal - Math.max(0, resumeFrom - o.headSize)));
  });
}

/** Refuses unsuitable cards before a single byte is written; warns when the image size is unknown. */
function preflight(source: ImageSource, dests: Destination[], emit: (e: FlashEvent) => void): void {
  const need = requiredSize(source);
  for (const d of dests) d.preflight(need);
  if (!need) {
    emit({
      type: 'warning',
      message: `${source.path}: the ${source.format} container does not record the image size; a card that is too small is detected when the data reaches its end (the first MiB is written last, so such a card will not boot)`,
    });
  }
}

/** Runs a destination's writer; its failure fails that destination only. */
async function runWriter(d: Destination): Promise<void> {
  if (!d.live) return;
  try {
    await d.run();
  } catch (e) {
    d.fail(e);
  }
}

/** Reads every card still live back and compares it with the digests. */
async function verifyAll(dests: Destination[], digests: DigestEntry[], source: ImageSource): Promise<void> {
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

/** FlashResult.image: what went through the pipeline; `sha256` only when the whole image did. */
function imageReport(source: ImageSource, producer: Producer, hashComplete: boolean): FlashResult['image'] {
  const { bmap } = source;
  const streamed = producer.streamed;
  return {
    path: source.path,
    format: source.format,
    decoder: sourceDecoder(source),
    bytes: streamed,
    size: bmap ? bmap.imageSize : streamed > 0 ? streamed : (source.size.exact ?? source.size.atLeast ?? 0),
    ...(producer.imageHash && hashComplete ? { sha256: producer.imageHash.digest('hex') } : {}),
    ...(bmap ? { bmap: { path: bmap.path, version: bmap.version, mappedBytes: bmap.mappedBytes, ...(bmap.checksumType ? { checksumType: bmap.checksumType } : {}) } } : {}),
  };
}

/**
 * Writes `source` to every target. Never throws for a destination's failure: each target's
 * outcome is in the result (`ok`, `error`), and `exitCode` sums them up. Devices are not
 * closed here.
 */
export async function flashImage(source: ImageSource, targets: FlashTarget[], opts: FlashOptions = {}): Promise<FlashResult> {
  const t0 = performance.now();
  const o = resolveOptions(opts);
  if (targets.length === 0) throw new CrashcartError('no destination given', ExitCode.USAGE);
  const emit = (e: FlashEvent) => o.onEvent?.(e);
  if (source.nameSuggests) {
    emit({ type: 'warning', message: `${source.path}: the name suggests ${source.nameSuggests} but the content is ${source.format}; reading it as ${source.format}` });
  }
  const dests = createDestinations(source, targets, o);
  preflight(source, dests, emit);

  const fanOut = new FanOut(dests, o.verify);
  const writers = dests.map(runWriter);
  const producer = new Producer(source, fanOut, o, emit);
  const { sourceError, cancelled: stopped } = await producer.run();
  await Promise.all(writers);
  let cancelled = stopped;
  // Stopped at a safe point: everything the finished writes put down is flushed and recorded.
  if (cancelled || o.signal?.aborted) await Promise.all(dests.map((d) => (d.error === undefined || d.error instanceof CancelledError ? d.saveProgress() : undefined)));
  if (o.verify && sourceError === undefined && !cancelled) await verifyAll(dests, fanOut.digests, source);
  if (o.signal?.aborted) cancelled = true;

  const results = dests.map((d) => d.result(cancelled, sourceError !== undefined));
  const exitCode = summarizeExit(results, sourceError, cancelled);
  const hashComplete = sourceError === undefined && !cancelled && dests.some((d) => d.error === undefined);
  return {
    image: imageReport(source, producer, hashComplete),
    targets: results,
    ok: exitCode === ExitCode.OK,
    exitCode,
    seconds: (performance.now() - t0) / 1000,
  };
}
