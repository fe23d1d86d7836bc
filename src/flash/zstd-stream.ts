/**
 * zstd decoding with libzstd's streaming decoder (WebAssembly, zstd-wasm.ts), frame by frame,
 * with the stream's structure checked here:
 *
 * - libzstd checks the content checksum of every frame that has one (XXH64) and the frame
 *   content size when the header declares it; the decoded size is counted here as well;
 * - skippable frames are skipped by their length; anything after the last frame that is not a
 *   frame (trailing garbage) and a frame cut short are errors.
 *
 * The frames' blocks are walked here (a 3-byte header each) and handed to libzstd one at a
 * time, so the output (a window of at most `chunkSize` bytes, cut at multiples of it in the
 * decoded stream) is handed on as it comes, whatever the compression ratio: a few bytes of an
 * RLE block are 128 KiB of output.
 *
 * Frame skipping (`skipFrame`): zstd frames are independent, so a frame whose header declares
 * its content size can be passed over without decoding it when none of its bytes are wanted
 * (a bmap's holes): its blocks are walked but not decoded, and so its checksum is not
 * verified (its bytes are never written either). Frames without a declared size are decoded.
 */
import { ZstdError, ZstdWasmStream } from './zstd-wasm.js';

const ZSTD_MAGIC = 0xfd2fb528;

export interface ZstdStreamOptions {
  /** Told once when a frame carries no content checksum (zstd --no-check). */
  onWarning?: (message: string) => void;
  /** Largest output piece; pieces end at multiples of it in the decoded stream. Default 1 MiB. */
  chunkSize?: number;
  /**
   * Asked before each frame whose header declares its content size: the frame would decode
   * to `length` bytes at `start` in the decoded stream. True skips it (not decoded, not
   * yielded, its checksum not checked); the caller accounts for the gap.
   */
  skipFrame?: (start: number, length: number) => boolean;
  /**
   * Yield views of the decoder's output window instead of copies: each is valid only until the
   * consumer asks for the next piece (for a consumer that copies what it keeps).
   */
  borrowed?: boolean;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

/**
 * Pull-based reader over a stream of chunks. Bytes are copied only to join a header split
 * between two chunks (just the header's bytes), so the chunks may come from a ring of reused
 * buffers: it holds on to the last chunk read (and the rest of the one before, when a header
 * was joined), and what it hands out is used before the next read.
 */
class ByteCursor {
  private buf: Uint8Array = new Uint8Array(0);
  private at = 0;
  /** The rest of a chunk whose head was joined to the tail of the one before. */
  private next: Uint8Array | undefined;
  /** Stream offset of the next byte. */
  offset = 0;
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** Bytes read but not yet taken. */
  get available(): number {
    return this.buf.length - this.at + (this.next?.length ?? 0);
  }

  private async pull(): Promise<Uint8Array | undefined> {
    if (this.next) {
      const n = this.next;
      this.next = undefined;
      return n;
    }
    const r = await this.it.next();
    return r.done ? undefined : r.value;
  }

  /** Makes `n` (a header's few) contiguous bytes available; false when the input ends first. */
  async need(n: number): Promise<boolean> {
    while (this.buf.length - this.at < n) {
      const c = await this.pull();
      if (c === undefined) return false;
      if (c.length === 0) continue;
      const have = this.buf.length - this.at;
      if (have === 0) {
        this.buf = c;
      } else {
        const k = Math.min(c.length, n - have);
        const b = new Uint8Array(have + k);
        b.set(this.buf.subarray(this.at));
        b.set(c.subarray(0, k), have);
        this.buf = b;
        if (k < c.length) this.next = c.subarray(k);
      }
      this.at = 0;
    }
    return true;
  }

  peek(n: number): Uint8Array {
    return this.buf.subarray(this.at, this.at + n);
  }

  /** `n` bytes made available by need(n). */
  take(n: number): Uint8Array {
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += b.length;
    this.offset += b.length;
    return b;
  }

