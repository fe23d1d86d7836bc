/**
 * Classic MBR (DOS) partition tables: four primary slots at byte 446, signature 0x55AA, and
 * extended partitions (types 0x05, 0x0f, 0x85) holding a chain of EBRs whose logical
 * partitions Linux numbers 5, 6, … in chain order.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import type { Partition, PartitionTable } from './types.js';

export interface MbrEntry {
  /** Slot 0–3. */
  slot: number;
  status: number;
  type: number;
  /** Start and length in sectors, as stored (relative to whatever the entry is relative to). */
  lbaStart: number;
  sectors: number;
}

export const EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);
export const GPT_PROTECTIVE_TYPE = 0xee;

/** True when the 512-byte sector ends with the 0x55AA boot signature. */
export function hasBootSignature(sector: Uint8Array): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

/** The four table slots of a boot sector (empty ones included, type 0). */
export function readMbrEntries(sector: Uint8Array): MbrEntry[] {
  const dv = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const out: MbrEntry[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const o = 446 + slot * 16;
    out.push({
      slot,
      status: sector[o],
      type: sector[o + 4],
      lbaStart: dv.getUint32(o + 8, true),
      sectors: dv.getUint32(o + 12, true),
    });
  }
  return out;
}

/** True when the sector is a protective (or hybrid) MBR: signature plus a type-0xEE slot. */
export function isProtectiveMbr(sector: Uint8Array): boolean {
  return hasBootSignature(sector) && readMbrEntries(sector).some((e) => e.type === GPT_PROTECTIVE_TYPE);
}

/** A FAT/exFAT/NTFS boot sector (a "superfloppy" with no partition table) also ends in 0x55AA. */
function looksLikeVolumeBootRecord(sector: Uint8Array): boolean {
  const jump = sector[0] === 0xeb || sector[0] === 0xe9;
  if (!jump) return false;
  const text = new TextDecoder('latin1').decode(sector.subarray(3, 90));
  return /FAT|EXFAT|NTFS/.test(text);
}

const MAX_LOGICAL = 251; // Linux allows partition numbers up to 255 on msdos labels

/** What every partition of one MBR is built against; `warnings` collects the table's problems. */
interface MbrContext {
  sectorSize: number;
  totalSectors: number;
  diskSignature: string;
  warnings: string[];
}

/** The extended partition whose EBR chain holds the logical partitions (sectors, absolute). */
interface ExtendedRange {
  start: number;
  sectors: number;
}

/** Checks of sector 0: false when it is not an MBR this parser reads (see parseMbr). */
function isPlainMbr(sector: Uint8Array, entries: MbrEntry[]): boolean {
  if (entries.some((e) => e.type === GPT_PROTECTIVE_TYPE)) return false;
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) return false;
  return !(entries.every((e) => e.type === 0) && looksLikeVolumeBootRecord(sector));
}

function makePartition(ctx: MbrContext, number: number, first: number, sectors: number, type: number, status: number): Partition {
  const last = first + sectors - 1;
  if (last >= ctx.totalSectors) {
    ctx.warnings.push(`partition ${number} (sectors ${first}–${last}) extends past the end of the device (${ctx.totalSectors} sectors); truncated image?`);
  }
  return {
    number,
    start: first * ctx.sectorSize,
    size: sectors * ctx.sectorSize,
    firstLba: first,
    lastLba: last,
    type,
    uuid: `${ctx.diskSignature}-${number.toString(16).padStart(2, '0')}`,
    bootable: status === 0x80,
  };
}

