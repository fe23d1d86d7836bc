/**
 * Bounded reading of the small input files crashcart takes from the user (symbol tables, kernel
 * configs, board profiles, bmap files, kernel command lines). Every one of them is read whole, so
 * each has a size limit checked with fstat() before anything is read, and compressed ones are
 * inflated with a hard cap on the output: an oversize file or a decompression bomb becomes an
 * `InputLimitError` (a BadInputError, exit 6) naming the file and the limit instead of running
 * the process out of memory.
 *
 * The limits are far above anything real (each constant says why) and low enough that the
 * rejected input never costs more than the limit itself in memory.
 */
import { closeSync, fstatSync, openSync, readSync, createReadStream } from 'node:fs';
import { createGunzip, gunzipSync } from 'node:zlib';
import { BadInputError, UsageError } from './errors.js';

const MiB = 1024 * 1024;

/**
 * Symbol tables (System.map, /proc/kallsyms dumps), decompressed. A distro x86_64 kernel's
 * /proc/kallsyms with a desktop's worth of modules loaded is 7–30 MB (Debian 6.12: 163 521
 * lines, 7.2 MB; allmodconfig-sized tables reach ~30 MB); 128 MiB is four times the largest.
 */
export const SYMBOLS_MAX_BYTES = 128 * MiB;
/**
 * Symbol lines, counted before any is parsed. Real tables have ~45 bytes per line (Debian 6.12:
 * 163 521 lines, 44 bytes each), so a 30 MB table is ~700 000 lines; 2 million is three times
 * that. Without it a file of minimal lines ("0 t a") would turn 128 MiB into 20 million table
 * entries. Each accepted line costs ~200 bytes of heap, so a table at this cap needs ~400 MB;
 * a real 700 000-line one ~230 MB.
 */
export const SYMBOLS_MAX_LINES = 2_000_000;
/** Longest symbol line considered: address (16) + type + KSYM_NAME_LEN (512) + " [module]" (56). */
export const SYMBOLS_MAX_LINE = 4096;
/** Kernel .config / config.gz, decompressed. A real allyesconfig .config is ~350 KB. */
export const KCONFIG_MAX_BYTES = 16 * MiB;
/** Board profile JSON. The bundled ones are 1–3 KB; 1 MiB leaves room for any notes. */
export const PROFILE_MAX_BYTES = 1 * MiB;
/**
 * bmap XML. bmaptool writes ~110 bytes per mapped range with a SHA-256; 32 MiB is ~300 000
 * ranges, more than a heavily fragmented multi-GB file system image produces (a few thousand).
 */
export const BMAP_MAX_BYTES = 32 * MiB;
/**
 * Kernel command line. COMMAND_LINE_SIZE is at most 4096 bytes on Linux architectures (2048 on
 * x86 and arm64); s390 can boot with up to 1 MiB (`max_command_line_size`), which is the cap.
 */
export const CMDLINE_MAX_BYTES = 1 * MiB;
/**
 * A zip image's central directory, read whole before the image is streamed. Each entry takes
 * 46 bytes plus its name (and extra fields, ~30 bytes for zip64): an archive holding one image
 * has a directory of a few hundred bytes; 16 MiB is ~150 000 entries.
 */
export const ZIP_DIRECTORY_MAX_BYTES = 16 * MiB;
/** State files crashcart writes itself (resume journal, rescue maps). */
export const STATE_MAX_BYTES = 16 * MiB;

export function formatLimit(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/** An input exceeds one of the limits above: too large, or it inflates past its cap. */
export class InputLimitError extends BadInputError {}

/** Whether `b` starts with the gzip magic. */
export function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * Reads a whole file of at most `limit` bytes. The size is checked with fstat() on the open
 * descriptor, and reading stops at `limit` + 1 bytes whatever fstat said (files that grow, or
 * /proc files that report size 0).
 * @throws UsageError when the file cannot be opened or read (it names `what` and the path);
 *   InputLimitError when it is larger than `limit`.
 */
export function readFileBounded(path: string, limit: number, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UsageError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new UsageError(`${what} ${path}: is a directory`);
    if (st.isFile() && st.size > limit) throw tooLarge(what, path, st.size, limit);
    const chunks: Buffer[] = [];
    let total = 0;
    const want = st.isFile() && st.size > 0 ? st.size + 1 : 64 * 1024;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(Math.max(want - total, 4096), limit + 1 - total, 4 * MiB));
      if (buf.length === 0) throw tooLarge(what, path, total + 1, limit);
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw new UsageError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > limit) throw tooLarge(what, path, total, limit, true);
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

