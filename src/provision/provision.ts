/**
 * Provisioning a card from a board profile: partition table (GPT or MBR), partition images, a
 * formatted pstore partition and the kernel command line the board must boot with.
 *
 * `planProvision` only reads: it compares the card with the profile and decides, step by step,
 * what has to be written (nothing, when the card already matches). `applyProvision` carries a
 * plan out: it first backs up any pstore records the plan would destroy, then writes the table,
 * the images and the pstore format, and flushes.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { BadInputError, CrashcartError, NoPstoreError, UsageError, WriteProtectedError } from '../errors.js';
import { compareGpt, encodeGpt, layoutPartitions, resolveGpt, sector0Slots, writeGpt, type GptLayout, type ResolvedGpt } from '../partition/gpt-write.js';
import type { HybridMbrSpec } from '../partition/hybrid-mbr.js';
import { GPT_PROTECTIVE_TYPE } from '../partition/mbr.js';
import {
  compareMbr,
  encodeMbr,
  layoutMbrPartitions,
  mbrTypeHex,
  resolveMbr,
  signatureHex,
  writeMbr,
  type MbrLayout,
  type MbrWrite,
  type ResolvedMbr,
} from '../partition/mbr-write.js';
import { readPartitionTable } from '../partition/partition-table.js';
import type { PartitionTable } from '../partition/types.js';
import {
  allProfileParams,
  inferFilesystem,
  layoutMinimumSize,
  mbrPartitionRequests,
  partitionNumbers,
  partitionRequests,
  type BoardFilesystem,
  type BoardHybridMbr,
  type BoardPartition,
  type BoardProfile,
  type FatSize,
  type FsType,
} from '../profile/board-profile.js';
import type { Abi, AbiHint } from '../pstore/abi.js';
import { blkdevFor } from '../pstore/board-cmdline.js';
import { extractPstore, type Extraction } from '../pstore/extract.js';
import { writeExtraction } from '../pstore/extract-writer.js';
import { createRunDir, runStamp } from '../gate/outputs.js';
import { join } from 'node:path';
import { applyFormat, planFormat, type FormatPlan } from '../pstore/format.js';
import type { Layout } from '../pstore/layout.js';
import { locatePstoreRegion } from '../pstore/locate-region.js';
import type { PstoreParams } from '../pstore/params.js';
import { planGeometry } from '../pstore/plan-geometry.js';
import { deviceSource } from '../pstore/region-source.js';
import { buildCmdline } from './cmdline.js';
import { inspectImage, writeImage, type ImageInfo } from './image-source.js';
import { buildFilesystem, createWorkDir, removeWorkDir } from './fs-build.js';

export interface ProvisionOptions extends IoOptions {
  /** Images by partition name, overriding or adding to the profile's (`--image rootfs=root.img`). */
  images?: Record<string, { image: string; bmap?: string }>;
  /**
   * File systems built from folders by partition name (`--fs boot=DIR`), overriding the profile's
   * image or `fs.dir`; the type, label and UUID come from the partition's `fs`, else its type.
   */
  filesystems?: Record<string, { dir: string }>;
  /**
   * Called with each file system image built in planning and each folder on another file system
   * inside an `--fs` folder, before anything is written; the CLI refuses there what aliases the card.
   */
  checkInput?: (path: string, role: string) => Promise<void>;
  /** Allow replacing a partition table that differs from the profile's layout. */
  replaceTable?: boolean;
  /** Derive new partition/disk GUIDs from this text instead of drawing random ones. */
  guidSeed?: string;
  /** Format the pstore partition even when it holds records of the board (they are backed up first). */
  reformatPstore?: boolean;
}

export type TableAction =
  /** The card already has this layout. */
  | 'keep'
  /** Same partitions, damaged or misplaced table copy: rewritten with the existing GUIDs. */
  | 'repair'
  /** No partition table yet. */
  | 'write'
  /** A different table is replaced (only with replaceTable). */
  | 'replace';

export interface PlannedPartition {
  /** Linux partition number (MBR: logical partitions from 5). */
  number: number;
  name: string;
  /** GPT type GUID, or the MBR type as `0x83`. */
  type: string;
  typeAlias?: string;
  /** MBR: boot flag set. */
  bootable?: boolean;
  /** MBR: a logical partition. */
  logical?: boolean;
  /** Byte offset and size. */
  start: number;
  size: number;
  firstLba: number;
  lastLba: number;
  /** PARTUUID the card has or will have: the GPT partition GUID, or MBR `SSSSSSSS-NN`. */
  uuid: string;
}

/** A file system built from a folder (the image written is a temporary file of the partition's size). */
export interface PlannedFilesystem {
  type: FsType;
  /** vfat: FAT12, FAT16 or FAT32. */
  fat?: FatSize;
  label?: string;
  /** vfat: the volume ID `1234-ABCD`; ext4: the UUID. */
  uuid: string;
  /** The folder it is built from. */
  dir: string;
  files: number;
  dirs: number;
  symlinks: number;
  /** Bytes of file data in the folder. */
  bytes: number;
}

