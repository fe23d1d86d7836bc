/**
 * Reading a symbol file: `addr type name [module]` lines (/proc/kallsyms dumps and System.map
 * files), plain or gzip, straight from the bytes with the input limits of input-limits.ts
 * (SYMBOLS_MAX_BYTES, SYMBOLS_MAX_LINES, SYMBOLS_MAX_LINE), so a hostile file is refused before it
 * costs memory and the content never exists as one string.
 */
import { formatLimit, gunzipBounded, InputLimitError, isGzip, SYMBOLS_MAX_BYTES, SYMBOLS_MAX_LINE, SYMBOLS_MAX_LINES } from '../input-limits.js';

/** One well-formed line of a symbol file. */
export interface RawSym {
  /** Address as two uint32 halves. */
  hi: number;
  lo: number;
  type: string;
  name: string;
  module: string | null;
  /** Position in the file. */
  pos: number;
}

export interface Parsed {
  syms: RawSym[];
  lines: number;
  malformed: number;
  maxDigits: number;
  /** The module name of the previous line, shared by consecutive lines of a module. */
  lastModule?: string | null;
}

export function pairToBig(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Address order of two symbols. */
export function cmpPair(a: RawSym, b: RawSym): number {
  return a.hi !== b.hi ? a.hi - b.hi : a.lo - b.lo;
}

/** Chunks of the (decompressed) file: gzip detected by magic and inflated with a hard cap. */
export function decodeInput(bytes: Uint8Array): Uint8Array[] {
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

/**
 * Reads `addr type name` and `addr type name [module]` lines (fields split by spaces or tabs)
 * straight from the bytes of `chunks` (latin1), a line at a time, so the file never exists as
 * one string and names do not keep the text alive. Lines longer than SYMBOLS_MAX_LINE are
 * malformed; more than SYMBOLS_MAX_LINES lines is an InputLimitError.
 */
export function parseChunks(chunks: Iterable<Uint8Array>, what = 'symbol file'): Parsed {
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

/** Refuses more than SYMBOLS_MAX_LINES lines before anything is parsed. */
export function checkLineCount(chunks: readonly Uint8Array[], what: string): void {
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
  let t0 = -1,
    t1 = -1,
    n0 = -1,
    n1 = -1,
    m0 = -1,
    m1 = -1;
  for (let field = 0; !bad; field++) {
    while (i < e && isBlank(b[i])) i++;
    if (i === e) break;
    const s = i;
    while (i < e && !isBlank(b[i])) i++;
    if (field === 0) ((t0 = s), (t1 = i));
    else if (field === 1) ((n0 = s), (n1 = i));
    else if (field === 2) ((m0 = s), (m1 = i));
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
    if (module === out.lastModule)
      module = out.lastModule; // one string per run of a module's lines
    else out.lastModule = module;
  }
  if (digits > out.maxDigits) out.maxDigits = digits;
  out.syms.push({ hi, lo, type: String.fromCharCode(b[t0]), name: latin1(b, n0, n1), module, pos: out.syms.length });
}
