/**
 * Decoder for the Linux kernel's software 842 format (lib/842, crypto-API "842"), a port of the logic of
 * lib/842/842_decompress.c and the format notes in lib/842/842.h.
 *
 * The stream is a big-endian bit stream of 5-bit template codes:
 *  - 0x00..0x19: a template of 1–4 actions producing 8 bytes in total; each action is literal data
 *    (2, 4 or 8 bytes) or an index (8, 9 or 8 bits) into a ring of the last 512 / 2048 / 2048 output bytes
 *    (counted in 2-, 4- and 8-byte units);
 *  - 0x1b repeat: 6-bit count N, repeat the last 8 output bytes N+1 times;
 *  - 0x1c zeros: 8 zero bytes;
 *  - 0x1d short data (software only): 3-bit count N (1..7), then N literal bytes;
 *  - 0x1e end, followed by a 32-bit CRC (kernel crc32_be, seed 0, of the whole output). The CRC trailer is
 *    in every lib/842 that coexists with pstore/zone (5.8+); the original 2015 format had none.
 * The compressor then pads with zero bits to a byte and with zero bytes to a multiple of 8 bytes.
 * This decoder requires the CRC to match and anything after it to be that zero padding.
 */
import { CodecError } from './codec-error.js';
import { OutputBuffer } from './output-buffer.js';
import { resolveMaxOutput, type DecodeOptions } from './types.js';

const OP_REPEAT = 0x1b;
const OP_ZEROS = 0x1c;
const OP_SHORT_DATA = 0x1d;
const OP_END = 0x1e;
const OPS_MAX = 0x1a;

const I2_BITS = 8;
const I4_BITS = 9;
const I8_BITS = 8;
const I2_FIFO_SIZE = 2 * (1 << I2_BITS);
const I4_FIFO_SIZE = 4 * (1 << I4_BITS);
const I8_FIFO_SIZE = 8 * (1 << I8_BITS);

// Action encoding: positive = literal data of that many bytes, negative = index of that many bytes.
const D2 = 2;
const D4 = 4;
const D8 = 8;
const I2 = -2;
const I4 = -4;
const I8 = -8;

/** Template table (lib/842 decomp_ops), indexed by template code; unused slots are omitted. */
const TEMPLATES: readonly (readonly number[])[] = [
  [D8],
  [D4, D2, I2],
  [D4, I2, D2],
  [D4, I2, I2],
  [D4, I4],
  [D2, I2, D4],
  [D2, I2, D2, I2],
  [D2, I2, I2, D2],
  [D2, I2, I2, I2],
  [D2, I2, I4],
  [I2, D2, D4],
  [I2, D4, I2],
  [I2, D2, I2, D2],
  [I2, D2, I2, I2],
  [I2, D2, I4],
  [I2, I2, D4],
  [I2, I2, D2, I2],
  [I2, I2, I2, D2],
  [I2, I2, I2, I2],
  [I2, I2, I4],
  [I4, D4],
  [I4, D2, I2],
  [I4, I2, D2],
  [I4, I2, I2],
  [I4, I4],
  [I8],
];

let crcTable: Uint32Array | undefined;

/** The kernel's crc32_be(0, data, len): CRC-32 polynomial 0x04C11DB7, MSB first, no pre/post inversion. */
export function crc32be(data: Uint8Array, crc = 0): number {
  let table = crcTable;
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i << 24;
      for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
      table[i] = c >>> 0;
    }
    crcTable = table;
  }
  let c = crc >>> 0;
  for (let i = 0; i < data.length; i++) c = ((c << 8) ^ table[((c >>> 24) ^ data[i]) & 0xff]) >>> 0;
  return c;
}

function fail(message: string): never {
  throw new CodecError('842', message);
}

/** Big-endian bit reader; every read is checked against the end of the input. */
class BitReader {
  pos = 0;
  readonly totalBits: number;
  constructor(readonly data: Uint8Array) {
    this.totalBits = data.length * 8;
  }

  /** Reads n ≤ 16 bits, most significant first. */
  read(n: number): number {
    const pos = this.pos;
    if (pos + n > this.totalBits) fail(`truncated stream: needs ${n} more bits at bit ${pos} of ${this.totalBits}`);
    const d = this.data;
    const i = pos >>> 3;
    // 24-bit window; bytes past the end read as 0 and are never part of the result (checked above).
    const w = (d[i] << 16) | ((d[i + 1] | 0) << 8) | (d[i + 2] | 0);
    this.pos = pos + n;
    return (w >>> (24 - (pos & 7) - n)) & ((1 << n) - 1);
  }
}