export interface PlannedImage {
  /** The partition the image goes into; absent for a raw region (`raw` in the profile). */
  partition?: number;
  name: string;
  /** Where it is written: byte offset on the card and the bytes available there. */
  offset: number;
  capacity: number;
  path: string;
  bmap?: string;
  format: ImageInfo['format'];
  size: number;
  /** Bytes that will be written. */
  dataBytes: number;
  action: 'write' | 'skip';
  reason: string;
  /** Present when the image is a file system built from a folder (`path` is then the temporary image). */
  filesystem?: PlannedFilesystem;
}

export interface PlannedPstore {
  partition: number;
  name: string;
  offset: number;
  size: number;
  layout: Layout;
  /** format: zero (and header) the region; keep: it holds the board's records; none: already formatted. */
  action: 'format' | 'keep' | 'none';
  reason: string;
  zeroBytes: number;
  headers: number;
  /** Record files the region holds now. */
  records: string[];
  /** How the board's kernel is told where the region is (pstore_blk.blkdev=…). */
  blkdev: string;
}

/** Records on the card that the plan would destroy; applyProvision saves them first. */
export interface RecordsAtRisk {
  description: string;
  offset: number;
  size: number;
  records: string[];
}

export interface ProvisionPlan {
  profile: { name: string; path: string };
  device: { name: string; size: number; blockSize: number; readOnly: boolean };
  sectorSize: number;
  /** Smallest card the profile fits on. */
  minimumSize: number;
  table: {
    kind: 'gpt' | 'mbr';
    action: TableAction;
    /** Why the table is (re)written, or what differs. */
    reasons: string[];
    /** GPT: the disk GUID. */
    diskGuid?: string;
    /** MBR: the disk signature, 8 hex digits. */
    diskSignature?: string;
    /** MBR: the extended partition holding the logical ones. */
    extended?: { number: number; start: number; size: number };
    /** GPT with a hybrid MBR: its slots (1–4) in order, the mirrored partitions by GPT number, the 0xEE slot without one. */
    hybridMbr?: { slot: number; partition?: number; type: string; bootable: boolean; start: number; size: number }[];
    partitions: PlannedPartition[];
    existing: { kind: 'gpt' | 'mbr'; partitions: number } | null;
  };
  images: PlannedImage[];
  pstore?: PlannedPstore;
  recordsAtRisk: RecordsAtRisk[];
  /** Kernel command line for the board (profile fragment + every pstore parameter explicit). */
  cmdline?: string;
  /** Assumptions and warnings worth showing. */
  notes: string[];
  /** True when applying the plan writes anything. */
  changes: boolean;
  /** Bytes the plan writes. */
  bytesToWrite: number;
}

/** The table as it will be written, and what else the write clears (an old GPT's headers behind a new MBR). */
type TableWrite = { kind: 'gpt'; gpt: ResolvedGpt } | { kind: 'mbr'; mbr: ResolvedMbr; wipe: MbrWrite[] };

interface PlanInternals {
  table: TableWrite;
  format?: FormatPlan;
  /** By partition or region name. */
  imageInfos: Map<string, ImageInfo>;
  /** Folder holding the file system images built for this plan (removed by releaseProvision). */
  workDir?: string;
  extractions: { risk: RecordsAtRisk; x: Extraction }[];
}

const internals = new WeakMap<ProvisionPlan, PlanInternals>();

function describeTable(t: PartitionTable): string {
  return `${t.kind.toUpperCase()} with ${t.partitions.length} partition(s): ${t.partitions.map((p) => `${p.number}${p.name ? ` "${p.name}"` : ''}`).join(', ') || 'none'}`;
}

/** The board's pstore parameters and ABI as the profile states them. */
export function profilePstoreInputs(profile: BoardProfile): { params: PstoreParams; abi: AbiHint } {
  return { params: allProfileParams(profile), abi: { ...profile.abi } };
}

async function findRecords(dev: BlockDevice, offset: number, size: number, params: PstoreParams, abi: AbiHint): Promise<Extraction | null> {
  try {
    const x = await extractPstore(deviceSource(dev, offset, size), { params, abi });
    return x.records.length > 0 ? x : null;
  } catch (e) {
    if (e instanceof NoPstoreError) return null;
    throw e;
  }
}

