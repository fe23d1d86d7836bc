import type { BlockDevice, IoOptions } from './block-device.js';

/** Reads any byte range from a device, widening to the device's alignment when needed. */
export async function readRange(dev: BlockDevice, offset: number, length: number, opts?: IoOptions): Promise<Uint8Array> {
  const a = dev.alignment;
  if (a <= 1 || (offset % a === 0 && length % a === 0)) return dev.read(offset, length, opts);
  const start = offset - (offset % a);
  const end = Math.min(dev.size, Math.ceil((offset + length) / a) * a);
  const buf = await dev.read(start, end - start, opts);
  return buf.subarray(offset - start, offset - start + length);
}

/** Writes any byte range to a device, doing read-modify-write of partial blocks when needed. */
export async function writeRange(dev: BlockDevice, offset: number, data: Uint8Array, opts?: IoOptions): Promise<void> {
  const a = dev.alignment;
  if (a <= 1 || (offset % a === 0 && data.length % a === 0)) return dev.write(offset, data, opts);
  const start = offset - (offset % a);
  const end = Math.ceil((offset + data.length) / a) * a;
  const buf = new Uint8Array(end - start);
  buf.set(await dev.read(start, end - start, opts));
  buf.set(data, offset - start);
  return dev.write(start, buf, opts);
}

/**
 * Runs `writes` and then flushes `dev`. When the writes stop early (an abort at a safe point,
 * an error) what they did write is still flushed before the error goes on: an interrupted
 * command leaves the device in a known state.
 */
export async function flushedEvenIfStopped(dev: BlockDevice, writes: () => Promise<void>): Promise<void> {
  try {
    await writes();
  } catch (e) {
    await dev.flush().catch(() => undefined);
    throw e;
  }
  await dev.flush();
}
