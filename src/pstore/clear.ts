/**
 * Erasing records the way the kernel's unlink in /sys/fs/pstore does (pstore_unlink → psz_pstore_erase in fs/pstore/zone.c): a kmsg zone
 * gets datalen 0 in its 12-byte header while its kmsg header (magic, time, counter, reason)
 * stays, so the Oops/Panic counters survive; pmsg/console/ftrace zones get {sig, 0, 0}.
 * Unlike the kernel, which resets only ftrace zone 0 (the record id), every ftrace zone of the
 * merged record is reset — otherwise the record would come back from the other CPUs' zones.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { flushedEvenIfStopped, writeRange } from '../blockdev/io.js';
import { UsageError, WriteProtectedError } from '../errors.js';
import type { Endian } from './abi.js';
import { writeU32, zoneSignature } from './abi.js';
import type { DecodeResult } from './decode.js';
import type { HeaderWrite } from './format.js';

export interface ClearPlan {
  records: string[];
  writes: HeaderWrite[];
}

/** Plans erasing `names` (all records when omitted) of a decoded region. */
export function planClear(decoded: DecodeResult, names?: string[]): ClearPlan {
  const byName = new Map(decoded.records.map((r) => [r.file, r]));
  const wanted = names && names.length ? names : [...byName.keys()];
  const missing = wanted.filter((n) => !byName.has(n));
  if (missing.length) {
    throw new UsageError(`no record named ${missing.join(', ')} (records: ${[...byName.keys()].join(', ') || 'none'})`);
  }
  const endian: Endian = decoded.abi.endian;
  const writes: HeaderWrite[] = [];
  for (const name of wanted) {
    const r = byName.get(name)!;
    for (const z of r.zones) {
      const bytes = new Uint8Array(12);
      writeU32(bytes, 0, zoneSignature(r.type), endian);
      writes.push({ offset: z.offset, bytes });
    }
  }
  return { records: wanted, writes };
}

export async function applyClear(dev: BlockDevice, regionOffset: number, plan: ClearPlan, opts: IoOptions = {}): Promise<void> {
  if (dev.readOnly) throw new WriteProtectedError(`${dev.info.name} is read-only or write-protected`);
  await flushedEvenIfStopped(dev, async () => {
    for (const w of plan.writes) await writeRange(dev, regionOffset + w.offset, w.bytes, opts);
  });
}
