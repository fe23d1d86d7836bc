/**
 * Kernel symbol tables (/proc/kallsyms dumps and System.map files) and the kernel's `%ps` / `%pS`
 * rendering, so ftrace records (and other raw addresses) can be shown offline exactly as the
 * kernel prints them in /sys/fs/pstore.
 *
 * Lookup follows the kernel (6.1 and neighbours) step by step:
 *
 *  - `kallsyms_lookup()` first asks `is_ksym_addr()`: with CONFIG_KALLSYMS_ALL the core-kernel
 *    range is `[_stext, _end) ∪ [__init_begin, __init_end)`, without it
 *    `[_stext, _etext) ∪ [_sinittext, _einittext)`. Inside that range `get_symbol_pos()` binary
 *    searches the address-sorted kallsyms table for the last entry with address ≤ addr, steps
 *    back to the first entry of its alias group (same address) and takes as size the distance to
 *    the next higher address (or, for the last entry, to `_einittext` / `_end` / `_etext`).
 *    Nothing else is filtered: every entry of the table is a candidate, data symbols included.
 *  - Otherwise `module_address_lookup()`: if the address lies inside a loaded module,
 *    `find_kallsyms_symbol()` scans that module's symbol table: the best symbol is the one with
 *    the greatest address ≤ addr (the first one in symbol-table order among equals, since the
 *    comparison is strict), unnamed and ARM mapping symbols (`$a`, `$d`, `$t`, `$x`) are skipped,
 *    and the size runs to the lowest symbol address above addr but at most to the end of the
 *    module's text. An address below the module's first symbol is not resolved.
 *  - Otherwise BPF programs (`bpf_address_lookup()`, printed without a module name), then
 *    ftrace's map of freed module init code (not modelled: a dump lists those entries under the
 *    module's name, indistinguishable from live ones). ftrace trampolines (`[__builtin__ftrace]`)
 *    and kprobe insn pages (`[__builtin__kprobes]`) are listed by /proc/kallsyms but never
 *    resolved.
 *  - `__sprint_symbol()` prints `name`, then for `%pS` `+%#lx/%#lx` (the kernel's `%#lx` prints
 *    0 as `0x0`), then ` [module]`; an unresolved address is printed as `0x%lx`.
 *
 * What a dump cannot tell and is therefore estimated:
 *  - a module's text end (`core_layout.text_size`, page aligned with CONFIG_STRICT_MODULE_RWX):
 *    taken as the page end after the module's last text symbol, or the first non-text symbol of
 *    the module above it when that is lower. Only the size printed for the last text symbol of a
 *    module and for addresses in module data depend on it.
 *  - a module's extent (`__module_address()`): from the page start of its lowest symbol to the
 *    page end after its highest symbol; the module's symbol/string tables after that are unknown.
 *  - BPF program sizes: up to the next BPF symbol, or the end of the page for the last one.
 *
 * The public API takes and returns `bigint`. Internally symbols are sorted once and kept as float64
 * offsets from the table's lowest reachable address (exact: a table spans far less than 2^53
 * bytes), so a lookup is one bigint subtraction and a binary search over a Float64Array
 * (table-index.ts). Reading the file: parse.ts; scripts/kallsyms' rules: kallsyms-rules.ts.
 */
import { BadInputError } from '../errors.js';
import { InputLimitError, readMaybeGzipChunks, SYMBOLS_MAX_BYTES } from '../input-limits.js';
import { isAbsolute } from './kallsyms-rules.js';
import { checkLineCount, pairToBig } from './parse.js';
import type { Prepared } from './prepare.js';
import { kernelOrderedCore, prepare } from './prepare.js';
import type { CoreIndex, ModuleIndex } from './table-index.js';
import { coreIndex, MAX_SPAN, moduleIndex, resolvableModules, tableBase } from './table-index.js';

export type SymbolFileFormat = 'kallsyms' | 'system.map';

