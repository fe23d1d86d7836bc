/**
 * Board profiles (`hw-profiles/boards/*.json`): how a board's card is partitioned, what goes
 * into each partition, where its kernel keeps pstore/blk and with which geometry, the ABI its
 * records are written in, and the kernel command line it boots with. Validated by hand so that
 * every error names the field at fault (`partitions[2].size: …`). The schema is documented in
 * `hw-profiles/boards/README.md` and `hw-profiles/boards/schema.json`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError, CrashcartError, UsageError } from '../errors.js';
import { InputLimitError, PROFILE_MAX_BYTES, readFileBounded } from '../input-limits.js';
import { DEFAULT_ALIGNMENT, GPT_NAME_MAX, layoutPartitions, minimumDeviceSize, type PartitionRequest } from '../partition/gpt-write.js';
import { layoutMbrPartitions, mbrTypeHex, MBR_TYPE_ALIASES, minimumMbrDeviceSize, resolveMbrType, type MbrPartitionRequest } from '../partition/mbr-write.js';
import { defaultHybridMbrType } from '../partition/hybrid-mbr.js';
import { isGuid } from '../partition/guid.js';
import { type BlkdevSpec, parseBlkdevSpec, parseByteSize } from '../partition/select-region.js';
import type { Endian, KmsgLayoutName } from '../pstore/abi.js';
import { parseCmdline } from '../pstore/cmdline.js';
import { computeLayout, normaliseSizes } from '../pstore/layout.js';
import { MAX_CPUS, MAX_SIZE_KIB } from '../pstore/param-limits.js';
import type { PstoreParams, Sourced } from '../pstore/params.js';
import { KCONFIG_DEFAULTS } from '../pstore/params.js';

export interface BoardPstore {
  /** GPT partition name or number holding the pstore region; absent = whole device. */
  partition?: string | number;
  /** Zone sizes in KiB, as the pstore_blk module parameters take them. */
  kmsg_size?: number;
  pmsg_size?: number;
  console_size?: number;
  ftrace_size?: number;
  /** Possible CPUs (nr_cpu_ids) of the board's kernel. */
  cpus?: number;
  max_reason?: number;
  compress?: string;
  ftrace_cpu_in_ip?: 0 | 1 | 3;
  /**
   * Who registers the region with pstore/zone: `best_effort` (pstore_blk.best_effort=y on a
   * plain block device, the default) or `mmcpstore` (the eMMC driver of the mmcpstore series).
   */
  backend?: 'best_effort' | 'mmcpstore';
  /** Format with valid erased zone headers (layout detectable, counters at 0) instead of zeros only. */
  headers?: boolean;
}

/** File system types `provision` can build from a folder. */
export type FsType = 'vfat' | 'ext4';
export type FatSize = 12 | 16 | 32;

/** A file system built from a folder into the partition (`fs` of a partition, `--fs NAME=DIR`). */
export interface BoardFilesystem {
  type: FsType;
  /** Volume label (vfat: up to 11 characters; ext4: up to 16 bytes). */
  label?: string;
  /** vfat: the volume ID as 8 uppercase hex digits (shown `1234-ABCD`); ext4: the file system UUID, lowercase. */
  uuid?: string;
  /** vfat: FAT12, FAT16 or FAT32; default from the partition type, else from its size. */
  fat?: FatSize;
  /** Folder the file system is built from (absolute; relative ones are resolved against the profile's folder). */
  dir?: string;
}

/** One partition of the board's layout. */
export interface BoardPartition {
  /** GPT partition name (PARTLABEL); on MBR cards only the profile's own name for it. */
  name: string;
  /** GPT: type GUID, uppercase. MBR: the type byte as `0x83`. */
  type: string;
  /** The alias the profile used (`linux`, `esp`, …), when it used one. */
  typeAlias?: string;
  /** Bytes, or `rest` for everything up to the end of the card (last partition only). */
  size: number | 'rest';
  /** Byte offset; default: after the previous partition on the next 1 MiB boundary. */
  start?: number;
  /** Image to write into the partition (absolute path; relative ones are resolved against the profile's folder). */
  image?: string;
  /** bmap file of the image: only the mapped blocks are written and their checksums verified. */
  bmap?: string;
  /** Fixed unique partition GUID (PARTUUID); random when absent. */
  uuid?: string;
  /** GPT attribute bits to set (2 = legacy BIOS bootable). */
  attributes?: number[];
  /** MBR: the boot flag (0x80). */
  bootable?: boolean;
  /** MBR: a logical partition inside the extended one (numbered from 5). */
  logical?: boolean;
  /** A file system built from a folder (excludes `image`). */
  fs?: BoardFilesystem;
}

/**
 * A region outside the partitions written from an image at a fixed byte offset: a boot loader the
 * boot ROM reads from a raw position (i.MX8 at 32 or 33 KiB, Allwinner at 8 KiB, Rockchip at 32 KiB).
 */
export interface BoardRawRegion {
  /** Name for `--image NAME=FILE` (unique among partitions and regions). */
  name: string;
  /** Byte offset on the card and the most bytes the region may hold. */
  offset: number;
  size: number;
  image?: string;
  bmap?: string;
}

/** The kind of partition table a profile lays out. */
export type TableKind = 'gpt' | 'mbr';

/** GPT only: partitions mirrored into a hybrid MBR for a boot ROM that reads only an MBR (partition/hybrid-mbr.ts). */
export interface BoardHybridMbr {
  /** In MBR slot order (after the 0xEE slot when it is first). */
  entries: { name: string; /** MBR type byte. */ type: number; bootable: boolean }[];
  /** Where the 0xEE slot goes: first (default, as sgdisk --hybrid) or last. */
  protective: 'first' | 'last';
}

export interface BoardCard {
  /** Refuse cards smaller than this many bytes (besides the layout's own minimum). */
  min_size?: number;
}

export interface BoardProfile {
  name: string;
  description?: string;
  abi?: { endian?: Endian; layout?: KmsgLayoutName };
  pstore?: BoardPstore;
  /** Kernel command line fragment the board boots with. */
  cmdline?: string;
  /** Partition table kind (default gpt). */
  table?: TableKind;
  /** MBR: fixed disk signature, 8 lowercase hex digits (PARTUUIDs are `SIGNATURE-NN`). */
  diskSignature?: string;
  /** Partition start alignment in bytes (default 1 MiB). */
  alignment?: number;
  /** GPT: a hybrid MBR in sector 0 instead of the protective one. */
  hybridMbr?: BoardHybridMbr;
  /** Partition layout: GPT entries 1, 2, …; MBR primary partitions, then logical ones. */
  partitions?: BoardPartition[];
  /** Raw regions before the first partition (boot loaders at fixed offsets). */
  raw?: BoardRawRegion[];
  card?: BoardCard;
  /** Free-text notes of the profile (`notes`, string or list of strings). */
  notes?: string[];
  /** Where the profile was loaded from. */
  path: string;
}

