import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { conflict } from '../../domain/errors.js';
import type {
  EpochMetrics,
  LogEntry,
  NewLogEntry,
  NewTask,
  TaskPatch,
  TaskRecord,
  TaskStatus,
} from '../../domain/task.js';
import { columnValue, rowToLog, rowToTask, type LogRow, type TaskRow } from '../rows.js';
import type { KindStatusCount, LimitOverrides, Store, TaskFilter } from '../store.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

export interface SqliteStoreOptions {
  /** Database file; ':memory:' is accepted for throwaway use. */
  file: string;
  now?: () => Date;
}

type Stmt = Database.Statement<unknown[], unknown>;

/**
 * Embedded store on better-sqlite3. The driver is synchronous, so every method has committed by
 * the time its promise exists; the async signature is the Store seam shared with PostgreSQL.
 * WAL with synchronous=NORMAL: a commit survives the process being killed (kill -9), which is
 * the crash this service must survive; only an OS crash may lose the last commits.
 */
export class SqliteStore implements Store {
  readonly dialect = 'sqlite';
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly updateStmts = new Map<string, Stmt>();
  private readonly s: {
    insertTask: Stmt;
    getTask: Stmt;
    unfinished: Stmt;
    counts: Stmt;
    insertLog: Stmt;
    readLogs: Stmt;
    putMetrics: Stmt;
    truncMetrics: Stmt;
    getMetrics: Stmt;
    getLimits: Stmt;
  };
  private readonly deleteTx: (id: string) => boolean;
  private readonly setLimitsTx: (overrides: LimitOverrides) => void;

  constructor(opts: SqliteStoreOptions) {
    this.now = opts.now ?? (() => new Date());
    if (opts.file !== ':memory:') fs.mkdirSync(path.dirname(opts.file), { recursive: true });
    this.db = new Database(opts.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    const db = this.db;
    this.s = {
      insertTask: db.prepare(`
        INSERT INTO tasks (task_id, task_type, status, priority, device_request, gpu_memory_gb, name,
          description, message, progress, attempts, params, input_path, output_path, total_epochs,
          created_at, updated_at, enqueued_at, created_seq)
        VALUES (@task_id, @task_type, 'pending', @priority, @device_request, @gpu_memory_gb, @name,
          @description, @message, 0, 0, @params, @input_path, @output_path, @total_epochs,
          @now, @now, @now, (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM tasks))
        RETURNING *`),
      getTask: db.prepare('SELECT * FROM tasks WHERE task_id = ?'),
      unfinished: db.prepare(
        "SELECT * FROM tasks WHERE status IN ('pending', 'queued', 'running') ORDER BY created_seq",
      ),
      counts: db.prepare('SELECT task_type, status, COUNT(*) AS n FROM tasks GROUP BY task_type, status'),
      // The per-task sequence is allocated inside the insert: SQLite serialises writers, so two
      // appends can never draw the same number.
      insertLog: db.prepare(`
        INSERT INTO task_logs (task_id, seq, timestamp, level, message, metrics, step, stage)
        VALUES (@task_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_logs WHERE task_id = @task_id),
          @timestamp, @level, @message, @metrics, @step, @stage)
        RETURNING seq`),
      readLogs: db.prepare(
        'SELECT seq, timestamp, level, message, metrics, step, stage FROM task_logs WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      putMetrics: db.prepare(
        'INSERT INTO task_metrics (task_id, epoch, metrics) VALUES (?, ?, ?) ON CONFLICT (task_id, epoch) DO UPDATE SET metrics = excluded.metrics',
      ),
      truncMetrics: db.prepare('DELETE FROM task_metrics WHERE task_id = ? AND epoch > ?'),
      getMetrics: db.prepare('SELECT metrics FROM task_metrics WHERE task_id = ? ORDER BY epoch'),
      getLimits: db.prepare('SELECT device_key, resource_class, max_concurrent FROM resource_limits'),
    };
    const delTask = db.prepare('DELETE FROM tasks WHERE task_id = ?');
    const delLogs = db.prepare('DELETE FROM task_logs WHERE task_id = ?');
    const delMetrics = db.prepare('DELETE FROM task_metrics WHERE task_id = ?');
    this.deleteTx = db.transaction((id: string) => {
      const n = delTask.run(id).changes;
      delLogs.run(id);
      delMetrics.run(id);
      return n > 0;
    });
    const clearLimits = db.prepare('DELETE FROM resource_limits');
    const insLimit = db.prepare(
      'INSERT INTO resource_limits (device_key, resource_class, max_concurrent) VALUES (?, ?, ?)',
    );
    this.setLimitsTx = db.transaction((overrides: LimitOverrides) => {
      clearLimits.run();
      for (const [dev, classes] of Object.entries(overrides)) {
        for (const [cls, n] of Object.entries(classes)) insLimit.run(dev, cls, n);
      }
    });
  }

  private migrate(): void {
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    const done = new Set(
      (this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const m of SQLITE_MIGRATIONS) {
      if (done.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, this.now().toISOString());
      })();
    }
  }

