/**
 * Writing classic MBR ("msdos", "dos") partition tables and checking whether a card already
 * carries a given one.
 *
 * What gets written: sector 0 with the disk signature (bytes 440–443), up to four primary slots
 * and the 0x55AA signature; when there are logical partitions, one extended partition (type 0x05,
 * in the slot after the primaries) holding a chain of EBRs, one in front of each logical
 * partition: its first slot describes the logical partition (start relative to the EBR), its
 * second links the next EBR (start relative to the extended partition), as fdisk and the
 * kernel's msdos parser expect. Linux numbers the logical partitions 5, 6, … in chain order.
 *
 * Partitions start on `alignment` boundaries (1 MiB by default, as fdisk and sfdisk); the EBR of
 * a logical partition sits in the sector right after the previous partition, the partition itself
 * on the next boundary. The disk signature is random unless a seed is given (reproducible
 * PARTUUIDs `SSSSSSSS-NN`). Boot code in bytes 0–439 is written as zeros.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { writeRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { BadInputError, UsageError, WriteProtectedError } from '../errors.js';
import { DEFAULT_ALIGNMENT } from './gpt-write.js';
import { EXTENDED_TYPES, GPT_PROTECTIVE_TYPE } from './mbr.js';
import type { PartitionTable } from './types.js';
import { bootSector, setSlot } from './mbr-slot.js';

/** The type of the extended partition crashcart writes (what fdisk and sfdisk write: "Extended"). */
export const EXTENDED_TYPE = 0x05;
/** An MBR addresses 2^32 sectors at most. */
const MAX_SECTORS = 0xffffffff;

/** MBR partition type aliases a profile may use instead of a number (names as fdisk lists them). */
export const MBR_TYPE_ALIASES: Readonly<Record<string, number>> = {
  linux: 0x83,
  'linux-swap': 0x82,
  'linux-lvm': 0x8e,
  'linux-raid': 0xfd,
  fat12: 0x01,
  fat16: 0x0e,
  fat32: 0x0c,
  'w95-fat32-lba': 0x0c,
  'w95-fat32': 0x0b,
  'w95-fat16-lba': 0x0e,
  esp: 0xef,
  efi: 0xef,
  ntfs: 0x07,
  exfat: 0x07,
  /** Non-FS data: raw data kept away from auto-mounters (the kernel ignores the type). */
  'non-fs-data': 0xda,
  pstore: 0xda,
};

/**
 * Resolves an MBR type: an alias, a number 1–255, or a hex string as fdisk prints it (`83`, `0x83`).
 * Undefined when it is none of these, or a type a profile cannot ask for (empty, extended, GPT protective).
 */
export function resolveMbrType(t: string | number): number | undefined {
  let n: number | undefined;
  if (typeof t === 'number') n = Number.isInteger(t) ? t : undefined;
  else if (Object.hasOwn(MBR_TYPE_ALIASES, t.toLowerCase())) n = MBR_TYPE_ALIASES[t.toLowerCase()];
  else if (/^(0x)?[0-9a-f]{1,2}$/i.test(t)) n = parseInt(t.replace(/^0x/i, ''), 16);
  if (n === undefined || n < 1 || n > 0xff || EXTENDED_TYPES.has(n) || n === GPT_PROTECTIVE_TYPE) return undefined;
  return n;
}

/** `0x83`: how plans print an MBR type. */
export function mbrTypeHex(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}

/** What a profile asks for; `size: 'rest'` fills the disk (last partition only). */
export interface MbrPartitionRequest {
  name: string;
  type: number;
  size: number | 'rest';
  /** Byte offset; default: the next alignment boundary after the previous partition (or EBR). */
  start?: number;
  bootable?: boolean;
  /** Inside the extended partition (numbered from 5); logical partitions come after every primary one. */
  logical?: boolean;
}

/** A partition as it will appear in the table (LBAs inclusive). */
export interface MbrPartitionSpec {
  /** Linux partition number: primary slots 1–4, logical partitions 5, 6, … */
  number: number;
  name: string;
  type: number;
  bootable: boolean;
  firstLba: number;
  lastLba: number;
  /** Logical partitions: the sector of the EBR describing it. */
  ebrLba?: number;
}