/** GPT partition type aliases a profile may use instead of a GUID (names as sfdisk/systemd spell them). */
export const PARTITION_TYPE_ALIASES: Readonly<Record<string, string>> = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  'linux-swap': '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  'linux-home': '933AC7E1-2EB4-4F13-B844-0E14E2AEF915',
  'linux-root-x86-64': '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  'linux-root-arm': '69DAD710-2CE4-4E3C-B16C-21A1D49ABED3',
  'linux-root-arm64': 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  xbootldr: 'BC13C2FF-59E6-4262-A352-B275FD6F7172',
  'bios-boot': '21686148-6449-6E6F-744E-656564454649',
  'basic-data': 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  'linux-reserved': '8DA63339-0007-60C0-C436-083AC8230908',
  /**
   * There is no registered type for pstore/blk regions. "Linux reserved" says "raw data, not a
   * file system" to partitioning tools and keeps auto-mounters away; the kernel ignores the type.
   */
  pstore: '8DA63339-0007-60C0-C436-083AC8230908',
};

/** Resolves a type alias or GUID to an uppercase GUID; undefined when it is neither. */
export function resolvePartitionType(t: string): string | undefined {
  const alias = t.toLowerCase();
  if (Object.hasOwn(PARTITION_TYPE_ALIASES, alias)) return PARTITION_TYPE_ALIASES[alias];
  return isGuid(t) ? t.toUpperCase() : undefined;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The bundled profiles folder (works from src/ via tsx and from dist/src/). */
export function bundledProfilesDir(): string {
  for (const up of ['../../hw-profiles/boards', '../../../hw-profiles/boards']) {
    const p = resolve(here, up);
    if (existsSync(p)) return p;
  }
  return resolve(here, '../../hw-profiles/boards');
}

export interface ProfileCheck {
  /** The validated profile; undefined when there are errors. */
  profile?: BoardProfile;
  /** Problems that make the profile unusable, each starting with the field path. */
  errors: string[];
  /** Things worth knowing that do not stop the profile from being used (missing image files, …). */
  warnings: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A profile name: lowercase identifier, also what `--profile NAME` looks up. */
const PROFILE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const TOP_FIELDS = ['name', 'description', 'abi', 'pstore', 'cmdline', 'table', 'disk_signature', 'alignment', 'hybrid_mbr', 'partitions', 'raw', 'card', 'notes'];
const RAW_FIELDS = ['name', 'offset', 'size', 'image', 'bmap'];
const PARTITION_FIELDS = ['name', 'type', 'size', 'start', 'image', 'bmap', 'uuid', 'attributes', 'bootable', 'logical', 'fs'];
const FS_FIELDS = ['type', 'label', 'uuid', 'fat', 'dir'];
const PSTORE_FIELDS = ['partition', 'kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason', 'compress', 'ftrace_cpu_in_ip', 'backend', 'headers'];

/** The errors and warnings found so far, each starting with its field path. */
class Findings {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];

  err(field: string, msg: string): void {
    this.errors.push(`${field}: ${msg}`);
  }

  warn(field: string, msg: string): void {
    this.warnings.push(`${field}: ${msg}`);
  }

  /** Reports each key of `obj` that is neither in `allowed` nor `$comment` as an unknown field. */
  known(obj: Obj, prefix: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) if (!allowed.includes(k) && k !== '$comment') this.err(`${prefix}${k}`, 'unknown field');
  }

  /** `$comment`, allowed in every object, is a string or a list of strings. */
  comment(obj: Obj, prefix: string): void {
    if (obj.$comment !== undefined && !stringList(obj.$comment)) this.err(`${prefix}$comment`, 'must be a string or a list of strings');
  }
}

/**
 * Checks a parsed profile and returns every problem found (field path first).
 * `path` is where it came from; relative image paths are resolved against its folder.
 * Steps, in the order their errors are reported: the shape of the top level, `abi`, `card`,
 * `partitions`, `pstore` and `cmdline` each on its own, then the checks across fields.
 */
export function checkProfile(json: unknown, path: string): ProfileCheck {
  if (!isObj(json)) return { errors: ['(top level): must be a JSON object'], warnings: [] };
  const f = new Findings();
  const top = checkTopLevel(json, path, f);
  const abi = json.abi === undefined ? undefined : checkAbi(json.abi, f);
  const card = json.card === undefined ? undefined : checkCard(json.card, f);
  const table = checkTable(json, f);
  const partitions = json.partitions === undefined ? undefined : checkPartitions(json.partitions, dirname(resolve(path)), table, f);
  const pstore = json.pstore === undefined ? undefined : checkPstore(json.pstore, f);
  const cmdParams = json.cmdline === undefined ? {} : checkCmdline(json.cmdline, f);
  const raw = json.raw === undefined ? undefined : checkRawRegions(json.raw, dirname(resolve(path)), { partitions, table }, f);
  const hybridMbr = json.hybrid_mbr === undefined ? undefined : checkHybridMbr(json.hybrid_mbr, partitions, table, json.partitions !== undefined, f);
  checkCrossFields({ pstore, partitions, cmdParams, table }, f);
  if (f.errors.length > 0 || !top.name) return { errors: f.errors, warnings: f.warnings };
  const profile: BoardProfile = { name: top.name, path };
  if (typeof json.description === 'string') profile.description = json.description;
  if (typeof json.cmdline === 'string' && json.cmdline.trim() !== '') profile.cmdline = json.cmdline;
  if (abi) profile.abi = abi;
  if (pstore) profile.pstore = pstore;
  if (json.table !== undefined) profile.table = table.kind;
  if (table.diskSignature !== undefined) profile.diskSignature = table.diskSignature;
  if (table.alignment !== undefined) profile.alignment = table.alignment;
  if (partitions) profile.partitions = partitions;
  if (hybridMbr) profile.hybridMbr = hybridMbr;
  if (raw) profile.raw = raw;
  if (card) profile.card = card;
  if (top.notes) profile.notes = top.notes;
  return { profile, errors: f.errors, warnings: f.warnings };
}

