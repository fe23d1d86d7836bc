/**
 * Streaming decompression of an image file. Each format yields the decompressed bytes as an
 * async iterable that pulls compressed input only as fast as the consumer takes output, so
 * memory stays bounded whatever the image size. Failures become SourceErrors naming the file
 * and the format.
 *
 * Decoders: gzip — node:zlib; zstd — node:zlib's zstd where the running Node has it (22.15+),
 * otherwise fzstd (pure JS); xz — xz-decompress (xz-embedded compiled to WebAssembly);
 * bzip2 — unbzip2-stream (pure JS).
 */
import { createReadStream } from 'node:fs';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress as FzstdDecompress } from 'fzstd';
import xzModule from 'xz-decompress';
import unbzip2 from 'unbzip2-stream';
import type { ImageFormat } from './detect.js';
import { SourceError } from './errors.js';

/** Compressed bytes read per step. */
export const INPUT_CHUNK = 1024 * 1024;

export interface DecompressOptions {
  /** Called with the number of compressed bytes consumed so far. */
  onInput?: (bytes: number) => void;
  signal?: AbortSignal;
  /** Start reading the (raw) file here; only for format "raw". */
  start?: number;
}

/** xz-embedded return codes (xz.h). */
const XZ_ERRORS: Record<string, string> = {
  '2': 'unsupported integrity check',
  '3': 'out of memory',
  '4': 'dictionary larger than the memory limit',
  '5': 'not an xz stream (bad header)',
  '6': 'unsupported xz options (filter or flags)',
  '7': 'corrupt data',
  '8': 'truncated or corrupt data (decoder made no progress)',
};

function describe(format: ImageFormat, err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  if (format === 'xz') {
    const m = /error code (\d+)/.exec(msg);
    if (m && XZ_ERRORS[m[1]]) return XZ_ERRORS[m[1]];
  }
  if (format === 'gzip' && /unexpected end of file/i.test(msg)) return 'truncated (unexpected end of file)';
  return msg;
}

function sourceError(path: string, format: ImageFormat, err: unknown, outBytes: number): SourceError {
  if (err instanceof SourceError) return err;
  if ((err as Error)?.name === 'AbortError') throw err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && /^E[A-Z]+$/.test(code)) {
    return new SourceError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return new SourceError(
    `${path}: ${format} decompression failed after ${outBytes} bytes of output: ${describe(format, err)}`,
    { cause: err },
  );
}

type ZstdFactory = () => Transform;

/** node:zlib's zstd decoder when this Node has one (22.15+, 23.8+). */
function nativeZstd(): ZstdFactory | undefined {
  const f = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  return typeof f === 'function' ? () => f() : undefined;
}

/** Which implementation decodes each format on this Node (for reports and the benchmark). */
export function decoderName(format: ImageFormat): string {
  switch (format) {
    case 'raw':
      return 'none';
    case 'gzip':
      return 'node:zlib';
    case 'zstd':
      return nativeZstd() ? 'node:zlib (zstd)' : 'fzstd';
    case 'xz':
      return 'xz-decompress (wasm)';
    case 'bzip2':
      return 'unbzip2-stream';
  }
}

function counted(path: string, opts: DecompressOptions, start = 0): AsyncIterable<Uint8Array> {
  const rs = createReadStream(path, { highWaterMark: INPUT_CHUNK, start, signal: opts.signal });
  let n = 0;
  return (async function* () {
    for await (const c of rs as AsyncIterable<Buffer>) {
      n += c.length;
      opts.onInput?.(n);
      yield new Uint8Array(c.buffer, c.byteOffset, c.length);
    }
  })();
}

/**
 * Input slice sizes that keep the output of one decoder step near a target. Decoders that
 * decode everything they are given at once (fzstd, unbzip2-stream) would otherwise turn one
 * compressed MiB of a sparse image's zeros into gigabytes held in memory.
 */
class AdaptiveSlicer {
  size = 64 * 1024;
  static readonly MIN = 64;
  static readonly MAX = 1024 * 1024;
  static readonly TARGET = 4 * 1024 * 1024;
  /** Adjusts the slice size after a step that turned `inBytes` into `outBytes`. */
  observe(inBytes: number, outBytes: number): void {
    if (outBytes > AdaptiveSlicer.TARGET) this.size = Math.max(AdaptiveSlicer.MIN, Math.floor(this.size / Math.ceil(outBytes / AdaptiveSlicer.TARGET)));
    else if (outBytes < AdaptiveSlicer.TARGET / 4 && inBytes >= this.size) this.size = Math.min(AdaptiveSlicer.MAX, this.size * 2);
  }
}

