/**
 * Disk images in regular files (`card.img`, a `dd` dump). Read-only unless asked to write;
 * size comes from fstat and is fixed for the life of the device (writes never grow the file).
 */
import { open } from 'node:fs/promises';
import { FileHandleDevice } from './file-handle-device.js';
import { errnoCode } from './device-util.js';
import { IoError, UsageError, WriteProtectedError } from '../errors.js';
import { fileIdentity } from './identity.js';

export interface ImageFileOptions {
  /** Open read-write. Default: read-only. */
  write?: boolean;
  /** Logical block size to report (e.g. 4096 for an image of a 4Kn disk). Default 512. */
  blockSize?: number;
}

export class ImageFileDevice extends FileHandleDevice {}

/** Maps an error from `open()` to a typed error naming the path. */
export function mapOpenError(path: string, write: boolean, err: unknown): Error {
  const code = errnoCode(err);
  const msg = (err as Error)?.message ?? String(err);
  switch (code) {
    case 'ENOENT':
      return new UsageError(`${path}: no such file or device`);
    case 'EISDIR':
      return new UsageError(`${path} is a directory, not an image or device`);
    case 'EROFS':
      return new WriteProtectedError(`${path} is on a read-only file system; cannot open it for writing`);
    case 'EACCES':
    case 'EPERM':
      return write
        ? new WriteProtectedError(`${path}: permission denied opening for writing (${code}); check permissions or the write-protect switch`)
        : new UsageError(`${path}: permission denied (${code})`);
    default:
      return new IoError(`cannot open ${path}: ${msg}`, { cause: err });
  }
}

export async function openImageFile(path: string, opts: ImageFileOptions = {}): Promise<ImageFileDevice> {
  const write = opts.write === true;
  const blockSize = opts.blockSize ?? 512;
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new UsageError(`block size must be a positive integer, got ${String(blockSize)}`);
  let handle;
  try {
    handle = await open(path, write ? 'r+' : 'r');
  } catch (err) {
    throw mapOpenError(path, write, err);
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (!st.isFile()) throw new UsageError(`${path} is not a regular file`);
    return new ImageFileDevice({
      handle,
      info: { name: path, kind: 'image', identity: fileIdentity(st) },
      size: Number(st.size),
      blockSize,
      alignment: 1,
      readOnly: !write,
    });
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
