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
 * bytes), so a lookup is one bigint subtraction and a binary search over a Float64Array.
 */
import { BadInputError } from '../errors.js';
import { formatLimit, gunzipBounded, InputLimitError, isGzip, readMaybeGzipChunks, SYMBOLS_MAX_BYTES, SYMBOLS_MAX_LINE, SYMBOLS_MAX_LINES } from '../input-limits.js';

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

const PAGE_DEFAULT = 4096;

// ---- kernel rules ------------------------------------------------------------------------------

const KALLSYMS_IGNORED_NAMES = new Set([
  'kallsyms_addresses',
  'kallsyms_offsets',
  'kallsyms_relative_base',
  'kallsyms_num_syms',
  'kallsyms_names',
  'kallsyms_markers',
  'kallsyms_token_table',
  'kallsyms_token_index',
  'kallsyms_seqs_of_names',
  '_SDA_BASE_',
  '_SDA2_BASE_',
]);
const KALLSYMS_IGNORED_PREFIXES = [
  '$',
  '.L',
  '__crc_',
  '__efistub_',
  '__kvm_nvhe_$',
  '__kvm_nvhe_.L',
  '__AArch64ADRPThunk_',
  '__ARMV5PILongThunk_',
  '__ARMV7PILongThunk_',
  '__ThumbV7PILongThunk_',
  '__LA25Thunk_',
  '__microLA25Thunk_',
  '__kcfi_typeid_',
];
const KALLSYMS_IGNORED_SUFFIXES = ['_from_arm', '_from_thumb', '_veneer'];
const KALLSYMS_IGNORED_MATCHES = ['.long_branch.', '.plt_branch.'];
const KEPT_ABSOLUTE = new Set(['__kernel_syscall_via_break', '__kernel_syscall_via_epc', '__kernel_sigtramp', '__gp']);

/** scripts/kallsyms.c `is_ignored_symbol()` (6.1; `$`/`.L`/`__crc_` from earlier and later versions). */
function kallsymsIgnores(name: string, type: string): boolean {
  if (KALLSYMS_IGNORED_NAMES.has(name)) return true;
  for (const p of KALLSYMS_IGNORED_PREFIXES) if (name.startsWith(p)) return true;
  for (const p of KALLSYMS_IGNORED_SUFFIXES) if (name.endsWith(p)) return true;
  for (const p of KALLSYMS_IGNORED_MATCHES) if (name.includes(p)) return true;
  if (type === 'U' || type === 'u' || type === 'N' || type === 'n') return true;
  if ((type === 'A' || type === 'a') && !KEPT_ABSOLUTE.has(name)) return true;
  return false;
}

/** scripts/kallsyms.c `may_be_linker_script_provide_symbol()`. */
function linkerProvided(name: string): boolean {
  if (name.length < 8 || !name.startsWith('__')) return false;
  return (
    name.startsWith('start_', 2) ||
    name.startsWith('stop_', 2) ||
    name.startsWith('end_', 2) ||
    name.endsWith('_start') ||
    name.endsWith('_end')
  );
}

function leadingUnderscores(name: string): number {
  let i = 0;
  while (i < name.length && name.charCodeAt(i) === 95) i++;
  return i;
}

/** 6.1 `is_arm_mapping_symbol()`, applied by `find_kallsyms_symbol()`. */
function isMappingSymbol(name: string): boolean {
  return name.length >= 2 && name[0] === '$' && 'axtd'.includes(name[1]) && (name.length === 2 || name[2] === '.');
}

const PSEUDO_UNRESOLVED = new Set(['__builtin__ftrace', '__builtin__kprobes']);

// ---- parsing -----------------------------------------------------------------------------------

interface RawSym {
  /** Address as two uint32 halves. */
  hi: number;
  lo: number;
  type: string;
  name: string;
  module: string | null;
  /** Position in the file. */
  pos: number;
}

