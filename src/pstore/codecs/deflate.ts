/**
 * Raw deflate (RFC 1951, no zlib/gzip wrapper), as written by pstore: ≤6.5 crypto-API "deflate"
 * (windowBits 11) and ≥6.6 zlib (windowBits 15). A window-15 inflater decodes both.
 */
import {
  ZStream,
  Z_BUF_ERROR,
  Z_NO_FLUSH,
  Z_OK,
  Z_STREAM_END,
  zlibInflate,
  zlibInflateEnd,
  zlibInflateInit2,
} from 'pako';
import { CodecError } from './codec-error.js';
import { resolveMaxOutput, type DecodeOptions } from './types.js';

const CHUNK = 64 * 1024;

function fail(message: string): never {
  throw new CodecError('deflate', message);
}

/**
 * Inflates a raw deflate stream. The stream must reach its end-of-stream block (Z_STREAM_END)
 * and consume the whole input; trailing bytes are an error (the kernel stores exactly the compressed length).
 * @throws CodecError on corrupt, truncated or oversized input.
 */
export function inflateRaw(input: Uint8Array, opts?: DecodeOptions): Uint8Array {
  const limit = resolveMaxOutput(opts);
  if (input.length === 0) fail('empty input');
  const strm = new ZStream();
  if (zlibInflateInit2(strm, -15) !== Z_OK) fail('inflate initialisation failed');
  strm.input = input;
  strm.next_in = 0;
  strm.avail_in = input.length;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      // Offer at most limit + 1 bytes in total so that overflowing the limit is detected, not silently cut.
      const room = Math.min(CHUNK, limit + 1 - total);
      const out = new Uint8Array(room);
      strm.output = out;
      strm.next_out = 0;
      strm.avail_out = room;
      const status = zlibInflate(strm, Z_NO_FLUSH);
      const produced = strm.next_out;
      if (produced > 0) {
        chunks.push(produced === room ? out : out.subarray(0, produced));
        total += produced;
      }
      if (total > limit) fail(`output exceeds the limit of ${limit} bytes`);
      if (status === Z_STREAM_END) break;
      if (status === Z_OK || status === Z_BUF_ERROR) {
        if (strm.avail_out === 0) continue; // needs more output space
        fail(`truncated stream: input ended after ${input.length} bytes without the final block`);
      }
      fail(`corrupt stream at input byte ${strm.next_in}: ${strm.msg || `zlib status ${status}`}`);
    }
  } finally {
    zlibInflateEnd(strm);
  }
  if (strm.avail_in !== 0) {
    fail(`${strm.avail_in} trailing bytes after the end of the deflate stream (consumed ${strm.next_in} of ${input.length})`);
  }
  if (chunks.length === 1) return chunks[0];
  const res = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    res.set(c, o);
    o += c.length;
  }
  return res;
}
