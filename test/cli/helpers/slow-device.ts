/**
 * Preload for CLI tests that interrupt the real command line (`node --import <this> bin/crashcart …`):
 * registers a `slow:` device opener — `slow:PATH` is the image file PATH, with every read,
 * write and flush taking CRASHCART_TEST_DELAY_MS milliseconds (default 100), so a flash or
 * read is still running when the test's signal arrives. Each transfer finishes once started,
 * as a USB transfer in flight would; the next one sees the abort.
 *
 * With CRASHCART_TEST_TRACE=1 every completed transfer prints `[slow] read|write|flush N` on
 * stderr, so a test can send its signal after the Nth one instead of sleeping.
 *
 * With CRASHCART_TEST_HANG=1 a read never completes and holds nothing that keeps node running
 * (a lost completion): the command's work stops without finishing.
 */
import type { IoOptions } from '../../../src/blockdev/block-device.js';
import { loadFront } from '../../../src/cli/front.js';
import { WrappedDevice } from '../../helpers/wrapped-device.js';

// The library as bin/crashcart's bundle holds it (the same registry of openers, the same error classes).
const { registerDeviceOpener, openImageFile } = await loadFront().library();

const delayMs = Number(process.env.CRASHCART_TEST_DELAY_MS ?? '100');
const trace = process.env.CRASHCART_TEST_TRACE === '1';
const counts = { read: 0, write: 0, flush: 0 };
const done = (op: keyof typeof counts) => {
  counts[op]++;
  if (trace) process.stderr.write(`[slow] ${op} ${counts[op]}\n`);
};
const hang = process.env.CRASHCART_TEST_HANG === '1';
const pause = () => (delayMs > 0 ? new Promise<void>((r) => setTimeout(r, delayMs)) : Promise.resolve());

class SlowDevice extends WrappedDevice {
  override async read(offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
    opts?.signal?.throwIfAborted();
    if (hang) await new Promise<never>(() => undefined);
    await pause();
    const data = await this.inner.read(offset, length);
    done('read');
    return data;
  }
  override async write(offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    await pause();
    await this.inner.write(offset, data);
    done('write');
  }
  override async flush(opts?: IoOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    await pause();
    await this.inner.flush();
    done('flush');
  }
}

registerDeviceOpener('slow:', async (spec, o) => new SlowDevice(await openImageFile(spec.slice('slow:'.length), { write: o.write === true }), spec));
