/**
 * XXH64 (seed 0), used to verify zstd content checksums: the pstore dmesg decoder checks a
 * frame at once (`xxh64`), the image flasher checks frames of any size as they stream by
 * (`Xxh64`).
 *
 * The 32-byte stripe loop, where nearly all the time goes, runs in a tiny WebAssembly module
 * built below from its instructions (native 64-bit multiply and rotate: GB/s instead of the
 * ~40 MB/s of 64-bit arithmetic on pairs of 32-bit numbers in JavaScript). The setup, the
 * last < 32 bytes and the final mix are done with BigInt in JavaScript.
 */

const M64 = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

/** Bytes of input the module takes per call (its memory: 64 bytes of lanes, then the data). */
const SLICE = 1024 * 1024;
const DATA_AT = 64;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function sleb(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asIntN(64, v);
  for (;;) {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    if ((x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/**
 * The module: memory "mem" (lanes v1..v4 as little-endian u64 at 0..31, data from 64) and
 * `stripes(len)`, which runs the XXH64 round over floor(len / 32) stripes of the data and
 * stores the lanes back.
 */
function moduleBytes(): Uint8Array {
  const I32_CONST = 0x41,
    I64_CONST = 0x42,
    I64_LOAD = 0x29,
    I64_STORE = 0x37;
  const LOCAL_GET = 0x20,
    LOCAL_SET = 0x21,
    I32_AND = 0x71,
    I32_ADD = 0x6a,
    I32_GE_U = 0x4f;
  const I64_MUL = 0x7e,
    I64_ADD = 0x7c,
    I64_ROTL = 0x89,
    BLOCK = 0x02,
    LOOP = 0x03,
    BR_IF = 0x0d,
    BR = 0x0c,
    END = 0x0b,
    VOID = 0x40;
  // locals: 0 len (param), 1 p, 2 end, 3..6 v1..v4
  const code: number[] = [];
  for (let k = 0; k < 4; k++) code.push(I32_CONST, 0, I64_LOAD, 3, ...uleb(8 * k), LOCAL_SET, 3 + k);
  code.push(I32_CONST, ...sleb(BigInt(DATA_AT)), LOCAL_SET, 1);
  code.push(LOCAL_GET, 0, I32_CONST, ...sleb(-32n), I32_AND, I32_CONST, ...sleb(BigInt(DATA_AT)), I32_ADD, LOCAL_SET, 2);
  code.push(BLOCK, VOID, LOOP, VOID);
  code.push(LOCAL_GET, 1, LOCAL_GET, 2, I32_GE_U, BR_IF, 1);
  for (let k = 0; k < 4; k++) {
    // v = rotl(v + load64(p + 8k) * P2, 31) * P1
    code.push(LOCAL_GET, 3 + k, LOCAL_GET, 1, I64_LOAD, 3, ...uleb(8 * k), I64_CONST, ...sleb(P2), I64_MUL, I64_ADD);
    code.push(I64_CONST, 31, I64_ROTL, I64_CONST, ...sleb(P1), I64_MUL, LOCAL_SET, 3 + k);
  }
  code.push(LOCAL_GET, 1, I32_CONST, 32, I32_ADD, LOCAL_SET, 1, BR, 0, END, END);
  for (let k = 0; k < 4; k++) code.push(I32_CONST, 0, LOCAL_GET, 3 + k, I64_STORE, 3, ...uleb(8 * k));
  code.push(END);
  const locals = [2, 2, 0x7f, 4, 0x7e];
  const body = [...locals, ...code];
  const func = [...uleb(body.length), ...body];
  const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
  const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const pages = Math.ceil((DATA_AT + SLICE) / 65536);
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 1, 0x7f, 0]), // type 0: (i32) -> ()
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0, ...uleb(pages)]), // one memory
    ...section(7, [2, ...name('mem'), 2, 0, ...name('stripes'), 0, 0]),
    ...section(10, [1, ...func]),
  ]);
}

