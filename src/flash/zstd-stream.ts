/**
 * zstd decoding with fzstd (pure JavaScript, for Nodes without node:zlib's zstd), frame by
 * frame, with the checks fzstd leaves out:
 *
 * - the content checksum of every frame that has one (the low 32 bits of XXH64 of the frame's
 *   decoded bytes), and the frame content size when the header declares it;
 * - the structure: skippable frames are skipped by their length; anything after the last frame
 *   that is not a frame (trailing garbage) and a frame cut short are errors.
 *
 * Each frame gets its own fzstd decoder, fed one block at a time: a block is at most 128 KiB
 * of output but can be as small as 4 bytes of input (an RLE block), so without the cuts one
 * MiB of a sparse image's compressed zeros would become 32 GiB of output in a single call.
 * The frame's end is where its decoder is told the input is final, so all its output is in
 * hand when the checksum and size are compared.
 */
import { Decompress as FzstdDecompress } from 'fzstd';
import { Xxh64 } from '../util/xxh64.js';

const ZSTD_MAGIC = 0xfd2fb528;

export interface ZstdStreamOptions {
  /** Told once when a frame carries no content checksum (zstd --no-check). */
  onWarning?: (message: string) => void;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

/** Pull-based reader over a stream of chunks; bytes are copied only to join a header split between chunks. */
class ByteCursor {
  private buf: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;
  /** Stream offset of the next byte. */
  offset = 0;
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  get available(): number {
    return this.buf.length - this.at;
  }

  /** Makes `n` contiguous bytes available; false when the input ends first. */
  async need(n: number): Promise<boolean> {
    while (this.available < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const c = r.value;
      if (c.length === 0) continue;
      if (this.available === 0) {
        this.buf = c;
      } else {
        const b = new Uint8Array(this.available + c.length);
        b.set(this.buf.subarray(this.at));
        b.set(c, this.available);
        this.buf = b;
      }
      this.at = 0;
    }
    return this.available >= n;
  }

  peek(n: number): Uint8Array {
    return this.buf.subarray(this.at, this.at + n);
  }

  take(n: number): Uint8Array {
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += b.length;
    this.offset += b.length;
    return b;
  }

  /** Up to `n` bytes, reading more input only when none is buffered; empty at the end. */
  async some(n: number): Promise<Uint8Array> {
    if (this.available === 0) await this.need(1);
    return this.take(Math.min(n, this.available));
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
  const header = cur.take(headerLen);
  let contentSize: number | undefined;
  if (fcsBytes === 1) contentSize = header[fcsAt];
  else if (fcsBytes === 2) contentSize = (header[fcsAt] | (header[fcsAt + 1] << 8)) + 256;
  else if (fcsBytes === 4) contentSize = u32(header, fcsAt);
  else if (fcsBytes === 8) contentSize = u32(header, fcsAt) + u32(header, fcsAt + 4) * 0x100000000;
  return { bytes: header, hasChecksum, ...(contentSize !== undefined ? { contentSize } : {}) };
}

/** One frame's fzstd decoder, its output counted (against the declared size) and hashed as it is taken. */
class FrameDecoder {
  private out: Uint8Array[] = [];
  private ended = false;
  /** Decoded bytes taken so far. */
  size = 0;
  private readonly hash: Xxh64 | undefined;
  private readonly d: FzstdDecompress;

  constructor(
    private readonly header: FrameHeader,
    private readonly what: string,
  ) {
    this.hash = header.hasChecksum ? new Xxh64() : undefined;
    this.d = new FzstdDecompress((chunk: Uint8Array, final?: boolean) => {
      if (chunk.length) this.out.push(chunk);
      if (final) this.ended = true;
    });
    this.d.push(header.bytes);
  }

  get hasOutput(): boolean {
    return this.out.length > 0;
  }

  push(bytes: Uint8Array, final?: boolean): void {
    this.d.push(bytes, final);
  }