export interface LoadSymbolOptions {
  /**
   * `kallsyms`: a /proc/kallsyms dump (the kernel's own table, in table order, modules in their
   * symbol-table order). `system.map`: `nm -n` output of vmlinux; the symbols scripts/kallsyms
   * drops are dropped and aliases are ordered the way scripts/kallsyms orders them.
   * Default `auto`: System.map when it holds the `kallsyms_*` table symbols (which never appear
   * in /proc/kallsyms), otherwise kallsyms.
   */
  format?: 'auto' | SymbolFileFormat;
  /**
   * KASLR slide added to every core-kernel address (not to absolute/per-CPU symbols, not to
   * module symbols, whose load addresses are not slid but chosen per boot). A System.map holds
   * link-time addresses: pass the crashed boot's `Kernel Offset`. A /proc/kallsyms dump taken in
   * the crashed boot already holds live addresses: pass nothing. A dump from another boot of the
   * same kernel: pass (crashed offset − dump boot's offset); its module addresses then only match
   * if the modules happened to load at the same addresses.
   */
  slide?: bigint;
  /** Address width. Default: 64 when any address has more than 8 hex digits, else 32. */
  bits?: 32 | 64;
  /**
   * Whether the kernel had CONFIG_KALLSYMS_ALL (decides the core-kernel address range and, for a
   * System.map, which symbols kallsyms keeps). Default: true for a kallsyms dump that lists any
   * core data symbol, false for one that lists only text; true for a System.map.
   */
  kallsymsAll?: boolean;
  /** Page size used to estimate module layout. Default 4096. */
  pageSize?: number;
}

export interface SymbolLookup {
  name: string;
  /** Start address of the symbol (after any slide). */
  address: bigint;
  offset: bigint;
  size: bigint;
  /** Module name for module symbols; absent for the core kernel and BPF programs. */
  module?: string;
}

export interface SymbolTableStats {
  format: SymbolFileFormat;
  bits: 32 | 64;
  kallsymsAll: boolean;
  /** Lines read (including blank ones). */
  lines: number;
  /** Non-blank lines that are not `addr type name [module]`. */
  malformed: number;
  /** Well-formed System.map lines scripts/kallsyms would not put in the kernel's table. */
  dropped: number;
  /** Core-kernel symbols kept. */
  coreSymbols: number;
  /** Module symbols kept (all modules, BPF and ftrace/kprobe pseudo-modules included). */
  moduleSymbols: number;
  /** Module names in first-seen order (pseudo-modules `bpf`, `__builtin__*` included). */
  modules: string[];
}

interface Resolved {
  name: string;
  /** Symbol start, as an offset from the table base. */
  start: number;
  offset: number;
  /** May be negative: the kernel's unsigned wrap-around, see `SymbolTable.lookup()`. */
  size: number;
  module: string | undefined;
}

export class SymbolTable {
  readonly stats: Readonly<SymbolTableStats>;
  /** Slide applied to core-kernel addresses (modulo 2^bits). */
  readonly slide: bigint;
  readonly bits: 32 | 64;

  private readonly prepared: Prepared;
  private readonly mask: bigint;
  private readonly base: bigint;
  // Core kernel (table-index.ts CoreIndex), flat on the table for the lookup's hot path.
  private readonly coreAt: Float64Array;
  private readonly coreNames: string[];
  private readonly coreRanges: number[];
  private readonly initText: [number, number] | null;
  private readonly coreEnd: number | null;
  // Modules, sorted by address (table-index.ts ModuleIndex).
  private readonly modStart: Float64Array;
  private readonly modEnd: Float64Array;
  private readonly modTextEnd: Float64Array;
  private readonly modFirst: Int32Array;
  private readonly modLast: Int32Array;
  private readonly modNames: (string | undefined)[]; // undefined: BPF (no module name printed)
  private readonly modAt: Float64Array;
  private readonly modSymNames: string[];
  private byName: Map<string, bigint | null> | null = null;

  /** The lookup arrays for `slide`: steps in table-index.ts. */
  private constructor(prepared: Prepared, slide: bigint) {
    this.prepared = prepared;
    const { stats, pageSize } = prepared;
    this.stats = Object.freeze({ ...stats, modules: [...stats.modules] });
    this.bits = stats.bits;
    this.mask = (1n << BigInt(stats.bits)) - 1n;
    this.slide = slide & this.mask;
    const core = kernelOrderedCore(prepared, this.slide, this.mask);
    const byMod = resolvableModules(prepared.moduleSyms);
    const base = tableBase(core, byMod);
    this.base = pairToBig(base.hi, base.lo);
    const c: CoreIndex = coreIndex(core, base, stats.kallsymsAll);
    this.coreAt = c.at;
    this.coreNames = c.names;
    this.coreRanges = c.ranges;
    this.initText = c.initText;
    this.coreEnd = c.end;
    const m: ModuleIndex = moduleIndex(byMod, base, pageSize);
    this.modStart = m.start;
    this.modEnd = m.end;
    this.modTextEnd = m.textEnd;
    this.modFirst = m.first;
    this.modLast = m.last;
    this.modNames = m.names;
    this.modAt = m.at;
    this.modSymNames = m.symNames;
  }

