/**
 * Turns what we were told (command line, flags, profile, Kconfig) plus what is on the disk
 * into the exact zone layout the writing kernel used, and says where every value came from.
 */
import { NoPstoreError } from '../errors.js';
import type { Layout, LayoutOptions, ZoneSizesBytes, ZoneSizesKiB } from './layout.js';
import { MAX_REGION, computeLayout, normaliseSize, normaliseSizes } from './layout.js';
import type { ParamSource, PstoreParams, SizeParam, Sourced } from './params.js';
import { KCONFIG_DEFAULTS, SIZE_PARAMS } from './params.js';
import type { RegionSource } from './region-source.js';
import type { CpuCountDetection } from './cpu-count.js';
import { cpuCountsWithShift, detectCpuCount } from './cpu-count.js';
import type { FoundSignature } from './scan.js';
import type { ZoneType } from './abi.js';
import { scanAllSignatures } from './scan.js';

export interface EffectiveGeometry {
  /** KiB values as the kernel's module parameters would read back after normalisation. */
  kmsg_size: Sourced<number>;
  pmsg_size: Sourced<number>;
  console_size: Sourced<number>;
  ftrace_size: Sourced<number>;
  cpus: Sourced<number>;
  layout: Layout;
  /** Signatures seen while detecting (only when something had to be detected). */
  signaturesFound?: number;
  /** Other geometries that explain the disk equally well but name records differently. */
  alternatives?: string[];
  /** How the CPU count was read from the card (only when it had to be detected). */
  cpuDetection?: CpuCountDetection;
}

const FRONTEND_CANDIDATES = [0, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
const KMSG_CANDIDATES = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
const CPU_CANDIDATES = [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 128, 256];

interface Candidate {
  kib: ZoneSizesKiB;
  cpus: number;
  score: number;
  /** Place in the enumeration (zone sizes, then CPU count): breaks ties. */
  seq: number;
}

/** Whether `a` ranks before `b`: a higher score, or the same score and enumerated earlier. */
function before(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.seq < b.seq);
}

function describe(c: Candidate): string {
  const k = c.kib;
  return `kmsg_size=${k.kmsg_size} pmsg_size=${k.pmsg_size} console_size=${k.console_size} ftrace_size=${k.ftrace_size}${k.ftrace_size > 0 ? ` cpus=${c.cpus}` : ''}`;
}

/**
 * The signatures found, arranged so that scoring a candidate costs a few binary searches instead
 * of a pass over every signature: kmsg signatures are grouped, per kmsg zone size, by their offset
 * modulo that size (a candidate's kmsg zones all start at one such residue), sorted by offset, with
 * a running count of the headers that would not fit a zone of that size.
 */
interface SignatureIndex {
  /** pmsg, console and ftrace signatures (few), checked one by one. */
  others: FoundSignature[];
  dmesgCount: number;
  /** kmsg zone size (bytes) → offset modulo that size → the kmsg signatures there. */
  dmesgByResidue: Map<number, Map<number, { offsets: number[]; overtopBefore: number[] }>>;
}

function indexSignatures(found: FoundSignature[], kmsgSizes: number[]): SignatureIndex {
  const dmesg = found.filter((f) => f.type === 'dmesg').sort((a, b) => a.offset - b.offset);
  const dmesgByResidue: SignatureIndex['dmesgByResidue'] = new Map();
  for (const K of kmsgSizes) {
    const classes = new Map<number, { offsets: number[]; overtopBefore: number[] }>();
    for (const f of dmesg) {
      let c = classes.get(f.offset % K);
      if (!c) classes.set(f.offset % K, (c = { offsets: [], overtopBefore: [0] }));
      c.offsets.push(f.offset);
      const overtop = f.datalen > K - 12 || f.start > K - 12 ? 1 : 0;
      c.overtopBefore.push(c.overtopBefore[c.overtopBefore.length - 1] + overtop);
    }
    dmesgByResidue.set(K, classes);
  }
  return { others: found.filter((f) => f.type !== 'dmesg'), dmesgCount: dmesg.length, dmesgByResidue };
}

