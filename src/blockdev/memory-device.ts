/**
 * A BlockDevice over an in-memory buffer: for tests and for decoding a buffer that was
 * already read (a decompressed image, a dump handed over by another tool).
 */
import type { BlockDevice, BlockDeviceInfo, IoOptions } from './block-device.js';
import { checkAccess, checkOpen, checkWritable, throwIfAborted } from './device-util.js';
import { UsageError } from '../errors.js';

export interface MemoryDeviceOptions {
  /** Refuse writes (WriteProtectedError). Default false. */
  readOnly?: boolean;
  /** Logical block size reported to callers. Default 512. */
  blockSize?: number;
  /** Required alignment of offsets and lengths (to mimic block-only backends). Default 1. */
  alignment?: number;
  /** Name used in messages. Default "memory". */
  name?: string;
}

function checkPositiveInt(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`${what} must be a positive integer, got ${String(v)}`);
}

export class MemoryDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly size: number;
  readonly blockSize: number;
  readonly alignment: number;
  readonly readOnly: boolean;
  /** The backing buffer; writes go straight into it. */
  readonly data: Uint8Array;
  private closed = false;

  constructor(data: Uint8Array, opts: MemoryDeviceOptions = {}) {
    this.data = data;
    this.size = data.length;
    this.blockSize = opts.blockSize ?? 512;
    this.alignment = opts.alignment ?? 1;
    checkPositiveInt('blockSize', this.blockSize);
    checkPositiveInt('alignment', this.alignment);
    this.readOnly = opts.readOnly ?? false;
    this.info = { name: opts.name ?? 'memory', kind: 'memory' };
  }

  async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkAccess(this, 'read', offset, length);
    return this.data.slice(offset, offset + length);
  }

  async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkWritable(this);
    checkAccess(this, 'write', offset, data.length);
    this.data.set(data, offset);
  }

  async flush(opts?: IoOptions): Promise<void> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
