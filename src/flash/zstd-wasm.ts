/**
 * libzstd's streaming decoder (ZSTD_decompressStream, zstd 1.5.7) as WebAssembly, from the
 * `zstddec` package: its `zstddec/stream` module carries the compiled decoder (no compiler at
 * install, no download), but its JavaScript wrapper neither reports libzstd's errors nor
 * lets the output be taken in pieces of our size, so the module is instantiated and driven
 * here directly. libzstd checks every frame's content checksum (XXH64) and declared content
 * size itself.
 *
 * One ZstdWasmStream per zstd stream (each has its own instance: 64 KiB of code, and the
 * decoder's window in its memory).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface Exports {
  memory: WebAssembly.Memory;
  ZSTD_createDCtx(): number;
  ZSTD_freeDCtx(dctx: number): number;
  ZSTD_decompressStream(dctx: number, output: number, input: number): number;
  malloc(n: number): number;
  free(p: number): void;
}

let compiled: WebAssembly.Module | undefined;

/** The decoder module of the pinned zstddec (its base64 `wasm` constant). */
function zstdModule(): WebAssembly.Module {
  if (compiled) return compiled;
  const file = createRequire(import.meta.url).resolve('zstddec/stream');
  const m = /const wasm = "([A-Za-z0-9+/=]+)"/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no WebAssembly zstd decoder found in ${file} (an unexpected zstddec version?)`);
  compiled = new WebAssembly.Module(Buffer.from(m[1], 'base64'));
  return compiled;
}

/** libzstd's error codes (zstd_errors.h) as messages. */
const ZSTD_ERRORS: Record<number, string> = {
  1: 'error (generic)',
  10: 'unknown frame descriptor',
  12: 'unsupported zstd version',
  14: 'unsupported frame parameter',
  16: 'the frame needs a window larger than 128 MiB (made with zstd --long=28 or more?)',
  20: 'corrupt data',
  22: 'content checksum mismatch',
  24: 'corrupt literals header',
  30: 'corrupt dictionary',
  32: 'the frame needs a dictionary',
  64: 'out of memory',
  72: 'wrong source size',
};

/** A libzstd failure: `code` is ZSTD_ErrorCode. */
export class ZstdError extends Error {
  constructor(readonly code: number) {
    super(ZSTD_ERRORS[code] ?? `libzstd error ${code}`);
  }
}

/** Bytes of compressed input handed to libzstd per call. */
const IN_SIZE = 256 * 1024;

/**
 * A zstd decompression stream: `input()` hands it compressed bytes, `decode()` turns them into
 * output in its output window (`output`), which the caller empties with `take()`.
 */
export class ZstdWasmStream {
  private readonly x: Exports;
  private heap: Uint8Array;
  private view: DataView;
  private readonly dctx: number;
  private readonly inBuf: number;
  /** ZSTD_inBuffer { src, size, pos } and ZSTD_outBuffer { dst, size, pos }, 32-bit fields. */
  private readonly inS: number;
  private readonly outS: number;
  private readonly outBuf: number;
  private pending: Uint8Array = new Uint8Array(0);
  /** The return value of the last call: 0 when a frame was completely decoded and flushed. */
  last = 0;

  /** `outCapacity`: the largest output window. */
  constructor(readonly outCapacity: number) {
    const env = { emscripten_notify_memory_growth: () => this.refresh() };
    const inst = new WebAssembly.Instance(zstdModule(), { env });
    this.x = inst.exports as unknown as Exports;
    this.heap = new Uint8Array(this.x.memory.buffer);
    this.view = new DataView(this.x.memory.buffer);
    this.dctx = this.x.ZSTD_createDCtx();
    this.inBuf = this.x.malloc(IN_SIZE);
    this.outBuf = this.x.malloc(outCapacity);
    this.inS = this.x.malloc(12);
    this.outS = this.x.malloc(12);
    if (!this.dctx || !this.inBuf || !this.outBuf || !this.inS || !this.outS) throw new ZstdError(64);
    this.refresh();
    this.setOut(0, outCapacity);
    this.setIn(0);
  }

  private refresh(): void {
    if (this.heap.buffer !== this.x.memory.buffer) {
      this.heap = new Uint8Array(this.x.memory.buffer);
      this.view = new DataView(this.x.memory.buffer);
    }
  }

  private setIn(size: number): void {
    this.view.setUint32(this.inS, this.inBuf, true);
    this.view.setUint32(this.inS + 4, size, true);
    this.view.setUint32(this.inS + 8, 0, true);
  }

  private setOut(pos: number, size: number): void {
    this.view.setUint32(this.outS, this.outBuf, true);
    this.view.setUint32(this.outS + 4, size, true);
    this.view.setUint32(this.outS + 8, pos, true);
  }

  /** Output bytes in the window. */
  get outLength(): number {
    return this.view.getUint32(this.outS + 8, true);
  }

  /** Room in the output window, which ends at `limit` (<= outCapacity). */
  get outLimit(): number {
    return this.view.getUint32(this.outS + 4, true);
  }

  /**
   * Hands compressed bytes to the decoder: they are copied into its memory at once (beyond
   * its input buffer, into a queue), so the caller may reuse `bytes` as soon as this returns.
   */
  input(bytes: Uint8Array): void {
    if (this.pending.length > 0) {
      const b = new Uint8Array(this.pending.length + bytes.length);
      b.set(this.pending);
      b.set(bytes, this.pending.length);
      this.pending = b;
      return;
    }
    this.refresh();
    let size = this.view.getUint32(this.inS + 4, true);
    const pos = this.view.getUint32(this.inS + 8, true);
    if (pos > 0) {
      this.heap.copyWithin(this.inBuf, this.inBuf + pos, this.inBuf + size);
      size -= pos;
    }
    const n = Math.min(IN_SIZE - size, bytes.length);
    this.heap.set(bytes.subarray(0, n), this.inBuf + size);
    this.setIn(size + n);
    if (n < bytes.length) this.pending = bytes.slice(n);
  }

  /**
   * Decodes until the input is used up or the output window is full (whichever first).
   * Throws a ZstdError on corrupt data.
   */
  decode(): void {
    for (;;) {
      if (this.view.getUint32(this.inS + 8, true) >= this.view.getUint32(this.inS + 4, true) && this.pending.length > 0) {
        const n = Math.min(IN_SIZE, this.pending.length);
        this.heap.set(this.pending.subarray(0, n), this.inBuf);
        this.pending = this.pending.subarray(n);
        this.setIn(n);
      }
      if (this.outLength >= this.outLimit) return;
      // a frame ended and everything it gave is out: a call now would start on the next frame's header
      if (this.last === 0 && this.view.getUint32(this.inS + 8, true) >= this.view.getUint32(this.inS + 4, true)) return;
      const outBefore = this.outLength;
      const inBefore = this.view.getUint32(this.inS + 8, true);
      const r = this.x.ZSTD_decompressStream(this.dctx, this.outS, this.inS);
      this.refresh();
      if (r < 0) throw new ZstdError(-r);
      this.last = r;
      const inPos = this.view.getUint32(this.inS + 8, true);
      // all the input is in and what it gave is out (libzstd flushes while there is room): wait for more
      if (inPos >= this.view.getUint32(this.inS + 4, true) && this.pending.length === 0 && this.outLength < this.outLimit) return;
      if (this.outLength === outBefore && inPos === inBefore) return;
    }
  }

  /** The output window's bytes (a view into the decoder's memory, valid until the next call). */
  peek(): Uint8Array {
    return this.heap.subarray(this.outBuf, this.outBuf + this.outLength);
  }

  /** Empties the output window; the next one ends after `limit` bytes (<= outCapacity). */
  take(limit = this.outCapacity): void {
    this.setOut(0, Math.min(limit, this.outCapacity));
  }

  /** Frees the decoder's memory (the instance goes with the last reference). */
  close(): void {
    this.x.ZSTD_freeDCtx(this.dctx);
  }
}
