/** Access to the kernel-written fixtures copied from the shared fixture set (test/fixtures/kernel). */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root, from dist/test/helpers or test/helpers. */
export const repoRoot = [resolve(here, '../../..'), resolve(here, '../..')].find((p) => existsSync(join(p, 'package.json')))!;
export const kernelFixturesDir = join(repoRoot, 'test/fixtures/kernel');

export interface KernelFixture {
  name: string;
  dir: string;
  disk: () => Uint8Array;
  cmdline: string;
  readout: Map<string, Buffer>;
  kallsyms?: Uint8Array;
  /** `kernel-readout.stat`: size and mtime of each /sys/fs/pstore file, where the fixture has it. */
  readoutStat?: Map<string, FileStat>;
}

export function kernelFixtures(): KernelFixture[] {
  return readdirSync(kernelFixturesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(kernelFixturesDir, d.name, 'kernel-readout')))
    .map((d) => {
      const dir = join(kernelFixturesDir, d.name);
      const readout = new Map<string, Buffer>();
      for (const f of readdirSync(join(dir, 'kernel-readout'))) readout.set(f, readFileSync(join(dir, 'kernel-readout', f)));
      const ks = join(dir, 'kallsyms.gz');
      const st = join(dir, 'kernel-readout.stat');
      return {
        name: d.name,
        dir,
        disk: () => new Uint8Array(gunzipSync(readFileSync(join(dir, 'disk.img.gz')))),
        cmdline: readFileSync(join(dir, 'cmdline.txt'), 'utf8').trim(),
        readout,
        kallsyms: existsSync(ks) ? readFileSync(ks) : undefined,
        readoutStat: existsSync(st) ? parseStat(readFileSync(st, 'utf8')) : undefined,
      };
    });
}

export interface FileStat {
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Nanoseconds of the mtime, where the manifest has the human-readable time too. */
  mtimeNsec?: number;
}

/** Lines `NAME SIZE MTIME [YYYY-MM-DD HH:MM:SS.NNNNNNNNN +ZZZZ]` (stat -c '%n %s %Y %y'). */
function parseStat(text: string): Map<string, FileStat> {
  const out = new Map<string, FileStat>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\d+) (\d+)(?: \S+ \d\d:\d\d:\d\d\.(\d{9}) \S+)?$/.exec(line);
    if (m) out.set(m[1], { size: Number(m[2]), mtime: Number(m[3]), mtimeNsec: m[4] === undefined ? undefined : Number(m[4]) });
  }
  return out;
}

/**
 * Compares ftrace text line by line. A symbol the reading kernel could not resolve is printed
 * as a raw `0x…` address; there any rendering of ours is accepted (we may know the module the
 * reading kernel had not loaded). Returns the first mismatch, or null.
 */
export function ftraceMismatch(expected: string, actual: string): string | null {
  const e = expected.split('\n');
  const a = actual.split('\n');
  if (e.length !== a.length) return `line count ${a.length} != ${e.length}`;
  const re = /^(CPU:\d+ ts:\d+ [0-9a-f]+  [0-9a-f]+  )(.*) <- (.*)$/;
  for (let i = 0; i < e.length; i++) {
    if (e[i] === a[i]) continue;
    const me = re.exec(e[i]);
    const ma = re.exec(a[i]);
    if (!me || !ma || me[1] !== ma[1]) return `line ${i + 1}: ${a[i]} != ${e[i]}`;
    for (const k of [2, 3]) {
      if (me[k] !== ma[k] && !/^0x[0-9a-f]+$/.test(me[k])) return `line ${i + 1}: ${a[i]} != ${e[i]}`;
    }
  }
  return null;
}
