import type { Layout } from './layout.js';
import type { PstoreParams } from './params.js';

/**
 * The kernel command line that makes a board's pstore/blk use exactly `layout`: every size
 * explicit (so Kconfig defaults cannot shift the zones), best_effort for plain block devices.
 */
export function boardCmdline(layout: Layout, blkdev: string, params: PstoreParams = {}): string {
  const kib = (b: number) => String(b / 1024);
  const parts = [
    `pstore_blk.blkdev=${blkdev}`,
    'pstore_blk.best_effort=y',
    `pstore_blk.kmsg_size=${kib(layout.sizes.kmsg)}`,
    `pstore_blk.pmsg_size=${kib(layout.sizes.pmsg)}`,
    `pstore_blk.console_size=${kib(layout.sizes.console)}`,
    `pstore_blk.ftrace_size=${kib(layout.sizes.ftrace)}`,
    `pstore_blk.max_reason=${params.max_reason?.value ?? 2}`,
  ];
  if (params.compress) parts.push(`pstore.compress=${params.compress.value}`);
  return parts.join(' ');
}

/**
 * How the board should name a region when nobody said: pstore/blk opens `blkdev` as a path
 * (filp_open since 5.14), so a GPT partition is named by its udev by-partuuid link, which does
 * not depend on how the board enumerates its disks.
 */
export function blkdevFor(partition?: { uuid?: string; number: number }): string {
  if (partition?.uuid) return `/dev/disk/by-partuuid/${partition.uuid.toLowerCase()}`;
  if (partition) return `/dev/mmcblk0p${partition.number}`;
  return '/dev/mmcblk0';
}