export interface MbrLayout {
  sectorSize: number;
  /** 32-bit disk signature; drawn (or derived from the seed) when absent. */
  diskSignature?: number;
  /** In number order: primary partitions, then logical ones. */
  partitions: MbrPartitionSpec[];
  /** The extended partition holding the logical ones. */
  extended?: { number: number; firstLba: number; lastLba: number };
}

export interface ResolvedMbr extends MbrLayout {
  diskSignature: number;
  /** Sectors of the device the table was planned for. */
  totalSectors: number;
}

export interface MbrWrite {
  offset: number;
  bytes: Uint8Array;
  what: string;
}

/** The disk signature as 8 lowercase hex digits (how the kernel spells it in PARTUUIDs). */
export function signatureHex(sig: number): string {
  return (sig >>> 0).toString(16).padStart(8, '0');
}

/** A random non-zero disk signature, or one derived from `seed` (same seed, same signature). */
export function makeDiskSignature(seed?: string): number {
  // node:crypto when a disk signature is made, not when the module loads
  const { createHash, randomBytes } = process.getBuiltinModule('node:crypto');
  const bytes = seed === undefined ? randomBytes(4) : createHash('sha256').update(`crashcart-mbr\0${seed}\0disk`).digest();
  const sig = bytes.readUInt32LE(0);
  return sig === 0 ? 1 : sig;
}

// ---------------------------------------------------------------------------------------------
// Placing partitions

