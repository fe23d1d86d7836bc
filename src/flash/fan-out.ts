/**
 * Fan-out: the last producer stage. Each piece of image data that is to be written is recorded
 * as a digest (for read-back verification) and pushed to every live destination's bounded
 * queue; the push waits for the slowest one, which sets the pace. A card the data runs past the
 * end of is dropped here, before its queue would take the piece.
 */
import { createHash } from 'node:crypto';
import { formatBytes } from '../util/format-bytes.js';
import type { Destination, DigestEntry } from './destination.js';
import { RefusedError } from './errors.js';

export class FanOut {
  /** Digests of every piece dispatched, in order (empty without verification). */
  readonly digests: DigestEntry[] = [];

  constructor(
    private readonly dests: Destination[],
    private readonly recordDigests: boolean,
  ) {}

  get anyLive(): boolean {
    return this.dests.some((d) => d.live);
  }

  /** Sends `data` (image bytes at `start`) to every live destination. */
  async dispatch(start: number, data: Uint8Array): Promise<void> {
    if (this.recordDigests) this.digests.push({ start, end: start + data.length, digest: createHash('sha256').update(data).digest() });
    this.dropOverrun(start + data.length);
    await Promise.all(this.dests.filter((d) => d.live).map((d) => d.queue.push({ start, data })));
  }

  /** The image ended: each queue delivers what it holds, then ends (with `error`: fails instead). */
  close(error?: unknown): void {
    for (const d of this.dests) d.queue.close(error);
  }

  /** The flash was stopped: every live destination fails with `reason`. */
  cancel(reason: unknown): void {
    for (const d of this.dests) if (d.live) d.fail(reason);
  }

  /** Fails the live destinations that end before `end`. */
  private dropOverrun(end: number): void {
    for (const d of this.dests.filter((d) => d.live)) {
      if (end > d.dev.size) {
        d.fail(
          new RefusedError(
            `${d.name}: the image is larger than the card (${d.dev.size} bytes, ${formatBytes(d.dev.size)}): the data goes on past its end; the first MiB was not written, so the card will not boot`,
          ),
        );
      }
    }
  }
}
