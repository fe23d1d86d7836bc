/**
 * Sorted, non-overlapping byte ranges of an image (a bmap's mapped ranges), asked which parts
 * of a span of the image they cover.
 */
export class MappedRanges {
  /** Flat [start, end) pairs, in order. */
  constructor(private readonly flat: readonly number[]) {
    for (let i = 2; i < flat.length; i += 2) {
      if (flat[i] < flat[i - 1]) throw new Error('mapped ranges must be sorted and must not overlap');
    }
  }

  /** Index (in pairs) of the first range that ends after `at`. */
  private firstEndingAfter(at: number): number {
    let lo = 0;
    let hi = this.flat.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.flat[2 * mid + 1] <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The parts of [start, end) inside the ranges, as [start, end) pairs in order. */
  within(start: number, end: number): [number, number][] {
    const out: [number, number][] = [];
    for (let i = this.firstEndingAfter(start); 2 * i < this.flat.length; i++) {
      const s = Math.max(start, this.flat[2 * i]);
      const e = Math.min(end, this.flat[2 * i + 1]);
      if (this.flat[2 * i] >= end) break;
      if (s < e) out.push([s, e]);
    }
    return out;
  }
}