/** Chunks of the (decompressed) file: gzip detected by magic and inflated with a hard cap. */
function decodeInput(bytes: Uint8Array): Uint8Array[] {
  if (isGzip(bytes)) return [gunzipBounded(bytes, SYMBOLS_MAX_BYTES, 'symbol file')];
  if (bytes.length > SYMBOLS_MAX_BYTES) {
    throw new InputLimitError(`symbol file: ${bytes.length} bytes is larger than the ${formatLimit(SYMBOLS_MAX_BYTES)} limit for this input`);
  }
  return [bytes];
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

interface Parsed {
  syms: RawSym[];
  lines: number;
  malformed: number;
  maxDigits: number;
  /** The module name of the previous line, shared by consecutive lines of a module. */
  lastModule?: string | null;
}

/**
 * Reads `addr type name` and `addr type name [module]` lines (fields split by spaces or tabs)
 * straight from the bytes of `chunks` (latin1), a line at a time, so the file never exists as
 * one string and names do not keep the text alive. Lines longer than SYMBOLS_MAX_LINE are
 * malformed; more than SYMBOLS_MAX_LINES lines is an InputLimitError.
 */
function parseChunks(chunks: Iterable<Uint8Array>, what = 'symbol file'): Parsed {
  // Count first: a file of millions of minimal lines is refused before any table entry exists.
  if (Array.isArray(chunks)) checkLineCount(chunks, what);
  const out: Parsed = { syms: [], lines: 0, malformed: 0, maxDigits: 0, lastModule: null };
  // A line split across chunks is copied here (at most SYMBOLS_MAX_LINE bytes are kept).
  const carry = new Uint8Array(SYMBOLS_MAX_LINE);
  let carryLen = 0;
  let overlong = false;
  let pending = false; // bytes of an unfinished line were seen
  const endLine = (buf: Uint8Array, s: number, e: number) => {
    if (++out.lines > SYMBOLS_MAX_LINES) throw tooManyLines(what);
    if (overlong) out.malformed++;
    else parseLine(buf, s, e, out);
  };
  for (const chunk of chunks) {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      let e = chunk.indexOf(10, p);
      const complete = e >= 0;
      if (!complete) e = n;
      if (pending || !complete) {
        // join with the carried part
        const take = e - p;
        if (!overlong) {
          if (carryLen + take > SYMBOLS_MAX_LINE) overlong = true;
          else {
            carry.set(chunk.subarray(p, e), carryLen);
            carryLen += take;
          }
        }
        pending = true;
        if (complete) {
          endLine(carry, 0, overlong ? 0 : carryLen);
          carryLen = 0;
          overlong = false;
          pending = false;
        }
      } else if (e - p > SYMBOLS_MAX_LINE) {
        overlong = true;
        endLine(chunk, p, e);
        overlong = false;
      } else endLine(chunk, p, e);
      p = e + 1;
    }
  }
  if (pending) endLine(carry, 0, overlong ? 0 : carryLen);
  return out;
}

function checkLineCount(chunks: readonly Uint8Array[], what: string): void {
  let n = 0;
  for (const c of chunks) {
    for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) n++;
    if (n > SYMBOLS_MAX_LINES) throw tooManyLines(what);
  }
}

function tooManyLines(what: string): InputLimitError {
  return new InputLimitError(`${what}: more than ${SYMBOLS_MAX_LINES} lines, the limit for a symbol table (a real one has well under a million)`);
}

function latin1(b: Uint8Array, s: number, e: number): string {
  return Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1');
}

