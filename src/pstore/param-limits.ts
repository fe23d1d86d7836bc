/**
 * The ranges the kernel itself allows for the pstore/blk geometry, checked wherever a value
 * enters: command-line flags, a board's kernel command line (`--cmdline`, a profile's
 * `cmdline`), profile fields and the board's Kconfig. A value outside its range is a
 * UsageError (exit 2) that names the range.
 *
 * Kernel facts (fs/pstore/blk.c module parameters and check_size()): the size parameters are `long` KiB module parameters; `<= 0` means
 * "no zone"; check_size() turns them into bytes (KiB × 1024, or ALIGN(KiB, 4096) when that is
 * not a multiple of 4 KiB); register_pstore_zone() caps the device at 128 MiB, so a zone whose
 * normalised size is larger than 128 MiB never fits ("no room for …") and the kernel refuses to
 * register. The possible-CPU count `nr_cpu_ids` is at most NR_CPUS, whose largest value on any
 * architecture is 8192 (x86 CONFIG_MAXSMP; CONFIG_NR_CPUS range 2..8192).
 */
import { UsageError } from '../errors.js';
import { MAX_REGION } from './layout.js';

/** Largest zone size in KiB: the 128 MiB the kernel uses of any device. */
export const MAX_SIZE_KIB = MAX_REGION / 1024;
/** Largest nr_cpu_ids of any Linux architecture (x86 MAXSMP: NR_CPUS = 8192). */
export const MAX_CPUS = 8192;
/** Sector counts/offsets: 512-byte sectors whose byte offset stays a safe integer. */
export const MAX_SECTORS = Math.floor(Number.MAX_SAFE_INTEGER / 512);
const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;

/** pstore/blk check_size(): KiB → bytes (duplicated from layout.ts to keep this module free of messages). */
function normalisedBytes(kib: number): number {
  const bytes = kib <= 0 ? 0 : kib * 1024;
  return bytes % 4096 === 0 ? bytes : Math.ceil(kib / 4096) * 4096;
}

/**
 * A zone size given as a flag or profile field: a whole number of KiB from 0 (no zone) to
 * 131072 (128 MiB). `what` names it in the message (`--kmsg-size`).
 */
export function checkSizeKiB(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_SIZE_KIB) {
    throw new UsageError(`${what} must be a whole number of KiB from 0 (no zone) to ${MAX_SIZE_KIB} (128 MiB, the most pstore/blk uses of any device), got ${value}`);
  }
  return value;
}

/**
 * A size parameter as the kernel reads it (`pstore_blk.kmsg_size=` on a command line,
 * CONFIG_PSTORE_BLK_*_SIZE): any negative value means no zone, as in the kernel; a positive one
 * must normalise to at most 128 MiB, or the kernel could never place the zone.
 */
export function checkKernelSizeKiB(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new UsageError(`${what}=${value}: out of range; sizes are KiB from 0 to ${MAX_SIZE_KIB} (128 MiB), or negative for no zone`);
  if (value > 0 && normalisedBytes(value) > MAX_REGION) {
    throw new UsageError(
      `${what}=${value}: a zone of ${value} KiB does not fit the 128 MiB pstore/blk uses of any device, so the kernel refuses to register; sizes are KiB from 0 to ${MAX_SIZE_KIB}, or negative for no zone`,
    );
  }
  return value;
}

/** nr_cpu_ids: 1..8192. */
export function checkCpus(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_CPUS) {
    throw new UsageError(`${what} must be a whole number of possible CPUs from 1 to ${MAX_CPUS} (the largest NR_CPUS of any architecture), got ${value}`);
  }
  return value;
}

/** An `int` kernel parameter (max_reason): kstrtoint() rejects anything outside 32 bits. */
export function checkKernelInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < INT_MIN || value > INT_MAX) {
    throw new UsageError(`${what}=${value}: out of range for an int parameter (${INT_MIN}..${INT_MAX})`);
  }
  return value;
}

/** mmcpstore.sector_offset (min 0) / sector_count (min 1): 512-byte sectors. */
export function checkSectors(value: number, what: string, min: 0 | 1): number {
  if (!Number.isInteger(value) || value < min || value > MAX_SECTORS) {
    throw new UsageError(`${what}=${value}: must be a whole number of 512-byte sectors from ${min} to ${MAX_SECTORS}`);
  }
  return value;
}

/**
 * `--kaslr-offset`: the KASLR slide as hex (`0x1e000000` or `1e000000`); an address-sized
 * value, 0 to 2^64 − 1.
 */
export function parseKaslrOffset(text: string): bigint {
  const m = /^\s*(?:0x)?([0-9a-f]+)\s*$/i.exec(text);
  if (!m) throw new UsageError(`--kaslr-offset must be a hex number like 0x1e000000, got "${text}"`);
  const v = BigInt('0x' + m[1]);
  if (v >= 1n << 64n) throw new UsageError(`--kaslr-offset ${text} is larger than a 64-bit address (at most 0xffffffffffffffff)`);
  return v;
}