async function* fzstdStream(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = [];
  let outBytes = 0;
  let ended = false;
  const d = new FzstdDecompress((chunk: Uint8Array, final?: boolean) => {
    if (chunk.length) {
      out.push(chunk);
      outBytes += chunk.length;
    }
    if (final) ended = true;
  });
  const slicer = new AdaptiveSlicer();
  for await (const c of input) {
    for (let i = 0; i < c.length; ) {
      const n = Math.min(slicer.size, c.length - i);
      d.push(c.subarray(i, i + n));
      i += n;
      slicer.observe(n, outBytes);
      outBytes = 0;
      if (out.length) {
        const o = out;
        out = [];
        yield* o;
      }
    }
  }
  d.push(new Uint8Array(0), true);
  if (out.length) yield* out;
  if (!ended) throw new Error('truncated (the last zstd frame is incomplete)');
}

/**
 * Feeds `input` through a transform stream (node:zlib, or a classic `through` stream as
 * unbzip2-stream makes) and yields its output. Written out instead of Readable.wrap: a classic
 * stream may emit 'close' right after 'end', which makes a wrapped stream's iterator fail with
 * "Premature close" while output is still buffered.
 */
async function* viaTransform(input: AsyncIterable<Uint8Array>, t: NodeJS.ReadWriteStream, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const HIGH = 8;
  const out: Uint8Array[] = [];
  let ended = false;
  let failed: unknown;
  let wake: (() => void) | undefined;
  let paused = false;
  const pause = () => {
    if (!paused) {
      paused = true;
      t.pause();
    }
  };
  const resume = () => {
    if (paused) {
      paused = false;
      t.resume();
    }
  };
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let produced = 0;
  t.on('data', (c: Uint8Array) => {
    out.push(c);
    produced += c.length;
    if (out.length >= HIGH) pause();
    notify();
  });
  t.on('end', () => {
    ended = true;
    notify();
  });
  t.on('error', (e: unknown) => {
    failed ??= e;
    notify();
  });
  const onAbort = () => {
    failed ??= signal?.reason;
    notify();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  // Pump input in the background, honouring the transform's backpressure.
  const pump = (async () => {
    try {
      const slicer = new AdaptiveSlicer();
      for await (const c of input) {
        for (let i = 0; i < c.length; ) {
          if (failed !== undefined) return;
          const n = Math.min(slicer.size, c.length - i);
          produced = 0;
          const more = t.write(c.subarray(i, i + n));
          slicer.observe(n, produced);
          i += n;
          if (!more) await new Promise<void>((r) => t.once('drain', r));
        }
      }
      t.end();
    } catch (e) {
      failed ??= e;
      notify();
    }
  })();
  try {
    for (;;) {
      if (out.length > 0) {
        const c = out.shift() as Uint8Array;
        if (out.length < HIGH / 2) resume();
        yield c;
        continue;
      }
      if (failed !== undefined) throw failed;
      if (ended) break;
      resume();
      await new Promise<void>((r) => (wake = r));
    }
    await pump;
    if (failed !== undefined) throw failed;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!ended) (t as unknown as { destroy?: () => void }).destroy?.();
  }
}

/**
 * Decompressed bytes of `path` read as `format`. Chunks have no particular size; the caller
 * rebuffers. Errors are SourceErrors (or the abort reason).
 */
export async function* decompressFile(path: string, format: ImageFormat, opts: DecompressOptions = {}): AsyncGenerator<Uint8Array> {
  let out = 0;
  try {
    const input = counted(path, opts, format === 'raw' ? opts.start ?? 0 : 0);
    let stream: AsyncIterable<Uint8Array>;
    switch (format) {
      case 'raw':
        stream = input;
        break;
      case 'gzip':
        stream = viaTransform(input, zlib.createGunzip({ chunkSize: 256 * 1024 }), opts.signal);
        break;
      case 'zstd': {
        const native = nativeZstd();
        stream = native ? viaTransform(input, native(), opts.signal) : fzstdStream(input);
        break;
      }
      case 'xz': {
        const { XzReadableStream } = xzModule as unknown as { XzReadableStream: new (s: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array> };
        const web = new ReadableStream<Uint8Array>({
          async start() {},
          pull: (() => {
            const it = input[Symbol.asyncIterator]();
            return async (controller: ReadableStreamDefaultController<Uint8Array>) => {
              const { done, value } = await it.next();
              if (done) controller.close();
              else controller.enqueue(value);
            };
          })(),
        });
        stream = new XzReadableStream(web) as unknown as AsyncIterable<Uint8Array>;
        break;
      }
      case 'bzip2':
        stream = viaTransform(input, unbzip2(), opts.signal);
        break;
    }
    for await (const c of stream) {
      if (c.length === 0) continue;
      out += c.length;
      yield c instanceof Uint8Array ? c : new Uint8Array(c as ArrayBuffer);
    }
  } catch (err) {
    opts.signal?.throwIfAborted();
    throw sourceError(path, format, err, out);
  }
}
