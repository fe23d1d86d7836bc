/**
 * Builds synthetic pstore/blk zones byte by byte from the kernel's struct layouts (struct
 * psz_buffer, struct psz_kmsg_header per ABI), written
 * independently of the decoder's own constants so a wrong constant there shows up here.
 */
export type Endian = 'le' | 'be';
export type Layout = 'lp64' | 'ilp32' | 'i386';

const SIG = { dmesg: 0x43474244, console: 0x43474246, ftrace: 0x43474247, pmsg: 0x43474243 } as const;

function dv(b: Uint8Array) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function putZoneHeader(region: Uint8Array, off: number, type: keyof typeof SIG, datalen: number, start: number, e: Endian) {
  const v = dv(region);
  v.setUint32(off, SIG[type], e === 'le');
  v.setInt32(off + 4, datalen, e === 'le');
  v.setInt32(off + 8, start, e === 'le');
}

export interface KmsgFields {
  sec: bigint;
  nsec: number;
  compressed: boolean;
  counter: number;
  reason: number;
  payload: Uint8Array;
  magic?: number;
}

/** Writes a whole kmsg zone as psz_kmsg_write_record() does (zeroed buffer, FLUSH_ALL). */
export function putKmsgZone(region: Uint8Array, off: number, zoneSize: number, f: KmsgFields, e: Endian, layout: Layout) {
  region.fill(0, off, off + zoneSize);
  const le = e === 'le';
  const v = dv(region);
  const hlen = layout === 'i386' ? 28 : 40;
  putZoneHeader(region, off, 'dmesg', hlen + f.payload.length, 0, e);
  const d = off + 12; // data[]
  v.setUint32(d + 0, f.magic ?? 0x4dfc3ae5, le);
  if (layout === 'i386') {
    v.setBigInt64(d + 4, f.sec, le);
    v.setUint32(d + 12, f.nsec, le);
    region[d + 16] = f.compressed ? 1 : 0;
    v.setUint32(d + 20, f.counter, le);
    v.setInt32(d + 24, f.reason, le);
  } else {
    v.setBigInt64(d + 8, f.sec, le);
    if (layout === 'lp64') v.setBigInt64(d + 16, BigInt(f.nsec), le);
    else v.setUint32(d + 16, f.nsec, le);
    region[d + 24] = f.compressed ? 1 : 0;
    v.setUint32(d + 28, f.counter, le);
    v.setInt32(d + 32, f.reason, le);
  }
  region.set(f.payload, d + hlen);
}

/**
 * Writes a circular zone's content as psz_record_write() leaves it after writing `stream`
 * (all bytes ever written, oldest first) into a buffer of zoneSize - 12 bytes.
 */
export function putCircularZone(region: Uint8Array, off: number, zoneSize: number, type: 'pmsg' | 'console' | 'ftrace', stream: Uint8Array, e: Endian) {
  const bs = zoneSize - 12;
  region.fill(0xff, off + 12, off + zoneSize);
  let start = 0;
  let full = false;
  for (let i = 0; i < stream.length; i++) {
    region[off + 12 + start] = stream[i];
    start++;
    if (start === bs) {
      start = 0;
      full = true;
    }
  }
  putZoneHeader(region, off, type, full ? bs : start, start, e);
}

/** Encodes ftrace records in the writing kernel's layout. */
export function ftraceRecords(recs: { ip: bigint; parent: bigint; ts: bigint }[], e: Endian, bits: 32 | 64): Uint8Array {
  const size = bits === 64 ? 24 : 16;
  const out = new Uint8Array(recs.length * size);
  const v = dv(out);
  const le = e === 'le';
  recs.forEach((r, i) => {
    const o = i * size;
    if (bits === 64) {
      v.setBigUint64(o, r.ip, le);
      v.setBigUint64(o + 8, r.parent, le);
      v.setBigUint64(o + 16, r.ts, le);
    } else {
      v.setUint32(o, Number(r.ip), le);
      v.setUint32(o + 4, Number(r.parent), le);
      v.setBigUint64(o + 8, r.ts, le);
    }
  });
  return out;
}
