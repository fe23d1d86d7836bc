/**
 * Worker thread of the parallel bzip2 decoder (bzip2-parallel.ts): decodes one block at a
 * time, each wrapped as a one-block bzip2 stream, with libbzip2 compiled to WebAssembly
 * (@foxglove/wasm-bz2), which checks the block's CRC. The output size is not known ahead: a
 * first try allows twice the block size, a second the most one block can hold (runs of one byte).
 */
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';

export interface BlockJob {
  id: number;
  /** A one-block bzip2 stream. */
  stream: ArrayBuffer;
  /** Block size level, 1-9 (100 kB units). */
  level: number;
}
export type BlockResult = { id: number; output: ArrayBuffer; length: number } | { id: number; code: number; message: string };

interface Bzip2 {
  decompress(src: Uint8Array, destSize: number): Uint8Array;
}
const Bzip2 = createRequire(import.meta.url)('@foxglove/wasm-bz2') as { init(): Promise<Bzip2> };

/** libbzip2's BZ_OUTBUFF_FULL. */
const OUTBUFF_FULL = -8;

/** The failure code in @foxglove/wasm-bz2's error message ("BZ2 decompression failed: -4 (...)"). */
function codeOf(e: unknown): number {
  const m = /failed: (-?\d+)/.exec((e as Error)?.message ?? '');
  return m ? Number(m[1]) : 0;
}

const port = parentPort!;
const bz = await Bzip2.init();
port.on('message', (job: BlockJob) => {
  const src = new Uint8Array(job.stream);
  // bzip2's first run-length stage turns 4..255 equal bytes into 5, so a block of n bytes can hold up to n * 259 / 5
  const sizes = [job.level * 200_000, Math.ceil((job.level * 100_000 * 259) / 5) + 1024];
  for (const size of sizes) {
    try {
      const out = bz.decompress(src, size);
      const buf = out.buffer as ArrayBuffer;
      port.postMessage({ id: job.id, output: buf, length: out.length } satisfies BlockResult, [buf]);
      return;
    } catch (e) {
      const code = codeOf(e);
      if (code === OUTBUFF_FULL && size !== sizes[sizes.length - 1]) continue;
      port.postMessage({ id: job.id, code, message: (e as Error)?.message ?? String(e) } satisfies BlockResult);
      return;
    }
  }
});
