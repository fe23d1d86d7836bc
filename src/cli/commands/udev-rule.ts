import type { UdevRuleArgs } from '../args/udev-rule.js';
import { UsageError } from '../../errors.js';
import { diag } from '../diagnostics.js';
import { listReaders } from '../../reader/readers.js';
import { udevRules, type UdevRuleReader } from '../../reader/udev-rule.js';

export async function runUdevRule(a: UdevRuleArgs): Promise<void> {
  let readers: UdevRuleReader[] = [];
  if (!a.generic) {
    try {
      readers = (await listReaders()).map((r) => ({
        vendorId: r.device.vendorId,
        productId: r.device.productId,
        name: [r.device.manufacturer, r.device.product].filter(Boolean).join(' ') || undefined,
      }));
    } catch (e) {
      diag('warning', `cannot enumerate USB devices (${e instanceof Error ? e.message : String(e)}); printing the generic rule`);
    }
    if (readers.length === 0) diag('warning', 'no reader connected; printing the generic rule for every mass-storage device');
  }
  try {
    process.stdout.write(udevRules(readers, { group: a.group, mode: a.mode }));
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}
