import { CodecError } from './codec-error.js';
import type { CodecName } from './types.js';

/**
 * Growable output for the hand-written decoders. Grows by doubling but never beyond `limit`;
 * asking for more throws a CodecError, so corrupt input can never make us allocate more than the cap.
 */
export class OutputBuffer {
  buf: Uint8Array;
  len = 0;
  readonly limit: number;
  private readonly codec: CodecName;

  constructor(codec: CodecName, limit: number, sizeHint: number) {
    this.codec = codec;
    this.limit = limit;
    this.buf = new Uint8Array(Math.min(limit, Math.max(256, sizeHint)));
  }

  /** Makes room for `extra` more bytes after `len`. */
  ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    if (need > this.limit) {
      throw new CodecError(this.codec, `output exceeds the limit of ${this.limit} bytes`);
    }
    const cap = Math.min(this.limit, Math.max(need, this.buf.length * 2));
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  /** The decoded bytes, trimmed (a copy when the buffer is larger than the content). */
  result(): Uint8Array {
    return this.len === this.buf.length ? this.buf : this.buf.slice(0, this.len);
  }
}