/** True when the region already holds exactly what formatting would write. */
async function isFormatted(dev: BlockDevice, offset: number, plan: FormatPlan, opts: IoOptions): Promise<boolean> {
  const chunk = 1 << 20;
  const headerAt = new Map(plan.headers.map((h) => [h.offset, h.bytes]));
  const headers = [...plan.headers].sort((a, b) => a.offset - b.offset);
  for (let off = 0; off < plan.zeroBytes; off += chunk) {
    const n = Math.min(chunk, plan.zeroBytes - off);
    const have = await readRange(dev, offset + off, n, opts);
    const want = new Uint8Array(n);
    for (const h of headers) {
      if (h.offset + h.bytes.length <= off || h.offset >= off + n) continue;
      const s = Math.max(h.offset, off);
      const e = Math.min(h.offset + h.bytes.length, off + n);
      want.set(headerAt.get(h.offset)!.subarray(s - h.offset, e - h.offset), s - off);
    }
    if (Buffer.compare(have, want) !== 0) return false;
  }
  return true;
}

/** The table step's outcome: what happens to the partition table and the partitions it will hold. */
interface TablePlan {
  action: TableAction;
  differences: string[];
  existing: PartitionTable | null;
  write: TableWrite;
  /** In profile order. */
  partitions: PlannedPartition[];
  /** The card keeps its partitions (keep or repair): their contents are still there. */
  kept: boolean;
}

/** The pstore step's outcome (only the profile's own cmdline when it has no pstore partition). */
interface PstorePlan {
  pstore?: PlannedPstore;
  format?: FormatPlan;
  cmdline?: string;
}

/** Sector size the GPT is written with: the device's block size when it is a power of two ≥ 512. */
function gptSectorSize(dev: BlockDevice): number {
  return dev.blockSize >= 512 && (dev.blockSize & (dev.blockSize - 1)) === 0 ? dev.blockSize : 512;
}

/**
 * Checks that the profile can be provisioned on `dev` at all, and returns the smallest card it fits on.
 * @throws BadInputError when the card is too small; UsageError when an --image names no partition of the profile
 */
function checkProfileFits(dev: BlockDevice, profile: BoardProfile, opts: ProvisionOptions, ss: number): number {
  const partitions = profile.partitions!;
  const minimumSize = Math.max(layoutMinimumSize({ ...profile, partitions }, ss), profile.card?.min_size ?? 0);
  if (dev.size < minimumSize) {
    throw new BadInputError(
      `${dev.info.name} is too small for profile ${profile.name}: ${dev.size} bytes (${formatBytes(dev.size)}), it needs at least ${minimumSize} bytes (${formatBytes(minimumSize)})`,
    );
  }
  const names = [...partitions, ...(profile.raw ?? [])].map((p) => p.name);
  for (const name of Object.keys(opts.images ?? {})) {
    if (!names.includes(name)) {
      throw new UsageError(`--image ${name}=…: profile ${profile.name} has no partition or raw region "${name}" (${names.join(', ')})`);
    }
  }
  for (const name of Object.keys(opts.filesystems ?? {})) {
    if (opts.images?.[name]) throw new UsageError(`--fs ${name}=… and --image ${name}=… both fill partition "${name}"; give one of them`);
    if (!partitions.some((p) => p.name === name)) {
      throw new UsageError(`--fs ${name}=…: profile ${profile.name} has no partition "${name}" (${partitions.map((p) => p.name).join(', ')})`);
    }
    if (profile.pstore?.partition === name || partitionNumbers({ table: profile.table, partitions })[partitions.findIndex((p) => p.name === name)] === profile.pstore?.partition)
      throw new UsageError(`--fs ${name}=…: partition "${name}" is the pstore partition`);
  }
  return minimumSize;
}

/** Reads the card's table; a damaged one counts as a different table. */
async function readExisting(dev: BlockDevice, opts: IoOptions): Promise<{ existing: PartitionTable | null; damage?: string }> {
  try {
    return { existing: await readPartitionTable(dev, opts) };
  } catch (e) {
    if (!(e instanceof BadInputError)) throw e;
    return { existing: null, damage: `the partition table is damaged: ${e.message}` };
  }
}

/** keep / repair / write / replace from a comparison; refuses a different table unless replaceTable. */
function decideAction(dev: BlockDevice, profile: BoardProfile, status: 'match' | 'repair' | 'none' | 'differs', differences: string[], opts: ProvisionOptions): TableAction {
  if (status === 'match') return 'keep';
  if (status === 'repair') return 'repair';
  if (status === 'differs' && !opts.replaceTable) {
    throw new UsageError(
      `${dev.info.name} holds a partition table that differs from profile ${profile.name}:\n  ${differences.join('\n  ')}\n` +
        'refusing to replace it; pass --replace-table to overwrite it (pstore records on the card are backed up first)',
    );
  }
  return status === 'none' ? 'write' : 'replace';
}

/** The hybrid MBR's slots as the plan shows them. */
function plannedHybridMbr(g: ResolvedGpt): NonNullable<ProvisionPlan['table']['hybridMbr']> {
  const ss = g.sectorSize;
  return sector0Slots(g).map((e) => {
    const p = g.partitions.find((q) => q.firstLba === e.firstLba && e.type !== GPT_PROTECTIVE_TYPE);
    return { slot: e.slot + 1, ...(p ? { partition: p.number } : {}), type: mbrTypeHex(e.type), bootable: e.bootable, start: e.firstLba * ss, size: e.sectors * ss };
  });
}

