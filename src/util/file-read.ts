// Positioned reads of a file and little-endian fields, shared by the image format readers.
import type { FileHandle } from 'node:fs/promises';

/** Up to `len` bytes at `pos`: fewer only where the file ends first. */
export async function readAt(fh: FileHandle, pos: number, len: number): Promise<Uint8Array> {
  const buf = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === len ? buf : buf.subarray(0, done);
}

export const u16le = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
export const u32le = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
/** A 64-bit field as a number (exact below 2^53). */
export const u64le = (b: Uint8Array, o: number): number => u32le(b, o) + u32le(b, o + 4) * 0x100000000;
