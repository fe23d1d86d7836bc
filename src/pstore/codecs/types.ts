/** The dmesg compressors a pstore kernel could have been built with (fs/pstore/Kconfig, PSTORE_*_COMPRESS). */
export type CodecName = 'deflate' | 'lz4' | 'lzo' | 'zstd' | '842';

export const CODEC_NAMES: readonly CodecName[] = ['deflate', 'lz4', 'lzo', 'zstd', '842'];

/**
 * Default cap on decompressed output. A kmsg record holds at most one zone's worth of text (64 KiB by default;
 * ≥6.6 kernels allow up to 3 × the zone's buffer when decompressing), so 4 MiB is generous but bounded.
 */
export const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;

/** Hard ceiling accepted for `maxOutput`, so a caller cannot ask for absurd allocations by mistake. */
export const MAX_OUTPUT_CEILING = 1024 * 1024 * 1024;

export interface DecodeOptions {
  /** Maximum number of decompressed bytes; more is an error. Default {@link DEFAULT_MAX_OUTPUT}. */
  maxOutput?: number;
}

/** Validates and resolves the output cap. Invalid options are a programming error (RangeError), not bad input. */
export function resolveMaxOutput(opts: DecodeOptions | undefined): number {
  const v = opts?.maxOutput;
  if (v === undefined) return DEFAULT_MAX_OUTPUT;
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_OUTPUT_CEILING) {
    throw new RangeError(`maxOutput must be an integer between 0 and ${MAX_OUTPUT_CEILING}, got ${String(v)}`);
  }
  return v;
}