export interface MbrLayoutOptions {
  sectorSize: number;
  deviceSize: number;
  alignment?: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Checks the order rules: logical partitions last, at most 4 primary slots (3 with an extended one). */
function checkKinds(requests: MbrPartitionRequest[]): { primaries: number; logicals: number } {
  const firstLogical = requests.findIndex((r) => r.logical);
  const primaries = firstLogical < 0 ? requests.length : firstLogical;
  const logicals = requests.length - primaries;
  if (requests.slice(primaries).some((r) => !r.logical)) {
    throw new BadInputError(
      `partition ${primaries + 1 + requests.slice(primaries).findIndex((r) => !r.logical)} is primary but follows a logical one; list logical partitions last`,
    );
  }
  const slots = primaries + (logicals > 0 ? 1 : 0);
  if (slots > 4) {
    throw new BadInputError(
      `${primaries} primary partition(s)${logicals ? ' and an extended one' : ''} need ${slots} slots; an MBR has 4 (make the later ones logical: "logical": true)`,
    );
  }
  if (logicals > 251) throw new BadInputError(`${logicals} logical partitions; Linux numbers at most 251 of them (5–255)`);
  return { primaries, logicals };
}

/** Bytes a device needs to hold the requests (at least one alignment unit for a `rest` partition). */
export function minimumMbrDeviceSize(requests: MbrPartitionRequest[], sectorSize: number, alignment = DEFAULT_ALIGNMENT): number {
  let end = sectorSize;
  let maxEnd = end;
  for (const r of requests) {
    if (r.logical) end += sectorSize; // its EBR
    const start = r.start ?? alignUp(end, alignment);
    end = start + (r.size === 'rest' ? alignment : r.size);
    maxEnd = Math.max(maxEnd, end);
  }
  return maxEnd;
}

/**
 * Turns requests into MBR entries: primary partitions numbered 1, 2, … in request order, then an
 * extended partition around the logical ones, numbered 5, 6, …
 * @throws BadInputError when partitions overlap, break the order rules, are misaligned to the
 *   sector size, or do not fit on the device or into 32-bit sector numbers.
 */
export function layoutMbrPartitions(requests: MbrPartitionRequest[], opts: MbrLayoutOptions): MbrLayout {
  const ss = opts.sectorSize;
  const align = opts.alignment ?? DEFAULT_ALIGNMENT;
  if (align % ss !== 0) throw new UsageError(`alignment ${align} is not a multiple of the ${ss}-byte sector size`);
  if (requests.length === 0) throw new BadInputError('an MBR layout needs at least one partition');
  const { primaries } = checkKinds(requests);
  const totalSectors = Math.min(Math.floor(opts.deviceSize / ss), MAX_SECTORS + 1);
  const out: MbrPartitionSpec[] = [];
  let nextLba = 1; // sector 0 holds the table
  let extended: MbrLayout['extended'];
  requests.forEach((r, i) => {
    const label = `partition ${i + 1} "${r.name}"`;
    let ebrLba: number | undefined;
    if (r.logical) {
      if (!extended) extended = { number: primaries + 1, firstLba: alignUp(nextLba * ss, align) / ss, lastLba: 0 };
      ebrLba = Math.max(nextLba, extended.firstLba);
      nextLba = ebrLba + 1;
    }
    let startByte: number;
    if (r.start !== undefined) {
      if (r.start % ss !== 0) throw new BadInputError(`${label}: start ${r.start} is not a multiple of the ${ss}-byte sector size`);
      startByte = r.start;
      if (startByte / ss < nextLba) {
        const before = i === 0 ? 'the MBR' : r.logical ? `its EBR at sector ${ebrLba}` : `partition ${i} "${requests[i - 1].name}"`;
        throw new BadInputError(`${label}: start ${startByte} (${formatBytes(startByte)}) overlaps ${before}, which ends at ${nextLba * ss}`);
      }
    } else {
      startByte = alignUp(nextLba * ss, align);
    }
    const firstLba = startByte / ss;
    let lastLba: number;
    if (r.size === 'rest') {
      if (i !== requests.length - 1) throw new BadInputError(`${label}: only the last partition can take the rest of the device`);
      lastLba = (Math.floor((totalSectors * ss) / align) * align) / ss - 1;
      if (lastLba < firstLba) throw new BadInputError(`${label}: no space left for it (it would start at ${formatBytes(startByte)} on a ${formatBytes(opts.deviceSize)} device)`);
    } else {
      if (r.size <= 0 || r.size % ss !== 0) throw new BadInputError(`${label}: size ${r.size} is not a positive multiple of the ${ss}-byte sector size`);
      lastLba = firstLba + r.size / ss - 1;
    }
    if (lastLba >= totalSectors) {
      const need = minimumMbrDeviceSize(requests, ss, align);
      const cap = totalSectors === MAX_SECTORS + 1 ? ' (an MBR addresses 2^32 sectors)' : '';
      throw new BadInputError(
        `${label} ends at byte ${(lastLba + 1) * ss} but the ${formatBytes(opts.deviceSize)} device ends at ${totalSectors * ss}${cap}; ` +
          `the layout needs a device of at least ${need} bytes (${formatBytes(need)})`,
      );
    }
    const number = r.logical ? 5 + (i - primaries) : i + 1;
    out.push({ number, name: r.name, type: r.type, bootable: !!r.bootable, firstLba, lastLba, ...(ebrLba !== undefined ? { ebrLba } : {}) });
    if (extended) extended.lastLba = lastLba;
    nextLba = lastLba + 1;
  });
  return { sectorSize: ss, partitions: out, ...(extended ? { extended } : {}) };
}

/** Fills in the disk signature and checks the layout against the device. */
export function resolveMbr(layout: MbrLayout, deviceSize: number, opts: { seed?: string } = {}): ResolvedMbr {
  const totalSectors = Math.floor(deviceSize / layout.sectorSize);
  const end = Math.max(layout.extended?.lastLba ?? 0, ...layout.partitions.map((p) => p.lastLba));
  if (end >= totalSectors) throw new BadInputError(`the table ends at sector ${end}, past the end of the ${totalSectors}-sector device`);
  const sig = layout.diskSignature ?? makeDiskSignature(opts.seed);
  if (!Number.isInteger(sig) || sig < 0 || sig > 0xffffffff) throw new UsageError(`disk signature ${sig} is not a 32-bit number`);
  return { ...layout, diskSignature: sig, totalSectors };
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Every sector the table consists of: the MBR, then one EBR per logical partition. */
export function encodeMbr(m: ResolvedMbr): MbrWrite[] {
  const ss = m.sectorSize;
  const mbr = bootSector(ss);
  new DataView(mbr.buffer).setUint32(440, m.diskSignature >>> 0, true);
  const primaries = m.partitions.filter((p) => p.ebrLba === undefined);
  primaries.forEach((p) => setSlot(mbr, p.number - 1, p, 0));
  const writes: MbrWrite[] = [{ offset: 0, bytes: mbr, what: 'MBR' }];
  if (!m.extended) return writes;
  const ext = m.extended;
  setSlot(mbr, ext.number - 1, { type: EXTENDED_TYPE, firstLba: ext.firstLba, lastLba: ext.lastLba }, 0);
  const logicals = m.partitions.filter((p) => p.ebrLba !== undefined);
  logicals.forEach((p, i) => {
    const ebr = bootSector(ss);
    setSlot(ebr, 0, p, p.ebrLba!);
    const next = logicals[i + 1];
    if (next) setSlot(ebr, 1, { type: EXTENDED_TYPE, firstLba: next.ebrLba!, lastLba: next.lastLba }, ext.firstLba);
    writes.push({ offset: p.ebrLba! * ss, bytes: ebr, what: `EBR of partition ${p.number}` });
  });
  return writes;
}

/**
 * Writes the table and flushes. The EBRs go first and sector 0 last, so that an interrupted
 * write leaves the old table in front. `extra` (e.g. wiping an old GPT's headers) is written before
 * sector 0 too.
 */
export async function writeMbr(dev: BlockDevice, m: ResolvedMbr, opts: IoOptions & { extra?: MbrWrite[] } = {}): Promise<void> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected; cannot write a partition table`);
  if (m.totalSectors !== Math.floor(dev.size / m.sectorSize)) throw new UsageError(`the table was planned for a device of a different size than ${dev.info.name}`);
  const [first, ...rest] = encodeMbr(m);
  for (const w of [...(opts.extra ?? []), ...rest.reverse(), first]) await writeRange(dev, w.offset, w.bytes, opts);
  await dev.flush(opts);
}

// ---------------------------------------------------------------------------------------------
// Comparing with what a card holds

export type MbrMatch =
  | { status: 'match'; differences: [] }
  /** Same partitions, but the parser had complaints (the table is rewritten, the signature kept). */
  | { status: 'repair'; differences: string[] }
  | { status: 'none'; differences: string[] }
  | { status: 'differs'; differences: string[] };

/** Compares the table a card holds with the layout; the signature only where the layout fixes it. */
export function compareMbr(existing: PartitionTable | null, layout: MbrLayout): MbrMatch {
  if (!existing) return { status: 'none', differences: ['the card has no partition table'] };
  if (existing.kind !== 'mbr') return { status: 'differs', differences: [`the card has a GPT with ${existing.partitions.length} partition(s)`] };
  if (existing.sectorSize !== layout.sectorSize) {
    return { status: 'differs', differences: [`the table uses ${existing.sectorSize}-byte sectors, the layout ${layout.sectorSize}-byte ones`] };
  }
  const diffs: string[] = [];
  if (layout.diskSignature !== undefined && existing.diskSignature !== signatureHex(layout.diskSignature)) {
    diffs.push(`disk signature is 0x${existing.diskSignature}, expected 0x${signatureHex(layout.diskSignature)}`);
  }
  const want = new Map<number, { type: number; firstLba: number; lastLba: number; bootable: boolean; what: string }>(
    layout.partitions.map((p) => [p.number, { ...p, what: `partition ${p.number} "${p.name}"` }]),
  );
  if (layout.extended) want.set(layout.extended.number, { ...layout.extended, type: EXTENDED_TYPE, bootable: false, what: `extended partition ${layout.extended.number}` });
  for (const e of existing.partitions) {
    const w = want.get(e.number);
    if (!w) {
      diffs.push(`partition ${e.number} (type ${mbrTypeHex(e.type ?? 0)}, LBA ${e.firstLba}–${e.lastLba}) is not in the layout`);
      continue;
    }
    if (e.type !== w.type) diffs.push(`${w.what} has type ${mbrTypeHex(e.type ?? 0)}, expected ${mbrTypeHex(w.type)}`);
    if (e.firstLba !== w.firstLba || e.lastLba !== w.lastLba) diffs.push(`${w.what} spans LBA ${e.firstLba}–${e.lastLba}, expected ${w.firstLba}–${w.lastLba}`);
    if (!!e.bootable !== w.bootable) diffs.push(`${w.what} is ${e.bootable ? '' : 'not '}marked bootable, expected ${w.bootable ? 'bootable' : 'not bootable'}`);
  }
  for (const [n, w] of want) if (!existing.partitions.some((e) => e.number === n)) diffs.push(`${w.what} is missing`);
  if (diffs.length > 0) return { status: 'differs', differences: diffs };
  if (existing.warnings.length > 0) return { status: 'repair', differences: [...existing.warnings] };
  return { status: 'match', differences: [] };
}
