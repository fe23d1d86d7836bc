/**
 * Worker-thread entry of the off-thread decoder (decode-off-thread.ts): decodes one file with
 * decompressFile and posts the output in OUT_CHUNK pieces, each a transferred ArrayBuffer, at
 * most as many ahead of the reader as it has granted credits for. Failures are posted as their
 * message (the reader rebuilds the SourceError); warnings and the compressed bytes read go
 * along with the data.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ImageFormat } from './detect.js';
import { decompressFile } from './decompress.js';
import { SourceError } from './errors.js';
import type { FromDecoder, ToDecoder } from './decode-off-thread.js';

/** Bytes per message to the reader. */
const OUT_CHUNK = 1024 * 1024;

const port = parentPort!;
const { path, format } = workerData as { path: string; format: ImageFormat };
const post = (m: FromDecoder, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

let credits = 0;
let wake: (() => void) | undefined;
port.on('message', (m: ToDecoder) => {
  credits += m.credits;
  const w = wake;
  wake = undefined;
  w?.();
});

let input = 0;
let cur = new Uint8Array(OUT_CHUNK);
let fill = 0;

async function send(): Promise<void> {
  while (credits === 0) await new Promise<void>((r) => (wake = r));
  credits--;
  const buf = cur.buffer as ArrayBuffer;
  post({ type: 'data', buffer: buf, length: fill, input }, [buf]);
  cur = new Uint8Array(OUT_CHUNK);
  fill = 0;
}

try {
  const opts = { onInput: (n: number) => (input = n), onWarning: (message: string) => post({ type: 'warning', message }) };
  for await (let c of decompressFile(path, format, opts)) {
    while (c.length > 0) {
      const n = Math.min(OUT_CHUNK - fill, c.length);
      cur.set(c.subarray(0, n), fill);
      fill += n;
      c = c.subarray(n);
      if (fill === OUT_CHUNK) await send();
    }
  }
  if (fill > 0) await send();
  post({ type: 'end', input });
} catch (e) {
  post({ type: 'error', message: e instanceof SourceError ? e.message : `${path}: ${(e as Error)?.message ?? String(e)}` });
}
