/**
 * The kernel's tables of mounts and swap areas, parsed: /proc/self/mountinfo, /proc/mounts and
 * /proc/swaps, with their octal escapes undone. The one parser every layer uses.
 */

/** Undoes the octal escapes (\040 for space, \011 tab, \012 newline, \134 backslash) of /proc/self/mountinfo, /proc/mounts and /proc/swaps. */
export function unescapeProc(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountEntry {
  devNum?: string;
  source: string;
  mountPoint: string;
  fsType?: string;
}

/** Parses /proc/self/mountinfo text. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [pre, post] = line.split(' - ');
    if (post === undefined) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    if (f.length < 5 || g.length < 2) continue;
    out.push({ devNum: f[2], mountPoint: unescapeProc(f[4]), fsType: g[0], source: unescapeProc(g[1]) });
  }
  return out;
}

/** Parses /proc/mounts (fstab format) text. */
export function parseProcMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3) continue;
    out.push({ source: unescapeProc(f[0]), mountPoint: unescapeProc(f[1]), fsType: f[2] });
  }
  return out;
}

/** Parses /proc/swaps text into swap area paths. */
export function parseProcSwaps(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[0]) out.push(unescapeProc(f[0]));
  }
  return out;
}
