/**
 * Independent partitioning tools (util-linux sfdisk, gdisk's sgdisk) for checking the tables
 * crashcart writes. Tests call them when installed and skip with a message when not
 * (Debian packages fdisk and gdisk; .ci/run installs them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export const SFDISK = findTool('sfdisk');
export const FDISK = findTool('fdisk');
export const SGDISK = findTool('sgdisk');
export const SKIP_SFDISK = SFDISK ? false : 'sfdisk not installed (Debian package fdisk); skipping the independent check';
export const SKIP_FDISK = FDISK ? false : 'fdisk not installed (Debian package fdisk); skipping the independent check';
export const SKIP_SGDISK = SGDISK ? false : 'sgdisk not installed (Debian package gdisk); skipping the independent check';

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  /** GPT: type GUID; dos: hex type without 0x ("83", "c"). */
  type: string;
  /** GPT only. */
  uuid: string;
  /** dos only. */
  bootable?: boolean;
  name?: string;
  attrs?: string;
}

export interface SfdiskTable {
  label: string;
  id: string;
  firstlba?: number;
  lastlba?: number;
  sectorsize?: number;
  partitions: SfdiskPartition[];
}

/** `sfdisk --json IMAGE`, parsed; throws with sfdisk's stderr when it fails. */
export function sfdiskJson(image: string): { table: SfdiskTable; stderr: string } {
  const r = spawnSync(SFDISK!, ['--json', image], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sfdisk --json ${image} failed (${r.status}): ${r.stderr}`);
  return { table: (JSON.parse(r.stdout) as { partitiontable: SfdiskTable }).partitiontable, stderr: r.stderr };
}

/** `sgdisk --verify IMAGE`: exit status and everything it printed. */
export function sgdiskVerify(image: string): { status: number | null; output: string } {
  const r = spawnSync(SGDISK!, ['--verify', image], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** One row of `fdisk -l` for a dos label. */
export interface FdiskRow {
  /** Partition number (the digits after the image name). */
  number: number;
  boot: boolean;
  start: number;
  end: number;
  sectors: number;
  /** Hex type as fdisk prints it ("83", "c"). */
  id: string;
  typeName: string;
}

/** `fdisk -l IMAGE` of an image with a dos label: disk identifier, label type and partition rows. */
export function fdiskList(image: string): { label: string; identifier: string; rows: FdiskRow[]; output: string } {
  const r = spawnSync(FDISK!, ['-l', image], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`fdisk -l ${image} failed (${r.status}): ${r.stderr}`);
  const label = /^Disklabel type: (\S+)$/m.exec(r.stdout)?.[1] ?? '';
  const identifier = /^Disk identifier: (\S+)$/m.exec(r.stdout)?.[1] ?? '';
  const rows: FdiskRow[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith(image)) continue;
    const m = /^(\S+?)(\d+)\s+(\*?)\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+([0-9a-f]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unexpected fdisk -l row: ${line}`);
    rows.push({ number: Number(m[2]), boot: m[3] === '*', start: Number(m[4]), end: Number(m[5]), sectors: Number(m[6]), id: m[7], typeName: m[8].trim() });
  }
  return { label, identifier, rows, output: `${r.stdout}${r.stderr}` };
}
