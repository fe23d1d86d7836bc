/**
 * Finds the pstore region on a device: the region the user selected, else the partition the
 * board's `pstore_blk.blkdev=` names, else — on a partitioned card — the partition that carries
 * pstore signatures, else the whole device. A partition cut off by the end of a truncated image
 * is still returned (with `available` < `size`) so the decoder can save what is there.
 */
import type { BlockDevice } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { formatBytes } from '../util/format-bytes.js';
import { BadInputError, NoPstoreError, UsageError } from '../errors.js';
import type { Partition, PartitionTable } from '../partition/partition-table.js';
import { readPartitionTable } from '../partition/partition-table.js';
import type { RegionSelector } from '../partition/select-region.js';
import { parseBlkdevSpec, selectRegion } from '../partition/select-region.js';
import { MAX_REGION } from './layout.js';
import type { RegionSource } from './region-source.js';
import { deviceSource } from './region-source.js';
import { scanSignatures } from './scan.js';

export interface LocatedRegion {
  source: RegionSource;
  offset: number;
  size: number;
  description: string;
  partition?: Partition;
  table: PartitionTable | null;
  warnings: string[];
}

export interface LocateOptions {
  /** What the user selected; undefined = nothing (auto). */
  selector?: RegionSelector;
  /** pstore_blk.blkdev= of the board, used when the user selected nothing. */
  blkdev?: string;
  /**
   * `read` (default) searches a partitioned card for the partition carrying pstore signatures;
   * `write` never guesses from the data: it takes a partition named "pstore", the whole device
   * when there is no partition table, and otherwise asks the user to name the region.
   */
  purpose?: 'read' | 'write';
  /** mmcpstore.sector_offset / sector_count (512-byte sectors inside the partition). */
  sectorOffset?: number;
  sectorCount?: number;
}

function fromPartition(dev: BlockDevice, p: Partition, table: PartitionTable, description: string, warnings: string[]): LocatedRegion {
  if (p.start + p.size > dev.size) {
    warnings.push(`partition ${p.number} ends ${formatBytes(p.start + p.size - dev.size)} past the end of the image (truncated?); reading what is there`);
  }
  return { source: deviceSource(dev, p.start, p.size), offset: p.start, size: p.size, description, partition: p, table, warnings };
}

/** Partitions cut off by a truncated image make the strict selector fail; find them by hand. */
function partitionFor(table: PartitionTable | null, sel: RegionSelector): Partition | undefined {
  if (!table) return undefined;
  if (sel.kind === 'partition' && typeof sel.partition === 'number') return table.partitions.find((p) => p.number === sel.partition);
  if (sel.kind === 'partition') return table.partitions.find((p) => p.name === sel.partition);
  if (sel.kind === 'blkdev') {
    const spec = typeof sel.spec === 'string' ? parseBlkdevSpec(sel.spec) : sel.spec;
    if (spec.kind === 'partition') return table.partitions.find((p) => p.number === spec.number);
    if (spec.kind === 'partlabel') return table.partitions.find((p) => p.name === spec.label);
  }
  return undefined;
}

/** How to name a region without relying on the partition table. */
const EXPLICIT_HINT = 'name the region explicitly with --offset BYTES --size BYTES';

export async function locatePstoreRegion(dev: BlockDevice, opts: LocateOptions = {}): Promise<LocatedRegion> {
  if (opts.purpose !== 'write') return locate(dev, opts);
  // Writes only where the region is certain: a damaged table, a partition or blkdev= that
  // cannot be found, or a partition cut off by the end of the device are refused (exit 6);
  // an explicit --offset/--size range is taken as given.
  const explicit = opts.selector?.kind === 'range';
  let region: LocatedRegion;
  try {
    region = await locate(dev, opts, { refuseGuesses: !explicit });
  } catch (e) {
    if (e instanceof UsageError && opts.selector?.kind !== 'range') throw new BadInputError(`${e.message}; refusing to write to a region that is not certain: ${EXPLICIT_HINT}`);
    throw e;
  }
  if (region.offset + region.size > dev.size) {
    throw new BadInputError(
      `${region.description} runs ${formatBytes(region.offset + region.size - dev.size)} past the end of ${dev.info.name} (truncated image?); refusing to write there`,
    );
  }
  return region;
}

