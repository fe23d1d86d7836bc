/**
 * Building a FAT or ext4 file system from a folder into a temporary image the size of its
 * partition, with Debian's tools: `mkfs.fat` + `mcopy` (dosfstools, mtools) for FAT, `mke2fs -d`
 * + `debugfs` (e2fsprogs) for ext4. Provisioning then writes the image through the flash pipeline
 * like a partition image, and skips it when the partition already holds the same bytes.
 *
 * Reproducible: the same unchanged folder gives the same bytes. Volume ID / UUID and the ext4
 * hash seed are fixed (from the profile, else derived from the partition's PARTUUID); FAT
 * timestamps are written in UTC by `mkfs.fat --invariant` and `mcopy -m` (files and folders
 * keep their modification times); ext4 file system times come from E2FSPROGS_FAKE_TIME, and
 * each inode's access and change times are set to its modification time (mke2fs copies them
 * from the folder, where reading it moves the access time).
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadInputError, CrashcartError, ExitCode } from '../errors.js';
import { requireTool, runTool, type HostTool, type ToolRun } from '../host/run-tool.js';
import type { FatSize, FsType } from '../profile/board-profile.js';
import { formatBytes } from '../util/format-bytes.js';
import { checkExt4Tree, checkFatTree, walkTree, type FsTree } from './fs-tree.js';

export const FS_TOOLS = {
  mkfsFat: { name: 'mkfs.fat', debianPackage: 'dosfstools' },
  mcopy: { name: 'mcopy', debianPackage: 'mtools' },
  mke2fs: { name: 'mke2fs', debianPackage: 'e2fsprogs' },
  debugfs: { name: 'debugfs', debianPackage: 'e2fsprogs' },
} as const satisfies Record<string, HostTool>;

export interface FsRequest {
  /** The partition's name (for messages and the default label). */
  name: string;
  dir: string;
  type: FsType;
  /** FAT size asked for (profile `fs.fat` or the partition type); else chosen by size. */
  fat?: FatSize;
  label?: string;
  /** Checked and normalised (vfat: 8 uppercase hex digits; ext4: lowercase UUID). */
  uuid?: string;
  /** Partition size in bytes: the size of the file system. */
  size: number;
  /** Partition start in 512-byte sectors (FAT's hidden sectors field). */
  startSector: number;
  /** Text the default UUID is derived from (the partition's PARTUUID). */
  seed: string;
  /** Identity key of the image file being provisioned: refused when it lies inside the folder. */
  target?: string;
}

export interface BuiltFilesystem {
  name: string;
  dir: string;
  type: FsType;
  fat?: FatSize;
  label?: string;
  /** vfat: `1234-ABCD`; ext4: the UUID. */
  uuid: string;
  size: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** Bytes of file data in the folder. */
  bytes: number;
  /** The temporary image (deleted by `removeWorkDir`). */
  image: string;
  /** Folders inside the source folder that are other file systems (mount points). */
  otherMounts: string[];
  notes: string[];
}

// ---------------------------------------------------------------------------------------------
// Work folders: removed by their owner, and on exit (also after a signal) whatever is left.

const liveDirs = new Set<string>();
let exitHook = false;

/** A new private folder under the system's temporary folder for file system images. */
export async function createWorkDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-fs-'));
  liveDirs.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------

const MiB = 1024 * 1024;

/** FAT size by partition size when nothing asks for one: FAT12 below 16 MiB, FAT16 below 512 MiB, else FAT32. */
export function fatSizeFor(bytes: number): FatSize {
  return bytes < 16 * MiB ? 12 : bytes < 512 * MiB ? 16 : 32;
}

