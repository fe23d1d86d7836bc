/**
 * Finds zone signatures anywhere in a region, for geometry auto-detection: every offset whose
 * word is a zone signature (either byte order) with a header that is not obviously garbage;
 * kmsg zones must also carry the kmsg header magic. Zones normally start on the 4-byte grid;
 * the kernel puts them off it when ftrace_size is not divisible by nr_cpu_ids
 * (psz_alloc_zones(): ftrace zones of ftrace_size / nr_cpu_ids bytes, the kmsg zones right after
 * the last of them), e.g. 3, 5, 6, 7 or 12 CPUs; hits of both kinds are kept apart.
 *
 * Every signature is 0x4347424X, so its bytes on disk hold "BGC" (little-endian) or "CGB"
 * (big-endian): the native Buffer.indexOf finds the candidates in one pass, much faster than a
 * loop over every word, and only those are checked.
 */
import type { Endian, ZoneType } from './abi.js';
import { MAX_REGION } from './layout.js';
import type { RegionSource } from './region-source.js';
import { PSTORE_KMSG_HEADER_MAGIC, PSZ_SIG, PSTORE_TYPE, ZONE_HEADER_SIZE } from './abi.js';

export interface FoundSignature {
  offset: number;
  type: ZoneType;
  endian: Endian;
  datalen: number;
  start: number;
}

const CHUNK = 4 << 20;
/** Bytes from a signature to the end of the longest header checked (zone header + kmsg magic). */
const HEAD = ZONE_HEADER_SIZE + 4;
const LE_NEEDLE = Buffer.from([0x42, 0x47, 0x43]);
const BE_NEEDLE = Buffer.from([0x43, 0x47, 0x42]);

function bswap(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function le32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/** Zone types by signature word. */
const TYPES = new Map<number, ZoneType>((Object.entries(PSTORE_TYPE) as [ZoneType, number][]).map(([type, id]) => [(PSZ_SIG ^ id) >>> 0, type]));

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Hits of one scan: at 4-byte aligned offsets, and off that grid, each in offset order. */
interface Hits {
  aligned: FoundSignature[];
  unaligned: FoundSignature[];
}

/**
 * Looks for signatures starting in [from, to) of `bytes` (which starts at region offset `base`),
 * reading headers no further than `end`; each list takes hits until it holds `limit`. An aligned
 * hit's header is read as far as the region's (`regionEnd`) last whole word; an
 * unaligned one (ftrace zones of a CPU count that does not divide ftrace_size, and the kmsg zones
 * after them) needs the zone header and the kmsg magic's room whatever its type.
 */
function scanRange(bytes: Uint8Array, from: number, to: number, end: number, base: number, regionEnd: number, hits: Hits, limit: number): void {
  // An aligned hit's header is cut at the region's last whole word.
  const endW = Math.min(end, regionEnd - (regionEnd % 4) - base);
  to = Math.min(to, end);
  if (from >= to) return;
  const { aligned, unaligned } = hits;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + from, Math.min(to + 3, end) - from);
  // The signature's last 3 bytes ("BGC", little-endian) or first 3 ("CGB", big-endian).
  let le = view.indexOf(LE_NEEDLE, 1);
  let be = view.indexOf(BE_NEEDLE, 0);
  while ((le >= 0 || be >= 0) && (aligned.length < limit || unaligned.length < limit)) {
    let at: number;
    let endian: Endian;
    if (be < 0 || (le >= 0 && le - 1 < be)) {
      at = from + le - 1;
      endian = 'le';
      le = view.indexOf(LE_NEEDLE, le + 1);
    } else {
      at = from + be;
      endian = 'be';
      be = view.indexOf(BE_NEEDLE, be + 1);
    }
    if (at >= to) continue; // a big-endian hit just past the range: the next range's
    const isAligned = (base + at) % 4 === 0;
    const list = isAligned ? aligned : unaligned;
    if (list.length >= limit) continue;
    const headerEnd = isAligned ? endW : end;
    if (at + (isAligned ? 12 : HEAD) > headerEnd) continue;
    const type = TYPES.get(endian === 'le' ? le32(bytes, at) : bswap(le32(bytes, at)));
    if (!type) continue;
    const rd = (p: number) => (endian === 'le' ? le32(bytes, p) : bswap(le32(bytes, p)));
    const datalen = rd(at + 4) | 0;
    const start = rd(at + 8) | 0;
    if (datalen < 0 || start < 0) continue;
    if (type === 'dmesg' && (at + 16 > headerEnd || rd(at + 12) !== PSTORE_KMSG_HEADER_MAGIC)) continue;
    list.push({ offset: base + at, type, endian, datalen, start });
  }
}

