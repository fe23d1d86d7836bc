/**
 * Before format or clear destroys records: extract what the region holds into a backup folder,
 * so nothing is lost silently.
 */
import { join } from 'node:path';
import type { BlockDevice } from '../blockdev/block-device.js';
import { NoPstoreError } from '../errors.js';
import type { Extraction } from '../pstore/extract.js';
import { extractPstore } from '../pstore/extract.js';
import { writeExtraction } from '../pstore/extract-writer.js';
import { createRunDir, runStamp } from '../gate/outputs.js';
import type { LocatedRegion } from '../pstore/locate-region.js';
import type { ResolvedInputs } from './geometry-options.js';

/**
 * Reads the region's records; null when it holds no pstore data. `detect` ignores the sizes the
 * user gave (a format is usually given the *new* geometry) and takes the old one from the disk.
 */
export async function readExisting(region: LocatedRegion, inputs: ResolvedInputs, opts: { detect?: boolean } = {}): Promise<Extraction | null> {
  const params = opts.detect ? { blkdev: inputs.params.blkdev, compress: inputs.params.compress } : inputs.params;
  try {
    return await extractPstore(region.source, { params, abi: inputs.abi });
  } catch (e) {
    if (e instanceof NoPstoreError) return null;
    throw e;
  }
}

export function defaultBackupDir(dev: BlockDevice): string {
  return join(process.cwd(), `crashcart-backup-${deviceTag(dev)}-${runStamp()}`);
}

function deviceTag(dev: BlockDevice): string {
  return dev.info.name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+/, '');
}

/**
 * Saves the records in a folder of this run's own: `dir` when it is new or empty, else a new
 * folder inside it (earlier backups are never merged into or overwritten). Returns the folder.
 */
export async function backupRecords(x: Extraction, dir: string, region: LocatedRegion, dev: BlockDevice): Promise<string> {
  const used = await createRunDir(dir, `crashcart-backup-${deviceTag(dev)}-${runStamp()}`);
  await writeExtraction(x, used, { device: dev.info.name, offset: region.offset, size: region.size, description: region.description }, { durable: true });
  return used;
}
