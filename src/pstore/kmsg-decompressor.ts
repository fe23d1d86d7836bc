/**
 * Decompression of compressed dmesg records for one region. The algorithm is not stored on disk,
 * but one kernel writes every record with the same one: the first record that decodes decides
 * it (unless pstore.compress= named it), later records try that codec alone first and go through
 * the whole detection only when it fails. Results are kept by where the payload lies in the
 * region (and the output limit), so a payload decoded ahead, while the region was still being read
 * (here or on a worker thread: `remember`), is not decoded again.
 */
import type { CodecName, DecompressResult } from './codecs/index.js';
import { CODEC_NAMES, detectAndDecompress } from './codecs/index.js';
import { ZONE_HEADER_SIZE } from './abi.js';

/** Maps a pstore.compress= value to the decoder that reads it (lz4hc writes plain LZ4 blocks). */
function codecForCompressParam(v: string | undefined): CodecName | undefined {
  if (!v) return undefined;
  const name = v === 'lz4hc' ? 'lz4' : v;
  return (CODEC_NAMES as readonly string[]).includes(name) ? (name as CodecName) : undefined;
}

/**
 * The decompressed size a kmsg zone's record may reach: generous (a ≥ 6.6 kernel allows 3 × the
 * zone's buffer) but bounded, so a corrupt payload cannot make us allocate without limit.
 */
export function kmsgMaxOutput(zoneSize: number, maxDecompressed?: number): number {
  return maxDecompressed ?? Math.max(4 << 20, 8 * (zoneSize - ZONE_HEADER_SIZE));
}

/** What decoding a payload gives: the codec tried first (if any), then the whole detection if that fails. */
export function decompressPreferring(payload: Uint8Array, maxOutput: number, preferred: CodecName | undefined): DecompressResult {
  const result = preferred ? detectAndDecompress(payload, { maxOutput, only: [preferred] }) : undefined;
  return result && result.ok ? result : detectAndDecompress(payload, { maxOutput });
}

export class KmsgDecompressor {
  /** The algorithm tried first: pstore.compress=, else the one that decoded the first record. */
  private preferred: CodecName | undefined;
  private readonly done = new Map<string, DecompressResult>();

  /** `compressParam`: pstore.compress= of the writing kernel, when known. */
  constructor(compressParam?: string) {
    this.preferred = codecForCompressParam(compressParam);
  }

  /** The codec tried first for the next record (undefined until one has decoded, without pstore.compress=). */
  get preferredCodec(): CodecName | undefined {
    return this.preferred;
  }

  /** Decompresses `payload`, which lies at `offset` in the region; never throws for bad data. */
  decompress(payload: Uint8Array, offset: number, maxOutput: number): DecompressResult {
    const key = keyOf(offset, payload.length, maxOutput);
    const kept = this.done.get(key);
    if (kept) return kept;
    const result = decompressPreferring(payload, maxOutput, this.preferred);
    this.remember(offset, payload.length, maxOutput, result);
    return result;
  }

  /**
   * Keeps what decoding a payload of `length` bytes at `offset` gave elsewhere (a worker thread,
   * with `decompressPreferring` and this decompressor's `preferredCodec` of the time).
   */
  remember(offset: number, length: number, maxOutput: number, result: DecompressResult): void {
    if (result.ok) this.preferred ??= result.algorithm;
    this.done.set(keyOf(offset, length, maxOutput), result);
  }

  /** Whether the payload at `offset` has been decoded (or handed to `remember`). */
  has(offset: number, length: number, maxOutput: number): boolean {
    return this.done.has(keyOf(offset, length, maxOutput));
  }
}

function keyOf(offset: number, length: number, maxOutput: number): string {
  return `${offset}:${length}:${maxOutput}`;
}
