import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { diag } from '../diagnostics.js';
import { listReaders } from '../../reader/readers.js';
import { udevRules, type UdevRuleReader } from '../../reader/udev-rule.js';

export const udevRuleCommand: CommandModule<object, { group: string; mode: string; generic?: boolean }> = {
  command: 'udev-rule',
  describe: 'print a udev rule giving your user access to the connected readers (generic for class 08h without any)',
  builder: (c) =>
    c
      .option('group', { type: 'string', default: 'plugdev', describe: 'group that gets read/write access' })
      .option('mode', { type: 'string', default: '0660', describe: 'file mode of the /dev/bus/usb node' })
      .option('generic', { type: 'boolean', describe: 'one rule for every mass-storage reader instead of the connected ones' }),
  handler: async (argv) => {
    let readers: UdevRuleReader[] = [];
    if (!argv.generic) {
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
      process.stdout.write(udevRules(readers, { group: argv.group, mode: argv.mode }));
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
  },
};
