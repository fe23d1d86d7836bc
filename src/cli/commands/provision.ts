import type { ProvisionArgs } from '../args/provision.js';
import { formatBytes } from '../../util/format-bytes.js';
import { UsageError } from '../../errors.js';
import { runStoppable } from '../cancellation.js';
import { loadProfile } from '../../profile/board-profile.js';
import { applyProvision, planProvision, releaseProvision, type PlannedImage, type ProvisionPlan, type ProvisionResult } from '../../provision/provision.js';
import { confirm, describeDevice } from '../confirm.js';
import { WriteGate } from '../../gate/write-gate.js';
import { defaultBackupDir } from '../pstore-backup.js';
import { zoneTable } from './pstore-layout.js';

function pairs(list: string[] | undefined, flag: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new UsageError(`--${flag} ${item}: expected NAME=${flag === 'fs' ? 'DIR' : 'FILE'}`);
    const name = item.slice(0, eq);
    if (m.has(name)) throw new UsageError(`--${flag} ${name}=… given twice`);
    m.set(name, item.slice(eq + 1));
  }
  return m;
}

/** A file system row of the plan: what is built from which folder into which partition. */
function describeFilesystem(i: PlannedImage): string {
  const f = i.filesystem!;
  const kind = f.type === 'vfat' ? `FAT${f.fat}` : 'ext4';
  const id = f.type === 'vfat' ? `volume ID ${f.uuid}` : `UUID ${f.uuid}`;
  const content = `${f.files} file(s), ${f.dirs} folder(s)${f.symlinks ? `, ${f.symlinks} symlink(s)` : ''}, ${formatBytes(f.bytes)}`;
  return `fs         ${i.action === 'write' ? 'write' : 'skip '} ${kind} from ${f.dir} → partition ${i.partition} "${i.name}": ${f.label !== undefined ? `label "${f.label}", ` : ''}${id}, ${content} — ${i.reason}`;
}

/** The plan as `provision` prints it. */
export function describePlan(plan: ProvisionPlan): string[] {
  const out: string[] = [];
  const t = plan.table;
  const what: Record<typeof t.action, string> = {
    keep: 'keep: the card already has this layout',
    repair: "repair: same partitions, the table is rewritten with the card's GUIDs",
    write: `write a new ${t.kind === 'mbr' ? 'MBR' : 'GPT'}`,
    replace: `REPLACE the partition table with ${t.kind === 'mbr' ? 'an MBR' : 'a GPT'}`,
  };
  const id = t.kind === 'mbr' ? `disk signature 0x${t.diskSignature}` : `disk GUID ${t.diskGuid}`;
  out.push(`table      ${what[t.action]} (${plan.sectorSize}-byte sectors, ${id})`);
  for (const r of t.reasons) out.push(`           - ${r}`);
  const nameW = Math.max(t.extended ? 10 : 4, ...t.partitions.map((p) => p.name.length));
  out.push(`  #  ${'name'.padEnd(nameW)}  ${'type'.padEnd(18)}  ${'start'.padStart(10)}  ${'size'.padStart(10)}  PARTUUID`);
  const row = (n: number, name: string, type: string, start: number, size: number, uuid: string) =>
    `  ${String(n).padStart(1)}  ${name.padEnd(nameW)}  ${type.padEnd(18)}  ${formatBytes(start).padStart(10)}  ${formatBytes(size).padStart(10)}  ${uuid}`;
  for (const p of t.partitions) {
    if (t.extended && p.number === 5) out.push(row(t.extended.number, '(extended)', '0x05', t.extended.start, t.extended.size, '-'));
    const type = `${p.typeAlias ?? p.type}${p.bootable ? ', boot' : ''}`;
    out.push(row(p.number, p.name, type, p.start, p.size, p.uuid.toLowerCase()));
  }
  if (t.hybridMbr) {
    out.push(`hybrid MBR in sector 0 (the GPT stays authoritative):`);
    for (const e of t.hybridMbr) {
      const what =
        e.partition === undefined
          ? '0xEE protective (GPT header up to the first mirrored partition)'
          : `partition ${e.partition} "${t.partitions.find((p) => p.number === e.partition)?.name}"`;
      out.push(`  slot ${e.slot}  ${e.type}${e.bootable ? ' boot' : '     '}  ${formatBytes(e.start).padStart(10)}  ${formatBytes(e.size).padStart(10)}  ${what}`);
    }
  }
  for (const i of plan.images) {
    if (i.filesystem) {
      out.push(describeFilesystem(i));
      continue;
    }
    out.push(
      `image      ${i.action === 'write' ? 'write' : 'skip '} ${i.path}${i.bmap ? ` (bmap ${i.bmap})` : ''} → ${i.partition !== undefined ? `partition ${i.partition}` : `raw region at ${formatBytes(i.offset)}`} "${i.name}": ${i.format}, ${formatBytes(i.size)}${i.bmap ? `, ${formatBytes(i.dataBytes)} mapped` : ''} — ${i.reason}`,
    );
  }
  if (plan.pstore) {
    const ps = plan.pstore;
    const verb = { format: 'format', keep: 'keep  ', none: 'skip  ' }[ps.action];
    out.push(`pstore     ${verb} partition ${ps.partition} "${ps.name}" (${formatBytes(ps.size)}) — ${ps.reason}`);
    if (ps.action === 'format') out.push(`           ${ps.zeroBytes} zero bytes${ps.headers ? ` and ${ps.headers} erased zone headers` : ''}`);
    out.push(...zoneTable(ps.layout).map((r) => `         ${r}`));
  }
  for (const r of plan.recordsAtRisk)
    out.push(`records    ${r.records.length} record(s) in ${r.description} will be backed up before they are overwritten: ${r.records.join(', ')}`);
  for (const n of plan.notes) out.push(`note: ${n}`);
  if (plan.cmdline) out.push(`cmdline    ${plan.cmdline}`);
  out.push(plan.changes ? `plan       write ${plan.bytesToWrite} bytes (${formatBytes(plan.bytesToWrite)})` : 'plan       nothing to write');
  return out;
}

