/**
 * Reads a pstore/blk region back the way the kernel's pstore/zone recovery does (spec §5.4,
 * §5.5) and turns it into the records /sys/fs/pstore would show — plus what the kernel
 * silently drops: every zone's state, and the raw bytes of zones that fail validation.
 */
import type { Abi, Endian, KmsgHeader, KmsgLayoutName, ZoneType } from './abi.js';
import {
  KMSG_LAYOUTS,
  PSTORE_KMSG_HEADER_MAGIC,
  ZONE_HEADER_SIZE,
  kmsgReasonString,
  parseKmsgHeader,
  parseZoneHeader,
  scoreKmsgLayout,
  signatureEndian,
  zoneSignature,
} from './abi.js';
import type { CodecName } from './codecs/index.js';
import { CODEC_NAMES, detectAndDecompress } from './codecs/index.js';
import type { FtraceCpuInIp, FtraceFormat, SymbolFormatter } from './ftrace.js';
import { combineFtraceZones, renderFtrace, scoreFtraceFormat } from './ftrace.js';
import type { Layout, Zone } from './layout.js';
import type { RegionSource } from './region-source.js';

export type RecordType = 'dmesg' | 'pmsg' | 'console' | 'ftrace';

export type ZoneState =
  /** No signature of this zone type: never written, zeroed or formatted. */
  | 'empty'
  /** Valid header with datalen 0: erased (unlinked) or never filled. */
  | 'erased'
  /** A record the kernel shows. */
  | 'valid'
  /** datalen or start beyond the zone: the kernel ignores the zone. */
  | 'overtop'
  /** kmsg header magic wrong: the kernel ignores the zone. */
  | 'invalid'
  /** datalen < start, or a kmsg datalen shorter than its header: the kernel misreads it. */
  | 'corrupt'
  /** The zone lies (partly) past the end of the image. */
  | 'truncated';

export interface ZoneReport {
  type: ZoneType;
  index: number;
  offset: number;
  size: number;
  state: ZoneState;
  sig: number;
  datalen: number;
  start: number;
  /** Why the zone is not a plain valid/empty one. */
  problem?: string;
  /** kmsg header fields, when the magic matched. */
  kmsg?: { reason: number; counter: number; tvSec: string; tvNsec: number; compressed: boolean };
  /** Raw bytes of the zone kept for zones that failed validation (file name chosen by the writer). */
  raw?: Uint8Array;
}

export interface DecodedRecord {
  type: RecordType;
  /** Record id: the kmsg zone index for dmesg, 0 otherwise. */
  id: number;
  /** File name exactly as /sys/fs/pstore names it. */
  file: string;
  content: Uint8Array;
  /** Zones the record came from. */
  zones: { index: number; offset: number; size: number }[];
  reason?: number;
  reasonName?: string;
  counter?: number;
  /** CLOCK_REALTIME of the dump, from the kmsg header. */
  time?: { sec: string; nsec: number; iso: string | null };
  compressed?: boolean;
  algorithm?: CodecName | null;
  /** Bytes stored in the zone(s) for this record (compressed size for compressed dmesg). */
  storedBytes: number;
  warnings: string[];
  /** False when the kernel would not show this record (it would stop or fail earlier). */
  kernelVisible: boolean;
}

export interface DecodeOptions {
  /** Byte order / kmsg layout; detected per region when omitted. */
  endian?: Endian;
  layout?: KmsgLayoutName;
  /** PSTORE_CPU_IN_IP of the writing kernel; detected from the data when omitted. */
  ftraceCpuInIp?: FtraceCpuInIp;
  /** Try this decompressor first (pstore.compress= of the writing kernel). */
  compressHint?: string;
  symbols?: SymbolFormatter;
  /** Upper bound for one decompressed dmesg record. */
  maxDecompressed?: number;
}

