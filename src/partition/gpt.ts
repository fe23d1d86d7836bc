/**
 * GUID Partition Tables (UEFI spec, chapter 5).
 *
 * The primary header sits at LBA 1 and the backup at the last LBA; each points to its own copy
 * of the partition entry array, and both header and array are CRC32-protected. When the
 * primary copy is damaged the backup is used and a warning says so. The logical block size is
 * not recorded anywhere, so 512 and 4096 are both tried (the device's own block size first).
 */
import { crc32 } from 'node:zlib';
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { BadInputError } from '../errors.js';
import { formatGuid, isZeroGuid } from './guid.js';
import { hasBootSignature, isProtectiveMbr, readMbrEntries } from './mbr.js';
import type { MbrSlotInfo, Partition, PartitionTable } from './types.js';

const SIGNATURE = 'EFI PART';
/** Refuse entry arrays larger than this (the usual one is 16 KiB). */
const MAX_ENTRY_ARRAY = 4 * 1024 * 1024;

export interface GptHeader {
  revision: number;
  headerSize: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entryLba: number;
  entryCount: number;
  entrySize: number;
  entryArrayCrc: number;
}

type HeaderResult = { ok: true; header: GptHeader; entries: Uint8Array } | { ok: false; reason: string; header?: GptHeader; signature: boolean };

