/**
 * Positional I/O over a `fs.promises.FileHandle`, shared by the image-file and OS
 * block-device backends. Large requests are split into chunks so an AbortSignal is honoured
 * between them; a read that ends early (file shorter than expected) is an IoError that says
 * where it happened.
 */
import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice, BlockDeviceInfo, IoOptions } from './block-device.js';
import { checkAccess, checkOpen, checkWritable, errnoCode, failureOfErrno, throwIfAborted } from './device-util.js';
import { IoError, WriteProtectedError } from '../errors.js';

/** Largest single read/write handed to the OS; abort is checked between chunks. */
export const IO_CHUNK = 8 * 1024 * 1024;

export interface FileHandleDeviceParams {
  handle: FileHandle;
  info: BlockDeviceInfo;
  size: number;
  blockSize: number;
  alignment: number;
  readOnly: boolean;
}

/** Maps an fs error raised while writing to the project's typed errors. */
export function mapWriteError(name: string, offset: number, length: number, err: unknown): Error {
  const code = errnoCode(err);
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return new WriteProtectedError(`${name} refused a write of ${length} bytes at offset ${offset} (${code}): medium is write-protected or read-only`);
  }
  return new IoError(`write of ${length} bytes at offset ${offset} on ${name} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err, failure: failureOfErrno(err) });
}

export class FileHandleDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  readonly size: number;
  readonly blockSize: number;
  readonly alignment: number;
  readonly readOnly: boolean;
  protected readonly handle: FileHandle;
  private closed = false;

  constructor(p: FileHandleDeviceParams) {
    this.handle = p.handle;
    this.info = p.info;
    this.size = p.size;
    this.blockSize = p.blockSize;
    this.alignment = p.alignment;
    this.readOnly = p.readOnly;
  }

  async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkAccess(this, 'read', offset, length);
    const buf = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      throwIfAborted(opts);
      const want = Math.min(IO_CHUNK, length - done);
      let n: number;
      try {
        ({ bytesRead: n } = await this.handle.read(buf, done, want, offset + done));
      } catch (err) {
        throw new IoError(`read of ${length} bytes at offset ${offset} on ${this.info.name} failed at offset ${offset + done}: ${(err as Error)?.message ?? String(err)}`, {
          cause: err,
          failure: failureOfErrno(err),
        });
      }
      if (n === 0) {
        throw new IoError(`short read on ${this.info.name}: wanted ${length} bytes at offset ${offset}, got only ${done} (truncated image or device shrank?)`);
      }
      done += n;
    }
    throwIfAborted(opts);
    return buf;
  }

  async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    checkWritable(this);
    checkAccess(this, 'write', offset, data.length);
    let done = 0;
    while (done < data.length) {
      throwIfAborted(opts);
      const want = Math.min(IO_CHUNK, data.length - done);
      let n: number;
      try {
        ({ bytesWritten: n } = await this.handle.write(data, done, want, offset + done));
      } catch (err) {
        throw mapWriteError(this.info.name, offset + done, want, err);
      }
      if (n === 0) throw new IoError(`write at offset ${offset + done} on ${this.info.name} made no progress`);
      done += n;
    }
  }

  async flush(opts?: IoOptions): Promise<void> {
    throwIfAborted(opts);
    checkOpen(this.closed, this.info.name);
    if (this.readOnly) return;
    try {
      await this.handle.sync();
    } catch (err) {
      throw new IoError(`flushing ${this.info.name} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err, failure: failureOfErrno(err) });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
