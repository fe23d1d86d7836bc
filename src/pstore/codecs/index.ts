/**
 * Decompression of compressed pstore dmesg (kmsg) records. The on-disk header only says "compressed";
 * the algorithm depends on how the writing kernel was built (CONFIG_PSTORE_*_COMPRESS, or zlib
 * deflate since 6.6 in fs/pstore/platform.c), so detectAndDecompress tries
 * the candidates in an order chosen to avoid false positives: zstd first when its frame magic is
 * present, then deflate, lz4, lzo and 842. Every decoder is strict: it must consume the input exactly
 * (842: up to its zero padding) and end cleanly, so a wrong guess fails instead of producing garbage.
 */
import { CodecError } from './codec-error.js';
import { inflateRaw } from './deflate.js';
import { lz4DecompressBlock } from './lz4.js';
import { lzo1xDecompress } from './lzo.js';
import { sw842Decompress } from './sw842.js';
import { CODEC_NAMES, resolveMaxOutput, type CodecName, type DecodeOptions } from './types.js';
import { hasZstdMagic, zstdDecompress } from './zstd.js';

export { CodecError } from './codec-error.js';
export { inflateRaw } from './deflate.js';
export { lz4DecompressBlock } from './lz4.js';
export { lzo1xDecompress } from './lzo.js';
export { sw842Decompress, crc32be } from './sw842.js';
export { zstdDecompress, hasZstdMagic, ZSTD_MAX_WINDOW } from './zstd.js';
export { CODEC_NAMES, DEFAULT_MAX_OUTPUT, MAX_OUTPUT_CEILING, type CodecName, type DecodeOptions } from './types.js';

export interface DetectOptions extends DecodeOptions {
  /** Restrict detection to these codecs (tried in the standard order, not the order given). */
  only?: CodecName[];
}

export interface CodecAttempt {
  algorithm: CodecName;
  /** Why this codec rejected the input. */
  error: string;
}

export type DecompressResult = { ok: true; algorithm: CodecName; data: Uint8Array; attempts: CodecAttempt[] } | { ok: false; attempts: CodecAttempt[] };

const DECODERS: Record<CodecName, (input: Uint8Array, opts: DecodeOptions) => Uint8Array> = {
  zstd: zstdDecompress,
  deflate: inflateRaw,
  lz4: lz4DecompressBlock,
  lzo: lzo1xDecompress,
  '842': sw842Decompress,
};

/** The order in which detectAndDecompress tries the codecs for this payload. */
export function detectionOrder(payload: Uint8Array): CodecName[] {
  return hasZstdMagic(payload) ? ['zstd', 'deflate', 'lz4', 'lzo', '842'] : ['deflate', 'lz4', 'lzo', '842', 'zstd'];
}

/**
 * Finds the codec that decodes `payload` cleanly and returns its output. Never throws for bad payloads:
 * failure is `{ ok: false }` with one reason per codec tried. (Invalid options throw a RangeError.)
 * `attempts` lists the codecs that failed before the result, in the order they were tried.
 */
export function detectAndDecompress(payload: Uint8Array, opts?: DetectOptions): DecompressResult {
  const maxOutput = resolveMaxOutput(opts);
  if (opts?.only) {
    for (const name of opts.only) {
      if (!CODEC_NAMES.includes(name)) throw new RangeError(`unknown codec ${JSON.stringify(name)}`);
    }
  }
  const allowed = opts?.only ? new Set<CodecName>(opts.only) : undefined;
  const attempts: CodecAttempt[] = [];
  for (const algorithm of detectionOrder(payload)) {
    if (allowed && !allowed.has(algorithm)) continue;
    try {
      const data = DECODERS[algorithm](payload, { maxOutput });
      return { ok: true, algorithm, data, attempts };
    } catch (e) {
      const error = e instanceof CodecError ? e.message : `internal decoder error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
      attempts.push({ algorithm, error });
    }
  }
  return { ok: false, attempts };
}
