// Deterministic PRNG and byte-level mutations for the fuzz targets (scripts/fuzz.mjs).

/** mulberry32: small seeded PRNG; `rand()` in [0, 1). */
export function rng(seed) {
  let s = seed | 0;
  const r = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  r.int = (n) => Math.floor(r() * n);
  r.pick = (a) => a[Math.floor(r() * a.length)];
  r.chance = (p) => r() < p;
  return r;
}

/** Mixes two 32-bit values into a seed (murmur3 finaliser). */
export function mix(a, b) {
  let h = (a ^ Math.imul(b | 0, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function strSeed(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export const INTERESTING8 = [0, 1, 2, 0x0a, 0x20, 0x30, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x1f, 0x8b, 0x3c, 0x3e];
/** 32-bit values at the edges of the formats' fields (zone header 12, kmsg header 28/40/52, sectors, 4 KiB, 64 KiB, sign bit). */
export const INTERESTING32 = [
  0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 16, 24, 27, 28, 29, 36, 39, 40, 41, 52, 53, 127, 128, 255, 256, 511, 512, 513, 1023, 1024, 4083, 4084, 4085, 4095, 4096, 4097, 8192, 16372,
  16384, 32768, 65523, 65524, 65535, 65536, 65537, 0x7ffffff, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff, 0x43474244, 0x43474246, 0x43474247, 0x43474243,
  0x4dfc3ae5,
];

function dv(b) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function setU32(b, off, v, le = true) {
  if (off < 0 || off + 4 > b.length) return;
  dv(b).setUint32(off, v >>> 0, le);
}

/**
 * Applies 1–`maxOps` random mutations to a copy of `src` and returns it (possibly shorter or
 * longer). `fields`: byte offsets of 32-bit header fields worth hitting with interesting values;
 * `donors`: other inputs to splice from; `hot`: [start, end) byte ranges most mutations go to.
 */
export function mutateBytes(src, r, { fields = [], donors = [], maxOps = 8, allowGrow = true, hot = [] } = {}) {
  let b = src.slice();
  const ops = 1 + r.int(maxOps);
  for (let k = 0; k < ops; k++) {
    if (b.length === 0) break;
    const op = r.int(12);
    let at = r.int(b.length);
    if (hot.length && r.chance(0.85)) {
      // most mutations land where the format's structures are (`hot`: [start, end) ranges)
      const [s0, e0] = r.pick(hot);
      const s1 = Math.min(s0, b.length - 1);
      at = s1 + r.int(Math.max(1, Math.min(e0, b.length) - s1));
    }
    switch (op) {
      case 0: // bit flip
        b[at] ^= 1 << r.int(8);
        break;
      case 1: // interesting byte
        b[at] = r.pick(INTERESTING8);
        break;
      case 2: // random byte
        b[at] = r.int(256);
        break;
      case 3: // 32-bit field to an interesting value (either byte order), at a header field when known
      case 4: {
        const off = fields.length && r.chance(0.8) ? r.pick(fields) : at;
        let v = r.pick(INTERESTING32);
        if (r.chance(0.2)) v = (v + r.int(9) - 4) >>> 0;
        setU32(b, off, v, r.chance(0.85));
        break;
      }
      case 5: // truncate
        b = b.subarray(0, r.int(b.length + 1)).slice();
        break;
      case 6: {
        // splice: copy a block from a donor (or itself) over a random place
        const d = donors.length && r.chance(0.6) ? r.pick(donors) : b;
        if (d.length === 0) break;
        const len = 1 + r.int(Math.min(4096, d.length));
        const from = r.int(d.length - len + 1);
        const piece = d.slice(from, from + len);
        b.set(piece.subarray(0, Math.max(0, Math.min(piece.length, b.length - at))), at);
        break;
      }
      case 7: {
        // fill a run with 0 / 0xff / a random byte
        const len = 1 + r.int(Math.min(8192, b.length - at));
        b.fill(r.pick([0, 0xff, r.int(256)]), at, at + len);
        break;
      }
      case 8: {
        // delete a run (shifts everything after it)
        const len = 1 + r.int(Math.min(256, b.length - at));
        const nb = new Uint8Array(b.length - len);
        nb.set(b.subarray(0, at));
        nb.set(b.subarray(at + len), at);
        b = nb;
        break;
      }
      case 9: {
        // insert a run (random or duplicated bytes)
        if (!allowGrow) break;
        const len = 1 + r.int(256);
        const ins = r.chance(0.5) ? b.slice(r.int(b.length), r.int(b.length) + len) : Uint8Array.from({ length: len }, () => r.int(256));
        const nb = new Uint8Array(b.length + ins.length);
        nb.set(b.subarray(0, at));
        nb.set(ins, at);
        nb.set(b.subarray(at), at + ins.length);
        b = nb;
        break;
      }
      case 10: {
        // burst of random bytes
        const len = 1 + r.int(64);
        for (let i = 0; i < len && at + i < b.length; i++) b[at + i] = r.int(256);
        break;
      }
      case 11: {
        // add/subtract a small delta to a 32-bit field
        const off = fields.length && r.chance(0.8) ? r.pick(fields) : at;
        if (off + 4 > b.length) break;
        const le = r.chance(0.85);
        const v = dv(b).getUint32(off, le);
        setU32(b, off, v + r.int(33) - 16, le);
        break;
      }
    }
  }
  return b;
}

/** Mutates a text: byte mutations on its UTF-8 bytes, decoded back (latin1 keeps every byte). */
export function mutateText(text, r, opts) {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.from(mutateBytes(bytes, r, opts)).toString('latin1');
}
