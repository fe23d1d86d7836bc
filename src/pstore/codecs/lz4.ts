/**
 * LZ4 block format decoder (raw block, no frame), as written by the ≤6.5 crypto-API "lz4" and "lz4hc"
 * compressors (LZ4_compress_default / LZ4_compress_HC). Safe: every read and copy is bounds-checked
 * and output is capped.
 *
 * Block = sequences of  token | [literal length bytes] | literals | offset (u16 LE) | [match length bytes].
 * The last sequence has literals only and ends exactly at the end of the input. Spec end-of-block rules
 * (enforced to reject non-LZ4 data): when the block has matches, the last 5 bytes are literals and the
 * last match starts at least 12 bytes before the end. The final token's match-length nibble, unused by
 * the format, must be 0 as every LZ4 reference compressor (and the kernel's port of it) writes it.
 */
import { CodecError } from './codec-error.js';
import { OutputBuffer } from './output-buffer.js';
import { resolveMaxOutput, type DecodeOptions } from './types.js';

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;

function fail(message: string): never {
  throw new CodecError('lz4', message);
}

/**
 * Decodes one raw LZ4 block that must fill `input` exactly.
 * @throws CodecError on corrupt, truncated or oversized input.
 */
export function lz4DecompressBlock(input: Uint8Array, opts?: DecodeOptions): Uint8Array {
  const limit = resolveMaxOutput(opts);
  const n = input.length;
  if (n === 0) fail('empty input');
  const out = new OutputBuffer('lz4', limit, n * 4);
  let ip = 0;
  let lastMatchStart = -1;
  for (;;) {
    if (ip >= n) fail(`block ends after a match at input byte ${n}; the last sequence must be literals`);
    const token = input[ip++];
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= n) fail(`truncated literal length at input byte ${ip}`);
        b = input[ip++];
        lit += b;
      } while (b === 255);
    }
    if (lit > n - ip) fail(`literal run of ${lit} bytes at input byte ${ip} overruns the input (${n - ip} left)`);
    if (lit > 0) {
      out.ensure(lit);
      const b = out.buf;
      let o = out.len;
      if (lit < 32) {
        for (let i = 0; i < lit; i++) b[o++] = input[ip++];
      } else {
        b.set(input.subarray(ip, ip + lit), o);
        o += lit;
        ip += lit;
      }
      out.len = o;
    }
    if (ip === n) {
      if (token & 15) fail(`final token 0x${token.toString(16)} has a non-zero match length nibble`);
      if (lastMatchStart >= 0) {
        if (lit < LAST_LITERALS) fail(`block ends with ${lit} literals; LZ4 requires the last ${LAST_LITERALS} bytes to be literals`);
        if (out.len - lastMatchStart < MF_LIMIT) fail(`last match starts ${out.len - lastMatchStart} bytes before the end; LZ4 requires at least ${MF_LIMIT}`);
      }
      return out.result();
    }
    if (n - ip < 2) fail(`truncated match offset at input byte ${ip}`);
    const offset = input[ip] | (input[ip + 1] << 8);
    ip += 2;
    if (offset === 0) fail(`zero match offset at input byte ${ip - 2}`);
    const op = out.len;
    if (offset > op) fail(`match offset ${offset} at input byte ${ip - 2} reaches before the start of the output (${op} bytes so far)`);
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (ip >= n) fail(`truncated match length at input byte ${ip}`);
        b = input[ip++];
        ml += b;
      } while (b === 255);
    }
    ml += MIN_MATCH;
    out.ensure(ml);
    const buf = out.buf;
    const src = op - offset;
    if (offset >= ml && ml >= 32) {
      buf.copyWithin(op, src, src + ml);
    } else {
      for (let i = 0; i < ml; i++) buf[op + i] = buf[src + i];
    }
    lastMatchStart = op;
    out.len = op + ml;
  }
}
