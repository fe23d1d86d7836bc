/**
 * Re-chunking: the decoders yield pieces of any size; the rest of the flash pipeline works in
 * fixed-size chunks (one digest, one queue slot and one write each). A Rechunker copies the
 * stream into chunks of exactly `chunkSize` bytes (the last may be shorter) and hands each
 * one, with its image offset, to `sink`. Every chunk is a fresh buffer the sink may keep: a
 * whole chunk the caller owns (`push(data, true)`) that starts on a chunk boundary is handed on
 * as it is, without a copy.
 */
export type ChunkSink = (offset: number, data: Uint8Array) => Promise<void>;

export class Rechunker {
  private cur: Uint8Array;
  private curStart = 0;
  private curLen = 0;
  /** Bytes taken in so far (the image offset of the next byte). */
  taken = 0;

  constructor(
    private readonly chunkSize: number,
    private readonly sink: ChunkSink,
  ) {
    this.cur = new Uint8Array(chunkSize);
  }

  /** Takes `data` in, passing on every chunk it fills; `owned`: nothing else holds or reuses `data`. */
  async push(data: Uint8Array, owned = false): Promise<void> {
    if (owned && this.curLen === 0 && data.length === this.chunkSize) {
      const at = this.curStart;
      this.curStart += data.length;
      this.taken += data.length;
      return this.sink(at, data);
    }
    while (data.length > 0) {
      const n = Math.min(this.chunkSize - this.curLen, data.length);
      this.cur.set(data.subarray(0, n), this.curLen);
      this.curLen += n;
      data = data.subarray(n);
      this.taken += n;
      if (this.curLen === this.chunkSize) await this.flush();
    }
  }

  /** Passes on the partly filled chunk, if any (at the end of the stream). */
  async flush(): Promise<void> {
    if (this.curLen === 0) return;
    const chunk = this.cur.subarray(0, this.curLen);
    this.cur = new Uint8Array(this.chunkSize);
    const at = this.curStart;
    this.curStart += this.curLen;
    this.curLen = 0;
    await this.sink(at, chunk);
  }
}