  /** Up to `n` bytes, reading more input only when none is buffered; empty at the end. */
  async some(n: number): Promise<Uint8Array> {
    if (this.at >= this.buf.length && !(await this.need(1))) return new Uint8Array(0);
    return this.take(Math.min(n, this.buf.length - this.at));
  }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

const isSkippable = (magic: number) => magic >= 0x184d2a50 && magic <= 0x184d2a5f;

/** The next frame's magic number; `frames` frames came before it. */
async function frameMagic(cur: ByteCursor, frames: number): Promise<number> {
  if (!(await cur.need(4))) {
    throw new Error(
      frames === 0
        ? 'truncated (the file ends inside the first frame header)'
        : `${cur.available} byte(s) after the last frame are not a zstd frame (truncated frame or trailing garbage)`,
    );
  }
  return u32(cur.peek(4), 0);
}

/** Skips the skippable frame at `frameAt` by its length. */
async function skipFrame(cur: ByteCursor, frameAt: number): Promise<void> {
  if (!(await cur.need(8))) throw new Error(`truncated (the file ends inside the skippable frame at byte ${frameAt})`);
  let skip = u32(cur.take(8), 4);
  while (skip > 0) {
    const got = await cur.some(skip);
    if (got.length === 0) throw new Error(`truncated (the file ends inside the skippable frame at byte ${frameAt})`);
    skip -= got.length;
  }
}

interface FrameHeader {
  /** The header's bytes (magic included), for the decoder. */
  bytes: Uint8Array;
  hasChecksum: boolean;
  /** Frame content size, when the header declares it. */
  contentSize?: number;
}

/** Reads a zstd frame header (the magic is known to be there). */
async function readFrameHeader(cur: ByteCursor, what: string): Promise<FrameHeader> {
  if (!(await cur.need(6))) throw new Error(`truncated (the file ends inside the header of ${what})`);
  const fhd = cur.peek(5)[4];
  if (fhd & 0x08) throw new Error(`${what}: reserved bit set in the frame header (corrupt data)`);
  const single = (fhd >> 5) & 1;
  const fcf = fhd >> 6;
  const hasChecksum = ((fhd >> 2) & 1) === 1;
  const fcsBytes = fcf ? 1 << fcf : single;
  const fcsAt = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
  const headerLen = fcsAt + fcsBytes;
  if (!(await cur.need(headerLen))) throw new Error(`truncated (the file ends inside the header of ${what})`);
  const header = cur.take(headerLen).slice();
  let contentSize: number | undefined;
  if (fcsBytes === 1) contentSize = header[fcsAt];
  else if (fcsBytes === 2) contentSize = (header[fcsAt] | (header[fcsAt + 1] << 8)) + 256;
  else if (fcsBytes === 4) contentSize = u32(header, fcsAt);
  else if (fcsBytes === 8) contentSize = u32(header, fcsAt) + u32(header, fcsAt + 4) * 0x100000000;
  return { bytes: header, hasChecksum, ...(contentSize !== undefined ? { contentSize } : {}) };
}

/**
 * Walks the next block of a frame, handing its bytes (header included) to `sink`; true when it
 * was the frame's last block. `out` is the frame's output so far, for messages.
 */
async function walkBlock(cur: ByteCursor, sink: (bytes: Uint8Array) => void, what: string, out: number): Promise<boolean> {
  if (!(await cur.need(3))) throw new Error(`truncated (the file ends inside ${what}, after ${out} bytes of its output)`);
  const h = cur.peek(3);
  const v = h[0] | (h[1] << 8) | (h[2] << 16);
  const type = (v >> 1) & 3;
  if (type === 3) throw new Error(`${what}: reserved block type at byte ${cur.offset} (corrupt data)`);
  for (let left = 3 + (type === 1 ? 1 : v >>> 3); left > 0;) {
    const piece = await cur.some(left);
    if (piece.length === 0) throw new Error(`truncated (the file ends inside a block of ${what}, after ${out} bytes of its output)`);
    sink(piece);
    left -= piece.length;
  }
  return (v & 1) === 1;
}

/** The frame's content checksum (read, and handed to `sink`), when it has one. */
async function readChecksum(cur: ByteCursor, header: FrameHeader, what: string, sink: (bytes: Uint8Array) => void): Promise<number | undefined> {
  if (!header.hasChecksum) return undefined;
  if (!(await cur.need(4))) throw new Error(`truncated (the file ends inside the content checksum of ${what})`);
  const ck = cur.take(4);
  sink(ck);
  return u32(ck, 0);
}

/**
 * The decoder's output window over the decoded stream: it starts at `start` and ends at the
 * next multiple of the chunk size, where it is handed on (copied) and a new one begins.
 */
class OutputWindow {
  /** Decoded-stream offset of the window's first byte. */
  start = 0;
  constructor(
    readonly z: ZstdWasmStream,
    private readonly chunk: number,
    private readonly borrowed: boolean,
  ) {
    z.take(chunk);
  }

  /** Decoded-stream offset of the next output byte. */
  get end(): number {
    return this.start + this.z.outLength;
  }

  get full(): boolean {
    return this.z.outLength >= this.z.outLimit;
  }

