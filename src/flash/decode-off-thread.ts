/**
 * Decompression on a worker thread, so that decoding one part of the image overlaps hashing
 * and writing the part before it: the same decoders and integrity checks as decompressFile
 * (decompress.ts), run by decode-worker.ts, their output handed over in 1 MiB pieces without
 * copying (transferred ArrayBuffers). At most WINDOW pieces are in flight, so memory stays
 * bounded when the reader is slower than the decoder.
 */
import { Worker } from 'node:worker_threads';
import type { ImageFormat } from './detect.js';
import { decompressFile, type DecompressOptions } from './decompress.js';
import { SourceError } from './errors.js';

/** Messages from the worker. */
export type FromDecoder =
  { type: 'data'; buffer: ArrayBuffer; length: number; input: number } | { type: 'warning'; message: string } | { type: 'end'; input: number } | { type: 'error'; message: string };
/** Messages to the worker: pieces it may send ahead. */
export type ToDecoder = { credits: number };

/** Pieces (1 MiB each) the worker may decode ahead of the reader. */
const WINDOW = 8;

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
  const { signal } = opts;
  signal?.throwIfAborted();
  const worker = new Worker(new URL('./decode-worker.js', import.meta.url), { workerData: { path, format }, execArgv: [] });
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
        case 'data':
          opts.onInput?.(m.input);
          worker.postMessage({ credits: 1 } satisfies ToDecoder);
          yield new Uint8Array(m.buffer, 0, m.length);
          break;
        case 'warning':
          opts.onWarning?.(m.message);
          break;
        case 'end':
          opts.onInput?.(m.input);
          return;
        case 'error':
          throw new SourceError(m.message);
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    void worker.terminate();
  }
}
