/**
 * bzip2 decoded block by block on worker threads. bzip2 blocks are independent: each starts
 * with the 48-bit block magic (0x314159265359) and its CRC, at any bit position, and the stream
 * ends with the end-of-stream magic (0x177245385090) and the combined CRC. Here the compressed
 * stream is cut at those magics, every block is re-wrapped as a one-block stream (shifted to a
 * byte boundary, with the block's CRC as that stream's combined CRC) and decoded by libbzip2
 * (WebAssembly) on a pool of workers (bzip2-block-worker.ts), which checks each block's CRC;
 * the combined stream CRC is checked here, from the block CRCs. Output comes in stream order.
 *
 * The magic can also occur by chance inside a block's compressed bits (about once in 2^48 bit
 * positions): a block cut there fails to decode, and is then decoded again joined with the
 * piece after it. Concatenated streams (pbzip2, lbzip2) are read one after the other; anything
 * after the last stream that is not a stream is an error.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BlockJob, BlockResult } from './bzip2-block-worker.js';

const BLOCK_MAGIC = 0x314159265359n;
const EOS_MAGIC = 0x177245385090n;

/** Blocks decoded ahead of the reader (each up to ~47 MB of output, usually level * 100 kB). */
const workerCount = () => Math.max(1, Math.min(availableParallelism(), 4));

/** Reads `n` (<= 32) bits at bit offset `bit` of `b` (most significant bit first). */
function bits(b: Uint8Array, bit: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const p = bit + i;
    v = v * 2 + ((b[p >>> 3] >> (7 - (p & 7))) & 1);
  }
  return v;
}

function bits48(b: Uint8Array, bit: number): bigint {
  return (BigInt(bits(b, bit, 16)) << 32n) | BigInt(bits(b, bit + 16, 32));
}

/**
 * For each shift s (magic starting at bit s of a byte j), the 32 bits in bytes j+1..j+4 are
 * fixed: a table of those words finds candidates one byte at a time.
 */
const CANDIDATES: Map<number, { magic: 'block' | 'eos'; shift: number }[]> = (() => {
  const m = new Map<number, { magic: 'block' | 'eos'; shift: number }[]>();
  for (const [magic, v] of [
    ['block', BLOCK_MAGIC],
    ['eos', EOS_MAGIC],
  ] as const) {
    for (let s = 0; s < 8; s++) {
      const word = Number(((v << BigInt(8 - s)) >> 16n) & 0xffffffffn);
      const list = m.get(word) ?? [];
      list.push({ magic, shift: s });
      m.set(word, list);
    }
  }
  return m;
})();

/** The next block or end-of-stream magic at a bit offset >= `from` in `b`, or undefined. */
function findMagic(b: Uint8Array, from: number): { bit: number; magic: 'block' | 'eos' } | undefined {
  for (let j = Math.max(0, (from >>> 3) - 1); j + 6 < b.length; j++) {
    const word = ((b[j + 1] << 24) | (b[j + 2] << 16) | (b[j + 3] << 8) | b[j + 4]) >>> 0;
    const list = CANDIDATES.get(word);
    if (!list) continue;
    for (const c of list) {
      const bit = j * 8 + c.shift;
      if (bit >= from && bits48(b, bit) === (c.magic === 'block' ? BLOCK_MAGIC : EOS_MAGIC)) return { bit, magic: c.magic };
    }
  }
  return undefined;
}

/** A one-block stream: header, the bits [start, end) of `b`, end-of-stream magic and `crc`. */
function wrapBlock(b: Uint8Array, start: number, end: number, level: number, crc: number): Uint8Array {
  const n = end - start;
  const out = new Uint8Array(4 + Math.ceil((n + 80) / 8));
  out.set([0x42, 0x5a, 0x68, 0x30 + level]);
  const s = start & 7;
  const from = start >>> 3;
  const whole = n >>> 3;
  for (let i = 0; i < whole; i++) out[4 + i] = ((b[from + i] << s) | (b[from + i + 1] >> (8 - s))) & 0xff;
  let bit = (4 + whole) * 8;
  const put = (v: number, k: number) => {
    for (let i = k - 1; i >= 0; i--, bit++) if ((v / 2 ** i) & 1) out[bit >>> 3] |= 0x80 >> (bit & 7);
  };
  put(bits(b, start + whole * 8, n & 7), n & 7);
  put(Number(EOS_MAGIC >> 24n), 24);
  put(Number(EOS_MAGIC & 0xffffffn), 24);
  put(crc, 32);
  return out;
}

