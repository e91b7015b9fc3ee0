import { isTerminal, type LogEntry, type NewLogEntry } from '../domain/task.js';
import { LogBus, type FinalStatus, type LogSubscriber } from '../logbus/logbus.js';
import type { Store } from '../store/store.js';

/** Entries read per poll of a followed task. */
const PAGE = 500;
/** A batch is written early once it holds this many entries. */
const BATCH_MAX = 200;

/** A store that takes several log entries of one task in one write (FencedStore). */
export interface BatchLogStore extends Store {
  appendLogs(taskId: string, entries: readonly NewLogEntry[]): Promise<LogEntry[]>;
}

export interface ClusterLogBusOptions {
  /** How long entries of one task gather before they are written together. */
  batchMs: number;
  /** How often a followed task's log is read for what other nodes wrote (a backstop for poke). */
  pollMs: number;
  /** Entries of the task were written (tell the other nodes), or its log has ended (`ended`). */
  written?(taskId: string, ended: boolean): void;
}

/** Entries waiting to be written together, with the callers waiting for them. */
interface Batch {
  items: { entry: NewLogEntry; resolve(e: LogEntry): void; reject(err: unknown): void }[];
  /** Ends the wait: write now (a flush, the task's end, a full batch). */
  kick(): void;
  kicked: Promise<void>;
}

interface Follow {
  /** The last entry handed to the task's followers. */
  seen: number;
  timer: NodeJS.Timeout;
  /** A catch-up is queued or running: the timer does not queue another. */
  pending: boolean;
  /** The task was seen ended at the previous catch-up (its last lines may still be on the way). */
  endedAt: { status: string; message: string | null } | null;
  /** The node that ran the task said its log is complete: an end seen needs no second look. */
  complete: boolean;
  /** Asked again while a catch-up was under way: run another after it. */
  again: boolean;
}

/**
 * The log bus of a cluster node. Writing: a task's entries gather for `batchMs` and go to the
 * store in one statement (a training run logs many lines a second; one commit, and one
 * notification to the other nodes, per batch), in the task's chain, so followers still see them
 * in order and the final status after the last of them. Reading: a task's log may be written by
 * any node (the one running it, a sweep that re-queued it, a cancel), so followers here also get
 * what the store has beyond what they were handed — read when another node says it wrote some
 * (`poke`, from its NOTIFY), every `pollMs` in case a notification was lost, and whenever an entry
 * arrives out of turn. Entries reach followers once each and in sequence order, with no gap; when
 * the task has ended (on whichever node), followers get its final status.
 */
export class ClusterLogBus extends LogBus {
  private readonly follows = new Map<string, Follow>();
  private readonly batches = new Map<string, Batch>();

  constructor(
    private readonly logs: BatchLogStore,
    private readonly opts: ClusterLogBusOptions,
  ) {
    super(logs);
  }

  override append(taskId: string, entry: NewLogEntry): Promise<LogEntry> {
    let batch = this.batches.get(taskId);
    if (!batch) {
      const fresh = newBatch();
      this.batches.set(taskId, fresh);
      void this.enqueue(taskId, () => this.writeBatch(taskId, fresh)).catch(() => undefined);
      batch = fresh;
    }
    const b = batch;
    const saved = new Promise<LogEntry>((resolve, reject) => b.items.push({ entry, resolve, reject }));
    if (b.items.length >= BATCH_MAX) {
      // Full: written as soon as its turn comes, and later entries begin the next batch.
      b.kick();
      if (this.batches.get(taskId) === b) this.batches.delete(taskId);
    }
    return saved;
  }

  /** After the last entry is written (at once, not at the end of the batch's wait). */
  override async finish(taskId: string, final: FinalStatus): Promise<void> {
    this.batches.get(taskId)?.kick();
    await super.finish(taskId, final);
    this.opts.written?.(taskId, true);
  }

  override settled(taskId: string): Promise<void> {
    this.batches.get(taskId)?.kick();
    return super.settled(taskId);
  }

  override flush(): Promise<void> {
    for (const b of this.batches.values()) b.kick();
    return super.flush();
  }

  /**
   * Another node wrote entries of these tasks (`ended`: their logs are complete): followers here
   * get them now rather than at the next poll.
   */
  poke(taskIds: readonly string[], ended: boolean): void {
    for (const id of taskIds) {
      const f = this.follows.get(id);
      if (!f) continue;
      if (ended) f.complete = true;
      this.tick(id);
    }
  }

  private async writeBatch(taskId: string, batch: Batch): Promise<void> {
    await Promise.race([batch.kicked, new Promise((r) => setTimeout(r, this.opts.batchMs))]);
    // Entries appended from now on gather in the next batch, written after this one.
    if (this.batches.get(taskId) === batch) this.batches.delete(taskId);
    let saved: LogEntry[];
    try {
      saved = await this.logs.appendLogs(
        taskId,
        batch.items.map((i) => i.entry),
      );
    } catch (err) {
      for (const i of batch.items) i.reject(err);
      return;
    }
    this.opts.written?.(taskId, false);
    for (const [n, e] of saved.entries()) {
      await this.deliver(taskId, e);
      batch.items[n]?.resolve(e);
    }
  }

  override subscribe(taskId: string, sub: LogSubscriber, after = 0): () => void {
    const unsubscribe = super.subscribe(taskId, sub, after);
    const f = this.follows.get(taskId);
    if (f) f.seen = Math.min(f.seen, after);
    else {
      const timer = setInterval(() => this.tick(taskId), this.opts.pollMs);
      timer.unref();
      this.follows.set(taskId, {
        seen: after,
        timer,
        pending: false,
        endedAt: null,
        complete: false,
        again: false,
      });
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
    if (!f) return;
    // A catch-up is under way: one more runs after it (what it read may predate this call).
    if (f.pending) {
      f.again = true;
      return;
    }
    f.pending = true;
    void this.enqueue(taskId, () => this.catchUp(taskId)).finally(() => {
      f.pending = false;
      if (f.again) {
        f.again = false;
        this.tick(taskId);
      }
    });
  }

  /**
   * Hands on what the store has after `seen`. A task seen ended gets its final status once its
   * node said its log is complete, or else one catch-up later with nothing new read in between:
   * the node that ran it writes its last log line just after the final status.
   */
  private async catchUp(taskId: string): Promise<void> {
    const f = this.follows.get(taskId);
    if (!f) return;
    // Taken before the reads: a "complete" that arrives during them may describe lines they missed.
    const complete = f.complete;
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
      if (ended && (complete || (f.endedAt && fresh === 0))) this.publishFinish(taskId, ended);
      f.endedAt = ended;
    } catch {
      // The store is unreachable: the next poll tries again.
    }
  }
}

function newBatch(): Batch {
  let kick = () => {};
  const kicked = new Promise<void>((r) => (kick = r));
  return { items: [], kick, kicked };
}
