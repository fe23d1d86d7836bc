/**
 * Decompression on a worker thread, so that decoding one part of the image overlaps hashing
 * and writing the part before it: the same decoders and integrity checks as decompressFile
 * (decompress.ts), run by decode-worker.ts, their output handed over in pieces of at most one
 * chunk (1 MiB by default) without copying (transferred ArrayBuffers). At most WINDOW pieces
 * are in flight, so memory stays bounded when the reader is slower than the decoder.
 *
 * `decodedExtentsOffThread` with mapped ranges (a bmap's) gets only the bytes inside them,
 * with their image offsets: the worker drops the rest (and skips whole zstd frames outside
 * them) before anything is copied or sent.
 */
import { Worker } from 'node:worker_threads';
import type { ImageFormat } from './detect.js';
import { decompressFile, type DecompressOptions } from './decompress.js';
import { SourceError } from './errors.js';

/** What the worker is to decode. */
export interface DecodeJob {
  path: string;
  format: ImageFormat;
  /** Largest piece; pieces end at multiples of it in the image. */
  chunkSize: number;
  /** Only these image bytes (flat, sorted [start, end) pairs) are wanted. */
  mapped?: number[];
}

/** Messages from the worker: `data` holds pieces one after the other, `spans` their image offsets and lengths (flat pairs). */
export type FromDecoder =
  | { type: 'data'; buffer: ArrayBuffer; spans: number[]; input: number }
  | { type: 'warning'; message: string }
  | { type: 'end'; input: number; decoded: number }
  | { type: 'error'; message: string };
/** Messages to the worker: pieces it may send ahead. */
export type ToDecoder = { credits: number };

/** Pieces (a chunk each, at most) the worker may decode ahead of the reader. */
const WINDOW = 8;

/** An image piece: `data` is the image's bytes at `offset`. */
export interface DecodedExtent {
  offset: number;
  data: Uint8Array;
}

export interface OffThreadOptions extends Pick<DecompressOptions, 'onInput' | 'onWarning' | 'signal'> {
  /** Largest piece (default 1 MiB); pieces end at its multiples. */
  chunkSize?: number;
  /** Only the image bytes inside these ranges (flat, sorted [start, end) pairs) are wanted. */
  mapped?: number[];
}

/**
 * Decompressed bytes of `path` read as `format`, decoded on a worker thread, as image pieces
 * with their offsets (with `mapped`, only those inside the ranges). Returns the decoded size of
 * the whole image. Errors are SourceErrors with the decoder's message, or the abort reason.
 */
export async function* decodedExtentsOffThread(path: string, format: ImageFormat, opts: OffThreadOptions = {}): AsyncGenerator<DecodedExtent, number> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const job: DecodeJob = { path, format, chunkSize: opts.chunkSize ?? 1024 * 1024, ...(opts.mapped ? { mapped: opts.mapped } : {}) };
  const worker = new Worker(new URL('./decode-worker.js', import.meta.url), { workerData: job, execArgv: [] });
  const inbox: FromDecoder[] = [];
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  worker.on('message', (m: FromDecoder) => {
    inbox.push(m);
    notify();
  });
  worker.on('error', (e) => {
    failure ??= new SourceError(`${path}: ${format} decoder failed: ${e.message}`, { cause: e });
    notify();
  });
  worker.on('exit', (code) => {
    failure ??= new SourceError(`${path}: ${format} decoder stopped (exit code ${code})`);
    notify();
  });
  const onAbort = () => {
    failure = signal?.reason;
    notify();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    worker.postMessage({ credits: WINDOW } satisfies ToDecoder);
    for (;;) {
      const m = inbox.shift();
      if (m === undefined) {
        if (failure !== undefined) throw failure;
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      if (signal?.aborted) throw signal.reason;
      switch (m.type) {
        case 'data': {
          opts.onInput?.(m.input);
          worker.postMessage({ credits: 1 } satisfies ToDecoder);
          for (let i = 0, at = 0; i < m.spans.length; i += 2) {
            yield { offset: m.spans[i], data: new Uint8Array(m.buffer, at, m.spans[i + 1]) };
            at += m.spans[i + 1];
          }
          break;
        }
        case 'warning':
          opts.onWarning?.(m.message);
          break;
        case 'end':
          opts.onInput?.(m.input);
          return m.decoded;
        case 'error':
          throw new SourceError(m.message);
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    void worker.terminate();
  }
}

/**
 * Decompressed bytes of `path` read as `format`, decoded on a worker thread (a raw file is
 * read here). Same contract as decompressFile: errors are SourceErrors with the decoder's
 * message, or the abort reason.
 */
export async function* decompressOffThread(path: string, format: ImageFormat, opts: DecompressOptions = {}): AsyncGenerator<Uint8Array> {
  if (format === 'raw') {
    yield* decompressFile(path, format, opts);
    return;
  }
  for await (const e of decodedExtentsOffThread(path, format, opts)) yield e.data;
}
