/** A FIFO lock: BOT allows one command at a time per device, so every exchange runs under it. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after every previously queued task has settled. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
