/**
 * pstore ftrace records: the kernel's merge of per-CPU zones (pstore_ftrace_combine_log)
 * and its text rendering (pstore_ftrace_seq_show in fs/pstore/inode.c).
 */
import type { Endian, KmsgLayoutName } from './abi.js';
import { ftraceRecordSize, readU32, readU64 } from './abi.js';

/**
 * Where the writing kernel put the CPU number: `0` = in the low 8 bits of `ts`
 * (TS_CPU_SHIFT, all 64-bit and most kernels); `1` or `3` = PSTORE_CPU_IN_IP mask in the low
 * bits of `ip` (32-bit ARM kernels with NR_CPUS <= 2 with Thumb / <= 4).
 */
export type FtraceCpuInIp = 0 | 1 | 3;

export interface FtraceFormat {
  endian: Endian;
  layout: KmsgLayoutName;
  cpuInIp: FtraceCpuInIp;
}

export interface FtraceRecord {
  ip: bigint;
  parentIp: bigint;
  ts: bigint;
}

function recordAt(buf: Uint8Array, off: number, f: FtraceFormat): FtraceRecord {
  if (f.layout === 'lp64') {
    return { ip: readU64(buf, off, f.endian), parentIp: readU64(buf, off + 8, f.endian), ts: readU64(buf, off + 16, f.endian) };
  }
  return { ip: BigInt(readU32(buf, off, f.endian)), parentIp: BigInt(readU32(buf, off + 4, f.endian)), ts: readU64(buf, off + 8, f.endian) };
}

/** pstore_ftrace_read_timestamp() */
export function ftraceTimestamp(rec: FtraceRecord, f: FtraceFormat): bigint {
  return f.cpuInIp ? rec.ts : rec.ts >> 8n;
}

/** pstore_ftrace_decode_cpu() */
export function ftraceCpu(rec: FtraceRecord, f: FtraceFormat): number {
  return f.cpuInIp ? Number(rec.ip & BigInt(f.cpuInIp)) : Number(rec.ts & 0xffn);
}

/**
 * Merges linearised zone contents (in zone order) exactly as the kernel does: each zone's
 * leading `len % recsize` bytes are dropped, then a two-way merge by timestamp where the zone
 * being added wins ties. Returns the merged binary log.
 */
export function combineFtraceZones(zones: Uint8Array[], f: FtraceFormat): Uint8Array {
  const rs = ftraceRecordSize(f.layout);
  let dest = new Uint8Array(0);
  for (const src of zones) {
    const srcOff = src.length % rs;
    const s = src.subarray(srcOff);
    const merged = new Uint8Array(dest.length + s.length);
    let di = 0;
    let si = 0;
    let mi = 0;
    while (di < dest.length && si < s.length) {
      const dt = ftraceTimestamp(recordAt(dest, di, f), f);
      const st = ftraceTimestamp(recordAt(s, si, f), f);
      if (dt < st) {
        merged.set(dest.subarray(di, di + rs), mi);
        di += rs;
      } else {
        merged.set(s.subarray(si, si + rs), mi);
        si += rs;
      }
      mi += rs;
    }
    merged.set(dest.subarray(di), mi);
    mi += dest.length - di;
    merged.set(s.subarray(si), mi);
    dest = merged;
  }
  return dest;
}

export interface SymbolFormatter {
  /** `%ps`: symbol name (with ` [module]`), or `0x…` when unresolved. */
  ps(addr: bigint): string;
  /** `%pS`: `name+0xoff/0xsize` (with ` [module]`), or `0x…` when unresolved. */
  pS(addr: bigint): string;
}

/** The kernel's rendering of an unresolved address: `0x%lx`. */
export const rawSymbols: SymbolFormatter = {
  ps: (a) => `0x${a.toString(16)}`,
  pS: (a) => `0x${a.toString(16)}`,
};

function hex08(v: bigint): string {
  return v.toString(16).padStart(8, '0');
}

/** Renders a merged ftrace log as the text of /sys/fs/pstore/ftrace-pstore_blk-0. */
export function renderFtrace(merged: Uint8Array, f: FtraceFormat, symbols: SymbolFormatter = rawSymbols): string {
  const rs = ftraceRecordSize(f.layout);
  const lines: string[] = [];
  for (let off = merged.length % rs; off + rs <= merged.length; off += rs) {
    const r = recordAt(merged, off, f);
    lines.push(`CPU:${ftraceCpu(r, f)} ts:${ftraceTimestamp(r, f)} ${hex08(r.ip)}  ${hex08(r.parentIp)}  ${symbols.ps(r.ip)} <- ${symbols.pS(r.parentIp)}\n`);
  }
  return lines.join('');
}

/**
 * Scores how well a record format explains one linearised zone written by CPU `zoneIndex`:
 * records of one CPU carry increasing stamps and that CPU's number. Returns the fraction of
 * records (0..1) consistent with the format.
 */
export function scoreFtraceFormat(zone: Uint8Array, zoneIndex: number, f: FtraceFormat): number {
  const rs = ftraceRecordSize(f.layout);
  const start = zone.length % rs;
  const n = Math.floor((zone.length - start) / rs);
  if (n === 0) return 0;
  let good = 0;
  let prev = -1n;
  const wordMax = f.layout === 'lp64' ? 1n << 64n : 1n << 32n;
  for (let i = 0; i < n; i++) {
    const r = recordAt(zone, start + i * rs, f);
    const t = ftraceTimestamp(r, f);
    let ok = ftraceCpu(r, f) === zoneIndex && t > prev && r.ip < wordMax && r.ip !== 0n && r.parentIp !== 0n;
    // 64-bit kernel text addresses share their upper half with the caller's.
    if (ok && f.layout === 'lp64') ok = r.ip >> 32n === r.parentIp >> 32n;
    if (ok) good++;
    prev = t;
  }
  return good / n;
}
