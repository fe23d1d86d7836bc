/**
 * On-disk structures of pstore/zone in every ABI the kernel is built for (struct psz_buffer and
 * struct psz_kmsg_header in fs/pstore/zone.c, struct pstore_ftrace_record in fs/pstore/internal.h).
 *
 * The kernel writes its in-memory structs verbatim, so byte order and field placement follow
 * the writing CPU: `lp64` (x86_64, arm64, ppc64, mips64, riscv64, s390x), `ilp32` (32-bit ARM
 * EABI, MIPS o32, PPC32, RISC-V32 — s64 aligned to 8) and `i386` (i386 and ARM OABI — s64
 * aligned to 4, 28-byte kmsg header).
 */
export type Endian = 'le' | 'be';
export type KmsgLayoutName = 'lp64' | 'ilp32' | 'i386';

export interface Abi {
  endian: Endian;
  layout: KmsgLayoutName;
}

export interface AbiHint {
  endian?: Endian;
  layout?: KmsgLayoutName;
}

export const PSZ_SIG = 0x43474244; // "DBGC"
export const PSTORE_KMSG_HEADER_MAGIC = 0x4dfc3ae5;
export const ZONE_HEADER_SIZE = 12;

/** enum pstore_type_id values (an on-disk ABI). */
export const PSTORE_TYPE = { dmesg: 0, console: 2, ftrace: 3, pmsg: 7 } as const;
export type ZoneType = keyof typeof PSTORE_TYPE;

export function zoneSignature(type: ZoneType): number {
  return (PSZ_SIG ^ PSTORE_TYPE[type]) >>> 0;
}

export interface KmsgHeaderLayout {
  /** Offsets relative to the start of the zone (i.e. include the 12-byte psz_buffer). */
  magic: number;
  tvSec: number;
  /** Where the 32 significant bits of tv_nsec are (differs between BE64 and BE32). */
  tvNsec(endian: Endian): number;
  /** Padding bytes that the kernel always leaves zero (kzalloc'd buffer). */
  zeroRanges(endian: Endian): [number, number][];
  compressed: number;
  counter: number;
  reason: number;
  /** sizeof(struct psz_kmsg_header): the kernel's payload offset inside data[]. */
  size: number;
}

const H = ZONE_HEADER_SIZE;
export const KMSG_LAYOUTS: Record<KmsgLayoutName, KmsgHeaderLayout> = {
  lp64: {
    magic: H + 0,
    tvSec: H + 8,
    tvNsec: (e) => (e === 'le' ? H + 16 : H + 20),
    zeroRanges: (e) => [[H + 4, H + 8], e === 'le' ? [H + 20, H + 24] : [H + 16, H + 20], [H + 25, H + 28], [H + 36, H + 40]],
    compressed: H + 24,
    counter: H + 28,
    reason: H + 32,
    size: 40,
  },
  ilp32: {
    magic: H + 0,
    tvSec: H + 8,
    tvNsec: () => H + 16,
    zeroRanges: () => [
      [H + 4, H + 8],
      [H + 20, H + 24],
      [H + 25, H + 28],
      [H + 36, H + 40],
    ],
    compressed: H + 24,
    counter: H + 28,
    reason: H + 32,
    size: 40,
  },
  i386: {
    magic: H + 0,
    tvSec: H + 4,
    tvNsec: () => H + 12,
    zeroRanges: () => [[H + 17, H + 20]],
    compressed: H + 16,
    counter: H + 20,
    reason: H + 24,
    size: 28,
  },
};

/** sizeof(struct pstore_ftrace_record): two unsigned longs and a u64. */
export function ftraceRecordSize(layout: KmsgLayoutName): number {
  return layout === 'lp64' ? 24 : 16;
}

export interface ZoneHeader {
  sig: number;
  /** Signed, as the kernel's atomic_t. */
  datalen: number;
  start: number;
}

