/**
 * Writes an Extraction to a folder: one file per record named as /sys/fs/pstore names it,
 * raw bytes of zones that failed validation under raw/, extra views, and index.json.
 */
import { mkdir } from 'node:fs/promises';
import { prepareOutputDir, syncPath, writeNewFile, writeNewFiles } from '../gate/outputs.js';
import { dirname, join } from 'node:path';
import type { Extraction } from './extract.js';
import { decodedFileName } from './kernel-version.js';

export interface RegionInfo {
  device: string;
  offset: number;
  size: number;
  /** How the region was chosen: "whole device", "GPT partition 2 (pstore)", … */
  description: string;
}

export interface IndexRecord {
  type: string;
  file: string;
  id: number;
  zoneOffset: number;
  zoneSize: number;
  zones?: { index: number; offset: number; size: number }[];
  reason?: number;
  reasonName?: string;
  counter?: number;
  time?: { sec: string; nsec: number; iso: string | null };
  compressed: boolean;
  algorithm: string | null;
  storedBytes: number;
  outputBytes: number;
  kernelVisible: boolean;
  /** Why the reading kernel shows this record as `.enc.z` although it decodes; the text is in `decodedFile`. */
  encodedBecause?: string;
  decodedFile?: string;
  warnings: string[];
}

export interface IndexZone {
  type: string;
  index: number;
  offset: number;
  size: number;
  state: string;
  datalen: number;
  start: number;
  problem?: string;
  rawFile?: string;
  kmsg?: { reason: number; counter: number; tvSec: string; tvNsec: number; compressed: boolean };
}

export interface ExtractionIndex {
  tool: 'crashcart';
  formatVersion: 1;
  region: RegionInfo;
  geometry: {
    kmsg_size: { value: number; source: string };
    pmsg_size: { value: number; source: string };
    console_size: { value: number; source: string };
    ftrace_size: { value: number; source: string };
    cpus: { value: number; source: string };
    totalSize: number;
    kmsgZones: number;
    ftraceZones: number;
    unusedBytes: number;
    abi: { endian: string; layout: string; endianSource: string; layoutSource: string };
    ftraceFormat: { layout: string; cpuInIp: number } | null;
    signaturesFound?: number;
    alternatives?: string[];
    /** How the CPU count was read from the card: the decision, the counts that fit, what was concluded. */
    cpuDetection?: { decision: string; fits: { cpus: number; cpusMax: number; ftraceZoneSize: number; kmsgStart: number }[]; note: string | null };
    kernelErrors: string[];
  };
  symbols: Extraction['symbols'];
  /** `--kernel-version` of the reading kernel, and what the records say about the writing one. */
  kernel: Extraction['kernel'];
  counters: { oops: number; panic: number };
  nextKmsgZone: number;
  kernelRecoveryFails: string | null;
  records: IndexRecord[];
  /** Zones that are not empty (all zones are summarised in zoneStates). */
  zones: IndexZone[];
  zoneStates: Record<string, number>;
  extraFiles: { file: string; description: string }[];
  warnings: string[];
}