/** The UUID (ext4) or volume ID (vfat, 8 uppercase hex digits) derived from `seed`. */
export function derivedFsUuid(type: FsType, seed: string): string {
  const h = createHash('sha256').update(`crashcart fs ${type} ${seed}`).digest();
  if (type === 'vfat') return h.subarray(0, 4).toString('hex').toUpperCase();
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The label when none is given: the partition name, if the file system can hold it (FAT: upper case). */
export function defaultLabel(type: FsType, name: string): string | undefined {
  if (type === 'vfat') {
    const l = name.toUpperCase();
    return l.length <= 11 && /^[A-Z0-9_ -]+$/.test(l) ? l : undefined;
  }
  return Buffer.byteLength(name) <= 16 && !/[\x00-\x1f]/.test(name) ? name : undefined;
}

const showVolumeId = (id: string) => `${id.slice(0, 4)}-${id.slice(4)}`;

function toolFailed(what: string, tool: string, r: ToolRun): never {
  const text = `${r.stderr}${r.stdout}`.trim().split('\n').slice(-6).join('\n  ');
  throw new CrashcartError(`${what}: ${tool} failed (${r.signal ?? `exit ${r.code}`}): ${text}`, ExitCode.INTERNAL);
}

function doesNotFit(what: string, req: FsRequest, tree: FsTree, detail: string): BadInputError {
  return new BadInputError(
    `${what}: folder ${req.dir} (${tree.files} files, ${formatBytes(tree.bytes)}) does not fit in a ${formatBytes(req.size)} ${req.type} file system: ${detail}; nothing was written`,
  );
}

/** The environment every tool runs with: no user configuration, UTC, a UTF-8 locale for file names. */
function toolEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', TZ: 'UTC', LC_ALL: 'C.UTF-8', ...extra };
  return env;
}

/**
 * Checks the folder and builds the file system into a new image file in `workDir`.
 * @throws UsageError when the folder is missing; BadInputError when it holds what the file
 *   system cannot, or does not fit; ToolMissingError naming the Debian package of a missing tool
 */
export async function buildFilesystem(req: FsRequest, workDir: string, opts: { signal?: AbortSignal } = {}): Promise<BuiltFilesystem> {
  const what = `--fs ${req.name}=${req.dir}`;
  const purpose = `to build the ${req.type === 'vfat' ? 'FAT' : 'ext4'} file system of ${what}`;
  const tools = req.type === 'vfat' ? [FS_TOOLS.mkfsFat, FS_TOOLS.mcopy] : [FS_TOOLS.mke2fs, FS_TOOLS.debugfs];
  const [mkfs, fill] = tools.map((t) => requireTool(t, purpose));
  const tree = await walkTree(req.dir, { signal: opts.signal, target: req.target });
  if (req.type === 'vfat') checkFatTree(tree, what);
  else checkExt4Tree(tree, what);
  if (tree.bytes > req.size) throw doesNotFit(what, req, tree, `its files alone take ${formatBytes(tree.bytes)}`);

  const image = join(workDir, `${req.name.replace(/[^A-Za-z0-9._-]/g, '_')}.${req.type}.img`);
  const fh = await open(image, 'wx');
  try {
    await fh.truncate(req.size);
  } finally {
    await fh.close();
  }
  const epoch = String(process.env.SOURCE_DATE_EPOCH?.match(/^\d+$/) ? process.env.SOURCE_DATE_EPOCH : Math.max(tree.mtime, ...tree.entries.map((e) => e.mtime), 315532800));
  const uuid = req.uuid ?? derivedFsUuid(req.type, req.seed);
  const label = req.label ?? defaultLabel(req.type, req.name);
  const notes: string[] = [];
  const built: BuiltFilesystem = {
    name: req.name,
    dir: tree.dir,
    type: req.type,
    ...(label !== undefined ? { label } : {}),
    uuid: req.type === 'vfat' ? showVolumeId(uuid) : uuid,
    size: req.size,
    files: tree.files,
    dirs: tree.dirs,
    symlinks: tree.symlinks,
    bytes: tree.bytes,
    image,
    otherMounts: tree.otherMounts,
    notes,
  };
  if (req.type === 'vfat') {
    built.fat = req.fat ?? fatSizeFor(req.size);
    await buildFat({ mkfs, mcopy: fill, image, tree, req, fat: built.fat, uuid, label, epoch, notes, what, signal: opts.signal });
  } else {
    await buildExt4({ mke2fs: mkfs, debugfs: fill, image, tree, req, uuid, label, epoch, what, signal: opts.signal });
  }
  return built;
}

