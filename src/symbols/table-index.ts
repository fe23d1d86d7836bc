/**
 * The lookup arrays of a SymbolTable, built once per slide: float64 offsets from one table-wide
 * base address (the lowest address a lookup can land on), exact while the table spans less than
 * 2^53 bytes; only the conversion of the looked-up address and of the result touches bigint.
 */
import { BadInputError } from '../errors.js';
import { isAbsolute, isText, moduleSymbolResolvable, byAddressThenPos } from './kallsyms-rules.js';
import type { RawSym } from './parse.js';

const TWO32 = 0x1_0000_0000;
const RANGE_STARTS = new Set(['_stext', '__init_begin', '_sinittext']);
const MARKERS = new Set(['_stext', '_etext', '_end', '__init_begin', '__init_end', '_sinittext', '_einittext']);
export const MAX_SPAN = 2 ** 53;

/** The table base as two uint32 halves. */
export interface Base {
  hi: number;
  lo: number;
}

function offsetFrom(base: Base, s: RawSym): number {
  return (s.hi - base.hi) * TWO32 + (s.lo - base.lo);
}

/** Symbols of the modules the kernel can resolve, per module, each in its symbol-table order. */
export function resolvableModules(moduleSyms: RawSym[]): Map<string, RawSym[]> {
  const byMod = new Map<string, RawSym[]>();
  for (const s of moduleSyms) {
    if (!moduleSymbolResolvable(s)) continue;
    const m = s.module as string;
    let list = byMod.get(m);
    if (!list) byMod.set(m, (list = []));
    list.push(s);
  }
  return byMod;
}

/**
 * Table base: the lowest address a lookup can land on: the start of the core ranges when the
 * section markers are there (per-CPU symbols of a System.map sit near 0, far below), else the
 * lowest non-absolute core symbol; and the lowest module symbol.
 */
export function tableBase(core: RawSym[], byMod: Map<string, RawSym[]>): Base {
  let bh = Infinity;
  let bl = Infinity;
  const consider = (s: RawSym) => {
    if (s.hi < bh || (s.hi === bh && s.lo < bl)) {
      bh = s.hi;
      bl = s.lo;
    }
  };
  const starts = core.filter((s) => RANGE_STARTS.has(s.name) && !isAbsolute(s.type));
  for (const s of starts.length > 0 ? starts : core) if (!isAbsolute(s.type)) consider(s);
  for (const list of byMod.values()) for (const s of list) consider(s);
  return bh === Infinity ? { hi: 0, lo: 0 } : { hi: bh, lo: bl };
}

/** What kernel/kallsyms.c `is_ksym_addr()` and `get_symbol_pos()` search. */
export interface CoreIndex {
  /** One entry per distinct address, named after the alias the kernel picks. */
  at: Float64Array;
  names: string[];
  /** `is_ksym_addr()` ranges, [start, end) pairs. */
  ranges: number[];
  /** `_einittext` handling of get_symbol_pos() for the last symbol. */
  initText: [number, number] | null;
  /** `_end` (KALLSYMS_ALL) or `_etext`: end of the last core symbol. */
  end: number | null;
}

/**
 * Core groups and ranges. Entries below the base (absolute per-CPU symbols) are never reached by
 * a lookup (every accepted range starts at a symbol at or above the base) and are left out.
 */
export function coreIndex(core: RawSym[], base: Base, kallsymsAll: boolean): CoreIndex {
  const at: number[] = [];
  const names: string[] = [];
  const marker = new Map<string, number>();
  for (const s of core) {
    const o = offsetFrom(base, s);
    if (o < 0 || o >= MAX_SPAN) continue;
    if (MARKERS.has(s.name) && !marker.has(s.name)) marker.set(s.name, o);
    const k = at.length - 1;
    if (k >= 0 && at[k] === o) continue; // alias: the first one is the kernel's pick
    at.push(o);
    names.push(s.name);
  }
  const range = (a: string, b: string): [number, number] | null => {
    const s = marker.get(a);
    const e = marker.get(b);
    return s !== undefined && e !== undefined ? [s, e] : null;
  };
  const ranges: number[] = [];
  const initText = range('_sinittext', '_einittext');
  if (kallsymsAll) {
    for (const r of [range('_stext', '_end'), range('__init_begin', '__init_end')]) if (r) ranges.push(...r);
  } else {
    for (const r of [range('_stext', '_etext'), initText]) if (r) ranges.push(...r);
  }
  if (ranges.length === 0 && at.length > 0) {
    // No section markers (a trimmed or hand-made table): from the lowest to the highest
    // symbol, the highest one included.
    ranges.push(at[0], at[at.length - 1] + 1);
  }
  return { at: Float64Array.from(at), names, ranges, initText, end: marker.get(kallsymsAll ? '_end' : '_etext') ?? null };
}