/** Both kinds of hits in offset order. */
export function mergeSignatures(a: FoundSignature[], b: FoundSignature[]): FoundSignature[] {
  if (!b.length) return a;
  return [...a, ...b].sort((x, y) => x.offset - y.offset);
}

/**
 * Scans a region in one pass, handed over in consecutive pieces as they arrive (a region still
 * being read), with the same result as scanning all of it at once: a signature near the end of a
 * piece is checked once the next piece holds the rest of its header.
 */
export class SignatureScanner {
  /** Hits at 4-byte aligned offsets (each kind is capped at `limit`). */
  readonly aligned: FoundSignature[] = [];
  /** Hits off the 4-byte grid. */
  readonly unaligned: FoundSignature[] = [];
  private readonly end: number;
  private readonly limit: number;
  /** The last bytes of the previous piece, whose signatures wait for the next piece. */
  private tail: Uint8Array | null = null;
  private tailBase = 0;

  /** `available`: the region's bytes present (scanned up to 128 MiB). */
  constructor(available: number, limit = 4096) {
    this.end = Math.min(available, MAX_REGION);
    this.limit = limit;
  }

  /** Every hit, in offset order. */
  get found(): FoundSignature[] {
    return mergeSignatures(this.aligned, this.unaligned);
  }

  /** True once both kinds of hits are at their limit: nothing more to look for. */
  get full(): boolean {
    return this.aligned.length >= this.limit && this.unaligned.length >= this.limit;
  }

  /** Scans the next piece, which starts at region offset `base` (where the previous one ended). */
  push(base: number, bytes: Uint8Array): void {
    if (base >= this.end) return;
    const len = Math.min(bytes.length, this.end - base);
    const last = base + len >= this.end;
    if (this.tail) {
      const tail = this.tail;
      const joined = concat(tail, bytes.subarray(0, Math.min(len, HEAD)));
      if (!last && len < HEAD) {
        // Too short to complete every header of the tail: scan those it completes, carry the rest.
        const ready = Math.max(0, joined.length - HEAD);
        scanRange(joined, 0, ready, joined.length, this.tailBase, this.end, this, this.limit);
        this.tail = joined.subarray(ready);
        this.tailBase += ready;
        return;
      }
      scanRange(joined, 0, tail.length, joined.length, this.tailBase, this.end, this, this.limit);
      this.tail = null;
    }
    const split = last ? len : Math.max(0, len - HEAD);
    scanRange(bytes, 0, split, len, base, this.end, this, this.limit);
    if (!last) {
      this.tail = bytes.subarray(split, len);
      this.tailBase = base + split;
    }
  }
}

async function scanRegion(src: RegionSource, limit: number, enough: (s: SignatureScanner) => boolean): Promise<SignatureScanner> {
  const scanner = new SignatureScanner(src.available, limit);
  const end = Math.min(src.available, MAX_REGION);
  for (let base = 0; base < end && !enough(scanner); base += CHUNK) scanner.push(base, await src.read(base, Math.min(CHUNK, end - base)));
  return scanner;
}

/** Every signature, aligned or not, in the first min(available, 128 MiB) bytes, in one pass. */
export async function scanAllSignatures(src: RegionSource, limit = 4096): Promise<FoundSignature[]> {
  return (await scanRegion(src, limit, (s) => s.full)).found;
}

/** Signatures at offsets not divisible by 4 (see scanRange). */
export async function scanUnalignedSignatures(src: RegionSource, limit = 4096): Promise<FoundSignature[]> {
  return (await scanRegion(src, limit, (s) => s.unaligned.length >= limit)).unaligned;
}

/** Signatures at 4-byte aligned offsets in the first min(available, 128 MiB) bytes. `limit` caps the number of hits kept. */
export async function scanSignatures(src: RegionSource, limit = 4096): Promise<FoundSignature[]> {
  return (await scanRegion(src, limit, (s) => s.aligned.length >= limit)).aligned;
}
