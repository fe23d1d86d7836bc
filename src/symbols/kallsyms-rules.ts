/**
 * The rules of the kernel's kallsyms table: which symbols scripts/kallsyms puts in it (from a
 * System.map), in which order it keeps aliases, and which symbols a module lookup skips
 * (kernel/module/kallsyms.c). Sources: scripts/kallsyms.c and kernel/kallsyms.c of 6.1 and
 * neighbours.
 */
import type { RawSym } from './parse.js';
import { cmpPair } from './parse.js';

export const KALLSYMS_IGNORED_NAMES = new Set([
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

/** ftrace trampolines and kprobe insn pages: listed by /proc/kallsyms, never resolved. */
export const PSEUDO_UNRESOLVED = new Set(['__builtin__ftrace', '__builtin__kprobes']);

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
  return name.startsWith('start_', 2) || name.startsWith('stop_', 2) || name.startsWith('end_', 2) || name.endsWith('_start') || name.endsWith('_end');
}

function leadingUnderscores(name: string): number {
  let i = 0;
  while (i < name.length && name.charCodeAt(i) === 95) i++;
  return i;
}

/** 6.1 `is_arm_mapping_symbol()`, applied by `find_kallsyms_symbol()`. */
export function isMappingSymbol(name: string): boolean {
  return name.length >= 2 && name[0] === '$' && 'axtd'.includes(name[1]) && (name.length === 2 || name[2] === '.');
}

export function isAbsolute(type: string): boolean {
  return type === 'A' || type === 'a';
}

export function isText(type: string): boolean {
  return type === 't' || type === 'T';
}

/** scripts/kallsyms.c `compare_symbols()`: the order of the kernel's table built from a System.map. */
export function compareKallsymsOrder(a: RawSym, b: RawSym): number {
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

/** /proc/kallsyms order: by address, aliases in file order. */
export function byAddressThenPos(a: RawSym, b: RawSym): number {
  return cmpPair(a, b) || a.pos - b.pos;
}

/** scripts/kallsyms.c `read_symbol()` + `shrink_table()`: the symbols the kernel's table keeps. */
export function systemMapToKallsyms(map: RawSym[], all: boolean): RawSym[] {
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
 * Whether kernel/module/kallsyms.c `find_kallsyms_symbol()` can land on this module symbol:
 * unnamed and ARM mapping symbols are skipped; STT_FILE entries (`a`, value 0) and symbols of
 * sections that are not loaded (`?`, e.g. .modinfo) never win a lookup inside the module and
 * would stretch its extent. Pseudo-modules that are never resolved are left out whole.
 */
export function moduleSymbolResolvable(s: RawSym): boolean {
  if (PSEUDO_UNRESOLVED.has(s.module as string) || s.name === '' || isMappingSymbol(s.name)) return false;
  return !(isAbsolute(s.type) || s.type === '?');
}