  async createTask(task: NewTask): Promise<TaskRecord> {
    try {
      const row = this.s.insertTask.get({
        task_id: task.task_id,
        task_type: task.task_type,
        priority: task.priority,
        device_request: task.device_request,
        gpu_memory_gb: task.gpu_memory_gb,
        name: task.name,
        description: task.description,
        message: task.message ?? null,
        params: JSON.stringify(task.params),
        input_path: task.input_path,
        output_path: task.output_path,
        total_epochs: task.total_epochs,
        now: this.now().toISOString(),
      }) as TaskRow;
      return rowToTask(row);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw conflict(`task_id '${task.task_id}' is already in use`, { field: 'task_id' });
      }
      throw err;
    }
  }

  async getTask(id: string): Promise<TaskRecord | undefined> {
    const row = this.s.getTask.get(id) as TaskRow | undefined;
    return row && rowToTask(row);
  }

  async updateTask(
    id: string,
    patch: TaskPatch,
    fromStatuses?: readonly TaskStatus[],
  ): Promise<TaskRecord | undefined> {
    const cols = Object.keys(patch).sort();
    const nFrom = fromStatuses?.length ?? 0;
    const key = `${cols.join(',')}|${nFrom}`;
    let stmt = this.updateStmts.get(key);
    if (!stmt) {
      const sets = [...cols.map((c) => `${c} = ?`), 'updated_at = ?'].join(', ');
      const where = nFrom > 0 ? ` AND status IN (${new Array(nFrom).fill('?').join(', ')})` : '';
      stmt = this.db.prepare(`UPDATE tasks SET ${sets} WHERE task_id = ?${where} RETURNING *`);
      this.updateStmts.set(key, stmt);
    }
    const values = cols.map((c) => columnValue(c, (patch as Record<string, unknown>)[c]));
    const row = stmt.get(...values, this.now().toISOString(), id, ...(fromStatuses ?? [])) as
      TaskRow | undefined;
    return row && rowToTask(row);
  }

  async listTasks(filter: TaskFilter): Promise<TaskRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    if (filter.kinds) {
      if (filter.kinds.length === 0) return [];
      where.push(`task_type IN (${filter.kinds.map(() => '?').join(', ')})`);
      args.push(...filter.kinds);
    }
    const sql = `SELECT * FROM tasks${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_seq DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, filter.limit) as TaskRow[];
    return rows.map(rowToTask);
  }

  async listUnfinished(): Promise<TaskRecord[]> {
    return (this.s.unfinished.all() as TaskRow[]).map(rowToTask);
  }

  async countByKindAndStatus(): Promise<KindStatusCount[]> {
    return this.s.counts.all() as KindStatusCount[];
  }

  async deleteTask(id: string): Promise<boolean> {
    return this.deleteTx(id);
  }

  async appendLog(taskId: string, entry: NewLogEntry): Promise<LogEntry> {
    const timestamp = entry.timestamp ?? this.now().toISOString();
    const row = this.s.insertLog.get({
      task_id: taskId,
      timestamp,
      level: entry.level,
      message: entry.message,
      metrics: entry.metrics == null ? null : JSON.stringify(entry.metrics),
      step: entry.step ?? null,
      stage: entry.stage ?? null,
    }) as { seq: number };
    const out: LogEntry = { seq: row.seq, timestamp, level: entry.level, message: entry.message };
    if (entry.metrics != null) out.metrics = entry.metrics;
    if (entry.step != null) out.step = entry.step;
    if (entry.stage != null) out.stage = entry.stage;
    return out;
  }

  async readLogs(taskId: string, afterSeq: number, limit: number): Promise<LogEntry[]> {
    return (this.s.readLogs.all(taskId, afterSeq, limit) as LogRow[]).map(rowToLog);
  }

  async putEpochMetrics(taskId: string, metrics: EpochMetrics): Promise<void> {
    this.s.putMetrics.run(taskId, metrics.epoch, JSON.stringify(metrics));
  }

  async truncateEpochMetrics(taskId: string, lastEpoch: number): Promise<void> {
    this.s.truncMetrics.run(taskId, lastEpoch);
  }

  async getEpochMetrics(taskId: string): Promise<EpochMetrics[]> {
    return (this.s.getMetrics.all(taskId) as { metrics: string }[]).map(
      (r) => JSON.parse(r.metrics) as EpochMetrics,
    );
  }

  async getLimitOverrides(): Promise<LimitOverrides> {
    const out: LimitOverrides = {};
    for (const r of this.s.getLimits.all() as {
      device_key: string;
      resource_class: string;
      max_concurrent: number;
    }[]) {
      (out[r.device_key] ??= {})[r.resource_class] = r.max_concurrent;
    }
    return out;
  }

  async setLimitOverrides(overrides: LimitOverrides): Promise<void> {
    this.setLimitsTx(overrides);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