function parseLine(b: Uint8Array, i: number, e: number, out: Parsed): void {
  while (i < e && isBlank(b[i])) i++;
  if (i === e) return; // blank line
  // address
  const a0 = i;
  let hi = 0;
  let lo = 0;
  let bad = false;
  while (i < e && !isBlank(b[i])) i++;
  const digits = i - a0;
  if (digits > 16) bad = true;
  else {
    for (let k = a0; k < i; k++) {
      const d = hexDigit(b[k]);
      if (d < 0) {
        bad = true;
        break;
      }
      if (i - k > 8) hi = hi * 16 + d;
      else lo = lo * 16 + d;
    }
  }
  // type, name, optional [module]; a fifth field is an error
  let t0 = -1, t1 = -1, n0 = -1, n1 = -1, m0 = -1, m1 = -1;
  for (let field = 0; !bad; field++) {
    while (i < e && isBlank(b[i])) i++;
    if (i === e) break;
    const s = i;
    while (i < e && !isBlank(b[i])) i++;
    if (field === 0) (t0 = s), (t1 = i);
    else if (field === 1) (n0 = s), (n1 = i);
    else if (field === 2) (m0 = s), (m1 = i);
    else bad = true;
  }
  if (bad || n0 < 0 || t1 - t0 !== 1) {
    out.malformed++;
    return;
  }
  let module: string | null = null;
  if (m0 >= 0) {
    if (m1 - m0 < 3 || b[m0] !== 91 /* [ */ || b[m1 - 1] !== 93 /* ] */) {
      out.malformed++;
      return;
    }
    module = latin1(b, m0 + 1, m1 - 1);
    if (module === out.lastModule) module = out.lastModule; // one string per run of a module's lines
    else out.lastModule = module;
  }
  if (digits > out.maxDigits) out.maxDigits = digits;
  out.syms.push({ hi, lo, type: String.fromCharCode(b[t0]), name: latin1(b, n0, n1), module, pos: out.syms.length });
}

// ---- the table ---------------------------------------------------------------------------------
//
// Lookups work on float64 offsets from one table-wide base address (the lowest non-absolute
// symbol), exact while the table spans less than 2^53 bytes; only the conversion of the looked-up
// address and of the result touches bigint.

const TWO32 = 0x1_0000_0000;
const RANGE_STARTS = new Set(['_stext', '__init_begin', '_sinittext']);
const MARKERS = new Set(['_stext', '_etext', '_end', '__init_begin', '__init_end', '_sinittext', '_einittext']);
const MAX_SPAN = 2 ** 53;

