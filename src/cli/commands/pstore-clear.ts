import type { ClearArgs } from '../args/pstore-clear.js';
import { NoPstoreError } from '../../errors.js';
import { applyClear, planClear } from '../../pstore/clear.js';
import { openPstoreTarget } from '../pstore-target.js';
import { confirm, describeDevice } from '../confirm.js';
import { runStoppable } from '../cancellation.js';
import { resolveGeometryInputs } from '../geometry-options.js';
import { backupRecords, defaultBackupDir, readExisting } from '../pstore-backup.js';

export async function runClear(a: ClearArgs): Promise<void> {
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