/** The profile's hybrid MBR with its partitions by GPT number (entry index + 1). */
function hybridMbrSpec(h: BoardHybridMbr, parts: BoardPartition[]): HybridMbrSpec {
  return { protective: h.protective, entries: h.entries.map((e) => ({ partition: parts.findIndex((p) => p.name === e.name) + 1, type: e.type, bootable: e.bootable })) };
}

/** Step 1, the table (GPT): compares the card's table with the profile's layout and decides keep / repair / write / replace. */
async function planGptTable(dev: BlockDevice, profile: BoardProfile, layout: GptLayout, opts: ProvisionOptions): Promise<TablePlan> {
  const ss = layout.sectorSize;
  const { existing, damage } = await readExisting(dev, opts);
  const match = damage ? { status: 'differs' as const, differences: [damage] } : compareGpt(existing, layout, dev.size);
  const action = decideAction(dev, profile, match.status, match.differences, opts);
  const kept = action === 'keep' || action === 'repair';
  // keep the card's GUIDs
  const gpt = kept
    ? resolveGpt(
        {
          sectorSize: ss,
          diskGuid: existing!.diskGuid,
          partitions: layout.partitions.map((s) => ({ ...s, uuid: existing!.partitions.find((p) => p.number === s.number)!.uuid })),
          ...(layout.hybridMbr ? { hybridMbr: layout.hybridMbr } : {}),
        },
        dev.size,
        opts,
      )
    : resolveGpt(layout, dev.size, opts);
  const partitions: PlannedPartition[] = gpt.partitions.map((p, i) => ({
    number: p.number,
    name: p.name,
    type: p.typeGuid,
    ...(profile.partitions![i].typeAlias ? { typeAlias: profile.partitions![i].typeAlias } : {}),
    start: p.firstLba * ss,
    size: (p.lastLba - p.firstLba + 1) * ss,
    firstLba: p.firstLba,
    lastLba: p.lastLba,
    uuid: p.uuid,
  }));
  return { action, differences: match.differences, existing, write: { kind: 'gpt', gpt }, partitions, kept };
}

/**
 * The sectors that still say "GPT" on a card that gets an MBR: the primary and backup GPT headers
 * (sfdisk and blkid would otherwise report the stale GPT, and tools that prefer GPT would use it).
 * A new table wipes both (the backup header usually lies in the last partition, which is new);
 * a repaired one keeps the partitions' data and wipes only headers outside them.
 */
async function staleGptHeaders(dev: BlockDevice, mbr: ResolvedMbr, kept: boolean, opts: IoOptions): Promise<MbrWrite[]> {
  const out: MbrWrite[] = [];
  const inPartition = (byte: number) => kept && mbr.partitions.some((p) => byte >= p.firstLba * mbr.sectorSize && byte <= p.lastLba * mbr.sectorSize);
  for (const ss of new Set([512, gptSectorSize(dev)])) {
    for (const lba of [1, Math.floor(dev.size / ss) - 1]) {
      if (lba < 1 || inPartition(lba * ss)) continue;
      const head = await readRange(dev, lba * ss, 8, opts);
      if (new TextDecoder('latin1').decode(head) === 'EFI PART') out.push({ offset: lba * ss, bytes: new Uint8Array(ss), what: `stale GPT header in LBA ${lba}` });
    }
  }
  return out;
}

/** Step 1, the table (MBR): as for GPT; the card's disk signature is kept when the layout matches and the profile fixes none. */
async function planMbrTable(dev: BlockDevice, profile: BoardProfile, layout: MbrLayout, opts: ProvisionOptions): Promise<TablePlan> {
  const ss = layout.sectorSize;
  const { existing, damage } = await readExisting(dev, opts);
  const match = damage ? { status: 'differs' as const, differences: [damage] } : compareMbr(existing, layout);
  const action = decideAction(dev, profile, match.status, match.differences, opts);
  const kept = action === 'keep' || action === 'repair';
  const keepSig = kept && layout.diskSignature === undefined ? parseInt(existing!.diskSignature!, 16) : layout.diskSignature;
  const mbr = resolveMbr({ ...layout, diskSignature: keepSig }, dev.size, { seed: opts.guidSeed });
  const sig = signatureHex(mbr.diskSignature);
  const byNumber = new Map(mbr.partitions.map((p) => [p.number, p]));
  const partitions: PlannedPartition[] = partitionNumbers(profile as { partitions: NonNullable<BoardProfile['partitions']> }).map((n, i) => {
    const p = byNumber.get(n)!;
    const bp = profile.partitions![i];
    return {
      number: n,
      name: p.name,
      type: mbrTypeHex(p.type),
      ...(bp.typeAlias ? { typeAlias: bp.typeAlias } : {}),
      ...(p.bootable ? { bootable: true } : {}),
      ...(p.ebrLba !== undefined ? { logical: true } : {}),
      start: p.firstLba * ss,
      size: (p.lastLba - p.firstLba + 1) * ss,
      firstLba: p.firstLba,
      lastLba: p.lastLba,
      uuid: `${sig}-${n.toString(16).padStart(2, '0')}`,
    };
  });
  const wipe = action === 'keep' ? [] : await staleGptHeaders(dev, mbr, kept, opts);
  return { action, differences: match.differences, existing, write: { kind: 'mbr', mbr, wipe }, partitions, kept };
}

