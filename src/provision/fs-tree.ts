/**
 * The folder a file system is built from (`--fs NAME=DIR`): what it holds, and whether a FAT
 * file system can hold it. Read with lstat only (symbolic links are never followed), in sorted
 * order, before anything is built or written.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BadInputError, RefusedError, UsageError } from '../errors.js';

export type TreeEntryKind = 'file' | 'dir' | 'symlink' | 'special';

export interface TreeEntry {
  /** Path relative to the folder, `/`-separated. */
  rel: string;
  kind: TreeEntryKind;
  size: number;
  /** Modification time, whole seconds since the epoch. */
  mtime: number;
}

export interface FsTree {
  dir: string;
  /** Every entry below the folder, parents before children, names sorted within a folder. */
  entries: TreeEntry[];
  files: number;
  dirs: number;
  symlinks: number;
  special: number;
  /** Bytes of file data (hard-linked files counted once). */
  bytes: number;
  /** Modification time of the folder itself. */
  mtime: number;
  /** Entries on another file system than the folder (mount points inside it). */
  otherMounts: string[];
}

/** Most entries a folder may hold: a provisioning input, not a whole distribution. */
export const TREE_MAX_ENTRIES = 1_000_000;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Walks `dir` (which must be a folder) without following symbolic links. `target` is the
 * identity key (`st_dev:st_ino`) of the image file being written, refused when it lies inside.
 * @throws UsageError when it is not a folder; BadInputError when it cannot be read or holds too
 *   many entries; RefusedError when the target is in the folder
 */
export async function walkTree(dir: string, opts: { signal?: AbortSignal; target?: string } = {}): Promise<FsTree> {
  const signal = opts.signal;
  const root = resolve(dir);
  let top;
  try {
    top = await stat(root, { bigint: true });
  } catch (e) {
    throw new UsageError(`--fs folder ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (e as Error).message}`);
  }
  if (!top.isDirectory()) throw new UsageError(`--fs folder ${dir} is not a folder`);
  const tree: FsTree = { dir: root, entries: [], files: 0, dirs: 0, symlinks: 0, special: 0, bytes: 0, mtime: Number(top.mtimeMs / 1000n), otherMounts: [] };
  const seenInodes = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    signal?.throwIfAborted();
    let names: string[];
    try {
      names = (await readdir(join(root, rel))).sort(byName);
    } catch (e) {
      throw new BadInputError(`--fs folder ${dir}: cannot read ${rel || '.'}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, r), { bigint: true });
      if (`${st.dev}:${st.ino}` === opts.target) throw new RefusedError(`the card ${join(root, r)} lies inside --fs folder ${dir}: refusing to write into a folder being copied`);
      if (tree.entries.length >= TREE_MAX_ENTRIES) throw new BadInputError(`--fs folder ${dir} holds more than ${TREE_MAX_ENTRIES} entries`);
      const kind: TreeEntryKind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'special';
      const size = Number(st.size);
      tree.entries.push({ rel: r, kind, size: kind === 'file' ? size : 0, mtime: Number(st.mtimeMs / 1000n) });
      if (st.dev !== top.dev && kind === 'dir') tree.otherMounts.push(join(root, r));
      if (kind === 'dir') {
        tree.dirs++;
        await walk(r);
      } else if (kind === 'file') {
        tree.files++;
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink < 2n || !seenInodes.has(key)) tree.bytes += size;
        if (st.nlink > 1n) seenInodes.add(key);
      } else if (kind === 'symlink') tree.symlinks++;
      else tree.special++;
    }
  };
  await walk('');
  return tree;
}

/** Characters a FAT long name cannot hold. */
const FAT_NAME_BAD = /[\x00-\x1f\x7f"*/:<>?\\|]/;
const FAT_FILE_MAX = 2 ** 32 - 1;

/** Shows at most a few examples of a problem. */
function examples(list: string[]): string {
  return list.length <= 5 ? list.join(', ') : `${list.slice(0, 5).join(', ')} and ${list.length - 5} more`;
}

/**
 * Refuses what a FAT file system cannot hold, naming the entries: symbolic links (copying their
 * targets would change what the folder means, so they are refused, not followed), device
 * nodes, FIFOs and sockets, names with characters FAT forbids or ending in a dot or space,
 * names that differ only in case within one folder, and files of 4 GiB or more.
 * @throws BadInputError
 */
export function checkFatTree(tree: FsTree, what: string): void {
  const problems: string[] = [];
  const links = tree.entries.filter((e) => e.kind === 'symlink').map((e) => e.rel);
  if (links.length) problems.push(`symbolic links, which FAT cannot hold (replace them by the files, or use ext4): ${examples(links)}`);
  const special = tree.entries.filter((e) => e.kind === 'special').map((e) => e.rel);
  if (special.length) problems.push(`device nodes, FIFOs or sockets, which FAT cannot hold: ${examples(special)}`);
  const badNames = tree.entries.filter((e) => {
    const name = e.rel.slice(e.rel.lastIndexOf('/') + 1);
    return FAT_NAME_BAD.test(name) || /[. ]$/.test(name);
  });
  if (badNames.length)
    problems.push(`names FAT cannot hold (control characters, " * / : < > ? \\ |, or a trailing dot or space): ${examples(badNames.map((e) => JSON.stringify(e.rel)))}`);
  const seen = new Map<string, string>();
  const clashes: string[] = [];
  for (const e of tree.entries) {
    const key = e.rel.toUpperCase();
    const other = seen.get(key);
    if (other !== undefined) clashes.push(`${other} and ${e.rel}`);
    else seen.set(key, e.rel);
  }
  if (clashes.length) problems.push(`names that differ only in case, which are one name on FAT: ${examples(clashes)}`);
  const huge = tree.entries.filter((e) => e.size > FAT_FILE_MAX).map((e) => e.rel);
  if (huge.length) problems.push(`files of 4 GiB or more, beyond FAT's limit: ${examples(huge)}`);
  if (problems.length) throw new BadInputError(`${what}: a FAT file system cannot hold this folder:\n  ${problems.join('\n  ')}`);
}

/** Refuses names the ext4 build cannot pass on (a newline ends a debugfs command). @throws BadInputError */
export function checkExt4Tree(tree: FsTree, what: string): void {
  const bad = tree.entries.filter((e) => e.rel.includes('\n')).map((e) => JSON.stringify(e.rel));
  if (bad.length) throw new BadInputError(`${what}: names with a newline cannot be copied into ext4 by crashcart: ${examples(bad)}`);
}
