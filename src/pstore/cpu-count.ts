/**
 * The writing kernel's nr_cpu_ids, read from where its zones are on the card.
 *
 * psz_alloc_zones() gives each possible CPU an ftrace zone of q = ftrace_size / nr_cpu_ids
 * bytes (integer division), makes floor(ftrace_size / q) of them, and starts the kmsg zones
 * right after the last one — up to a few bytes before pmsg + console + ftrace_size when the
 * division is not exact. Every count from 1 to NR_CPUS_MAX is tried at the kernel's offsets;
 * counts that give the same q lay the zones out identically and are handled together.
 */
import { ZONE_HEADER_SIZE } from './abi.js';
import type { ZoneSizesBytes } from './layout.js';
import { MAX_REGION } from './layout.js';
import type { FoundSignature } from './scan.js';

/** The largest CONFIG_NR_CPUS of Debian's kernels (amd64, arm64: 8192 in 6.1 and 6.12). */
export const NR_CPUS_MAX = 8192;

export interface CpuCountFit {
  /** Smallest count with this layout. */
  cpus: number;
  /** Largest count with this layout (counts in between give the same zone size). */
  cpusMax: number;
  /** Size of each ftrace zone (ftrace_size / cpus). */
  ftraceZoneSize: number;
  ftraceZones: number;
  /** Offset of kmsg zone 0 in the region. */
  kmsgStart: number;
  /** Signatures at this layout's ftrace and kmsg zone starts. */
  hits: number;
  /** ftrace and kmsg signatures this layout does not place at a zone start (or in an impossible zone). */
  unexplained: number;
  /** Headers whose datalen or start exceed this layout's zone. */
  overtop: number;
  /** Wrapped ftrace zones whose datalen equals this layout's buffer size exactly (confirms the size). */
  fullZones: number;
}

export type CpuCountDecision =
  /** one layout fits */
  | 'single'
  /** several fit; wrapped zones' sizes confirm one */
  | 'records'
  /** several fit and all give the same records (same kmsg numbering) */
  | 'same-records'
  /** several fit and they number kmsg records differently */
  | 'ambiguous'
  /** none places the zones at the signatures found */
  | 'none'
  /** no ftrace or kmsg zone written: the count cannot be seen and changes nothing */
  | 'no-evidence';

export interface CpuCountDetection {
  cpus: number;
  decision: CpuCountDecision;
  /** Layouts that explain every signature (best first), at most 8. */
  fits: CpuCountFit[];
  /** What to tell the user; a warning for `ambiguous` and `none`. */
  message?: string;
}

interface Area {
  P: number;
  C: number;
  F: number;
  K: number;
  /** Number of kmsg zones (independent of the CPU count). */
  ck: number;
}

function areaOf(sizes: ZoneSizesBytes, regionSize: number): Area {
  const T = Math.min(regionSize, MAX_REGION);
  const { pmsg: P, console: C, ftrace: F, kmsg: K } = sizes;
  return { P, C, F, K, ck: K ? Math.max(0, Math.floor((T - P - C - F) / K)) : 0 };
}

/** Every distinct ftrace zone size for counts 1..maxCpus, with the range of counts giving it. */
export function* cpuCountGroups(ftraceSize: number, maxCpus = NR_CPUS_MAX): Generator<{ q: number; lo: number; hi: number }> {
  let n = 1;
  while (n <= maxCpus) {
    const q = Math.floor(ftraceSize / n);
    // A zone must hold its header and at least one byte of data.
    if (q <= ZONE_HEADER_SIZE) return;
    // The largest n with floor(F / n) === q.
    const hi = Math.min(maxCpus, Math.floor(ftraceSize / q));
    yield { q, lo: n, hi };
    n = hi + 1;
  }
}

/** Bytes by which the kmsg zones start before pmsg + console + ftrace_size for `cpus` CPUs. */
export function kmsgShift(ftraceSize: number, cpus: number): number {
  const q = Math.floor(ftraceSize / cpus);
  return q ? ftraceSize - Math.floor(ftraceSize / q) * q : 0;
}

/** The smallest counts (up to `max` of them) whose kmsg zones start `shift` bytes early. */
export function cpuCountsWithShift(ftraceSize: number, shift: number, max = 2): number[] {
  const out: number[] = [];
  for (const g of cpuCountGroups(ftraceSize)) {
    if (ftraceSize - Math.floor(ftraceSize / g.q) * g.q === shift) out.push(g.lo);
    if (out.length >= max) break;
  }
  return out;
}