async function locate(dev: BlockDevice, opts: LocateOptions, policy: { refuseGuesses?: boolean } = {}): Promise<LocatedRegion> {
  const warnings: string[] = [];
  let table: PartitionTable | null = null;
  try {
    table = await readPartitionTable(dev);
  } catch (e) {
    if (!(e instanceof BadInputError)) throw e;
    if (policy.refuseGuesses)
      throw new BadInputError(`the partition table of ${dev.info.name} is damaged (${e.message}); refusing to write to a region that is only a guess: ${EXPLICIT_HINT}`);
    warnings.push(`partition table unreadable (${e.message}); treating the device as unpartitioned`);
  }
  if (table) warnings.push(...table.warnings);
  let sel = opts.selector;
  let how = '';
  if (!sel && opts.blkdev) {
    const spec = parseBlkdevSpec(opts.blkdev);
    // A partition name on an unpartitioned image means the image *is* that partition.
    if (spec.kind !== 'disk' && !table && policy.refuseGuesses) {
      throw new BadInputError(
        `blkdev=${opts.blkdev} names a partition but ${dev.info.name} has no partition table; refusing to guess where it is: ${EXPLICIT_HINT} (for an image of that partition alone: --offset 0 --size ${dev.size})`,
      );
    }
    if (spec.kind === 'disk' || !table) {
      sel = { kind: 'whole' };
      how = spec.kind === 'disk' ? '' : `blkdev=${opts.blkdev} names a partition but the image has no partition table: using the whole image as that partition; `;
    } else sel = { kind: 'blkdev', spec };
  }
  let region: LocatedRegion;
  if (sel) {
    const p = partitionFor(table, sel);
    if (sel.kind === 'range' && sel.size !== undefined && sel.offset < dev.size && sel.offset + sel.size > dev.size) {
      warnings.push(`the region ends ${formatBytes(sel.offset + sel.size - dev.size)} past the end of the image (truncated?); reading what is there`);
      region = { source: deviceSource(dev, sel.offset, sel.size), offset: sel.offset, size: sel.size, description: `offset ${sel.offset}, size ${sel.size}`, table, warnings };
    } else if (p && table && p.start + p.size > dev.size) {
      region = fromPartition(dev, p, table, `${how}partition ${p.number}${p.name ? ` "${p.name}"` : ''}: offset ${p.start}, size ${p.size}`, warnings);
    } else {
      const s = selectRegion(dev, table, sel);
      const r = s.device;
      region = { source: deviceSource(dev, r.offset, r.size), offset: r.offset, size: r.size, description: how + s.description, partition: s.partition, table, warnings };
    }
  } else if (table && table.partitions.length > 0 && opts.purpose === 'write') {
    const named = table.partitions.filter((p) => p.name?.toLowerCase() === 'pstore');
    if (named.length !== 1) {
      const list = table.partitions.map((p) => `${p.number}${p.name ? ` "${p.name}"` : ''}`).join(', ');
      throw new UsageError(`${dev.info.name} is partitioned (${list}): name the pstore region with --partition, --blkdev or --offset/--size`);
    }
    const p = named[0];
    region = fromPartition(dev, p, table, `partition ${p.number} "${p.name}": offset ${p.start}, size ${p.size}`, warnings);
  } else if (table && table.partitions.length > 0) {
    region = await searchPartitions(dev, table, warnings);
  } else {
    if (policy.refuseGuesses && !sel) {
      const what = await formattedAs(dev);
      if (what)
        throw new BadInputError(
          `${dev.info.name} has no partition table but holds ${what}; refusing to treat the whole device as the pstore region: ${EXPLICIT_HINT}, or --blkdev naming the disk`,
        );
    }
    region = { source: deviceSource(dev, 0, dev.size), offset: 0, size: dev.size, description: `whole device: size ${dev.size} (${formatBytes(dev.size)})`, table, warnings };
  }
  if (opts.sectorOffset !== undefined || opts.sectorCount !== undefined) {
    const off = (opts.sectorOffset ?? 0) * 512;
    const size = opts.sectorCount !== undefined ? opts.sectorCount * 512 : region.size - off;
    region = {
      ...region,
      source: deviceSource(dev, region.offset + off, size),
      offset: region.offset + off,
      size,
      description: `${region.description}, mmcpstore sectors ${opts.sectorOffset ?? 0}+${opts.sectorCount ?? '(rest)'}`,
    };
  }
  return region;
}

/** What a device without a partition table holds at its start, when that is a file system or container. */
async function formattedAs(dev: BlockDevice): Promise<string | undefined> {
  if (dev.size < 4096) return undefined;
  const b = await readRange(dev, 0, 4096);
  if ((await scanSignatures(deviceSource(dev, 0, 4096), 1)).length > 0) return undefined; // a pstore zone
  const ascii = (o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));
  if (b[510] === 0x55 && b[511] === 0xaa) return 'a boot sector (FAT file system or boot loader)';
  if (b[0x438] === 0x53 && b[0x439] === 0xef) return 'an ext2/3/4 file system';
  if (ascii(0, 4) === 'XFSB') return 'an XFS file system';
  if (ascii(0, 4) === 'hsqs') return 'a squashfs image';
  if (ascii(0, 6) === 'LUKS\xba\xbe') return 'a LUKS container';
  if (ascii(512, 8) === 'LABELONE') return 'an LVM physical volume';
  return undefined;
}

/** Picks the partition whose first 128 MiB carry the most pstore zone signatures. */
async function searchPartitions(dev: BlockDevice, table: PartitionTable, warnings: string[]): Promise<LocatedRegion> {
  const likely = /pstore|oops|crash|logdump|ramoops|dump/i;
  const order = [...table.partitions].sort((a, b) => Number(likely.test(b.name ?? '')) - Number(likely.test(a.name ?? '')) || a.size - b.size);
  let best: { p: Partition; hits: number } | null = null;
  for (const p of order) {
    if (p.size > 4 * MAX_REGION && !likely.test(p.name ?? '')) continue;
    const hits = (await scanSignatures(deviceSource(dev, p.start, p.size), 64)).length;
    if (hits > (best?.hits ?? 0)) best = { p, hits };
    if (hits > 0 && likely.test(p.name ?? '')) break;
  }
  if (!best) {
    const list = table.partitions.map((p) => `${p.number}${p.name ? ` "${p.name}"` : ''}`).join(', ');
    throw new NoPstoreError(
      `no pstore/blk signatures in any partition of ${dev.info.name} (${table.kind.toUpperCase()}: ${list}); name the region with --partition, --blkdev or --cmdline "pstore_blk.blkdev=..."`,
    );
  }
  const p = best.p;
  return fromPartition(dev, p, table, `partition ${p.number}${p.name ? ` "${p.name}"` : ''} (found by its pstore signatures): offset ${p.start}, size ${p.size}`, warnings);
}