/** libbzip2 return codes as the decoders' messages say them. */
function describeCode(code: number): string {
  switch (code) {
    case -4:
      return 'block CRC mismatch or damaged block data (corrupt data)';
    case -5:
      return 'bad block signature (corrupt data)';
    case -7:
      return 'truncated (a bzip2 block ends early; corrupt data)';
    default:
      return `corrupt data (libbzip2 error ${code})`;
  }
}

/** A pool of block workers, started as blocks come. */
class BlockPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: Uint8Array) => void; reject: (e: Error) => void }>();
  private next = 0;
  private ids = 0;
  private failure: Error | undefined;

  decode(stream: Uint8Array, level: number): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.workers.length < workerCount()) this.workers.push(this.start());
    const w = this.workers[this.next++ % this.workers.length];
    const id = this.ids++;
    const p = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    const buf = stream.buffer as ArrayBuffer;
    w.postMessage({ id, stream: buf, level } satisfies BlockJob, [buf]);
    return p;
  }

  private start(): Worker {
    const w = new Worker(new URL('./bzip2-block-worker.js', import.meta.url), { execArgv: [] });
    w.on('message', (r: BlockResult) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      if ('output' in r) p?.resolve(new Uint8Array(r.output, 0, r.length));
      else p?.reject(Object.assign(new Error(describeCode(r.code)), { code: r.code }));
    });
    w.on('error', (e) => this.fail(e));
    return w;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  close(): void {
    for (const w of this.workers) void w.terminate();
  }
}

/** A piece of the compressed stream from a block magic to the next magic, being decoded. */
interface Piece {
  /** The bytes holding the piece's bits (kept for a re-try), which start at bit `shift` of bytes[0]. */
  bytes: Uint8Array;
  shift: number;
  length: number;
  level: number;
  crc: number;
  output: Promise<Uint8Array>;
}

/** One piece of two that follow each other in the stream. */
function joinPieces(a: Piece, b: Piece): Pick<Piece, 'bytes' | 'shift' | 'length'> {
  const k = (a.shift + a.length) >>> 3;
  const bytes = new Uint8Array(k + b.bytes.length);
  bytes.set(a.bytes.subarray(0, k));
  bytes.set(b.bytes, k);
  return { bytes, shift: a.shift, length: a.length + b.length };
}

/** Growing window over the compressed input. */
class Input {
  buf = new Uint8Array(0);
  /** Stream byte offset of buf[0]. */
  base = 0;
  eof = false;
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** Reads one more chunk; false at the end. */
  async more(): Promise<boolean> {
    if (this.eof) return false;
    const r = await this.it.next();
    if (r.done) {
      this.eof = true;
      return false;
    }
    const b = new Uint8Array(this.buf.length + r.value.length);
    b.set(this.buf);
    b.set(r.value, this.buf.length);
    this.buf = b;
    return true;
  }

  /** Drops the bytes before stream byte `at`. */
  drop(at: number): void {
    this.buf = this.buf.slice(at - this.base);
    this.base = at;
  }
}