/** The file system a partition gets: from `--fs NAME=DIR` (type from the profile's `fs`, else the partition type) or the profile's `fs.dir`. */
function filesystemFor(profile: BoardProfile, bp: NonNullable<BoardProfile['partitions']>[number], opts: ProvisionOptions): (BoardFilesystem & { dir: string }) | undefined {
  const over = opts.filesystems?.[bp.name];
  if (opts.images?.[bp.name]) return undefined;
  if (over) {
    if (bp.fs) return { ...bp.fs, dir: over.dir };
    const inferred = inferFilesystem(bp.type, profile.table ?? 'gpt');
    if (!inferred)
      throw new UsageError(
        `--fs ${bp.name}=…: partition "${bp.name}" has type ${bp.typeAlias ?? bp.type}, which implies no file system; give the partition an "fs" ({"type": "vfat"} or {"type": "ext4"}) in the profile`,
      );
    return { ...inferred, dir: over.dir };
  }
  return bp.fs?.dir !== undefined && !bp.image ? { ...bp.fs, dir: bp.fs.dir } : undefined;
}

/**
 * Step 2, the images: which partition and raw-region images are written, and which the card
 * already holds. File systems asked for are built here, into temporary images in `workDir`.
 */
async function planImages(
  dev: BlockDevice,
  profile: BoardProfile,
  table: TablePlan,
  opts: ProvisionOptions,
  notes: string[],
  work: { dir?: string },
): Promise<{ images: PlannedImage[]; imageInfos: Map<string, ImageInfo> }> {
  const images: PlannedImage[] = [];
  const imageInfos = new Map<string, ImageInfo>();
  const targets = [
    ...profile.partitions!.map((bp, i) => ({
      ...bp,
      partition: table.partitions[i].number,
      offset: table.partitions[i].start,
      capacity: table.partitions[i].size,
      partuuid: table.partitions[i].uuid,
      filesystem: filesystemFor(profile, bp, opts),
    })),
    ...(profile.raw ?? []).map((r) => ({ ...r, partition: undefined, capacity: r.size, partuuid: undefined, filesystem: undefined, fs: undefined })),
  ];
  for (const t of targets) {
    const over = opts.images?.[t.name];
    let path = over?.image ?? (opts.filesystems?.[t.name] ? undefined : t.image);
    let filesystem: PlannedFilesystem | undefined;
    if (t.filesystem) {
      work.dir ??= await createWorkDir();
      const b = await buildFilesystem(
        {
          name: t.name,
          dir: t.filesystem.dir,
          type: t.filesystem.type,
          ...(t.filesystem.fat ? { fat: t.filesystem.fat } : {}),
          ...(t.filesystem.label !== undefined ? { label: t.filesystem.label } : {}),
          ...(t.filesystem.uuid !== undefined ? { uuid: t.filesystem.uuid } : {}),
          size: t.capacity,
          startSector: Math.floor(t.offset / 512),
          seed: t.partuuid!.toLowerCase(),
          ...(dev.info.identity?.kind === 'file' ? { target: dev.info.identity.key } : {}),
        },
        work.dir,
        { signal: opts.signal },
      );
      await opts.checkInput?.(b.image, `the file system image built for --fs ${t.name}`);
      for (const m of b.otherMounts) await opts.checkInput?.(m, `a folder inside --fs ${t.name}=${t.filesystem.dir}`);
      notes.push(...b.notes);
      path = b.image;
      filesystem = {
        type: b.type,
        ...(b.fat ? { fat: b.fat } : {}),
        ...(b.label !== undefined ? { label: b.label } : {}),
        uuid: b.uuid,
        dir: b.dir,
        files: b.files,
        dirs: b.dirs,
        symlinks: b.symlinks,
        bytes: b.bytes,
      };
    } else if (t.fs && !path) {
      notes.push(`partition "${t.name}" has an fs (${t.fs.type}) in the profile but no folder (fs.dir or --fs ${t.name}=DIR): left as it is`);
    }
    if (!path) continue;
    const bmap = over ? over.bmap : filesystem ? undefined : t.bmap;
    // a raw region survives any table change; a partition only when the table is kept
    const kept = t.partition === undefined || table.kept;
    const info = await inspectImage({ path, bmapPath: bmap }, { capacity: t.capacity, ...(kept ? { compareWith: { dev, offset: t.offset } } : {}), signal: opts.signal });
    imageInfos.set(t.name, info);
    const skip = info.identical === true;
    const where = t.partition === undefined ? 'region' : 'partition';
    const holds = filesystem ? 'this file system' : 'this image';
    images.push({
      ...(t.partition !== undefined ? { partition: t.partition } : {}),
      name: t.name,
      offset: t.offset,
      capacity: t.capacity,
      path,
      ...(bmap ? { bmap } : {}),
      format: info.format,
      size: info.size,
      dataBytes: info.dataBytes,
      action: skip ? 'skip' : 'write',
      reason: skip ? `the ${where} already holds ${holds}` : kept ? `the ${where} differs from ${filesystem ? 'the file system' : 'the image'}` : 'new partition table',
      ...(filesystem ? { filesystem } : {}),
    });
  }
  return { images, imageInfos };
}

