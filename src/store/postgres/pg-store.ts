import pg from 'pg';
import { conflict, notFound } from '../../domain/errors.js';
import type {
  EpochMetrics,
  LogEntry,
  NewLogEntry,
  NewTask,
  TaskPatch,
  TaskRecord,
  TaskStatus,
} from '../../domain/task.js';
import {
  appendedLog,
  columnValue,
  quotaOverrides,
  rowToLog,
  rowToTask,
  type LogRow,
  type QuotaRow,
  type TaskRow,
} from '../rows.js';
import type { QuotaOverride } from '../../domain/users.js';
import {
  type KindStatusCount,
  type OwnerStatusCount,
  type UsageCharge,
  type UsageRecord,
  type LimitOverrides,
  type Store,
  type TaskFilter,
  type UnfinishedTask,
} from '../store.js';
import { inTransaction, withClient } from './client.js';
import { PgCluster, type Fence } from './cluster.js';
import { PG_MIGRATIONS } from './migrations.js';

export interface PgStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  now?: () => Date;
  /** Called with errors of idle connections (the pool reconnects by itself). */
  onError?: (err: Error) => void;
  /**
   * The aging interval of the scheduling order (ms; 0 = priority only), for the stored order key
   * (tasks.queue_key). Every node on one database must use the same. Default 60 000.
   */
  agingIntervalMs?: number;
}

/** First half of every advisory lock key this service takes ("RFUA"). */
const LOCK_SPACE = 0x52465541;
const LOCK_MIGRATIONS = 1;

const TIMESTAMPTZ = 1184;
const JSON_TYPE = 114;
const parseTimestamp = pg.types.getTypeParser(TIMESTAMPTZ) as (text: string) => Date;
/**
 * Row values as the SQLite store gives them, so both map rows with rows.ts: timestamps as ISO
 * strings (ms, 'Z'), JSON columns as their text.
 */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMPTZ) return (text: string) => parseTimestamp(text).toISOString();
    if (oid === JSON_TYPE) return (text: string) => text;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

const UNFINISHED = `SELECT task_id, task_type, status, priority, device_request, device, gpu_memory_gb,
  attempts, enqueued_at, owner FROM tasks WHERE status IN ('pending', 'queued', 'running') ORDER BY seq`;

/**
 * A task and its first log entries in one statement: the entries come from parallel arrays
 * (unnest … WITH ORDINALITY numbers them 1, 2, …), and the task's log_seq starts after them.
 */
const CREATE_TASK = `
  WITH t AS (
    INSERT INTO tasks (task_id, task_type, status, priority, device_request, gpu_memory_gb, name,
      description, message, params, input_path, output_path, total_epochs, created_at, updated_at,
      enqueued_at, log_seq, queue_key, pin_node, owner)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, $15, $23, $24, $25)
    RETURNING *
  ), l AS (
    INSERT INTO task_logs (task_id, seq, timestamp, level, message, metrics, step, stage, progress)
    SELECT t.task_id, e.n, e.ts, e.level, e.message, e.metrics::json, e.step, e.stage, e.progress
    FROM t, unnest($16::timestamptz[], $17::text[], $18::text[], $19::text[], $20::int[], $21::text[],
      $22::int[]) WITH ORDINALITY AS e(ts, level, message, metrics, step, stage, progress, n)
  )
  SELECT * FROM t`;

/**
 * Entries of one task in one statement: their numbers are drawn together under the task row's
 * lock ($2 of them; concurrent appends never share one), then the rows go in from the arrays of
 * logArrays. `fence` is an extra condition on that row (the claimant's), placeholders after.
 */
function appendLogsSql(fence: string, first: number): string {
  const p = (i: number) => `$${first + i}`;
  return `
  WITH s AS (UPDATE tasks SET log_seq = log_seq + $2 WHERE task_id = $1${fence} RETURNING log_seq)
  INSERT INTO task_logs (task_id, seq, timestamp, level, message, metrics, step, stage, progress)
  SELECT $1, s.log_seq - $2 + e.n, e.ts, e.level, e.message, e.metrics::json, e.step, e.stage, e.progress
  FROM s, unnest(${p(0)}::timestamptz[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::int[],
    ${p(5)}::text[], ${p(6)}::int[]) WITH ORDINALITY AS e(ts, level, message, metrics, step, stage, progress, n)
  RETURNING seq`;
}
const APPEND_LOGS = appendLogsSql('', 3);
const APPEND_LOGS_FENCED = appendLogsSql(' AND owner_node = $3 AND lease_epoch = $4', 5);

