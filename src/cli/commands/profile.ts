import type { ProfileArgs } from '../args/profile.js';
import { formatBytes } from '../../util/format-bytes.js';
import { BadInputError, CrashcartError } from '../../errors.js';
import type { BoardProfile } from '../../profile/board-profile.js';
import {
  allProfileParams,
  checkProfile,
  layoutMinimumSize,
  listProfiles,
  loadProfile,
  mbrPartuuid,
  partitionNumbers,
  readProfileJson,
  resolveProfilePath,
} from '../../profile/board-profile.js';
import { buildCmdline } from '../../provision/cmdline.js';
import { planGeometry } from '../../pstore/plan-geometry.js';
import { zoneTable } from './pstore-layout.js';

const print = (s = '') => process.stdout.write(s + '\n');

export async function runList(a: ProfileArgs): Promise<void> {
  const rows = listProfiles().map((name) => {
    try {
      const p = loadProfile(name);
      return { name, description: p.description ?? '', path: p.path, valid: true as const };
    } catch (e) {
      if (!(e instanceof CrashcartError)) throw e;
      return { name, description: '', path: resolveProfilePath(name), valid: false as const, error: e.message };
    }
  });
  if (a.json) {
    print(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    print('no bundled board profiles');
    return;
  }
  const w = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) print(`${r.name.padEnd(w)}  ${r.valid ? r.description : `INVALID: ${r.error}`}`);
}

function sizeText(s: number | 'rest'): string {
  return s === 'rest' ? 'rest' : formatBytes(s);
}

/** The lines `profile show` prints. */
export function describeProfile(p: BoardProfile): string[] {
  const out: string[] = [];
  out.push(`profile    ${p.name}  (${p.path})`);
  if (p.description) out.push(`           ${p.description}`);
  if (p.abi) out.push(`abi        ${p.abi.endian === 'be' ? 'big' : p.abi.endian === 'le' ? 'little' : 'unknown'}-endian, ${p.abi.layout ?? 'layout detected'}`);
  if (p.partitions) {
    const need = layoutMinimumSize({ ...p, partitions: p.partitions }, 512);
    const min = Math.max(need, p.card?.min_size ?? 0);
    out.push(`card       at least ${formatBytes(min)} (${min} bytes${p.card?.min_size ? `; the layout alone needs ${formatBytes(need)}` : ''})`);
    out.push(
      `partitions ${p.table === 'mbr' ? `MBR${p.diskSignature ? `, disk signature 0x${p.diskSignature}` : ''}` : 'GPT'}${p.alignment ? `, aligned to ${formatBytes(p.alignment)}` : ''}`,
    );
    const numbers = partitionNumbers({ ...p, partitions: p.partitions });
    const nameW = Math.max(4, ...p.partitions.map((q) => q.name.length));
    out.push(`  #  ${'name'.padEnd(nameW)}  ${'type'.padEnd(18)}  ${'size'.padStart(9)}  image`);
    p.partitions.forEach((q, i) => {
      const type = q.typeAlias ?? q.type;
      const extra = [
        q.start !== undefined ? `start ${formatBytes(q.start)}` : '',
        q.attributes?.length ? `attributes ${q.attributes.join(',')}` : '',
        q.uuid ? `uuid ${q.uuid}` : '',
        q.bootable ? 'bootable' : '',
        q.logical ? 'logical' : '',
      ]
        .filter(Boolean)
        .join(', ');
      out.push(
        `  ${String(numbers[i]).padStart(1)}  ${q.name.padEnd(nameW)}  ${type.padEnd(18)}  ${sizeText(q.size).padStart(9)}  ${q.image ?? '-'}${q.bmap ? ` (bmap ${q.bmap})` : ''}${extra ? `  [${extra}]` : ''}`,
      );
    });
  }
  for (const r of p.raw ?? []) {
    out.push(`raw        "${r.name}" at ${formatBytes(r.offset)} (byte ${r.offset}), up to ${formatBytes(r.size)}: ${r.image ?? '-'}${r.bmap ? ` (bmap ${r.bmap})` : ''}`);
  }
  if (p.pstore) {
    const ps = p.pstore;
    const params = allProfileParams(p);
    const numbers = p.partitions ? partitionNumbers({ ...p, partitions: p.partitions }) : [];
    const idx =
      ps.partition === undefined || !p.partitions ? -1 : typeof ps.partition === 'number' ? numbers.indexOf(ps.partition) : p.partitions.findIndex((q) => q.name === ps.partition);
    const part = idx >= 0 ? p.partitions![idx] : undefined;
    const kib = (k: 'kmsg_size' | 'pmsg_size' | 'console_size' | 'ftrace_size') => (params[k] ? `${params[k]!.value} KiB` : 'default');
    out.push(
      `pstore     ${part ? `partition ${numbers[idx]} "${part.name}"` : ps.partition !== undefined ? `partition ${ps.partition}` : 'whole device'}, ${ps.backend ?? 'best_effort'}: ` +
        `kmsg ${kib('kmsg_size')}, pmsg ${kib('pmsg_size')}, console ${kib('console_size')}, ftrace ${kib('ftrace_size')}` +
        `${params.cpus ? `, cpus ${params.cpus.value}` : ''}, max_reason ${params.max_reason?.value ?? 2}${params.compress ? `, compress ${params.compress.value}` : ''}${ps.headers ? ', erased headers' : ''}`,
    );
    if (part && part.size !== 'rest') {
      const g = planGeometry(part.size, params);
      out.push(...zoneTable(g.layout));
      const blkdev =
        params.blkdev?.value ??
        (p.table === 'mbr' && p.diskSignature ? `PARTUUID=${mbrPartuuid(p.diskSignature, numbers[idx])}` : 'PARTUUID=<partition GUID, printed by provision>');
      out.push(`cmdline    ${buildCmdline(p, g.layout, blkdev, params)}`);
    } else if (p.cmdline) out.push(`cmdline    ${p.cmdline}`);
  } else if (p.cmdline) out.push(`cmdline    ${p.cmdline}`);
  if (p.notes?.length) {
    out.push('notes');
    for (const n of p.notes) out.push(`  - ${n}`);
  }
  return out;
}

export async function runShow(a: ProfileArgs): Promise<void> {
  const p = loadProfile(a.name!);
  if (a.json) {
    print(JSON.stringify(p, null, 2));
    return;
  }
  for (const line of describeProfile(p)) print(line);
}

export async function runValidate(a: ProfileArgs): Promise<void> {
  const path = resolveProfilePath(a.file!);
  const r = checkProfile(readProfileJson(path), path);
  if (a.json) print(JSON.stringify({ path, valid: !!r.profile, errors: r.errors, warnings: r.warnings }, null, 2));
  if (!r.profile) {
    throw new BadInputError(`profile ${path} is invalid (${r.errors.length} problem${r.errors.length === 1 ? '' : 's'}):\n  ${r.errors.join('\n  ')}`);
  }
  if (a.json) return;
  const p = r.profile;
  print(
    `${path}: valid profile "${p.name}"${p.partitions ? `, ${p.partitions.length} partitions` : ''}${p.pstore ? `, pstore on ${p.pstore.partition ?? 'the whole device'}` : ''}`,
  );
  for (const w of r.warnings) print(`warning: ${w}`);
}
