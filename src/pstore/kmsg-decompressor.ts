/**
 * Decompression of compressed dmesg records for one region. The algorithm is not stored on disk,
 * but one kernel writes every record with the same one: the first record that decodes decides
 * it (unless pstore.compress= named it), later records try that codec alone first and go through
 * the whole detection only when it fails. Results are kept by where the payload lies in the
 * region (and the output limit), so a payload decoded ahead, while the region was still being read,
 * is not decoded again.
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

export class KmsgDecompressor {
  /** The algorithm tried first: pstore.compress=, else the one that decoded the first record. */
  private preferred: CodecName | undefined;
  private readonly done = new Map<string, DecompressResult>();

  /** `compressParam`: pstore.compress= of the writing kernel, when known. */
  constructor(compressParam?: string) {
    this.preferred = codecForCompressParam(compressParam);
  }

  /** Decompresses `payload`, which lies at `offset` in the region; never throws for bad data. */
  decompress(payload: Uint8Array, offset: number, maxOutput: number): DecompressResult {
    const key = `${offset}:${payload.length}:${maxOutput}`;
    const kept = this.done.get(key);
    if (kept) return kept;
    let result = this.preferred ? detectAndDecompress(payload, { maxOutput, only: [this.preferred] }) : undefined;
    if (!result || !result.ok) result = detectAndDecompress(payload, { maxOutput });
    if (result.ok) this.preferred ??= result.algorithm;
    this.done.set(key, result);
    return result;
  }
}
