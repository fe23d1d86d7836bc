/**
 * Reads a pstore/blk region back the way the kernel's pstore/zone recovery does
 * (psz_recover_zones and psz_kmsg_read/psz_record_read in fs/pstore/zone.c) and turns it into the records /sys/fs/pstore would show — plus what the kernel
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
import { KmsgDecompressor, kmsgMaxOutput } from './kmsg-decompressor.js';
import type { FtraceCpuInIp, FtraceFormat, SymbolFormatter } from './ftrace.js';
import { combineFtraceZones, renderFtrace, scoreFtraceFormat } from './ftrace.js';
import type { ReadingKernel } from './kernel-version.js';
import { kernelCannotDecompress } from './kernel-version.js';
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
  /**
   * Set when the reading kernel (DecodeOptions.readingKernel) would list this compressed record
   * as `.enc.z` although it decodes: `file` and `content` are then the kernel's (stored bytes),
   * `decoded` the text and `encodedBecause` why the kernel could not decompress it.
   */
  decoded?: Uint8Array;
  encodedBecause?: string;
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
  /** The kernel that will read the card back; records it could not decompress are named `.enc.z`. */
  readingKernel?: ReadingKernel;
  /**
   * Decompresses the dmesg records (and keeps what it decoded): one shared with an earlier pass
   * over the same region, or with the decoding done while the region was read, decodes nothing twice.
   */
  decompressor?: KmsgDecompressor;
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
  const heads = await readZoneHeads(src, layout);
  const abi = detectAbi(layout, heads, opts, warnings);
  const rc: Recovery = { src, layout, heads, endian: abi.endian, zones: [], records: [], warnings, counters: { oops: 0, panic: 0 }, newestSec: 0n, nextKmsgZone: 0 };
  await recoverKmsgZones(rc, abi.layout, { ...opts, decompressor: opts.decompressor ?? new KmsgDecompressor(opts.compressHint) });
  const linear = await recoverCircularZones(rc);
  const ftraceFormat = recoverFtrace(rc, linear, abi, opts);
  readCircularRecords(rc, linear);
  applyKernelVisibility(rc);
  rc.zones.sort((a, b) => a.offset - b.offset);
  return {
    abi: { endian: abi.endian, layout: abi.layout, endianSource: abi.endianSource, layoutSource: abi.layoutSource },
    ftraceFormat,
    records: rc.records,
    zones: rc.zones,
    warnings,
    kernelRecoveryFails: rc.kernelRecoveryFails,
    counters: rc.counters,
    nextKmsgZone: rc.nextKmsgZone,
  };
}

/** What the recovery of one region has found so far (the kernel keeps the same in `struct psz_context`). */
interface Recovery {
  src: RegionSource;
  layout: Layout;
  /** First bytes of every zone, in layout order: the zone header (plus the kmsg header for kmsg zones). */
  heads: Uint8Array[];
  endian: Endian;
  zones: ZoneReport[];
  records: DecodedRecord[];
  warnings: string[];
  /** Set by the first failure that makes the kernel's whole recovery fail. */
  kernelRecoveryFails?: string;
  /** `oops_counter` / `panic_counter`. */
  counters: { oops: number; panic: number };
  /** psz_kmsg_recover_meta(): starts from time 0 and takes a zone when tv_sec >= the newest so far. */
  newestSec: bigint;
  /** `kmsg_write_cnt`. */
  nextKmsgZone: number;
}

/** The byte order and kmsg header layout the region is read with, and where each came from. */
interface DetectedAbi {
  endian: Endian;
  layout: KmsgLayoutName;
  endianSource: 'given' | 'detected' | 'default';
  layoutSource: 'given' | 'detected' | 'default';
  /** Little-endian lp64 and ilp32 kmsg headers are byte-identical; only ftrace records tell them apart. */
  wordSizeOpen: boolean;
}