interface FatJob {
  mkfs: string;
  mcopy: string;
  image: string;
  tree: FsTree;
  req: FsRequest;
  fat: FatSize;
  uuid: string;
  label?: string;
  epoch: string;
  notes: string[];
  what: string;
  signal?: AbortSignal;
}

async function buildFat(j: FatJob): Promise<void> {
  const env = toolEnv({ MTOOLSRC: '/dev/null', MTOOLS_SKIP_CHECK: '1', SOURCE_DATE_EPOCH: j.epoch });
  const args = ['--invariant', '--mbr=n', '-F', String(j.fat), '-i', j.uuid, '-h', String(j.req.startSector), ...(j.label ? ['-n', j.label] : []), j.image];
  const mk = await runTool(j.mkfs, args, { env, signal: j.signal });
  if (mk.code !== 0) {
    if (/too small|too large|Too few blocks|Not enough clusters/i.test(mk.stderr + mk.stdout))
      throw new BadInputError(`${j.what}: mkfs.fat cannot make FAT${j.fat} in ${formatBytes(j.req.size)}: ${mk.stderr.trim().split('\n')[0]}`);
    toolFailed(j.what, 'mkfs.fat', mk);
  }
  for (const l of mk.stderr.split('\n')) if (/warning/i.test(l)) j.notes.push(`${l.trim().replace(/^mkfs\.fat: /, '')} (mkfs.fat, ${j.what})`);
  // Top-level entries sorted; mcopy -s copies each folder in the order the host lists it.
  const top = j.tree.entries.filter((e) => !e.rel.includes('/')).map((e) => join(j.tree.dir, e.rel));
  if (top.length === 0) return;
  const cp = await runTool(j.mcopy, ['-s', '-m', '-Q', '-i', j.image, ...top, '::/'], { env, signal: j.signal });
  if (cp.code !== 0) {
    if (/Disk full|No free clusters|Too many files|Directory full/i.test(cp.stderr + cp.stdout))
      throw doesNotFit(j.what, j.req, j.tree, `mcopy: ${cp.stderr.trim().split('\n')[0]}`);
    toolFailed(j.what, 'mcopy', cp);
  }
}

interface Ext4Job {
  mke2fs: string;
  debugfs: string;
  image: string;
  tree: FsTree;
  req: FsRequest;
  uuid: string;
  label?: string;
  epoch: string;
  what: string;
  signal?: AbortSignal;
}

/** A debugfs argument: in double quotes, a quote doubled. */
const dq = (s: string) => `"${s.replace(/"/g, '""')}"`;

async function buildExt4(j: Ext4Job): Promise<void> {
  const env = toolEnv({ E2FSPROGS_FAKE_TIME: j.epoch });
  const hashSeed = derivedFsUuid('ext4', `hash seed ${j.uuid}`);
  const args = ['-q', '-F', '-t', 'ext4', '-d', j.tree.dir, '-U', j.uuid, '-E', `root_owner=0:0,hash_seed=${hashSeed},nodiscard`, ...(j.label ? ['-L', j.label] : []), j.image];
  const mk = await runTool(j.mke2fs, args, { env, signal: j.signal });
  if (mk.code !== 0) {
    if (/Could not allocate|No space left|too small|inode table|Not enough space/i.test(mk.stderr + mk.stdout))
      throw doesNotFit(j.what, j.req, j.tree, `mke2fs: ${(mk.stderr + mk.stdout).trim().split('\n').pop()}`);
    toolFailed(j.what, 'mke2fs', mk);
  }
  // Access and change times as the modification time: reading the folder moves the access time.
  const cmds: string[] = [];
  for (const [path, mtime] of [['/', j.tree.mtime] as const, ...j.tree.entries.map((e) => [`/${e.rel}`, e.mtime] as const)]) {
    cmds.push(`sif ${dq(path)} atime @${mtime}`, `sif ${dq(path)} ctime @${mtime}`);
  }
  const dbg = await runTool(j.debugfs, ['-w', '-f', '-', j.image], { env, input: cmds.join('\n') + '\n', signal: j.signal });
  const errors = dbg.stderr.split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
  if (dbg.code !== 0 || errors.length) toolFailed(j.what, 'debugfs', { ...dbg, stderr: errors.join('\n') });
}
