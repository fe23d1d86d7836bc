/**
 * pstore extraction as a library call: geometry resolution, decoding, ftrace symbolisation
 * (with the KASLR slide given or inferred from the dmesg records) and the optional Android
 * view of pmsg. Writing the result to a folder is `writeExtraction()` in extract-writer.ts.
 */
import type { AbiHint } from './abi.js';
import { KMSG_LAYOUTS } from './abi.js';
import { decodeAndroidPmsg } from './android-pmsg.js';
import type { DecodeResult, DecodedRecord, ZoneReport } from './decode.js';
import { decodeRegion } from './decode.js';
import type { FtraceCpuInIp, SymbolFormatter } from './ftrace.js';
import type { EffectiveGeometry } from './geometry.js';
import { resolveGeometry } from './geometry.js';
import type { KernelVersion, WriterEvidence } from './kernel-version.js';
import { capsRegionAt128MiB, decodedFileName, writerEvidence } from './kernel-version.js';
import { regionExtent } from './region-cap.js';
import type { PstoreParams } from './params.js';
import type { RegionSource } from './region-source.js';
import { streamRegion } from './region-source.js';
import type { ReadProgress } from './decode-ahead.js';
import { decodeAhead } from './decode-ahead.js';
import { KmsgDecodePool, defaultDecodeThreads } from './kmsg-decode-pool.js';
import { KmsgDecompressor } from './kmsg-decompressor.js';
import { SignatureScanner } from './scan.js';
import { MAX_REGION } from './layout.js';
import { SIZE_PARAMS } from './params.js';
import type { SymbolTable } from '../symbols/index.js';
import { formatPS, formatPs, inferKaslrSlide } from '../symbols/index.js';

export interface ExtractOptions {
  params: PstoreParams;
  abi?: AbiHint;
  /** Symbol table of the crashed kernel for ftrace rendering. */
  symbols?: SymbolTable | null;
  /** KASLR slide to apply to the symbol table; inferred from dmesg when undefined and possible. */
  kaslrSlide?: bigint;
  /** Also produce a decoded view of Android logger records found in pmsg. */
  androidPmsg?: boolean;
  /**
   * `bulk`: read the used region in one sequential pass; `zones`: read zone headers one by one
   * and only zones holding data whole; `auto` (default): bulk unless the reader is slow at
   * sequential reads (USB) and the region is large and its geometry known.
   */
  readStrategy?: 'auto' | 'bulk' | 'zones';
  /**
   * Release of the kernel that will read the card back (`--kernel-version`). Compressed records
   * that kernel could not decompress are named `.enc.z` as it names them, with the decoded text
   * written beside them.
   */
  kernelVersion?: KernelVersion;
  /**
   * Worker threads that decompress dmesg records while the region is read (default: one per core,
   * at most 4, none on one core; 0: all on the calling thread). They start only for a region with
   * many compressed records.
   */
  decodeThreads?: number;
  /** Told how far the region has been read (and how many records decoded meanwhile), as it goes. */
  onProgress?: (p: ReadProgress) => void;
}

export interface ExtraFile {
  file: string;
  content: Uint8Array;
  description: string;
}

export interface Extraction {
  geometry: EffectiveGeometry;
  decoded: DecodeResult;
  records: DecodedRecord[];
  zones: ZoneReport[];
  extraFiles: ExtraFile[];
  symbols: { loaded: boolean; kaslrSlide: string | null; kaslrSource: 'given' | 'inferred' | 'none' };
  kernel: { readingVersion: string | null; writer: WriterEvidence | null };
  warnings: string[];
}

/** Whether geometry detection will scan the whole region anyway. */
function needsScan(p: PstoreParams): boolean {
  return SIZE_PARAMS.some((k) => !p[k]) || ((p.ftrace_size?.value ?? 0) > 0 && !p.cpus);
}

function formatterFor(table: SymbolTable): SymbolFormatter {
  return { ps: (a) => formatPs(table, a), pS: (a) => formatPS(table, a) };
}

/** Regions up to this size are read in one sequential pass even from slow readers. */
const PREFETCH_ALWAYS = 32 << 20;

