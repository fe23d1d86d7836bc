import { BadInputError } from '../errors.js';
import { formatLimit, gunzipBounded, InputLimitError, isGzip, KCONFIG_MAX_BYTES } from '../input-limits.js';
import { checkKernelInt, checkKernelSizeKiB } from './param-limits.js';
import type { AbiHint } from './abi.js';
import type { PstoreParams, Sourced } from './params.js';

export interface KconfigInfo {
  params: PstoreParams;
  abi: AbiHint;
  /** The raw CONFIG_* map, for reports. */
  options: Map<string, string>;
}

/** Parses a kernel `.config` (or the contents of /proc/config.gz, gzipped or not). */
export function parseKconfig(data: Uint8Array): KconfigInfo {
  // Bounded: a config.gz that inflates past KCONFIG_MAX_BYTES is an InputLimitError (exit 6).
  if (!isGzip(data) && data.length > KCONFIG_MAX_BYTES) {
    throw new InputLimitError(`kernel config: ${data.length} bytes is larger than the ${formatLimit(KCONFIG_MAX_BYTES)} limit for this input`);
  }
  const text = (isGzip(data) ? gunzipBounded(data, KCONFIG_MAX_BYTES, 'kernel config') : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('utf8');
  const options = new Map<string, string>();
  for (const line of text.split('\n')) {
    let m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) {
      options.set(m[1], m[2].replace(/^"(.*)"$/, '$1'));
      continue;
    }
    m = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line.trim());
    if (m) options.set(m[1], 'n');
  }
  if (options.size === 0) throw new BadInputError('kernel config: no CONFIG_ lines found');
  const on = (k: string) => options.get(k) === 'y' || options.get(k) === 'm';
  const int = (k: string): number | undefined => {
    const v = options.get(k);
    if (v === undefined || v === 'n') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const src = <T>(value: T): Sourced<T> => ({ value, source: 'kconfig' });
  const params: PstoreParams = {};
  const kmsg = int('CONFIG_PSTORE_BLK_KMSG_SIZE');
  if (kmsg !== undefined) params.kmsg_size = src(checkKernelSizeKiB(kmsg, 'CONFIG_PSTORE_BLK_KMSG_SIZE'));
  // CONFIG_PSTORE_BLK_{PMSG,CONSOLE,FTRACE}_SIZE exist only when the front end is built;
  // otherwise blk.c uses -1 (no zone).
  const frontends: [keyof PstoreParams, string, string][] = [
    ['pmsg_size', 'CONFIG_PSTORE_PMSG', 'CONFIG_PSTORE_BLK_PMSG_SIZE'],
    ['console_size', 'CONFIG_PSTORE_CONSOLE', 'CONFIG_PSTORE_BLK_CONSOLE_SIZE'],
    ['ftrace_size', 'CONFIG_PSTORE_FTRACE', 'CONFIG_PSTORE_BLK_FTRACE_SIZE'],
  ];
  const knowsPstore = options.has('CONFIG_PSTORE') || options.has('CONFIG_PSTORE_BLK');
  for (const [key, feature, sizeOpt] of frontends) {
    const v = int(sizeOpt);
    if (v !== undefined) (params as Record<string, Sourced<number>>)[key] = src(checkKernelSizeKiB(v, sizeOpt));
    else if (options.has(feature) || knowsPstore) (params as Record<string, Sourced<number>>)[key] = src(on(feature) ? 64 : -1);
  }
  const maxReason = int('CONFIG_PSTORE_BLK_MAX_REASON');
  if (maxReason !== undefined) params.max_reason = src(checkKernelInt(maxReason, 'CONFIG_PSTORE_BLK_MAX_REASON'));
  const blkdev = options.get('CONFIG_PSTORE_BLK_BLKDEV');
  if (blkdev) params.blkdev = src(blkdev);
  // ≤ 6.5: the one crypto algorithm the kernel (de)compresses with; 6.6+ has no such option (deflate).
  // "# CONFIG_PSTORE_COMPRESS is not set": no compression and no decompressor (records stay .enc.z).
  const compress = options.get('CONFIG_PSTORE_COMPRESS') === 'n' ? 'none' : options.get('CONFIG_PSTORE_COMPRESS_DEFAULT');
  if (compress) params.compress = src(compress);
  const nrCpus = int('CONFIG_NR_CPUS');
  if (on('CONFIG_ARM') && !on('CONFIG_ARM64') && nrCpus !== undefined) {
    // include/linux/pstore.h: NR_CPUS <= 2 && CONFIG_ARM_THUMB -> 0x1, NR_CPUS <= 4 && CONFIG_ARM -> 0x3
    const mask = nrCpus <= 2 && on('CONFIG_ARM_THUMB') ? 1 : nrCpus <= 4 ? 3 : 0;
    params.ftrace_cpu_in_ip = src(mask);
  } else if (nrCpus !== undefined) {
    params.ftrace_cpu_in_ip = src(0);
  }
  const abi: AbiHint = {};
  if (on('CONFIG_64BIT') || on('CONFIG_X86_64') || on('CONFIG_ARM64')) abi.layout = 'lp64';
  else if (on('CONFIG_X86_32') || (on('CONFIG_ARM') && options.get('CONFIG_AEABI') === 'n')) abi.layout = 'i386';
  else if (on('CONFIG_ARM') || on('CONFIG_MIPS') || on('CONFIG_PPC32') || on('CONFIG_RISCV')) abi.layout = 'ilp32';
  if (on('CONFIG_CPU_BIG_ENDIAN') || on('CONFIG_S390')) abi.endian = 'be';
  else if (on('CONFIG_CPU_LITTLE_ENDIAN') || on('CONFIG_X86') || on('CONFIG_X86_64') || on('CONFIG_ARM64') || on('CONFIG_ARM')) abi.endian = 'le';
  return { params, abi, options };
}