export async function runProvision(a: ProvisionArgs): Promise<void> {
  const out = (s = '') => (a.json ? undefined : process.stdout.write(s + '\n'));
  if (a['discard-records'] && a.backup) throw new UsageError('--backup and --discard-records exclude each other');
  const profile = loadProfile(a.profile);
  const imgs = pairs(a.image, 'image');
  const dirs = pairs(a.fs, 'fs');
  for (const name of dirs.keys()) if (imgs.has(name)) throw new UsageError(`--fs ${name}=… and --image ${name}=… both fill partition "${name}"; give one of them`);
  const bmaps = pairs(a.bmap, 'bmap');
  /** Partitions and raw regions: what --image and --bmap name. */
  const targets = [...(profile.partitions ?? []), ...(profile.raw ?? [])];
  for (const name of bmaps.keys()) {
    if (!imgs.has(name) && !targets.some((p) => p.name === name && p.image)) throw new UsageError(`--bmap ${name}=…: partition "${name}" gets no image`);
  }
  const images: Record<string, { image: string; bmap?: string }> = {};
  for (const [name, image] of imgs) images[name] = { image, ...(bmaps.has(name) ? { bmap: bmaps.get(name) } : {}) };
  for (const [name, bmap] of bmaps) {
    if (!imgs.has(name)) images[name] = { image: targets.find((p) => p.name === name)!.image!, bmap };
  }

  const gate = new WriteGate({ allowSystemDisk: a['force-system-disk'] });
  await gate.addInput(profile.path, 'the board profile');
  for (const { image, bmap } of [...Object.values(images), ...targets]) {
    await gate.addInput(image, 'a partition image');
    await gate.addInput(bmap, 'a bmap');
  }
  // The folders file systems are built from: the card must not be (or hold) one of them.
  const filesystems: Record<string, { dir: string }> = {};
  for (const [name, dir] of dirs) filesystems[name] = { dir };
  for (const dir of [...dirs.values(), ...(profile.partitions ?? []).map((p) => p.fs?.dir)]) await gate.addInput(dir, 'a folder a file system is built from');
  const dev = await gate.openDevice(a.device, { dryRun: a['dry-run'] });
  let plan: ProvisionPlan | undefined;
  let result: ProvisionResult | null = null;
  const emit = () => {
    if (a.json && plan) process.stdout.write(JSON.stringify({ dryRun: !!a['dry-run'], plan, result }, null, 2) + '\n');
  };
  try {
    plan = await planProvision(dev, profile, {
      images,
      replaceTable: !!a['replace-table'],
      guidSeed: a['guid-seed'],
      reformatPstore: !!a['reformat-pstore'],
      filesystems,
      checkInput: (path, role) => gate.checkPath(path, role),
    });
    out(`device     ${describeDevice(dev)}${dev.readOnly && !a['dry-run'] ? ' [write-protected]' : ''}`);
    out(`profile    ${profile.name} (${profile.path})`);
    for (const line of describePlan(plan)) out(line);
    if (a['dry-run']) {
      out('dry run: nothing written');
      emit();
      return;
    }
    if (!plan.changes) {
      out(`the card already matches profile ${profile.name}; nothing written`);
      result = await applyProvision(dev, plan);
      if (plan.cmdline) out(`boot the board with:\n  ${plan.cmdline}`);
      emit();
      return;
    }
    if (dev.readOnly) {
      // applyProvision refuses too; say it before asking
      await applyProvision(dev, plan);
    }
    const backupDir = plan.recordsAtRisk.length && !a['discard-records'] ? (a.backup ?? defaultBackupDir(dev)) : undefined;
    const risk = plan.recordsAtRisk.reduce((n, r) => n + r.records.length, 0);
    await confirm(
      `Provision ${describeDevice(dev)} as ${profile.name} (write ${formatBytes(plan.bytesToWrite)})?` +
        (risk ? ` ${risk} pstore record(s) will be ${backupDir ? `backed up to ${backupDir}` : 'DISCARDED'}.` : ''),
      !!a.yes,
    );
    // A signal stops between transfers (see ../cancellation.ts); running the same command again
    // finishes the card (provisioning compares before it writes). Nothing to save: a second signal quits.
    result = await runStoppable((signal) => applyProvision(dev, plan!, { backupDir, discardRecords: !!a['discard-records'], onStep: (s) => out(`done       ${s}`), signal }), {
      json: a.json,
      message: (stop) => `provision ${stop}: stopped between writes; run the same command again to finish the card`,
    });
    out(`provisioned: ${result.bytesWritten} bytes written`);
    if (plan.cmdline) out(`boot the board with:\n  ${plan.cmdline}`);
    emit();
  } finally {
    if (plan) await releaseProvision(plan);
    await dev.close();
  }
}
