import type { FormatArgs } from '../args/pstore-format.js';
import { UsageError } from '../../errors.js';
import { blkdevFor, boardCmdline } from '../../pstore/board-cmdline.js';
import { applyFormat, planFormat } from '../../pstore/format.js';
import { openPstoreTarget } from '../pstore-target.js';
import { planGeometry } from '../../pstore/plan-geometry.js';
import { confirm, describeDevice } from '../confirm.js';
import { runStoppable } from '../cancellation.js';
import { resolveGeometryInputs } from '../geometry-options.js';
import { backupRecords, defaultBackupDir, readExisting } from '../pstore-backup.js';
import { byteProgress } from '../progress.js';
import { zoneTable } from './pstore-layout.js';

export async function runFormat(a: FormatArgs): Promise<void> {
  const inputs = resolveGeometryInputs(a);
  const out = (s = '') => (a.json ? undefined : process.stdout.write(s + '\n'));
  const { dev, region } = await openPstoreTarget(a, inputs);
  try {
    const g = planGeometry(region.size, inputs.params);
    if (g.layout.errors.length) throw new UsageError(`the kernel would refuse this region: ${g.layout.errors.join('; ')}`);
    const abi = { endian: inputs.abi.endian ?? 'le', layout: inputs.abi.layout ?? 'lp64' } as const;
    if (a.headers && (!inputs.abi.endian || !inputs.abi.layout)) {
      g.assumptions.push(`--headers without --endian/--abi (or a profile): writing ${abi.endian === 'le' ? 'little' : 'big'}-endian ${abi.layout} headers`);
    }
    const plan = planFormat(g.layout, { headers: a.headers, abi });
    const existing = await readExisting(region, inputs, { detect: true });
    const records = existing?.records ?? [];
    const cmdline = boardCmdline(g.layout, inputs.params.blkdev?.value ?? blkdevFor(region.partition), inputs.params);
    out(`device   ${describeDevice(dev)}`);
    out(`region   ${region.description}`);
    out(`plan     write ${plan.zeroBytes} zero bytes${plan.headers.length ? ` and ${plan.headers.length} erased zone headers` : ''}`);
    if (a.headers) for (const row of zoneTable(g.layout)) out(row);
    out(`records  ${records.length ? records.map((r) => r.file).join(', ') : 'none'}`);
    for (const w of [...region.warnings, ...g.assumptions]) out(`note: ${w}`);
    let backup: string | undefined;
    if (records.length && !a['discard-records']) backup = a.backup ?? defaultBackupDir(dev);
    out(`board    ${cmdline}`);
    if (backup) out(`backup   the records go to ${backup} before anything is written`);
    else if (records.length) out('backup   none: --discard-records');
    const summary = {
      device: a.device,
      region: { offset: region.offset, size: region.size, description: region.description },
      zeroBytes: plan.zeroBytes,
      headers: plan.headers.length,
      records: records.map((r) => r.file),
      backup: backup ?? null,
      cmdline,
      dryRun: !!a['dry-run'],
    };
    if (a['dry-run']) {
      out('dry run: nothing written');
      if (a.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      return;
    }
    await confirm(
      `Format ${region.description} of ${describeDevice(dev)}?${records.length ? ` ${records.length} record(s) will be ${backup ? `backed up to ${backup}` : 'DISCARDED'}.` : ''}`,
      !!a.yes,
    );
    if (backup && existing) {
      const saved = await backupRecords(existing, backup, region, dev);
      summary.backup = saved;
      out(`backup   ${records.length} record(s) saved in ${saved}`);
    }
    const bar = await byteProgress('formatting', plan.zeroBytes, !!a.json);
    try {
      await runStoppable((signal) => applyFormat(dev, region.offset, plan, { signal, onProgress: (p) => bar.update(Math.min(p.written, plan.zeroBytes)) }), {
        json: a.json,
        message: (stop) => `format ${stop}: stopped between writes (the records were backed up first); run the same command again to finish`,
      });
    } finally {
      bar.stop();
    }
    out('formatted; boot the board with the command line above');
    if (a.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  } finally {
    await dev.close();
  }
}
