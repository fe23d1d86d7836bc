/**
 * A view of a byte range of another device: a partition, or `--offset/--size`.
 * Offsets are relative to the start of the region; everything outside it is unreachable.
 * Block size, alignment and read-only state come from the parent. Closing a region does
 * not close the parent (the parent's owner does that).
 */
import type { BlockDevice, BlockDeviceInfo, IoOptions } from './block-device.js';
import { checkAccess, checkOpen, checkWritable, throwIfAborted } from './device-util.js';
import { UsageError } from '../errors.js';

export class RegionDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly size: number;
  readonly blockSize: number;
  readonly alignment: number;
  readonly readOnly: boolean;
  readonly parent: BlockDevice;
  /** Byte offset of the region within the parent. */
  readonly offset: number;
  private closed = false;

  /**
   * @throws UsageError when the range is negative, not a safe integer, runs past the end of the
   *   parent, or is not a multiple of the parent's alignment.
   */
  constructor(parent: BlockDevice, offset: number, size: number, name?: string) {
    const pname = parent.info.name;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new UsageError(`region offset must be a non-negative integer, got ${String(offset)}`);
    if (!Number.isSafeInteger(size) || size < 0) throw new UsageError(`region size must be a non-negative integer, got ${String(size)}`);
    if (offset + size > parent.size) {
      throw new UsageError(`region at offset ${offset} with size ${size} runs past the end of ${pname} (size ${parent.size})`);
    }
    const a = parent.alignment;
    if (a > 1 && (offset % a !== 0 || size % a !== 0)) {
      throw new UsageError(`region at offset ${offset} with size ${size} is not aligned to the ${a}-byte blocks of ${pname}`);
    }
    this.parent = parent;
    this.offset = offset;
    this.size = size;
    this.blockSize = parent.blockSize;
    this.alignment = a;
    this.readOnly = parent.readOnly;
    const { vendor, model, serial } = parent.info;
    this.info = {
      name: name ?? `${pname}[${offset}+${size}]`,
      kind: 'region',
      ...(vendor !== undefined ? { vendor } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(serial !== undefined ? { serial } : {}),
    };
  }

  async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkAccess(this, 'read', offset, length);
    return this.parent.read(this.offset + offset, length, opts);
  }

  async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkWritable(this);
    checkAccess(this, 'write', offset, data.length);
    return this.parent.write(this.offset + offset, data, opts);
  }

  async flush(opts?: IoOptions): Promise<void> {
    checkOpen(this.closed, this.info.name);
    return this.parent.flush(opts);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
