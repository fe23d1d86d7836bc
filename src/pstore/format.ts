/**
 * Formatting a pstore/blk region so that every kernel version reads it as empty and clean
 * (psz_recover_zones in fs/pstore/zone.c reads zeroed and erased zones as empty): zeros over the part the kernel uses (at most 128 MiB), optionally followed by
 * valid erased zone headers for the geometry — the kernel then finds "erased" zones silently,
 * its counters start at 0, and crashcart can detect the geometry of a region that has never
 * held a crash.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { flushedEvenIfStopped, writeRange } from '../blockdev/io.js';
import { WriteProtectedError } from '../errors.js';
import type { Abi } from './abi.js';
import { KMSG_LAYOUTS, PSTORE_KMSG_HEADER_MAGIC, ZONE_HEADER_SIZE, writeU32, zoneSignature } from './abi.js';
import type { Layout } from './layout.js';

export interface HeaderWrite {
  /** Offset inside the region. */
  offset: number;
  bytes: Uint8Array;
}

export interface FormatPlan {
  layout: Layout;
  /** Bytes of zeros written from the region start. */
  zeroBytes: number;
  headers: HeaderWrite[];
}

/** Valid, erased headers for every zone: sig, datalen 0, start 0; kmsg zones also get a zeroed kmsg header with its magic. */
export function erasedZoneHeaders(layout: Layout, abi: Abi): HeaderWrite[] {
  return layout.zones.map((z) => {
    const isKmsg = z.type === 'dmesg';
    const bytes = new Uint8Array(isKmsg ? ZONE_HEADER_SIZE + KMSG_LAYOUTS[abi.layout].size : ZONE_HEADER_SIZE);
    writeU32(bytes, 0, zoneSignature(z.type), abi.endian);
    if (isKmsg) writeU32(bytes, KMSG_LAYOUTS[abi.layout].magic, PSTORE_KMSG_HEADER_MAGIC, abi.endian);
    return { offset: z.offset, bytes };
  });
}

export function planFormat(layout: Layout, opts: { headers?: boolean; abi?: Abi } = {}): FormatPlan {
  return {
    layout,
    zeroBytes: Math.min(layout.regionSize, layout.totalSize),
    headers: opts.headers ? erasedZoneHeaders(layout, opts.abi ?? { endian: 'le', layout: 'lp64' }) : [],
  };
}

export interface FormatProgress {
  written: number;
  total: number;
}

/** Carries out a plan on `dev` for a region starting at `regionOffset`. */
export async function applyFormat(
  dev: BlockDevice,
  regionOffset: number,
  plan: FormatPlan,
  opts: IoOptions & { onProgress?: (p: FormatProgress) => void; chunkSize?: number } = {},
): Promise<void> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected`);
  const chunk = opts.chunkSize ?? 1 << 20;
  const zeros = new Uint8Array(chunk);
  const total = plan.zeroBytes + plan.headers.reduce((a, h) => a + h.bytes.length, 0);
  let written = 0;
  await flushedEvenIfStopped(dev, async () => {
    for (let off = 0; off < plan.zeroBytes; off += chunk) {
      const n = Math.min(chunk, plan.zeroBytes - off);
      await writeRange(dev, regionOffset + off, n === chunk ? zeros : zeros.subarray(0, n), opts);
      written += n;
      opts.onProgress?.({ written, total });
    }
    for (const h of plan.headers) {
      await writeRange(dev, regionOffset + h.offset, h.bytes, opts);
      written += h.bytes.length;
    }
  });
  opts.onProgress?.({ written, total });
}