export interface DecodeResult {
  abi: Abi & { endianSource: 'given' | 'detected' | 'default'; layoutSource: 'given' | 'detected' | 'default' };
  ftraceFormat: FtraceFormat | null;
  records: DecodedRecord[];
  zones: ZoneReport[];
  warnings: string[];
  /** Set when the kernel's own recovery would fail and show no records at all. */
  kernelRecoveryFails?: string;
  /** Counters the kernel recovers at mount (max counter per reason over valid headers). */
  counters: { oops: number; panic: number };
  /** The kmsg zone the kernel would write the next dump into. */
  nextKmsgZone: number;
}

const KMSG_HEAD_READ = ZONE_HEADER_SIZE + 40;

/** Maps a pstore.compress= value to the decoder that reads it (lz4hc writes plain LZ4 blocks). */
function codecForCompressParam(v: string | undefined): CodecName | undefined {
  if (!v) return undefined;
  const name = v === 'lz4hc' ? 'lz4' : v;
  return (CODEC_NAMES as readonly string[]).includes(name) ? (name as CodecName) : undefined;
}

function isoTime(sec: bigint, nsec: number): string | null {
  if (sec <= 0n || sec > 253402300799n) return null;
  return new Date(Number(sec) * 1000 + Math.floor(nsec / 1e6)).toISOString();
}

function allBytes(b: Uint8Array, v: number): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== v) return false;
  return true;
}

