/**
 * Safety gates shared by the commands that write: the system-disk check for OS block devices
 * and the confirmation prompt (skipped with --yes; refused when nobody can answer).
 */
import { createInterface } from 'node:readline/promises';
import type { Argv } from 'yargs';
import type { BlockDevice } from '../blockdev/block-device.js';
import { systemDiskCheck } from '../blockdev/os-block-device.js';
import { CancelledError, UsageError } from '../errors.js';

/** Refuses to write to a mounted/system OS block device unless `force` says so. */
export async function refuseSystemDisk(dev: BlockDevice, path: string, force: boolean): Promise<void> {
  if (dev.info.kind !== 'os-block' || force) return;
  const report = await systemDiskCheck(path);
  if (report.inUse || report.holdsRoot) {
    throw new UsageError(`${path} looks like a disk in use by this system (${report.reasons.join('; ')}); refusing to write without --force-system-disk`);
  }
}

export async function confirm(question: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new UsageError(`${question}\nno terminal to confirm on: pass --yes to proceed`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new CancelledError('not confirmed; nothing was written');
  } finally {
    rl.close();
  }
}

export function describeDevice(dev: BlockDevice): string {
  const i = dev.info;
  const model = [i.vendor, i.model].filter(Boolean).join(' ');
  return `${i.name}${model ? ` (${model}${i.serial ? `, serial ${i.serial}` : ''})` : ''}, ${dev.size} bytes`;
}

/** The options every command that writes to a device takes. */
export function withWriteSafetyOptions<T>(y: Argv<T>) {
  return y
    .option('dry-run', { type: 'boolean', describe: 'print the plan and write nothing' })
    .option('yes', { alias: 'y', type: 'boolean', describe: 'do not ask for confirmation' })
    .option('force-system-disk', { type: 'boolean', describe: 'allow writing to a disk this system uses' })
    .option('json', { type: 'boolean', describe: 'print the plan and result as JSON' });
}