/** kmsg signatures scored at most (a candidate costs a few binary searches whatever their number). */
const MAX_SCORED_KMSG = 65536;

/**
 * The signatures candidates are scored on: every pmsg, console and ftrace one (few, and each one
 * places the zones after it) and every kmsg one; on a region with more kmsg records than
 * MAX_SCORED_KMSG, the first 64 (where the kmsg zones start) and an even spread of the rest.
 */
function scoredSignatures(found: FoundSignature[]): FoundSignature[] {
  const dmesg = found.filter((f) => f.type === 'dmesg').length;
  if (dmesg <= MAX_SCORED_KMSG) return found;
  const step = Math.ceil(dmesg / MAX_SCORED_KMSG);
  let n = 0;
  return found.filter((f) => f.type !== 'dmesg' || n++ < 64 || n % step === 0);
}

/** Index of the first element of the ascending `a` that is >= `v`. */
function lowerBound(a: number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A score `scoreCandidate` cannot exceed for these zone sizes, whatever the CPU count: the pmsg
 * and console signatures it explains, the ftrace ones that could lie in its ftrace zones and every
 * kmsg signature explained, less the penalties that do not depend on the CPU count (region too
 * small, sizes other than the defaults). Every term left out only lowers a score.
 */
function scoreBound(kib: ZoneSizesKiB, s: ZoneSizesBytes, regionSize: number, sigs: SignatureIndex, kmsgSpacing: number): number {
  let explained = sigs.dmesgCount;
  for (const f of sigs.others) {
    if (
      f.type === 'pmsg'
        ? s.pmsg && f.offset === 0
        : f.type === 'console'
          ? s.console && f.offset === s.pmsg
          : s.ftrace && f.offset >= s.pmsg + s.console && f.offset < s.pmsg + s.console + s.ftrace
    )
      explained++;
  }
  const tooSmall = regionTooSmall(kib, s, regionSize) ? 1 : 0;
  return explained * 1000 - (sigs.others.length + sigs.dmesgCount - explained) * 1000 - tooSmall * 300 - sizePrior(kib, s, kmsgSpacing) * 3;
}

/**
 * The part of a candidate's prior penalty that depends on its zone sizes alone (scoreCandidate
 * adds the CPU count's). Unwritten zones are invisible, so several layouts can explain the same
 * disk: prefer the Kconfig defaults (64 KiB or no zone), and, since the kernel fills kmsg zones
 * round robin so that dumps normally sit in consecutive zones, the kmsg zone size equal to the
 * spacing of the dumps found over its divisors.
 */
function sizePrior(kib: ZoneSizesKiB, s: ZoneSizesBytes, kmsgSpacing: number): number {
  let prior = 0;
  for (const k of ['pmsg_size', 'console_size', 'ftrace_size'] as const) if (kib[k] !== 0 && kib[k] !== 64) prior += 1;
  if (kib.kmsg_size !== 64) prior += 1;
  if (kmsgSpacing && s.kmsg < kmsgSpacing) prior += 4 * Math.log2(kmsgSpacing / s.kmsg);
  return prior;
}

/** A region smaller than these zones need (possible only as a truncated image). */
function regionTooSmall(kib: ZoneSizesKiB, s: ZoneSizesBytes, regionSize: number): boolean {
  const T = Math.min(regionSize, MAX_REGION);
  return T < 128 * 1024 * 1024 && kib.kmsg_size > 0 && T - s.pmsg - s.console - s.ftrace < s.kmsg;
}

/**
 * Scores a candidate geometry against the signatures found: every signature should sit at
 * the start of a zone of its type, with a header that fits that zone. Computed analytically
 * (no zone list) so that thousands of candidates stay cheap.
 */
function scoreCandidate(kib: ZoneSizesKiB, s: ZoneSizesBytes, cpus: number, regionSize: number, sigs: SignatureIndex, kmsgSpacing: number): number | null {
  let T = Math.min(regionSize, MAX_REGION);
  // A region too small for the geometry is possible only as a truncated image: allow it, penalised.
  let tooSmall = 0;
  if (regionTooSmall(kib, s, regionSize)) {
    tooSmall = 1;
    T = s.pmsg + s.console + s.ftrace + s.kmsg * Math.max(1, Math.ceil((regionSize - s.pmsg - s.console - s.ftrace) / s.kmsg));
  }
  const P = s.pmsg;
  const C = s.console;
  const F = s.ftrace;
  const K = s.kmsg;
  if (!K && !P && !C && !F) return null;
  if (P + C + F > T) return null;
  const q = F ? Math.floor(F / cpus) : 0;
  if (F && q < 512) return null;
  const cf = F ? Math.floor(F / q) : 0;
  const base = P + C + cf * q;
  const ck = K ? Math.floor((T - P - C - F) / K) : 0;
  if (K && ck === 0) return null;
  let explained = 0;
  let unexplained = 0;
  let overtop = 0;
  let minKmsg = Infinity;
  for (const f of sigs.others) {
    let zoneSize = 0;
    switch (f.type) {
      case 'pmsg':
        if (P && f.offset === 0) zoneSize = P;
        break;
      case 'console':
        if (C && f.offset === P) zoneSize = C;
        break;
      case 'ftrace':
        if (F && f.offset >= P + C && f.offset < base && (f.offset - P - C) % q === 0) zoneSize = q;
        break;
    }
    if (!zoneSize) {
      unexplained++;
      continue;
    }
    explained++;
    if (f.datalen > zoneSize - 12 || f.start > zoneSize - 12) overtop++;
  }
  // kmsg signatures at the start of one of the ck zones of K bytes from `base`: those in base's
  // residue class modulo K within [base, base + ck * K).
  const cls = K ? sigs.dmesgByResidue.get(K)?.get(base % K) : undefined;
  let inZones = 0;
  if (cls) {
    const lo = lowerBound(cls.offsets, base);
    const hi = lowerBound(cls.offsets, base + ck * K);
    inZones = hi - lo;
    overtop += cls.overtopBefore[hi] - cls.overtopBefore[lo];
    if (inZones) minKmsg = (cls.offsets[lo] - base) / K;
  }
  explained += inZones;
  unexplained += sigs.dmesgCount - inZones;
  // Among layouts that explain the same disk, prefer the zone sizes sizePrior() favours, a first
  // dump in kmsg zone 0 (a fresh region is written from zone 0), then fewer CPUs.
  let prior = sizePrior(kib, s, kmsgSpacing);
  if (F && F % cpus !== 0) prior += 2;
  const first = minKmsg === Infinity ? 0 : Math.min(minKmsg, 20);
  return explained * 1000 - unexplained * 1000 - overtop * 500 - tooSmall * 300 - first * 10 - prior * 3 - (F ? Math.log2(cpus) : 0);
}

export interface ResolveOptions {
  /** Always scan the region, even when every parameter is known (to report mismatches). */
  verify?: boolean;
  /** The region's signatures when the caller has already scanned it (as `scanAllSignatures` finds them). */
  found?: FoundSignature[];
}

/**
 * Resolves the effective geometry. Parameters not given are taken from Kconfig when known,
 * else detected from the signatures on the disk.
 */
export async function resolveGeometry(src: RegionSource, params: PstoreParams, opts: ResolveOptions = {}): Promise<EffectiveGeometry> {
  const known: Partial<Record<SizeParam, Sourced<number>>> = {};
  for (const k of SIZE_PARAMS) if (params[k]) known[k] = params[k];
  const cpusKnown = params.cpus;
  const missing = SIZE_PARAMS.filter((k) => !known[k]);
  const needCpus = (kib: ZoneSizesKiB) => kib.ftrace_size > 0 && !cpusKnown;

  const finish = (kib: ZoneSizesKiB, cpus: number, sources: Record<SizeParam, ParamSource>, cpuSource: ParamSource, extra: Partial<EffectiveGeometry> = {}): EffectiveGeometry => {
    const warnings: string[] = [];
    const sizes = normaliseSizes(kib, warnings);
    const layout = fitLayout(src, sizes, cpus, warnings);
    const bytes: Record<SizeParam, number> = { kmsg_size: sizes.kmsg, pmsg_size: sizes.pmsg, console_size: sizes.console, ftrace_size: sizes.ftrace };
    const eff = (k: SizeParam): Sourced<number> => ({ value: bytes[k] / 1024, source: sources[k] });
    return {
      kmsg_size: eff('kmsg_size'),
      pmsg_size: eff('pmsg_size'),
      console_size: eff('console_size'),
      ftrace_size: eff('ftrace_size'),
      cpus: { value: cpus, source: cpuSource },
      layout,
      ...extra,
    };
  };

  if (missing.length === 0 && !needCpus(kibOf(known as Record<SizeParam, Sourced<number>>)) && !opts.verify) {
    const kib = kibOf(known as Record<SizeParam, Sourced<number>>);
    return finish(kib, cpusKnown?.value ?? 1, sourcesOf(known as Record<SizeParam, Sourced<number>>), cpusKnown?.source ?? 'default');
  }

  // Zones of a CPU count that does not divide ftrace_size start off the 4-byte grid.
  const found = opts.found ?? (await scanAllSignatures(src));
  if (found.length === 0 && missing.length > 0) {
    throw new NoPstoreError(
      `no pstore/blk zone signatures found in the region (${src.available} bytes scanned) and the geometry is incomplete (${missing.join(', ')} not given): nothing to extract`,
    );
  }
  const scoring = scoredSignatures(found);
  const spacing = kmsgSpacing(found);
  const firstKmsg = found.find((f) => f.type === 'dmesg')?.offset;
  const cand = (k: SizeParam) => (known[k] ? [known[k]!.value] : k === 'kmsg_size' ? kmsgCandidates(spacing) : FRONTEND_CANDIDATES);
  const sigs = indexSignatures(
    scoring,
    cand('kmsg_size').map((kib) => normaliseSize('kmsg_size', kib, [])),
  );
  // Up to ~250 000 candidates: keep only the best TOP ones, in the order a stable sort by
  // descending score would give them (ties in enumeration order, `seq`), instead of sorting them
  // all. Zone sizes are taken by their best possible score (whatever the CPU count), highest
  // first, and the search stops at sizes that cannot beat the TOP-th candidate found so far.
  const TOP = 50;
  const candidates: Candidate[] = [];
  let fits = 0;
  // Each size in bytes once, not once per candidate.
  const bytes = (k: SizeParam) => new Map(cand(k).map((kib) => [kib, normaliseSize(k, kib, [])]));
  const [pmsgBytes, consoleBytes, ftraceBytes, kmsgBytes] = (['pmsg_size', 'console_size', 'ftrace_size', 'kmsg_size'] as const).map(bytes);
  const sizes: { kib: ZoneSizesKiB; s: ZoneSizesBytes; bound: number; seq: number }[] = [];
  for (const [pm, pmsg] of pmsgBytes)
    for (const [co, console] of consoleBytes)
      for (const [ft, ftrace] of ftraceBytes)
        for (const [km, kmsg] of kmsgBytes) {
          const s = { kmsg, pmsg, console, ftrace };
          const kib = { kmsg_size: km, pmsg_size: pm, console_size: co, ftrace_size: ft };
          sizes.push({ kib, s, bound: scoreBound(kib, s, src.size, sigs, spacing), seq: sizes.length });
        }
  sizes.sort((a, b) => b.bound - a.bound || a.seq - b.seq);
  for (const { kib, s, bound, seq } of sizes) {
    // (a margin for rounding: the bound adds the same terms in another order)
    if (candidates.length === TOP && bound + 1e-6 < candidates[TOP - 1].score) break;
    const cpuList = kib.ftrace_size > 0 ? (cpusKnown ? [cpusKnown.value] : cpuCandidates(s, firstKmsg)) : [cpusKnown?.value ?? 1];
    for (let j = 0; j < cpuList.length; j++) {
      const cpus = cpuList[j];
      const score = scoreCandidate(kib, s, cpus, src.size, sigs, spacing);
      if (score === null) continue;
      fits++;
      const c: Candidate = { kib, cpus, score, seq: seq * 65536 + j };
      if (candidates.length === TOP && !before(c, candidates[TOP - 1])) continue;
      let at = candidates.length;
      while (at > 0 && before(c, candidates[at - 1])) at--;
      candidates.splice(at, 0, c);
      if (candidates.length > TOP) candidates.pop();
    }
  }
  if (fits === 0) throw new NoPstoreError('no zone layout fits this region with the given parameters');
  const best = candidates[0];
  // The count was scored on a short list; read the exact one from the zones (1..NR_CPUS).
  let cpuDetection: CpuCountDetection | undefined;
  if (best.kib.ftrace_size > 0 && !cpusKnown) {
    cpuDetection = detectCpuCount(found, normaliseSizes(best.kib, []), src.size);
    best.cpus = cpuDetection.cpus;
  }
  const sources = {} as Record<SizeParam, ParamSource>;
  for (const k of SIZE_PARAMS) sources[k] = known[k]?.source ?? 'detected';
  const cpuSource: ParamSource = cpusKnown ? cpusKnown.source : best.kib.ftrace_size > 0 ? 'detected' : 'default';
  // Alternatives that score within the tie-break margin but place kmsg zones differently.
  const bestNaming = recordNaming(best, src.size, found);
  const alternatives = candidates
    .slice(1, 50)
    .filter((c) => best.score - c.score < 100 && c.score > 0 && !sameNaming(recordNaming(c, src.size, found), bestNaming))
    .slice(0, 3)
    .map(describe);
  return finish(best.kib, best.cpus, sources, cpuSource, {
    signaturesFound: found.length,
    alternatives: alternatives.length ? alternatives : undefined,
    cpuDetection,
  });
}

/**
 * The kernel's layout for the region; when the region is too small to hold the zones (the
 * kernel would refuse it — or the image is truncated), the zones are laid out anyway as far
 * as the image's bytes go, so whatever the card kept can still be decoded.
 */
export function fitLayout(src: RegionSource, sizes: ZoneSizesBytes, cpus: number, warnings: string[], opts: LayoutOptions = {}): Layout {
  const layout = computeLayout(src.size, sizes, cpus, warnings, opts);
  if (!layout.errors.some((e) => /no room|too small|>= 4096/.test(e))) return layout;
  const fixed = sizes.pmsg + sizes.console + sizes.ftrace;
  const kmsgZones = sizes.kmsg ? Math.max(1, Math.ceil((src.available - fixed) / sizes.kmsg)) : 0;
  const needed = Math.max(4096, fixed + kmsgZones * sizes.kmsg);
  if (needed <= src.size) return layout;
  const virtual = computeLayout(needed, sizes, cpus, [], opts);
  if (virtual.errors.length) return layout;
  warnings.push(
    `the region (${src.size} bytes) is too small for this geometry, which needs at least ${needed} bytes: the kernel would refuse it; ` +
      'zones are decoded as far as the image goes (a truncated image?)',
  );
  return { ...virtual, regionSize: src.size, warnings: [...layout.warnings, ...warnings.filter((w) => !layout.warnings.includes(w))], errors: layout.errors };
}

const ZONE_TYPE_CODE: Record<ZoneType, number> = { dmesg: 1, pmsg: 2, console: 3, ftrace: 4 };

/**
 * Which zone (type and index) each found signature lands in under a candidate geometry, in
 * the order of `found`: type code × 2^24 + zone index, or -1 where no zone starts.
 */
function recordNaming(c: Candidate, regionSize: number, found: FoundSignature[]): Int32Array {
  const layout = computeLayout(regionSize, normaliseSizes(c.kib, []), c.cpus, []);
  const at = new Map<number, number>();
  for (const z of layout.zones) at.set(z.offset, ZONE_TYPE_CODE[z.type] * 2 ** 24 + z.index);
  const out = new Int32Array(found.length);
  for (let i = 0; i < found.length; i++) out[i] = at.get(found[i].offset) ?? -1;
  return out;
}

function sameNaming(a: Int32Array, b: Int32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return a.length === b.length;
}

/**
 * CPU counts to score a size candidate with: the common ones, plus the smallest counts that
 * would start the kmsg zones exactly where the first kmsg signature is.
 */
const shiftCounts = new Map<string, number[]>();
function cpuCandidates(s: ZoneSizesBytes, firstKmsg: number | undefined): number[] {
  if (firstKmsg === undefined) return CPU_CANDIDATES;
  if (!s.kmsg || !s.ftrace) return CPU_CANDIDATES;
  const shift = (((s.pmsg + s.console + s.ftrace - firstKmsg) % s.kmsg) + s.kmsg) % s.kmsg;
  if (shift === 0) return CPU_CANDIDATES;
  const key = `${s.ftrace}/${shift}`;
  let extra = shiftCounts.get(key);
  if (!extra) shiftCounts.set(key, (extra = cpuCountsWithShift(s.ftrace, shift).filter((n) => !CPU_CANDIDATES.includes(n))));
  return extra.length ? [...CPU_CANDIDATES, ...extra] : CPU_CANDIDATES;
}

function kibOf(k: Record<SizeParam, Sourced<number>>): ZoneSizesKiB {
  return { kmsg_size: k.kmsg_size.value, pmsg_size: k.pmsg_size.value, console_size: k.console_size.value, ftrace_size: k.ftrace_size.value };
}

function sourcesOf(k: Record<SizeParam, Sourced<number>>): Record<SizeParam, ParamSource> {
  return { kmsg_size: k.kmsg_size.source, pmsg_size: k.pmsg_size.source, console_size: k.console_size.source, ftrace_size: k.ftrace_size.source };
}

/** Greatest common divisor of the distances between kmsg signatures (0 with fewer than two). */
function kmsgSpacing(found: FoundSignature[]): number {
  const offs = found.filter((f) => f.type === 'dmesg').map((f) => f.offset);
  let g = 0;
  for (let i = 1; i < offs.length; i++) g = gcd(g, offs[i] - offs[i - 1]);
  return g;
}

/** kmsg zone sizes (KiB) compatible with the spacing of the kmsg signatures found. */
function kmsgCandidates(spacing: number): number[] {
  const list = spacing ? KMSG_CANDIDATES.filter((k) => spacing % (k * 1024) === 0) : KMSG_CANDIDATES;
  return list.length ? list : KMSG_CANDIDATES;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Fills sizes nobody gave with Kconfig defaults — used by `layout`/`format`, which cannot detect. */
export function withKconfigDefaults(params: PstoreParams, frontendsBuiltIn: boolean): PstoreParams {
  const out: PstoreParams = { ...params };
  out.kmsg_size ??= { value: KCONFIG_DEFAULTS.kmsg_size, source: 'kconfig-default' };
  for (const k of ['pmsg_size', 'console_size', 'ftrace_size'] as const) {
    out[k] ??= { value: frontendsBuiltIn ? KCONFIG_DEFAULTS.frontendSize : -1, source: 'kconfig-default' };
  }
  return out;
}
