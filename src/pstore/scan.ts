/**
 * Finds zone signatures anywhere in a region, for geometry auto-detection: every 4-byte
 * aligned offset whose word is a zone signature (either byte order) with a header that is
 * not obviously garbage; kmsg zones must also carry the kmsg header magic.
 */
import { endianness } from 'node:os';
import type { Endian, ZoneType } from './abi.js';
import { MAX_REGION } from './layout.js';
import type { RegionSource } from './region-source.js';
import { PSTORE_KMSG_HEADER_MAGIC, PSZ_SIG, PSTORE_TYPE, ZONE_HEADER_SIZE } from './abi.js';

export interface FoundSignature {
  offset: number;
  type: ZoneType;
  endian: Endian;
  datalen: number;
  start: number;
}

const CHUNK = 4 << 20;
const HOST_LE = endianness() === 'LE';

function bswap(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

const TYPES = Object.entries(PSTORE_TYPE) as [ZoneType, number][];
const SIGS = new Map<number, { type: ZoneType; endian: Endian }>();
for (const [type, id] of TYPES) {
  const sig = (PSZ_SIG ^ id) >>> 0;
  // Keys are words as a host-order Uint32Array sees them.
  SIGS.set(sig, { type, endian: HOST_LE ? 'le' : 'be' });
  SIGS.set(bswap(sig), { type, endian: HOST_LE ? 'be' : 'le' });
}

/** Scans the first min(available, 128 MiB) bytes. `limit` caps the number of hits kept. */
export async function scanSignatures(src: RegionSource, limit = 4096): Promise<FoundSignature[]> {
  const found: FoundSignature[] = [];
  const end = Math.min(src.available, MAX_REGION);
  for (let base = 0; base < end && found.length < limit; base += CHUNK) {
    // Overlap by a header so signatures straddling chunk ends are seen.
    const want = Math.min(CHUNK + ZONE_HEADER_SIZE + 4, end - base);
    const bytes = await src.read(base, want);
    const words = Math.floor(bytes.length / 4);
    const w = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, words) : new Uint32Array(bytes.slice(0, words * 4).buffer);
    const scanWords = Math.min(words, CHUNK / 4);
    for (let i = 0; i < scanWords; i++) {
      const v = w[i];
      // Every signature is 0x4347424X ("?BGC" / "CGB?" on disk): reject other words cheaply.
      if ((v & 0xfffffff0) !== 0x43474240 && (v & 0xf0ffffff) !== 0x40424743) continue;
      const hit = SIGS.get(v);
      if (!hit || i + 3 > words) continue;
      const swap = (hit.endian === 'le') !== HOST_LE;
      const datalen = (swap ? bswap(w[i + 1]) : w[i + 1]) | 0;
      const start = (swap ? bswap(w[i + 2]) : w[i + 2]) | 0;
      if (datalen < 0 || start < 0) continue;
      if (hit.type === 'dmesg') {
        if (i + 4 > words) continue;
        if ((swap ? bswap(w[i + 3]) : w[i + 3]) !== PSTORE_KMSG_HEADER_MAGIC) continue;
      }
      found.push({ offset: base + i * 4, type: hit.type, endian: hit.endian, datalen, start });
      if (found.length >= limit) break;
    }
  }
  return found;
}
