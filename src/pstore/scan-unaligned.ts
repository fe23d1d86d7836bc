/**
 * Finds zone signatures at offsets that are not 4-byte aligned. The kernel puts them there when
 * ftrace_size is not divisible by nr_cpu_ids (psz_alloc_zones(): ftrace zones of
 * ftrace_size / nr_cpu_ids bytes, the kmsg zones right after the last of them), e.g. 3, 5, 6, 7 or
 * 12 CPUs. The aligned scan (scan.ts) never looks there; this pass searches the bytes every
 * signature shares ("?BGC" little-endian, "CGB?" big-endian) with the native byte search and keeps
 * only hits off the 4-byte grid, checked as the aligned scan checks its hits.
 */
import type { Endian, ZoneType } from './abi.js';
import { PSTORE_KMSG_HEADER_MAGIC, PSTORE_TYPE, PSZ_SIG, ZONE_HEADER_SIZE } from './abi.js';
import { MAX_REGION } from './layout.js';
import type { RegionSource } from './region-source.js';
import type { FoundSignature } from './scan.js';

const CHUNK = 4 << 20;
/** Bytes a hit needs after the signature: the zone header plus the kmsg magic. */
const NEED = ZONE_HEADER_SIZE + 4;
const LE_TAIL = Buffer.from([0x42, 0x47, 0x43]); // bytes 1..3 of a little-endian signature
const BE_HEAD = Buffer.from([0x43, 0x47, 0x42]); // bytes 0..2 of a big-endian signature

const TYPE_OF = new Map<number, ZoneType>((Object.entries(PSTORE_TYPE) as [ZoneType, number][]).map(([t, id]) => [(PSZ_SIG ^ id) >>> 0, t]));

/** The header at byte `at` of `view` if it is a plausible zone header of either byte order. */
function headerAt(view: DataView, at: number, endian: Endian, base: number): FoundSignature | null {
  if (at < 0 || at + NEED > view.byteLength) return null;
  const le = endian === 'le';
  const type = TYPE_OF.get(view.getUint32(at, le));
  if (!type) return null;
  const datalen = view.getInt32(at + 4, le);
  const start = view.getInt32(at + 8, le);
  if (datalen < 0 || start < 0) return null;
  if (type === 'dmesg' && view.getUint32(at + ZONE_HEADER_SIZE, le) !== PSTORE_KMSG_HEADER_MAGIC) return null;
  return { offset: base + at, type, endian, datalen, start };
}

/** Scans the first min(available, 128 MiB) bytes for signatures at offsets not divisible by 4. */
export async function scanUnalignedSignatures(src: RegionSource, limit = 4096): Promise<FoundSignature[]> {
  const found: FoundSignature[] = [];
  const end = Math.min(src.available, MAX_REGION);
  for (let base = 0; base < end && found.length < limit; base += CHUNK) {
    const bytes = await src.read(base, Math.min(CHUNK + NEED, end - base));
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const scanEnd = Math.min(bytes.length, CHUNK);
    const hits: FoundSignature[] = [];
    for (const [needle, endian, shift] of [
      [LE_TAIL, 'le', -1],
      [BE_HEAD, 'be', 0],
    ] as const) {
      for (let i = buf.indexOf(needle, 0); i >= 0 && i < scanEnd + 1; i = buf.indexOf(needle, i + 1)) {
        const at = i + shift;
        if (at < 0 || at >= scanEnd || (base + at) % 4 === 0) continue;
        const h = headerAt(view, at, endian, base);
        if (h) hits.push(h);
      }
    }
    hits.sort((a, b) => a.offset - b.offset);
    for (const h of hits) {
      if (found.length >= limit) break;
      found.push(h);
    }
  }
  return found;
}

/** Both scans' hits in offset order. */
export function mergeSignatures(a: FoundSignature[], b: FoundSignature[]): FoundSignature[] {
  if (!b.length) return a;
  return [...a, ...b].sort((x, y) => x.offset - y.offset);
}
