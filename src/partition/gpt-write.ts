/**
 * Writing GUID Partition Tables (UEFI spec, chapter 5) and checking whether a card already
 * carries a given layout.
 *
 * What gets written: a protective MBR in LBA 0 (one 0xEE slot covering the disk) or, when the
 * layout asks for one, a hybrid MBR (hybrid-mbr.ts), the primary
 * header in LBA 1 followed by its 128-entry array, the backup array just before the last LBA
 * and the backup header in the last LBA, all CRC32-protected. Partitions are placed on 1 MiB
 * boundaries by `layoutPartitions`. Partition and disk GUIDs are random (v4) unless a seed is
 * given, in which case they are derived from it (reproducible images and tests).
 */
import { crc32 } from 'node:zlib';
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { writeRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { BadInputError, UsageError, WriteProtectedError } from '../errors.js';
import { guidEquals, isGuid } from './guid.js';
import { compareSector0, encodeHybridMbr, hybridSlots, protectiveSlots, type HybridMbrSpec } from './hybrid-mbr.js';
import type { PartitionTable } from './types.js';

export const GPT_ENTRY_COUNT = 128;
export const GPT_ENTRY_SIZE = 128;
export const GPT_HEADER_SIZE = 92;
export const GPT_REVISION = 0x00010000;
/** Default partition alignment (what parted, sfdisk and sgdisk use). */
export const DEFAULT_ALIGNMENT = 1024 * 1024;
/** UTF-16 code units that fit in a GPT entry name. */
export const GPT_NAME_MAX = 36;

/** A partition as it should appear in the table (LBAs in the table's sector size, inclusive). */
export interface GptPartitionSpec {
  /** Linux partition number = entry index + 1. */
  number: number;
  name: string;
  /** Type GUID, 8-4-4-4-12 hex (any case). */
  typeGuid: string;
  /** Unique partition GUID (the kernel's PARTUUID); generated when absent. */
  uuid?: string;
  firstLba: number;
  lastLba: number;
  /** Attribute bits to set (0 required, 1 no-block-IO, 2 legacy BIOS bootable, 48–63 type-specific). */
  attributeBits?: number[];
}

export interface GptLayout {
  sectorSize: number;
  /** Disk GUID; generated when absent. */
  diskGuid?: string;
  partitions: GptPartitionSpec[];
  /** A hybrid MBR in sector 0 instead of the protective one. */
  hybridMbr?: HybridMbrSpec;
}

export interface GuidOptions {
  /**
   * Derive missing GUIDs from this text (SHA-256 of seed and role, shaped as a v4 GUID) instead
   * of drawing random ones: the same seed gives byte-identical tables.
   */
  guidSeed?: string;
}

/** The layout with every GUID filled in and the geometry the table will have. */
export interface ResolvedGpt {
  sectorSize: number;
  diskGuid: string;
  partitions: (GptPartitionSpec & { uuid: string })[];
  /** Last LBA of the device. */
  lastLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  /** Sectors taken by one partition entry array. */
  arraySectors: number;
  hybridMbr?: HybridMbrSpec;
}

/** Byte ranges to write, in device order. */
export interface GptWrite {
  offset: number;
  bytes: Uint8Array;
  what: string;
}

// ---------------------------------------------------------------------------------------------
// GUIDs

/** The 16 on-disk bytes of a GUID (first three fields little-endian). */
export function guidToBytes(guid: string): Uint8Array {
  if (!isGuid(guid)) throw new UsageError(`invalid GUID "${guid}": expected 8-4-4-4-12 hex digits`);
  const hex = guid.replace(/-/g, '');
  const raw = Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  const out = new Uint8Array(16);
  out.set([raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]], 0);
  out.set(raw.subarray(8), 8);
  return out;
}

