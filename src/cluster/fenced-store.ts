import type {
  EpochMetrics,
  LogEntry,
  NewLogEntry,
  NewTask,
  TaskPatch,
  TaskRecord,
  TaskStatus,
} from '../domain/task.js';
import type { QuotaOverride } from '../domain/users.js';
import type { Fence } from '../store/postgres/cluster.js';
import type { PgStore } from '../store/postgres/pg-store.js';
import type {
  KindStatusCount,
  LimitOverrides,
  OwnerStatusCount,
  Store,
  TaskFilter,
  UnfinishedTask,
  UsageCharge,
  UsageRecord,
} from '../store/store.js';

/** A write by this node for a task whose claim it has lost: nothing was written. */
export class FencedOutError extends Error {
  constructor(readonly taskId: string) {
    super(`task '${taskId}' is no longer this node's (its claim was lost): the write was dropped`);
    this.name = 'FencedOutError';
  }
}

/**
 * The Store a cluster node's service uses: the PostgreSQL store, with every write for a task this
 * node has claimed conditioned on the claim (owner + epoch, see ClusterQueue.fence). A write whose
 * fence no longer matches lands nowhere; `onFencedOut` is told, so the node stops that work. The
 * service itself is unchanged: it writes as it always does.
 */
export class FencedStore implements Store {
  readonly dialect: string;

  constructor(
    private readonly pg: PgStore,
    private readonly fenceOf: (taskId: string) => Fence | undefined,
    private readonly onFencedOut: (taskId: string) => void,
    /** Tasks became claimable (other nodes are told), or limits changed. */
    private readonly signal: (what: 'queue' | 'limits' | 'quotas', ids?: string[]) => void = () => {},
  ) {
    this.dialect = pg.dialect;
  }

  async createTask(task: NewTask, firstLog?: readonly NewLogEntry[]): Promise<TaskRecord> {
    const t = await this.pg.createTask(task, firstLog);
    if (t.status === 'queued') this.signal('queue', [t.task_id]);
    return t;
  }

  getTask(id: string): Promise<TaskRecord | undefined> {
    return this.pg.getTask(id);
  }

  async updateTask(
    id: string,
    patch: TaskPatch,
    fromStatuses?: readonly TaskStatus[],
  ): Promise<TaskRecord | undefined> {
    const fence = this.fenceOf(id);
    if (!fence) return this.queued(await this.pg.updateTask(id, patch, fromStatuses));
    const done = this.queued(await this.pg.updateFenced(id, fence, patch, fromStatuses));
    // Undefined is also a compare-and-set that found another status (a cancel won): only a
    // changed owner or epoch means the claim is gone.
    if (!done && !(await this.pg.isOwner(id, fence))) this.onFencedOut(id);
    return done;
  }

  listTasks(filter: TaskFilter): Promise<TaskRecord[]> {
    return this.pg.listTasks(filter);
  }

  /** A node starts with nothing of its own: what other nodes held is theirs, or the sweep's. */
  async listUnfinished(): Promise<UnfinishedTask[]> {
    return [];
  }

  countByKindAndStatus(): Promise<KindStatusCount[]> {
    return this.pg.countByKindAndStatus();
  }

  countUnfinishedByOwner(): Promise<OwnerStatusCount[]> {
    return this.pg.countUnfinishedByOwner();
  }

  chargeUsage(charges: readonly UsageCharge[], now: number, halfLifeMs: number): Promise<UsageRecord[]> {
    return this.pg.chargeUsage(charges, now, halfLifeMs);
  }

  gpuSecondsBetween(since: string, until: string): Promise<{ owner: string; seconds: number }[]> {
    return this.pg.gpuSecondsBetween(since, until);
  }

  countTasksOf(owner: string, kinds: readonly string[], status?: TaskStatus): Promise<number> {
    return this.pg.countTasksOf(owner, kinds, status);
  }

  countWaitingOf(owner: string): Promise<number> {
    return this.pg.countWaitingOf(owner);
  }

  deleteTask(id: string): Promise<boolean> {
    return this.pg.deleteTask(id);
  }

  async appendLog(taskId: string, entry: NewLogEntry): Promise<LogEntry> {
    return (await this.appendLogs(taskId, [entry]))[0] as LogEntry;
  }

  /** Several entries of one task in one write (ClusterLogBus batches them). */
  async appendLogs(taskId: string, entries: readonly NewLogEntry[]): Promise<LogEntry[]> {
    const fence = this.fenceOf(taskId);
    if (!fence) return this.pg.appendLogs(taskId, entries);
    return (await this.pg.appendLogsFenced(taskId, fence, entries)) ?? this.fencedOut(taskId);
  }

  readLogs(taskId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
    return this.pg.readLogs(taskId, afterSeq, limit);
  }

  async putEpochMetrics(taskId: string, metrics: EpochMetrics): Promise<void> {
    const fence = this.fenceOf(taskId);
    if (!fence) return this.pg.putEpochMetrics(taskId, metrics);
    if (!(await this.pg.putEpochMetricsFenced(taskId, fence, metrics))) this.fencedOut(taskId);
  }

  async truncateEpochMetrics(taskId: string, lastEpoch: number): Promise<void> {
    const fence = this.fenceOf(taskId);
    if (!fence) return this.pg.truncateEpochMetrics(taskId, lastEpoch);
    if (!(await this.pg.truncateEpochMetricsFenced(taskId, fence, lastEpoch))) this.fencedOut(taskId);
  }

  getEpochMetrics(taskId: string): Promise<EpochMetrics[]> {
    return this.pg.getEpochMetrics(taskId);
  }

  getLimitOverrides(): Promise<LimitOverrides> {
    return this.pg.getLimitOverrides();
  }

  async setLimitOverrides(overrides: LimitOverrides): Promise<void> {
    await this.pg.setLimitOverrides(overrides);
    this.signal('limits');
  }

  getQuotaOverrides(): Promise<Record<string, QuotaOverride>> {
    return this.pg.getQuotaOverrides();
  }

  async setQuotaOverride(user: string, override: QuotaOverride | null): Promise<void> {
    await this.pg.setQuotaOverride(user, override);
    this.signal('quotas');
  }

  ping(): Promise<void> {
    return this.pg.ping();
  }

  close(): Promise<void> {
    return this.pg.close();
  }

  /** A task written back to `queued` is claimable again: say so. */
  private queued(t: TaskRecord | undefined): TaskRecord | undefined {
    if (t?.status === 'queued') this.signal('queue', [t.task_id]);
    return t;
  }

  private fencedOut(taskId: string): never {
    this.onFencedOut(taskId);
    throw new FencedOutError(taskId);
  }
}