  /**
   * The window's bytes (a copy, or a view of the decoder's memory when borrowed: the caller is
   * done with it before the decoder runs again), and a new window from where it ended (or from
   * `at`, past a skipped frame).
   */
  cut(at = this.end): Uint8Array {
    const bytes = this.borrowed ? this.z.peek() : this.z.peek().slice();
    this.start = at;
    this.z.take(this.chunk - (at % this.chunk));
    return bytes;
  }
}

/** What libzstd's failure in `what` means, with the frame's details. */
function frameError(e: unknown, what: string, header: FrameHeader, out: number, recorded: number | undefined): Error {
  if (!(e instanceof ZstdError)) return e as Error;
  if (e.code === 22) {
    return new Error(
      `${what}: content checksum mismatch: its decoded bytes do not give the XXH64 ${recorded === undefined ? 'it records' : hex32(recorded)} the frame records (corrupt data)`,
    );
  }
  if (e.code === 20 && header.contentSize !== undefined) {
    return new Error(`${what}: corrupt data, or a decoded size other than the ${header.contentSize} bytes its header declares (libzstd stopped after ${out} bytes of its output)`);
  }
  return new Error(`${what}: ${e.message}${e.code === 20 ? ' (libzstd stopped after ' + out + ' bytes of its output)' : ''}`);
}

/** Decoded bytes of one frame (its header already read), checked at its end. */
async function* decodeFrame(cur: ByteCursor, header: FrameHeader, what: string, win: OutputWindow): AsyncGenerator<Uint8Array> {
  const { z } = win;
  const frameStart = win.end;
  let recorded: number | undefined;
  const feed = (b: Uint8Array) => z.input(b);
  /** Decodes what was fed, handing on every full window. */
  function* pump(): Generator<Uint8Array> {
    for (;;) {
      try {
        z.decode();
      } catch (e) {
        throw frameError(e, what, header, win.end - frameStart, recorded);
      }
      if (!win.full) return;
      yield win.cut();
    }
  }
  feed(header.bytes);
  for (let last = false; !last;) {
    last = await walkBlock(cur, feed, what, win.end - frameStart);
    yield* pump();
  }
  recorded = await readChecksum(cur, header, what, feed);
  yield* pump();
  const size = win.end - frameStart;
  if (header.contentSize !== undefined && size !== header.contentSize) {
    throw new Error(`${what}: decodes to ${size} bytes but its header declares ${header.contentSize} (corrupt data)`);
  }
  if (z.last !== 0) throw new Error(`${what}: incomplete (corrupt data: libzstd expects more of the frame after its last block)`);
}

/** Walks a frame (its header already read) without decoding it. */
async function passFrame(cur: ByteCursor, header: FrameHeader, what: string): Promise<void> {
  const drop = () => undefined;
  for (let last = false; !last;) last = await walkBlock(cur, drop, what, 0);
  await readChecksum(cur, header, what, drop);
}

/**
 * Decoded bytes of a zstd stream (frames and skippable frames, one after the other). Errors
 * are plain Errors whose message says where and what; the caller adds the file name.
 */
export async function* zstdVerifiedStream(input: AsyncIterable<Uint8Array>, opts: ZstdStreamOptions = {}): AsyncGenerator<Uint8Array> {
  const cur = new ByteCursor(input[Symbol.asyncIterator]());
  const win = new OutputWindow(new ZstdWasmStream(opts.chunkSize ?? 1024 * 1024), opts.chunkSize ?? 1024 * 1024, opts.borrowed ?? false);
  let frames = 0;
  let warned = false;
  try {
    for (;;) {
      const frameAt = cur.offset;
      if (!(await cur.need(1))) break;
      const what = `zstd frame ${frames + 1} (at byte ${frameAt})`;
      const magic = await frameMagic(cur, frames);
      if (isSkippable(magic)) {
        await skipFrame(cur, frameAt);
        continue;
      }
      if (magic !== ZSTD_MAGIC) {
        throw new Error(
          frames === 0
            ? `not a zstd frame at byte ${frameAt}`
            : `the data at byte ${frameAt}, after the last complete zstd frame, is not a zstd frame (trailing garbage or a damaged frame)`,
        );
      }
      const header = await readFrameHeader(cur, what);
      frames++;
      const { contentSize } = header;
      // what came before is handed on first, so the caller knows where the stream is when asked
      if (contentSize !== undefined && opts.skipFrame && win.z.outLength > 0) yield win.cut();
      if (contentSize !== undefined && opts.skipFrame?.(win.end, contentSize)) {
        await passFrame(cur, header, what);
        win.cut(win.end + contentSize);
        continue;
      }
      if (!header.hasChecksum && !warned) {
        warned = true;
        opts.onWarning?.(`${what} carries no content checksum (made with zstd --no-check): corruption inside it can go undetected`);
      }
      yield* decodeFrame(cur, header, what, win);
    }
    if (win.z.outLength > 0) yield win.cut();
  } finally {
    win.z.close();
  }
  if (frames === 0) throw new Error('no zstd frame in the file (only skippable frames, or truncated)');
}