export async function* bzip2Parallel(input: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const pool = new BlockPool();
  const inp = new Input(input[Symbol.asyncIterator]());
  const ahead: (Piece | { check: (combined: number) => void })[] = [];
  const limit = workerCount() + 1;
  /** Combined CRC of the current stream's blocks taken so far. */
  let combined = 0;
  /** True while takeOldest checks a piece: a failure then is the stream's next one in order. */
  let inOrder = false;

  /** Hands on the output of the oldest piece; a piece that fails to decode is joined to the next and tried again. */
  async function* takeOldest(): AsyncGenerator<Uint8Array> {
    const p = ahead.shift()!;
    inOrder = true;
    if ('check' in p) {
      p.check(combined);
      inOrder = false;
      return;
    }
    let out: Uint8Array;
    try {
      out = await p.output;
    } catch (e) {
      const next = ahead[0];
      if (!next || 'check' in next || (e as { code?: number }).code === undefined) throw e;
      // the magic that ended this piece may have been a chance match inside the block
      ahead.shift();
      const j = joinPieces(p, next);
      out = await pool.decode(wrapBlock(j.bytes, j.shift, j.shift + j.length, p.level, p.crc), p.level).catch(() => {
        throw e;
      });
    }
    combined = (((combined << 1) | (combined >>> 31)) ^ p.crc) >>> 0;
    inOrder = false;
    yield out;
  }

  try {
    let streamStart = 0; // byte offset of the current stream's header
    for (let first = true; ; first = false) {
      while (inp.buf.length - (streamStart - inp.base) < 4 && (await inp.more()));
      const h = inp.buf.subarray(streamStart - inp.base, streamStart - inp.base + 4);
      if (h.length === 0 && !first) break;
      if (h.length < 4 || h[0] !== 0x42 || h[1] !== 0x5a || h[2] !== 0x68 || h[3] < 0x31 || h[3] > 0x39) {
        if (first) throw new Error('truncated or not a bzip2 stream (bad header)');
        throw new Error(`the data at byte ${streamStart}, after the end of a bzip2 stream, is not a bzip2 stream (trailing garbage or a damaged stream)`);
      }
      const level = h[3] - 0x30;
      const maxBlock = level * 100_000 * 2 + 10_000;
      let at = (streamStart - inp.base + 4) * 8; // bit offset in inp.buf
      for (;;) {
        while (inp.buf.length * 8 - at < 48 + 32 && (await inp.more()));
        if (inp.buf.length * 8 - at < 48 + 32) throw new Error('truncated (the input ended before the end of the bzip2 stream)');
        const magic = bits48(inp.buf, at);
        if (magic === EOS_MAGIC) {
          const stored = bits(inp.buf, at + 48, 32);
          ahead.push({
            check: (computed) => {
              combined = 0;
              if (stored !== computed)
                throw new Error(
                  `combined stream CRC mismatch: the stream records 0x${stored.toString(16)}, its blocks give 0x${computed.toString(16)} (CRC mismatch; corrupt data)`,
                );
            },
          });
          const end = inp.base + Math.ceil((at + 80) / 8);
          streamStart = end;
          break;
        }
        if (magic !== BLOCK_MAGIC) throw new Error('bad block signature (corrupt data)');
        const crc = bits(inp.buf, at + 48, 32);
        // the next magic: read on until one is found
        let found: ReturnType<typeof findMagic>;
        let searched = at + 80;
        for (;;) {
          found = findMagic(inp.buf, searched);
          if (found) break;
          searched = Math.max(at + 80, inp.buf.length * 8 - 56);
          if ((searched - at) / 8 > maxBlock) throw new Error(`corrupt data (no bzip2 block end within ${maxBlock} bytes of the block at byte ${inp.base + (at >>> 3)})`);
          if (!(await inp.more())) throw new Error('truncated (the input ended inside a bzip2 block)');
        }
        while (ahead.length >= limit) yield* takeOldest();
        const bytes = inp.buf.slice(at >>> 3, (found.bit + 7) >>> 3);
        const length = found.bit - at;
        const output = pool.decode(wrapBlock(bytes, at & 7, (at & 7) + length, level, crc), level);
        output.catch(() => undefined); // taken (and thrown) in order by takeOldest
        ahead.push({ bytes, shift: at & 7, length, level, crc, output });
        at = found.bit;
        // keep the window small: drop what is behind the current block
        if (at >>> 3 > 1024 * 1024) {
          const drop = inp.base + (at >>> 3);
          at &= 7;
          inp.drop(drop);
        }
      }
      inp.drop(streamStart);
    }
    while (ahead.length) yield* takeOldest();
  } catch (e) {
    // a failure found while reading ahead comes after the output of the blocks before it
    if (!inOrder) while (ahead.length) yield* takeOldest();
    throw e;
  } finally {
    pool.close();
  }
}
