/** A BlockDevice that hands every call to `inner`; test devices extend it and override what they watch or change. */
import type { BlockDevice, BlockDeviceInfo, IoOptions } from '../../src/blockdev/block-device.js';

export class WrappedDevice implements BlockDevice {
  readonly info: BlockDeviceInfo;
  constructor(
    readonly inner: BlockDevice,
    /** Name to report instead of the inner device's. */
    name?: string,
  ) {
    this.info = name === undefined ? inner.info : { ...inner.info, name };
  }
  get size() {
    return this.inner.size;
  }
  get blockSize() {
    return this.inner.blockSize;
  }
  get alignment() {
    return this.inner.alignment;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    return this.inner.read(offset, length, opts);
  }
  write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    return this.inner.write(offset, data, opts);
  }
  flush(opts?: IoOptions): Promise<void> {
    return this.inner.flush(opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