/**
 * Log entries as the parallel arrays CREATE_TASK and appendLogsSql unnest, in their column order
 * (timestamp, level, message, metrics, step, stage, progress); `now` for entries without a time.
 */
function logArrays(entries: readonly NewLogEntry[], now: string): [string[], ...unknown[][]] {
  const col = <K extends keyof NewLogEntry>(k: K) => entries.map((e) => e[k] ?? null);
  return [
    entries.map((e) => e.timestamp ?? now),
    col('level'),
    col('message'),
    entries.map((e) => (e.metrics == null ? null : JSON.stringify(e.metrics))),
    col('step'),
    col('stage'),
    col('progress'),
  ];
}
const PUT_METRICS = `INSERT INTO task_metrics (task_id, epoch, metrics) VALUES ($1, $2, $3)
  ON CONFLICT (task_id, epoch) DO UPDATE SET metrics = excluded.metrics`;
const PUT_METRICS_FENCED = `INSERT INTO task_metrics (task_id, epoch, metrics)
  SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = $1 AND owner_node = $4 AND lease_epoch = $5)
  ON CONFLICT (task_id, epoch) DO UPDATE SET metrics = excluded.metrics`;

/**
 * Store on PostgreSQL (node-postgres pool). Every method is one statement (or one transaction),
 * committed before it resolves; nothing is cached, so another process on the same database is
 * seen at once: several nodes share one database (a cluster: see cluster.ts for nodes and claims,
 * and the fenced writes below).
 */
export class PgStore implements Store {
  readonly dialect = 'postgresql';
  private readonly pool: pg.Pool;
  private readonly now: () => Date;
  private closed = false;
  private readonly statementNames = new Map<string, string>();
  private readonly agingMs: number;

