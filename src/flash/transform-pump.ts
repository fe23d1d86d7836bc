/**
 * Feeding a node stream transform (node:zlib's decoders) from an async iterable and reading its
 * output as one, with the transform's backpressure and an abort signal honoured, and the input
 * cut into slices sized so that one step's output stays near a few MiB (a compressed MiB of a
 * sparse image's zeros is not decoded in one go).
 */

/**
 * Input slice sizes that keep the output of one transform write near a target, so that one
 * compressed MiB of a sparse image's zeros is not decoded in a single step. (fzstd and the
 * bzip2 decoder are cut at block boundaries instead: zstdVerifiedStream, bzip2Parallel.)
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
 * The output side of a transform stream: its chunks, buffered; the stream is paused while
 * HIGH chunks wait and resumed when fewer than HIGH / 2 do. Records the end and the first
 * failure, and wakes the reader on each.
 */
class TransformOutput {
  static readonly HIGH = 8;
  readonly chunks: Uint8Array[] = [];
  ended = false;
  failed: unknown;
  /** Bytes the transform emitted since the pump last reset this (to size the input slices). */
  produced = 0;
  private wake: (() => void) | undefined;
  private paused = false;

  constructor(private readonly t: NodeJS.ReadWriteStream) {
    t.on('data', (c: Uint8Array) => {
      this.chunks.push(c);
      this.produced += c.length;
      if (this.chunks.length >= TransformOutput.HIGH) this.pause();
      this.notify();
    });
    t.on('end', () => {
      this.ended = true;
      this.notify();
    });
    t.on('error', (e: unknown) => this.fail(e));
  }

  fail(e: unknown): void {
    this.failed ??= e;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.t.pause();
    }
  }

  resume(): void {
    if (this.paused) {
      this.paused = false;
      this.t.resume();
    }
  }

  /** The next buffered chunk (resuming the stream when the buffer runs low), if any. */
  next(): Uint8Array | undefined {
    const c = this.chunks.shift();
    if (c !== undefined && this.chunks.length < TransformOutput.HIGH / 2) this.resume();
    return c;
  }

  /** Resolves at the next chunk, end or failure. */
  waitForMore(): Promise<void> {
    this.resume();
    return new Promise<void>((r) => (this.wake = r));
  }
}

/** Writes `input` into `t` in adaptive slices, honouring its backpressure, then ends it; a failure goes to `out`. */
async function pumpInto(input: AsyncIterable<Uint8Array>, t: NodeJS.ReadWriteStream, out: TransformOutput): Promise<void> {
  try {
    const slicer = new AdaptiveSlicer();
    for await (const c of input) {
      for (let i = 0; i < c.length;) {
        if (out.failed !== undefined) return;
        const n = Math.min(slicer.size, c.length - i);
        out.produced = 0;
        const more = t.write(c.subarray(i, i + n));
        slicer.observe(n, out.produced);
        i += n;
        if (!more) await new Promise<void>((r) => t.once('drain', r));
      }
    }
    t.end();
  } catch (e) {
    out.fail(e);
  }
}

/**
 * Feeds `input` through a transform stream (node:zlib) and yields its output, with the
 * transform's backpressure and the abort signal honoured.
 */
export async function* viaTransform(input: AsyncIterable<Uint8Array>, t: NodeJS.ReadWriteStream, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const out = new TransformOutput(t);
  const onAbort = () => out.fail(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // Pump input in the background.
  const pump = pumpInto(input, t, out);
  try {
    for (;;) {
      const c = out.next();
      if (c !== undefined) {
        yield c;
        continue;
      }
      if (out.failed !== undefined) throw out.failed;
      if (out.ended) break;
      await out.waitForMore();
    }
    await pump;
    if (out.failed !== undefined) throw out.failed;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!out.ended) (t as unknown as { destroy?: () => void }).destroy?.();
  }
}
