/**
 * The producer side of a flash: one pass over the image, through these stages —
 *
 *   source extents → re-chunking (rechunk.ts) → whole-image SHA-256 (when verifying)
 *     → bmap range selection and checksums (bmap-ranges.ts) → fan-out to the destinations (fan-out.ts)
 *
 * An image with a bmap comes as its mapped ranges only (`sparseRead`: read directly from a raw
 * file, or cut out by the decoder): its extents skip re-chunking and the image hash. At the
 * end the amount of data is checked against what the container says (the source checks it
 * against the bmap), and the destination queues are closed — with the error when the source
 * failed, so no card writes its held-back head.
 */
import { createHash } from 'node:crypto';
import { CancelledError, CrashcartError } from '../errors.js';
import { BmapRangeSelector } from './bmap-ranges.js';
import { SourceError } from './errors.js';
import type { FanOut } from './fan-out.js';
import type { FlashEvent } from './flash.js';
import { Rechunker, type ChunkSink } from './rechunk.js';
import type { ImageSource } from './source.js';

export interface ProducerOptions {
  chunkSize: number;
  /** The flash is verified: only then is the whole image's SHA-256 taken (--no-verify asks for no hashing). */
  verify: boolean;
  progressIntervalMs: number;
  signal?: AbortSignal;
}

/** How the pass over the image ended. */
export interface ProduceOutcome {
  /** Why the image could not be read to the end (a SourceError or another CrashcartError). */
  sourceError?: unknown;
  /** The flash was stopped (abort signal). */
  cancelled: boolean;
}

/** Throws when the amount of image data does not match what the container records. */
function checkStreamedLength(source: ImageSource, streamed: number): void {
  const { bmap } = source;
  if (!bmap && source.size.exact !== undefined && streamed !== source.size.exact) {
    throw new SourceError(`${source.path}: decompressed to ${streamed} bytes but the container records ${source.size.exact}`);
  }
  if (streamed === 0) throw new SourceError(`${source.path} decompresses to nothing`);
}

export class Producer {
  /** SHA-256 of the whole image (undefined for sparse reads, which skip the holes, and without verification). */
  readonly imageHash: ReturnType<typeof createHash> | undefined;
  private readonly rechunker: Rechunker;
  private readonly selector?: BmapRangeSelector;
  /** End of the furthest extent of a sparse read. */
  private sparseEnd = 0;
  private compressed = 0;
  private lastSourceEvent = 0;

  constructor(
    private readonly source: ImageSource,
    private readonly fanOut: FanOut,
    private readonly o: ProducerOptions,
    private readonly emit: (e: FlashEvent) => void,
  ) {
    this.imageHash = source.sparseRead || !o.verify ? undefined : createHash('sha256');
    const dispatch: ChunkSink = (start, data) => this.fanOut.dispatch(start, data);
    if (source.bmap) this.selector = new BmapRangeSelector(source.bmap, source.path, dispatch);
    this.rechunker = new Rechunker(o.chunkSize, this.onChunk);
  }

  /** Image bytes that went through the pipeline. */
  get streamed(): number {
    return this.source.sparseRead ? this.sparseEnd : this.rechunker.taken;
  }

  /** A chunk of image data in stream order: hashed, then (with a bmap) cut to the mapped ranges. */
  private readonly onChunk: ChunkSink = (offset, data) => {
    this.imageHash?.update(data);
    return this.selector ? this.selector.take(offset, data) : this.fanOut.dispatch(offset, data);
  };

  private sourceEvent(): void {
    this.emit({ type: 'source', compressedBytes: this.compressed, compressedTotal: this.source.fileSize, imageBytes: this.streamed });
  }

  /** Reads the image's extents into the pipeline until the end, or until no destination is left. */
  private async pump(): Promise<void> {
    const { source, o } = this;
    const extents = source.extents({
      chunkSize: o.chunkSize,
      signal: o.signal,
      onInput: (n) => (this.compressed = n),
      onWarning: (message) => this.emit({ type: 'warning', message: `${source.path}: ${message}` }),
    });
    for await (const ext of extents) {
      if (!this.fanOut.anyLive) break;
      if (source.sparseRead) {
        this.sparseEnd = Math.max(this.sparseEnd, ext.offset + ext.data.length);
        await this.onChunk(ext.offset, ext.data);
      } else {
        await this.rechunker.push(ext.data, ext.owned);
      }
      const now = performance.now();
      if (now - this.lastSourceEvent >= o.progressIntervalMs) {
        this.lastSourceEvent = now;
        this.sourceEvent();
      }
    }
    await this.rechunker.flush();
  }

  /** Runs the whole pass; never throws — a failure ends up in the outcome and the destinations. */
  async run(): Promise<ProduceOutcome> {
    try {
      await this.pump();
      if (this.fanOut.anyLive) checkStreamedLength(this.source, this.streamed);
      this.sourceEvent();
      this.fanOut.close();
      return { cancelled: false };
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' || this.o.signal?.aborted) {
        this.fanOut.cancel(new CancelledError('flashing cancelled'));
        return { cancelled: true };
      }
      const sourceError = e instanceof CrashcartError ? e : new SourceError(`${this.source.path}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      this.fanOut.close(sourceError);
      return { sourceError, cancelled: false };
    }
  }
}
