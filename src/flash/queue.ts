/**
 * A bounded single-consumer queue between the decompressing producer and one destination's
 * writer. `push` waits while the queue is full, so the slowest live destination sets the pace
 * and memory stays at (depth × chunk size) per destination. A destination that failed is
 * `kill`ed: pushes to it return at once and its backlog is dropped, so it never holds up the
 * others.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private popWaiter?: () => void;
  private pushWaiters: (() => void)[] = [];
  private closed = false;
  private dead = false;
  /** Set by `close(err)`: why no more items will come (the source failed). */
  error?: unknown;

  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.items.length;
  }

  get isDead(): boolean {
    return this.dead;
  }

  async push(item: T): Promise<void> {
    while (!this.dead && this.items.length >= this.capacity) {
      await new Promise<void>((r) => this.pushWaiters.push(r));
    }
    if (this.dead) return;
    this.items.push(item);
    const w = this.popWaiter;
    this.popWaiter = undefined;
    w?.();
  }

  /** Next item, or null once the queue is closed and drained (or killed). */
  async pop(): Promise<T | null> {
    while (this.items.length === 0) {
      if (this.closed || this.dead) return null;
      await new Promise<void>((r) => (this.popWaiter = r));
    }
    const item = this.items.shift() as T;
    this.pushWaiters.shift()?.();
    return item;
  }

  close(err?: unknown): void {
    this.closed = true;
    if (err !== undefined) this.error = err;
    const w = this.popWaiter;
    this.popWaiter = undefined;
    w?.();
  }

  kill(): void {
    this.dead = true;
    this.items = [];
    for (const w of this.pushWaiters.splice(0)) w();
    const w = this.popWaiter;
    this.popWaiter = undefined;
    w?.();
  }
}
