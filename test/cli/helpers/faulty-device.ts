/**
 * Preload for CLI tests of the exit-code classes (`node --import <this> bin/crashcart …`):
 * registers a `faulty:` device opener — `faulty:PATH` is the image file PATH where every read or
 * write touching bytes from CRASHCART_TEST_FAULT_OFFSET (default 1 MiB) on fails with an IoError
 * of the failure kind CRASHCART_TEST_FAULT (`medium`: a bad block, as a SCSI MEDIUM ERROR or EIO
 * reports it; `gone`: the reader went away).
 */
import type { IoOptions } from '../../../src/blockdev/block-device.js';
import type { DeviceFailure } from '../../../src/errors.js';
import { loadFront } from '../../../src/cli/front.js';
import { WrappedDevice } from '../../helpers/wrapped-device.js';

// The library as bin/crashcart's bundle holds it (the same registry of openers, the same error classes).
const { registerDeviceOpener, openImageFile, IoError } = await loadFront().library();

const failure = (process.env.CRASHCART_TEST_FAULT ?? 'medium') as DeviceFailure;
const from = Number(process.env.CRASHCART_TEST_FAULT_OFFSET ?? 1024 * 1024);

class FaultyDevice extends WrappedDevice {
  private check(op: string, offset: number, length: number): void {
    if (offset + length > from) throw new IoError(`${op} of ${length} bytes at offset ${offset} failed (test fault: ${failure})`, { failure });
  }
  override async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    this.check('read', offset, length);
    return this.inner.read(offset, length, opts);
  }
  override async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    this.check('write', offset, data.length);
    return this.inner.write(offset, data, opts);
  }
}

registerDeviceOpener('faulty:', async (spec, o) => new FaultyDevice(await openImageFile(spec.slice('faulty:'.length), { write: o.write === true }), spec));