export function buildIndex(x: Extraction, region: RegionInfo): ExtractionIndex {
  const g = x.geometry;
  const zoneStates: Record<string, number> = {};
  for (const z of x.zones) zoneStates[z.state] = (zoneStates[z.state] ?? 0) + 1;
  return {
    tool: 'crashcart',
    formatVersion: 1,
    region,
    geometry: {
      kmsg_size: g.kmsg_size,
      pmsg_size: g.pmsg_size,
      console_size: g.console_size,
      ftrace_size: g.ftrace_size,
      cpus: g.cpus,
      totalSize: g.layout.totalSize,
      kmsgZones: g.layout.kmsgCount,
      ftraceZones: g.layout.ftraceCount,
      unusedBytes: g.layout.unusedBytes,
      abi: x.decoded.abi,
      ftraceFormat: x.decoded.ftraceFormat ? { layout: x.decoded.ftraceFormat.layout, cpuInIp: x.decoded.ftraceFormat.cpuInIp } : null,
      signaturesFound: g.signaturesFound,
      alternatives: g.alternatives,
      cpuDetection: g.cpuDetection && {
        decision: g.cpuDetection.decision,
        fits: g.cpuDetection.fits.map((f) => ({ cpus: f.cpus, cpusMax: f.cpusMax, ftraceZoneSize: f.ftraceZoneSize, kmsgStart: f.kmsgStart })),
        note: g.cpuDetection.message ?? null,
      },
      kernelErrors: g.layout.errors,
    },
    symbols: x.symbols,
    kernel: x.kernel,
    counters: x.decoded.counters,
    nextKmsgZone: x.decoded.nextKmsgZone,
    kernelRecoveryFails: x.decoded.kernelRecoveryFails ?? null,
    records: x.records.map((r) => ({
      type: r.type,
      file: r.file,
      id: r.id,
      zoneOffset: r.zones[0]?.offset ?? 0,
      zoneSize: r.zones[0]?.size ?? 0,
      zones: r.zones.length > 1 ? r.zones : undefined,
      reason: r.reason,
      reasonName: r.reasonName,
      counter: r.counter,
      time: r.time,
      compressed: r.compressed ?? false,
      algorithm: r.algorithm ?? null,
      storedBytes: r.storedBytes,
      outputBytes: r.content.length,
      kernelVisible: r.kernelVisible,
      encodedBecause: r.encodedBecause,
      decodedFile: r.decoded ? decodedFileName(r.file) : undefined,
      warnings: r.warnings,
    })),
    zones: x.zones
      .filter((z) => z.state !== 'empty')
      .map((z) => ({
        type: z.type,
        index: z.index,
        offset: z.offset,
        size: z.size,
        state: z.state,
        datalen: z.datalen,
        start: z.start,
        problem: z.problem,
        rawFile: z.raw ? rawFileName(z) : undefined,
        kmsg: z.kmsg,
      })),
    zoneStates,
    extraFiles: x.extraFiles.map((f) => ({ file: f.file, description: f.description })),
    warnings: x.warnings,
  };
}

export function rawFileName(z: { type: string; index: number; offset: number }): string {
  return `raw/${z.type}-zone${z.index}@0x${z.offset.toString(16)}.bin`;
}

export interface WriteExtractionOptions {
  /** Replace an earlier extraction in a non-empty `dir` (anything else there is refused). */
  replace?: boolean;
  /**
   * Make the files durable before returning (a backup taken before its records are destroyed):
   * one pass at the end syncs every file and the folders, not a sync after each file.
   */
  durable?: boolean;
}

/** Files synced at once (durable backups): keeps the file system busy while the next ones are opened. */
const FILES_IN_FLIGHT = 16;

/**
 * Writes records, raw zones, extra views and index.json into `dir`: a new or empty folder
 * (see prepareOutputDir). Every file is created exclusively, never through a link.
 */
export async function writeExtraction(x: Extraction, dir: string, region: RegionInfo, opts: WriteExtractionOptions = {}): Promise<ExtractionIndex> {
  await prepareOutputDir(dir, opts);
  const files: { path: string; data: string | Uint8Array }[] = x.records.map((r) => ({ path: join(dir, r.file), data: r.content }));
  const raws = x.zones.filter((z) => z.raw);
  if (raws.length) await mkdir(join(dir, 'raw'));
  for (const z of raws) files.push({ path: join(dir, rawFileName(z)), data: z.raw! });
  for (const f of x.extraFiles) files.push({ path: join(dir, f.file), data: f.content });
  await writeNewFiles(files);
  const index = buildIndex(x, region);
  // index.json last: a folder with an index holds the whole extraction.
  await writeNewFile(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  if (opts.durable) {
    await inFlight(files, (f) => syncPath(f.path));
    await syncPath(join(dir, 'index.json'));
    for (const d of [...(raws.length ? [join(dir, 'raw')] : []), dir, dirname(dir)]) await syncPath(d);
  }
  return index;
}

/** Runs `fn` over `items`, FILES_IN_FLIGHT at a time; the first failure stops it (after those in flight). */
async function inFlight<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const lanes = Array.from({ length: Math.min(FILES_IN_FLIGHT, items.length) }, lane);
  const settled = await Promise.allSettled(lanes);
  const error = settled.find((r) => r.status === 'rejected');
  if (error) throw (error as PromiseRejectedResult).reason;
}
