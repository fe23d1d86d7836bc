/**
 * The one storage abstraction every layer above the transport uses.
 *
 * Backends: image files, OS block devices (/dev/sdX, opened exclusively) and, through the
 * USB Bulk-Only Transport driver, a card in a USB reader. All I/O is asynchronous, takes
 * byte offsets and may be cancelled with an AbortSignal. Backends that can only move whole
 * logical blocks (USB, O_DIRECT devices) declare `alignment`; callers that want the fast
 * path align to it, and `readAt`/`writeAt` helpers in `io.ts` handle the unaligned rest.
 */
export interface IoOptions {
  /** Cancels the operation; the promise then rejects with an AbortError. */
  signal?: AbortSignal;
}

/**
 * What a device *is*, independent of how it was named: the write gate compares identities, never
 * spellings. Files are known by file system and inode, OS block devices by device number, USB
 * readers by bus port path and LUN.
 */
export interface DeviceIdentity {
  readonly kind: 'file' | 'block' | 'usb';
  /** `st_dev:st_ino` for files, `major:minor` for block devices, `port@lun` for USB readers. */
  readonly key: string;
  /** Files only: `major:minor` of the device holding the file system the file lives on. */
  readonly fsDevice?: string;
}

export interface BlockDeviceInfo {
  /** Human-readable origin: a path, `usb:1-1.4@lun=0`, … */
  readonly name: string;
  /** Backend kind, for reports. */
  readonly kind: 'image' | 'os-block' | 'usb' | 'memory' | 'region';
  /** Vendor/model/serial where the backend knows them. */
  readonly vendor?: string;
  readonly model?: string;
  readonly serial?: string;
  /** Set by backends that open an OS object or a reader (absent for memory and region devices). */
  readonly identity?: DeviceIdentity;
}

export interface BlockDevice {
  readonly info: BlockDeviceInfo;
  /** Size in bytes. */
  readonly size: number;
  /** Logical block size in bytes (512 for images). */
  readonly blockSize: number;
  /**
   * Offsets and lengths passed to read/write must be multiples of this (1 = any byte range).
   * Use `readRange`/`writeRange` from `io.ts` to access unaligned ranges on any backend.
   */
  readonly alignment: number;
  /** True when the device was opened read-only or the medium is write-protected. */
  readonly readOnly: boolean;
  /** Reads exactly `length` bytes at `offset`; a short read past the end is an IoError. */
  read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array>;
  /** Writes `data` at `offset`. Rejects with WriteProtectedError on read-only devices. */
  write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void>;
  /** Makes written data durable (fsync / SYNCHRONIZE CACHE). */
  flush(opts?: IoOptions): Promise<void>;
  close(): Promise<void>;
}