  private constructor(private readonly opts: PgStoreOptions) {
    this.now = opts.now ?? (() => new Date());
    this.agingMs = opts.agingIntervalMs ?? 60_000;
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      types: TYPES,
      connectionTimeoutMillis: 5000,
      // A query that hangs (a network dropping packets) fails instead of holding its caller.
      query_timeout: 15_000,
      keepAlive: true,
      idleTimeoutMillis: 30_000,
      application_name: 'rfuav',
    });
    // An idle connection that breaks (server restart) is dropped and replaced on the next query;
    // without a listener node-postgres would crash the process.
    this.pool.on('error', (err) => opts.onError?.(err));
  }

  /** Connects and applies the migrations this database lacks. */
  static async open(opts: PgStoreOptions): Promise<PgStore> {
    const store = new PgStore(opts);
    try {
      await store.migrate();
      return store;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Applies the migrations this database lacks, each in its own transaction, under a lock. */
  private async migrate(): Promise<void> {
    await withClient(this.pool, async (client) => {
      await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_SPACE, LOCK_MIGRATIONS]);
      try {
        await client.query(
          'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
        );
        const done = new Set(
          (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
            (r) => r.version,
          ),
        );
        for (const m of PG_MIGRATIONS) {
          if (done.has(m.version)) continue;
          await client.query('BEGIN');
          try {
            await client.query(m.sql);
            await client.query(
              'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())',
              [m.version, m.name],
            );
            await client.query('COMMIT');
          } catch (err) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw err;
          }
        }
      } finally {
        await client
          .query('SELECT pg_advisory_unlock($1, $2)', [LOCK_SPACE, LOCK_MIGRATIONS])
          .catch(() => {});
      }
    });
  }

  /**
   * One statement, prepared once per connection under a short name (PostgreSQL cuts names at 63
   * bytes; a statement's text is what identifies it here).
   */
  private async q<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> {
    let name = this.statementNames.get(text);
    if (!name) {
      name = `rfuav_${this.statementNames.size + 1}`;
      this.statementNames.set(text, name);
    }
    return (await this.pool.query<R>({ name, text, values })).rows;
  }

  async createTask(task: NewTask, firstLog: readonly NewLogEntry[] = []): Promise<TaskRecord> {
    const now = this.now().toISOString();
    try {
      const [row] = await this.q<TaskRow>(CREATE_TASK, [
        task.task_id,
        task.task_type,
        task.status ?? 'pending',
        task.priority,
        task.device_request,
        task.gpu_memory_gb,
        task.name,
        task.description,
        task.message ?? null,
        JSON.stringify(task.params),
        task.input_path,
        task.output_path,
        task.total_epochs,
        now,
        firstLog.length,
        ...logArrays(firstLog, now),
        this.queueKey(Date.parse(now), task.priority),
        task.pin_node ?? null,
        task.owner ?? null,
      ]);
      return rowToTask(row as TaskRow);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw conflict(`task_id '${task.task_id}' is already in use`, { field: 'task_id' });
      }
      throw err;
    }
  }

  /** Nodes, claims and failover, on this store's connections. */
  cluster(): PgCluster {
    return new PgCluster(this.pool, LOCK_SPACE);
  }

  /** The scheduling order of a waiting task (lower first), as SchedulerCore orders its lanes. */
  private queueKey(enqueuedMs: number, priority: number): number {
    return this.agingMs > 0 ? enqueuedMs + priority * this.agingMs : priority;
  }

  async getTask(id: string): Promise<TaskRecord | undefined> {
    const [row] = await this.q<TaskRow>('SELECT * FROM tasks WHERE task_id = $1', [id]);
    return row && rowToTask(row);
  }

  async updateTask(
    id: string,
    patch: TaskPatch,
    fromStatuses?: readonly TaskStatus[],
  ): Promise<TaskRecord | undefined> {
    return this.update(id, patch, fromStatuses, null);
  }

  /**
   * updateTask by the node that claimed the task: lands only while `fence` (its node id and the
   * claim's epoch) still matches the row. Undefined when it does not (the claim was lost: the
   * task was re-queued, or claimed again elsewhere) — the caller must stop the work.
   */
  async updateFenced(
    id: string,
    fence: Fence,
    patch: TaskPatch,
    fromStatuses?: readonly TaskStatus[],
  ): Promise<TaskRecord | undefined> {
    return this.update(id, patch, fromStatuses, fence);
  }

  /** Whether `fence` still holds the task (its owner and epoch are the row's). */
  async isOwner(id: string, fence: Fence): Promise<boolean> {
    const rows = await this.q(
      'SELECT 1 FROM tasks WHERE task_id = $1 AND owner_node = $2 AND lease_epoch = $3',
      [id, fence.node, fence.epoch],
    );
    return rows.length > 0;
  }

  private async update(
    id: string,
    patch: TaskPatch,
    fromStatuses: readonly TaskStatus[] | undefined,
    fence: Fence | null,
  ): Promise<TaskRecord | undefined> {
    const cols = Object.keys(patch).sort();
    const args: unknown[] = cols.map((c) => columnValue(c, (patch as Record<string, unknown>)[c]));
    const sets = [
      ...cols.map((c, i) => `${c} = $${i + 1}`),
      `updated_at = $${args.push(this.now().toISOString())}`,
    ];
    // The order key follows a new enqueue time (a re-queued task waits from then on).
    if (patch.enqueued_at !== undefined) {
      sets.push(
        `queue_key = ${queueKeySql(`$${cols.indexOf('enqueued_at') + 1}::timestamptz`, this.agingMs)}`,
      );
    }
    let where = `task_id = $${args.push(id)}`;
    if (fromStatuses) where += ` AND status = ANY($${args.push(fromStatuses)})`;
    if (fence)
      where += ` AND owner_node = $${args.push(fence.node)} AND lease_epoch = $${args.push(fence.epoch)}`;
    const [row] = await this.q<TaskRow>(
      `UPDATE tasks SET ${sets.join(', ')} WHERE ${where} RETURNING *`,
      args,
    );
    return row && rowToTask(row);
  }

  async listTasks(filter: TaskFilter): Promise<TaskRecord[]> {
    if (filter.kinds && filter.kinds.length === 0) return [];
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.status) where.push(`status = $${args.push(filter.status)}`);
    if (filter.kinds) where.push(`task_type = ANY($${args.push(filter.kinds)})`);
    if (filter.idPrefix)
      where.push(
        `substr(task_id, 1, $${args.push(filter.idPrefix.length)}) = $${args.push(filter.idPrefix)}`,
      );
    if (filter.beforeId)
      where.push(`seq < coalesce((SELECT seq FROM tasks WHERE task_id = $${args.push(filter.beforeId)}), 0)`);
    if (filter.owner !== undefined) where.push(`owner = $${args.push(filter.owner)}`);
    const text = `SELECT * FROM tasks${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${args.push(filter.limit)} OFFSET $${args.push(filter.offset ?? 0)}`;
    return (await this.q<TaskRow>(text, args)).map(rowToTask);
  }

  async listUnfinished(): Promise<UnfinishedTask[]> {
    return this.q<UnfinishedTask>(UNFINISHED, []);
  }

  async countUnfinishedByOwner(): Promise<OwnerStatusCount[]> {
    return this.q<OwnerStatusCount>(
      "SELECT owner, status, count(*)::int AS n FROM tasks WHERE status IN ('pending', 'queued', 'running') GROUP BY owner, status",
      [],
    );
  }

  async chargeUsage(
    charges: readonly UsageCharge[],
    now: number,
    halfLifeMs: number,
  ): Promise<UsageRecord[]> {
    // One statement: each charge is added to the stored usage decayed to now (additive, so two
    // nodes charging at once both count); then the whole ledger, decayed to now.
    const rows = await this.q<{ user_name: string; usage: number }>(
      `WITH c AS (
         INSERT INTO fair_share_usage AS f (user_name, usage, at)
         SELECT u, a, $3 FROM unnest($1::text[], $2::float8[]) AS x(u, a)
         ON CONFLICT (user_name) DO UPDATE
           SET usage = f.usage * power(2::float8, -greatest(0, $3 - f.at) / $4) + excluded.usage, at = $3
         RETURNING user_name, usage
       )
       SELECT user_name, usage FROM c
       UNION ALL
       SELECT user_name, usage * power(2::float8, -greatest(0, $3 - at) / $4) FROM fair_share_usage
       WHERE user_name <> ALL($1::text[])`,
      [charges.map((c) => c.user), charges.map((c) => c.amount), now, halfLifeMs],
    );
    return rows.map((r) => ({ user: r.user_name, usage: Number(r.usage), at: now }));
  }

  async gpuSecondsBetween(since: string, until: string): Promise<{ owner: string; seconds: number }[]> {
    const rows = await this.q<{ owner: string; seconds: number }>(
      `SELECT owner, SUM(extract(epoch FROM (least(coalesce(finished_at, $2::timestamptz), $2::timestamptz)
          - greatest(started_at, $1::timestamptz))))::float8 AS seconds
       FROM tasks WHERE owner IS NOT NULL AND device LIKE 'cuda%' AND started_at IS NOT NULL
         AND started_at < $2::timestamptz AND (finished_at IS NULL OR finished_at > $1::timestamptz)
       GROUP BY owner`,
      [since, until],
    );
    return rows.map((r) => ({ owner: r.owner, seconds: Number(r.seconds) }));
  }

  async countTasksOf(owner: string, kinds: readonly string[], status?: TaskStatus): Promise<number> {
    if (kinds.length === 0) return 0;
    const [row] = await this.q<{ n: number }>(
      `SELECT count(*)::int AS n FROM tasks WHERE owner = $1 AND task_type = ANY($2)${status ? ' AND status = $3' : ''}`,
      status ? [owner, kinds, status] : [owner, kinds],
    );
    return row?.n ?? 0;
  }

  async countWaitingOf(owner: string): Promise<number> {
    const [row] = await this.q<{ n: number }>(
      "SELECT count(*)::int AS n FROM tasks WHERE owner = $1 AND status IN ('pending', 'queued')",
      [owner],
    );
    return row?.n ?? 0;
  }

  async countByKindAndStatus(): Promise<KindStatusCount[]> {
    return this.q<KindStatusCount>(
      'SELECT task_type, status, count(*)::int AS n FROM tasks GROUP BY task_type, status',
      [],
    );
  }

  async deleteTask(id: string): Promise<boolean> {
    const rows = await this.q('DELETE FROM tasks WHERE task_id = $1 RETURNING 1', [id]);
    return rows.length > 0;
  }

  async appendLog(taskId: string, entry: NewLogEntry): Promise<LogEntry> {
    return (await this.appendLogs(taskId, [entry]))[0] as LogEntry;
  }

  /** Appends several entries to one task's log in one statement, numbered in the order given. */
  async appendLogs(taskId: string, entries: readonly NewLogEntry[]): Promise<LogEntry[]> {
    const out = await this.appendMany(APPEND_LOGS, [taskId, entries.length], entries);
    if (!out) throw notFound(`task '${taskId}' not found`);
    return out;
  }

  /** appendLogs by the task's claimant: undefined (nothing written) once `fence` no longer matches. */
  appendLogsFenced(
    taskId: string,
    fence: Fence,
    entries: readonly NewLogEntry[],
  ): Promise<LogEntry[] | undefined> {
    return this.appendMany(APPEND_LOGS_FENCED, [taskId, entries.length, fence.node, fence.epoch], entries);
  }

  private async appendMany(
    sql: string,
    head: unknown[],
    entries: readonly NewLogEntry[],
  ): Promise<LogEntry[] | undefined> {
    if (entries.length === 0) return [];
    const now = this.now().toISOString();
    const arrays = logArrays(entries, now);
    const rows = await this.q<{ seq: number }>(sql, [...head, ...arrays]);
    if (rows.length === 0) return undefined;
    let first = Number.POSITIVE_INFINITY;
    for (const r of rows) first = Math.min(first, Number(r.seq));
    const stamps = arrays[0];
    return entries.map((e, i) => appendedLog(first + i, stamps[i] as string, e));
  }

  async readLogs(taskId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
    const rows = await this.q<LogRow>(
      'SELECT seq, timestamp, level, message, metrics, step, stage, progress FROM task_logs WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [taskId, afterSeq, limit],
    );
    return rows.map(rowToLog);
  }

  async putEpochMetrics(taskId: string, metrics: EpochMetrics): Promise<void> {
    await this.q(PUT_METRICS, [taskId, metrics.epoch, JSON.stringify(metrics)]);
  }

  /** putEpochMetrics by the task's claimant: false (nothing written) once `fence` no longer matches. */
  async putEpochMetricsFenced(taskId: string, fence: Fence, metrics: EpochMetrics): Promise<boolean> {
    const rows = await this.q(`${PUT_METRICS_FENCED} RETURNING 1`, [
      taskId,
      metrics.epoch,
      JSON.stringify(metrics),
      fence.node,
      fence.epoch,
    ]);
    return rows.length > 0;
  }

  async truncateEpochMetrics(taskId: string, lastEpoch: number): Promise<void> {
    await this.q('DELETE FROM task_metrics WHERE task_id = $1 AND epoch > $2', [taskId, lastEpoch]);
  }

  /** truncateEpochMetrics by the task's claimant: false (nothing removed) once `fence` is stale. */
  async truncateEpochMetricsFenced(taskId: string, fence: Fence, lastEpoch: number): Promise<boolean> {
    const rows = await this.q<{ ok: boolean }>(
      `WITH owner AS (SELECT 1 FROM tasks WHERE task_id = $1 AND owner_node = $3 AND lease_epoch = $4),
       gone AS (DELETE FROM task_metrics WHERE task_id = $1 AND epoch > $2 AND EXISTS (SELECT 1 FROM owner))
       SELECT EXISTS (SELECT 1 FROM owner) AS ok`,
      [taskId, lastEpoch, fence.node, fence.epoch],
    );
    return rows[0]?.ok === true;
  }

  async getEpochMetrics(taskId: string): Promise<EpochMetrics[]> {
    const rows = await this.q<{ metrics: string }>(
      'SELECT metrics FROM task_metrics WHERE task_id = $1 ORDER BY epoch',
      [taskId],
    );
    return rows.map((r) => JSON.parse(r.metrics) as EpochMetrics);
  }

  async getLimitOverrides(): Promise<LimitOverrides> {
    const rows = await this.q<{ device_key: string; resource_class: string; max_concurrent: number }>(
      'SELECT device_key, resource_class, max_concurrent FROM resource_limits ORDER BY device_key, resource_class',
      [],
    );
    const out: LimitOverrides = {};
    for (const r of rows) (out[r.device_key] ??= {})[r.resource_class] = r.max_concurrent;
    return out;
  }

  async setLimitOverrides(overrides: LimitOverrides): Promise<void> {
    const entries = Object.entries(overrides).flatMap(([dev, classes]) =>
      Object.entries(classes).map(([cls, n]) => [dev, cls, n] as const),
    );
    await inTransaction(this.pool, async (client) => {
      await client.query('DELETE FROM resource_limits');
      await client.query(
        'INSERT INTO resource_limits (device_key, resource_class, max_concurrent) SELECT * FROM unnest($1::text[], $2::text[], $3::int[])',
        [entries.map((e) => e[0]), entries.map((e) => e[1]), entries.map((e) => e[2])],
      );
    });
  }

  async getQuotaOverrides(): Promise<Record<string, QuotaOverride>> {
    return quotaOverrides(await this.q<QuotaRow>('SELECT user_name, quotas FROM quota_overrides', []));
  }

  async setQuotaOverride(user: string, override: QuotaOverride | null): Promise<void> {
    if (override === null) await this.pool.query('DELETE FROM quota_overrides WHERE user_name = $1', [user]);
    else
      await this.pool.query(
        'INSERT INTO quota_overrides (user_name, quotas) VALUES ($1, $2) ON CONFLICT (user_name) DO UPDATE SET quotas = excluded.quotas',
        [user, JSON.stringify(override)],
      );
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** queueKey in SQL, for an update that sets the enqueue time. */
function queueKeySql(enqueuedAt: string, agingMs: number): string {
  return agingMs > 0 ? `extract(epoch FROM ${enqueuedAt}) * 1000 + priority * ${agingMs}` : 'priority';
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}
