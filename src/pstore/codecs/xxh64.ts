/**
 * XXH64 (seed 0 by default), used to verify a zstd frame's content checksum. 64-bit arithmetic is done
 * on pairs of 32-bit halves so no BigInt is needed in the hot loop.
 */

// Each constant as [high 32 bits, low 32 bits].
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

// Result registers of the helpers below (avoids allocating pairs).
let rh = 0;
let rl = 0;

function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  rl = lo >>> 0;
  rh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

function mul(ah: number, al: number, bh: number, bl: number): void {
  // Low 64 bits of (ah:al) * (bh:bl).
  const a0 = al & 0xffff, a1 = al >>> 16;
  const b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 0x10000) * 0x10000; // < 2^33
  rl = low >>> 0;
  const carry = Math.floor(low / 0x100000000);
  let hi = a1 * b1 + Math.floor(mid / 0x10000) + carry;
  hi = (hi + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  rh = hi;
}

function rotl(h: number, l: number, r: number): void {
  // 0 < r < 32
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** acc = rotl(acc + input * P2, 31) * P1, result in (rh, rl). */
function round(acch: number, accl: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(acch, accl, rh, rl);
  rotl(rh, rl, 31);
  mul(rh, rl, P1H, P1L);
}

function mergeRound(acch: number, accl: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  const xh = (acch ^ rh) >>> 0, xl = (accl ^ rl) >>> 0;
  mul(xh, xl, P1H, P1L);
  add(rh, rl, P4H, P4L);
}

function rd32(d: Uint8Array, i: number): number {
  return (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24)) >>> 0;
}

/** Returns XXH64(data, seed 0) as [high, low] 32-bit halves. */
export function xxh64(data: Uint8Array): [number, number] {
  const len = data.length;
  let p = 0;
  let hh: number, hl: number;
  if (len >= 32) {
    // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1
    add(P1H, P1L, P2H, P2L);
    let v1h = rh, v1l = rl;
    let v2h = P2H, v2l = P2L;
    let v3h = 0, v3l = 0;
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    let v4h = rh, v4l = rl;
    const limit = len - 32;
    do {
      round(v1h, v1l, rd32(data, p + 4), rd32(data, p)); v1h = rh; v1l = rl;
      round(v2h, v2l, rd32(data, p + 12), rd32(data, p + 8)); v2h = rh; v2l = rl;
      round(v3h, v3l, rd32(data, p + 20), rd32(data, p + 16)); v3h = rh; v3l = rl;
      round(v4h, v4l, rd32(data, p + 28), rd32(data, p + 24)); v4h = rh; v4l = rl;
      p += 32;
    } while (p <= limit);
    rotl(v1h, v1l, 1); hh = rh; hl = rl;
    rotl(v2h, v2l, 7); add(hh, hl, rh, rl); hh = rh; hl = rl;
    rotl(v3h, v3l, 12); add(hh, hl, rh, rl); hh = rh; hl = rl;
    rotl(v4h, v4l, 18); add(hh, hl, rh, rl); hh = rh; hl = rl;
    mergeRound(hh, hl, v1h, v1l); hh = rh; hl = rl;
    mergeRound(hh, hl, v2h, v2l); hh = rh; hl = rl;
    mergeRound(hh, hl, v3h, v3l); hh = rh; hl = rl;
    mergeRound(hh, hl, v4h, v4l); hh = rh; hl = rl;
  } else {
    hh = P5H;
    hl = P5L;
  }
  add(hh, hl, Math.floor(len / 0x100000000) >>> 0, len >>> 0);
  hh = rh; hl = rl;
  while (p + 8 <= len) {
    round(0, 0, rd32(data, p + 4), rd32(data, p));
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 27);
    mul(rh, rl, P1H, P1L);
    add(rh, rl, P4H, P4L);
    hh = rh; hl = rl;
    p += 8;
  }
  if (p + 4 <= len) {
    mul(0, rd32(data, p), P1H, P1L);
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 23);
    mul(rh, rl, P2H, P2L);
    add(rh, rl, P3H, P3L);
    hh = rh; hl = rl;
    p += 4;
  }
  while (p < len) {
    mul(0, data[p], P5H, P5L);
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 11);
    mul(rh, rl, P1H, P1L);
    hh = rh; hl = rl;
    p++;
  }
  // avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hh = rh; hl = rl;
  const sl = ((hl >>> 29) | (hh << 3)) >>> 0;
  hh = (hh ^ (hh >>> 29)) >>> 0;
  hl = (hl ^ sl) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = rh; hl = rl;
  hl = (hl ^ hh) >>> 0;
  return [hh, hl];
}