export function readU32(b: Uint8Array, off: number, endian: Endian): number {
  return endian === 'le'
    ? (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0
    : ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

export function readS32(b: Uint8Array, off: number, endian: Endian): number {
  return readU32(b, off, endian) | 0;
}

/** The view of the last array read from: thousands of records are read in a row from one buffer. */
let lastArray: Uint8Array | undefined;
let lastView: DataView | undefined;
function viewOf(b: Uint8Array): DataView {
  if (b !== lastArray || !lastView) {
    lastView = new DataView(b.buffer, b.byteOffset, b.byteLength);
    lastArray = b;
  }
  return lastView;
}

export function readS64(b: Uint8Array, off: number, endian: Endian): bigint {
  return viewOf(b).getBigInt64(off, endian === 'le');
}

export function readU64(b: Uint8Array, off: number, endian: Endian): bigint {
  return viewOf(b).getBigUint64(off, endian === 'le');
}

export function writeU32(b: Uint8Array, off: number, v: number, endian: Endian): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(off, v >>> 0, endian === 'le');
}

export function parseZoneHeader(b: Uint8Array, endian: Endian): ZoneHeader {
  return { sig: readU32(b, 0, endian), datalen: readS32(b, 4, endian), start: readS32(b, 8, endian) };
}

/** Which byte order, if any, makes these 4 bytes the signature of a zone of `type`. */
export function signatureEndian(b: Uint8Array, off: number, type: ZoneType): Endian | null {
  const sig = zoneSignature(type);
  if (readU32(b, off, 'le') === sig) return 'le';
  if (readU32(b, off, 'be') === sig) return 'be';
  return null;
}

export interface KmsgHeader {
  magic: number;
  tvSec: bigint;
  tvNsec: number;
  compressed: boolean;
  /** The raw byte; the kernel treats any non-zero value as true. */
  compressedByte: number;
  counter: number;
  reason: number;
}

export function parseKmsgHeader(b: Uint8Array, abi: Abi): KmsgHeader {
  const L = KMSG_LAYOUTS[abi.layout];
  const compressedByte = b[L.compressed];
  return {
    magic: readU32(b, L.magic, abi.endian),
    tvSec: readS64(b, L.tvSec, abi.endian),
    tvNsec: readU32(b, L.tvNsec(abi.endian), abi.endian),
    compressed: compressedByte !== 0,
    compressedByte,
    counter: readU32(b, L.counter, abi.endian),
    reason: readS32(b, L.reason, abi.endian),
  };
}

/**
 * How plausible it is that a kmsg zone header (first 52 bytes of the zone) was written with
 * this layout: 0 = impossible (magic mismatch), higher = more fields look as the kernel
 * writes them.
 */
export function scoreKmsgLayout(b: Uint8Array, abi: Abi): number {
  const L = KMSG_LAYOUTS[abi.layout];
  if (b.length < H + L.size) return 0;
  if (readU32(b, L.magic, abi.endian) !== PSTORE_KMSG_HEADER_MAGIC) return 0;
  let score = 1;
  const h = parseKmsgHeader(b, abi);
  if (h.compressedByte <= 1) score += 2;
  if (h.reason >= 0 && h.reason <= 6) score += 2;
  if (h.tvNsec < 1_000_000_000) score += 2;
  if (h.tvSec >= 0n && h.tvSec < 1n << 40n) score += 1;
  for (const [s, e] of L.zeroRanges(abi.endian)) {
    let zero = true;
    for (let i = s; i < e; i++) if (b[i] !== 0) zero = false;
    if (zero) score += 1;
  }
  return score;
}

/** kmsg_dump_reason_str() of 5.8+ kernels. */
export function kmsgReasonString(reason: number): string {
  switch (reason) {
    case 1:
      return 'Panic';
    case 2:
      return 'Oops';
    case 3:
      return 'Emergency';
    case 4:
      return 'Shutdown';
    default:
      return 'Unknown';
  }
}
