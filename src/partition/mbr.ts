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
  if (entries.some((e) => e.type === GPT_PROTECTIVE_TYPE)) return null;
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) return null;
  const used = entries.filter((e) => e.type !== 0);
  if (used.length === 0 && looksLikeVolumeBootRecord(sector)) return null;

  const warnings: string[] = [];
  const totalSectors = Math.floor(dev.size / ss);
  const dv = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const diskSignature = dv.getUint32(440, true).toString(16).padStart(8, '0');
  const partitions: Partition[] = [];

  const make = (number: number, first: number, sectors: number, type: number, status: number): Partition => {
    const last = first + sectors - 1;
    if (last >= totalSectors) {
      warnings.push(`partition ${number} (sectors ${first}–${last}) extends past the end of the device (${totalSectors} sectors); truncated image?`);
    }
    const p: Partition = {
      number,
      start: first * ss,
      size: sectors * ss,
      firstLba: first,
      lastLba: last,
      type,
      uuid: `${diskSignature}-${number.toString(16).padStart(2, '0')}`,
      bootable: status === 0x80,
    };
    return p;
  };

  let extended: { start: number; sectors: number } | undefined;
  for (const e of used) {
    if (e.sectors === 0 || e.lbaStart === 0) {
      warnings.push(`MBR slot ${e.slot + 1} (type 0x${e.type.toString(16)}) has ${e.sectors === 0 ? 'zero length' : 'start sector 0'}; ignored`);
      continue;
    }
    const p = make(e.slot + 1, e.lbaStart, e.sectors, e.type, e.status);
    if (EXTENDED_TYPES.has(e.type)) {
      p.extended = true;
      if (extended) warnings.push(`more than one extended partition; only the first (slot ${partitions.find((q) => q.extended)?.number}) is followed`);
      else extended = { start: e.lbaStart, sectors: e.sectors };
    }
    partitions.push(p);
  }

  if (extended) {
    const visited = new Set<number>();
    let ebrRel = 0;
    let number = 5;
    for (;;) {
      const ebrLba = extended.start + ebrRel;
      if (visited.has(ebrLba)) {
        warnings.push(`EBR chain loops back to sector ${ebrLba}; stopped`);
        break;
      }
      visited.add(ebrLba);
      if (ebrRel >= extended.sectors || ebrLba >= totalSectors) {
        warnings.push(`EBR at sector ${ebrLba} lies outside the extended partition or the device; chain stopped`);
        break;
      }
      const ebr = await readRange(dev, ebrLba * ss, 512, opts);
      if (!hasBootSignature(ebr)) {
        warnings.push(`EBR at sector ${ebrLba} has no 0x55AA signature; chain stopped`);
        break;
      }
      const [data, link] = readMbrEntries(ebr);
      if (data.type !== 0 && data.sectors > 0 && !EXTENDED_TYPES.has(data.type)) {
        const first = ebrLba + data.lbaStart;
        const p = make(number, first, data.sectors, data.type, data.status);
        p.logical = true;
        const last = first + data.sectors - 1;
        if (last >= extended.start + extended.sectors) {
          warnings.push(`logical partition ${number} ends after its extended partition`);
        }
        partitions.push(p);
        number++;
        if (number - 5 >= MAX_LOGICAL) {
          warnings.push(`more than ${MAX_LOGICAL} logical partitions; stopped`);
          break;
        }
      }
      if (link.type === 0 || link.sectors === 0 || !EXTENDED_TYPES.has(link.type)) break;
      ebrRel = link.lbaStart;
    }
  }

  partitions.sort((a, b) => a.number - b.number);
  return { kind: 'mbr', sectorSize: ss, partitions, warnings, diskSignature };
}