function tooLarge(what: string, path: string, size: number, limit: number, atLeast = false): InputLimitError {
  return new InputLimitError(
    `${what} ${path}: ${atLeast ? 'more than ' : ''}${atLeast ? formatLimit(limit) : `${size} bytes`} is larger than the ${formatLimit(limit)} limit for this input`,
  );
}

/**
 * gunzip with a hard cap on the output. Concatenated gzip members are inflated like gunzip(1).
 * @throws InputLimitError when the output would exceed `limit` (a decompression bomb or not
 *   the file it claims to be); BadInputError when the gzip data is corrupt.
 */
export function gunzipBounded(data: Uint8Array, limit: number, what: string): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: limit });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new InputLimitError(`${what}: decompresses to more than the ${formatLimit(limit)} limit for this input (a decompression bomb, or not the file it claims to be)`);
    }
    throw new BadInputError(`${what}: gzip data is corrupt (${(e as Error).message})`);
  }
}

/**
 * Reads a file that may be gzip-compressed, streaming the inflation so that neither the input
 * nor the output is held twice: returns the (decompressed) content as a list of chunks whose
 * total is at most `limit` bytes. Plain files are checked with fstat() first.
 * @throws UsageError when the file cannot be read; InputLimitError when it or its decompressed
 *   content exceeds `limit`; BadInputError for corrupt gzip data.
 */
export async function readMaybeGzipChunks(path: string, limit: number, what: string): Promise<Buffer[]> {
  // Plain-file size check and the magic, from the first bytes.
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UsageError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let gz: boolean;
  let size: number;
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new UsageError(`${what} ${path}: is a directory`);
    size = st.isFile() ? st.size : -1;
    const head = Buffer.alloc(2);
    const n = readSync(fd, head, 0, 2, 0);
    gz = n === 2 && isGzip(head);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  // A gzip file is never larger than what it inflates to (beyond a few header bytes per member).
  if (size > limit) throw tooLarge(what, path, size, limit);
  const chunks: Buffer[] = [];
  let total = 0;
  await new Promise<void>((resolveP, rejectP) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      input.destroy();
      gunzip?.destroy();
      rejectP(e);
    };
    const input = createReadStream(path, { highWaterMark: 1 * MiB });
    const gunzip = gz ? createGunzip({ chunkSize: 256 * 1024 }) : undefined;
    const sink = gunzip ?? input;
    input.on('error', (e) => fail(new UsageError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    gunzip?.on('error', (e) => fail(new BadInputError(`${what} ${path}: gzip data is corrupt (${e.message})`)));
    sink.on('data', (c: Buffer) => {
      if (settled) return;
      total += c.length;
      if (total > limit) {
        fail(
          gz
            ? new InputLimitError(
                `${what} ${path}: decompresses to more than the ${formatLimit(limit)} limit for this input (a decompression bomb, or not the file it claims to be)`,
              )
            : tooLarge(what, path, total, limit, true),
        );
        return;
      }
      chunks.push(c);
    });
    sink.on('end', () => {
      if (settled) return;
      settled = true;
      resolveP();
    });
    if (gunzip) input.pipe(gunzip);
  });
  return chunks;
}

/** Rejects a command-line string (e.g. `--cmdline`) longer than `limit` characters. */
export function checkTextLength(text: string, limit: number, what: string): void {
  if (text.length > limit) throw new InputLimitError(`${what}: ${text.length} characters is longer than the ${formatLimit(limit)} limit for this input`);
}