function u64(dv: DataView, off: number): number {
  const v = dv.getBigUint64(off, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(v);
}

/** Decodes a GPT header sector; returns the reason it is unusable, or the header. */
export function decodeGptHeader(
  buf: Uint8Array,
  lba: number,
  sectorSize: number,
  lastLba: number,
): { ok: true; header: GptHeader } | { ok: false; reason: string; signature: boolean } {
  if (buf.length < 92 || new TextDecoder('latin1').decode(buf.subarray(0, 8)) !== SIGNATURE) {
    return { ok: false, reason: 'no GPT signature', signature: false };
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerSize = dv.getUint32(12, true);
  if (headerSize < 92 || headerSize > Math.min(sectorSize, buf.length)) {
    return { ok: false, reason: `invalid header size ${headerSize}`, signature: true };
  }
  const copy = buf.slice(0, headerSize);
  copy.fill(0, 16, 20);
  const stored = dv.getUint32(16, true);
  if (crc32(copy) >>> 0 !== stored) return { ok: false, reason: 'header CRC mismatch', signature: true };
  const header: GptHeader = {
    revision: dv.getUint32(8, true),
    headerSize,
    myLba: u64(dv, 24),
    alternateLba: u64(dv, 32),
    firstUsableLba: u64(dv, 40),
    lastUsableLba: u64(dv, 48),
    diskGuid: formatGuid(buf, 56),
    entryLba: u64(dv, 72),
    entryCount: dv.getUint32(80, true),
    entrySize: dv.getUint32(84, true),
    entryArrayCrc: dv.getUint32(88, true),
  };
  if (header.myLba !== lba) return { ok: false, reason: `header claims to be at LBA ${header.myLba}, found at LBA ${lba}`, signature: true };
  // A usable range past the end of the device is allowed here (truncated image); parseGpt warns.
  if (!(header.firstUsableLba <= header.lastUsableLba) || !(header.firstUsableLba > 0)) {
    return { ok: false, reason: `invalid usable LBA range ${header.firstUsableLba}–${header.lastUsableLba}`, signature: true };
  }
  if (header.entrySize < 128 || header.entrySize % 8 !== 0) {
    return { ok: false, reason: `invalid partition entry size ${header.entrySize}`, signature: true };
  }
  const arrayBytes = header.entryCount * header.entrySize;
  if (arrayBytes > MAX_ENTRY_ARRAY) return { ok: false, reason: `partition entry array too large (${arrayBytes} bytes)`, signature: true };
  const arraySectors = Math.ceil(arrayBytes / sectorSize);
  if (!Number.isSafeInteger(header.entryLba) || header.entryLba < 1 || header.entryLba + arraySectors - 1 > lastLba) {
    return { ok: false, reason: `partition entry array at LBA ${header.entryLba} lies outside the device`, signature: true };
  }
  return { ok: true, header };
}

async function tryHeader(dev: BlockDevice, ss: number, lba: number, lastLba: number, opts?: IoOptions): Promise<HeaderResult> {
  if (lba < 1 || lba > lastLba) return { ok: false, reason: `LBA ${lba} is outside the device`, signature: false };
  const buf = await readRange(dev, lba * ss, ss, opts);
  const d = decodeGptHeader(buf, lba, ss, lastLba);
  if (!d.ok) return d;
  const h = d.header;
  const entries = await readRange(dev, h.entryLba * ss, h.entryCount * h.entrySize, opts);
  if (crc32(entries) >>> 0 !== h.entryArrayCrc) {
    return { ok: false, reason: 'partition entry array CRC mismatch', header: h, signature: true };
  }
  return { ok: true, header: h, entries };
}

function decodeEntries(h: GptHeader, entries: Uint8Array, ss: number, lastLba: number, warnings: string[]): Partition[] {
  const dv = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const utf16 = new TextDecoder('utf-16le');
  const out: Partition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const o = i * h.entrySize;
    if (isZeroGuid(entries, o)) continue;
    const number = i + 1;
    const first = u64(dv, o + 32);
    const last = u64(dv, o + 40);
    if (Number.isNaN(first) || Number.isNaN(last) || first > last || first < 1) {
      warnings.push(`GPT entry ${number} has an invalid LBA range (${dv.getBigUint64(o + 32, true)}–${dv.getBigUint64(o + 40, true)}); ignored`);
      continue;
    }
    if (last > lastLba) {
      warnings.push(`partition ${number} (LBA ${first}–${last}) extends past the end of the device (last LBA ${lastLba}); truncated image?`);
    } else if (first < h.firstUsableLba || last > h.lastUsableLba) {
      warnings.push(`partition ${number} (LBA ${first}–${last}) lies outside the usable range ${h.firstUsableLba}–${h.lastUsableLba}`);
    }
    const nameBytes = entries.subarray(o + 56, o + Math.min(128, h.entrySize));
    let end = 0;
    while (end + 1 < nameBytes.length && (nameBytes[end] !== 0 || nameBytes[end + 1] !== 0)) end += 2;
    const attrs = dv.getBigUint64(o + 48, true);
    const attributeBits: number[] = [];
    for (let b = 0; b < 64; b++) if ((attrs >> BigInt(b)) & 1n) attributeBits.push(b);
    out.push({
      number,
      start: first * ss,
      size: (last - first + 1) * ss,
      firstLba: first,
      lastLba: last,
      name: utf16.decode(nameBytes.subarray(0, end)),
      typeGuid: formatGuid(entries, o),
      uuid: formatGuid(entries, o + 16),
      attributeBits,
    });
  }
  const sorted = [...out].sort((a, b) => a.firstLba - b.firstLba);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].firstLba <= sorted[i - 1].lastLba) {
      warnings.push(`partitions ${sorted[i - 1].number} and ${sorted[i].number} overlap`);
    }
  }
  return out;
}

export interface GptParseOptions extends IoOptions {
  /** Logical block sizes to try, in order. Default: the device's block size, then 512, 4096. */
  sectorSizes?: number[];
}

/**
 * Parses a GPT. Returns null when the device carries no GPT (no protective MBR and no GPT
 * signature; or a valid non-protective MBR, which Linux would use instead).
 *
 * @throws BadInputError when a protective MBR or a GPT signature is present but neither the
 *   primary nor the backup header (with its entry array) is valid.
 */