  /** See `loadSymbolTable()`. */
  /** `input`: the file's bytes (plain or gzip), or the already decompressed content in chunks. */
  static load(input: Uint8Array | Iterable<Uint8Array>, opts: LoadSymbolOptions = {}): SymbolTable {
    return new SymbolTable(prepare(input, opts), opts.slide ?? 0n);
  }

  /** The same symbols with another core-kernel slide (replaces, does not add to, the current one). */
  withSlide(slide: bigint): SymbolTable {
    return new SymbolTable(this.prepared, slide);
  }

  /** Number of distinct core-kernel symbol addresses a lookup can land on. */
  get coreSize(): number {
    return this.coreAt.length;
  }

  /** Offset of `addr` from the table base, or NaN when it cannot be in the table. */
  private rel(addr: bigint): number {
    if (this.bits === 32 && addr > 0xffffffffn) return NaN;
    const d = Number(addr - this.base); // rounded when huge, but then far outside every range
    return d >= 0 && d < MAX_SPAN ? d : NaN;
  }

  private resolve(addr: bigint): Resolved | null {
    const d = this.rel(addr);
    if (d !== d) return null;
    const r = this.coreRanges;
    for (let k = 0; k < r.length; k += 2) {
      if (d >= r[k] && d < r[k + 1]) return this.resolveCore(d);
    }
    return this.resolveModule(d);
  }

  /** get_symbol_pos() */
  private resolveCore(d: number): Resolved | null {
    const at = this.coreAt;
    const i = lastAtOrBelow(at, 0, at.length, d);
    if (i < 0) return null;
    const start = at[i];
    let end: number;
    if (i + 1 < at.length) end = at[i + 1];
    else if (this.initText && d >= this.initText[0] && d < this.initText[1]) end = this.initText[1];
    else end = this.coreEnd ?? start;
    return { name: this.coreNames[i], start, offset: d - start, size: end - start, module: undefined };
  }

  /** __module_address() + find_kallsyms_symbol(), or bpf_address_lookup() */
  private resolveModule(d: number): Resolved | null {
    const k = lastAtOrBelow(this.modStart, 0, this.modStart.length, d);
    if (k < 0 || d >= this.modEnd[k]) return null;
    const at = this.modAt;
    const first = this.modFirst[k];
    const last = this.modLast[k];
    const i = lastAtOrBelow(at, first, last, d);
    if (i < first) return null;
    const start = at[i];
    let next = this.modTextEnd[k];
    if (i + 1 < last && at[i + 1] < next) next = at[i + 1];
    const module = this.modNames[k];
    if (module === undefined && d >= next) return null; // BPF: outside the program image
    return { name: this.modSymNames[i], start, offset: d - start, size: next - start, module };
  }

  private sizeBig(size: number): bigint {
    return size >= 0 ? BigInt(size) : BigInt.asUintN(this.bits, BigInt(size));
  }

  /**
   * The kernel's `kallsyms_lookup()` for `addr`: the symbol `%ps`/`%pS` print, or null where the
   * kernel prints `0x%lx`. `size` is computed modulo 2^bits like the kernel's unsigned long, so
   * for an address in module data, past the module's (estimated) text end, it is the same huge
   * wrapped value the kernel prints.
   */
  lookup(addr: bigint): SymbolLookup | null {
    const r = this.resolve(addr);
    if (!r) return null;
    const out: SymbolLookup = {
      name: r.name,
      address: this.base + BigInt(r.start),
      offset: BigInt(r.offset),
      size: this.sizeBig(r.size),
    };
    if (r.module !== undefined) out.module = r.module;
    return out;
  }

