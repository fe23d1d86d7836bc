/**
 * Kernel symbol tables (/proc/kallsyms dumps and System.map files), the kernel's `%ps` / `%pS`
 * rendering and the KASLR slide of a crashed boot. Not pstore-specific; pstore's ftrace output
 * is its main user.
 */
export type { LoadSymbolOptions, SymbolFileFormat, SymbolLookup, SymbolTableStats } from './table.js';
export { SymbolTable, formatPS, formatPs, loadSymbolFile, loadSymbolTable } from './table.js';
export { inferKaslrSlide } from './kaslr.js';
