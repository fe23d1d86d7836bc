/**
 * Turns what the user said (`--partition`, `--offset/--size`, or the kernel's `blkdev=`
 * spelling from the target's command line) into a RegionDevice on a whole-card device.
 *
 * The kernel names (`/dev/mmcblk1p9`, `/dev/sda3`, `PARTLABEL=pstore`, …) refer to the
 * target's running system; offline we only have the card, so the disk part of the name is
 * ignored and the partition number, label or UUID is looked up in the card's own table.
 */
import type { BlockDevice } from '../blockdev/block-device.js';
import { RegionDevice } from '../blockdev/region-device.js';
import { formatBytes } from '../util/format-bytes.js';
import { BadInputError, UsageError } from '../errors.js';
import { guidEquals, isGuid } from './guid.js';
import type { Partition, PartitionTable } from './types.js';

// ---------------------------------------------------------------------------------------------
// Byte sizes

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

/**
 * Parses a byte count: a decimal or 0x-hex integer with an optional unit.
 * K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024; KB, MB, GB, TB powers of 1000 (as util-linux).
 * @throws UsageError for anything else, negative or fractional-byte values, or values past 2^53.
 */
export function parseByteSize(input: string | number, what = 'size'): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw new UsageError(`${what} must be a non-negative whole number of bytes, got ${input}`);
  }
  const m = /^\s*(0x[0-9a-f]+|\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`invalid ${what} "${input}": expected a number of bytes, optionally with K, M, G, T (or KiB, MiB, GiB, TiB, KB, MB, GB, TB)`);
  }
  const num = /^0x/i.test(m[1]) ? parseInt(m[1], 16) : Number(m[1]);
  const bytes = num * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`invalid ${what} "${input}": ${Number.isInteger(bytes) ? 'too large' : 'not a whole number of bytes'}`);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// blkdev= spellings

export type BlkdevSpec =
  /** A whole-disk name: the whole device. */
  | { kind: 'disk'; text: string; disk: string }
  /** A partition device name: partition `number` of the card. */
  | { kind: 'partition'; text: string; disk: string; number: number }
  | { kind: 'partlabel'; text: string; label: string }
  /** `PARTUUID=uuid[/PARTNROFF=n]`: the partition with that UUID, or `n` partitions after it. */
  | { kind: 'partuuid'; text: string; uuid: string; partnroff: number };

const OFFLINE_HINT =
  'it names a device number of the running target and cannot be mapped onto a card offline; ' +
  'use a name such as /dev/mmcblk0p9, PARTLABEL=…, PARTUUID=…, or --partition/--offset';

/**
 * Parses the value of `pstore_blk.blkdev=` (or any kernel block-device spelling).
 * @throws UsageError for device numbers (`179:9`, hex dev_t), eMMC boot/RPMB areas and
 *   anything unrecognised.
 */
export function parseBlkdevSpec(input: string): BlkdevSpec {
  const text = input.trim();
  if (text === '') throw new UsageError('empty blkdev specification');

  const eq = /^(PARTUUID|PARTLABEL)=(.*)$/i.exec(text);
  if (eq) {
    const key = eq[1].toUpperCase();
    const value = eq[2];
    if (key === 'PARTLABEL') {
      if (value === '') throw new UsageError('PARTLABEL= needs a partition name');
      return { kind: 'partlabel', text, label: value };
    }
    const m = /^([^/]+)(?:\/PARTNROFF=(-?\d+))?$/i.exec(value);
    if (!m) throw new UsageError(`invalid PARTUUID specification "${text}": expected PARTUUID=<uuid> or PARTUUID=<uuid>/PARTNROFF=<n>`);
    const uuid = m[1];
    if (!isGuid(uuid) && !/^[0-9a-f]{8}-[0-9a-f]{2}$/i.test(uuid)) {
      throw new UsageError(`invalid PARTUUID "${uuid}": expected a GPT GUID (8-4-4-4-12 hex digits) or an MBR id like 1234abcd-02`);
    }
    return { kind: 'partuuid', text, uuid, partnroff: m[2] !== undefined ? Number(m[2]) : 0 };
  }

  if (/^\d+:\d+$/.test(text)) throw new UsageError(`blkdev "${text}" is a major:minor pair; ${OFFLINE_HINT}`);
  if (/^(0x)?[0-9a-f]+$/i.test(text)) throw new UsageError(`blkdev "${text}" is a hexadecimal device number; ${OFFLINE_HINT}`);

  let m = /^\/dev\/(?:block\/(?:platform\/.+\/)?by-name|disk\/by-partlabel)\/(.+)$/.exec(text);
  if (m) return { kind: 'partlabel', text, label: m[1] };
  m = /^\/dev\/disk\/by-partuuid\/(.+)$/.exec(text);
  if (m) return parseBlkdevSpec(`PARTUUID=${m[1]}`);

  const name = text.replace(/^\/dev\/(?:block\/)?/, '');
  if (/^mmcblk\d+(?:boot\d+|rpmb|gp\d+)$/.test(name)) {
    throw new UsageError(`blkdev "${text}" is an eMMC hardware area, not a partition of the card's user area; it cannot be reached through a card image or reader`);
  }
  m = /^((?:mmcblk|loop|nbd|md)\d+|nvme\d+n\d+)p(\d+)$/.exec(name) ?? /^((?:s|v|h|xv)d[a-z]+)(\d+)$/.exec(name);
  if (m) {
    const number = Number(m[2]);
    if (number < 1) throw new UsageError(`blkdev "${text}": partition numbers start at 1`);
    return { kind: 'partition', text, disk: m[1], number };
  }
  m = /^((?:mmcblk|loop|nbd|md)\d+|nvme\d+n\d+|(?:s|v|h|xv)d[a-z]+)$/.exec(name);
  if (m) return { kind: 'disk', text, disk: m[1] };
  throw new UsageError(`unrecognised blkdev "${text}": expected /dev/mmcblkNpM, /dev/sdXN, /dev/vdXN, /dev/nvmeNnMpK, /dev/block/…, PARTLABEL=name or PARTUUID=uuid[/PARTNROFF=n]`);
}

