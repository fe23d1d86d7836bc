/**
 * The one gate every write goes through. It knows what each target and each input *is* (file
 * system and inode for files, device number for block devices, port and LUN for readers, and
 * through sysfs the disks and partitions behind them) and refuses, before anything is
 * written:
 * - a target that is, holds, or lives on an input (an image flashed onto itself, a read whose
 *   output or map is the card, a loop device over the image, a partition of the card read);
 * - a target named twice under different spellings;
 * - a disk this system uses: mounted, swap, root, or a partition, loop device, dm/md device of
 *   such a disk — whatever the spelling — unless `allowSystemDisk`;
 * - an output file that already exists (files are created exclusively, never through links).
 */
import { realpath, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice, BlockDeviceInfo, DeviceIdentity } from '../blockdev/block-device.js';
import type { ReconnectOptions } from '../blockdev/reconnect.js';
import { identityOf } from '../blockdev/identity.js';
import { openDevice } from '../blockdev/open-device.js';
import type { SystemPaths } from '../host/sysfs-block.js';
import { RefusedError } from '../errors.js';
import { blockFootprint, fileFootprint, footprintsConflict, type Footprint } from '../host/block-topology.js';
import { systemDiskCheck } from '../host/system-disk.js';
import { createExclusive, openExistingForUpdate, replaceFile } from './outputs.js';

export interface WriteGateOptions extends SystemPaths {
  /** Write even to a disk this system uses (mounted, swap, root). Inputs stay protected. */
  allowSystemDisk?: boolean;
}

interface Known {
  name: string;
  /** What the object is to the command ("the image being flashed"), for messages. */
  role: string;
  footprint: Footprint;
}

/** Where the object an identity names keeps its bytes, and what it stands on. */
export async function footprintOf(id: DeviceIdentity, opts: SystemPaths = {}): Promise<Footprint> {
  if (id.kind === 'block') return blockFootprint(id.key, opts);
  if (id.kind === 'file') return fileFootprint(id.key, id.fsDevice, opts);
  return { objects: new Set([`${id.kind}:${id.key}`]), is: [], on: [] };
}

/** The flag that lifts the system-disk refusal, named in every refusal message. */
export const SYSTEM_DISK_FLAG = '--force-system-disk';

export class WriteGate {
  private readonly inputs: Known[] = [];
  private readonly targets: Known[] = [];

  constructor(private readonly opts: WriteGateOptions = {}) {}

  /**
   * Registers what the operation reads: a path (a missing one is skipped, the reader reports
   * it) or an opened device.
   */
  async addInput(what: string | BlockDevice | undefined, role = 'an input of this command'): Promise<void> {
    if (what === undefined) return;
    if (typeof what !== 'string') {
      if (what.info.identity) this.inputs.push({ name: what.info.name, role, footprint: await footprintOf(what.info.identity, this.opts) });
      return;
    }
    const footprint = await this.footprintAt(what);
    if (footprint) this.inputs.push({ name: what, role, footprint });
  }

  /**
   * Opens `spec` for writing and admits it, or closes it again and refuses. A dry run opens it
   * read-only and makes the same checks. With `reconnect`, a reader that goes away and comes back
   * is admitted again (readmitDevice) before anything more is written to it.
   */
  async openDevice(spec: string, opts: { dryRun?: boolean; maxTransferBytes?: number; reconnect?: Omit<ReconnectOptions, 'admit'> } = {}): Promise<BlockDevice> {
    const reconnect = opts.reconnect && { ...opts.reconnect, admit: (dev: BlockDevice, previous: BlockDeviceInfo) => this.readmitDevice(dev, previous) };
    const dev = await openDevice(spec, { write: !opts.dryRun, maxTransferBytes: opts.maxTransferBytes, ...(reconnect ? { reconnect } : {}) });
    try {
      await this.admitDevice(dev);
    } catch (e) {
      await dev.close().catch(() => undefined);
      throw e;
    }
    return dev;
  }

  /** Checks an opened device against the inputs, the other targets and the system's disks. */
  async admitDevice(dev: BlockDevice): Promise<void> {
    const id = dev.info.identity;
    if (!id) return; // memory and region devices have no OS identity
    const fp = await footprintOf(id, this.opts);
    this.refuseOverlap(dev.info.name, fp);
    if (id.kind === 'block') await this.refuseSystemDisk(dev.info.name, id);
    this.targets.push({ name: dev.info.name, role: 'a destination', footprint: fp });
  }

