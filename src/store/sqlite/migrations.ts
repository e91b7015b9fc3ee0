/**
 * Versioned schema for the SQLite store. Each migration runs once, in order, inside a
 * transaction, and is recorded in schema_migrations. Never edit a released migration: add one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'tasks, logs, metrics, limits',
    sql: `
      CREATE TABLE tasks (
        task_id        TEXT PRIMARY KEY,
        task_type      TEXT NOT NULL,
        status         TEXT NOT NULL,
        priority       INTEGER NOT NULL,
        device_request TEXT,
        device         TEXT,
        gpu_memory_gb  REAL,
        name           TEXT,
        description    TEXT,
        message        TEXT,
        progress       INTEGER NOT NULL DEFAULT 0,
        attempts       INTEGER NOT NULL DEFAULT 0,
        params         TEXT NOT NULL DEFAULT '{}',
        input_path     TEXT,
        output_path    TEXT,
        stats          TEXT,
        result         TEXT,
        error          TEXT,
        current_epoch  INTEGER,
        total_epochs   INTEGER,
        latest_metrics TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        enqueued_at    TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT
      );
      -- rowid order is submission order, and every index ends in the rowid, so these two serve
      -- "WHERE status = ? ORDER BY rowid DESC" (and by kind) without a sort. Few indexes on
      -- purpose: each one is written on every status change.
      CREATE INDEX tasks_status ON tasks (status);
      CREATE INDEX tasks_type ON tasks (task_type);

      CREATE TABLE task_logs (
        task_id   TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        level     TEXT NOT NULL,
        message   TEXT NOT NULL,
        metrics   TEXT,
        step      INTEGER,
        stage     TEXT,
        PRIMARY KEY (task_id, seq)
      ) WITHOUT ROWID;

      CREATE TABLE task_metrics (
        task_id TEXT NOT NULL,
        epoch   INTEGER NOT NULL,
        metrics TEXT NOT NULL,
        PRIMARY KEY (task_id, epoch)
      ) WITHOUT ROWID;

      CREATE TABLE resource_limits (
        device_key TEXT NOT NULL,
        resource_class TEXT NOT NULL,
        max_concurrent INTEGER NOT NULL,
        PRIMARY KEY (device_key, resource_class)
      );
    `,
  },
  {
    version: 2,
    name: 'progress events in the task log',
    sql: `ALTER TABLE task_logs ADD COLUMN progress INTEGER;`,
  },
  {
    version: 3,
    name: 'task owners',
    sql: `
      ALTER TABLE tasks ADD COLUMN owner TEXT;
      -- A user's tasks by status: the ?owner= list and the queued quota's count.
      CREATE INDEX tasks_by_owner ON tasks (owner, status);
    `,
  },
  {
    version: 4,
    name: 'fair-share ledger',
    sql: `
      -- Decayed device-seconds per user (scheduler/fair-share.ts), as of at (ms since the epoch).
      CREATE TABLE fair_share_usage (
        user_name TEXT PRIMARY KEY,
        usage REAL NOT NULL,
        at REAL NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'quota overrides',
    sql: `
      -- An admin's live change to a user's quotas (JSON: domain/users.ts QuotaOverride).
      CREATE TABLE quota_overrides (
        user_name TEXT PRIMARY KEY,
        quotas TEXT NOT NULL
      );
    `,
  },
];