/** An index action: copies `size` bytes from the ring of the last `fsize` bytes (lib/842 __do_index). */
function doIndex(r: BitReader, out: OutputBuffer, size: number, nbits: number, fsize: number): void {
  const total = out.len - (out.len % 8);
  const index = r.read(nbits);
  let offset = index * size;
  if (total > fsize) {
    let section = total - (total % fsize);
    const pos = total % fsize;
    if (offset >= pos) section -= fsize;
    offset += section;
  }
  if (offset + size > total) {
    fail(`index ${index} (${size}-byte unit) points past the ${total} bytes written so far, at bit ${r.pos}`);
  }
  out.ensure(size);
  const b = out.buf;
  let o = out.len;
  for (let k = 0; k < size; k++) b[o++] = b[offset + k];
  out.len = o;
}

/**
 * Decodes one sw842 stream (with its CRC) that must fill `input` up to the compressor's zero padding.
 * @throws CodecError on corrupt, truncated or oversized input.
 */
export function sw842Decompress(input: Uint8Array, opts?: DecodeOptions): Uint8Array {
  const limit = resolveMaxOutput(opts);
  if (input.length === 0) fail('empty input');
  const out = new OutputBuffer('842', limit, input.length * 3);
  const r = new BitReader(input);

  for (;;) {
    const opAt = r.pos;
    const op = r.read(5);
    if (op === OP_END) break;
    switch (op) {
      case OP_REPEAT: {
        const rep = r.read(6) + 1;
        if (out.len < 8) fail(`repeat template at bit ${opAt} with fewer than 8 bytes of output`);
        out.ensure(rep * 8);
        const b = out.buf;
        let o = out.len;
        for (let k = 0; k < rep * 8; k++, o++) b[o] = b[o - 8];
        out.len = o;
        break;
      }
      case OP_ZEROS:
        out.ensure(8);
        out.buf.fill(0, out.len, out.len + 8);
        out.len += 8;
        break;
      case OP_SHORT_DATA: {
        const count = r.read(3);
        if (count === 0) fail(`short-data template with zero length at bit ${opAt}`);
        out.ensure(count);
        for (let k = 0; k < count; k++) out.buf[out.len++] = r.read(8);
        break;
      }
      default: {
        if (op >= OPS_MAX) fail(`invalid template code 0x${op.toString(16)} at bit ${opAt}`);
        const actions = TEMPLATES[op];
        for (let a = 0; a < actions.length; a++) {
          const action = actions[a];
          if (action > 0) {
            out.ensure(action);
            const b = out.buf;
            let o = out.len;
            for (let k = 0; k < action; k += 2) {
              const v = r.read(16);
              b[o++] = v >>> 8;
              b[o++] = v & 0xff;
            }
            out.len = o;
          } else if (action === I2) {
            doIndex(r, out, 2, I2_BITS, I2_FIFO_SIZE);
          } else if (action === I4) {
            doIndex(r, out, 4, I4_BITS, I4_FIFO_SIZE);
          } else {
            doIndex(r, out, 8, I8_BITS, I8_FIFO_SIZE);
          }
        }
      }
    }
  }

  const crcAt = r.pos;
  const stored = (r.read(16) * 0x10000 + r.read(16)) >>> 0;
  const data = out.result();
  const actual = crc32be(data);
  if (stored !== actual) {
    fail(`CRC mismatch: stream says 0x${stored.toString(16).padStart(8, '0')}, data gives 0x${actual.toString(16).padStart(8, '0')} (CRC at bit ${crcAt})`);
  }
  // Trailing: zero bits to the byte boundary, then zero bytes up to a multiple of 8 bytes.
  const bp = r.pos;
  const used = Math.ceil(bp / 8);
  if (bp & 7 && input[used - 1] & ((1 << (8 - (bp & 7))) - 1)) fail('non-zero padding bits after the CRC');
  const padded = Math.ceil(used / 8) * 8;
  if (input.length > padded) fail(`${input.length - used} trailing bytes after the stream (at most ${padded - used} bytes of zero padding expected)`);
  for (let i = used; i < input.length; i++) {
    if (input[i] !== 0) fail(`non-zero byte 0x${input[i].toString(16)} in the padding at input byte ${i}`);
  }
  return data;
}
