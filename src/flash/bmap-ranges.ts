/**
 * bmap range selection: of the whole image streaming past in order, only the bmap's mapped
 * ranges go on to the destinations; the holes are dropped. Each range's checksum (when the
 * bmap has one) is computed over its bytes as they pass and compared when the range ends, so a
 * corrupt image or a bmap of another image stops the flash before the held-back head is written.
 */
import { createHash } from 'node:crypto';
import { rangeBytes, type Bmap, type BmapRange } from './bmap.js';
import { SourceError } from './errors.js';
import type { ChunkSink } from './rechunk.js';

export class BmapRangeSelector {
  /** Index of the first range not yet complete. */
  private ri = 0;
  private rangeHash: ReturnType<typeof createHash> | undefined;

  /** `imagePath` names the image in messages. */
  constructor(
    private readonly bmap: Bmap,
    private readonly imagePath: string,
    private readonly sink: ChunkSink,
  ) {}

  /** Passes on the mapped parts of `data` (image bytes from `offset`, in stream order). */
  async take(offset: number, data: Uint8Array): Promise<void> {
    const { bmap } = this;
    const ranges = bmap.ranges;
    const end = offset + data.length;
    while (this.ri < ranges.length) {
      const r = ranges[this.ri];
      const rb = rangeBytes(bmap, r);
      if (rb.start >= end) break;
      const s = Math.max(rb.start, offset);
      const e = Math.min(rb.end, end);
      if (s < e) await this.pass(r, s, data.subarray(s - offset, e - offset));
      if (rb.end > end) break;
      this.checkRange(r, rb);
      this.ri++;
    }
  }

  /** Hands on a mapped part of range `r` at image offset `s`, feeding the range's checksum. */
  private async pass(r: BmapRange, s: number, part: Uint8Array): Promise<void> {
    const { checksumType } = this.bmap;
    if (r.checksum && checksumType) {
      this.rangeHash ??= createHash(checksumType);
      this.rangeHash.update(part);
    }
    await this.sink(s, part);
  }

  /** Range `r` (bytes `rb`) has gone past completely: its checksum must match. */
  private checkRange(r: BmapRange, rb: { start: number; end: number }): void {
    const { checksumType } = this.bmap;
    if (!r.checksum || !checksumType) return;
    const got = (this.rangeHash ?? createHash(checksumType)).digest('hex');
    this.rangeHash = undefined;
    if (got !== r.checksum) {
      throw new SourceError(
        `${this.imagePath}: checksum mismatch for blocks ${r.first}-${r.last} (bytes ${rb.start}–${rb.end - 1}): the bmap's ${checksumType} is ${r.checksum}, the image data gives ${got}; the image is corrupt or the bmap belongs to another image`,
      );
    }
  }
}
