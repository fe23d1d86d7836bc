/**
 * Worker thread of KmsgDecodePool (kmsg-decode-pool.ts): decompresses a batch of compressed
 * dmesg payloads with the same code and the same codec preference as the main thread would
 * (decompressPreferring), and sends back every result, each output in an ArrayBuffer of its own
 * (transferred, not copied).
 */
import { parentPort } from 'node:worker_threads';
import type { CodecName, DecompressResult } from './codecs/index.js';
import { decompressPreferring } from './kmsg-decompressor.js';

export interface KmsgBatch {
  id: number;
  /** The payloads, one after the other. */
  input: ArrayBuffer;
  /** Where each payload lies in `input`, and its output limit. */
  jobs: { at: number; length: number; maxOutput: number }[];
  preferred: CodecName | undefined;
}

export interface KmsgBatchResult {
  id: number;
  results: DecompressResult[];
}

/** `data` in an ArrayBuffer of its own: as it is when it fills one, else copied out of the larger one. */
function owned(data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
}

const port = parentPort!;
port.on('message', (b: KmsgBatch) => {
  const input = new Uint8Array(b.input);
  const transfer: ArrayBuffer[] = [];
  const results = b.jobs.map((j): DecompressResult => {
    const r = decompressPreferring(input.subarray(j.at, j.at + j.length), j.maxOutput, b.preferred);
    if (!r.ok) return r;
    const data = owned(r.data);
    transfer.push(data.buffer as ArrayBuffer);
    return { ...r, data };
  });
  port.postMessage({ id: b.id, results } satisfies KmsgBatchResult, transfer);
});
