import { isTerminal, type LogEntry } from '../domain/task.js';
import { LogBus, type LogSubscriber } from '../logbus/logbus.js';
import type { Store } from '../store/store.js';

/** Entries read per poll of a followed task. */
const PAGE = 500;

interface Follow {
  /** The last entry handed to the task's followers. */
  seen: number;
  timer: NodeJS.Timeout;
  /** A catch-up is queued or running: the timer does not queue another. */
  pending: boolean;
  /** The task was seen ended at the previous catch-up (its last lines may still be on the way). */
  endedAt: { status: string; message: string | null } | null;
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
      const timer = setInterval(() => this.tick(taskId), this.pollMs);
      timer.unref();
      this.follows.set(taskId, { seen: after, timer, pending: false, endedAt: null });
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

  private tick(taskId: string): void {
    const f = this.follows.get(taskId);
    if (!f || f.pending) return;
    f.pending = true;
    void this.enqueue(taskId, () => this.catchUp(taskId)).finally(() => (f.pending = false));
  }

  /**
   * Hands on what the store has after `seen`. A task seen ended gets its final status one
   * catch-up later, with nothing new read in between: the node that ran it writes its last log
   * line just after the final status.
   */
  private async catchUp(taskId: string): Promise<void> {
    const f = this.follows.get(taskId);
    if (!f) return;
    try {
      const task = await this.logs.getTask(taskId);
      let fresh = 0;
      let page: LogEntry[];
      do {
        page = await this.logs.readLogs(taskId, f.seen, PAGE);
        for (const e of page) {
          f.seen = e.seq;
          this.publish(taskId, e);
        }
        fresh += page.length;
      } while (page.length === PAGE);
      const ended = !task
        ? { status: 'cancelled' as const, message: 'task deleted' }
        : isTerminal(task.status)
          ? { status: task.status, message: task.error ?? task.message }
          : null;
      if (ended && f.endedAt && fresh === 0) this.publishFinish(taskId, ended);
      f.endedAt = ended;
    } catch {
      // The store is unreachable: the next poll tries again.
    }
  }
}
