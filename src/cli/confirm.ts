/**
 * The one confirmation prompt of the commands that write (skipped with --yes; refused when
 * nobody can answer; ./args/write-safety.ts has their options). What may be written at all is
 * the write gate's decision (src/gate/write-gate.ts), not this file's.
 */
import { createInterface } from 'node:readline/promises';
import type { BlockDevice } from '../blockdev/block-device.js';
import { formatBytes } from '../util/format-bytes.js';
import { CancelledError, UsageError } from '../errors.js';

/**
 * Asks `question` (after `details`, one per line) on the terminal; anything but "y"/"yes"
 * cancels. Without a terminal (or under CI) it refuses unless `yes`.
 */
export async function confirm(question: string, yes: boolean, details: string[] = []): Promise<void> {
  if (yes) return;
  const text = [...details, question].join('\n');
  if (!process.stdin.isTTY || process.env.CI === 'true') throw new UsageError(`${text}\nno terminal to confirm on: pass --yes to proceed`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${text} [y/N] `)).trim().toLowerCase();
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

/** One line describing a flash destination: name, vendor/model, size, serial. */
export function describeDestination(dev: BlockDevice): string {
  const i = dev.info;
  const what = [i.vendor, i.model].filter((s) => s && s.trim()).join(' ');
  const parts = [`${i.name}`, what ? `${what}` : undefined, `${formatBytes(dev.size)} (${dev.size} bytes)`, i.serial ? `serial ${i.serial}` : 'no serial number'];
  return parts.filter(Boolean).join(', ');
}
