/**
 * PostgreSQL schema, as numbered migrations applied once per database (by whichever node starts
 * first: PgStore holds an advisory lock while it migrates). The shape follows the SQLite store's
 * (src/store/sqlite/migrations.ts) column for column, so both map rows with src/store/rows.ts:
 * - timestamps are `timestamptz`, read back as ISO strings (the store's type parsers);
 * - JSON columns are `json` (kept as written, read back as text and parsed by rows.ts);
 * - `seq` is the submission order (SQLite's rowid), `log_seq` the last log entry's number, drawn
 *   under the task row's lock so two nodes appending to one task never draw the same number.
 */
export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'tasks, logs, metrics, limits',
    sql: `
      CREATE TABLE tasks (
        seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        task_id        text PRIMARY KEY,
        task_type      text NOT NULL,
        status         text NOT NULL,
        priority       integer NOT NULL,
        device_request text,
        device         text,
        gpu_memory_gb  double precision,
        name           text,
        description    text,
        message        text,
        progress       integer NOT NULL DEFAULT 0,
        attempts       integer NOT NULL DEFAULT 0,
        params         json NOT NULL DEFAULT '{}',
        input_path     text,
        output_path    text,
        stats          json,
        result         json,
        error          text,
        current_epoch  integer,
        total_epochs   integer,
        latest_metrics json,
        created_at     timestamptz NOT NULL,
        updated_at     timestamptz NOT NULL,
        enqueued_at    timestamptz NOT NULL,
        started_at     timestamptz,
        finished_at    timestamptz,
        log_seq        integer NOT NULL DEFAULT 0
      );
      CREATE INDEX tasks_status ON tasks (status, seq);
      CREATE INDEX tasks_type ON tasks (task_type, seq);

      CREATE TABLE task_logs (
        task_id   text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
        seq       integer NOT NULL,
        timestamp timestamptz NOT NULL,
        level     text NOT NULL,
        message   text NOT NULL,
        metrics   json,
        step      integer,
        stage     text,
        progress  integer,
        PRIMARY KEY (task_id, seq)
      );

      CREATE TABLE task_metrics (
        task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
        epoch   integer NOT NULL,
        metrics json NOT NULL,
        PRIMARY KEY (task_id, epoch)
      );

      CREATE TABLE resource_limits (
        device_key     text NOT NULL,
        resource_class text NOT NULL,
        max_concurrent integer NOT NULL,
        PRIMARY KEY (device_key, resource_class)
      );
    `,
  },
  {
    version: 2,
    name: 'nodes and claims: owner, lease epoch, order key',
    sql: `
      -- One row per service process: a fresh node_id at every start (a restarted process never
      -- inherits its predecessor's claims), the name operators use, and what it can run.
      -- heartbeat_at is the database's clock, so nodes' clocks never have to agree.
      CREATE TABLE nodes (
        node_id      text PRIMARY KEY,
        name         text NOT NULL,
        host         text NOT NULL,
        pid          integer NOT NULL,
        state        text NOT NULL DEFAULT 'active',
        devices      json NOT NULL,
        limits       json NOT NULL,
        usage        json NOT NULL DEFAULT '{}',
        started_at   timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX nodes_name ON nodes (name, started_at);

      -- owner_node + lease_epoch fence every write by the node that claimed a task: a claim sets
      -- the owner and increments the epoch, and an owner's write lands only while both still
      -- match. node_name stays after the task ends (the node that ran it). queue_key is the
      -- aging order, enqueued_at + priority × aging interval in ms: it does not change while the
      -- task waits, so it can be indexed.
      ALTER TABLE tasks
        ADD COLUMN owner_node  text,
        ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0,
        ADD COLUMN node_name   text,
        ADD COLUMN pin_node    text,
        ADD COLUMN queue_key   double precision NOT NULL DEFAULT 0;
      CREATE INDEX tasks_claimable ON tasks (queue_key, seq) WHERE status = 'queued' AND owner_node IS NULL;
      CREATE INDEX tasks_owner ON tasks (owner_node) WHERE owner_node IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'cancel requests across nodes',
    sql: `
      -- Set by the node a cancel was asked on; the owner stops the task when told (NOTIFY) or at
      -- its next heartbeat, whichever comes first.
      ALTER TABLE tasks ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
    `,
  },
  {
    version: 4,
    name: 'task owners',
    sql: `
      -- The user who submitted the task (owner_node is the node that claimed it).
      ALTER TABLE tasks ADD COLUMN owner text;
      CREATE INDEX tasks_by_owner ON tasks (owner, status);
    `,
  },
  {
    version: 5,
    name: 'fair-share ledger',
    sql: `
      -- Decayed device-seconds per user (scheduler/fair-share.ts), as of at (ms since the epoch);
      -- every node adds its own charges to it.
      CREATE TABLE fair_share_usage (
        user_name text PRIMARY KEY,
        usage double precision NOT NULL,
        at double precision NOT NULL
      );
    `,
  },
  {
    version: 6,
    name: 'quota overrides',
    sql: `
      -- An admin's live change to a user's quotas (JSON: domain/users.ts QuotaOverride).
      CREATE TABLE quota_overrides (
        user_name text PRIMARY KEY,
        quotas text NOT NULL
      );
    `,
  },
];