/**
 * The first bytes of every zone, as psz_kmsg_recover_meta() (zone header + kmsg header) and
 * psz_recover_zone() (zone header) read them.
 */
function readZoneHeads(src: RegionSource, layout: Layout): Promise<Uint8Array[]> {
  return Promise.all(layout.zones.map((z) => src.read(z.offset, Math.min(z.size, z.type === 'dmesg' ? KMSG_HEAD_READ : ZONE_HEADER_SIZE))));
}

/**
 * The writing kernel's ABI. The kernel needs no such step (it reads its own native structs);
 * offline it is whatever makes the zone headers and kmsg headers look as the kernel writes them.
 */
function detectAbi(layout: Layout, heads: Uint8Array[], opts: DecodeOptions, warnings: string[]): DetectedAbi {
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
  const abi: DetectedAbi = { endian, layout: opts.layout ?? 'lp64', endianSource, layoutSource: opts.layout ? 'given' : 'default', wordSizeOpen: !opts.layout };
  if (!opts.layout) detectKmsgLayout(layout, heads, abi);
  return abi;
}

/** kmsg header layout: the one that makes the valid headers look as the kernel writes them. */
function detectKmsgLayout(layout: Layout, heads: Uint8Array[], abi: DetectedAbi): void {
  const endian = abi.endian;
  const scores: Record<KmsgLayoutName, number> = { lp64: 0, ilp32: 0, i386: 0 };
  layout.zones.forEach((z, i) => {
    if (z.type !== 'dmesg' || heads[i].length < KMSG_HEAD_READ) return;
    if (signatureEndian(heads[i], 0, 'dmesg') !== endian) return;
    for (const name of ['lp64', 'ilp32', 'i386'] as const) scores[name] += scoreKmsgLayout(heads[i], { endian, layout: name });
  });
  const best = (['lp64', 'ilp32', 'i386'] as const).reduce((a, b) => (scores[b] > scores[a] ? b : a));
  if (scores[best] > 0) {
    abi.layout = best;
    abi.layoutSource = 'detected';
    abi.wordSizeOpen = best !== 'i386' && scores.lp64 === scores.ilp32;
  }
}

/** Records the state of zone `z` (header fields as read from `head`). */
function report(rc: Recovery, z: Zone, head: Uint8Array, state: ZoneState, problem?: string): ZoneReport {
  const h = head.length >= ZONE_HEADER_SIZE ? parseZoneHeader(head, rc.endian) : { sig: 0, datalen: 0, start: 0 };
  const r: ZoneReport = { type: z.type, index: z.index, offset: z.offset, size: z.size, state, sig: h.sig, datalen: h.datalen, start: h.start };
  if (problem) r.problem = problem;
  rc.zones.push(r);
  return r;
}

/** Keeps the whole zone's bytes with a zone that failed validation. */
async function keepRaw(rc: Recovery, r: ZoneReport): Promise<void> {
  r.raw = await rc.src.read(r.offset, r.size);
}

// ---- kmsg zones ---------------------------------------------------------------------------------

/**
 * psz_kmsg_recover(): psz_kmsg_recover_meta() over every kmsg zone, then psz_kmsg_recover_data()
 * and, at read time, psz_kmsg_read() for the zones that hold a dump. kmsg zones are recovered
 * first and listed first.
 */
async function recoverKmsgZones(rc: Recovery, layoutName: KmsgLayoutName, opts: KmsgDecodeOptions): Promise<void> {
  for (let i = 0; i < rc.layout.zones.length; i++) {
    const z = rc.layout.zones[i];
    if (z.type !== 'dmesg') continue;
    const meta = await recoverKmsgMeta(rc, z, rc.heads[i], layoutName);
    if (meta) await recoverKmsgRecord(rc, z, meta, layoutName, opts);
  }
}

/** A kmsg zone's headers as psz_kmsg_recover_meta() accepts them. */
interface KmsgMeta {
  head: Uint8Array;
  datalen: number;
  hdr: KmsgHeader;
}

