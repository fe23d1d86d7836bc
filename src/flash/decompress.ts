/**
 * Streaming decompression of an image file. Each format yields the decompressed bytes as an
 * async iterable that pulls compressed input only as fast as the consumer takes output, so
 * memory stays bounded whatever the image size. Failures become SourceErrors naming the file
 * and the format.
 *
 * Decoders: gzip — node:zlib; zstd — node:zlib's zstd where the running Node has it (22.15+),
 * otherwise fzstd (pure JS); xz — xz-decompress (xz-embedded compiled to WebAssembly);
 * bzip2 — unbzip2-stream's block decoder (pure JS), driven one block at a time.
 */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress as FzstdDecompress } from 'fzstd';
import xzModule from 'xz-decompress';
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
 * Input slice sizes that keep the output of one transform write near a target, so that one
 * compressed MiB of a sparse image's zeros is not decoded in a single step. (fzstd and the
 * bzip2 decoder are cut at block boundaries instead: zstdBlockPieces, bzip2Stream.)
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

/**
 * Cuts a zstd byte stream right before every block header, so that each piece holds at most
 * one block end. fzstd decodes every complete block it is given in one call; a block is at most
 * 128 KiB of output but can be as small as 4 bytes of input (an RLE block), so without cuts one
 * MiB of a sparse image's compressed zeros becomes 32 GiB of output in a single call. Frame
 * headers, skippable frames and checksums are skipped by their lengths; anything that is not a
 * zstd frame is passed on uncut for fzstd to report.
 */
export async function* zstdBlockPieces(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  type State = 'frame' | 'block' | 'opaque';
  let state: State = 'frame';
  let checksum = false;
  /** Start of the next header, relative to the current chunk. */
  let next = 0;
  let carry: Uint8Array | undefined;
  for await (const chunk of input) {
    let c = chunk;
    if (carry) {
      c = new Uint8Array(carry.length + chunk.length);
      c.set(carry);
      c.set(chunk, carry.length);
      carry = undefined;
    }
    let from = 0;
    while (state !== 'opaque' && next < c.length) {
      const at = next;
      const avail = c.length - at;
      if (state === 'block') {
        if (at > from) yield c.subarray(from, at);
        from = at;
        if (avail < 3) break;
        const v = c[at] | (c[at + 1] << 8) | (c[at + 2] << 16);
        const type = (v >> 1) & 3;
        if (type === 3) {
          state = 'opaque';
          break;
        }
        next = at + 3 + (type === 1 ? 1 : v >>> 3);
        if (v & 1) {
          next += checksum ? 4 : 0;
          state = 'frame';
        }
        continue;
      }
      // frame header: magic, then (zstd) the frame header descriptor, or (skippable) a size
      if (avail < 8) break;
      const magic = (c[at] | (c[at + 1] << 8) | (c[at + 2] << 16) | (c[at + 3] << 24)) >>> 0;
      if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
        next = at + 8 + ((c[at + 4] | (c[at + 5] << 8) | (c[at + 6] << 16) | (c[at + 7] << 24)) >>> 0);
      } else if (magic === 0xfd2fb528) {
        const fhd = c[at + 4];
        const single = (fhd >> 5) & 1;
        const fcf = fhd >> 6;
        checksum = ((fhd >> 2) & 1) === 1;
        next = at + 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + (fcf ? 1 << fcf : single);
        state = 'block';
      } else {
        state = 'opaque';
      }
    }
    if (state !== 'opaque' && next < c.length) {
      // a header continues in the next chunk: keep its start
      if (next > from) yield c.subarray(from, next);
      carry = c.slice(next);
      next = 0;
    } else {
      if (from < c.length) yield c.subarray(from);
      next -= c.length;
    }
  }
  if (carry) yield carry;
}

async function* fzstdStream(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let out: Uint8Array[] = [];
  let ended = false;
  const d = new FzstdDecompress((chunk: Uint8Array, final?: boolean) => {
    if (chunk.length) out.push(chunk);
    if (final) ended = true;
  });
  for await (const piece of zstdBlockPieces(input)) {
    d.push(piece);
    if (out.length) {
      const o = out;
      out = [];
      yield* o;
    }
  }
  d.push(new Uint8Array(0), true);
  if (out.length) yield* out;
  if (!ended) throw new Error('truncated (the last zstd frame is incomplete)');
}

type Bits = ((n: number | null) => number) & { bytesRead: number };
interface Bzip2Lib {
  header(bits: Bits): number;
  decompress(bits: Bits, out: (byte: number) => void, buf: Int32Array, bufsize: number, crc: number | null): number | null;
}
const requireCjs = createRequire(import.meta.url);
const bzip2Lib = requireCjs('unbzip2-stream/lib/bzip2.js') as Bzip2Lib;
const bitIterator = requireCjs('unbzip2-stream/lib/bit_iterator.js') as (next: () => Uint8Array) => Bits;

/** Output chunk size of the bzip2 decoder. */
const BZIP2_OUT = 1024 * 1024;

/**
 * bzip2 with unbzip2-stream's block decoder, one block per step: input is read only until the
 * next block is surely complete (900 KiB of compressed data at most, as unbzip2-stream
 * assumes), and a block's output (at most ~46 MB, for runs of one byte) is handed on before
 * the next block is decoded. unbzip2-stream's own stream wrapper decodes every block it has
 * input for at once, and at the end of the input all remaining blocks; a sparse image's
 * compressed zeros (hundreds of MiB per KiB) then sat in memory as arrays of numbers.
 * Concatenated streams (pbzip2, lbzip2) are read one after the other.
 */
async function* bzip2Stream(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const it = input[Symbol.asyncIterator]();
  const queue: Uint8Array[] = [];
  let have = 0;
  let eof = false;
  let bits: Bits | undefined;
  const fill = async (want: number) => {
    while (!eof && have - (bits?.bytesRead ?? 0) < want) {
      const r = await it.next();
      if (r.done) eof = true;
      else if (r.value.length) {
        queue.push(r.value);
        have += r.value.length;
      }
    }
  };
  const nextBuffer = () => {
    const b = queue.shift();
    if (!b) throw new Error('truncated (the input ended inside a bzip2 block)');
    return b;
  };
  let blockSize = 0;
  let crc: number | null = null;
  let work = new Int32Array(0);
  for (;;) {
    await fill(blockSize ? 25000 + 100000 * blockSize : 4);
    if (!blockSize) {
      if (eof && have <= (bits?.bytesRead ?? 0)) break;
      bits ??= bitIterator(nextBuffer);
      blockSize = bzip2Lib.header(bits);
      crc = 0;
      if (work.length < 100000 * blockSize) work = new Int32Array(100000 * blockSize);
      continue;
    }
    const chunks: Uint8Array[] = [];
    let cur = new Uint8Array(BZIP2_OUT);
    let n = 0;
    crc = bzip2Lib.decompress(
      bits!,
      (byte) => {
        cur[n++] = byte;
        if (n === BZIP2_OUT) {
          chunks.push(cur);
          cur = new Uint8Array(BZIP2_OUT);
          n = 0;
        }
      },
      work,
      100000 * blockSize,
      crc,
    );
    if (n) chunks.push(cur.subarray(0, n));
    if (crc === null) blockSize = 0; // end of stream; another may follow
    yield* chunks;
  }
  if (blockSize) throw new Error('truncated (the input ended before the end of the bzip2 stream)');
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
        stream = bzip2Stream(input);
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