  /** The output so far, counted and hashed. */
  drain(): Uint8Array[] {
    const o = this.out;
    this.out = [];
    for (const c of o) {
      this.hash?.update(c);
      this.size += c.length;
    }
    const { contentSize } = this.header;
    if (contentSize !== undefined && this.size > contentSize) {
      throw new Error(`${this.what}: decodes to more than the ${contentSize} bytes its header declares (corrupt data)`);
    }
    return o;
  }

  /** After the final push: the frame must be complete, of its declared size, with the recorded checksum. */
  check(recorded: number | undefined): void {
    const { what, size } = this;
    const { contentSize } = this.header;
    if (!this.ended) throw new Error(`truncated (${what} is incomplete)`);
    if (contentSize !== undefined && size !== contentSize) {
      throw new Error(`${what}: decodes to ${size} bytes but its header declares ${contentSize} (corrupt data)`);
    }
    if (this.hash && recorded !== undefined) {
      const got = Number(this.hash.digest() & 0xffffffffn);
      if (got !== recorded) {
        throw new Error(`${what}: content checksum mismatch: the frame records XXH64 ${hex32(recorded)}, its decoded ${size} bytes give ${hex32(got)} (corrupt data)`);
      }
    }
  }
}

/** Feeds the next block of a frame to `dec`; true when it was the frame's last block. */
async function feedBlock(cur: ByteCursor, dec: FrameDecoder, what: string): Promise<boolean> {
  if (!(await cur.need(3))) throw new Error(`truncated (the file ends inside ${what}, after ${dec.size} bytes of its output)`);
  const h = cur.peek(3);
  const v = h[0] | (h[1] << 8) | (h[2] << 16);
  const type = (v >> 1) & 3;
  if (type === 3) throw new Error(`${what}: reserved block type at byte ${cur.offset} (corrupt data)`);
  let left = 3 + (type === 1 ? 1 : v >>> 3);
  if (cur.available >= left) {
    dec.push(cur.take(left));
  } else {
    while (left > 0) {
      const piece = await cur.some(left);
      if (piece.length === 0) throw new Error(`truncated (the file ends inside a block of ${what}, after ${dec.size} bytes of its output)`);
      dec.push(piece);
      left -= piece.length;
    }
  }
  return (v & 1) === 1;
}

/** Decoded bytes of one frame (its header already read), checked at its end. */
async function* decodeFrame(cur: ByteCursor, header: FrameHeader, what: string): AsyncGenerator<Uint8Array> {
  const dec = new FrameDecoder(header, what);
  // One block at a time, its output handed on before the next is decoded.
  for (let last = false; !last;) {
    last = await feedBlock(cur, dec, what);
    if (dec.hasOutput) yield* dec.drain();
  }
  let recorded: number | undefined;
  if (header.hasChecksum) {
    if (!(await cur.need(4))) throw new Error(`truncated (the file ends inside the content checksum of ${what})`);
    const ck = cur.take(4);
    recorded = u32(ck, 0);
    dec.push(ck);
  }
  dec.push(new Uint8Array(0), true);
  if (dec.hasOutput) yield* dec.drain();
  dec.check(recorded);
}

/**
 * Decoded bytes of a zstd stream (frames and skippable frames, one after the other). Errors
 * are plain Errors whose message says where and what; the caller adds the file name.
 */
export async function* zstdVerifiedStream(input: AsyncIterable<Uint8Array>, opts: ZstdStreamOptions = {}): AsyncGenerator<Uint8Array> {
  const cur = new ByteCursor(input[Symbol.asyncIterator]());
  let frames = 0;
  let warned = false;
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
    if (!header.hasChecksum && !warned) {
      warned = true;
      opts.onWarning?.(`${what} carries no content checksum (made with zstd --no-check): corruption inside it can go undetected`);
    }
    yield* decodeFrame(cur, header, what);
    frames++;
  }
  if (frames === 0) throw new Error('no zstd frame in the file (only skippable frames, or truncated)');
}
