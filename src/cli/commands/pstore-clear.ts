import type { Argv } from 'yargs';
import { NoPstoreError } from '../../errors.js';
import { applyClear, planClear } from '../../pstore/clear.js';
import { openPstoreTarget } from '../pstore-target.js';
import { confirm, describeDevice, withWriteSafetyOptions } from '../confirm.js';
import { runStoppable } from '../cancellation.js';
import type { GeometryArgs } from '../geometry-options.js';
import { resolveGeometryInputs, withGeometryOptions } from '../geometry-options.js';
import { backupRecords, defaultBackupDir, readExisting } from '../pstore-backup.js';

interface ClearArgs extends GeometryArgs {
  device: string;
  record?: string[];
  yes?: boolean;
  backup?: string;
  'no-backup'?: boolean;
  backupOff?: boolean;
  'dry-run'?: boolean;
  'force-system-disk'?: boolean;
  json?: boolean;
}

export function pstoreClearCommand(y: Argv) {
  return y.command(
    'clear <device>',
    "erase pstore records the way the kernel's unlink does (oops/panic counters survive); backs them up first",
    (c) =>
      withWriteSafetyOptions(withGeometryOptions(c))
        .positional('device', { type: 'string', demandOption: true, describe: 'image, /dev/sdX or usb:…' })
        .option('record', { type: 'string', array: true, describe: 'only these records (e.g. dmesg-pstore_blk-1 console-pstore_blk-0)' })
        .option('backup', { type: 'string', describe: 'folder for the backup (default: ./crashcart-backup-…)' })
        .option('no-backup', { type: 'boolean', describe: 'do not back up the records first' }),
    async (argv) => runClear(argv),
  );
}

async function runClear(a: ClearArgs): Promise<void> {
  const inputs = resolveGeometryInputs(a);
  const out = (s = '') => (a.json ? undefined : process.stdout.write(s + '\n'));
  const { dev, region } = await openPstoreTarget(a, inputs);
  try {
    const existing = await readExisting(region, inputs);
    if (!existing) throw new NoPstoreError(`no pstore/blk zones in ${region.description} of ${a.device}`);
    const plan = planClear(existing.decoded, a.record);
    // yargs turns --no-backup into backup: false.
    const noBackup = a['no-backup'] === true || (a as { backup?: unknown }).backup === false;
    const backup = plan.records.length && !noBackup ? (typeof a.backup === 'string' ? a.backup : defaultBackupDir(dev)) : undefined;
    out(`region   ${region.description}`);
    out(`erase    ${plan.records.length ? plan.records.join(', ') : 'nothing: the region holds no records'}`);
    const summary = {
      device: a.device,
      region: { offset: region.offset, size: region.size },
      records: plan.records,
      zonesWritten: plan.writes.length,
      backup: backup ?? null,
      dryRun: !!a['dry-run'],
    };
    if (a['dry-run'] || plan.records.length === 0) {
      if (a['dry-run']) out('dry run: nothing written');
      if (a.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      return;
    }
    await confirm(`Erase ${plan.records.length} record(s) on ${describeDevice(dev)}?${backup ? ` Backup: ${backup}.` : ' No backup will be kept.'}`, !!a.yes);
    if (backup) {
      const saved = await backupRecords(existing, backup, region, dev);
      summary.backup = saved;
      out(`backup   saved in ${saved}`);
    }
    await runStoppable((signal) => applyClear(dev, region.offset, plan, { signal }), {
      json: a.json,
      message: (stop) => `clear ${stop}: stopped between writes; run the same command again to erase the rest`,
    });
    out(`erased ${plan.records.length} record(s)`);
    if (a.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  } finally {
    await dev.close();
  }
}