export async function extractPstore(source: RegionSource, opts: ExtractOptions): Promise<Extraction> {
  // One sequential pass over the part the kernel uses, unless the reader is slow and the region
  // big: then zone headers are read one by one and only zones holding data are read whole.
  const used = Math.min(source.size, MAX_REGION);
  const strategy = opts.readStrategy ?? 'auto';
  const scan = needsScan(opts.params);
  const bulk = strategy === 'bulk' || (strategy === 'auto' && (source.cheapSequential || used <= PREFETCH_ALWAYS || scan));
  const decompressor = new KmsgDecompressor(opts.params.compress?.value);
  let src = source;
  // Known geometry: resolved without reading anything.
  let geometry = scan ? undefined : await resolveGeometry(source, opts.params);
  if (bulk) {
    // Records are decoded as the chunks of the region arrive, and signatures scanned in the same pass.
    const stream = streamRegion(source, used);
    src = stream.source;
    const scanner = scan ? new SignatureScanner(source.available) : undefined;
    const threads = opts.decodeThreads ?? defaultDecodeThreads();
    const pool = threads > 0 ? new KmsgDecodePool(threads) : undefined;
    try {
      await decodeAhead(stream, Math.min(source.available, used), {
        decompressor,
        kmsgZones: geometry?.layout.zones.filter((z) => z.type === 'dmesg'),
        scanner,
        endian: opts.abi?.endian,
        layout: opts.abi?.layout,
        pool,
        onProgress: opts.onProgress,
      });
    } finally {
      stream.stop();
      await pool?.close();
    }
    geometry ??= await resolveGeometry(src, opts.params, { found: scanner?.found });
  }
  geometry ??= await resolveGeometry(src, opts.params);
  const warnings = [...geometry.layout.warnings];
  if (geometry.layout.errors.length) {
    warnings.push(`the kernel would refuse this geometry: ${geometry.layout.errors.join('; ')}`);
  }
  if (geometry.alternatives) {
    warnings.push(`geometry detected from signatures; these also fit and would number records differently: ${geometry.alternatives.join(' | ')}`);
  }
  // Past 128 MiB: used by 5.8–5.10 only (given with --kernel-version, or seen on the card).
  const extent = await regionExtent(src, geometry.layout, opts.kernelVersion);
  if (extent.layout !== geometry.layout) geometry = { ...geometry, layout: extent.layout };
  warnings.push(...extent.warnings);
  const cpu = geometry.cpuDetection;
  if (cpu?.message && (cpu.decision === 'ambiguous' || cpu.decision === 'none')) warnings.push(cpu.message);
  const cpuInIp = opts.params.ftrace_cpu_in_ip?.value as FtraceCpuInIp | undefined;
  let table = opts.symbols ?? null;
  let kaslrSlide: bigint | null = opts.kaslrSlide ?? null;
  let kaslrSource: Extraction['symbols']['kaslrSource'] = opts.kaslrSlide !== undefined ? 'given' : 'none';
  if (table && kaslrSlide !== null) table = table.withSlide(kaslrSlide);
  const decodeOpts = {
    endian: opts.abi?.endian,
    layout: opts.abi?.layout,
    ftraceCpuInIp: cpuInIp,
    compressHint: opts.params.compress?.value,
    readingKernel: opts.kernelVersion ? { version: opts.kernelVersion, compress: opts.params.compress?.value } : undefined,
    decompressor,
  };
  let decoded = await decodeRegion(src, geometry.layout, { ...decodeOpts, symbols: table ? formatterFor(table) : undefined });
  if (opts.symbols && opts.kaslrSlide === undefined && decoded.records.some((r) => r.type === 'ftrace')) {
    const dmesg = decoded.records
      .filter((r) => r.type === 'dmesg' && !r.file.endsWith('.enc.z'))
      .map((r) => Buffer.from(r.content).toString('latin1'))
      .join('\n');
    const slide = inferKaslrSlide(dmesg, opts.symbols);
    if (slide !== null) {
      kaslrSlide = slide;
      kaslrSource = 'inferred';
      if (slide !== 0n) {
        table = opts.symbols.withSlide(slide);
        decoded = await decodeRegion(src, geometry.layout, { ...decodeOpts, symbols: formatterFor(table) });
      }
    }
  }
  warnings.push(...decoded.warnings);
  if (extent.evidence && opts.kernelVersion && capsRegionAt128MiB(opts.kernelVersion)) {
    // The reading kernel lays out the first 128 MiB only: the zones past it are not its records.
    for (const r of decoded.records) if (r.type === 'dmesg' && r.id >= extent.cappedKmsgCount) r.kernelVisible = false;
  }
  const extraFiles: ExtraFile[] = [];
  for (const r of decoded.records) {
    if (!r.decoded) continue;
    extraFiles.push({ file: decodedFileName(r.file), content: r.decoded, description: `${r.algorithm} text of ${r.file}: ${r.encodedBecause}` });
  }
  const writer = extent.evidence ?? (await writerEvidence(src, decoded.records, KMSG_LAYOUTS[decoded.abi.layout].size));
  if (opts.androidPmsg) {
    const pmsg = decoded.records.find((r) => r.type === 'pmsg');
    if (pmsg) {
      const view = decodeAndroidPmsg(pmsg.content);
      if (view.records > 0) {
        extraFiles.push({ file: `${pmsg.file}.logcat.txt`, content: Buffer.from(view.text, 'utf8'), description: `${view.records} Android logger records` });
      } else {
        warnings.push('pmsg holds no Android logger records; no decoded view written');
      }
    }
  }
  return {
    geometry,
    decoded,
    records: decoded.records,
    zones: decoded.zones,
    extraFiles,
    symbols: { loaded: !!opts.symbols, kaslrSlide: kaslrSlide === null ? null : `0x${kaslrSlide.toString(16)}`, kaslrSource },
    kernel: { readingVersion: opts.kernelVersion?.text ?? null, writer },
    warnings,
  };
}
