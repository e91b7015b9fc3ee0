import type { LogEntry, NewLogEntry, TaskStatus } from '../domain/task.js';
import type { Store } from '../store/store.js';

export interface FinalStatus {
  status: TaskStatus;
  message: string | null;
}

export interface LogSubscriber {
  onEntry(entry: LogEntry): void;
  onFinish(final: FinalStatus): void;
}

/**
 * Task log entries go to the store first, then to live subscribers (SSE streams, the CLI, the
 * dashboard). Appends for one task are chained so subscribers see them in sequence order even with
 * an asynchronous store; the final status is sent through the same chain, after the last entry.
 */
export class LogBus {
  private readonly subs = new Map<string, Set<LogSubscriber>>();
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly store: Store) {}

  append(taskId: string, entry: NewLogEntry): Promise<LogEntry> {
    return this.enqueue(taskId, async () => {
      const saved = await this.store.appendLog(taskId, entry);
      await this.deliver(taskId, saved);
      return saved;
    });
  }

  /** Tells followers the task has ended; sent after every entry appended before this call. */
  finish(taskId: string, final: FinalStatus): Promise<void> {
    return this.enqueue(taskId, async () => this.publishFinish(taskId, final));
  }

  /**
   * Follows a task's log. `after` is the last entry the subscriber has (its resume point): a bus
   * that also learns of entries written elsewhere (ClusterLogBus) reads on from there.
   */
  subscribe(taskId: string, sub: LogSubscriber, after = 0): () => void {
    void after;
    let set = this.subs.get(taskId);
    if (!set) {
      set = new Set();
      this.subs.set(taskId, set);
    }
    set.add(sub);
    return () => {
      const s = this.subs.get(taskId);
      if (!s) return;
      s.delete(sub);
      if (s.size === 0) this.subs.delete(taskId);
    };
  }

  /** Number of live followers across all tasks. */
  get subscriberCount(): number {
    let n = 0;
    for (const s of this.subs.values()) n += s.size;
    return n;
  }

  /** Resolves when every append queued so far for one task has been written (or has failed). */
  async settled(taskId: string): Promise<void> {
    await this.chains.get(taskId);
  }

  /** Resolves when every append queued so far has been written. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
  }

  /** Hands a stored entry to the task's followers (in its chain, so in sequence order). */
  protected async deliver(taskId: string, entry: LogEntry): Promise<void> {
    this.publish(taskId, entry);
  }

  protected publish(taskId: string, entry: LogEntry): void {
    for (const s of this.subs.get(taskId) ?? []) s.onEntry(entry);
  }

  protected publishFinish(taskId: string, final: FinalStatus): void {
    for (const s of this.subs.get(taskId) ?? []) s.onFinish(final);
  }

  protected hasSubscribers(taskId: string): boolean {
    return (this.subs.get(taskId)?.size ?? 0) > 0;
  }

  /** Runs `fn` after everything queued for the task so far. */
  protected enqueue<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(taskId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.chains.set(taskId, tail);
    void tail.then(() => {
      if (this.chains.get(taskId) === tail) this.chains.delete(taskId);
    });
    return next;
  }
}
