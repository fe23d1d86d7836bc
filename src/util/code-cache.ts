/**
 * Compiling a script with a V8 code cache (`vm.Script` `cachedData`): the compiled bytecode is
 * read from a file instead of being produced again, and the functions that an earlier run
 * compiled are not compiled again either.
 *
 * V8 checks a cache only for its own version, flags and the source's length, and trusts the
 * rest: a cache made for another source of the same length runs that other source's code, and
 * a cache with damaged bytes crashes the process (SIGSEGV in Node 20). So the file carries a
 * header that this module checks before V8 sees the cache:
 *
 *   bytes 0-7    "crashv8\x02" (format 2)
 *   bytes 8-15   checksum() of the source the cache was made for
 *   bytes 16-23  checksum() of the V8 data that follows
 *   bytes 24-    the V8 data (`script.createCachedData()`)
 *
 * A missing, stale (other source), damaged or rejected (another Node/V8) cache is never an error:
 * the script is compiled from its source as it would be without a cache.
 */
import { createRequire } from 'node:module';
import { Script } from 'node:vm';

// node:fs through require(): an ES import of it builds its ES module facade, whose getters load
// the fs streams too (~7 ms of a start-up this module exists to shorten).
const require = createRequire(import.meta.url);
const { readFileSync, renameSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
const { isAscii } = require('node:buffer') as typeof import('node:buffer');

/** What became of the cache: used, or why the script was compiled without it. */
export type CodeCacheStatus = 'used' | 'missing' | 'stale' | 'damaged' | 'rejected';

export interface CachedScript {
  script: Script;
  cache: CodeCacheStatus;
  /** The checksum of the source, for writeCodeCache. */
  sourceSum: Buffer;
}

const MAGIC = Buffer.from('crashv8\x02', 'latin1');
const HEADER = 24;

/**
 * CRC-32 (zlib's, native) and the length (mod 2^32), 8 bytes. Not cryptographic: it tells a
 * damaged or foreign file from the one that was written, at ~0.3 ms a MiB, where a hash in
 * JavaScript, run once and so not yet optimised, takes ~4 ms and node:crypto's first hash several.
 */
export function checksum(bytes: Uint8Array): Buffer {
  const { crc32 } = require('node:zlib') as typeof import('node:zlib');
  const out = Buffer.alloc(8);
  out.writeUInt32LE(crc32(bytes), 0);
  out.writeUInt32LE(bytes.length >>> 0, 4);
  return out;
}

/** The V8 data of a cache file made for `source`, or why there is none. */
function readCache(cacheFile: string | undefined, sourceSum: Buffer): Buffer | Exclude<CodeCacheStatus, 'used' | 'rejected'> {
  if (cacheFile === undefined) return 'missing';
  let file: Buffer;
  try {
    file = readFileSync(cacheFile);
  } catch {
    return 'missing';
  }
  if (file.length <= HEADER || !file.subarray(0, 8).equals(MAGIC)) return 'damaged';
  if (!file.subarray(8, 16).equals(sourceSum)) return 'stale';
  const data = file.subarray(HEADER);
  return file.subarray(16, 24).equals(checksum(data)) ? data : 'damaged';
}

/**
 * Compiles the script in `file` (UTF-8) with the cache in `cacheFile` when that was made for
 * exactly this source and V8 accepts it, without it otherwise (and without one: undefined).
 */
export function compileWithCodeCache(file: string, cacheFile: string | undefined): CachedScript {
  const bytes = readFileSync(file);
  const sourceSum = checksum(bytes);
  // The same string; latin1 decodes ASCII (the build's bundle is) several times faster.
  const source = bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
  const data = readCache(cacheFile, sourceSum);
  if (typeof data === 'string') return { script: new Script(source, { filename: file }), cache: data, sourceSum };
  const script = new Script(source, { filename: file, cachedData: data });
  return { script, cache: script.cachedDataRejected ? 'rejected' : 'used', sourceSum };
}

/**
 * Writes the cache of a compiled script to `cacheFile`, replacing the file whole (a reader never
 * sees half of it). Made after the script ran, it holds every function that run compiled, not
 * only the top level.
 */
export function writeCodeCache(compiled: CachedScript, cacheFile: string): void {
  const data = compiled.script.createCachedData();
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(tmp, Buffer.concat([MAGIC, compiled.sourceSum, checksum(data), data]));
  renameSync(tmp, cacheFile);
}
