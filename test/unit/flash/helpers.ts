/** Shared helpers for the flash tests: fixture paths, temp dirs, a fault-injecting device. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BlockDevice, IoOptions } from '../../../src/blockdev/block-device.js';
import { WrappedDevice } from '../../helpers/wrapped-device.js';
import { IoError } from '../../../src/errors.js';

export const FIXTURES = resolve('test/fixtures/flash');
export const fixture = (name: string) => join(FIXTURES, name);
export const DISK = () => new Uint8Array(readFileSync(fixture('disk.img')));

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'crashcart-flash-test-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** An EIO as a file-backed device reports it: classified as a medium error (retried). */
export function eio(what: string): IoError {
  const cause = Object.assign(new Error(`${what}: EIO: i/o error`), { code: 'EIO' });
  return new IoError(`${what} failed: EIO`, { cause, failure: 'medium' });
}

export interface Fault {
  op: 'read' | 'write' | 'flush';
  /** Triggers when the request overlaps [start, end). */
  start?: number;
  end?: number;
  /** How many times (default 1; Infinity = always). */
  times?: number;
  error: () => Error;
}

/**
 * Wraps a device: records every write (offset, length) in order, injects faults, and can
 * corrupt a byte of the data written at one offset.
 */
export class FaultyDevice extends WrappedDevice {
  readonly writes: { offset: number; length: number }[] = [];
  faults: Fault[] = [];
  corruptAt?: number;
  constructor(inner: BlockDevice, name = 'faulty') {
    super(inner, name);
  }
  private check(op: Fault['op'], offset: number, length: number): void {
    for (const f of this.faults) {
      if (f.op !== op || (f.times ?? 1) <= 0) continue;
      if (op !== 'flush' && (offset + length <= (f.start ?? 0) || offset >= (f.end ?? Infinity))) continue;
      f.times = (f.times ?? 1) - 1;
      throw f.error();
    }
  }
  override async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    this.check('read', offset, length);
    return this.inner.read(offset, length, opts);
  }
  override async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    this.check('write', offset, data.length);
    this.writes.push({ offset, length: data.length });
    if (this.corruptAt !== undefined && this.corruptAt >= offset && this.corruptAt < offset + data.length) {
      const copy = new Uint8Array(data);
      copy[this.corruptAt - offset] ^= 0xff;
      data = copy;
    }
    return this.inner.write(offset, data, opts);
  }
  override async flush(opts?: IoOptions): Promise<void> {
    this.check('flush', 0, 0);
    return this.inner.flush(opts);
  }
}