function evaluate(a: Area, g: { q: number; lo: number; hi: number }, ftrace: FoundSignature[], kmsgByResidue: Map<number, FoundSignature[]>, kmsgTotal: number): CpuCountFit {
  const { P, C, F, K, ck } = a;
  const q = g.q;
  const cf = Math.floor(F / q);
  const kmsgStart = P + C + cf * q;
  let hits = 0;
  let unexplained = 0;
  let overtop = 0;
  let fullZones = 0;
  let lo = g.lo;
  for (const f of ftrace) {
    const rel = f.offset - P - C;
    if (rel < 0 || rel >= cf * q || rel % q !== 0) {
      unexplained++;
      continue;
    }
    hits++;
    // Zone i is written only by CPU i (psz_pstore_write: smp_processor_id()).
    lo = Math.max(lo, rel / q + 1);
    if (f.datalen > q - ZONE_HEADER_SIZE || f.start > q - ZONE_HEADER_SIZE) overtop++;
    else if (f.datalen === q - ZONE_HEADER_SIZE && f.start < f.datalen) fullZones++;
  }
  if (K) {
    let kmsgHits = 0;
    for (const f of kmsgByResidue.get((((kmsgStart - P - C) % K) + K) % K) ?? []) {
      if (f.offset < kmsgStart || (f.offset - kmsgStart) / K >= ck) continue;
      kmsgHits++;
      if (f.datalen > K - ZONE_HEADER_SIZE) overtop++;
    }
    hits += kmsgHits;
    unexplained += kmsgTotal - kmsgHits;
  } else unexplained += kmsgTotal;
  // A written zone no CPU of this count owns (cf > cpus happens when F < cpus²).
  if (lo > g.hi) unexplained++;
  return { cpus: lo, cpusMax: g.hi, ftraceZoneSize: q, ftraceZones: cf, kmsgStart, hits, unexplained, overtop, fullZones };
}

const list = (fits: CpuCountFit[]) => fits.map((f) => (f.cpusMax > f.cpus ? `${f.cpus}-${f.cpusMax}` : `${f.cpus}`)).join(', ');

/**
 * Detects nr_cpu_ids from the signatures found in the region (both scans: the zones of counts
 * that do not divide ftrace_size are not 4-byte aligned). `sizes` are the zone sizes in bytes.
 */
export function detectCpuCount(found: FoundSignature[], sizes: ZoneSizesBytes, regionSize: number, maxCpus = NR_CPUS_MAX): CpuCountDetection {
  const a = areaOf(sizes, regionSize);
  const areaStart = a.P + a.C;
  const ftrace = found.filter((f) => f.type === 'ftrace' && f.offset >= areaStart);
  const kmsg = found.filter((f) => f.type === 'dmesg' && f.offset >= areaStart);
  const kmsgByResidue = new Map<number, FoundSignature[]>();
  if (a.K) {
    for (const f of kmsg) {
      const r = (f.offset - areaStart) % a.K;
      let b = kmsgByResidue.get(r);
      if (!b) kmsgByResidue.set(r, (b = []));
      b.push(f);
    }
  }
  if (!a.F) return { cpus: 1, decision: 'no-evidence', fits: [] };
  const all: CpuCountFit[] = [];
  for (const g of cpuCountGroups(a.F, maxCpus)) all.push(evaluate(a, g, ftrace, kmsgByResidue, kmsg.length));
  if (!all.length) return { cpus: 1, decision: 'none', fits: [], message: `ftrace_size ${a.F} is too small to split into zones for any CPU count` };
  // Only ftrace zone 0 (at the same offset for every count) and nothing else: nothing to see.
  const telling = ftrace.some((f) => f.offset !== areaStart) || kmsg.length > 0;
  const fits = all.filter((f) => f.unexplained === 0 && f.overtop === 0);
  if (!telling) {
    const first = fits[0] ?? all[0];
    return {
      cpus: first.cpus,
      decision: 'no-evidence',
      fits: fits.slice(0, 8),
      message: `the CPU count cannot be seen on the card (only ftrace zone 0 or no ftrace/kmsg zone was written); it does not change the records; using ${first.cpus}`,
    };
  }
  if (!fits.length) {
    const best = [...all].sort((x, y) => x.unexplained + x.overtop - (y.unexplained + y.overtop) || y.hits - x.hits || x.cpus - y.cpus)[0];
    const stray = [...ftrace, ...kmsg]
      .slice(0, 4)
      .map((f) => `${f.type}@0x${f.offset.toString(16)}`)
      .join(', ');
    return {
      cpus: best.cpus,
      decision: 'none',
      fits: [],
      message:
        `no CPU count from 1 to ${maxCpus} places the ftrace and kmsg zones at the signatures found (${stray}${ftrace.length + kmsg.length > 4 ? ', …' : ''}); ` +
        `decoded with ${best.cpus} CPU(s), which explains the most (${best.unexplained} signature(s) left over): give --cpus if you know it`,
    };
  }
  if (fits.length === 1) return { cpus: fits[0].cpus, decision: 'single', fits };
  const maxFull = Math.max(...fits.map((f) => f.fullZones));
  const confirmed = maxFull > 0 ? fits.filter((f) => f.fullZones === maxFull) : fits;
  if (confirmed.length === 1) {
    return {
      cpus: confirmed[0].cpus,
      decision: 'records',
      fits,
      message: `CPU counts ${list(fits)} all place the zones at the signatures found; a wrapped ftrace zone exactly ${confirmed[0].ftraceZoneSize - ZONE_HEADER_SIZE} bytes long confirms ${list(confirmed)}`,
    };
  }
  const sameRecords = confirmed.every((f) => kmsg.length === 0 || f.kmsgStart === confirmed[0].kmsgStart);
  const cpus = confirmed[0].cpus;
  return {
    cpus,
    decision: sameRecords ? 'same-records' : 'ambiguous',
    fits: confirmed.slice(0, 8),
    message: sameRecords
      ? `CPU counts ${list(confirmed.slice(0, 8))}${confirmed.length > 8 ? ', …' : ''} all place the zones at the signatures found and give the same records; using ${cpus}`
      : `CPU counts ${list(confirmed.slice(0, 8))}${confirmed.length > 8 ? ', …' : ''} all place the zones at the signatures found but number the kmsg records differently; using ${cpus}: give --cpus if you know it`,
  };
}