  /** `%ps`: `name` or `name [module]`, `0x%lx` when unresolved. */
  ps(addr: bigint): string {
    const r = this.resolve(addr);
    if (!r) return rawAddress(addr);
    return r.module === undefined ? r.name : `${r.name} [${r.module}]`;
  }

  /** `%pS`: `name+0xoff/0xsize` or `name+0xoff/0xsize [module]`, `0x%lx` when unresolved. */
  pS(addr: bigint): string {
    const r = this.resolve(addr);
    if (!r) return rawAddress(addr);
    const size = r.size >= 0 ? r.size.toString(16) : this.sizeBig(r.size).toString(16);
    const s = `${r.name}+0x${r.offset.toString(16)}/0x${size}`;
    return r.module === undefined ? s : `${s} [${r.module}]`;
  }

  /**
   * Address of a core-kernel symbol by name (after slide), or null when absent or ambiguous
   * (different addresses carry that name, as static functions of the same name do).
   */
  coreAddressOf(name: string): bigint | null {
    if (!this.byName) {
      const map = new Map<string, bigint | null>();
      for (const s of this.prepared.core) {
        if (isAbsolute(s.type)) continue;
        const v = (pairToBig(s.hi, s.lo) + this.slide) & this.mask;
        const prev = map.get(s.name);
        if (prev === undefined) map.set(s.name, v);
        else if (prev !== null && prev !== v) map.set(s.name, null);
      }
      this.byName = map;
    }
    return this.byName.get(name) ?? null;
  }
}

/** Index of the last element ≤ v in the sorted slice [from, to), or from − 1. */
function lastAtOrBelow(a: Float64Array, from: number, to: number, v: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

function rawAddress(addr: bigint): string {
  return '0x' + addr.toString(16);
}

/**
 * Parses a /proc/kallsyms dump or a System.map (plain or gzip-compressed, detected by magic).
 * Lines that are not `addr type name` / `addr type name [module]` are counted in
 * `stats.malformed` and otherwise ignored. Throws BadInputError when no symbol is left or when all
 * addresses are zero (a dump read without the privilege to see addresses).
 */
export function loadSymbolTable(bytes: Uint8Array, opts: LoadSymbolOptions = {}): SymbolTable {
  return SymbolTable.load(bytes, opts);
}

/**
 * Reads a symbol file (plain or gzip) from disk with bounded memory: the file is checked with
 * fstat() and inflated as a stream with a hard cap of SYMBOLS_MAX_BYTES (input-limits.ts), so a
 * decompression bomb or an oversize file is an InputLimitError (BadInputError, exit 6) that names
 * the file and the limit, and the content is parsed without ever holding it as one string.
 * @throws UsageError when the file cannot be read.
 */
export async function loadSymbolFile(path: string, opts: LoadSymbolOptions = {}): Promise<SymbolTable> {
  const chunks = await readMaybeGzipChunks(path, SYMBOLS_MAX_BYTES, '--symbols');
  try {
    checkLineCount(chunks, 'symbol file');
  } catch (e) {
    throw new InputLimitError(`--symbols ${path}: ${(e as Error).message.replace(/^symbol file: /, '')}`);
  }
  // Parsed chunks are dropped as the parser moves on.
  function* drain(): Generator<Uint8Array> {
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i];
      (chunks as (Buffer | null)[])[i] = null;
      yield c;
    }
  }
  try {
    return SymbolTable.load(drain(), opts);
  } catch (e) {
    if (e instanceof BadInputError && e.message.startsWith('symbol file')) {
      const err = new (e.constructor as typeof BadInputError)(`--symbols ${path}: ${e.message.replace(/^symbol file: /, '')}`);
      throw err;
    }
    throw e;
  }
}

/** The kernel's `%ps`: `name` or `name [module]`; `0x%lx` when unresolved or without a table. */
export function formatPs(table: SymbolTable | null, addr: bigint): string {
  return table ? table.ps(addr) : rawAddress(addr);
}

/** The kernel's `%pS`: `name+0xoff/0xsize` or `name+0xoff/0xsize [module]`; `0x%lx` when unresolved. */
export function formatPS(table: SymbolTable | null, addr: bigint): string {
  return table ? table.pS(addr) : rawAddress(addr);
}