/** A string as a one-item list, or a list of strings as it is; undefined for anything else. */
function stringList(v: unknown): string[] | undefined {
  if (typeof v === 'string') return [v];
  return Array.isArray(v) && v.every((n) => typeof n === 'string') ? (v as string[]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Shape: the top level, abi, card

function checkTopLevel(o: Obj, path: string, f: Findings): { name?: string; notes?: string[] } {
  f.known(o, '', TOP_FIELDS);
  const name = typeof o.name === 'string' && PROFILE_NAME.test(o.name) ? o.name : undefined;
  if (!name) f.err('name', 'must be a lowercase identifier (letters, digits, ".", "_", "-")');
  else if (path.endsWith('.json') && basename(path, '.json') !== name)
    f.warn('name', `"${name}" differs from the file name ${basename(path)}; --profile ${basename(path, '.json')} will not find it by name`);
  if (o.description !== undefined && typeof o.description !== 'string') f.err('description', 'must be a string');
  let notes: string[] | undefined;
  if (o.notes !== undefined) {
    notes = stringList(o.notes);
    if (!notes) f.err('notes', 'must be a string or a list of strings');
  }
  f.comment(o, '');
  return { name, notes };
}

function checkAbi(v: unknown, f: Findings): BoardProfile['abi'] {
  if (!isObj(v)) {
    f.err('abi', 'must be an object');
    return undefined;
  }
  f.known(v, 'abi.', ['endian', 'layout']);
  f.comment(v, 'abi.');
  if (v.endian !== undefined && v.endian !== 'le' && v.endian !== 'be') f.err('abi.endian', 'must be "le" or "be"');
  if (v.layout !== undefined && !['lp64', 'ilp32', 'i386'].includes(v.layout as string)) f.err('abi.layout', 'must be "lp64", "ilp32" or "i386"');
  const abi: NonNullable<BoardProfile['abi']> = {};
  if (v.endian !== undefined) abi.endian = v.endian as Endian;
  if (v.layout !== undefined) abi.layout = v.layout as KmsgLayoutName;
  return abi;
}

function checkCard(v: unknown, f: Findings): BoardCard | undefined {
  if (!isObj(v)) {
    f.err('card', 'must be an object');
    return undefined;
  }
  f.known(v, 'card.', ['min_size']);
  f.comment(v, 'card.');
  const card: BoardCard = {};
  if (v.min_size !== undefined) {
    const size = sizeValue(v.min_size, 'card.min_size', f);
    if (size !== undefined) card.min_size = size;
  }
  return card;
}

/** What the partition checks need to know about the table: its kind, signature and alignment. */
interface TableFields {
  kind: TableKind;
  diskSignature?: string;
  alignment?: number;
}

/** `table`, `disk_signature` (MBR only) and `alignment`. */
function checkTable(o: Obj, f: Findings): TableFields {
  const t: TableFields = { kind: 'gpt' };
  if (o.table !== undefined) {
    if (o.table !== 'gpt' && o.table !== 'mbr') f.err('table', 'must be "gpt" or "mbr"');
    else t.kind = o.table;
  }
  if (o.disk_signature !== undefined) {
    if (typeof o.disk_signature !== 'string' || !/^(0x)?[0-9a-f]{8}$/i.test(o.disk_signature)) f.err('disk_signature', 'must be 8 hex digits, e.g. "0x5452574f"');
    else if (t.kind !== 'mbr') f.err('disk_signature', 'is only for "table": "mbr" (a GPT has a disk GUID)');
    else t.diskSignature = o.disk_signature.replace(/^0x/i, '').toLowerCase();
  }
  if (o.alignment !== undefined) {
    const a = sizeValue(o.alignment, 'alignment', f);
    if (a !== undefined && (a === 0 || a % 4096 !== 0)) f.err('alignment', `${a} bytes is not a positive multiple of 4096`);
    else if (a !== undefined) t.alignment = a;
  }
  return t;
}

/** A byte count (number or `"64MiB"`-style string); undefined, with the error reported, when it is not one. */
function sizeValue(v: unknown, field: string, f: Findings): number | undefined {
  if (typeof v !== 'number' && typeof v !== 'string') {
    f.err(field, 'must be a number of bytes or a size like "64MiB"');
    return undefined;
  }
  try {
    return parseByteSize(v, field);
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    f.err(field, e.message.replace(`invalid ${field} `, ''));
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Hybrid MBR

/**
 * `hybrid_mbr` (GPT only): 1–3 partitions by name, each a string (the MBR type then follows from
 * the GPT type as sgdisk derives it: basic-data 0x07, linux 0x83, esp 0xef, …) or
 * `{ "partition": NAME, "type": MBR type, "bootable": true }`; the string "EE" first or last
 * says where the 0xEE slot goes (first by default).
 */
function checkHybridMbr(v: unknown, partitions: BoardPartition[] | undefined, table: TableFields, hasPartitions: boolean, f: Findings): BoardHybridMbr | undefined {
  if (table.kind !== 'gpt') {
    f.err('hybrid_mbr', 'is only for "table": "gpt" (a hybrid MBR mirrors GPT partitions into the MBR)');
    return undefined;
  }
  if (!Array.isArray(v) || v.length === 0) {
    f.err('hybrid_mbr', 'must be a list of 1 to 3 partition names or { "partition", "type", "bootable" } objects (and "EE" first or last for the 0xEE slot)');
    return undefined;
  }
  if (!hasPartitions) f.err('hybrid_mbr', 'needs a partition layout ("partitions")');
  const isEE = (x: unknown) => typeof x === 'string' && x.toUpperCase() === 'EE';
  const eeAt = v.findIndex(isEE);
  if (v.filter(isEE).length > 1 || (eeAt > 0 && eeAt !== v.length - 1)) f.err('hybrid_mbr', '"EE" (where the 0xEE slot goes) may appear once, first or last');
  const protective = eeAt > 0 && eeAt === v.length - 1 ? 'last' : 'first';
  const items = v.map((item, index) => ({ item, index })).filter(({ item }) => !isEE(item));
  if (items.length < 1 || items.length > 3) f.err('hybrid_mbr', `mirrors 1 to 3 partitions (the fourth MBR slot holds the 0xEE entry); ${items.length} given`);
  const errorsBefore = f.errors.length;
  const entries: BoardHybridMbr['entries'] = [];
  const named = new Set<string>();
  for (const { item, index } of items) {
    const at = `hybrid_mbr[${index}]`;
    const o: Obj | undefined = typeof item === 'string' ? { partition: item } : isObj(item) ? item : undefined;
    if (!o) {
      f.err(at, 'must be a partition name or an object { "partition", "type", "bootable" }');
      continue;
    }
    f.known(o, `${at}.`, ['partition', 'type', 'bootable']);
    f.comment(o, `${at}.`);
    if (typeof o.partition !== 'string') {
      f.err(`${at}.partition`, 'must be the name of a partition');
      continue;
    }
    if (named.has(o.partition)) {
      f.err(at, `"${o.partition}" is listed twice`);
      continue;
    }
    named.add(o.partition);
    if (o.bootable !== undefined && typeof o.bootable !== 'boolean') f.err(`${at}.bootable`, 'must be true or false');
    if (!partitions) continue;
    const part = partitions.find((p) => p.name === o.partition);
    if (!part) {
      f.err(`${at}.partition`, `no partition is named "${o.partition}" (${partitions.map((p) => p.name).join(', ')})`);
      continue;
    }
    let type: number | undefined;
    if (o.type !== undefined) {
      type = typeof o.type === 'string' || typeof o.type === 'number' ? resolveMbrType(o.type) : undefined;
      if (type === undefined)
        f.err(
          `${at}.type`,
          `${JSON.stringify(o.type)} is not an MBR type: give 1–255 (not 0xee), hex as fdisk prints it ("0c") or one of ${Object.keys(MBR_TYPE_ALIASES).join(', ')}`,
        );
    } else {
      type = defaultHybridMbrType(part.type);
      if (type === undefined) f.err(`${at}.type`, `partition "${part.name}" has GPT type ${part.type}, which has no usual MBR type; give one ("type": "0c", "linux", …)`);
    }
    if (type !== undefined) entries.push({ name: part.name, type, bootable: o.bootable === true });
  }
  return f.errors.length === errorsBefore ? { entries, protective } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Partitions

/** The partition list; undefined when any partition has an error (the cross-field checks then skip it). */
function checkPartitions(v: unknown, baseDir: string, table: TableFields, f: Findings): BoardPartition[] | undefined {
  if (!Array.isArray(v)) {
    f.err('partitions', 'must be a list');
    return undefined;
  }
  if (v.length === 0) {
    f.err('partitions', 'must list at least one partition (leave it out for boards without a layout)');
    return undefined;
  }
  const names = new Map<string, number>();
  const parts: BoardPartition[] = [];
  v.forEach((raw, i) => {
    const part = checkPartition(raw, i, { isLast: i === v.length - 1, names, baseDir, table: table.kind }, f);
    if (part) parts.push(part);
  });
  if (parts.length !== v.length) return undefined;
  checkLayoutFits(parts, table, f);
  return parts;
}

interface PartitionContext {
  isLast: boolean;
  /** Names of the partitions before this one, with their indexes. */
  names: Map<string, number>;
  /** Folder relative image and bmap paths are resolved against. */
  baseDir: string;
  table: TableKind;
}

/** One partition; undefined when it has errors (an unknown field alone does not count). */
function checkPartition(raw: unknown, i: number, ctx: PartitionContext, f: Findings): BoardPartition | undefined {
  const at = `partitions[${i}]`;
  if (!isObj(raw)) {
    f.err(at, 'must be an object');
    return undefined;
  }
  f.known(raw, `${at}.`, PARTITION_FIELDS);
  f.comment(raw, `${at}.`);
  const errorsBefore = f.errors.length;
  const name = partitionName(raw.name, at, i, ctx.names, f);
  const type = ctx.table === 'mbr' ? mbrPartitionType(raw.type, at, f) : partitionType(raw.type, at, f);
  const size = partitionSize(raw.size, at, ctx.isLast, f);
  const start = raw.start === undefined ? undefined : partitionStart(raw.start, at, f);
  const part: BoardPartition = { name: name ?? '', type: type ?? '', size: size ?? 0 };
  const aliases = ctx.table === 'mbr' ? MBR_TYPE_ALIASES : PARTITION_TYPE_ALIASES;
  if (typeof raw.type === 'string' && Object.hasOwn(aliases, raw.type.toLowerCase())) part.typeAlias = raw.type.toLowerCase();
  if (start !== undefined) part.start = start;
  partitionFiles(raw, at, ctx.baseDir, part, f);
  if (raw.fs !== undefined && type !== undefined) partitionFs(raw, at, ctx, part, f);
  if (ctx.table === 'mbr') mbrFlags(raw, at, part, f);
  else partitionIdentity(raw, at, part, f);
  return f.errors.length === errorsBefore ? part : undefined;
}

function partitionName(v: unknown, at: string, i: number, names: Map<string, number>, f: Findings): string | undefined {
  if (typeof v !== 'string' || v === '') f.err(`${at}.name`, 'must be a non-empty string');
  else if (v.length > GPT_NAME_MAX) f.err(`${at}.name`, `"${v}" is longer than the ${GPT_NAME_MAX} characters a GPT entry holds`);
  else if (names.has(v)) f.err(`${at}.name`, `"${v}" is already used by partitions[${names.get(v)}]`);
  else {
    names.set(v, i);
    return v;
  }
  return undefined;
}

/** The type GUID (uppercase) of a GUID or alias. */
function partitionType(v: unknown, at: string, f: Findings): string | undefined {
  const aliases = Object.keys(PARTITION_TYPE_ALIASES).join(', ');
  if ((typeof v === 'string' || typeof v === 'number') && resolveMbrType(v) !== undefined && !(typeof v === 'string' && resolvePartitionType(v))) {
    f.err(`${at}.type`, `${JSON.stringify(v)} is an MBR type, but the table is "gpt" (set "table": "mbr", or give a GPT type GUID or one of ${aliases})`);
    return undefined;
  }
  if (typeof v !== 'string') {
    f.err(`${at}.type`, `must be a GPT type GUID or one of ${aliases}`);
    return undefined;
  }
  const type = resolvePartitionType(v);
  if (!type) f.err(`${at}.type`, `"${v}" is neither a GUID nor a known alias (${aliases})`);
  return type;
}

/** The MBR type byte (as `0x83`) of a number, a hex string as fdisk prints it, or an alias. */
function mbrPartitionType(v: unknown, at: string, f: Findings): string | undefined {
  const type = typeof v === 'string' || typeof v === 'number' ? resolveMbrType(v) : undefined;
  if (type === undefined && typeof v === 'string' && resolvePartitionType(v)) {
    f.err(`${at}.type`, `"${v}" is a GPT type, but the table is "mbr" (give a type number, hex as fdisk prints it, or one of ${Object.keys(MBR_TYPE_ALIASES).join(', ')})`);
    return undefined;
  }
  if (type === undefined) {
    f.err(
      `${at}.type`,
      `${JSON.stringify(v)} is not an MBR type for "table": "mbr": give 1–255 (not 0x05, 0x0f, 0x85 extended or 0xee GPT), hex as fdisk prints it ("83", "0x0c") or one of ${Object.keys(MBR_TYPE_ALIASES).join(', ')}`,
    );
    return undefined;
  }
  return mbrTypeHex(type);
}

/** MBR partitions: `bootable` and `logical`; the GPT-only fields are refused. */
function mbrFlags(raw: Obj, at: string, part: BoardPartition, f: Findings): void {
  for (const k of ['uuid', 'attributes'] as const) {
    if (raw[k] !== undefined) f.err(`${at}.${k}`, `is only for GPT tables; an MBR partition's PARTUUID is the disk signature and its number (set disk_signature)`);
  }
  for (const k of ['bootable', 'logical'] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== 'boolean') f.err(`${at}.${k}`, 'must be true or false');
    else if (raw[k]) part[k] = true;
  }
}

function partitionSize(v: unknown, at: string, isLast: boolean, f: Findings): number | 'rest' | undefined {
  if (v === undefined) {
    f.err(`${at}.size`, 'is required (bytes, a size like "64MiB", or "rest")');
    return undefined;
  }
  if (v === 'rest') {
    if (!isLast) f.err(`${at}.size`, '"rest" is only allowed for the last partition');
    return 'rest';
  }
  const size = sizeValue(v, `${at}.size`, f);
  if (size !== undefined && (size === 0 || size % 512 !== 0)) f.err(`${at}.size`, `${size} bytes is not a positive multiple of 512`);
  return size;
}

function partitionStart(v: unknown, at: string, f: Findings): number | undefined {
  const start = sizeValue(v, `${at}.start`, f);
  if (start !== undefined && start % 512 !== 0) f.err(`${at}.start`, `${start} is not a multiple of 512`);
  return start;
}

/** `image` and `bmap`: file paths, resolved against the profile's folder; missing files are warnings. */
function partitionFiles(raw: Obj, at: string, baseDir: string, part: { image?: string; bmap?: string }, f: Findings): void {
  const file = (rel: string, field: string) => {
    const p = isAbsolute(rel) ? rel : join(baseDir, rel);
    if (!existsSync(p)) f.warn(field, `${p} does not exist (yet)`);
    return p;
  };
  if (raw.image !== undefined) {
    if (typeof raw.image !== 'string' || raw.image === '') f.err(`${at}.image`, 'must be a file path');
    else part.image = file(raw.image, `${at}.image`);
  }
  if (raw.bmap !== undefined) {
    if (typeof raw.bmap !== 'string' || raw.bmap === '') f.err(`${at}.bmap`, 'must be a file path');
    else if (raw.image === undefined) f.err(`${at}.bmap`, 'needs an image');
    else part.bmap = file(raw.bmap, `${at}.bmap`);
  }
}

/** The file system type (and FAT size) a partition type implies: FAT types and the ESP → vfat, Linux types → ext4. */
export function inferFilesystem(partitionType: string, table: TableKind): { type: FsType; fat?: FatSize } | undefined {
  if (table === 'mbr') {
    const t = parseInt(partitionType, 16);
    if (t === 0x01) return { type: 'vfat', fat: 12 };
    if (t === 0x04 || t === 0x06 || t === 0x0e) return { type: 'vfat', fat: 16 };
    if (t === 0x0b || t === 0x0c) return { type: 'vfat', fat: 32 };
    if (t === 0xef) return { type: 'vfat' };
    if (t === 0x83) return { type: 'ext4' };
    return undefined;
  }
  const t = partitionType.toUpperCase();
  if (t === PARTITION_TYPE_ALIASES.esp || t === PARTITION_TYPE_ALIASES['basic-data']) return { type: 'vfat' };
  const linux = ['linux', 'linux-home', 'linux-root-x86-64', 'linux-root-arm', 'linux-root-arm64'].map((a) => PARTITION_TYPE_ALIASES[a]);
  return linux.includes(t) ? { type: 'ext4' } : undefined;
}

/** Characters a FAT volume label may not hold (besides lowercase letters, which mkfs.fat warns about). */
const FAT_LABEL_BAD = /[^\x20-\x7e]|["*+,./:;<=>?[\\\]|]/;

/** Checks a file system's label, UUID and FAT size for its type; returns the error text or undefined. */
export function checkFsIdentity(fs: Pick<BoardFilesystem, 'type' | 'label' | 'uuid' | 'fat'>): { field: 'label' | 'uuid' | 'fat'; msg: string } | undefined {
  if (fs.label !== undefined) {
    if (fs.type === 'vfat' && (fs.label.length > 11 || FAT_LABEL_BAD.test(fs.label)))
      return { field: 'label', msg: `"${fs.label}": a FAT label is up to 11 printable ASCII characters, without " * + , . / : ; < = > ? [ \\ ] |` };
    if (fs.type === 'ext4' && (Buffer.byteLength(fs.label) > 16 || /[\x00-\x1f]/.test(fs.label))) return { field: 'label', msg: `"${fs.label}": an ext4 label is up to 16 bytes` };
  }
  if (fs.uuid !== undefined) {
    if (fs.type === 'vfat' && !/^[0-9a-f]{4}-?[0-9a-f]{4}$/i.test(fs.uuid)) return { field: 'uuid', msg: `"${fs.uuid}": a FAT volume ID is 8 hex digits, e.g. "1234-ABCD"` };
    if (fs.type === 'ext4' && !isGuid(fs.uuid)) return { field: 'uuid', msg: `"${fs.uuid}": an ext4 UUID is 8-4-4-4-12 hex digits` };
  }
  if (fs.fat !== undefined && (fs.type !== 'vfat' || ![12, 16, 32].includes(fs.fat))) return { field: 'fat', msg: 'is 12, 16 or 32, and only for "type": "vfat"' };
  return undefined;
}

/** The canonical spelling of a checked file system UUID: `1234ABCD` for vfat, lowercase for ext4. */
export function normaliseFsUuid(type: FsType, uuid: string): string {
  return type === 'vfat' ? uuid.replace('-', '').toUpperCase() : uuid.toLowerCase();
}

/** `fs`: what to build in the partition; its type defaults to the one the partition type implies. */
function partitionFs(raw: Obj, at: string, ctx: PartitionContext, part: BoardPartition, f: Findings): void {
  const v = raw.fs;
  if (!isObj(v)) return f.err(`${at}.fs`, 'must be an object ({"type": "vfat" or "ext4", "label", "uuid", "fat", "dir"})');
  f.known(v, `${at}.fs.`, FS_FIELDS);
  f.comment(v, `${at}.fs.`);
  if (raw.image !== undefined) f.err(`${at}.fs`, 'excludes "image": the partition gets either an image or a file system built from a folder');
  const inferred = inferFilesystem(part.type, ctx.table);
  let type: FsType | undefined;
  if (v.type === undefined) {
    if (!inferred) return f.err(`${at}.fs.type`, `is required: partition type ${part.typeAlias ?? part.type} implies no file system ("vfat" or "ext4")`);
    type = inferred.type;
  } else if (v.type !== 'vfat' && v.type !== 'ext4') return f.err(`${at}.fs.type`, 'must be "vfat" or "ext4"');
  else type = v.type;
  if (inferred && inferred.type !== type) f.warn(`${at}.fs.type`, `"${type}" in a partition of type ${part.typeAlias ?? part.type}, which implies ${inferred.type}`);
  const fs: BoardFilesystem = { type };
  for (const k of ['label', 'uuid', 'dir'] as const) {
    if (v[k] === undefined) continue;
    if (typeof v[k] !== 'string' || v[k] === '') f.err(`${at}.fs.${k}`, 'must be a non-empty string');
    else fs[k] = v[k] as string;
  }
  if (v.fat !== undefined) fs.fat = v.fat as FatSize;
  const bad = checkFsIdentity(fs);
  if (bad) return f.err(`${at}.fs.${bad.field}`, bad.msg);
  if (fs.uuid) fs.uuid = normaliseFsUuid(type, fs.uuid);
  if (fs.dir !== undefined) {
    fs.dir = isAbsolute(fs.dir) ? fs.dir : join(ctx.baseDir, fs.dir);
    if (!existsSync(fs.dir)) f.warn(`${at}.fs.dir`, `${fs.dir} does not exist (yet)`);
  }
  part.fs = fs;
}

/** `uuid` (stored uppercase) and `attributes` (stored sorted, without repeats); the MBR-only fields are refused. */
function partitionIdentity(raw: Obj, at: string, part: BoardPartition, f: Findings): void {
  for (const k of ['bootable', 'logical'] as const) if (raw[k] !== undefined) f.err(`${at}.${k}`, 'is only for "table": "mbr" (GPT: attributes [2] marks a partition bootable)');
  if (raw.uuid !== undefined) {
    if (typeof raw.uuid !== 'string' || !isGuid(raw.uuid)) f.err(`${at}.uuid`, 'must be a GUID (8-4-4-4-12 hex digits)');
    else part.uuid = raw.uuid.toUpperCase();
  }
  if (raw.attributes !== undefined) {
    const bits = raw.attributes;
    if (!Array.isArray(bits) || !bits.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 63)) {
      f.err(`${at}.attributes`, 'must be a list of attribute bit numbers 0–63');
    } else part.attributes = [...new Set(bits as number[])].sort((a, b) => a - b);
  }
}

/** Places the partitions on a card just big enough, to catch overlaps, bad starts and (MBR) slot and order rules. */
function checkLayoutFits(parts: BoardPartition[], table: TableFields, f: Findings): void {
  try {
    const deviceSize = layoutMinimumSize({ table: table.kind, alignment: table.alignment, partitions: parts }, 512);
    if (table.kind === 'mbr') layoutMbrPartitions(mbrPartitionRequests(parts), { sectorSize: 512, deviceSize, alignment: table.alignment });
    else layoutPartitions(partitionRequests(parts), { sectorSize: 512, deviceSize, alignment: table.alignment });
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    f.err('partitions', e.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Raw regions

/** Bytes the partition table takes at the start of a 512-byte-sector card: the MBR, or the protective MBR, GPT header and entries. */
const TABLE_HEAD = { mbr: 512, gpt: 34 * 512 };

/**
 * `raw`: named regions at fixed offsets, after the table's head and before the first partition
 * (as placed on a card just big enough), not overlapping each other.
 */
function checkRawRegions(v: unknown, baseDir: string, ctx: { partitions?: BoardPartition[]; table: TableFields }, f: Findings): BoardRawRegion[] | undefined {
  if (!Array.isArray(v) || v.length === 0) {
    f.err('raw', 'must be a non-empty list of regions');
    return undefined;
  }
  const errorsBefore = f.errors.length;
  const names = new Set(ctx.partitions?.map((p) => p.name));
  const out: BoardRawRegion[] = [];
  v.forEach((r, i) => {
    const at = `raw[${i}]`;
    if (!isObj(r)) return f.err(at, 'must be an object');
    f.known(r, `${at}.`, RAW_FIELDS);
    f.comment(r, `${at}.`);
    if (typeof r.name !== 'string' || r.name === '') f.err(`${at}.name`, 'must be a non-empty string');
    else if (names.has(r.name)) f.err(`${at}.name`, `"${r.name}" is already the name of a partition or region`);
    else names.add(r.name);
    const offset = r.offset === undefined ? f.err(`${at}.offset`, 'is required') : sizeValue(r.offset, `${at}.offset`, f);
    const size = r.size === undefined ? f.err(`${at}.size`, 'is required') : sizeValue(r.size, `${at}.size`, f);
    if (typeof offset === 'number' && offset % 512 !== 0) f.err(`${at}.offset`, `${offset} is not a multiple of 512`);
    if (typeof size === 'number' && (size === 0 || size % 512 !== 0)) f.err(`${at}.size`, `${size} bytes is not a positive multiple of 512`);
    const region: BoardRawRegion = { name: typeof r.name === 'string' ? r.name : '', offset: offset ?? 0, size: size ?? 0 };
    partitionFiles(r, at, baseDir, region, f);
    out.push(region);
  });
  if (f.errors.length !== errorsBefore) return undefined;
  const head = TABLE_HEAD[ctx.table.kind];
  const firstPartition = ctx.partitions ? firstPartitionStart(ctx.partitions, ctx.table) : undefined;
  const sorted = [...out].sort((a, b) => a.offset - b.offset);
  sorted.forEach((r, i) => {
    const at = `raw[${out.indexOf(r)}]`;
    if (r.offset < head) f.err(`${at}.offset`, `${r.offset} lies in the ${ctx.table.kind === 'mbr' ? 'MBR' : 'GPT (protective MBR, header and entries up to byte 17408)'}`);
    if (i > 0 && r.offset < sorted[i - 1].offset + sorted[i - 1].size) f.err(`${at}.offset`, `region "${r.name}" overlaps region "${sorted[i - 1].name}"`);
    if (firstPartition !== undefined && r.offset + r.size > firstPartition) {
      f.err(`${at}.size`, `region "${r.name}" (bytes ${r.offset}–${r.offset + r.size - 1}) runs into the first partition at ${firstPartition}`);
    }
  });
  return f.errors.length === errorsBefore ? out : undefined;
}

/** Where the first partition starts (undefined when the layout does not place). */
function firstPartitionStart(parts: BoardPartition[], table: TableFields): number | undefined {
  try {
    const deviceSize = layoutMinimumSize({ table: table.kind, alignment: table.alignment, partitions: parts }, 512);
    const geometry = { sectorSize: 512, deviceSize, alignment: table.alignment };
    const firstLba =
      table.kind === 'mbr' ? layoutMbrPartitions(mbrPartitionRequests(parts), geometry).partitions[0].firstLba : layoutPartitions(partitionRequests(parts), geometry)[0].firstLba;
    return firstLba * 512;
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// pstore and cmdline

type PstoreNumber = 'kmsg_size' | 'pmsg_size' | 'console_size' | 'ftrace_size' | 'cpus' | 'max_reason';

/** The kernel's own limits (param-limits.ts) of the numeric pstore fields, and the error stating them. */
const SIZE_RULE = { min: 0, max: MAX_SIZE_KIB, text: `must be a non-negative integer (KiB) from 0 to ${MAX_SIZE_KIB} (128 MiB, the most pstore/blk uses of any device)` };
const PSTORE_NUMBERS: Record<PstoreNumber, { min: number; max: number; text: string }> = {
  kmsg_size: SIZE_RULE,
  pmsg_size: SIZE_RULE,
  console_size: SIZE_RULE,
  ftrace_size: SIZE_RULE,
  cpus: { min: 1, max: MAX_CPUS, text: `must be a positive integer from 1 to ${MAX_CPUS} (the largest NR_CPUS of any architecture)` },
  max_reason: { min: 0, max: 2 ** 31 - 1, text: `must be a non-negative integer from 0 to ${2 ** 31 - 1}` },
};

function checkPstore(v: unknown, f: Findings): BoardPstore | undefined {
  if (!isObj(v)) {
    f.err('pstore', 'must be an object');
    return undefined;
  }
  f.known(v, 'pstore.', PSTORE_FIELDS);
  f.comment(v, 'pstore.');
  const pstore: BoardPstore = {};
  for (const k of Object.keys(PSTORE_NUMBERS) as PstoreNumber[]) {
    if (v[k] === undefined) continue;
    const { min, max, text } = PSTORE_NUMBERS[k];
    if (!Number.isInteger(v[k]) || (v[k] as number) < min || (v[k] as number) > max) f.err(`pstore.${k}`, text);
    else pstore[k] = v[k] as number;
  }
  pstoreSettings(v, pstore, f);
  return pstore;
}

/** The fields that are not zone sizes or counts: partition, ftrace_cpu_in_ip, compress, backend, headers. */
function pstoreSettings(v: Obj, pstore: BoardPstore, f: Findings): void {
  if (v.partition !== undefined) {
    if (typeof v.partition === 'string' && v.partition !== '') pstore.partition = v.partition;
    else if (Number.isInteger(v.partition) && (v.partition as number) >= 1) pstore.partition = v.partition as number;
    else f.err('pstore.partition', 'must be a partition name or number');
  }
  if (v.ftrace_cpu_in_ip !== undefined) {
    if (![0, 1, 3].includes(v.ftrace_cpu_in_ip as number)) f.err('pstore.ftrace_cpu_in_ip', 'must be 0, 1 or 3');
    else pstore.ftrace_cpu_in_ip = v.ftrace_cpu_in_ip as 0 | 1 | 3;
  }
  if (v.compress !== undefined) {
    if (typeof v.compress !== 'string') f.err('pstore.compress', 'must be a string');
    else pstore.compress = v.compress;
  }
  if (v.backend !== undefined) {
    if (v.backend !== 'best_effort' && v.backend !== 'mmcpstore') f.err('pstore.backend', 'must be "best_effort" or "mmcpstore"');
    else pstore.backend = v.backend;
  }
  if (v.headers !== undefined) {
    if (typeof v.headers !== 'boolean') f.err('pstore.headers', 'must be true or false');
    else pstore.headers = v.headers;
  }
}

/** The pstore parameters of the command line (none when it does not parse). */
function checkCmdline(v: unknown, f: Findings): PstoreParams {
  if (typeof v !== 'string') {
    f.err('cmdline', 'must be a string');
    return {};
  }
  try {
    return parseCmdline(v);
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    f.err('cmdline', e.message);
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-field checks

/** The pstore partition: its number (1-based) and its entry. */
interface PstorePartition {
  number: number;
  part: BoardPartition;
}

/** What the cross-field checks look at; `partitions` is undefined when it has errors of its own. */
interface CheckedFields {
  pstore?: BoardPstore;
  partitions?: BoardPartition[];
  cmdParams: PstoreParams;
  table: TableFields;
}

function checkCrossFields({ pstore, partitions, cmdParams, table }: CheckedFields, f: Findings): void {
  if (pstore) checkCmdlineAgrees(pstore, cmdParams, f);
  const pstorePart = pstore?.partition !== undefined && partitions ? findPstorePartition(pstore.partition, partitions, table.kind, f) : undefined;
  if (pstore && pstorePart && typeof pstorePart.part.size === 'number') checkPstoreGeometry(pstore, pstorePart, cmdParams, f);
  if (pstorePart?.part.fs) f.err(`partitions[${partitions!.indexOf(pstorePart.part)}].fs`, 'the pstore partition holds the pstore region, not a file system');
  if (cmdParams.blkdev && partitions) checkBlkdev(cmdParams.blkdev.value, pstorePart, table, f);
  if (pstore && partitions && pstore.partition === undefined) f.err('pstore.partition', 'must name the pstore partition when the profile has a partition layout');
}

/** The pstore fields and the pstore parameters of the command line state the same values. */
function checkCmdlineAgrees(pstore: BoardPstore, cmdParams: PstoreParams, f: Findings): void {
  for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'max_reason', 'cpus'] as const) {
    const c = cmdParams[k]?.value;
    if (c !== undefined && pstore[k] !== undefined && c !== pstore[k]) f.err(`pstore.${k}`, `is ${pstore[k]} but cmdline says ${c}`);
  }
  if (pstore.compress && cmdParams.compress && pstore.compress !== cmdParams.compress.value)
    f.err('pstore.compress', `is "${pstore.compress}" but cmdline says "${cmdParams.compress.value}"`);
}

function findPstorePartition(sel: string | number, partitions: BoardPartition[], table: TableKind, f: Findings): PstorePartition | undefined {
  const numbers = partitionNumbers({ table, partitions });
  const idx = typeof sel === 'number' ? numbers.indexOf(sel) : partitions.findIndex((q) => q.name === sel);
  if (idx >= 0) return { number: numbers[idx], part: partitions[idx] };
  const list = partitions.map((q, i) => `${numbers[i]} "${q.name}"`).join(', ');
  f.err('pstore.partition', `${typeof sel === 'number' ? sel : `"${sel}"`} is not one of the profile's partitions (${list})`);
  return undefined;
}

/** The kernel accepts the zone geometry (fields first, then the command line, then Kconfig defaults) on the pstore partition. */
function checkPstoreGeometry(pstore: BoardPstore, pstorePart: PstorePartition, cmdParams: PstoreParams, f: Findings): void {
  const w: string[] = [];
  const get = (k: 'kmsg_size' | 'pmsg_size' | 'console_size' | 'ftrace_size') => pstore[k] ?? cmdParams[k]?.value ?? (k === 'kmsg_size' ? KCONFIG_DEFAULTS.kmsg_size : 0);
  const sizes = normaliseSizes({ kmsg_size: get('kmsg_size'), pmsg_size: get('pmsg_size'), console_size: get('console_size'), ftrace_size: get('ftrace_size') }, w);
  const layout = computeLayout(pstorePart.part.size as number, sizes, pstore.cpus ?? cmdParams.cpus?.value ?? 1, w);
  for (const e of layout.errors) f.err(`partitions[${pstorePart.number - 1}].size`, `the kernel would refuse this pstore region: ${e}`);
  for (const x of w) f.warn('pstore', x);
}

/** `pstore_blk.blkdev=` of the command line parses and names the pstore partition. */
function checkBlkdev(text: string, pstorePart: PstorePartition | undefined, table: TableFields, f: Findings): void {
  let spec: BlkdevSpec;
  try {
    spec = parseBlkdevSpec(text);
  } catch (e) {
    if (!(e instanceof CrashcartError)) throw e;
    f.err('cmdline', e.message);
    return;
  }
  if (!pstorePart) return;
  const { number, part } = pstorePart;
  const blkdev = `pstore_blk.blkdev=${text}`;
  if (spec.kind === 'partition' && spec.number !== number) f.err('cmdline', `${blkdev} names partition ${spec.number}, but pstore.partition is partition ${number} "${part.name}"`);
  if (spec.kind === 'disk') f.err('cmdline', `${blkdev} is a whole disk, but pstore.partition is partition ${number}`);
  if (table.kind === 'mbr') {
    if (spec.kind === 'partlabel') f.err('cmdline', `${blkdev}: MBR partitions have no labels; name the partition by number or PARTUUID=<disk_signature>-NN`);
    if (spec.kind !== 'partuuid') return;
    const want = table.diskSignature ? mbrPartuuid(table.diskSignature, number) : undefined;
    if (!want) f.err('cmdline', `${blkdev} needs disk_signature so that provisioning writes that PARTUUID`);
    else if (spec.uuid.toLowerCase() !== want || spec.partnroff !== 0) f.err('cmdline', `${blkdev} is not partition ${number} "${part.name}", whose PARTUUID is ${want}`);
    return;
  }
  if (spec.kind === 'partlabel' && spec.label !== part.name) f.err('cmdline', `${blkdev} names "${spec.label}", but pstore.partition is "${part.name}"`);
  if (spec.kind === 'partuuid' && part.uuid && spec.uuid.toUpperCase() !== part.uuid) f.err('cmdline', `${blkdev} is not the uuid of partition "${part.name}"`);
  if (spec.kind === 'partuuid' && !part.uuid) f.err('cmdline', `${blkdev} needs partitions[${number - 1}].uuid so that provisioning writes that PARTUUID`);
}

/** The PARTUUID Linux gives MBR partition `number` of a disk with this signature (`5452574f-05`). */
export function mbrPartuuid(signature: string, number: number): string {
  return `${signature}-${number.toString(16).padStart(2, '0')}`;
}

/** Linux partition numbers of the profile's partitions, in profile order (MBR: primary 1–4, logical from 5). */
export function partitionNumbers(p: { table?: TableKind; partitions: BoardPartition[] }): number[] {
  let logical = 5;
  return p.partitions.map((q, i) => (p.table === 'mbr' && q.logical ? logical++ : i + 1));
}

/** Bytes the profile's layout needs on a card with `sectorSize`-byte sectors (not counting card.min_size). */
export function layoutMinimumSize(p: { table?: TableKind; alignment?: number; partitions: BoardPartition[] }, sectorSize: number): number {
  const align = p.alignment ?? DEFAULT_ALIGNMENT;
  return p.table === 'mbr' ? minimumMbrDeviceSize(mbrPartitionRequests(p.partitions), sectorSize, align) : minimumDeviceSize(partitionRequests(p.partitions), sectorSize, align);
}

/** The profile's partitions as layout requests for `layoutMbrPartitions`. */
export function mbrPartitionRequests(parts: BoardPartition[]): MbrPartitionRequest[] {
  return parts.map((p) => ({
    name: p.name,
    type: parseInt(p.type, 16),
    size: p.size,
    ...(p.start !== undefined ? { start: p.start } : {}),
    ...(p.bootable ? { bootable: true } : {}),
    ...(p.logical ? { logical: true } : {}),
  }));
}

/** The profile's partitions as layout requests for `layoutPartitions`. */
export function partitionRequests(parts: BoardPartition[]): PartitionRequest[] {
  return parts.map((p) => ({
    name: p.name,
    typeGuid: p.type,
    size: p.size,
    ...(p.start !== undefined ? { start: p.start } : {}),
    ...(p.uuid ? { uuid: p.uuid } : {}),
    ...(p.attributes ? { attributeBits: p.attributes } : {}),
  }));
}

/**
 * Validates a parsed profile.
 * @throws BadInputError listing every problem, each with its field path.
 */
export function validateProfile(json: unknown, path: string): BoardProfile {
  const r = checkProfile(json, path);
  if (!r.profile) {
    const list = r.errors.length === 1 ? r.errors[0] : `${r.errors.length} problems:\n  ${r.errors.join('\n  ')}`;
    throw new BadInputError(`profile ${path}: ${list}`);
  }
  return r.profile;
}

/** Where `loadProfile` would read a profile from: a path to a .json file, or a bundled name. */
export function resolveProfilePath(nameOrPath: string): string {
  if (existsSync(nameOrPath) && nameOrPath.endsWith('.json')) return nameOrPath;
  const bundled = join(bundledProfilesDir(), `${nameOrPath}.json`);
  if (PROFILE_NAME.test(nameOrPath) && existsSync(bundled)) return bundled;
  if (existsSync(nameOrPath)) return nameOrPath;
  throw new UsageError(`no board profile "${nameOrPath}" (bundled: ${listProfiles().join(', ') || 'none'})`);
}

/** Reads and parses a profile file without validating it. */
export function readProfileJson(path: string): unknown {
  try {
    return JSON.parse(readFileBounded(path, PROFILE_MAX_BYTES, 'profile').toString('utf8'));
  } catch (e) {
    if (e instanceof InputLimitError) throw e;
    if (e instanceof UsageError && / ENOENT$/.test(e.message)) throw new UsageError(`profile ${path}: no such file`);
    if (e instanceof CrashcartError) throw new BadInputError(e.message);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`profile ${path}: no such file`);
    throw new BadInputError(`profile ${path}: ${code ?? (e as Error).message}`);
  }
}

/** Loads a profile by bundled name (`qemu-x86_64`) or by file path. */
export function loadProfile(nameOrPath: string): BoardProfile {
  const path = resolveProfilePath(nameOrPath);
  return validateProfile(readProfileJson(path), path);
}

export function listProfiles(): string[] {
  const dir = bundledProfilesDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .map((f) => f.slice(0, -5))
    .sort();
}

/** The pstore parameters a profile states, tagged with source "profile". */
export function profileParams(p: BoardProfile): PstoreParams {
  const out: PstoreParams = {};
  const src = <T>(value: T): Sourced<T> => ({ value, source: 'profile' });
  const ps = p.pstore ?? {};
  for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason'] as const) {
    if (ps[k] !== undefined) out[k] = src(ps[k]!);
  }
  if (ps.compress) out.compress = src(ps.compress);
  if (ps.ftrace_cpu_in_ip !== undefined) out.ftrace_cpu_in_ip = src(ps.ftrace_cpu_in_ip);
  return out;
}

/** Everything the profile says about pstore: its fields, then the pstore parameters of its cmdline. */
export function allProfileParams(p: BoardProfile): PstoreParams {
  const fromCmdline: PstoreParams = {};
  if (p.cmdline) {
    for (const [k, v] of Object.entries(parseCmdline(p.cmdline))) (fromCmdline as Record<string, unknown>)[k] = { ...(v as object), source: 'profile' };
  }
  const fields = profileParams(p);
  return { ...fromCmdline, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) };
}