export async function parseGpt(dev: BlockDevice, opts: GptParseOptions = {}): Promise<PartitionTable | null> {
  if (dev.size < 1024) return null;
  const mbr = await readRange(dev, 0, 512, opts);
  const protective = isProtectiveMbr(mbr);
  if (!protective && hasBootSignature(mbr)) return null;
  const mbrSlots = protective
    ? readMbrEntries(mbr)
        .filter((e) => e.type !== 0)
        .map((e) => ({ slot: e.slot, bootable: e.status === 0x80, type: e.type, firstLba: e.lbaStart, sectors: e.sectors }))
    : [];

  const sizes = opts.sectorSizes ?? [...new Set([dev.blockSize, 512, 4096])].filter((s) => s >= 512 && (s & (s - 1)) === 0);
  const failures: string[] = [];
  let sawSignature = false;
  for (const ss of sizes) {
    if (dev.size < ss * 3) continue;
    const lastLba = Math.floor(dev.size / ss) - 1;
    const warnings: string[] = [];
    if (!protective) warnings.push('no protective MBR in sector 0; using the GPT anyway');
    const primary = await tryHeader(dev, ss, 1, lastLba, opts);
    if (primary.ok) {
      const h = primary.header;
      if (h.lastUsableLba > lastLba) {
        warnings.push(`GPT describes a disk of at least ${h.lastUsableLba + 1} sectors but the device has ${lastLba + 1}; truncated image?`);
      }
      if (h.alternateLba > lastLba || Number.isNaN(h.alternateLba)) {
        warnings.push(`backup GPT header should be at LBA ${h.alternateLba}, past the end of the device (last LBA ${lastLba}); truncated image?`);
      } else {
        if (h.alternateLba !== lastLba) {
          warnings.push(`backup GPT header is at LBA ${h.alternateLba}, not at the last LBA ${lastLba} (device grown since partitioning?)`);
        }
        const backup = await tryHeader(dev, ss, h.alternateLba, lastLba, opts);
        if (!backup.ok) warnings.push(`backup GPT header at LBA ${h.alternateLba} is unusable: ${backup.reason}`);
      }
      return build(h, primary.entries, ss, lastLba, 'primary', warnings, mbrSlots);
    }
    sawSignature ||= primary.signature;
    const candidates: number[] = [];
    if (primary.header && Number.isSafeInteger(primary.header.alternateLba) && primary.header.alternateLba <= lastLba) {
      candidates.push(primary.header.alternateLba);
    }
    if (!candidates.includes(lastLba)) candidates.push(lastLba);
    const backupReasons: string[] = [];
    for (const lba of candidates) {
      const backup = await tryHeader(dev, ss, lba, lastLba, opts);
      if (backup.ok) {
        warnings.push(`primary GPT ${primary.reason}; using the backup header at LBA ${lba}`);
        return build(backup.header, backup.entries, ss, lastLba, 'backup', warnings, mbrSlots);
      }
      sawSignature ||= backup.signature;
      backupReasons.push(`backup at LBA ${lba}: ${backup.reason}`);
    }
    if (primary.signature || backupReasons.length > 0) {
      failures.push(`${ss}-byte sectors: primary: ${primary.reason}; ${backupReasons.join('; ')}`);
    }
  }
  if (protective || sawSignature) {
    const detail = failures.length > 0 ? failures.join(' | ') : 'device too small';
    throw new BadInputError(`${dev.info.name}: ${protective ? 'protective MBR found' : 'GPT signature found'} but no valid GPT header (${detail})`);
  }
  return null;
}

function build(h: GptHeader, entries: Uint8Array, ss: number, lastLba: number, which: 'primary' | 'backup', warnings: string[], mbrSlots: MbrSlotInfo[]): PartitionTable {
  if (h.revision !== 0x00010000) warnings.push(`unusual GPT revision 0x${h.revision.toString(16).padStart(8, '0')}`);
  const partitions = decodeEntries(h, entries, ss, lastLba, warnings);
  partitions.sort((a, b) => a.number - b.number);
  return { kind: 'gpt', sectorSize: ss, partitions, warnings, diskGuid: h.diskGuid, header: which, mbrSlots };
}