/** What `__module_address()` and `find_kallsyms_symbol()` search; modules sorted by address. */
export interface ModuleIndex {
  start: Float64Array;
  end: Float64Array;
  textEnd: Float64Array;
  /** Each module's symbols are at[first[k] .. last[k]). */
  first: Int32Array;
  last: Int32Array;
  /** undefined: BPF (no module name printed). */
  names: (string | undefined)[];
  at: Float64Array;
  symNames: string[];
}

/** Page arithmetic on absolute addresses: the base itself need not be page aligned. */
function pageRounding(base: Base, pageSize: number) {
  const pageOfBase = Number(((BigInt(base.hi) << 32n) | BigInt(base.lo)) % BigInt(pageSize));
  const floorPage = (o: number) => o - ((((o + pageOfBase) % pageSize) + pageSize) % pageSize);
  const ceilPage = (o: number) => floorPage(o + pageSize - 1);
  return { floorPage, ceilPage };
}

/** Modules: estimated extent and text end (see the comment of table.ts). */
export function moduleIndex(byMod: Map<string, RawSym[]>, base: Base, pageSize: number): ModuleIndex {
  const mods: { name: string; list: RawSym[]; min: number }[] = [];
  for (const [name, list] of byMod) {
    list.sort(byAddressThenPos);
    mods.push({ name, list, min: offsetFrom(base, list[0]) });
  }
  mods.sort((a, b) => a.min - b.min);
  const nm = mods.length;
  const ix = {
    start: new Float64Array(nm),
    end: new Float64Array(nm),
    textEnd: new Float64Array(nm),
    first: new Int32Array(nm),
    last: new Int32Array(nm),
    names: [] as (string | undefined)[],
  };
  const mat: number[] = [];
  const mnames: string[] = [];
  const { floorPage, ceilPage } = pageRounding(base, pageSize);
  mods.forEach(({ name, list }, k) => {
    ix.first[k] = mat.length;
    let lastText = -1;
    for (const s of list) {
      const o = offsetFrom(base, s);
      if (o >= MAX_SPAN) throw new BadInputError(`symbol file: module ${name} lies too far from the kernel`);
      if (isText(s.type) && o > lastText) lastText = o;
      if (mat.length > ix.first[k] && mat[mat.length - 1] === o) continue;
      mat.push(o);
      mnames.push(s.name);
    }
    ix.last[k] = mat.length;
    const lo = mat[ix.first[k]];
    const hi = mat[mat.length - 1];
    const bpf = name === 'bpf';
    ix.names.push(bpf ? undefined : name);
    ix.start[k] = bpf ? lo : floorPage(lo);
    ix.end[k] = ceilPage(hi + 1);
    if (bpf) ix.textEnd[k] = ix.end[k];
    else if (lastText < 0) ix.textEnd[k] = ix.start[k];
    else ix.textEnd[k] = moduleTextEnd(list, base, lastText, ceilPage(lastText + 1));
  });
  return { ...ix, at: Float64Array.from(mat), symNames: mnames };
}

/**
 * A module's text end: the page end after its last text symbol, or the first non-text symbol of
 * the module above that symbol when it is lower.
 */
function moduleTextEnd(list: RawSym[], base: Base, lastText: number, pageEnd: number): number {
  let textEnd = pageEnd;
  for (const s of list) {
    const o = offsetFrom(base, s);
    if (!isText(s.type) && o > lastText && o < textEnd) textEnd = o;
  }
  return textEnd;
}
