/**
 * Worker-thread entry of the off-thread decoder (decode-off-thread.ts): decodes one file with
 * decompressFile and posts the output in pieces of at most `chunkSize` bytes, each a
 * transferred ArrayBuffer, at most as many ahead of the reader as it has granted credits for.
 * Failures are posted as their message (the reader rebuilds the SourceError); warnings and the
 * compressed bytes read go along with the data.
 *
 * With `mapped` byte ranges (a bmap's), only the bytes inside them are posted, each piece with
 * its image offset and cut at multiples of `chunkSize`; the rest is dropped here, never copied
 * or sent, and zstd frames that hold none of them are not even decoded (their declared size is
 * skipped). The end message tells the decoded size of the whole image, skipped frames included.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ImageFormat } from './detect.js';
import { decompressFile } from './decompress.js';
import { SourceError } from './errors.js';
import type { FromDecoder, ToDecoder, DecodeJob } from './decode-off-thread.js';
import { MappedRanges } from './mapped-ranges.js';

const port = parentPort!;
const { path, format, chunkSize, mapped } = workerData as DecodeJob & { format: ImageFormat };
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
let cur = new Uint8Array(chunkSize);
let fill = 0;
/** Image offset and length of each piece in `cur`, one after the other. */
let spans: number[] = [];

async function waitForCredit(): Promise<void> {
  while (credits === 0) await new Promise<void>((r) => (wake = r));
  credits--;
}

/** Posts the pieces gathered in `cur`. */
async function send(): Promise<void> {
  if (fill === 0) return;
  await waitForCredit();
  const buf = cur.buffer as ArrayBuffer;
  post({ type: 'data', buffer: buf, spans, input }, [buf]);
  cur = new Uint8Array(chunkSize);
  fill = 0;
  spans = [];
}

/** Copies `data` (image bytes at `offset`, at most up to the next multiple of chunkSize) as one piece. */
async function piece(offset: number, data: Uint8Array): Promise<void> {
  if (fill + data.length > chunkSize) await send();
  cur.set(data, fill);
  const last = spans.length - 2;
  // joined to the piece before it when it follows on within the same chunk
  if (last >= 0 && spans[last] + spans[last + 1] === offset && offset % chunkSize !== 0) spans[last + 1] += data.length;
  else spans.push(offset, data.length);
  fill += data.length;
  if (fill === chunkSize) await send();
}

/**
 * Takes decoded bytes `c` at image offset `pos`: copies the parts to send, cut at multiples of
 * chunkSize (`c` may be a view of the decoder's memory, valid until the decoder runs again).
 */
async function take(pos: number, c: Uint8Array, ranges: MappedRanges | undefined): Promise<void> {
  const end = pos + c.length;
  const parts = ranges ? ranges.within(pos, end) : [[pos, end]];
  for (const [s, e] of parts) {
    for (let a = s; a < e;) {
      const b = Math.min(e, (Math.floor(a / chunkSize) + 1) * chunkSize);
      await piece(a, c.subarray(a - pos, b - pos));
      a = b;
    }
  }
}

try {
  const ranges = mapped ? new MappedRanges(mapped) : undefined;
  let pos = 0;
  const opts = {
    chunkSize,
    borrowed: true,
    onInput: (n: number) => (input = n),
    onWarning: (message: string) => post({ type: 'warning', message }),
    ...(ranges
      ? {
          skipFrame: (start: number, length: number) => {
            if (ranges.within(start, start + length).length > 0) return false;
            pos = start + length;
            return true;
          },
        }
      : {}),
  };
  for await (const c of decompressFile(path, format, opts)) {
    await take(pos, c, ranges);
    pos += c.length;
  }
  await send();
  post({ type: 'end', input, decoded: pos });
} catch (e) {
  post({ type: 'error', message: e instanceof SourceError ? e.message : `${path}: ${(e as Error)?.message ?? String(e)}` });
}
