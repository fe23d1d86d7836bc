/**
 * Reads whatever partition table a device carries: GPT (including backup-header fallback
 * and 4Kn layouts) or MBR with logical partitions. Returns null when there is none.
 */
import type { BlockDevice, IoOptions } from '../blockdev/block-device.js';
import { readRange } from '../blockdev/io.js';
import { parseGpt } from './gpt.js';
import { parseMbr } from './mbr.js';
import type { PartitionTable } from './types.js';

export type { Partition, PartitionTable } from './types.js';

/**
 * @returns the table, or null when the device has no recognisable partition table.
 * @throws BadInputError when a GPT is announced (protective MBR) but both copies are corrupt.
 */
export async function readPartitionTable(dev: BlockDevice, opts?: IoOptions): Promise<PartitionTable | null> {
  const gpt = await parseGpt(dev, opts);
  if (gpt) return gpt;
  const mbr = await parseMbr(dev, opts);
  if (mbr && dev.size >= 1024) {
    // Linux ignores a GPT behind a non-protective MBR; say so, since tools like sgdisk would not.
    const lba1 = await readRange(dev, 512, 8, opts);
    if (new TextDecoder('latin1').decode(lba1) === 'EFI PART') {
      mbr.warnings.push('a GPT header is present but the MBR is not protective; using the MBR as Linux does');
    }
  }
  return mbr;
}