/**
 * Step 3, pstore: the region's geometry and format, the board's command line, and what happens to
 * records the region holds now (kept, or backed up into `risks` and formatted over).
 */
async function planPstore(
  dev: BlockDevice,
  profile: BoardProfile,
  table: TablePlan,
  { params, abi }: { params: PstoreParams; abi: AbiHint },
  opts: ProvisionOptions,
  notes: string[],
  risks: PlanInternals['extractions'],
): Promise<PstorePlan> {
  if (!profile.pstore) return profile.cmdline ? { cmdline: profile.cmdline.trim() } : {};
  const sel = profile.pstore.partition!;
  const part = table.partitions.find((p) => (typeof sel === 'number' ? p.number === sel : p.name === sel))!;
  const g = planGeometry(part.size, params);
  if (g.layout.errors.length) throw new BadInputError(`profile ${profile.name}: the kernel would refuse the pstore partition: ${g.layout.errors.join('; ')}`);
  notes.push(...g.assumptions);
  const fabi: Abi = { endian: abi.endian ?? 'le', layout: abi.layout ?? 'lp64' };
  if (profile.pstore.headers && (!abi.endian || !abi.layout)) notes.push(`pstore.headers without abi.endian/abi.layout: writing ${fabi.endian} ${fabi.layout} headers`);
  const format = planFormat(g.layout, { headers: profile.pstore.headers, abi: fabi });
  const blkdev = params.blkdev?.value ?? blkdevFor({ uuid: part.uuid, number: part.number });
  if (!params.blkdev) {
    notes.push(
      `the profile's cmdline has no pstore_blk.blkdev: naming the partition ${blkdev}` +
        (/by-partuuid/.test(blkdev) ? ', a udev link that must exist when pstore_blk loads (set pstore_blk.blkdev in the profile to name it as the board does)' : ''),
    );
  }
  const cmdline = buildCmdline(profile, g.layout, blkdev, params);
  let pAction: PlannedPstore['action'];
  let reason: string;
  let records: string[] = [];
  if (await isFormatted(dev, part.start, format, opts)) {
    pAction = 'none';
    reason = 'the region is already formatted';
  } else {
    const x = await findRecords(dev, part.start, part.size, params, abi);
    records = x ? x.records.map((r) => r.file) : [];
    if (x && table.kept && !opts.reformatPstore) {
      pAction = 'keep';
      reason = `the region holds ${records.length} record(s) of the board; left in place (extract them with "crashcart pstore extract", or pass --reformat-pstore)`;
    } else {
      pAction = 'format';
      reason = x ? `the region holds ${records.length} record(s); they are backed up, then the region is formatted` : 'the region is not formatted';
      if (x) risks.push({ risk: { description: `partition ${part.number} "${part.name}"`, offset: part.start, size: part.size, records }, x });
    }
  }
  const pstore: PlannedPstore = {
    partition: part.number,
    name: part.name,
    offset: part.start,
    size: part.size,
    layout: g.layout,
    action: pAction,
    reason,
    zeroBytes: format.zeroBytes,
    headers: format.headers.length,
    records,
    blkdev,
  };
  return { pstore, format, cmdline };
}

/**
 * Step 4, records at risk under the old table: a new table cuts away the card's old pstore region,
 * wherever it was; its records join `risks` unless step 3 already covers that region.
 */
async function planOldTableRecords(dev: BlockDevice, abi: AbiHint, pstore: PlannedPstore | undefined, notes: string[], risks: PlanInternals['extractions']): Promise<void> {
  try {
    const old = await locatePstoreRegion(dev, { purpose: 'read' });
    const dup = risks.some((r) => r.risk.offset === old.offset && r.risk.size === old.size);
    const same = pstore && old.offset === pstore.offset && old.size === pstore.size;
    if (!dup && !same) {
      const x = await findRecords(dev, old.offset, old.size, {}, abi);
      if (x) risks.push({ risk: { description: `old ${old.description}`, offset: old.offset, size: old.size, records: x.records.map((r) => r.file) }, x });
    }
  } catch (e) {
    if (!(e instanceof NoPstoreError) && !(e instanceof UsageError)) {
      if (!(e instanceof CrashcartError)) throw e;
      notes.push(`could not look for pstore records under the old table: ${e.message}`);
    }
  }
}

