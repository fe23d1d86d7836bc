/**
 * Regions larger than 128 MiB: Linux 5.11+ uses their first 128 MiB only (register_pstore_zone()
 * caps total_size), 5.8–5.10 lay kmsg zones over the whole partition. The zones below the cap are
 * the same either way; 5.8–5.10 only add kmsg zones after them. Which applies is taken from
 * `--kernel-version`, or read from the card: a kmsg signature in the first zone past the capped
 * layout was written by a 5.8–5.10 kernel (5.11+ never writes there, and pstore/zone fills kmsg
 * zones in order, so the first extra zone is written before any later one).
 */
import { signatureEndian } from './abi.js';
import type { KernelVersion, WriterEvidence } from './kernel-version.js';
import { capsRegionAt128MiB } from './kernel-version.js';
import type { Layout } from './layout.js';
import { MAX_REGION } from './layout.js';
import { fitLayout } from './geometry.js';
import type { RegionSource } from './region-source.js';

/** Extra kmsg zones probed for a signature (the first one decides; a few more tolerate a bad sector). */
const PROBED_ZONES = 4;

export interface RegionExtent {
  /** The layout to decode with. */
  layout: Layout;
  /** kmsg zones of the 128 MiB layout; records of zones at or past this index only 5.8–5.10 show. */
  cappedKmsgCount: number;
  /** Set when the card shows a 5.8–5.10 writer (kmsg zones past 128 MiB). */
  evidence: WriterEvidence | null;
  warnings: string[];
}

/**
 * The layout to decode a region with: the capped one, or — for a 5.8–5.10 kernel (given, or
 * seen on the card) — the one over the whole region.
 */
export async function regionExtent(src: RegionSource, capped: Layout, kernel?: KernelVersion): Promise<RegionExtent> {
  const same: RegionExtent = { layout: capped, cappedKmsgCount: capped.kmsgCount, evidence: null, warnings: [] };
  if (src.size <= MAX_REGION || !capped.sizes.kmsg) return same;
  const warnings: string[] = [];
  const whole = fitLayout(src, capped.sizes, capped.cpus, warnings, { capAt128MiB: false });
  const extra = whole.zones.filter((z) => z.type === 'dmesg' && z.index >= capped.kmsgCount);
  if (extra.length === 0) return same;
  const past = `${extra.length} more kmsg zone(s) (dmesg-pstore_blk-${capped.kmsgCount}…${whole.kmsgCount - 1}) in the ${src.size - MAX_REGION} bytes past 128 MiB`;
  if (kernel && !capsRegionAt128MiB(kernel)) {
    warnings.push(
      `Linux ${kernel.text} does not cap the region at 128 MiB (5.11 does): it uses the whole ${src.size}-byte region, ${past}; ` +
        'it allocates every zone in memory at registration, so a region larger than the board can allocate fails to register',
    );
    return { layout: whole, cappedKmsgCount: capped.kmsgCount, evidence: null, warnings };
  }
  for (const z of extra.slice(0, PROBED_ZONES)) {
    const head = await src.read(z.offset, 4);
    if (head.length < 4 || !signatureEndian(head, 0, 'dmesg')) continue;
    const evidence: WriterEvidence = {
      era: '5.8-5.10',
      because: `kmsg zone ${z.index} at 0x${z.offset.toString(16)}, past the 128 MiB that Linux 5.11+ uses, carries a pstore signature`,
    };
    warnings.push(
      `${evidence.because}: written by Linux 5.8–5.10, which uses the whole region; decoding ${past}` +
        (kernel ? ` (Linux ${kernel.text} reads the first 128 MiB only and does not show them)` : ''),
    );
    return { layout: whole, cappedKmsgCount: capped.kmsgCount, evidence, warnings };
  }
  return same;
}
