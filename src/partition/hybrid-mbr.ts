/**
 * Sector 0 of a GPT disk: the protective MBR (one 0xEE slot over the disk), or a hybrid MBR for
 * boot ROMs and firmware that only read an MBR (the Raspberry Pi's, some SoCs' and old BIOSes):
 * up to three GPT partitions mirrored into MBR slots with an MBR type and boot flag, beside a
 * 0xEE slot that keeps GPT-aware tools and kernels reading the GPT.
 *
 * Laid out as `sgdisk --hybrid` does (gdisk 1.0.9, checked byte for byte in the tests): the 0xEE
 * slot covers LBA 1 (the GPT header) up to the sector before the lowest mirrored partition, and
 * comes first, the mirrored partitions after it in the order given; `protective: 'last'` puts it
 * after them instead (sgdisk's `-h 1:2:EE`). First is what gdisk recommends ("good for GRUB");
 * some firmware only looks at slot 1 and wants a FAT partition there, which is what last is for.
 * The disk signature bytes stay zero, as sgdisk leaves them.
 */
import { BadInputError } from '../errors.js';
import { GPT_PROTECTIVE_TYPE } from './mbr.js';
import { bootSector, setSlot } from './mbr-slot.js';
import type { MbrSlotInfo, PartitionTable } from './types.js';

/** A GPT partition mirrored into the hybrid MBR. */
export interface HybridMbrEntry {
  /** GPT partition number. */
  partition: number;
  /** MBR type byte. */
  type: number;
  bootable?: boolean;
}

export interface HybridMbrSpec {
  entries: HybridMbrEntry[];
  /** Where the 0xEE slot goes: before the mirrored partitions (default, sgdisk's default) or after them. */
  protective?: 'first' | 'last';
}

/** An MBR addresses 2^32 sectors at most. */
const MAX_SECTORS = 0xffffffff;

/**
 * The MBR type sgdisk gives a mirrored partition when none is named: gdisk's type code divided by
 * 0x100 (0700 basic data → 0x07, 8300 Linux → 0x83, EF00 ESP → 0xEF, …). Undefined for a type
 * with no such code: the profile must name the MBR type.
 */
const MBR_TYPE_OF_GPT_TYPE: Readonly<Record<string, number>> = {
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 0x07, // basic data (0700)
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 0x83, // Linux file system (8300)
  '8DA63339-0007-60C0-C436-083AC8230908': 0x83, // Linux reserved (8301)
  '933AC7E1-2EB4-4F13-B844-0E14E2AEF915': 0x83, // Linux /home (8302)
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 0x83, // Linux x86-64 root (8304)
  '69DAD710-2CE4-4E3C-B16C-21A1D49ABED3': 0x83, // Linux ARM32 root (8307)
  'B921B045-1DF0-41C3-AF44-4C6F280D3FAE': 0x83, // Linux ARM64 root (8305)
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 0x82, // Linux swap (8200)
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 0xef, // EFI system partition (EF00)
  '21686148-6449-6E6F-744E-656564454649': 0xef, // BIOS boot (EF02)
  'BC13C2FF-59E6-4262-A352-B275FD6F7172': 0xea, // XBOOTLDR (EA00)
};

export function defaultHybridMbrType(typeGuid: string): number | undefined {
  return MBR_TYPE_OF_GPT_TYPE[typeGuid.toUpperCase()];
}

interface Placed {
  number: number;
  name?: string;
  firstLba: number;
  lastLba: number;
}

/** The protective MBR's one slot: 0xEE from LBA 1 to the end of the disk (capped at 2^32 - 1 sectors). */
export function protectiveSlots(lastLba: number): MbrSlotInfo[] {
  return [{ slot: 0, bootable: false, type: GPT_PROTECTIVE_TYPE, firstLba: 1, sectors: Math.min(lastLba, MAX_SECTORS) }];
}

