/**
 * Tasks handed to the worker pool, taken back in the order they were handed out. `add` waits for
 * the oldest once more than `limit` are in flight: every worker stays busy, with one more queued
 * so a worker that finishes starts again at once, and the caller never runs ahead of the pool by
 * more than that.
 */
export class InOrderTasks<T> {
  private readonly inflight: Promise<T>[] = [];

  /** `onDone` sees each result in order; a rejection fails the `add` or `drain` that takes it back. */
  constructor(
    private readonly limit: number,
    private readonly onDone: (result: T) => void,
  ) {}

  async add(task: Promise<T>): Promise<void> {
    // Handled here so a failure while another task is awaited is not an unhandled rejection;
    // it still surfaces when its turn comes.
    task.catch(() => undefined);
    this.inflight.push(task);
    if (this.inflight.length > this.limit) await this.takeOldest();
  }

  /** Waits for every task, in order; rejects with the first failure met. */
  async drain(): Promise<void> {
    while (this.inflight.length > 0) await this.takeOldest();
  }

  /** Waits until none is still running, whatever their outcome (after a failure or a cancel). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inflight);
  }

  get size(): number {
    return this.inflight.length;
  }

  private async takeOldest(): Promise<void> {
    this.onDone(await (this.inflight.shift() as Promise<T>));
  }
}