function tableBytes(t: TableWrite): number {
  const writes = t.kind === 'gpt' ? encodeGpt(t.gpt) : [...encodeMbr(t.mbr), ...t.wipe];
  return writes.reduce((a, w) => a + w.bytes.length, 0);
}

function formatBytesWritten(format: FormatPlan): number {
  return format.zeroBytes + format.headers.reduce((a, h) => a + h.bytes.length, 0);
}

/**
 * Works out what provisioning `dev` with `profile` would write. Reads only.
 * @throws UsageError when the profile has no layout, an image is missing, or the card holds a
 *   different partition table and `replaceTable` is not set; BadInputError when the card is too
 *   small or an image does not fit or fails its bmap checksums.
 */
export async function planProvision(dev: BlockDevice, profile: BoardProfile, opts: ProvisionOptions = {}): Promise<ProvisionPlan> {
  if (!profile.partitions?.length) throw new UsageError(`profile ${profile.name} has no partition layout ("partitions"); provisioning needs one`);
  const notes: string[] = [];
  const ss = gptSectorSize(dev);
  const minimumSize = checkProfileFits(dev, profile, opts, ss);
  const geometry = { sectorSize: ss, deviceSize: dev.size, alignment: profile.alignment };
  const table =
    profile.table === 'mbr'
      ? await planMbrTable(
          dev,
          profile,
          {
            ...layoutMbrPartitions(mbrPartitionRequests(profile.partitions), geometry),
            ...(profile.diskSignature ? { diskSignature: parseInt(profile.diskSignature, 16) } : {}),
          },
          opts,
        )
      : await planGptTable(
          dev,
          profile,
          {
            sectorSize: ss,
            partitions: layoutPartitions(partitionRequests(profile.partitions), geometry),
            ...(profile.hybridMbr ? { hybridMbr: hybridMbrSpec(profile.hybridMbr, profile.partitions) } : {}),
          },
          opts,
        );
  const { action, existing, write } = table;
  const work: { dir?: string } = {};
  let images: PlannedImage[], imageInfos: Map<string, ImageInfo>, pstore: PlannedPstore | undefined, format: FormatPlan | undefined, cmdline: string | undefined;
  const inputs = profilePstoreInputs(profile);
  const risks: PlanInternals['extractions'] = [];
  try {
    ({ images, imageInfos } = await planImages(dev, profile, table, opts, notes, work));
    ({ pstore, format, cmdline } = await planPstore(dev, profile, table, inputs, opts, notes, risks));
    if (!table.kept) await planOldTableRecords(dev, inputs.abi, pstore, notes, risks);
  } catch (e) {
    if (work.dir) await removeWorkDir(work.dir);
    throw e;
  }

  const bytesToWrite =
    (action === 'keep' ? 0 : tableBytes(write)) +
    images.filter((i) => i.action === 'write').reduce((a, i) => a + i.dataBytes, 0) +
    (pstore?.action === 'format' ? formatBytesWritten(format!) : 0);
  const plan: ProvisionPlan = {
    profile: { name: profile.name, path: profile.path },
    device: { name: dev.info.name, size: dev.size, blockSize: dev.blockSize, readOnly: dev.readOnly },
    sectorSize: ss,
    minimumSize,
    table: {
      kind: write.kind,
      action,
      reasons: action === 'keep' ? [] : table.differences,
      ...(write.kind === 'gpt' ? { diskGuid: write.gpt.diskGuid } : { diskSignature: signatureHex(write.mbr.diskSignature) }),
      ...(write.kind === 'mbr' && write.mbr.extended
        ? {
            extended: {
              number: write.mbr.extended.number,
              start: write.mbr.extended.firstLba * ss,
              size: (write.mbr.extended.lastLba - write.mbr.extended.firstLba + 1) * ss,
            },
          }
        : {}),
      ...(write.kind === 'gpt' && write.gpt.hybridMbr ? { hybridMbr: plannedHybridMbr(write.gpt) } : {}),
      partitions: table.partitions,
      existing: existing ? { kind: existing.kind, partitions: existing.partitions.length } : null,
    },
    images,
    ...(pstore ? { pstore } : {}),
    recordsAtRisk: risks.map((r) => r.risk),
    ...(cmdline ? { cmdline } : {}),
    notes: [...notes, ...(existing && action !== 'keep' ? [`the card now holds a ${describeTable(existing)}`] : [])],
    changes: bytesToWrite > 0,
    bytesToWrite,
  };
  internals.set(plan, { table: write, format, imageInfos, extractions: risks, ...(work.dir ? { workDir: work.dir } : {}) });
  return plan;
}

