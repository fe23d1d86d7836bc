/**
 * From a symbol file to the symbols of the kernel's table: parse, check, detect the format and
 * CONFIG_KALLSYMS_ALL, apply scripts/kallsyms' rules to a System.map, count.
 */
import { BadInputError } from '../errors.js';
import { compareKallsymsOrder, byAddressThenPos, isAbsolute, KALLSYMS_IGNORED_NAMES, systemMapToKallsyms } from './kallsyms-rules.js';
import type { RawSym } from './parse.js';
import { decodeInput, pairToBig, parseChunks } from './parse.js';
import type { LoadSymbolOptions, SymbolFileFormat, SymbolTableStats } from './table.js';

const PAGE_DEFAULT = 4096;

/** The symbols of one file, before any slide. */
export interface Prepared {
  core: RawSym[];
  moduleSyms: RawSym[];
  stats: SymbolTableStats;
  pageSize: number;
}

export function prepare(input: Uint8Array | Iterable<Uint8Array>, opts: LoadSymbolOptions): Prepared {
  const { syms, lines, malformed, maxDigits } = parseChunks(input instanceof Uint8Array ? decodeInput(input) : input);
  if (syms.length === 0) throw new BadInputError('symbol file: no symbol lines found');
  if (syms.every((s) => s.hi === 0 && s.lo === 0)) {
    throw new BadInputError('symbol file: every address is 0 (kallsyms read without permission to see addresses)');
  }
  const bits: 32 | 64 = opts.bits ?? (maxDigits > 8 ? 64 : 32);
  if (bits === 32 && syms.some((s) => s.hi !== 0)) {
    throw new BadInputError('symbol file: 64-bit addresses in a table declared 32-bit');
  }
  const coreIn: RawSym[] = [];
  const moduleSyms: RawSym[] = [];
  for (const s of syms) (s.module === null ? coreIn : moduleSyms).push(s);

  let format: SymbolFileFormat;
  if (opts.format && opts.format !== 'auto') format = opts.format;
  else format = moduleSyms.length === 0 && coreIn.some((s) => KALLSYMS_IGNORED_NAMES.has(s.name)) ? 'system.map' : 'kallsyms';

  let kallsymsAll: boolean;
  if (opts.kallsymsAll !== undefined) kallsymsAll = opts.kallsymsAll;
  else if (format === 'system.map') kallsymsAll = true;
  else kallsymsAll = coreIn.some((s) => 'dDbBrRgGsSvV'.includes(s.type));

  let core = coreIn;
  if (format === 'system.map') core = systemMapToKallsyms(coreIn, kallsymsAll);

  const pageSize = opts.pageSize ?? PAGE_DEFAULT;
  if (!Number.isInteger(pageSize) || pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw new BadInputError(`symbol table: page size ${pageSize} is not a power of two`);
  }
  const stats: SymbolTableStats = {
    format,
    bits,
    kallsymsAll,
    lines,
    malformed,
    dropped: coreIn.length - core.length,
    coreSymbols: core.length,
    moduleSymbols: moduleSyms.length,
    modules: moduleNames(moduleSyms),
  };
  return { core, moduleSyms, stats, pageSize };
}

/** Module names in first-seen order. */
function moduleNames(moduleSyms: RawSym[]): string[] {
  const modules: string[] = [];
  const seen = new Set<string>();
  for (const s of moduleSyms) {
    const m = s.module as string;
    if (!seen.has(m)) {
      seen.add(m);
      modules.push(m);
    }
  }
  return modules;
}

/**
 * The core-kernel symbols with `slide` added to every non-absolute one (modulo 2^bits), in the
 * order of the kernel's table (a /proc/kallsyms core part already is).
 */
export function kernelOrderedCore(prepared: Prepared, slide: bigint, mask: bigint): RawSym[] {
  let core = prepared.core;
  if (slide !== 0n) {
    core = core.map((s) => {
      if (isAbsolute(s.type)) return s;
      const v = (pairToBig(s.hi, s.lo) + slide) & mask;
      return { ...s, hi: Number(v >> 32n), lo: Number(v & 0xffffffffn) };
    });
  } else {
    core = core.slice();
  }
  sortIfNeeded(core, prepared.stats.format === 'system.map' ? compareKallsymsOrder : byAddressThenPos);
  return core;
}

/** Sorts in place unless already in order (a /proc/kallsyms core part always is). */
function sortIfNeeded(list: RawSym[], cmp: (a: RawSym, b: RawSym) => number): void {
  for (let i = 1; i < list.length; i++) {
    if (cmp(list[i - 1], list[i]) > 0) {
      list.sort(cmp);
      return;
    }
  }
}
