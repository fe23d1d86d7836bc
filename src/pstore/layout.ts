/**
 * The zone table exactly as the kernel computes it: pstore/blk's check_size()
 * normalisation, register_pstore_zone()'s checks and psz_alloc_zones()'s placement.
 */
import type { ZoneType } from './abi.js';
import { ZONE_HEADER_SIZE } from './abi.js';

export const MAX_REGION = 128 * 1024 * 1024;

export interface ZoneSizesKiB {
  kmsg_size: number;
  pmsg_size: number;
  console_size: number;
  ftrace_size: number;
}

export interface ZoneSizesBytes {
  kmsg: number;
  pmsg: number;
  console: number;
  ftrace: number;
}

export interface Zone {
  type: ZoneType;
  /** Index among zones of its type: the kmsg index is the N in dmesg-pstore_blk-N. */
  index: number;
  /** Byte offset inside the region. */
  offset: number;
  /** Zone size including the 12-byte header. */
  size: number;
}

export interface Layout {
  /** Bytes of the region the kernel uses: min(region size, 128 MiB), or the whole region for 5.8–5.10. */
  totalSize: number;
  regionSize: number;
  sizes: ZoneSizesBytes;
  cpus: number;
  zones: Zone[];
  kmsgCount: number;
  ftraceCount: number;
  /** Bytes never read or written: the kmsg leftover, the ftrace rounding loss, everything past 128 MiB. */
  unusedBytes: number;
  /** Messages the kernel would print while normalising (e.g. "kmsg_size must align to 4096"). */
  warnings: string[];
  /** Reasons the kernel would refuse to register; empty when the layout is valid. */
  errors: string[];
}

/** pstore/blk check_size(): KiB parameter → bytes, with the kernel's quirky ALIGN of the KiB value. */
export function normaliseSize(name: string, kib: number, warnings: string[]): number {
  let bytes = kib <= 0 ? 0 : kib * 1024;
  if (bytes % 4096 !== 0) {
    warnings.push(`${name} must align to 4096 (the kernel then uses ALIGN(${kib}, 4096) = ${Math.ceil(kib / 4096) * 4096} bytes)`);
    bytes = Math.ceil(kib / 4096) * 4096;
  }
  return bytes;
}

export function normaliseSizes(kib: ZoneSizesKiB, warnings: string[]): ZoneSizesBytes {
  return {
    kmsg: normaliseSize('kmsg_size', kib.kmsg_size, warnings),
    pmsg: normaliseSize('pmsg_size', kib.pmsg_size, warnings),
    console: normaliseSize('console_size', kib.console_size, warnings),
    ftrace: normaliseSize('ftrace_size', kib.ftrace_size, warnings),
  };
}

export interface LayoutOptions {
  /**
   * register_pstore_zone() caps the region at 128 MiB since Linux 5.11 (the default); 5.8–5.10
   * lay their kmsg zones over the whole partition.
   */
  capAt128MiB?: boolean;
}

/**
 * Computes the zone table for a region of `regionSize` bytes. `sizes` are bytes after
 * normalisation; `cpus` is nr_cpu_ids of the writing kernel.
 */
export function computeLayout(regionSize: number, sizes: ZoneSizesBytes, cpus: number, warnings: string[] = [], opts: LayoutOptions = {}): Layout {
  const errors: string[] = [];
  const zones: Zone[] = [];
  let T = regionSize;
  if (T < 4096) errors.push(`total_size must be >= 4096 (region is ${regionSize} bytes)`);
  if (T > MAX_REGION && opts.capAt128MiB !== false) {
    warnings.push('capping size to 128MiB (bytes past 128 MiB are never used)');
    T = MAX_REGION;
  }
  if (T % 4096 !== 0) errors.push(`total_size must be a multiple of 4096 (region is ${regionSize} bytes)`);
  const { kmsg: K, pmsg: P, console: C, ftrace: F } = sizes;
  if (!K && !P && !C && !F) errors.push('all zone sizes are 0');
  for (const [name, v] of [
    ['kmsg_size', K],
    ['pmsg_size', P],
    ['console_size', C],
    ['ftrace_size', F],
  ] as const) {
    if ((v > 0 && v < 512) || v % 512 !== 0) errors.push(`${name} ${v} must be 0 or a multiple of 512 bytes`);
  }
  let off = 0;
  const single = (type: ZoneType, size: number) => {
    if (!size) return;
    if (off + size > T) {
      errors.push(`no room for ${type} (0x${size.toString(16)}@0x${off.toString(16)} over 0x${T.toString(16)})`);
      return;
    }
    zones.push({ type, index: 0, offset: off, size });
    off += size;
  };
  single('pmsg', P);
  single('console', C);
  let ftraceCount = 0;
  if (F) {
    const n = Math.max(1, cpus);
    const q = Math.floor(F / n);
    if (off + F > T) errors.push(`no room for zones ftrace (0x${F.toString(16)}@0x${off.toString(16)} over 0x${T.toString(16)})`);
    else if (q === 0) errors.push('zone ftrace total_size too small');
    else {
      ftraceCount = Math.floor(F / q);
      if (q < ZONE_HEADER_SIZE) errors.push(`ftrace zone size ${q} is smaller than its header`);
      for (let i = 0; i < ftraceCount; i++) zones.push({ type: 'ftrace', index: i, offset: off + i * q, size: q });
      off += ftraceCount * q;
      if (ftraceCount * q !== F) warnings.push(`ftrace_size ${F} is not divisible by ${n} CPUs: ${F - ftraceCount * q} bytes unused and the kmsg zones start unaligned`);
    }
  }
  let kmsgCount = 0;
  const kmsgArea = T - P - C - F;
  if (K) {
    if (kmsgArea < 0 || off + kmsgArea > T) errors.push(`no room for zones dmesg (0x${Math.max(0, kmsgArea).toString(16)}@0x${off.toString(16)} over 0x${T.toString(16)})`);
    else {
      kmsgCount = Math.floor(kmsgArea / K);
      if (kmsgCount === 0) errors.push(`zone dmesg total_size too small (${kmsgArea} bytes left for kmsg zones of ${K})`);
      for (let j = 0; j < kmsgCount; j++) zones.push({ type: 'dmesg', index: j, offset: off + j * K, size: K });
    }
  }
  const used = zones.reduce((a, z) => a + z.size, 0);
  return {
    totalSize: T,
    regionSize,
    sizes,
    cpus,
    zones,
    kmsgCount,
    ftraceCount,
    unusedBytes: regionSize - used,
    warnings,
    errors,
  };
}