function pairToBig(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function cmpPair(a: RawSym, b: RawSym): number {
  return a.hi !== b.hi ? a.hi - b.hi : a.lo - b.lo;
}

function isAbsolute(type: string): boolean {
  return type === 'A' || type === 'a';
}

function isText(type: string): boolean {
  return type === 't' || type === 'T';
}

/** scripts/kallsyms.c `compare_symbols()`: the order of the kernel's table built from a System.map. */
function compareKallsymsOrder(a: RawSym, b: RawSym): number {
  const c = cmpPair(a, b);
  if (c) return c;
  const wa = a.type === 'w' || a.type === 'W' ? 1 : 0;
  const wb = b.type === 'w' || b.type === 'W' ? 1 : 0;
  if (wa !== wb) return wa - wb;
  const la = linkerProvided(a.name) ? 1 : 0;
  const lb = linkerProvided(b.name) ? 1 : 0;
  if (la !== lb) return la - lb;
  const ua = leadingUnderscores(a.name);
  const ub = leadingUnderscores(b.name);
  if (ua !== ub) return ua - ub;
  return a.pos - b.pos;
}

function byAddressThenPos(a: RawSym, b: RawSym): number {
  return cmpPair(a, b) || a.pos - b.pos;
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

interface Resolved {
  name: string;
  /** Symbol start, as an offset from the table base. */
  start: number;
  offset: number;
  /** May be negative: the kernel's unsigned wrap-around, see `SymbolTable.lookup()`. */
  size: number;
  module: string | undefined;
}

interface Prepared {
  core: RawSym[];
  moduleSyms: RawSym[];
  stats: SymbolTableStats;
  pageSize: number;
}

export class SymbolTable {
  readonly stats: Readonly<SymbolTableStats>;
  /** Slide applied to core-kernel addresses (modulo 2^bits). */
  readonly slide: bigint;
  readonly bits: 32 | 64;

  private readonly prepared: Prepared;
  private readonly mask: bigint;
  private readonly base: bigint;
  private readonly baseHi: number;
  private readonly baseLo: number;
  // Core kernel: one entry per distinct address, named after the alias the kernel picks.
  private readonly coreAt: Float64Array;
  private readonly coreNames: string[];
  /** `is_ksym_addr()` ranges, [start, end) pairs. */
  private readonly coreRanges: number[];
  /** `_einittext` handling of get_symbol_pos() for the last symbol. */
  private readonly initText: [number, number] | null;
  /** `_end` (KALLSYMS_ALL) or `_etext`: end of the last core symbol. */
  private readonly coreEnd: number | null;
  // Modules, sorted by address.
  private readonly modStart: Float64Array;
  private readonly modEnd: Float64Array;
  private readonly modTextEnd: Float64Array;
  private readonly modFirst: Int32Array;
  private readonly modLast: Int32Array;
  private readonly modNames: (string | undefined)[]; // undefined: BPF (no module name printed)
  private readonly modAt: Float64Array;
  private readonly modSymNames: string[];
  private byName: Map<string, bigint | null> | null = null;

  private constructor(prepared: Prepared, slide: bigint) {
    this.prepared = prepared;
    const { stats, pageSize } = prepared;
    this.stats = Object.freeze({ ...stats, modules: [...stats.modules] });
    this.bits = stats.bits;
    this.mask = (1n << BigInt(stats.bits)) - 1n;
    this.slide = slide & this.mask;

    // Core kernel: slide the non-absolute symbols, order them the way the kernel's table is.
    let core = prepared.core;
    if (this.slide !== 0n) {
      const sl = this.slide;
      const mask = this.mask;
      core = core.map((s) => {
        if (isAbsolute(s.type)) return s;
        const v = (pairToBig(s.hi, s.lo) + sl) & mask;
        return { ...s, hi: Number(v >> 32n), lo: Number(v & 0xffffffffn) };
      });
    } else {
      core = core.slice();
    }
    sortIfNeeded(core, stats.format === 'system.map' ? compareKallsymsOrder : byAddressThenPos);

    // Modules the kernel can resolve, each in its symbol-table order for ties.
    const byMod = new Map<string, RawSym[]>();
    for (const s of prepared.moduleSyms) {
      const m = s.module as string;
      if (PSEUDO_UNRESOLVED.has(m) || s.name === '' || isMappingSymbol(s.name)) continue;
      // STT_FILE entries (`a`, value 0) and symbols of sections that are not loaded (`?`, e.g.
      // .modinfo) never win a lookup inside the module and would stretch its extent.
      if (isAbsolute(s.type) || s.type === '?') continue;
      let list = byMod.get(m);
      if (!list) byMod.set(m, (list = []));
      list.push(s);
    }

    // Table base: the lowest address a lookup can land on: the start of the core ranges when the
    // section markers are there (per-CPU symbols of a System.map sit near 0, far below), else the
    // lowest non-absolute core symbol; and the lowest module symbol.
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
    if (bh === Infinity) {
      bh = 0;
      bl = 0;
    }
    this.baseHi = bh;
    this.baseLo = bl;
    this.base = pairToBig(bh, bl);
    const off = (hi: number, lo: number) => (hi - bh) * TWO32 + (lo - bl);

    // Core groups. Entries below the base (absolute per-CPU symbols) are never reached by a
    // lookup (every accepted range starts at a symbol at or above the base) and are left out.
    const at: number[] = [];
    const names: string[] = [];
    const marker = new Map<string, number>();
    for (const s of core) {
      const o = off(s.hi, s.lo);
      if (o < 0 || o >= MAX_SPAN) continue;
      if (MARKERS.has(s.name) && !marker.has(s.name)) marker.set(s.name, o);
      const k = at.length - 1;
      if (k >= 0 && at[k] === o) continue; // alias: the first one is the kernel's pick
      at.push(o);
      names.push(s.name);
    }
    this.coreAt = Float64Array.from(at);
    this.coreNames = names;
    const range = (a: string, b: string): [number, number] | null => {
      const s = marker.get(a);
      const e = marker.get(b);
      return s !== undefined && e !== undefined ? [s, e] : null;
    };
    const ranges: number[] = [];
    const inittext = range('_sinittext', '_einittext');
    if (stats.kallsymsAll) {
      for (const r of [range('_stext', '_end'), range('__init_begin', '__init_end')]) if (r) ranges.push(...r);
    } else {
      for (const r of [range('_stext', '_etext'), inittext]) if (r) ranges.push(...r);
    }
    this.initText = inittext;
    this.coreEnd = marker.get(stats.kallsymsAll ? '_end' : '_etext') ?? null;
    if (ranges.length === 0 && at.length > 0) {
      // No section markers (a trimmed or hand-made table): from the lowest to the highest
      // symbol, the highest one included.
      ranges.push(at[0], at[at.length - 1] + 1);
    }
    this.coreRanges = ranges;

    // Modules: estimated extent and text end (see the file comment).
    const mods: { name: string; list: RawSym[]; min: number }[] = [];
    for (const [name, list] of byMod) {
      list.sort(byAddressThenPos);
      mods.push({ name, list, min: off(list[0].hi, list[0].lo) });
    }
    mods.sort((a, b) => a.min - b.min);
    const nm = mods.length;
    this.modStart = new Float64Array(nm);
    this.modEnd = new Float64Array(nm);
    this.modTextEnd = new Float64Array(nm);
    this.modFirst = new Int32Array(nm);
    this.modLast = new Int32Array(nm);
    this.modNames = [];
    const mat: number[] = [];
    const mnames: string[] = [];
    // Page arithmetic on absolute addresses: the base itself need not be page aligned.
    const pageOfBase = Number(this.base % BigInt(pageSize));
    const floorPage = (o: number) => o - ((((o + pageOfBase) % pageSize) + pageSize) % pageSize);
    const ceilPage = (o: number) => floorPage(o + pageSize - 1);
    mods.forEach(({ name, list }, k) => {
      this.modFirst[k] = mat.length;
      let lastText = -1;
      for (const s of list) {
        const o = off(s.hi, s.lo);
        if (o >= MAX_SPAN) throw new BadInputError(`symbol file: module ${name} lies too far from the kernel`);
        if (isText(s.type) && o > lastText) lastText = o;
        if (mat.length > this.modFirst[k] && mat[mat.length - 1] === o) continue;
        mat.push(o);
        mnames.push(s.name);
      }
      this.modLast[k] = mat.length;
      const lo = mat[this.modFirst[k]];
      const hi = mat[mat.length - 1];
      const bpf = name === 'bpf';
      this.modNames.push(bpf ? undefined : name);
      this.modStart[k] = bpf ? lo : floorPage(lo);
      this.modEnd[k] = ceilPage(hi + 1);
      let textEnd: number;
      if (bpf) textEnd = this.modEnd[k];
      else if (lastText < 0) textEnd = this.modStart[k];
      else {
        textEnd = ceilPage(lastText + 1);
        for (const s of list) {
          const o = off(s.hi, s.lo);
          if (!isText(s.type) && o > lastText && o < textEnd) textEnd = o;
        }
      }
      this.modTextEnd[k] = textEnd;
    });
    this.modAt = Float64Array.from(mat);
    this.modSymNames = mnames;
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

function prepare(input: Uint8Array | Iterable<Uint8Array>, opts: LoadSymbolOptions): Prepared {
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

  const modules: string[] = [];
  const seen = new Set<string>();
  for (const s of moduleSyms) {
    const m = s.module as string;
    if (!seen.has(m)) {
      seen.add(m);
      modules.push(m);
    }
  }
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
    modules,
  };
  return { core, moduleSyms, stats, pageSize };
}

/** scripts/kallsyms.c `read_symbol()` + `shrink_table()`: the symbols the kernel's table keeps. */
function systemMapToKallsyms(map: RawSym[], all: boolean): RawSym[] {
  const kept = map.filter((s) => !kallsymsIgnores(s.name, s.type));
  if (all) return kept;
  // symbol_valid() without --all-symbols: only [_stext, _etext] and [_sinittext, _einittext]
  // (inclusive), minus other symbols sitting exactly on _etext / _einittext.
  const find = (n: string) => kept.find((s) => s.name === n);
  const ranges: [RawSym, RawSym, string][] = [];
  const st = find('_stext');
  const et = find('_etext');
  const si = find('_sinittext');
  const ei = find('_einittext');
  if (st && et) ranges.push([st, et, '_etext']);
  if (si && ei) ranges.push([si, ei, '_einittext']);
  if (ranges.length === 0) return kept;
  return kept.filter((s) => {
    let ok = false;
    for (const [a, b, endName] of ranges) {
      if (cmpPair(s, a) >= 0 && cmpPair(s, b) <= 0) ok = true;
      if (cmpPair(s, b) === 0 && s.name !== endName) return false;
    }
    return ok;
  });
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

/**
 * KASLR slide of the boot that wrote `dmesgText`, or null when the text does not tell.
 *
 *  1. `Kernel Offset: 0x<off> from 0x<base>` (x86 and arm64 panic output, `dump_kernel_offset()` /
 *     `dump_kernel_offset` notifier) gives the slide directly; `Kernel Offset: disabled` gives 0.
 *     If several lines disagree, null.
 *  2. Failing that, and given a `table` with link-time (or otherwise known) core addresses:
 *     backtrace lines that print a raw address next to its symbol, e.g.
 *     `[<c0063b94>] (cpu_startup_entry+0x1b8/0x1e0)` (ARM) or `[<ffffffff8107c1a5>] foo+0x55/0x70`
 *     (older x86/arm64), each give `raw − (symbol + offset)`; the value is returned when at least
 *     two lines agree and they are a strict majority of all such lines, or when there is exactly
 *     one such line. Module symbols (`[mod]` after the symbol) are not used. The result is the
 *     slide relative to the addresses the table was loaded with, so pass it to `withSlide()` on
 *     a table loaded without slide.
 *
 * x86 oopses print `RIP: 0010:symbol+0x…/0x…` without the raw address, so that line alone does
 * not give a slide.
 */
export function inferKaslrSlide(dmesgText: string, table?: SymbolTable | null): bigint | null {
  const offsets = new Set<bigint>();
  let disabled = false;
  for (const m of dmesgText.matchAll(/Kernel Offset: (?:0x([0-9a-fA-F]+) from 0x[0-9a-fA-F]+|(disabled))/g)) {
    if (m[2]) disabled = true;
    else offsets.add(BigInt('0x' + m[1]));
  }
  if (disabled) offsets.add(0n);
  if (offsets.size === 1) return [...offsets][0];
  if (offsets.size > 1) return null;
  if (!table) return null;

  const mask = (1n << BigInt(table.bits)) - 1n;
  const votes = new Map<bigint, number>();
  let total = 0;
  const re = /\[<([0-9a-fA-F]{8,16})>\][ \t]*\(?([A-Za-z_.$][\w.$]*)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)\)?/g;
  for (const m of dmesgText.matchAll(re)) {
    const after = (m.index ?? 0) + m[0].length;
    if (/^[ \t]*\[/.test(dmesgText.slice(after, after + 8))) continue; // `[module]`
    const at = table.coreAddressOf(m[2]);
    if (at === null) continue;
    const raw = BigInt('0x' + m[1]);
    const linked = (at - table.slide + BigInt('0x' + m[3])) & mask;
    const slide = (raw - linked) & mask;
    total++;
    votes.set(slide, (votes.get(slide) ?? 0) + 1);
  }
  if (total === 0) return null;
  let best: bigint | null = null;
  let bestVotes = 0;
  for (const [s, v] of votes) {
    if (v > bestVotes) {
      best = s;
      bestVotes = v;
    }
  }
  if (total === 1) return best;
  return bestVotes >= 2 && bestVotes * 2 > total ? best : null;
}