interface Kernel {
  bytes: Uint8Array;
  lanes: BigUint64Array;
  stripes: (len: number) => void;
}

let kernel: Kernel | undefined;

function getKernel(): Kernel {
  if (!kernel) {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes() as Uint8Array<ArrayBuffer>), {});
    const mem = inst.exports.mem as WebAssembly.Memory;
    kernel = {
      bytes: new Uint8Array(mem.buffer),
      lanes: new BigUint64Array(mem.buffer, 0, 4),
      stripes: inst.exports.stripes as (len: number) => void,
    };
  }
  return kernel;
}

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & M64;
}

function round(acc: bigint, input: bigint): bigint {
  return (rotl((acc + input * P2) & M64, 31n) * P1) & M64;
}

/** Streaming XXH64 with seed 0. */
export class Xxh64 {
  private v1 = (P1 + P2) & M64;
  private v2 = P2;
  private v3 = 0n;
  private v4 = -P1 & M64;
  private total = 0;
  /** Input not yet run through the lanes (< 32 bytes). */
  private readonly tail = new Uint8Array(32);
  private tailLen = 0;

  update(data: Uint8Array): this {
    this.total += data.length;
    let p = 0;
    if (this.tailLen > 0) {
      const n = Math.min(32 - this.tailLen, data.length);
      this.tail.set(data.subarray(0, n), this.tailLen);
      this.tailLen += n;
      p = n;
      if (this.tailLen < 32) return this;
      this.run(this.tail, 32);
      this.tailLen = 0;
    }
    while (data.length - p >= 32) {
      const n = Math.min(SLICE, data.length - p) & ~31;
      this.run(data.subarray(p, p + n), n);
      p += n;
    }
    if (p < data.length) {
      this.tail.set(data.subarray(p), 0);
      this.tailLen = data.length - p;
    }
    return this;
  }

  private run(data: Uint8Array, n: number): void {
    const k = getKernel();
    k.lanes[0] = this.v1;
    k.lanes[1] = this.v2;
    k.lanes[2] = this.v3;
    k.lanes[3] = this.v4;
    k.bytes.set(data.length === n ? data : data.subarray(0, n), DATA_AT);
    k.stripes(n);
    this.v1 = k.lanes[0];
    this.v2 = k.lanes[1];
    this.v3 = k.lanes[2];
    this.v4 = k.lanes[3];
  }

  /** The hash of everything given so far, as an unsigned 64-bit BigInt. */
  digest(): bigint {
    let h: bigint;
    if (this.total >= 32) {
      h = (rotl(this.v1, 1n) + rotl(this.v2, 7n) + rotl(this.v3, 12n) + rotl(this.v4, 18n)) & M64;
      for (const v of [this.v1, this.v2, this.v3, this.v4]) h = ((h ^ round(0n, v)) * P1 + P4) & M64;
    } else {
      h = P5;
    }
    h = (h + BigInt(this.total)) & M64;
    const t = this.tail;
    const dv = new DataView(t.buffer, t.byteOffset, this.tailLen);
    let p = 0;
    for (; p + 8 <= this.tailLen; p += 8) h = (rotl(h ^ round(0n, dv.getBigUint64(p, true)), 27n) * P1 + P4) & M64;
    if (p + 4 <= this.tailLen) {
      h = (rotl(h ^ ((BigInt(dv.getUint32(p, true)) * P1) & M64), 23n) * P2 + P3) & M64;
      p += 4;
    }
    for (; p < this.tailLen; p++) h = (rotl(h ^ ((BigInt(t[p]) * P5) & M64), 11n) * P1) & M64;
    h ^= h >> 33n;
    h = (h * P2) & M64;
    h ^= h >> 29n;
    h = (h * P3) & M64;
    h ^= h >> 32n;
    return h;
  }
}

/** XXH64(data, seed 0) as [high, low] 32-bit halves. */
export function xxh64(data: Uint8Array): [number, number] {
  const h = new Xxh64().update(data).digest();
  return [Number(h >> 32n), Number(h & 0xffffffffn)];
}