/**
 * The slots of the hybrid MBR for `spec` over the GPT's partitions.
 * @throws BadInputError for more than three entries, an unknown or repeated partition, or one
 *   an MBR cannot address (past 2^32 sectors).
 */
export function hybridSlots(spec: HybridMbrSpec, partitions: Placed[]): MbrSlotInfo[] {
  if (spec.entries.length < 1 || spec.entries.length > 3) {
    throw new BadInputError(`a hybrid MBR mirrors 1 to 3 partitions (the fourth slot holds the 0xEE entry); ${spec.entries.length} asked for`);
  }
  const seen = new Set<number>();
  const parts = spec.entries.map((e) => {
    const p = partitions.find((q) => q.number === e.partition);
    if (!p) throw new BadInputError(`hybrid MBR: there is no GPT partition ${e.partition}`);
    if (seen.has(e.partition)) throw new BadInputError(`hybrid MBR: partition ${e.partition} is listed twice`);
    seen.add(e.partition);
    if (p.lastLba > MAX_SECTORS - 1) {
      throw new BadInputError(`hybrid MBR: partition ${p.number}${p.name ? ` "${p.name}"` : ''} ends at LBA ${p.lastLba}, beyond the 2^32 sectors an MBR can address`);
    }
    if (!Number.isInteger(e.type) || e.type < 1 || e.type > 0xff || e.type === GPT_PROTECTIVE_TYPE) {
      throw new BadInputError(`hybrid MBR: partition ${p.number}: type ${e.type} is not an MBR type (1–255, not 0xee)`);
    }
    return { bootable: !!e.bootable, type: e.type, firstLba: p.firstLba, sectors: p.lastLba - p.firstLba + 1 };
  });
  const lowest = Math.min(...parts.map((p) => p.firstLba));
  const ee = { bootable: false, type: GPT_PROTECTIVE_TYPE, firstLba: 1, sectors: lowest - 1 };
  const ordered = spec.protective === 'last' ? [...parts, ee] : [ee, ...parts];
  return ordered.map((s, slot) => ({ slot, ...s }));
}

/** Sector 0 holding `slots` (sector size `ss`); the disk signature and boot code stay zero. */
export function encodeHybridMbr(slots: MbrSlotInfo[], ss: number): Uint8Array {
  const s = bootSector(ss);
  for (const e of slots) setSlot(s, e.slot, { bootable: e.bootable, type: e.type, firstLba: e.firstLba, lastLba: e.firstLba + e.sectors - 1 }, 0);
  return s;
}

function describe(e: MbrSlotInfo): string {
  return `slot ${e.slot + 1}: type 0x${e.type.toString(16).padStart(2, '0')}${e.bootable ? ' bootable' : ''}, LBA ${e.firstLba}+${e.sectors}`;
}

/**
 * How sector 0 of a GPT card differs from what the layout writes there. With a hybrid MBR every
 * slot must be as planned. Without one, only a hybrid MBR on the card is a difference (the
 * protective slot's exact extent varies between tools and is left alone).
 */
export function compareSector0(existing: PartitionTable, want: MbrSlotInfo[], hybrid: boolean): string[] {
  const have = existing.mbrSlots ?? [];
  if (!hybrid) {
    const mirrored = have.filter((e) => e.type !== GPT_PROTECTIVE_TYPE);
    return mirrored.length ? [`sector 0 holds a hybrid MBR (${have.map(describe).join('; ')}); the profile asks for a protective MBR`] : [];
  }
  const same =
    have.length === want.length &&
    want.every((w) => have.some((h) => h.slot === w.slot && h.type === w.type && h.bootable === w.bootable && h.firstLba === w.firstLba && h.sectors === w.sectors));
  if (same) return [];
  return [`sector 0 holds ${have.length ? have.map(describe).join('; ') : 'no MBR entries'}; the profile's hybrid MBR is ${want.map(describe).join('; ')}`];
}
