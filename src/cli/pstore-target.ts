/**
 * The device and region a destructive pstore command (format, clear) writes: opened through the
 * write gate (the board's kconfig and profile are inputs), the region located with `purpose:
 * 'write'` so that only a certain region is ever written.
 */
import type { BlockDevice } from '../blockdev/block-device.js';
import { WriteGate } from '../gate/write-gate.js';
import { locatePstoreRegion, type LocatedRegion } from '../pstore/locate-region.js';
import type { GeometryArgs } from './args/geometry.js';
import type { ResolvedInputs } from './geometry-options.js';

export interface PstoreTargetArgs extends GeometryArgs {
  device: string;
  'dry-run'?: boolean;
  'force-system-disk'?: boolean;
}

/** Opens the device (read-only for a dry run) and locates the region; the caller closes `dev`. */
export async function openPstoreTarget(a: PstoreTargetArgs, inputs: ResolvedInputs): Promise<{ dev: BlockDevice; region: LocatedRegion }> {
  const gate = new WriteGate({ allowSystemDisk: a['force-system-disk'] });
  for (const input of [a.kconfig, a.profile]) await gate.addInput(input, 'a file describing the board');
  const dev = await gate.openDevice(a.device, { dryRun: a['dry-run'] });
  try {
    const region = await locatePstoreRegion(dev, { selector: inputs.selector, blkdev: inputs.params.blkdev?.value, purpose: 'write' });
    return { dev, region };
  } catch (e) {
    await dev.close().catch(() => undefined);
    throw e;
  }
}
