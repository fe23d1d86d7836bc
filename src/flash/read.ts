/**
 * Copying a card (or a byte range of it) to an image file, ddrescue style: large reads while
 * they work; a chunk that fails even after retries is split into logical blocks, each retried,
 * and blocks that stay unreadable are left zero in the output and recorded as bad (`-`) in a
 * GNU ddrescue mapfile next to the output. Running again with the same output and map
 * retries only what is not finished yet.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { CancelledError, CardChangedError, CrashcartError, ExitCode, RefusedError, UsageError } from '../errors.js';
import { WriteGate } from '../gate/write-gate.js';
import { readFileBounded, STATE_MAX_BYTES } from '../input-limits.js';
import { formatRescueMap, parseRescueMap, StatusMap } from './ddrescue-map.js';
import { RateMeter } from './progress.js';
import { classifyError, withRetry, RetriesExhaustedError } from './retry.js';

export interface ReadOptions {
  /** First device byte to copy. Default 0. */
  offset?: number;
  /** Bytes to copy. Default: to the end of the device. */
  size?: number;
  /** Retries per chunk and then per block before a block counts as bad. Default 3. */
  retries?: number;
  retryDelayMs?: number;
  /** Bytes per read. Default 1 MiB. */
  chunkSize?: number;
  /** Mapfile path. Default `OUTPUT.map`. */
  mapPath?: string;
  /** Lines for the map header (e.g. the command line). */
  mapHeader?: string[];
  progressIntervalMs?: number;
  onEvent?: (e: ReadEvent) => void;
  signal?: AbortSignal;
  /** Gate for the output and map (default: one that knows only `dev` as input). */
  gate?: WriteGate;
}

export type ReadEvent =
  | { type: 'progress'; phase: 'reading'; bytes: number; total: number; badBytes: number; speed: number; eta: number | null }
  | { type: 'retry'; offset: number; attempt: number; delayMs: number; error: string }
  | { type: 'bad-area'; start: number; end: number; error: string }
  | { type: 'warning'; message: string };

export interface ReadResult {
  device: string;
  output: string;
  mapPath: string;
  offset: number;
  size: number;
  /** True when an existing output and map were continued (only unfinished areas read). */
  resumed: boolean;
  /** Bytes read in this run. */
  bytesRead: number;
  /** Unreadable bytes in the range (zero in the output). */
  badBytes: number;
  badRanges: { start: number; end: number }[];
  /** SHA-256 of the output file (bad areas as zeros). */
  sha256: string;
  seconds: number;
}

/**
 * The read was stopped (AbortSignal) at a safe point: the output is synced and the map saved
 * with every finished chunk, so running the same read again continues where it stopped.
 */