/** Removes the temporary file system images a plan built (call it when done with the plan, applied or not). */
export async function releaseProvision(plan: ProvisionPlan): Promise<void> {
  const inner = internals.get(plan);
  if (inner?.workDir) {
    await removeWorkDir(inner.workDir);
    delete inner.workDir;
  }
}

export interface ProvisionResult {
  /** Nothing was written: the card already matched. */
  unchanged: boolean;
  tableWritten: boolean;
  imagesWritten: { partition?: number; name: string; bytes: number }[];
  pstoreFormatted: boolean;
  /** Where records were saved before being destroyed. */
  backups: { dir: string; description: string; records: string[] }[];
  bytesWritten: number;
}

export interface ApplyOptions extends IoOptions {
  /** Folder for records the plan would destroy (required when plan.recordsAtRisk is not empty, unless discardRecords). */
  backupDir?: string;
  /** Destroy records without saving them. */
  discardRecords?: boolean;
  onStep?: (step: string) => void;
}

/**
 * Carries out a plan made by `planProvision` on the same device.
 * @throws WriteProtectedError when the plan writes and the device is read-only; UsageError
 *   when records are at risk and neither a backup folder nor discardRecords is given.
 */
export async function applyProvision(dev: BlockDevice, plan: ProvisionPlan, opts: ApplyOptions = {}): Promise<ProvisionResult> {
  const inner = internals.get(plan);
  if (!inner) throw new UsageError('applyProvision needs a plan made by planProvision');
  if (dev.info.name !== plan.device.name || dev.size !== plan.device.size) throw new UsageError(`the plan was made for ${plan.device.name}, not ${dev.info.name}`);
  const result: ProvisionResult = { unchanged: !plan.changes, tableWritten: false, imagesWritten: [], pstoreFormatted: false, backups: [], bytesWritten: 0 };
  if (!plan.changes) return result;
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected; provisioning would write ${formatBytes(plan.bytesToWrite)}`);
  const step = opts.onStep ?? (() => undefined);

  // 1. save what would be destroyed
  if (inner.extractions.length > 0 && !opts.discardRecords) {
    if (!opts.backupDir)
      throw new UsageError(
        `the card holds ${inner.extractions.reduce((a, e) => a + e.risk.records.length, 0)} pstore record(s) that provisioning would destroy: give a backup folder or discard them explicitly`,
      );
    // A folder of this run's own: never merged into an earlier backup.
    const base = await createRunDir(opts.backupDir, `crashcart-backup-${runStamp()}`);
    for (const [i, { risk, x }] of inner.extractions.entries()) {
      const dir = inner.extractions.length === 1 ? base : join(base, `${i + 1}-offset-${risk.offset}`);
      await writeExtraction(x, dir, { device: dev.info.name, offset: risk.offset, size: risk.size, description: risk.description }, { durable: true });
      result.backups.push({ dir, description: risk.description, records: risk.records });
      step(`backed up ${risk.records.length} record(s) of ${risk.description} to ${dir}`);
    }
  }

  // 2. partition table
  if (plan.table.action !== 'keep') {
    const t = inner.table;
    if (t.kind === 'gpt') await writeGpt(dev, t.gpt, opts);
    else await writeMbr(dev, t.mbr, { ...opts, extra: t.wipe });
    result.tableWritten = true;
    result.bytesWritten += tableBytes(t);
    step(`wrote the ${t.kind === 'gpt' ? (t.gpt.hybridMbr ? 'GPT and its hybrid MBR' : 'GPT') : 'MBR'} (${plan.table.partitions.length} partitions)`);
  }

  // 3. images
  for (const img of plan.images) {
    if (img.action !== 'write') continue;
    const n = await writeImage(dev, img.offset, { path: img.path, bmapPath: img.bmap }, inner.imageInfos.get(img.name)!, { capacity: img.capacity, signal: opts.signal });
    result.imagesWritten.push({ ...(img.partition !== undefined ? { partition: img.partition } : {}), name: img.name, bytes: n });
    result.bytesWritten += n;
    const what = img.filesystem ? `${img.filesystem.type} from ${img.filesystem.dir}` : img.path;
    step(`wrote ${what} to ${img.partition !== undefined ? `partition ${img.partition}` : `raw region at byte ${img.offset}`} "${img.name}" (${formatBytes(n)})`);
  }

  // 4. pstore
  if (plan.pstore?.action === 'format') {
    await applyFormat(dev, plan.pstore.offset, inner.format!, { signal: opts.signal });
    result.pstoreFormatted = true;
    result.bytesWritten += formatBytesWritten(inner.format!);
    step(`formatted the pstore region (partition ${plan.pstore.partition} "${plan.pstore.name}")`);
  }
  await dev.flush(opts);
  return result;
}
