/**
 * Streaming decompression of an image file. Each format yields the decompressed bytes as an
 * async iterable that pulls compressed input only as fast as the consumer takes output, so
 * memory stays bounded whatever the image size. Failures become SourceErrors naming the file
 * and the format.
 *
 * Decoders: gzip — node:zlib; zstd — libzstd's streaming decoder compiled to WebAssembly
 * (zstd-stream.ts, on every Node, so that frames can be skipped and the checks and messages are
 * the same everywhere); xz — xz-decompress (xz-embedded compiled to WebAssembly);
 * bzip2 — libbzip2 compiled to WebAssembly (@foxglove/wasm-bz2), blocks decoded in parallel on
 * worker threads (bzip2-parallel.ts); zip — stored or deflated (node:zlib inflateRaw).
 *
 * Every decoder checks the container's own integrity data, and a failed check is an error
 * like any other (so a flash that hits one fails, and the card is never called verified):
 * - gzip: CRC-32 and ISIZE of every member (node:zlib); members one after the other are read
 *   as one image; zero bytes after the last member are ignored with a warning (as gzip -d
 *   does), any other data there is an error.
 * - zstd: every frame's content checksum (XXH64) and declared content size (libzstd, and the
 *   size counted again by zstdVerifiedStream); skippable frames are skipped; trailing data is
 *   an error. A frame the caller skips (`skipFrame`, for bmap holes) is not decoded, so its
 *   checksum is not verified.
 * - xz: every block's CRC32 or CRC64 (xz-embedded). A stream with SHA-256 or another check
 *   type xz-embedded cannot compute is refused, never decoded unchecked; one with no check
 *   (xz --check=none) is decoded with a warning.
 * - bzip2: every block's CRC and the combined stream CRC; trailing data is an error.
 * - zip: the one image entry's CRC-32 and sizes against the central directory and the local
 *   header or data descriptor (zip-entry-stream.ts); the archive's layout is checked first
 *   (zip-directory.ts).
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import xzModule from 'xz-decompress';
import type { ImageFormat } from './detect.js';
import { SourceError } from './errors.js';
import { bzip2Parallel } from './bzip2-parallel.js';
import { zstdVerifiedStream } from './zstd-stream.js';
import { viaTransform } from './transform-pump.js';
import { zipImageBytes } from './zip-entry-stream.js';

/** Compressed bytes read per step. */
export const INPUT_CHUNK = 1024 * 1024;

export interface DecompressOptions {
  /** Called with the number of compressed bytes consumed so far. */
  onInput?: (bytes: number) => void;
  signal?: AbortSignal;
  /** Start reading the (raw) file here; only for format "raw". */
  start?: number;
  /** Told about an image part whose integrity cannot be checked (no checksum recorded). */
  onWarning?: (message: string) => void;
  /** zstd: the largest output piece (pieces end at its multiples in the image). Default 1 MiB. */
  chunkSize?: number;
  /**
   * zstd only: asked before each frame whose header declares its size (`length` image bytes at
   * `start`); true skips the frame — it is neither decoded nor yielded, and the caller accounts
   * for the gap.
   */
  skipFrame?: (start: number, length: number) => boolean;
  /**
   * The consumer copies what it keeps before it asks for the next piece, so a decoder may yield
   * views of its own memory (zstd does).
   */
  borrowed?: boolean;
}

/** xz-embedded return codes (xz.h). */
const XZ_ERRORS: Record<string, string> = {
  '2': 'unsupported integrity check',
  '3': 'out of memory',
  '4': 'dictionary larger than the memory limit',
  '5': 'not an xz stream (bad header)',
  '6': 'unsupported xz options (a filter, or an integrity check other than CRC32/CRC64, such as SHA-256, which cannot be verified here)',
  '7': 'corrupt data',
  '8': 'truncated or corrupt data (decoder made no progress)',
};

function describe(format: ImageFormat, err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  if (format === 'xz') {
    const m = /error code (\d+)/.exec(msg);
    if (m && XZ_ERRORS[m[1]]) return XZ_ERRORS[m[1]];
  }
  if (format === 'gzip') {
    if (/unexpected end of file/i.test(msg)) return 'truncated (unexpected end of file)';
    if (/incorrect data check/i.test(msg)) return 'CRC-32 mismatch in a gzip member trailer (corrupt data)';
    if (/incorrect length check/i.test(msg)) return 'length (ISIZE) mismatch in a gzip member trailer (corrupt data)';
    // the first member's magic was checked before decoding began, so this is about what follows a member
    if (/incorrect header check/i.test(msg)) return 'the data after a gzip member is not a gzip member (trailing garbage or a damaged member)';
  }
  return msg;
}

function sourceError(path: string, format: ImageFormat, err: unknown, outBytes: number): SourceError {
  if (err instanceof SourceError) return err;
  if ((err as Error)?.name === 'AbortError') throw err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && /^E[A-Z]+$/.test(code)) {
    return new SourceError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return new SourceError(`${path}: ${format} decompression failed after ${outBytes} bytes of output: ${describe(format, err)}`, { cause: err });
}

