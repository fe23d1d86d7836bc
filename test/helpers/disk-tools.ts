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
export const SGDISK = findTool('sgdisk');
export const SKIP_SFDISK = SFDISK ? false : 'sfdisk not installed (Debian package fdisk); skipping the independent check';
export const SKIP_SGDISK = SGDISK ? false : 'sgdisk not installed (Debian package gdisk); skipping the independent check';

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid: string;
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
