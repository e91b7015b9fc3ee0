import type { TaskStatus } from '../domain/task.js';

/**
 * Stored tasks by kind and status, kept in step with every committed transition, so totals and
 * gauges never count rows. Loaded from the store at start.
 */
export class TaskCounts {
  private readonly counts = new Map<string, number>();

  /** Replaces every count with the stored ones. */
  load(rows: readonly { task_type: string; status: string; n: number }[]): void {
    this.counts.clear();
    for (const c of rows) this.counts.set(key(c.task_type, c.status), c.n);
  }

  /** A task of `kind` moved from one status to another (null: created, or deleted). */
  bump(kind: string, from: TaskStatus | null, to: TaskStatus | null): void {
    if (from) this.counts.set(key(kind, from), Math.max(0, (this.counts.get(key(kind, from)) ?? 0) - 1));
    if (to) this.counts.set(key(kind, to), (this.counts.get(key(kind, to)) ?? 0) + 1);
  }

  /** Tasks of the given kinds, with `status` if given. */
  total(kinds: readonly string[], status?: string): number {
    let n = 0;
    for (const { kind, status: s, n: count } of this.rows()) {
      if (kinds.includes(kind) && (!status || s === status)) n += count;
    }
    return n;
  }

  rows(): { kind: string; status: string; n: number }[] {
    return [...this.counts].map(([k, n]) => {
      const [kind, status] = k.split('\u0000') as [string, string];
      return { kind, status, n };
    });
  }

  /** Waiting tasks per kind. */
  waitingByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { kind, status, n } of this.rows()) {
      if ((status === 'pending' || status === 'queued') && n > 0) out[kind] = (out[kind] ?? 0) + n;
    }
    return out;
  }
}

function key(kind: string, status: string): string {
  return `${kind}\u0000${status}`;
}