/** A random (v4) GUID, or one derived from `seed` and `role` when a seed is given. Uppercase. */
export function makeGuid(role: string, seed?: string): string {
  // node:crypto when a GUID is made, not when the module loads (~4 ms of every command planning a layout)
  const { createHash, randomUUID } = process.getBuiltinModule('node:crypto');
  if (seed === undefined) return randomUUID().toUpperCase();
  const h = createHash('sha256').update(`crashcart-gpt\0${seed}\0${role}`).digest();
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`.toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Placing partitions

/** What a profile asks for: a size and/or a start, in bytes; `size: 'rest'` fills the disk. */
export interface PartitionRequest {
  name: string;
  typeGuid: string;
  /** Bytes, or 'rest' for everything up to the end of the usable area (last partition only). */
  size: number | 'rest';
  /** Byte offset; default: right after the previous partition, rounded up to the alignment. */
  start?: number;
  uuid?: string;
  attributeBits?: number[];
}

export interface LayoutOptions {
  sectorSize: number;
  /** Device size in bytes. */
  deviceSize: number;
  /** Alignment of partition starts in bytes (default 1 MiB). */
  alignment?: number;
}

/** First and last usable LBA of a GPT on a device of `deviceSize` bytes. */
export function usableRange(deviceSize: number, sectorSize: number): { firstUsableLba: number; lastUsableLba: number; lastLba: number; arraySectors: number } {
  const arraySectors = Math.ceil((GPT_ENTRY_COUNT * GPT_ENTRY_SIZE) / sectorSize);
  const lastLba = Math.floor(deviceSize / sectorSize) - 1;
  return { firstUsableLba: 2 + arraySectors, lastUsableLba: lastLba - 1 - arraySectors, lastLba, arraySectors };
}

/**
 * Bytes a device needs to hold the requests: the end of the last fixed-size partition plus the
 * backup array and header, and at least one alignment unit for a `rest` partition.
 */
export function minimumDeviceSize(requests: PartitionRequest[], sectorSize: number, alignment = DEFAULT_ALIGNMENT): number {
  const arraySectors = Math.ceil((GPT_ENTRY_COUNT * GPT_ENTRY_SIZE) / sectorSize);
  let end = (2 + arraySectors) * sectorSize;
  let maxEnd = end;
  for (const r of requests) {
    const start = r.start ?? Math.ceil(end / alignment) * alignment;
    end = start + (r.size === 'rest' ? alignment : r.size);
    maxEnd = Math.max(maxEnd, end);
  }
  return maxEnd + (1 + arraySectors) * sectorSize;
}

/**
 * Turns requests into GPT entries (numbered 1, 2, … in request order).
 * @throws BadInputError when partitions overlap, are misaligned to the sector size, or do not
 *   fit on the device (the message says how much space is missing).
 */
export function layoutPartitions(requests: PartitionRequest[], opts: LayoutOptions): GptPartitionSpec[] {
  const ss = opts.sectorSize;
  const align = opts.alignment ?? DEFAULT_ALIGNMENT;
  if (align % ss !== 0) throw new UsageError(`alignment ${align} is not a multiple of the ${ss}-byte sector size`);
  if (requests.length > GPT_ENTRY_COUNT) throw new BadInputError(`${requests.length} partitions requested; a GPT holds ${GPT_ENTRY_COUNT}`);
  const { firstUsableLba, lastUsableLba } = usableRange(opts.deviceSize, ss);
  if (lastUsableLba < firstUsableLba) throw new BadInputError(`a device of ${opts.deviceSize} bytes is too small for a GPT`);
  const out: GptPartitionSpec[] = [];
  let nextLba = firstUsableLba;
  requests.forEach((r, i) => {
    const label = `partition ${i + 1} "${r.name}"`;
    let startByte: number;
    if (r.start !== undefined) {
      if (r.start % ss !== 0) throw new BadInputError(`${label}: start ${r.start} is not a multiple of the ${ss}-byte sector size`);
      startByte = r.start;
      if (startByte / ss < nextLba) {
        throw new BadInputError(
          `${label}: start ${startByte} (${formatBytes(startByte)}) overlaps ${i === 0 ? 'the primary GPT' : `partition ${i} "${requests[i - 1].name}"`}, which ends at ${nextLba * ss}`,
        );
      }
    } else {
      startByte = Math.ceil((nextLba * ss) / align) * align;
    }
    const firstLba = startByte / ss;
    let lastLba: number;
    if (r.size === 'rest') {
      if (i !== requests.length - 1) throw new BadInputError(`${label}: only the last partition can take the rest of the device`);
      // end on an alignment boundary so the table stays the same when the device grows by less than that
      const endByte = Math.floor(((lastUsableLba + 1) * ss) / align) * align;
      lastLba = endByte / ss - 1;
      if (lastLba < firstLba) {
        throw new BadInputError(`${label}: no space left for it (it would start at ${formatBytes(startByte)} on a ${formatBytes(opts.deviceSize)} device)`);
      }
    } else {
      if (r.size <= 0 || r.size % ss !== 0) throw new BadInputError(`${label}: size ${r.size} is not a positive multiple of the ${ss}-byte sector size`);
      lastLba = firstLba + r.size / ss - 1;
    }
    if (lastLba > lastUsableLba) {
      const need = minimumDeviceSize(requests, ss, align);
      throw new BadInputError(
        `${label} ends at byte ${(lastLba + 1) * ss} but the usable area of the ${formatBytes(opts.deviceSize)} device ends at ${(lastUsableLba + 1) * ss}; ` +
          `the layout needs a device of at least ${need} bytes (${formatBytes(need)})`,
      );
    }
    out.push({ number: i + 1, name: r.name, typeGuid: r.typeGuid, uuid: r.uuid, firstLba, lastLba, attributeBits: r.attributeBits });
    nextLba = lastLba + 1;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building the table

function encodeName(name: string): Uint8Array {
  const out = new Uint8Array(GPT_NAME_MAX * 2);
  if (name.length > GPT_NAME_MAX) throw new UsageError(`partition name "${name}" is longer than ${GPT_NAME_MAX} UTF-16 code units`);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    out[i * 2] = c & 0xff;
    out[i * 2 + 1] = c >> 8;
  }
  return out;
}

/** Fills in GUIDs and checks the layout against the device size. */
export function resolveGpt(layout: GptLayout, deviceSize: number, opts: GuidOptions = {}): ResolvedGpt {
  const ss = layout.sectorSize;
  if (ss < 512 || (ss & (ss - 1)) !== 0) throw new UsageError(`sector size ${ss} is not a power of two ≥ 512`);
  const { firstUsableLba, lastUsableLba, lastLba, arraySectors } = usableRange(deviceSize, ss);
  if (lastUsableLba < firstUsableLba) throw new BadInputError(`a device of ${deviceSize} bytes is too small for a GPT`);
  const numbers = new Set<number>();
  const partitions = layout.partitions.map((p) => {
    if (!Number.isInteger(p.number) || p.number < 1 || p.number > GPT_ENTRY_COUNT) throw new UsageError(`partition number ${p.number} is outside 1–${GPT_ENTRY_COUNT}`);
    if (numbers.has(p.number)) throw new UsageError(`partition number ${p.number} used twice`);
    numbers.add(p.number);
    if (!isGuid(p.typeGuid) || /^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(p.typeGuid)) throw new UsageError(`partition ${p.number}: invalid type GUID "${p.typeGuid}"`);
    if (p.firstLba < firstUsableLba || p.lastLba > lastUsableLba || p.firstLba > p.lastLba) {
      throw new BadInputError(`partition ${p.number} "${p.name}" (LBA ${p.firstLba}–${p.lastLba}) lies outside the usable range ${firstUsableLba}–${lastUsableLba}`);
    }
    encodeName(p.name);
    return { ...p, typeGuid: p.typeGuid.toUpperCase(), uuid: (p.uuid ?? makeGuid(`partition-${p.number}-${p.name}`, opts.guidSeed)).toUpperCase() };
  });
  const sorted = [...partitions].sort((a, b) => a.firstLba - b.firstLba);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].firstLba <= sorted[i - 1].lastLba) throw new BadInputError(`partitions ${sorted[i - 1].number} and ${sorted[i].number} overlap`);
  }
  const uuids = new Set(partitions.map((p) => p.uuid));
  const diskGuid = (layout.diskGuid ?? makeGuid('disk', opts.guidSeed)).toUpperCase();
  if (uuids.size !== partitions.length || uuids.has(diskGuid)) throw new UsageError('partition and disk GUIDs must all differ');
  if (layout.hybridMbr) hybridSlots(layout.hybridMbr, partitions);
  return { sectorSize: ss, diskGuid, partitions, lastLba, firstUsableLba, lastUsableLba, arraySectors, ...(layout.hybridMbr ? { hybridMbr: layout.hybridMbr } : {}) };
}

/** The partition entry array (128 entries of 128 bytes). */
export function encodeEntryArray(g: ResolvedGpt): Uint8Array {
  const arr = new Uint8Array(GPT_ENTRY_COUNT * GPT_ENTRY_SIZE);
  const dv = new DataView(arr.buffer);
  for (const p of g.partitions) {
    const o = (p.number - 1) * GPT_ENTRY_SIZE;
    arr.set(guidToBytes(p.typeGuid), o);
    arr.set(guidToBytes(p.uuid), o + 16);
    dv.setBigUint64(o + 32, BigInt(p.firstLba), true);
    dv.setBigUint64(o + 40, BigInt(p.lastLba), true);
    let attrs = 0n;
    for (const b of p.attributeBits ?? []) {
      if (!Number.isInteger(b) || b < 0 || b > 63) throw new UsageError(`partition ${p.number}: attribute bit ${b} is outside 0–63`);
      attrs |= 1n << BigInt(b);
    }
    dv.setBigUint64(o + 48, attrs, true);
    arr.set(encodeName(p.name), o + 56);
  }
  return arr;
}

function encodeHeader(g: ResolvedGpt, which: 'primary' | 'backup', arrayCrc: number): Uint8Array {
  const h = new Uint8Array(g.sectorSize);
  const dv = new DataView(h.buffer);
  h.set(new TextEncoder().encode('EFI PART'), 0);
  dv.setUint32(8, GPT_REVISION, true);
  dv.setUint32(12, GPT_HEADER_SIZE, true);
  const my = which === 'primary' ? 1 : g.lastLba;
  const alt = which === 'primary' ? g.lastLba : 1;
  dv.setBigUint64(24, BigInt(my), true);
  dv.setBigUint64(32, BigInt(alt), true);
  dv.setBigUint64(40, BigInt(g.firstUsableLba), true);
  dv.setBigUint64(48, BigInt(g.lastUsableLba), true);
  h.set(guidToBytes(g.diskGuid), 56);
  dv.setBigUint64(72, BigInt(which === 'primary' ? 2 : g.lastLba - g.arraySectors), true);
  dv.setUint32(80, GPT_ENTRY_COUNT, true);
  dv.setUint32(84, GPT_ENTRY_SIZE, true);
  dv.setUint32(88, arrayCrc, true);
  dv.setUint32(16, crc32(h.subarray(0, GPT_HEADER_SIZE)) >>> 0, true);
  return h;
}

/** The used slots of sector 0 for this table: the hybrid MBR's, or the protective one. */
export function sector0Slots(g: { hybridMbr?: HybridMbrSpec; partitions: GptPartitionSpec[]; lastLba: number }) {
  return g.hybridMbr ? hybridSlots(g.hybridMbr, g.partitions) : protectiveSlots(g.lastLba);
}

/**
 * Protective MBR: one slot of type 0xEE from LBA 1 to the end of the disk (capped at 2^32-1);
 * or the hybrid MBR the layout asks for.
 */
export function encodeProtectiveMbr(g: ResolvedGpt): Uint8Array {
  if (g.hybridMbr) return encodeHybridMbr(hybridSlots(g.hybridMbr, g.partitions), g.sectorSize);
  const s = new Uint8Array(g.sectorSize);
  const dv = new DataView(s.buffer);
  const o = 446;
  s[o] = 0x00;
  s.set([0x00, 0x02, 0x00], o + 1); // CHS of LBA 1
  s[o + 4] = 0xee;
  s.set([0xff, 0xff, 0xff], o + 5); // CHS past the addressable range
  dv.setUint32(o + 8, 1, true);
  dv.setUint32(o + 12, Math.min(g.lastLba, 0xffffffff), true);
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

/** Every byte range a GPT write consists of: protective MBR, primary header + array, backup array + header. */
export function encodeGpt(g: ResolvedGpt): GptWrite[] {
  const ss = g.sectorSize;
  const array = new Uint8Array(g.arraySectors * ss);
  array.set(encodeEntryArray(g));
  const arrayCrc = crc32(array.subarray(0, GPT_ENTRY_COUNT * GPT_ENTRY_SIZE)) >>> 0;
  return [
    { offset: 0, bytes: encodeProtectiveMbr(g), what: g.hybridMbr ? 'hybrid MBR' : 'protective MBR' },
    { offset: ss, bytes: encodeHeader(g, 'primary', arrayCrc), what: 'primary GPT header' },
    { offset: 2 * ss, bytes: array, what: 'primary partition entries' },
    { offset: (g.lastLba - g.arraySectors) * ss, bytes: array, what: 'backup partition entries' },
    { offset: g.lastLba * ss, bytes: encodeHeader(g, 'backup', arrayCrc), what: 'backup GPT header' },
  ];
}

/**
 * Writes a GPT on `dev` and flushes. The backup copy goes first so that an interrupted write
 * leaves either the old primary table or a complete new one in front.
 * @returns the table as written (with the GUIDs that were generated).
 */
export async function writeGpt(dev: BlockDevice, layout: GptLayout | ResolvedGpt, opts: GuidOptions & IoOptions = {}): Promise<ResolvedGpt> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected; cannot write a partition table`);
  const g = 'lastLba' in layout ? layout : resolveGpt(layout, dev.size, opts);
  if (g.lastLba !== Math.floor(dev.size / g.sectorSize) - 1) throw new UsageError(`the table was planned for a device of a different size than ${dev.info.name}`);
  const writes = encodeGpt(g);
  for (const w of [...writes].reverse()) await writeRange(dev, w.offset, w.bytes, opts);
  await dev.flush(opts);
  return g;
}