/**
 * psz_kmsg_recover_meta() for one zone: signature, datalen within the buffer, kmsg magic; a valid
 * header counts for the write position (`kmsg_write_cnt`) and the oops/panic counters, erased or
 * not. Returns the headers of a zone that holds a dump, null otherwise (its state is reported).
 */
async function recoverKmsgMeta(rc: Recovery, z: Zone, head: Uint8Array, layoutName: KmsgLayoutName): Promise<KmsgMeta | null> {
  const bufferSize = z.size - ZONE_HEADER_SIZE;
  if (head.length < Math.min(KMSG_HEAD_READ, z.size)) {
    const r = report(rc, z, head, 'truncated', `zone at 0x${z.offset.toString(16)} is past the end of the image (${rc.src.available} of ${rc.src.size} bytes present)`);
    rc.kernelRecoveryFails ??= `a read of kmsg zone ${z.index} would fail`;
    if (head.length > 0 && !allBytes(head, 0)) await keepRaw(rc, r);
    return null;
  }
  const zh = parseZoneHeader(head, rc.endian);
  if (zh.sig !== zoneSignature('dmesg')) {
    report(rc, z, head, 'empty');
    return null;
  }
  if (zh.datalen < 0 || zh.datalen > bufferSize) {
    const r = report(rc, z, head, 'overtop', `datalen ${zh.datalen} exceeds the zone's ${bufferSize}-byte buffer; the kernel ignores this zone`);
    await keepRaw(rc, r);
    rc.warnings.push(`dmesg zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
    return null;
  }
  const hdr: KmsgHeader = parseKmsgHeader(head, { endian: rc.endian, layout: layoutName });
  if (hdr.magic !== PSTORE_KMSG_HEADER_MAGIC) {
    const r = report(rc, z, head, 'invalid', `kmsg header magic 0x${hdr.magic.toString(16)} is not 0x${PSTORE_KMSG_HEADER_MAGIC.toString(16)}; the kernel ignores this zone`);
    await keepRaw(rc, r);
    rc.warnings.push(`dmesg zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
    return null;
  }
  if (hdr.tvSec >= rc.newestSec) {
    rc.newestSec = hdr.tvSec;
    rc.nextKmsgZone = (z.index + 1) % rc.layout.kmsgCount;
  }
  if (hdr.reason === 2) rc.counters.oops = Math.max(rc.counters.oops, hdr.counter);
  else if (hdr.reason === 1) rc.counters.panic = Math.max(rc.counters.panic, hdr.counter);
  if (zh.datalen === 0) {
    report(rc, z, head, 'erased').kmsg = kmsgInfo(hdr);
    return null;
  }
  return { head, datalen: zh.datalen, hdr };
}

function kmsgInfo(hdr: KmsgHeader): NonNullable<ZoneReport['kmsg']> {
  return { reason: hdr.reason, counter: hdr.counter, tvSec: hdr.tvSec.toString(), tvNsec: hdr.tvNsec, compressed: hdr.compressed };
}

/**
 * psz_kmsg_recover_data() + psz_kmsg_read() for a zone holding a dump: the whole zone is read,
 * the payload sits after the kmsg header, `datalen - sizeof(psz_kmsg_header)` bytes long (the
 * kernel does not guard a datalen shorter than the header; this does).
 */
async function recoverKmsgRecord(rc: Recovery, z: Zone, meta: KmsgMeta, layoutName: KmsgLayoutName, opts: KmsgDecodeOptions): Promise<void> {
  const { hdr, datalen } = meta;
  const L = KMSG_LAYOUTS[layoutName];
  const full = await rc.src.read(z.offset, z.size);
  const rep = report(rc, z, meta.head, 'valid');
  rep.kmsg = kmsgInfo(hdr);
  const recWarnings: string[] = [];
  if (full.length < z.size) {
    rep.state = 'truncated';
    rep.problem = `zone is cut off by the end of the image (${full.length} of ${z.size} bytes present)`;
    rc.kernelRecoveryFails ??= `a read of kmsg zone ${z.index} would fail`;
    recWarnings.push(rep.problem);
    rep.raw = full;
  }
  let payloadLen = datalen - L.size;
  if (payloadLen < 0) {
    rep.state = 'corrupt';
    rep.problem = `datalen ${datalen} is shorter than the ${L.size}-byte kmsg header`;
    recWarnings.push(rep.problem);
    rep.raw = full;
    payloadLen = 0;
  }
  const payloadAt = ZONE_HEADER_SIZE + L.size;
  const payload = full.subarray(payloadAt, Math.min(full.length, payloadAt + payloadLen));
  const base: KmsgRecordBase = {
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
  if (!hdr.compressed) rc.records.push(plainKmsgRecord(base, hdr, payload));
  else rc.records.push(decompressedKmsgRecord(base, rep, payload, z.offset + payloadAt, z.size - ZONE_HEADER_SIZE, L.size, opts));
}

type KmsgRecordBase = Omit<DecodedRecord, 'file' | 'content' | 'algorithm'>;
type KmsgDecodeOptions = DecodeOptions & { decompressor: KmsgDecompressor };

/** psz_kmsg_read(): "%s: Total %d times\n" + payload (counter printed as int). */
function plainKmsgRecord(base: KmsgRecordBase, hdr: KmsgHeader, payload: Uint8Array): DecodedRecord {
  const head = Buffer.from(`${kmsgReasonString(hdr.reason)}: Total ${hdr.counter | 0} times\n`, 'latin1');
  const content = new Uint8Array(head.length + payload.length);
  content.set(head);
  content.set(payload, head.length);
  return { ...base, file: `dmesg-pstore_blk-${base.id}`, content, algorithm: null };
}

/**
 * fs/pstore/platform.c decompress_record() for a compressed dump; what fails to decompress is
 * shown as the kernel shows it, `dmesg-pstore_blk-<i>.enc.z` with the stored bytes.
 */
function decompressedKmsgRecord(
  base: KmsgRecordBase,
  rep: ZoneReport,
  payload: Uint8Array,
  payloadOffset: number,
  bufferSize: number,
  kmsgHeaderSize: number,
  opts: KmsgDecodeOptions,
): DecodedRecord {
  if (payload.length === 0) base.warnings.push('compressed record with an empty payload: the kernel stops listing records here');
  const res = opts.decompressor.decompress(payload, payloadOffset, kmsgMaxOutput(bufferSize + ZONE_HEADER_SIZE, opts.maxDecompressed));
  if (res.ok) {
    // psinfo->bufsize of pstore/zone: the kmsg zone's buffer less the kmsg header.
    const why = opts.readingKernel && kernelCannotDecompress(opts.readingKernel, res.algorithm, res.data.length, bufferSize - kmsgHeaderSize);
    if (why) return { ...base, file: `dmesg-pstore_blk-${base.id}.enc.z`, content: payload, algorithm: res.algorithm, decoded: res.data, encodedBecause: why };
    return { ...base, file: `dmesg-pstore_blk-${base.id}`, content: res.data, algorithm: res.algorithm };
  }
  const why = res.attempts.map((a) => `${a.algorithm}: ${a.error}`).join('; ');
  base.warnings.push(`compressed payload could not be decompressed (${why}); kept as stored`);
  rep.problem ??= 'compressed payload could not be decompressed';
  return { ...base, file: `dmesg-pstore_blk-${base.id}.enc.z`, content: payload, algorithm: null };
}

// ---- pmsg, console, ftrace (circular zones) -------------------------------------------------------

/**
 * psz_recovery() after the kmsg zones: psz_recover_zone() for the pmsg zone, the console zone and
 * every ftrace zone, in that order. Returns each recovered zone's data, oldest byte first.
 */
async function recoverCircularZones(rc: Recovery): Promise<Map<Zone, Uint8Array>> {
  const linear = new Map<Zone, Uint8Array>();
  for (const type of ['pmsg', 'console', 'ftrace'] as const) {
    for (let i = 0; i < rc.layout.zones.length; i++) {
      const z = rc.layout.zones[i];
      if (z.type !== type) continue;
      const lin = await recoverCircularZone(rc, z, type, rc.heads[i]);
      if (lin) linear.set(z, lin);
    }
  }
  return linear;
}

/**
 * psz_recover_zone(): signature, datalen and start within the buffer, then the data read and
 * put in order (`data[start .. datalen) ‖ data[0 .. start)`). A datalen below start makes the
 * kernel's recovery fail. Returns undefined for a zone that holds nothing to show.
 */
async function recoverCircularZone(rc: Recovery, z: Zone, type: 'pmsg' | 'console' | 'ftrace', head: Uint8Array): Promise<Uint8Array | undefined> {
  const { src } = rc;
  const bufferSize = z.size - ZONE_HEADER_SIZE;
  if (head.length < ZONE_HEADER_SIZE) {
    const r = report(rc, z, head, 'truncated', `zone at 0x${z.offset.toString(16)} is past the end of the image`);
    rc.kernelRecoveryFails ??= `a read of the ${type} zone would fail`;
    if (head.length > 0) await keepRaw(rc, r);
    return undefined;
  }
  const zh = parseZoneHeader(head, rc.endian);
  if (zh.sig !== zoneSignature(type)) {
    report(rc, z, head, 'empty');
    return undefined;
  }
  if (zh.datalen < 0 || zh.start < 0 || zh.datalen > bufferSize || zh.start > bufferSize) {
    const r = report(rc, z, head, 'overtop', `datalen ${zh.datalen} / start ${zh.start} exceed the zone's ${bufferSize}-byte buffer; the kernel ignores this zone`);
    await keepRaw(rc, r);
    rc.warnings.push(`${type} zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
    return undefined;
  }
  if (zh.datalen === 0) {
    report(rc, z, head, 'erased');
    return undefined;
  }
  const data = await src.read(z.offset + ZONE_HEADER_SIZE, zh.datalen);
  const r = report(rc, z, head, 'valid');
  let lin: Uint8Array;
  if (data.length < zh.datalen) {
    r.state = 'truncated';
    r.problem = `zone is cut off by the end of the image (${data.length} of ${zh.datalen} data bytes present)`;
    rc.kernelRecoveryFails ??= `a read of the ${type} zone would fail`;
    r.raw = await src.read(z.offset, z.size);
    lin = data;
  } else if (zh.datalen < zh.start) {
    r.state = 'corrupt';
    r.problem = `datalen ${zh.datalen} < start ${zh.start}: the kernel's recovery fails on this header and shows no records at all`;
    rc.kernelRecoveryFails ??= `${type} zone header has datalen ${zh.datalen} < start ${zh.start}`;
    r.raw = await src.read(z.offset, z.size);
    // Best recovery: the bytes written before the write position, oldest first.
    lin = (await src.read(z.offset + ZONE_HEADER_SIZE, zh.start)).slice();
  } else {
    // data[start .. datalen) ‖ data[0 .. start)
    lin = new Uint8Array(zh.datalen);
    lin.set(data.subarray(zh.start, zh.datalen), 0);
    lin.set(data.subarray(0, zh.start), zh.datalen - zh.start);
  }
  if (r.problem) rc.warnings.push(`${type} zone ${z.index} @0x${z.offset.toString(16)}: ${r.problem}`);
  return lin;
}

// ---- ftrace ---------------------------------------------------------------------------------------

/**
 * psz_ftrace_read() + fs/pstore/ftrace.c pstore_ftrace_combine_log(): all recovered ftrace zones
 * merged into one record, rendered as /sys/fs/pstore shows it. The record format (word size,
 * PSTORE_CPU_IN_IP) is detected from the data first; it can settle the kmsg layout too.
 */
function recoverFtrace(rc: Recovery, linear: Map<Zone, Uint8Array>, abi: DetectedAbi, opts: DecodeOptions): FtraceFormat | null {
  const ftraceZones = rc.layout.zones.filter((z) => z.type === 'ftrace' && linear.has(z));
  if (ftraceZones.length === 0) return null;
  const ftraceFormat = detectFtraceFormat(ftraceZones, linear, abi, opts);
  const merged = combineFtraceZones(
    ftraceZones.map((z) => linear.get(z)!),
    ftraceFormat,
  );
  if (merged.length > 0) {
    const text = renderFtrace(merged, ftraceFormat, opts.symbols);
    rc.records.push({
      type: 'ftrace',
      id: 0,
      file: 'ftrace-pstore_blk-0',
      content: Buffer.from(text, 'latin1'),
      zones: ftraceZones.map((z) => ({ index: z.index, offset: z.offset, size: z.size })),
      storedBytes: merged.length,
      warnings: ftraceZones.flatMap((z) => rc.zones.find((r) => r.type === 'ftrace' && r.index === z.index)?.problem ?? []),
      kernelVisible: true,
    });
  }
  return ftraceFormat;
}

/** The ftrace record format that makes the zones' records look most like real ones. */
function detectFtraceFormat(ftraceZones: Zone[], linear: Map<Zone, Uint8Array>, abi: DetectedAbi, opts: DecodeOptions): FtraceFormat {
  const candidates: FtraceFormat[] = [];
  const layouts: KmsgLayoutName[] = abi.wordSizeOpen ? ['lp64', 'ilp32'] : [abi.layout];
  for (const lay of layouts) {
    const masks: FtraceCpuInIp[] = opts.ftraceCpuInIp !== undefined ? [opts.ftraceCpuInIp] : lay === 'lp64' ? [0] : [0, 3, 1];
    for (const cpuInIp of masks) candidates.push({ endian: abi.endian, layout: lay, cpuInIp });
  }
  const scores = new Map(candidates.map((f) => [f, ftraceZones.reduce((a, z) => a + scoreFtraceFormat(linear.get(z)!, z.index, f), 0)]));
  const score = (f: FtraceFormat) => scores.get(f)!;
  const best = candidates.reduce((a, b) => (score(b) > score(a) ? b : a));
  if (abi.wordSizeOpen && score(best) > 0) {
    abi.layout = best.layout;
    abi.layoutSource = 'detected';
  }
  return best;
}

/** psz_record_read() for pmsg and console: the zone's data in order, one record each. */
function readCircularRecords(rc: Recovery, linear: Map<Zone, Uint8Array>): void {
  for (const type of ['pmsg', 'console'] as const) {
    const z = rc.layout.zones.find((x) => x.type === type && linear.has(x));
    if (!z) continue;
    const lin = linear.get(z)!;
    const rep = rc.zones.find((r) => r.type === type)!;
    rc.records.push({
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
}

/**
 * Which records the kernel would really list (fs/pstore/platform.c pstore_get_backend_records()):
 * none if recovery fails; a zero-length record stops the listing, hiding everything after it.
 */
function applyKernelVisibility(rc: Recovery): void {
  if (rc.kernelRecoveryFails) {
    rc.warnings.push(`the kernel's recovery would fail (${rc.kernelRecoveryFails}): /sys/fs/pstore would show no records; everything recoverable is extracted anyway`);
    for (const r of rc.records) r.kernelVisible = false;
    return;
  }
  let stopped = false;
  for (const r of rc.records) {
    if (stopped) r.kernelVisible = false;
    else if (r.content.length === 0) {
      stopped = true;
      r.kernelVisible = false;
    }
  }
}