/** Decodes every zone of `layout` from `src`. Never throws on bad data; read errors propagate. */
export async function decodeRegion(src: RegionSource, layout: Layout, opts: DecodeOptions = {}): Promise<DecodeResult> {
  const warnings: string[] = [];
  const heads = await Promise.all(
    layout.zones.map((z) => src.read(z.offset, Math.min(z.size, z.type === 'dmesg' ? KMSG_HEAD_READ : ZONE_HEADER_SIZE))),
  );

  // Byte order: whichever makes more zone headers carry their own type's signature.
  let le = 0;
  let be = 0;
  layout.zones.forEach((z, i) => {
    if (heads[i].length < 4) return;
    const e = signatureEndian(heads[i], 0, z.type);
    if (e === 'le') le++;
    else if (e === 'be') be++;
  });
  const endianSource = opts.endian ? 'given' : le + be > 0 ? 'detected' : 'default';
  const endian: Endian = opts.endian ?? (be > le ? 'be' : 'le');
  if (!opts.endian && le > 0 && be > 0) warnings.push(`zone signatures in both byte orders (${le} little-endian, ${be} big-endian); using ${endian}`);

  // kmsg header layout: the one that makes the valid headers look as the kernel writes them.
  let layoutName: KmsgLayoutName = opts.layout ?? 'lp64';
  let layoutSource: 'given' | 'detected' | 'default' = opts.layout ? 'given' : 'default';
  // Little-endian lp64 and ilp32 kmsg headers are byte-identical; only ftrace records tell them apart.
  let wordSizeOpen = !opts.layout;
  if (!opts.layout) {
    const scores: Record<KmsgLayoutName, number> = { lp64: 0, ilp32: 0, i386: 0 };
    layout.zones.forEach((z, i) => {
      if (z.type !== 'dmesg' || heads[i].length < KMSG_HEAD_READ) return;
      if (signatureEndian(heads[i], 0, 'dmesg') !== endian) return;
      for (const name of ['lp64', 'ilp32', 'i386'] as const) scores[name] += scoreKmsgLayout(heads[i], { endian, layout: name });
    });
    const best = (['lp64', 'ilp32', 'i386'] as const).reduce((a, b) => (scores[b] > scores[a] ? b : a));
    if (scores[best] > 0) {
      layoutName = best;
      layoutSource = 'detected';
      wordSizeOpen = best !== 'i386' && scores.lp64 === scores.ilp32;
    }
  }
  const L = KMSG_LAYOUTS[layoutName];

  const zones: ZoneReport[] = [];
  const records: DecodedRecord[] = [];
  let kernelRecoveryFails: string | undefined;
  const counters = { oops: 0, panic: 0 };
  // psz_kmsg_recover_meta(): starts from time 0 and takes a zone when tv_sec >= the newest so far.
  let newestSec = 0n;
  let nextKmsgZone = 0;

  const report = (z: Zone, head: Uint8Array, state: ZoneState, problem?: string): ZoneReport => {
    const h = head.length >= ZONE_HEADER_SIZE ? parseZoneHeader(head, endian) : { sig: 0, datalen: 0, start: 0 };
    const r: ZoneReport = { type: z.type, index: z.index, offset: z.offset, size: z.size, state, sig: h.sig, datalen: h.datalen, start: h.start };
    if (problem) r.problem = problem;
    zones.push(r);
    return r;
  };
  const keepRaw = async (r: ZoneReport) => {
    r.raw = await src.read(r.offset, r.size);
  };

  // ---- kmsg zones (recovered first, listed first) ----
  for (let i = 0; i < layout.zones.length; i++) {
    const z = layout.zones[i];
    if (z.type !== 'dmesg') continue;
    const head = heads[i];
    const bufferSize = z.size - ZONE_HEADER_SIZE;
    if (head.length < Math.min(KMSG_HEAD_READ, z.size)) {
      const r = report(z, head, 'truncated', `zone at 0x${z.offset.toString(16)} is past the end of the image (${src.available} of ${src.size} bytes present)`);
      kernelRecoveryFails ??= `a read of kmsg zone ${z.index} would fail`;
      if (head.length > 0 && !allBytes(head, 0)) await keepRaw(r);
      continue;
    }
    const zh = parseZoneHeader(head, endian);
    if (zh.sig !== zoneSignature('dmesg')) {
      report(z, head, 'empty');
      continue;
    }
    if (zh.datalen < 0 || zh.datalen > bufferSize) {
      const r = report(z, head, 'overtop', `datalen ${zh.datalen} exceeds the zone's ${bufferSize}-byte buffer; the kernel ignores this zone`);
      await keepRaw(r);
      warnings.push(`dmesg zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
      continue;
    }
    const hdr: KmsgHeader = parseKmsgHeader(head, { endian, layout: layoutName });
    if (hdr.magic !== PSTORE_KMSG_HEADER_MAGIC) {
      const r = report(z, head, 'invalid', `kmsg header magic 0x${hdr.magic.toString(16)} is not 0x${PSTORE_KMSG_HEADER_MAGIC.toString(16)}; the kernel ignores this zone`);
      await keepRaw(r);
      warnings.push(`dmesg zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
      continue;
    }
    // Valid header: counts for the write position and the oops/panic counters, erased or not.
    if (hdr.tvSec >= newestSec) {
      newestSec = hdr.tvSec;
      nextKmsgZone = (z.index + 1) % layout.kmsgCount;
    }
    if (hdr.reason === 2) counters.oops = Math.max(counters.oops, hdr.counter);
    else if (hdr.reason === 1) counters.panic = Math.max(counters.panic, hdr.counter);
    const kmsgInfo = { reason: hdr.reason, counter: hdr.counter, tvSec: hdr.tvSec.toString(), tvNsec: hdr.tvNsec, compressed: hdr.compressed };
    if (zh.datalen === 0) {
      report(z, head, 'erased').kmsg = kmsgInfo;
      continue;
    }
    const full = await src.read(z.offset, z.size);
    const rep = report(z, head, 'valid');
    rep.kmsg = kmsgInfo;
    const recWarnings: string[] = [];
    if (full.length < z.size) {
      rep.state = 'truncated';
      rep.problem = `zone is cut off by the end of the image (${full.length} of ${z.size} bytes present)`;
      kernelRecoveryFails ??= `a read of kmsg zone ${z.index} would fail`;
      recWarnings.push(rep.problem);
      rep.raw = full;
    }
    let payloadLen = zh.datalen - L.size;
    if (payloadLen < 0) {
      rep.state = 'corrupt';
      rep.problem = `datalen ${zh.datalen} is shorter than the ${L.size}-byte kmsg header`;
      recWarnings.push(rep.problem);
      rep.raw = full;
      payloadLen = 0;
    }
    const payload = full.subarray(ZONE_HEADER_SIZE + L.size, Math.min(full.length, ZONE_HEADER_SIZE + L.size + payloadLen));
    const base: Omit<DecodedRecord, 'file' | 'content' | 'algorithm'> = {
      type: 'dmesg',
      id: z.index,
      zones: [{ index: z.index, offset: z.offset, size: z.size }],
      reason: hdr.reason,
      reasonName: kmsgReasonString(hdr.reason),
      counter: hdr.counter,
      time: { sec: hdr.tvSec.toString(), nsec: hdr.tvNsec, iso: isoTime(hdr.tvSec, hdr.tvNsec) },
      compressed: hdr.compressed,
      storedBytes: payload.length,
      warnings: recWarnings,
      kernelVisible: true,
    };
    if (!hdr.compressed) {
      // psz_kmsg_read(): "%s: Total %d times\n" + payload (counter printed as int).
      const head = Buffer.from(`${kmsgReasonString(hdr.reason)}: Total ${hdr.counter | 0} times\n`, 'latin1');
      const content = new Uint8Array(head.length + payload.length);
      content.set(head);
      content.set(payload, head.length);
      records.push({ ...base, file: `dmesg-pstore_blk-${z.index}`, content, algorithm: null });
      continue;
    }
    if (payload.length === 0) recWarnings.push('compressed record with an empty payload: the kernel stops listing records here');
    const maxOutput = opts.maxDecompressed ?? Math.max(4 << 20, 8 * bufferSize);
    const hint = codecForCompressParam(opts.compressHint);
    let res = hint ? detectAndDecompress(payload, { maxOutput, only: [hint] }) : undefined;
    if (!res || !res.ok) res = detectAndDecompress(payload, { maxOutput });
    if (res.ok) {
      records.push({ ...base, file: `dmesg-pstore_blk-${z.index}`, content: res.data, algorithm: res.algorithm });
    } else {
      const why = res.attempts.map((a) => `${a.algorithm}: ${a.error}`).join('; ');
      recWarnings.push(`compressed payload could not be decompressed (${why}); kept as stored`);
      rep.problem ??= 'compressed payload could not be decompressed';
      records.push({ ...base, file: `dmesg-pstore_blk-${z.index}.enc.z`, content: payload, algorithm: null });
    }
  }

  // ---- pmsg, console, ftrace (circular zones) ----
  const linear = new Map<Zone, Uint8Array>();
  for (const type of ['pmsg', 'console', 'ftrace'] as const) {
    for (let i = 0; i < layout.zones.length; i++) {
      const z = layout.zones[i];
      if (z.type !== type) continue;
      const head = heads[i];
      const bufferSize = z.size - ZONE_HEADER_SIZE;
      if (head.length < ZONE_HEADER_SIZE) {
        const r = report(z, head, 'truncated', `zone at 0x${z.offset.toString(16)} is past the end of the image`);
        kernelRecoveryFails ??= `a read of the ${type} zone would fail`;
        if (head.length > 0) await keepRaw(r);
        continue;
      }
      const zh = parseZoneHeader(head, endian);
      if (zh.sig !== zoneSignature(type)) {
        report(z, head, 'empty');
        continue;
      }
      if (zh.datalen < 0 || zh.start < 0 || zh.datalen > bufferSize || zh.start > bufferSize) {
        const r = report(z, head, 'overtop', `datalen ${zh.datalen} / start ${zh.start} exceed the zone's ${bufferSize}-byte buffer; the kernel ignores this zone`);
        await keepRaw(r);
        warnings.push(`${type} zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
        continue;
      }
      if (zh.datalen === 0) {
        report(z, head, 'erased');
        continue;
      }
      const data = await src.read(z.offset + ZONE_HEADER_SIZE, zh.datalen);
      const r = report(z, head, 'valid');
      let lin: Uint8Array;
      if (data.length < zh.datalen) {
        r.state = 'truncated';
        r.problem = `zone is cut off by the end of the image (${data.length} of ${zh.datalen} data bytes present)`;
        kernelRecoveryFails ??= `a read of the ${type} zone would fail`;
        r.raw = await src.read(z.offset, z.size);
        lin = data;
      } else if (zh.datalen < zh.start) {
        r.state = 'corrupt';
        r.problem = `datalen ${zh.datalen} < start ${zh.start}: the kernel's recovery fails on this header and shows no records at all`;
        kernelRecoveryFails ??= `${type} zone header has datalen ${zh.datalen} < start ${zh.start}`;
        r.raw = await src.read(z.offset, z.size);
        // Best recovery: the bytes written before the write position, oldest first.
        lin = (await src.read(z.offset + ZONE_HEADER_SIZE, zh.start)).slice();
      } else {
        // data[start .. datalen) ‖ data[0 .. start)
        lin = new Uint8Array(zh.datalen);
        lin.set(data.subarray(zh.start, zh.datalen), 0);
        lin.set(data.subarray(0, zh.start), zh.datalen - zh.start);
      }
      if (r.problem) warnings.push(`${type} zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
      linear.set(z, lin);
    }
  }

  // ftrace: detect the record format, merge all zones into one record.
  let ftraceFormat: FtraceFormat | null = null;
  const ftraceZones = layout.zones.filter((z) => z.type === 'ftrace' && linear.has(z));
  if (ftraceZones.length > 0) {
    const candidates: FtraceFormat[] = [];
    const layouts: KmsgLayoutName[] = wordSizeOpen ? ['lp64', 'ilp32'] : [layoutName];
    for (const lay of layouts) {
      const masks: FtraceCpuInIp[] = opts.ftraceCpuInIp !== undefined ? [opts.ftraceCpuInIp] : lay === 'lp64' ? [0] : [0, 3, 1];
      for (const cpuInIp of masks) candidates.push({ endian, layout: lay, cpuInIp });
    }
    const score = (f: FtraceFormat) => ftraceZones.reduce((a, z) => a + scoreFtraceFormat(linear.get(z)!, z.index, f), 0);
    ftraceFormat = candidates.reduce((a, b) => (score(b) > score(a) ? b : a));
    if (wordSizeOpen && score(ftraceFormat) > 0) {
      layoutName = ftraceFormat.layout;
      layoutSource = 'detected';
    }
    const merged = combineFtraceZones(ftraceZones.map((z) => linear.get(z)!), ftraceFormat);
    if (merged.length > 0) {
      const text = renderFtrace(merged, ftraceFormat, opts.symbols);
      records.push({
        type: 'ftrace',
        id: 0,
        file: 'ftrace-pstore_blk-0',
        content: Buffer.from(text, 'latin1'),
        zones: ftraceZones.map((z) => ({ index: z.index, offset: z.offset, size: z.size })),
        storedBytes: merged.length,
        warnings: ftraceZones.flatMap((z) => zones.find((r) => r.type === 'ftrace' && r.index === z.index)?.problem ?? []),
        kernelVisible: true,
      });
    }
  }
  for (const type of ['pmsg', 'console'] as const) {
    const z = layout.zones.find((x) => x.type === type && linear.has(x));
    if (!z) continue;
    const lin = linear.get(z)!;
    const rep = zones.find((r) => r.type === type)!;
    records.push({
      type,
      id: 0,
      file: `${type}-pstore_blk-0`,
      content: lin,
      zones: [{ index: 0, offset: z.offset, size: z.size }],
      storedBytes: lin.length,
      warnings: rep.problem ? [rep.problem] : [],
      kernelVisible: true,
    });
  }

  // Which records the kernel would really list: none if recovery fails; a zero-length
  // record stops pstore_get_backend_records(), hiding everything after it.
  if (kernelRecoveryFails) {
    warnings.push(`the kernel's recovery would fail (${kernelRecoveryFails}): /sys/fs/pstore would show no records; everything recoverable is extracted anyway`);
    for (const r of records) r.kernelVisible = false;
  } else {
    let stopped = false;
    for (const r of records) {
      if (stopped) r.kernelVisible = false;
      else if (r.content.length === 0) {
        stopped = true;
        r.kernelVisible = false;
      }
    }
  }
  zones.sort((a, b) => a.offset - b.offset);
  return {
    abi: { endian, layout: layoutName, endianSource, layoutSource },
    ftraceFormat,
    records,
    zones,
    warnings,
    kernelRecoveryFails,
    counters,
    nextKmsgZone,
  };
}