// ---------------------------------------------------------------------------------------------
// Comparing with what a card holds

export type GptMatch =
  /** The card carries exactly this layout (names, types, positions; GUIDs where the layout fixes them). */
  | { status: 'match'; differences: []; notes: string[] }
  /** Same partitions, but the table needs rewriting (damaged or misplaced backup, warnings). GUIDs can be kept. */
  | { status: 'repair'; differences: string[]; notes: string[] }
  /** No partition table at all. */
  | { status: 'none'; differences: string[]; notes: string[] }
  /** A different table (MBR, other partitions, other sector size). */
  | { status: 'differs'; differences: string[]; notes: string[] };

/**
 * Compares the table a card holds (`readPartitionTable`) with the layout it should hold.
 * GUIDs are only compared where the layout fixes them; the existing ones are otherwise kept.
 */
export function compareGpt(existing: PartitionTable | null, layout: GptLayout, deviceSize: number): GptMatch {
  if (!existing) return { status: 'none', differences: ['the card has no partition table'], notes: [] };
  const diffs: string[] = [];
  if (existing.kind !== 'gpt') return { status: 'differs', differences: [`the card has an MBR partition table with ${existing.partitions.length} partition(s)`], notes: [] };
  if (existing.sectorSize !== layout.sectorSize) {
    return { status: 'differs', differences: [`the table uses ${existing.sectorSize}-byte sectors, the layout ${layout.sectorSize}-byte ones`], notes: [] };
  }
  if (layout.diskGuid && existing.diskGuid && !guidEquals(layout.diskGuid, existing.diskGuid)) diffs.push(`disk GUID is ${existing.diskGuid}, expected ${layout.diskGuid}`);
  const want = new Map(layout.partitions.map((p) => [p.number, p]));
  for (const e of existing.partitions) {
    const w = want.get(e.number);
    const desc = `partition ${e.number}${e.name ? ` "${e.name}"` : ''}`;
    if (!w) {
      diffs.push(`${desc} (LBA ${e.firstLba}–${e.lastLba}) is not in the layout`);
      continue;
    }
    if ((e.name ?? '') !== w.name) diffs.push(`partition ${e.number} is named "${e.name ?? ''}", expected "${w.name}"`);
    if (!e.typeGuid || !guidEquals(e.typeGuid, w.typeGuid)) diffs.push(`${desc} has type ${e.typeGuid}, expected ${w.typeGuid.toUpperCase()}`);
    if (e.firstLba !== w.firstLba || e.lastLba !== w.lastLba) diffs.push(`${desc} spans LBA ${e.firstLba}–${e.lastLba}, expected ${w.firstLba}–${w.lastLba}`);
    if (w.uuid && e.uuid && !guidEquals(w.uuid, e.uuid)) diffs.push(`${desc} has GUID ${e.uuid}, expected ${w.uuid.toUpperCase()}`);
    const bits = [...(w.attributeBits ?? [])].sort((a, b) => a - b);
    if ((e.attributeBits ?? []).join(',') !== bits.join(',')) diffs.push(`${desc} has attribute bits [${(e.attributeBits ?? []).join(',')}], expected [${bits.join(',')}]`);
  }
  for (const w of layout.partitions) {
    if (!existing.partitions.some((e) => e.number === w.number)) diffs.push(`partition ${w.number} "${w.name}" is missing`);
  }
  if (diffs.length > 0) return { status: 'differs', differences: diffs, notes: [] };
  const { lastLba } = usableRange(deviceSize, layout.sectorSize);
  const repairs = [...existing.warnings];
  // sector 0: same partitions, so a protective MBR where a hybrid one belongs (or the reverse) is rewritten with the table
  repairs.push(...compareSector0(existing, sector0Slots({ hybridMbr: layout.hybridMbr, partitions: layout.partitions, lastLba }), !!layout.hybridMbr));
  if (existing.header === 'backup') repairs.push('the primary GPT is damaged (read from the backup)');
  if (repairs.length > 0) return { status: 'repair', differences: repairs, notes: [`last LBA ${lastLba}`] };
  return { status: 'match', differences: [], notes: [] };
}
