/**
 * LZO1X decompressor, a port of the logic of the Linux kernel's lib/lzo/lzo1x_decompress_safe.c
 * (the checked, non-fast-path variant), for records written by the ≤6.5 crypto-API "lzo" compressor
 * (lzo1x_1_compress). Also accepts the ≥5.1 "bitstream version" prefix (first byte 17, then a version
 * byte, which must be 1) used by LZO-RLE, whose zero runs are encoded as a special M4 instruction.
 *
 * The stream must end with the end-of-stream marker (M4 instruction 0x11 0x00 0x00) exactly at the end
 * of the input: the kernel's compressor writes nothing after it.
 */
import { CodecError } from './codec-error.js';
import { OutputBuffer } from './output-buffer.js';
import { resolveMaxOutput, type DecodeOptions } from './types.js';

const M2_MAX_OFFSET = 0x0800;
const MIN_ZERO_RUN_LENGTH = 4;

function fail(message: string): never {
  throw new CodecError('lzo', message);
}

function inputOverrun(ip: number, n: number): never {
  fail(`input overrun: stream truncated at input byte ${ip} of ${n}`);
}

function lookbehind(ip: number, dist: number, decoded: number): never {
  fail(`match at input byte ${ip} reaches ${dist} bytes back but only ${decoded} bytes were decoded (look-behind overrun)`);
}

/** The optional bitstream-version prefix (17, version): returns the version, 0 without a prefix. */
function readBitstreamVersion(input: Uint8Array): number {
  if (input.length < 5 || input[0] !== 17) return 0;
  const version = input[1];
  // The kernel accepts any non-zero version as LZO-RLE; only version 1 (LZO_VERSION) has ever been defined,
  // so anything else is more likely not LZO at all.
  if (version !== 1) fail(`unsupported LZO bitstream version ${version}`);
  return version;
}

/** The decoder's input position, for the long-length helper (the hot loop keeps its own copy in a local). */
interface Cursor {
  ip: number;
}

/**
 * A length field of 0 continues in the next bytes: 255 for each zero byte, then a final non-zero
 * byte. Returns `base` plus what those bytes add, moves `c.ip` past them, and checks that `need`
 * more input bytes follow.
 */
function longLength(input: Uint8Array, n: number, c: Cursor, base: number, need: number): number {
  let ip = c.ip;
  const start = ip;
  while (input[ip] === 0) {
    ip++;
    if (ip >= n) inputOverrun(ip, n);
  }
  const t = (ip - start) * 255 + base + input[ip++];
  if (n - ip < need) inputOverrun(ip, n);
  c.ip = ip;
  return t;
}

/** An LZO-RLE zero run: `t` zero bytes. */
function writeZeroRun(out: OutputBuffer, t: number): void {
  out.ensure(t);
  out.buf.fill(0, out.len, out.len + t);
  out.len += t;
}

/** The end-of-stream marker is valid only as 0x11 0x00 0x00 (t == 3) ending exactly at the input end. */
function checkEndOfStream(t: number, ip: number, n: number): void {
  if (t !== 3) fail(`malformed end-of-stream marker at input byte ${ip - 3}`);
  if (ip < n) fail(`${n - ip} trailing bytes after the end-of-stream marker (input not consumed)`);
}

/**
 * Decodes an LZO1X stream that must fill `input` exactly.
 * @throws CodecError on corrupt, truncated or oversized input.
 *
 * Deliberately one long function: its loop is the state machine of the kernel's
 * lzo1x_decompress_safe() (lib/lzo/lzo1x_decompress_safe.c), with `jump` standing for its gotos
 * (copy_literal_run, match_next) and the kernel's locals (ip, state, t, next, m_pos) kept as locals
 * so they can live in registers. Only the rare paths (bitstream-version prefix, long lengths, zero
 * runs, end-of-stream marker) are helpers. Measured against the single-piece decoder on the test
 * vectors (test/fixtures/codecs/vectors/dmesg.{lzo,klzo,lzorle}, medians of 41 interleaved rounds,
 * 3-6 runs, Node 20; an identical copy of the decoder as control came out at x0.99-1.01): splitting
 * every instruction class and copy step into functions over a state object cost x1.11, moving only
 * the copy steps into helpers x1.06; this layout measured x1.01, within the noise.
 */