// ---------------------------------------------------------------------------------------------
// Region selection

export type RegionSelector =
  | { kind: 'whole' }
  /** `--partition N|NAME`: a number, or a GPT name (exact match first, then case-insensitive). */
  | { kind: 'partition'; partition: number | string }
  /** `--offset/--size` in bytes; size defaults to the rest of the device. */
  | { kind: 'range'; offset: number; size?: number }
  | { kind: 'blkdev'; spec: string | BlkdevSpec };

export interface SelectedRegion {
  device: RegionDevice;
  /** For reports: `partition 2 "pstore": offset 2097152 (2 MiB), size 5222400 (4.98 MiB)`. */
  description: string;
  /** The partition-table entry, when the region is a partition. */
  partition?: Partition;
}

export interface RegionOptions {
  partition?: string | number;
  offset?: string | number;
  size?: string | number;
  blkdev?: string;
}

/**
 * Builds a selector from CLI-style options. `--partition`, `--blkdev` and `--offset/--size`
 * exclude each other; none of them means the whole device.
 */
export function regionSelectorFromOptions(o: RegionOptions): RegionSelector {
  const given = [
    o.partition !== undefined ? '--partition' : undefined,
    o.blkdev !== undefined ? '--blkdev' : undefined,
    o.offset !== undefined || o.size !== undefined ? '--offset/--size' : undefined,
  ].filter((x): x is string => x !== undefined);
  if (given.length > 1) throw new UsageError(`${given.join(' and ')} cannot be combined; use one way of choosing the region`);
  if (o.partition !== undefined) {
    const p = typeof o.partition === 'string' ? o.partition.trim() : o.partition;
    if (p === '') throw new UsageError('--partition needs a number or a name');
    return { kind: 'partition', partition: typeof p === 'string' && /^\d+$/.test(p) ? Number(p) : p };
  }
  if (o.blkdev !== undefined) return { kind: 'blkdev', spec: parseBlkdevSpec(o.blkdev) };
  if (o.offset !== undefined || o.size !== undefined) {
    return {
      kind: 'range',
      offset: o.offset !== undefined ? parseByteSize(o.offset, 'offset') : 0,
      ...(o.size !== undefined ? { size: parseByteSize(o.size, 'size') } : {}),
    };
  }
  return { kind: 'whole' };
}

function describePartition(p: Partition): string {
  const label = p.name ? ` "${p.name}"` : '';
  return `partition ${p.number}${label}: offset ${p.start} (${formatBytes(p.start)}), size ${p.size} (${formatBytes(p.size)})`;
}

function listPartitions(table: PartitionTable): string {
  if (table.partitions.length === 0) return 'the partition table is empty';
  return 'partitions: ' + table.partitions.map((p) => (p.name ? `${p.number} "${p.name}"` : String(p.number))).join(', ');
}

function needTable(dev: BlockDevice, table: PartitionTable | null, what: string): PartitionTable {
  if (table) return table;
  throw new UsageError(`${dev.info.name} has no partition table, so ${what} cannot be found; use --offset/--size, or omit the selection to use the whole device`);
}

function byNumber(dev: BlockDevice, table: PartitionTable, n: number, what: string): Partition {
  const p = table.partitions.find((q) => q.number === n);
  if (!p) throw new UsageError(`${what}: ${dev.info.name} has no partition ${n} (${listPartitions(table)})`);
  return p;
}

