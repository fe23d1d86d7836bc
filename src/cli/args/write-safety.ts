import type { Argv } from 'yargs';

/** The options every command that writes to a device takes (what they allow is ../confirm.ts's and the write gate's business). */
export function withWriteSafetyOptions<T>(y: Argv<T>) {
  return y
    .option('dry-run', { type: 'boolean', describe: 'print the plan and write nothing' })
    .option('yes', { alias: 'y', type: 'boolean', describe: 'do not ask for confirmation' })
    .option('force-system-disk', { alias: 'allow-system-disk', type: 'boolean', describe: 'allow writing to a disk this system uses (mounted, swap, root); inputs stay protected' })
    .option('json', { type: 'boolean', describe: 'print the plan and result as JSON' });
}