/** Which implementation decodes each format on this Node (for reports and the benchmark). */
export function decoderName(format: ImageFormat): string {
  switch (format) {
    case 'raw':
      return 'none';
    case 'gzip':
      return 'node:zlib';
    case 'zstd':
      return 'libzstd (wasm)';
    case 'xz':
      return 'xz-decompress (wasm)';
    case 'bzip2':
      return 'libbzip2 (wasm), blocks in parallel';
    case 'zip':
      return 'node:zlib inflateRaw (zip), CRC-32 checked';
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
 * The file's bytes read into a ring of RING buffers of INPUT_CHUNK bytes, reused: a piece is
 * overwritten RING - 1 reads after it was yielded, so the consumer must be done with it (or
 * have copied it) by then. For the zstd decoder, which copies its input into libzstd's memory
 * block by block (and joins pieces that straddle reads into a copy): no garbage of one MiB
 * per MiB read.
 */
async function* ringReads(path: string, opts: DecompressOptions): AsyncGenerator<Uint8Array> {
  const RING = 3;
  const ring = Array.from({ length: RING }, () => new Uint8Array(INPUT_CHUNK));
  const fh = await open(path, 'r');
  try {
    for (let n = 0, i = 0; ; i = (i + 1) % RING) {
      opts.signal?.throwIfAborted();
      const { bytesRead } = await fh.read(ring[i], 0, INPUT_CHUNK, n);
      if (bytesRead === 0) return;
      n += bytesRead;
      opts.onInput?.(n);
      yield ring[i].subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/**
 * The gzip output, then a look at what node:zlib left unread: it stops at a zero byte after a
 * member and ignores the rest of the input, whatever it is. Zero padding is accepted with a
 * warning (as gzip -d does); anything else after it is trailing garbage, an error. (A non-zero
 * byte right after a member is read as the next member's header and fails in zlib.)
 */
async function* gzipThenTail(path: string, decoded: AsyncIterable<Uint8Array>, gunzip: zlib.Gunzip, onWarning?: (message: string) => void): AsyncGenerator<Uint8Array> {
  yield* decoded;
  // bytes the engine consumed (lib/zlib.js counts what inflate took, not what it was given)
  const used = gunzip.bytesWritten;
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (used >= size) return;
    const buf = new Uint8Array(64 * 1024);
    for (let pos = used; pos < size;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) break;
      const i = buf.subarray(0, bytesRead).findIndex((b) => b !== 0);
      if (i >= 0) throw new Error(`the data at byte ${pos + i}, after the last gzip member and zero padding from byte ${used}, is not a gzip member (trailing garbage)`);
      pos += bytesRead;
    }
    onWarning?.(`${size - used} zero byte(s) of padding after the last gzip member (ending at byte ${used}) ignored`);
  } finally {
    await fh.close();
  }
}

/** xz stream header check types (xz file format 2.2.1). */
const XZ_CHECKS: Record<number, string> = { 0: 'none', 1: 'CRC32', 4: 'CRC64', 10: 'SHA-256' };

/**
 * Passes an xz file's bytes on after looking at the check type in its (first) stream header:
 * xz-embedded verifies CRC32 and CRC64; anything else is refused here with a clear reason
 * (a later stream's unsupported check still fails in the decoder), and no check at all is
 * decoded with a warning.
 */
async function* xzCheckGate(input: AsyncIterable<Uint8Array>, onWarning?: (message: string) => void): AsyncGenerator<Uint8Array> {
  let head = new Uint8Array(0);
  let checked = false;
  for await (const c of input) {
    if (checked) {
      yield c;
      continue;
    }
    const h = new Uint8Array(head.length + c.length);
    h.set(head);
    h.set(c, head.length);
    head = h;
    if (head.length < 8) continue;
    checked = true;
    if (head[6] === 0 && head[7] < 16) {
      const check = head[7];
      if (check === 0) {
        onWarning?.('the xz file records no integrity check (made with xz --check=none): corruption in it can go undetected');
      } else if (check !== 1 && check !== 4) {
        const name = XZ_CHECKS[check] ?? `type ${check}`;
        throw new Error(
          `the xz stream uses ${name} integrity checks, which this decoder cannot verify; recompress it with xz --check=crc64 (or crc32), or decompress it first (xz -dk)`,
        );
      }
    }
    yield head;
  }
  if (!checked && head.length) yield head;
}

/**
 * Decompressed bytes of `path` read as `format`. Chunks have no particular size; the caller
 * rebuffers. Errors are SourceErrors (or the abort reason).
 */
export async function* decompressFile(path: string, format: ImageFormat, opts: DecompressOptions = {}): AsyncGenerator<Uint8Array> {
  let out = 0;
  try {
    const input = () => counted(path, opts, format === 'raw' ? (opts.start ?? 0) : 0);
    let stream: AsyncIterable<Uint8Array>;
    switch (format) {
      case 'raw':
        stream = input();
        break;
      case 'gzip': {
        const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
        stream = gzipThenTail(path, viaTransform(input(), gunzip, opts.signal), gunzip, opts.onWarning);
        break;
      }
      case 'zstd':
        stream = zstdVerifiedStream(ringReads(path, opts), { onWarning: opts.onWarning, chunkSize: opts.chunkSize, skipFrame: opts.skipFrame, borrowed: opts.borrowed });
        break;
      case 'xz': {
        const { XzReadableStream } = xzModule as unknown as { XzReadableStream: new (s: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array> };
        const web = new ReadableStream<Uint8Array>({
          async start() {},
          pull: (() => {
            const it = xzCheckGate(input(), opts.onWarning)[Symbol.asyncIterator]();
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
        stream = bzip2Parallel(input());
        break;
      case 'zip':
        stream = zipImageBytes(path, { signal: opts.signal, onInput: opts.onInput });
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