  /**
   * A target that went away (`previous`) came back as `dev` (perhaps on another port): it is
   * checked again like a new target, in place of the one it was.
   */
  async readmitDevice(dev: BlockDevice, previous: BlockDeviceInfo): Promise<void> {
    const i = this.targets.findIndex((t) => t.name === previous.name && t.role === 'a destination');
    const [was] = i >= 0 ? this.targets.splice(i, 1) : [];
    try {
      await this.admitDevice(dev);
    } catch (e) {
      if (was) this.targets.push(was);
      throw e;
    }
  }

  /**
   * Creates output file `path` exclusively (or, with `continueExisting`, opens the existing
   * regular file without following a link) and admits it.
   */
  async createFile(path: string, opts: { continueExisting?: boolean; what?: string } = {}): Promise<FileHandle> {
    const what = opts.what ?? 'output';
    const fh = opts.continueExisting ? await openExistingForUpdate(path, what) : await createExclusive(path, what);
    try {
      const fp = await footprintOf(identityOf(await fh.stat({ bigint: true })), this.opts);
      this.refuseOverlap(`${what} ${path}`, fp);
      this.targets.push({ name: path, role: `the ${what}`, footprint: fp });
    } catch (e) {
      await fh.close().catch(() => undefined);
      if (!opts.continueExisting) await unlink(path).catch(() => undefined);
      throw e;
    }
    return fh;
  }

  /**
   * Replaces file `path` (one this command owns: a map, a journal) atomically after checking
   * that it is no input (see replaceFile).
   */
  async replaceFile(path: string, data: string | Uint8Array, what = 'file'): Promise<void> {
    await this.checkPath(path, what, { targets: false });
    await replaceFile(path, data, what);
  }

  /** Refuses `path` when it exists and is an input or (unless `targets` is false) an admitted target. */
  async checkPath(path: string, what = 'output', opts: { targets?: boolean } = {}): Promise<void> {
    const fp = await this.footprintAt(path);
    if (fp) this.refuseOverlap(`${what} ${path}`, fp, opts);
  }

  /**
   * Refuses an output location (a file or folder, existing or to be created) whose nearest
   * existing folder is an input or lives on one (e.g. a folder on the card being read).
   */
  async checkLocation(path: string, what = 'output'): Promise<void> {
    for (let p = resolve(path); ; p = dirname(p)) {
      const fp = await this.footprintAt(p);
      if (fp) return this.refuseOverlap(`${what} ${path} (in ${p})`, fp, { targets: false });
      if (dirname(p) === p) return;
    }
  }

  /** The footprint of whatever `path` names now, or undefined when nothing does. */
  private async footprintAt(path: string): Promise<Footprint | undefined> {
    let st;
    try {
      st = await stat(path, { bigint: true });
    } catch {
      return undefined;
    }
    return footprintOf(identityOf(st), this.opts);
  }

  private refuseOverlap(name: string, fp: Footprint, opts: { targets?: boolean } = {}): void {
    for (const i of this.inputs) {
      if (footprintsConflict(fp, i.footprint)) throw new RefusedError(`${name} is ${i.role} (${i.name}), or shares storage with it; refusing to write it`);
    }
    if (opts.targets === false) return;
    for (const t of this.targets) {
      if (footprintsConflict(fp, t.footprint))
        throw new RefusedError(`${name} is already ${t.role} of this command (${t.name}), or shares storage with it; refusing to write it twice`);
    }
  }

  private async refuseSystemDisk(name: string, id: DeviceIdentity): Promise<void> {
    // Check the node that was opened, by the path it resolves to now; a name that moved to
    // another device between the open and the check is refused.
    let real: string;
    try {
      real = await realpath(name);
      const now = identityOf(await stat(real, { bigint: true }));
      if (now.key !== id.key) throw new Error('changed');
    } catch {
      throw new RefusedError(`${name} changed while it was being opened; refusing to write it`);
    }
    const report = await systemDiskCheck(real, this.opts);
    if (report.inUse && !this.opts.allowSystemDisk) {
      throw new RefusedError(
        `${name} is a disk this system uses: ${report.reasons.join('; ')}; refusing to write (unmount it first, or pass ${SYSTEM_DISK_FLAG} if you really mean it)`,
      );
    }
  }
}
