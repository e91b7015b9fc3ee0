import type {
  EpochMetrics,
  LogEntry,
  NewLogEntry,
  NewTask,
  TaskKind,
  TaskPatch,
  TaskRecord,
  TaskStatus,
} from '../domain/task.js';
import type { QuotaOverride } from '../domain/users.js';

export type UnfinishedTask = Pick<
  TaskRecord,
  | 'task_id'
  | 'task_type'
  | 'status'
  | 'priority'
  | 'device_request'
  | 'device'
  | 'gpu_memory_gb'
  | 'attempts'
  | 'enqueued_at'
  | 'owner'
>;

export interface TaskFilter {
  status?: TaskStatus;
  kinds?: readonly TaskKind[];
  /** Only tasks whose id starts with this (exactly, case included). */
  idPrefix?: string;
  limit: number;
  /** Skips this many of the newest matches first (a page further down the list). */
  offset?: number;
  /** Only tasks created before this one (the next page after it, however many were created since). */
  beforeId?: string;
  /** Only this user's tasks. */
  owner?: string;
}

export interface KindStatusCount {
  task_type: TaskKind;
  status: TaskStatus;
  n: number;
}

export interface UsageCharge {
  user: string;
  amount: number;
}

export interface UsageRecord {
  user: string;
  usage: number;
  /** ms since the epoch */
  at: number;
}

export interface OwnerStatusCount {
  owner: string | null;
  status: TaskStatus;
  n: number;
}

/** Persisted overrides of the slot limits: device key ("cpu", "cuda:0", "gpu") → class → n. */
export type LimitOverrides = Record<string, Record<string, number>>;

/**
 * The narrow seam between the service and its database. Every method commits before it resolves,
 * so a status change that a caller reports has already been written. Implementations: SQLite
 * (embedded, default) and PostgreSQL (cluster); both must pass test/store-conformance.ts.
 */
export interface Store {
  readonly dialect: string;
  /**
   * Creates the task, with its first log entries (seq 1, 2, …) in the same write, so a task is
   * never seen without the line that says it was accepted; rejects with a `conflict` AppError when
   * the id already exists (and then writes no entry).
   */
  createTask(task: NewTask, firstLog?: readonly NewLogEntry[]): Promise<TaskRecord>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /**
   * Applies `patch` when the task's current status is one of `fromStatuses` (any status when
   * omitted). Returns the updated task, or undefined when the task is missing or in another status:
   * this compare-and-set is what keeps two racing transitions from both winning.
   */
  updateTask(
    id: string,
    patch: TaskPatch,
    fromStatuses?: readonly TaskStatus[],
  ): Promise<TaskRecord | undefined>;
  listTasks(filter: TaskFilter): Promise<TaskRecord[]>;
  /**
   * Tasks in pending, queued or running, oldest first: what a restart must pick up again. Only
   * the fields scheduling needs, so a restart with 100 000 waiting tasks stays cheap.
   */
  listUnfinished(): Promise<UnfinishedTask[]>;
  countByKindAndStatus(): Promise<KindStatusCount[]>;
  /** How many tasks one user has of these kinds (and this status): a filtered list's total. */
  countTasksOf(owner: string, kinds: readonly TaskKind[], status?: TaskStatus): Promise<number>;
  /**
   * GPU-seconds per owner between two times (ISO): each task on a GPU counts the part of its run
   * (started_at to finished_at, or to `until` while it runs) inside the window.
   */
  gpuSecondsBetween(since: string, until: string): Promise<{ owner: string; seconds: number }[]>;
  /** A user's tasks that wait (pending or queued): what the queued quota counts. */
  countWaitingOf(owner: string): Promise<number>;
  /** Unfinished tasks (pending, queued, running) per owner and status (users, /metrics). */
  countUnfinishedByOwner(): Promise<OwnerStatusCount[]>;
  /**
   * The fair-share ledger (scheduler/fair-share.ts): adds each charge to its user's usage, after
   * decaying the stored usage to `now` with `halfLifeMs`, and returns every user's usage as of
   * `now`. Additive, so nodes charging at once never overwrite each other.
   */
  chargeUsage(charges: readonly UsageCharge[], now: number, halfLifeMs: number): Promise<UsageRecord[]>;
  /** Deletes a task with its logs and metrics; false when it did not exist. */
  deleteTask(id: string): Promise<boolean>;

  /** Appends a log entry and returns it with its per-task sequence number (1, 2, 3, …). */
  appendLog(taskId: string, entry: NewLogEntry): Promise<LogEntry>;
  /** Entries with seq > afterSeq, in order, at most `limit`. */
  readLogs(taskId: string, afterSeq: number, limit: number): Promise<LogEntry[]>;

  /** Records one epoch's metrics; writing the same epoch again replaces it (resume is idempotent). */
  putEpochMetrics(taskId: string, metrics: EpochMetrics): Promise<void>;
  /** Removes epochs after `lastEpoch` (used when a resumed run restarts from an earlier checkpoint). */
  truncateEpochMetrics(taskId: string, lastEpoch: number): Promise<void>;
  getEpochMetrics(taskId: string): Promise<EpochMetrics[]>;

  getLimitOverrides(): Promise<LimitOverrides>;
  setLimitOverrides(overrides: LimitOverrides): Promise<void>;

  /** The admins' quota overrides, by user (domain/users.ts QuotaOverride). */
  getQuotaOverrides(): Promise<Record<string, QuotaOverride>>;
  /** Replaces one user's override; null removes it (back to the configured quotas). */
  setQuotaOverride(user: string, override: QuotaOverride | null): Promise<void>;

  /** Resolves when the store answers; rejects otherwise (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Another service holds the database (one service per SQLite home, or per PostgreSQL database). */
export class StoreLockedError extends Error {
  constructor(what: string, otherwise: string) {
    super(`another RFUAV service is already using ${what}; stop it first or ${otherwise}`);
    this.name = 'StoreLockedError';
  }
}

/**
 * True for driver errors that mean "the database cannot serve now" (locked, I/O error, disk full,
 * connection lost) rather than a bug: the HTTP layer answers these with 503.
 */
export function isStoreUnavailable(err: unknown): boolean {
  // node-postgres reports a connection lost mid-query, or never made, without a code.
  if (
    err instanceof Error &&
    /database connection is not open|Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end/.test(
      err.message,
    )
  )
    return true;
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  return (
    /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|NOTADB|CORRUPT)/.test(code) ||
    UNAVAILABLE_CODES.has(code)
  );
}

/** Error codes that mean the store cannot be reached now, not that the request was wrong. */
const UNAVAILABLE_CODES = new Set([
  ...[
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
    'ENOTFOUND',
    'EAI_AGAIN',
    'EHOSTUNREACH',
    'ENETUNREACH',
  ],
  // PostgreSQL: shutting down, starting up, too many connections, connection failures.
  ...['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006'],
]);