/** Finds a partition by GPT name: exact match, else a unique case-insensitive match. */
export function findPartitionByName(table: PartitionTable, name: string): Partition {
  const exact = table.partitions.filter((p) => p.name === name);
  if (exact.length === 1) return exact[0];
  const cands = exact.length > 1 ? exact : table.partitions.filter((p) => p.name !== undefined && p.name.toLowerCase() === name.toLowerCase());
  if (cands.length === 1) return cands[0];
  if (cands.length > 1) {
    throw new UsageError(`partition name "${name}" is ambiguous: ${cands.map((p) => `${p.number} "${p.name}"`).join(', ')}; select it by number instead`);
  }
  if (table.kind === 'mbr') throw new UsageError(`MBR partitions have no names; "${name}" cannot be found (${listPartitions(table)})`);
  throw new UsageError(`no partition named "${name}" (${listPartitions(table)})`);
}

function partitionRegion(dev: BlockDevice, p: Partition, prefix = ''): SelectedRegion {
  if (p.start + p.size > dev.size) {
    throw new BadInputError(`partition ${p.number} (offset ${p.start}, size ${p.size}) extends past the end of ${dev.info.name} (size ${dev.size}); is the image truncated?`);
  }
  const device = new RegionDevice(dev, p.start, p.size, `${dev.info.name}#${p.number}`);
  return { device, description: prefix + describePartition(p), partition: p };
}

function whole(dev: BlockDevice, prefix = ''): SelectedRegion {
  return {
    device: new RegionDevice(dev, 0, dev.size, dev.info.name),
    description: `${prefix}whole device: size ${dev.size} (${formatBytes(dev.size)})`,
  };
}

/**
 * Returns the region the selector names, as a RegionDevice over `dev` (closing it leaves
 * `dev` open).
 * @throws UsageError for a missing/ambiguous partition, a range outside the device, or a
 *   partition-based selector on a device with no table; BadInputError when the partition
 *   table points past the end of the device.
 */
export function selectRegion(dev: BlockDevice, table: PartitionTable | null, sel: RegionSelector): SelectedRegion {
  switch (sel.kind) {
    case 'whole':
      return whole(dev);
    case 'range': {
      const offset = sel.offset;
      if (!Number.isSafeInteger(offset) || offset < 0) throw new UsageError(`invalid offset ${offset}`);
      if (offset > dev.size) throw new UsageError(`offset ${offset} is past the end of ${dev.info.name} (size ${dev.size})`);
      const size = sel.size ?? dev.size - offset;
      if (!Number.isSafeInteger(size) || size <= 0) throw new UsageError(`invalid or empty region size ${size}`);
      const device = new RegionDevice(dev, offset, size);
      return { device, description: `offset ${offset} (${formatBytes(offset)}), size ${size} (${formatBytes(size)})` };
    }
    case 'partition': {
      const what = `partition ${typeof sel.partition === 'number' ? sel.partition : `"${sel.partition}"`}`;
      const t = needTable(dev, table, what);
      if (typeof sel.partition === 'number') return partitionRegion(dev, byNumber(dev, t, sel.partition, '--partition'));
      const byNum = /^\d+$/.test(sel.partition) ? t.partitions.find((p) => p.number === Number(sel.partition)) : undefined;
      return partitionRegion(dev, byNum ?? findPartitionByName(t, sel.partition));
    }
    case 'blkdev': {
      const spec = typeof sel.spec === 'string' ? parseBlkdevSpec(sel.spec) : sel.spec;
      const prefix = `blkdev=${spec.text} → `;
      switch (spec.kind) {
        case 'disk':
          return whole(dev, prefix);
        case 'partition': {
          const t = needTable(dev, table, `partition ${spec.number} (blkdev=${spec.text})`);
          return partitionRegion(dev, byNumber(dev, t, spec.number, `blkdev=${spec.text}`), prefix);
        }
        case 'partlabel': {
          const t = needTable(dev, table, `PARTLABEL "${spec.label}"`);
          // The kernel compares PARTLABEL exactly; fall back to case-insensitive like --partition.
          return partitionRegion(dev, findPartitionByName(t, spec.label), prefix);
        }
        case 'partuuid': {
          const t = needTable(dev, table, `PARTUUID ${spec.uuid}`);
          const base = t.partitions.find((p) => p.uuid !== undefined && guidEquals(p.uuid, spec.uuid));
          if (!base) {
            const known = t.partitions.map((p) => `${p.number}=${p.uuid ?? '?'}`).join(', ');
            throw new UsageError(`no partition with PARTUUID ${spec.uuid} on ${dev.info.name} (${known || 'no partitions'})`);
          }
          if (spec.partnroff === 0) return partitionRegion(dev, base, prefix);
          const target = base.number + spec.partnroff;
          return partitionRegion(dev, byNumber(dev, t, target, `PARTUUID ${spec.uuid} is partition ${base.number}; PARTNROFF=${spec.partnroff}`), prefix);
        }
      }
    }
  }
  throw new UsageError('unknown region selector');
}