export class ReadCancelledError extends CancelledError {
  constructor(
    message: string,
    readonly partial: {
      device: string;
      output: string;
      mapPath: string;
      offset: number;
      size: number;
      /** Device offset just past the last chunk finished in this run (the map's current position). */
      position: number;
      /** Bytes of the range finished so far, over all runs. */
      finishedBytes: number;
      /** Bytes read in this run. */
      bytesRead: number;
      /** False when even the map could not be saved. */
      mapSaved: boolean;
      seconds: number;
    },
  ) {
    super(message);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** The checked range and settings of one read. */
interface ReadPlan {
  offset: number;
  size: number;
  retries: number;
  retryDelayMs: number;
  chunk: number;
  mapPath: string;
  interval: number;
}

/** Checks the range and the retry count against the device; fills in the defaults. */
function readPlan(dev: BlockDevice, output: string, opts: ReadOptions): ReadPlan {
  const offset = opts.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new UsageError(`--offset must be a non-negative byte count, got ${String(opts.offset)}`);
  if (offset > dev.size) throw new UsageError(`--offset ${offset} is past the end of ${dev.info.name} (${dev.size} bytes)`);
  const size = opts.size ?? dev.size - offset;
  if (!Number.isSafeInteger(size) || size <= 0) throw new UsageError(`--size must be a positive byte count, got ${String(opts.size)}`);
  if (offset + size > dev.size) {
    throw new UsageError(`range ${offset}+${size} runs past the end of ${dev.info.name} (${dev.size} bytes, ${formatBytes(dev.size)})`);
  }
  const retries = opts.retries ?? 3;
  if (!Number.isSafeInteger(retries) || retries < 0) throw new UsageError(`--retries must be a non-negative integer, got ${String(opts.retries)}`);
  return {
    offset,
    size,
    retries,
    retryDelayMs: opts.retryDelayMs ?? 100,
    chunk: opts.chunkSize ?? 1024 * 1024,
    mapPath: opts.mapPath ?? `${output}.map`,
    interval: opts.progressIntervalMs ?? 250,
  };
}

/**
 * The map of an earlier run to continue, when both the output and its map are there (and
 * describe this device and range); undefined for a fresh run.
 */
async function earlierRunMap(dev: BlockDevice, output: string, plan: ReadPlan): Promise<StatusMap | undefined> {
  const { mapPath, size } = plan;
  const haveMap = await exists(mapPath);
  const haveOutput = await exists(output);
  if (haveMap && !haveOutput)
    throw new RefusedError(`map ${mapPath} exists but ${output} does not; refusing to overwrite the map of another read (remove it or name another with --map)`);
  if (!haveMap || !haveOutput) return undefined;
  if ((await realpath(mapPath)) === (await realpath(output))) throw new RefusedError(`the map and the output are the same file (${output}); name another map with --map`);
  const parsed = parseRescueMap(readFileBounded(mapPath, STATE_MAX_BYTES, 'map').toString('utf8'));
  const last = parsed.blocks[parsed.blocks.length - 1];
  if (!last || last.pos + last.size !== dev.size) {
    throw new UsageError(
      `${mapPath} describes a ${last ? last.pos + last.size : 0}-byte device, but ${dev.info.name} has ${dev.size} bytes; remove the map (and the output) to start over`,
    );
  }
  const outSize = (await stat(output)).size;
  if (outSize !== size) throw new UsageError(`${output} is ${outSize} bytes but the range to read is ${size}; remove it and ${mapPath} to start over`);
  return new StatusMap(dev.size, parsed.blocks);
}

/** Opens the output (and, on a fresh run, creates the map) through the gate. */
async function openOutputs(gate: WriteGate, output: string, mapPath: string, resumed: boolean): Promise<FileHandle> {
  const fh: FileHandle = await gate.createFile(output, { continueExisting: resumed, what: 'output' });
  if (!resumed) {
    try {
      await (await gate.createFile(mapPath, { what: 'map' })).close();
    } catch (e) {
      await fh.close();
      await unlink(output).catch(() => undefined);
      throw e;
    }
  }
  return fh;
}

/** Worth reading block by block: the chunk failed with a medium or transient error (not a fatal one). */
function worthScraping(e: unknown): boolean {
  return e instanceof RetriesExhaustedError || classifyError(e) === 'transient' || (e instanceof CrashcartError && (e.exitCode === ExitCode.IO || e.exitCode === ExitCode.MEDIUM));
}

/** How the read of one chunk ended. */
type ChunkRead = { data: Uint8Array; error?: undefined } | { data?: undefined; error: unknown };

/** One run of readDevice once the output is open: the copy loop and the state it keeps. */
class ReadSession {
  private readonly streamHash: ReturnType<typeof createHash> | undefined;
  /** Output offset (as a device offset) up to which streamHash has seen the data. */
  private hashedTo: number;
  private readonly meter = new RateMeter();
  private readonly total: number;
  private done = 0;
  bytesRead = 0;
  /** Just past the last chunk finished in this run: where a stop leaves the map's position. */
  private completedTo: number;
  private lastEvent = 0;
  private lastMapSave = performance.now();

  constructor(
    private readonly dev: BlockDevice,
    private readonly output: string,
    private readonly plan: ReadPlan,
    private readonly opts: ReadOptions,
    private readonly gate: WriteGate,
    private readonly fh: FileHandle,
    readonly map: StatusMap,
    private readonly resumed: boolean,
    private readonly todo: { pos: number; size: number }[],
  ) {
    this.streamHash = resumed ? undefined : createHash('sha256');
    this.hashedTo = plan.offset;
    this.completedTo = plan.offset;
    this.total = todo.reduce((n, r) => n + r.size, 0);
  }

  private emit(e: ReadEvent): void {
    this.opts.onEvent?.(e);
  }

  /** Hashes zeros up to `pos` (areas left unread). Only on fresh runs, where output is written strictly in order. */
  private zeroUpTo(pos: number): void {
    if (!this.streamHash || pos <= this.hashedTo) return;
    this.streamHash.update(new Uint8Array(pos - this.hashedTo));
    this.hashedTo = pos;
  }

  async saveMap(pos: number, finished: boolean): Promise<void> {
    const { dev, plan } = this;
    // The data goes to disk before a map that calls it finished (the final save comes after fh.sync()).
    if (!finished) await this.fh.datasync();
    const text = formatRescueMap({ currentPos: pos, currentStatus: finished ? '+' : '?', currentPass: 1, blocks: this.map.blocks }, [
      ...(this.opts.mapHeader ?? []),
      `Device: ${dev.info.name} (${dev.size} bytes); range ${plan.offset}+${plan.size}; output ${this.output} holds this range from its byte 0`,
      `Saved: ${new Date().toISOString()}`,
    ]);
    await this.gate.replaceFile(plan.mapPath, text, 'map');
    this.lastMapSave = performance.now();
  }

  progress(force = false): void {
    const now = performance.now();
    const speed = this.meter.update(this.done, now);
    if (!force && now - this.lastEvent < this.plan.interval) return;
    this.lastEvent = now;
    const { offset, size } = this.plan;
    this.emit({
      type: 'progress',
      phase: 'reading',
      bytes: this.done,
      total: this.total,
      badBytes: this.map.count(offset, size, '-'),
      speed,
      eta: this.meter.eta(this.total - this.done),
    });
  }

  private async put(pos: number, data: Uint8Array): Promise<void> {
    let w = 0;
    while (w < data.length) {
      const { bytesWritten } = await this.fh.write(data, w, data.length - w, pos - this.plan.offset + w);
      w += bytesWritten;
    }
  }

  private readOne(pos: number, len: number): Promise<Uint8Array> {
    const { retries, retryDelayMs } = this.plan;
    return withRetry(() => readRange(this.dev, pos, len, { signal: this.opts.signal }), {
      retries,
      baseDelayMs: retryDelayMs,
      signal: this.opts.signal,
      onRetry: (attempt: number, delayMs: number, err: unknown) => this.emit({ type: 'retry', offset: pos, attempt, delayMs, error: (err as Error)?.message ?? String(err) }),
    });
  }

  /** `data`, read as the `len` bytes at `pos`: hashed, written to the output, marked finished. */
  private async store(pos: number, len: number, data: Uint8Array): Promise<void> {
    this.zeroUpTo(pos);
    this.streamHash?.update(data);
    this.hashedTo = pos + len;
    await this.put(pos, data);
    this.map.set(pos, len, '+');
    this.bytesRead += len;
  }

  /**
   * A read at `pos` failed (after its retries): a cancellation goes on up; a card that went
   * away, or came back as another card, ends the read with the map saved; anything else returns
   * to the caller to handle.
   */
  private async readFailed(pos: number, e: unknown): Promise<void> {
    const cls = classifyError(e);
    if (cls === 'abort') throw e;
    if (e instanceof CardChangedError) {
      await this.saveMap(pos, false);
      throw new CardChangedError(`${e.message}; what was read before is in ${this.output} and ${this.plan.mapPath}`, { cause: e });
    }
    if (cls !== 'gone') return;
    await this.saveMap(pos, false);
    throw new CrashcartError(
      `${this.dev.info.name} went away while reading at offset ${pos}: ${(e as Error)?.message ?? String(e)}; what was read is in ${this.output} and ${this.plan.mapPath}; re-insert the card and run the same command to read the rest`,
      ExitCode.IO,
      { cause: e },
    );
  }

  /** Block `p`+`n` stays unreadable: recorded as bad, zero in the output. */
  private async markBad(p: number, n: number, e: unknown): Promise<void> {
    this.map.set(p, n, '-');
    if (this.resumed) await this.put(p, new Uint8Array(n));
    this.emit({ type: 'bad-area', start: p, end: p + n, error: (e as Error)?.message ?? String(e) });
  }

  /** Reads the chunk `pos`+`len` block by block, recording the blocks that fail as bad. */
  private async scrape(pos: number, len: number): Promise<void> {
    const bs = Math.max(this.dev.blockSize, this.dev.alignment, 1);
    for (let p = pos; p < pos + len;) {
      const n = Math.min(bs - (p % bs), pos + len - p);
      try {
        await this.store(p, n, await this.readOne(p, n));
      } catch (e) {
        await this.readFailed(p, e);
        await this.markBad(p, n, e);
      }
      p += n;
    }
    await this.saveMap(pos + len, false);
  }

  /** Starts reading the chunk at `pos`; its outcome, failure included, is kept for finishChunk. */
  private startRead(pos: number, len: number): Promise<ChunkRead> {
    return this.readOne(pos, len).then(
      (data) => ({ data }),
      (error: unknown) => ({ error }),
    );
  }

  /** One chunk whose read has ended: stored whole, or scraped block by block when the read failed. */
  private async finishChunk(pos: number, len: number, r: ChunkRead): Promise<void> {
    if (r.data) return this.store(pos, len, r.data);
    await this.readFailed(pos, r.error);
    if (!worthScraping(r.error)) throw r.error;
    await this.scrape(pos, len);
  }

  /**
   * Copies one area chunk by chunk, with the next chunk's read already on the device while this
   * one is hashed and written to the output (after a failed read, the next waits for the scrape).
   */
  private async copyArea(area: { pos: number; size: number }): Promise<void> {
    const { chunk } = this.plan;
    const end = area.pos + area.size;
    const lengthAt = (pos: number) => Math.min(chunk - (pos % chunk || 0), end - pos);
    let next: Promise<ChunkRead> | undefined = this.startRead(area.pos, lengthAt(area.pos));
    try {
      for (let pos = area.pos; pos < end;) {
        const len = lengthAt(pos);
        const r: ChunkRead = await next!;
        next = r.data && pos + len < end ? this.startRead(pos + len, lengthAt(pos + len)) : undefined;
        await this.finishChunk(pos, len, r);
        pos += len;
        this.done += len;
        this.completedTo = pos;
        this.progress();
        if (performance.now() - this.lastMapSave > 5000) await this.saveMap(pos, false);
        if (!next && pos < end) next = this.startRead(pos, lengthAt(pos));
      }
    } finally {
      // A chunk failed with the next read still on the device: it ends before the caller goes on.
      await next;
    }
  }

  /** Copies every unfinished area of the range, then syncs the output. */
  async copy(): Promise<void> {
    const { offset, size } = this.plan;
    if (!this.resumed) await this.fh.truncate(size);
    this.progress(true);
    for (const area of this.todo) await this.copyArea(area);
    this.zeroUpTo(offset + size);
    await this.fh.sync();
  }

  /**
   * What a failed copy throws: after a stop (abort), the map is saved at the last finished chunk
   * — a safe point — and a ReadCancelledError tells where; other errors go on as they are.
   */
  async stopped(e: unknown, t0: number): Promise<unknown> {
    if ((e as Error)?.name !== 'AbortError' && !this.opts.signal?.aborted) return e;
    const { output, completedTo } = this;
    const { offset, size, mapPath } = this.plan;
    const mapSaved = await this.saveMap(completedTo, false).then(
      () => true,
      () => false,
    );
    const finishedBytes = this.map.count(offset, size, '+');
    return new ReadCancelledError(
      mapSaved
        ? `reading cancelled at offset ${completedTo}; what was read is in ${output} and ${mapPath}; run the same command to continue`
        : `reading cancelled at offset ${completedTo}, and the map ${mapPath} could not be saved: the next run starts over`,
      {
        device: this.dev.info.name,
        output,
        mapPath,
        offset,
        size,
        position: completedTo,
        finishedBytes,
        bytesRead: this.bytesRead,
        mapSaved,
        seconds: (performance.now() - t0) / 1000,
      },
    );
  }

  /** SHA-256 of the output: from the stream on a fresh run, from the file when continuing one. */
  sha256(): Promise<string> | string {
    return this.streamHash ? this.streamHash.digest('hex') : hashFile(this.output);
  }
}

export async function readDevice(dev: BlockDevice, output: string, opts: ReadOptions = {}): Promise<ReadResult> {
  const t0 = performance.now();
  const plan = readPlan(dev, output, opts);
  const { offset, size, mapPath } = plan;

  // Every file written goes through the gate: never the device read, never an existing file
  // (unless continuing an earlier run), never through a link.
  const gate = opts.gate ?? new WriteGate();
  await gate.addInput(dev, 'the device being read');
  await gate.checkPath(output, 'output');
  await gate.checkPath(mapPath, 'map');

  // Continue an earlier run when both the output and its map are there.
  const earlier = await earlierRunMap(dev, output, plan);
  const resumed = earlier !== undefined;
  const map = earlier ?? new StatusMap(dev.size);
  const todo = map.pending(offset, size);
  const fh = await openOutputs(gate, output, mapPath, resumed);
  const session = new ReadSession(dev, output, plan, opts, gate, fh, map, resumed, todo);
  try {
    await session.copy();
  } catch (e) {
    throw await session.stopped(e, t0);
  } finally {
    await fh.close();
  }
  session.progress(true);
  await session.saveMap(offset + size, true);
  const sha256 = await session.sha256();
  const badRanges = map.ranges('-', offset, size);
  return {
    device: dev.info.name,
    output,
    mapPath,
    offset,
    size,
    resumed,
    bytesRead: session.bytesRead,
    badBytes: badRanges.reduce((n, r) => n + r.end - r.start, 0),
    badRanges,
    sha256,
    seconds: (performance.now() - t0) / 1000,
  };
}
