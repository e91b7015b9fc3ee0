import { isTerminal, type LogEntry } from '../domain/task.js';
import { LogBus, type LogSubscriber } from '../logbus/logbus.js';
import type { Store } from '../store/store.js';

/** Entries read per poll of a followed task. */
const PAGE = 500;

interface Follow {
  /** The last entry handed to the task's followers. */
  seen: number;
  timer: NodeJS.Timeout;
}

/**
 * The log bus of a cluster node: a task's log may be written by any node (the one running it, a
 * sweep that re-queued it, a cancel), so followers here also get what the store has beyond what
 * they were handed — read every `pollMs` while anyone follows the task, and whenever an entry
 * arrives out of turn. Entries reach followers once each and in sequence order, with no gap; when
 * the task has ended (on whichever node), followers get its final status.
 */
export class ClusterLogBus extends LogBus {
  private readonly follows = new Map<string, Follow>();

  constructor(
    private readonly logs: Store,
    private readonly pollMs: number,
  ) {
    super(logs);
  }

  override subscribe(taskId: string, sub: LogSubscriber, after = 0): () => void {
    const unsubscribe = super.subscribe(taskId, sub, after);
    const f = this.follows.get(taskId);
    if (f) f.seen = Math.min(f.seen, after);
    else {
      const timer = setInterval(() => void this.enqueue(taskId, () => this.catchUp(taskId)), this.pollMs);
      timer.unref();
      this.follows.set(taskId, { seen: after, timer });
    }
    return () => {
      unsubscribe();
      const still = this.follows.get(taskId);
      if (still && !this.hasSubscribers(taskId)) {
        clearInterval(still.timer);
        this.follows.delete(taskId);
      }
    };
  }

  protected override async deliver(taskId: string, entry: LogEntry): Promise<void> {
    const f = this.follows.get(taskId);
    if (!f) return this.publish(taskId, entry);
    if (entry.seq <= f.seen) return;
    if (entry.seq === f.seen + 1) {
      f.seen = entry.seq;
      return this.publish(taskId, entry);
    }
    // Entries written elsewhere come first: read up to (and with) this one from the store.
    await this.catchUp(taskId);
  }

  /** Hands on what the store has after `seen`; then, if the task has ended, its final status. */
  private async catchUp(taskId: string): Promise<void> {
    const f = this.follows.get(taskId);
    if (!f) return;
    try {
      let page: LogEntry[];
      do {
        page = await this.logs.readLogs(taskId, f.seen, PAGE);
        for (const e of page) {
          f.seen = e.seq;
          this.publish(taskId, e);
        }
      } while (page.length === PAGE);
      const task = await this.logs.getTask(taskId);
      if (!task) this.publishFinish(taskId, { status: 'cancelled', message: 'task deleted' });
      else if (isTerminal(task.status)) {
        this.publishFinish(taskId, { status: task.status, message: task.error ?? task.message });
      }
    } catch {
      // The store is unreachable: the next poll tries again.
    }
  }
}