/** The primary entries (slots 1–4, numbered by slot) and the first extended partition among them. */
function readPrimaries(ctx: MbrContext, entries: MbrEntry[]): { primaries: Partition[]; extended?: ExtendedRange } {
  const primaries: Partition[] = [];
  let extended: ExtendedRange | undefined;
  for (const e of entries) {
    if (e.type === 0) continue;
    if (e.sectors === 0 || e.lbaStart === 0) {
      ctx.warnings.push(`MBR slot ${e.slot + 1} (type 0x${e.type.toString(16)}) has ${e.sectors === 0 ? 'zero length' : 'start sector 0'}; ignored`);
      continue;
    }
    const p = makePartition(ctx, e.slot + 1, e.lbaStart, e.sectors, e.type, e.status);
    if (EXTENDED_TYPES.has(e.type)) {
      p.extended = true;
      if (extended) ctx.warnings.push(`more than one extended partition; only the first (slot ${primaries.find((q) => q.extended)?.number}) is followed`);
      else extended = { start: e.lbaStart, sectors: e.sectors };
    }
    primaries.push(p);
  }
  return { primaries, extended };
}

/**
 * The extended chain: walks the EBRs from the start of the extended partition, numbering the
 * logical partitions 5, 6, … in chain order. Stops with a warning on a loop, an EBR outside the
 * extended partition or the device, a missing signature, or too many logical partitions.
 */
async function walkEbrChain(dev: BlockDevice, ctx: MbrContext, extended: ExtendedRange, opts?: IoOptions): Promise<Partition[]> {
  const logicals: Partition[] = [];
  const visited = new Set<number>();
  let ebrRel = 0;
  let number = 5;
  for (;;) {
    const ebrLba = extended.start + ebrRel;
    if (visited.has(ebrLba)) {
      ctx.warnings.push(`EBR chain loops back to sector ${ebrLba}; stopped`);
      break;
    }
    visited.add(ebrLba);
    if (ebrRel >= extended.sectors || ebrLba >= ctx.totalSectors) {
      ctx.warnings.push(`EBR at sector ${ebrLba} lies outside the extended partition or the device; chain stopped`);
      break;
    }
    const ebr = await readRange(dev, ebrLba * ctx.sectorSize, 512, opts);
    if (!hasBootSignature(ebr)) {
      ctx.warnings.push(`EBR at sector ${ebrLba} has no 0x55AA signature; chain stopped`);
      break;
    }
    const [data, link] = readMbrEntries(ebr);
    if (data.type !== 0 && data.sectors > 0 && !EXTENDED_TYPES.has(data.type)) {
      const first = ebrLba + data.lbaStart;
      const p = makePartition(ctx, number, first, data.sectors, data.type, data.status);
      p.logical = true;
      const last = first + data.sectors - 1;
      if (last >= extended.start + extended.sectors) {
        ctx.warnings.push(`logical partition ${number} ends after its extended partition`);
      }
      logicals.push(p);
      number++;
      if (number - 5 >= MAX_LOGICAL) {
        ctx.warnings.push(`more than ${MAX_LOGICAL} logical partitions; stopped`);
        break;
      }
    }
    if (link.type === 0 || link.sectors === 0 || !EXTENDED_TYPES.has(link.type)) break;
    ebrRel = link.lbaStart;
  }
  return logicals;
}

/**
 * Parses an MBR. Returns null when sector 0 is not an MBR (no signature, invalid boot flags,
 * a volume boot record, or a GPT protective MBR — that one belongs to the GPT parser).
 */
export async function parseMbr(dev: BlockDevice, opts?: IoOptions): Promise<PartitionTable | null> {
  const ss = dev.blockSize >= 512 ? dev.blockSize : 512;
  if (dev.size < 512) return null;
  const sector = await readRange(dev, 0, 512, opts);
  if (!hasBootSignature(sector)) return null;
  const entries = readMbrEntries(sector);
  if (!isPlainMbr(sector, entries)) return null;

  const dv = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const ctx: MbrContext = {
    sectorSize: ss,
    totalSectors: Math.floor(dev.size / ss),
    diskSignature: dv.getUint32(440, true).toString(16).padStart(8, '0'),
    warnings: [],
  };
  const { primaries, extended } = readPrimaries(ctx, entries);
  const partitions = extended ? [...primaries, ...(await walkEbrChain(dev, ctx, extended, opts))] : primaries;
  partitions.sort((a, b) => a.number - b.number);
  return { kind: 'mbr', sectorSize: ss, partitions, warnings: ctx.warnings, diskSignature: ctx.diskSignature };
}
