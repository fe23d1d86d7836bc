/**
 * Compressed dmesg payloads decoded on worker threads (kmsg-decode-worker.ts), so that a region
 * of thousands of dumps is inflated on every core while the main thread reads the region and
 * scans it. Each batch goes to the worker with the fewest batches in hand; the workers start
 * with the first batch, so a region with few dumps never starts one. A worker that fails
 * rejects its batches, and the caller decodes them itself.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CodecName, DecompressResult } from './codecs/index.js';
import type { KmsgBatch, KmsgBatchResult } from './kmsg-decode-worker.js';

export interface KmsgJob {
  payload: Uint8Array;
  maxOutput: number;
}

/** Workers a pool starts by default: one per core, at most 4; none on a single core. */
export function defaultDecodeThreads(): number {
  const cores = availableParallelism();
  return cores > 1 ? Math.min(cores, 4) : 0;
}

interface Slot {
  worker: Worker;
  batches: Set<number>;
}

export class KmsgDecodePool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (r: DecompressResult[]) => void; reject: (e: Error) => void }>();
  private ids = 0;
  private closed = false;

  constructor(private readonly threads: number) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`a decode pool needs at least one thread, got ${threads}`);
  }

  /** Decodes the payloads as `decompressPreferring(payload, maxOutput, preferred)` would, in order. */
  decode(jobs: KmsgJob[], preferred: CodecName | undefined): Promise<DecompressResult[]> {
    if (this.closed) return Promise.reject(new Error('decode pool closed'));
    if (this.slots.length === 0) for (let i = 0; i < this.threads; i++) this.slots.push(this.start());
    const slot = this.slots.reduce((a, b) => (b.batches.size < a.batches.size ? b : a));
    let size = 0;
    for (const j of jobs) size += j.payload.length;
    const input = new Uint8Array(size);
    const placed: KmsgBatch['jobs'] = [];
    let at = 0;
    for (const j of jobs) {
      input.set(j.payload, at);
      placed.push({ at, length: j.payload.length, maxOutput: j.maxOutput });
      at += j.payload.length;
    }
    const id = this.ids++;
    const p = new Promise<DecompressResult[]>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    slot.batches.add(id);
    slot.worker.postMessage({ id, input: input.buffer, jobs: placed, preferred } satisfies KmsgBatch, [input.buffer]);
    return p;
  }

  private start(): Slot {
    const worker = new Worker(new URL('./kmsg-decode-worker.js', import.meta.url), { execArgv: [] });
    const slot: Slot = { worker, batches: new Set() };
    worker.on('message', (r: KmsgBatchResult) => {
      slot.batches.delete(r.id);
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r.results);
    });
    const fail = (e: Error) => {
      for (const id of slot.batches) {
        this.pending.get(id)?.reject(e);
        this.pending.delete(id);
      }
      slot.batches.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`decode worker exited (code ${code})`)));
    return slot;
  }

  /** Stops the workers; batches still in hand are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
