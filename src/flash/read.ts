/**
 * Copying a card (or a byte range of it) to an image file, ddrescue style: large reads while
 * they work; a chunk that fails even after retries is split into logical blocks, each retried,
 * and blocks that stay unreadable are left zero in the output and recorded as bad (`-`) in a
 * GNU ddrescue mapfile next to the output. Running again with the same output and map
 * retries only what is not finished yet.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { CancelledError, CrashcartError, ExitCode, RefusedError, UsageError } from '../errors.js';
import { WriteGate } from '../gate/write-gate.js';
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

export async function readDevice(dev: BlockDevice, output: string, opts: ReadOptions = {}): Promise<ReadResult> {
  const t0 = performance.now();
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
  const chunk = opts.chunkSize ?? 1024 * 1024;
  const retryDelayMs = opts.retryDelayMs ?? 100;
  const mapPath = opts.mapPath ?? `${output}.map`;
  const emit = (e: ReadEvent) => opts.onEvent?.(e);
  const interval = opts.progressIntervalMs ?? 250;

  // Every file written goes through the gate: never the device read, never an existing file
  // (unless continuing an earlier run), never through a link.
  const gate = opts.gate ?? new WriteGate();
  await gate.addInput(dev, 'the device being read');
  await gate.checkPath(output, 'output');
  await gate.checkPath(mapPath, 'map');

  // Continue an earlier run when both the output and its map are there.
  let map = new StatusMap(dev.size);
  let resumed = false;
  const haveMap = await exists(mapPath);
  const haveOutput = await exists(output);
  if (haveMap && !haveOutput) throw new RefusedError(`map ${mapPath} exists but ${output} does not; refusing to overwrite the map of another read (remove it or name another with --map)`);
  if (haveMap && haveOutput) {
    if ((await realpath(mapPath)) === (await realpath(output))) throw new RefusedError(`the map and the output are the same file (${output}); name another map with --map`);
    const parsed = parseRescueMap(await readFile(mapPath, 'utf8'));
    const last = parsed.blocks[parsed.blocks.length - 1];
    if (!last || last.pos + last.size !== dev.size) {
      throw new UsageError(`${mapPath} describes a ${last ? last.pos + last.size : 0}-byte device, but ${dev.info.name} has ${dev.size} bytes; remove the map (and the output) to start over`);
    }
    const outSize = (await stat(output)).size;
    if (outSize !== size) throw new UsageError(`${output} is ${outSize} bytes but the range to read is ${size}; remove it and ${mapPath} to start over`);
    map = new StatusMap(dev.size, parsed.blocks);
    resumed = true;
  }

  const todo = map.pending(offset, size);
  const total = todo.reduce((n, r) => n + r.size, 0);
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
  const streamHash = resumed ? undefined : createHash('sha256');
  let hashedTo = offset;
  const zeroUpTo = (pos: number) => {
    // Only used on fresh runs, where output is written strictly in order.
    if (!streamHash || pos <= hashedTo) return;
    streamHash.update(new Uint8Array(pos - hashedTo));
    hashedTo = pos;
  };
  const meter = new RateMeter();
  let done = 0;
  let bytesRead = 0;
  /** Just past the last chunk finished in this run: where a stop leaves the map's position. */
  let completedTo = offset;
  let lastEvent = 0;
  let lastMapSave = performance.now();
  const saveMap = async (pos: number, finished: boolean) => {
    // The data goes to disk before a map that calls it finished (the final save comes after fh.sync()).
    if (!finished) await fh.datasync();
    const text = formatRescueMap({ currentPos: pos, currentStatus: finished ? '+' : '?', currentPass: 1, blocks: map.blocks }, [
      ...(opts.mapHeader ?? []),
      `Device: ${dev.info.name} (${dev.size} bytes); range ${offset}+${size}; output ${output} holds this range from its byte 0`,
      `Saved: ${new Date().toISOString()}`,
    ]);
    await gate.replaceFile(mapPath, text, 'map');
    lastMapSave = performance.now();
  };
  const progress = (force = false) => {
    const now = performance.now();
    const speed = meter.update(done, now);
    if (!force && now - lastEvent < interval) return;
    lastEvent = now;
    emit({ type: 'progress', phase: 'reading', bytes: done, total, badBytes: map.count(offset, size, '-'), speed, eta: meter.eta(total - done) });
  };
  const put = async (pos: number, data: Uint8Array) => {
    let w = 0;
    while (w < data.length) {
      const { bytesWritten } = await fh.write(data, w, data.length - w, pos - offset + w);
      w += bytesWritten;
    }
  };
  const retryOpts = (at: number) => ({
    retries,
    baseDelayMs: retryDelayMs,
    signal: opts.signal,
    onRetry: (attempt: number, delayMs: number, err: unknown) => emit({ type: 'retry', offset: at, attempt, delayMs, error: (err as Error)?.message ?? String(err) }),
  });
  const readOne = (pos: number, len: number) => withRetry(() => readRange(dev, pos, len, { signal: opts.signal }), retryOpts(pos));
  const deviceGone = async (pos: number, e: unknown): Promise<never> => {
    await saveMap(pos, false);
    throw new CrashcartError(
      `${dev.info.name} went away while reading at offset ${pos}: ${(e as Error)?.message ?? String(e)}; what was read is in ${output} and ${mapPath}; re-insert the card and run the same command to read the rest`,
      ExitCode.IO,
      { cause: e },
    );
  };

  try {
    if (!resumed) await fh.truncate(size);
    progress(true);
    for (const area of todo) {
      for (let pos = area.pos; pos < area.pos + area.size; ) {
        const len = Math.min(chunk - (pos % chunk || 0), area.pos + area.size - pos);
        let data: Uint8Array | undefined;
        try {
          data = await readOne(pos, len);
        } catch (e) {
          const cls = classifyError(e);
          if (cls === 'abort') throw e;
          if (cls === 'gone') await deviceGone(pos, e);
          if (!(e instanceof RetriesExhaustedError) && cls !== 'transient' && !(e instanceof CrashcartError && e.exitCode === ExitCode.IO)) throw e;
        }
        if (data) {
          zeroUpTo(pos);
          streamHash?.update(data);
          hashedTo = pos + len;
          await put(pos, data);
          map.set(pos, len, '+');
          bytesRead += len;
        } else {
          // Scrape the chunk block by block.
          const bs = Math.max(dev.blockSize, dev.alignment, 1);
          for (let p = pos; p < pos + len; ) {
            const n = Math.min(bs - (p % bs), pos + len - p);
            try {
              const b = await readOne(p, n);
              zeroUpTo(p);
              streamHash?.update(b);
              hashedTo = p + n;
              await put(p, b);
              map.set(p, n, '+');
              bytesRead += n;
            } catch (e) {
              const cls = classifyError(e);
              if (cls === 'abort') throw e;
              if (cls === 'gone') await deviceGone(p, e);
              map.set(p, n, '-');
              if (resumed) await put(p, new Uint8Array(n));
              emit({ type: 'bad-area', start: p, end: p + n, error: (e as Error)?.message ?? String(e) });
            }
            p += n;
          }
          await saveMap(pos + len, false);
        }
        pos += len;
        done += len;
        completedTo = pos;
        progress();
        if (performance.now() - lastMapSave > 5000) await saveMap(pos, false);
      }
    }
    zeroUpTo(offset + size);
    await fh.sync();
  } catch (e) {
    if ((e as Error)?.name === 'AbortError' || opts.signal?.aborted) {
      // Safe point: everything finished is synced and recorded in the map.
      const mapSaved = await saveMap(completedTo, false).then(
        () => true,
        () => false,
      );
      const finishedBytes = map.count(offset, size, '+');
      throw new ReadCancelledError(
        mapSaved
          ? `reading cancelled at offset ${completedTo}; what was read is in ${output} and ${mapPath}; run the same command to continue`
          : `reading cancelled at offset ${completedTo}, and the map ${mapPath} could not be saved: the next run starts over`,
        { device: dev.info.name, output, mapPath, offset, size, position: completedTo, finishedBytes, bytesRead, mapSaved, seconds: (performance.now() - t0) / 1000 },
      );
    }
    throw e;
  } finally {
    await fh.close();
  }
  progress(true);
  await saveMap(offset + size, true);
  const sha256 = streamHash ? streamHash.digest('hex') : await hashFile(output);
  const badRanges = map.ranges('-', offset, size);
  return {
    device: dev.info.name,
    output,
    mapPath,
    offset,
    size,
    resumed,
    bytesRead,
    badBytes: badRanges.reduce((n, r) => n + r.end - r.start, 0),
    badRanges,
    sha256,
    seconds: (performance.now() - t0) / 1000,
  };
}
