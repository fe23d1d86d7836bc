import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface UdevRuleArgs {
  group: string;
  mode: string;
  generic?: boolean;
}

export const udevRuleCommand: CommandModule<object, UdevRuleArgs> = {
  command: 'udev-rule',
  describe: 'print a udev rule giving your user access to the connected readers (generic for class 08h without any)',
  builder: (c) =>
    c
      .option('group', { type: 'string', default: 'plugdev', describe: 'group that gets read/write access' })
      .option('mode', { type: 'string', default: '0660', describe: 'file mode of the /dev/bus/usb node' })
      .option('generic', { type: 'boolean', describe: 'one rule for every mass-storage reader instead of the connected ones' }),
  handler: async (argv) => (await loadCommand(() => import('../commands/udev-rule.js'))).runUdevRule(argv),
};
