/**
 * pstore/blk parameters and where each value came from: kernel command line, explicit flags,
 * a board profile, the board kernel's Kconfig, Kconfig defaults, or detection from the disk.
 *
 * Sizes are kept exactly as the kernel's module parameters hold them: `long` KiB numbers,
 * where <= 0 means "no such zone". `normaliseSizes()` (layout.ts) turns them into bytes the
 * way pstore/blk's check_size() does.
 */
export type ParamSource = 'cmdline' | 'flag' | 'profile' | 'kconfig' | 'kconfig-default' | 'detected' | 'default';

export interface Sourced<T> {
  value: T;
  source: ParamSource;
}

export type SizeParam = 'kmsg_size' | 'pmsg_size' | 'console_size' | 'ftrace_size';
export const SIZE_PARAMS: readonly SizeParam[] = ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size'];

/** A partial parameter set; layers are merged with `mergeParams`, earlier wins. */
export interface PstoreParams {
  kmsg_size?: Sourced<number>;
  pmsg_size?: Sourced<number>;
  console_size?: Sourced<number>;
  ftrace_size?: Sourced<number>;
  /** nr_cpu_ids of the writing kernel (possible CPUs); only matters when ftrace_size > 0. */
  cpus?: Sourced<number>;
  max_reason?: Sourced<number>;
  blkdev?: Sourced<string>;
  /** pstore.compress= of the writing kernel (a hint for which decompressor to try first). */
  compress?: Sourced<string>;
  /** mmcpstore sector offset/count inside the partition (sectors of 512 bytes). */
  sector_offset?: Sourced<number>;
  sector_count?: Sourced<number>;
  /** ARM kernels with NR_CPUS <= 4 store the CPU in the low bits of ftrace ip (PSTORE_CPU_IN_IP). */
  ftrace_cpu_in_ip?: Sourced<number>;
}

/** Merges parameter layers; for each key the first layer that has it wins. */
export function mergeParams(...layers: (PstoreParams | undefined)[]): PstoreParams {
  const out: PstoreParams = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer) as [keyof PstoreParams, Sourced<never>][]) {
      if (v !== undefined && out[k] === undefined) (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** Kconfig defaults of pstore/blk when nothing else says otherwise (CONFIG_PSTORE_BLK_KMSG_SIZE=64, MAX_REASON=2). */
export const KCONFIG_DEFAULTS = { kmsg_size: 64, max_reason: 2, frontendSize: 64 } as const;