export function lzo1xDecompress(input: Uint8Array, opts?: DecodeOptions): Uint8Array {
  const limit = resolveMaxOutput(opts);
  const n = input.length;
  const out = new OutputBuffer('lzo', limit, n * 3);
  if (n < 3) inputOverrun(0, n);
  const bitstreamVersion = readBitstreamVersion(input);
  let ip = bitstreamVersion ? 2 : 0;
  const cur: Cursor = { ip };

  let state = 0;
  let t = 0;
  let next = 0;
  let mPos = 0;
  // Where the kernel's gotos lead: 0 = read the next instruction, 1 = copy_literal_run, 2 = match_next.
  let jump = 0;

  if (input[ip] > 17) {
    t = input[ip++] - 17;
    if (t < 4) {
      next = t;
      jump = 2;
    } else {
      jump = 1;
    }
  }

  for (;;) {
    let haveMatch = false;
    if (jump === 0) {
      // Every path into here guaranteed 3 readable bytes (kernel: NEED_IP(t + 3)); checked again for safety.
      if (n - ip < 3) inputOverrun(ip, n);
      t = input[ip++];
      if (t < 16) {
        if (state === 0) {
          // Literal run.
          if (t === 0) {
            cur.ip = ip;
            t += longLength(input, n, cur, 15, 0);
            ip = cur.ip;
          }
          t += 3;
          jump = 1;
        } else if (state !== 4) {
          // M1 match of 2 bytes after 1..3 trailing literals.
          next = t & 3;
          mPos = out.len - 1 - (t >> 2) - (input[ip++] << 2);
          if (mPos < 0) lookbehind(ip, out.len - mPos, out.len);
          out.ensure(2);
          const b = out.buf;
          b[out.len] = b[mPos];
          b[out.len + 1] = b[mPos + 1];
          out.len += 2;
          jump = 2;
        } else {
          // M1 match of 3 bytes after a literal run.
          next = t & 3;
          mPos = out.len - (1 + M2_MAX_OFFSET) - (t >> 2) - (input[ip++] << 2);
          t = 3;
          haveMatch = true;
        }
      } else if (t >= 64) {
        // M2 match (distance up to 2 KiB).
        next = t & 3;
        mPos = out.len - 1 - ((t >> 2) & 7) - (input[ip++] << 3);
        t = (t >> 5) - 1 + (3 - 1);
        haveMatch = true;
      } else if (t >= 32) {
        // M3 match (distance up to 16 KiB).
        t = (t & 31) + (3 - 1);
        if (t === 2) {
          cur.ip = ip;
          t += longLength(input, n, cur, 31, 2);
          ip = cur.ip;
        }
        next = input[ip] | (input[ip + 1] << 8);
        ip += 2;
        mPos = out.len - 1 - (next >> 2);
        next &= 3;
        haveMatch = true;
      } else {
        // 16..31: M4 match (distance 16 KiB..48 KiB), end-of-stream marker, or (bitstream v1+) a zero run.
        if (n - ip < 2) inputOverrun(ip, n);
        next = input[ip] | (input[ip + 1] << 8);
        if ((next & 0xfffc) === 0xfffc && (t & 0xf8) === 0x18 && bitstreamVersion) {
          if (n - ip < 3) inputOverrun(ip, n);
          writeZeroRun(out, ((t & 7) | (input[ip + 2] << 3)) + MIN_ZERO_RUN_LENGTH);
          next &= 3;
          ip += 3;
          jump = 2;
        } else {
          mPos = out.len - ((t & 8) << 11);
          t = (t & 7) + (3 - 1);
          if (t === 2) {
            cur.ip = ip;
            t += longLength(input, n, cur, 7, 2);
            ip = cur.ip;
            next = input[ip] | (input[ip + 1] << 8);
          }
          ip += 2;
          mPos -= next >> 2;
          next &= 3;
          if (mPos === out.len) {
            checkEndOfStream(t, ip, n);
            return out.result();
          }
          mPos -= 0x4000;
          haveMatch = true;
        }
      }
    }

    if (haveMatch) {
      if (mPos < 0) lookbehind(ip, out.len - mPos, out.len);
      out.ensure(t);
      const b = out.buf;
      const op = out.len;
      if (t >= 32 && mPos + t <= op) {
        b.copyWithin(op, mPos, mPos + t);
      } else {
        for (let i = 0; i < t; i++) b[op + i] = b[mPos + i];
      }
      out.len = op + t;
      jump = 2;
    }

    if (jump === 1) {
      // copy_literal_run: t literals, then at least 3 more input bytes (the next instruction) must follow.
      if (t > n - ip - 3) inputOverrun(ip, n);
      out.ensure(t);
      const b = out.buf;
      if (t < 32) {
        let o = out.len;
        for (let i = 0; i < t; i++) b[o++] = input[ip++];
        out.len = o;
      } else {
        b.set(input.subarray(ip, ip + t), out.len);
        out.len += t;
        ip += t;
      }
      state = 4;
      jump = 0;
      continue;
    }

    if (jump === 2) {
      // match_next: 0..3 trailing literals encoded in the low bits of the previous instruction.
      state = next;
      t = next;
      if (t + 3 > n - ip) inputOverrun(ip, n);
      if (t > 0) {
        out.ensure(t);
        const b = out.buf;
        let o = out.len;
        while (t-- > 0) b[o++] = input[ip++];
        out.len = o;
      }
      jump = 0;
    }
  }
}
