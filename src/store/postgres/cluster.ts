import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type pg from 'pg';
import type { DeviceInfo } from '../../domain/devices.js';
import { inTransaction } from './client.js';

/** Who may write to a claimed task: the claiming node and the epoch its claim set. */
export interface Fence {
  node: string;
  epoch: number;
}

export type NodeState = 'active' | 'draining' | 'lost' | 'stopped';

/** A node that is up: it runs what it holds (draining: it only claims nothing more). */
export function isLive(n: { state: NodeState }): boolean {
  return n.state === 'active' || n.state === 'draining';
}

export interface NodeRegistration {
  name: string;
  devices: DeviceInfo[];
  /** Slot limits per device × class, as this node applies them. */
  limits: Record<string, Record<string, number>>;
}

export interface NodeRow {
  node_id: string;
  name: string;
  host: string;
  pid: number;
  /** Stored state; a node past its lease reads as `lost` even before a sweep has marked it. */
  state: NodeState;
  devices: DeviceInfo[];
  limits: Record<string, Record<string, number>>;
  /** Running tasks per device × class, as of its last heartbeat. */
  usage: Record<string, Record<string, number>>;
  started_at: string;
  heartbeat_at: string;
  heartbeat_age_s: number;
}

/**
 * What a node can start now in one lane: tasks of these kinds asking for one of these device
 * requests, up to `limit` of them, needing at most `maxMemGb` of GPU memory (null: no GPU here, so
 * no memory bound applies).
 */
export interface ClaimLane {
  kinds: readonly string[];
  requests: readonly string[];
  maxMemGb: number | null;
  limit: number;
  /** Users with a running quota for the lane's class, and that quota. */
  quotas?: readonly { owner: string; limit: number }[];
}

export interface ClaimedTask {
  task_id: string;
  task_type: string;
  priority: number;
  device_request: string | null;
  gpu_memory_gb: number | null;
  attempts: number;
  enqueued_at: string;
  /** This claim's epoch: the fence of every write the node makes for it. */
  lease_epoch: number;
  /** Who submitted it (fair share charges them for its run). */
  owner: string | null;
}

/** Fair share in the claim order: milliseconds added to each owner's queue keys. */
export type OwnerOffsets = ReadonlyMap<string, number>;

/** A task waiting in the shared queue, as positions and reasons are shown. */
export interface WaitingTask {
  task_id: string;
  task_type: string;
  priority: number;
  enqueued_at: string;
  device_request: string | null;
  gpu_memory_gb: number | null;
  pin_node: string | null;
  owner: string | null;
}

/** What the shared queue looks like: its first tasks, how many wait, who runs what where. */
export interface WaitingView {
  tasks: WaitingTask[];
  total: number;
  /** Tasks claimed or running anywhere, per owner and kind (what running quotas count). */
  running: { owner: string; task_type: string; n: number }[];
}

export interface SweepResult {
  /** Nodes marked lost by this sweep. */
  lost: { node_id: string; name: string }[];
  /** Their tasks, back in the queue. */
  requeued: { task_id: string; node: string; was: string }[];
}

/** Second half of the advisory lock key of the lost-node sweep (first half: PgStore's space). */
const LOCK_SWEEP = 3;

/**
 * One claim per lane: the first waiting tasks in the cluster-wide order (queue_key, then
 * submission), locked with SKIP LOCKED inside the CTE so concurrent claimers pass over each
 * other's rows, then owned in the UPDATE that follows; the epoch goes up with every claim.
 *
 * With fair share ($8, $9: owners and their offsets in ms) each owner's keys move back by their
 * offset, which needs a sort of the lane's waiting tasks (the plain order is served by an index).
 */
function claimSql(fair: boolean): string {
  return `
  WITH c AS (
    SELECT task_id FROM tasks${fairJoin(fair)}
    WHERE ${claimable}
    ORDER BY ${claimOrder(fair)}, seq
    LIMIT $5
    FOR UPDATE OF tasks SKIP LOCKED
  )
  UPDATE tasks t SET owner_node = $6, node_name = $4, lease_epoch = t.lease_epoch + 1
  FROM c WHERE t.task_id = c.task_id
  RETURNING ${claimed}`;
}

/**
 * The claim with running quotas ($8, $9, or $10, $11 after fair share's: owners and their limits
 * for the lane's class): exact, however many tasks one claim takes and however many nodes claim
 * at once. Each owner with a quota has room for their limit less what they have claimed or
 * running anywhere in the cluster (tasks of the lane's kinds), and only that many of their
 * waiting tasks, first in order, are candidates. It runs under one cluster-wide advisory lock
 * (claimWithQuotas), so the count it reads includes every claim committed before it; rows are not
 * locked in the scan (a window function cannot be), and the UPDATE checks again that each task is
 * still waiting and unowned, so a row changed meanwhile is passed over rather than taken twice.
 */
function quotaClaimSql(fair: boolean): string {
  const [qo, ql] = fair ? ['$10', '$11'] : ['$8', '$9'];
  return `
  WITH room AS (
    SELECT q.who, q.lim - (SELECT count(*) FROM tasks r WHERE r.owner = q.who
      AND r.owner_node IS NOT NULL AND r.status IN ('queued', 'running') AND r.task_type = ANY($1)) AS left_n
    FROM unnest(${qo}::text[], ${ql}::int[]) AS q(who, lim)
  ), c AS (
    SELECT task_id, seq, ${claimOrder(fair)} AS k, room.left_n,
      row_number() OVER (PARTITION BY tasks.owner ORDER BY ${claimOrder(fair)}, seq) AS rn
    FROM tasks${fairJoin(fair)} LEFT JOIN room ON room.who = tasks.owner
    WHERE ${claimable}
  ), pick AS (
    SELECT task_id FROM c WHERE left_n IS NULL OR rn <= left_n ORDER BY k, seq LIMIT $5
  )
  UPDATE tasks t SET owner_node = $6, node_name = $4, lease_epoch = t.lease_epoch + 1
  FROM pick WHERE t.task_id = pick.task_id AND t.status = 'queued' AND t.owner_node IS NULL
  RETURNING ${claimed}`;
}

const fairJoin = (fair: boolean) =>
  fair ? ' LEFT JOIN unnest($8::text[], $9::float8[]) AS f(who, off_ms) ON f.who = tasks.owner' : '';
const claimOrder = (fair: boolean) => (fair ? 'queue_key + coalesce(f.off_ms, 0)' : 'queue_key');

/** What a lane may claim: waiting, unowned, of its kinds, requests, memory and node. */
const claimable = `status = 'queued' AND owner_node IS NULL
      AND task_type = ANY($1) AND device_request = ANY($2)
      AND ($3::float8 IS NULL OR gpu_memory_gb IS NULL OR gpu_memory_gb <= $3)
      AND (pin_node IS NULL OR pin_node = $4)
      -- A node that may have been declared lost (its lease ran out) claims nothing.
      AND EXISTS (SELECT 1 FROM nodes WHERE node_id = $6 AND state = 'active'
        AND now() - heartbeat_at < $7 * interval '1 millisecond')`;

const claimed = `t.task_id, t.task_type, t.priority, t.device_request, t.gpu_memory_gb, t.attempts,
    t.enqueued_at, t.lease_epoch, t.owner`;

/** Second half of the advisory lock key that claims with running quotas take, one at a time. */
const LOCK_QUOTA_CLAIM = 4;

/** The four claim statements, by [fair share][running quotas]. */
const CLAIMS = [
  [claimSql(false), quotaClaimSql(false)],
  [claimSql(true), quotaClaimSql(true)],
];

/**
 * Nodes, claims and failover on the PostgreSQL store's database (the pool is the store's). Times
 * that decide a lease are the database's (now()), so the nodes' clocks never have to agree.
 */
export class PgCluster {
  constructor(
    private readonly pool: pg.Pool,
    private readonly lockSpace: number,
  ) {}

  /** NOTIFY on `channel` (committed at once: the statement is its own transaction). */
  async notify(channel: string, payload: string): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  /** Marks a running task for cancellation by its owner; false when no node runs it. */
  async requestCancel(taskId: string): Promise<boolean> {
    const res = await this.pool.query(
      "UPDATE tasks SET cancel_requested = true WHERE task_id = $1 AND status = 'running' AND owner_node IS NOT NULL RETURNING 1",
      [taskId],
    );
    return (res.rowCount ?? 0) > 0;
  }

  /** Running tasks of this node that someone asked to cancel. */
  async cancelsFor(nodeId: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ task_id: string }>(
      "SELECT task_id FROM tasks WHERE owner_node = $1 AND cancel_requested AND status = 'running'",
      [nodeId],
    );
    return rows.map((r) => r.task_id);
  }

  /** A fresh node row for this process; its id. */
  async registerNode(reg: NodeRegistration): Promise<string> {
    const id = randomUUID();
    await this.pool.query(
      'INSERT INTO nodes (node_id, name, host, pid, devices, limits) VALUES ($1, $2, $3, $4, $5, $6)',
      [id, reg.name, os.hostname(), process.pid, JSON.stringify(reg.devices), JSON.stringify(reg.limits)],
    );
    return id;
  }

  /**
   * Renews the node's lease and records what it runs. Returns its stored state, or null when it
   * was marked lost (its tasks have been re-queued: it must stop their work and claim nothing).
   */
  async heartbeat(
    nodeId: string,
    now: Pick<NodeRow, 'usage' | 'devices' | 'limits'>,
  ): Promise<NodeState | null> {
    const { rows } = await this.pool.query<{ state: NodeState }>(
      `UPDATE nodes SET heartbeat_at = now(), usage = $2, devices = $3, limits = $4
       WHERE node_id = $1 AND state IN ('active', 'draining') RETURNING state`,
      [nodeId, JSON.stringify(now.usage), JSON.stringify(now.devices), JSON.stringify(now.limits)],
    );
    return rows[0]?.state ?? null;
  }

  /** Sets a node's state (drain, or stopped at a clean exit); false if no such live node. */
  async setState(nodeId: string, state: NodeState): Promise<boolean> {
    const res = await this.pool.query(
      "UPDATE nodes SET state = $2 WHERE node_id = $1 AND state IN ('active', 'draining') RETURNING 1",
      [nodeId, state],
    );
    return (res.rowCount ?? 0) > 0;
  }

  /** Every node that has not stopped cleanly, newest start first per name. */
  async listNodes(leaseMs: number, includeStopped = false): Promise<NodeRow[]> {
    const { rows } = await this.pool.query<NodeRow & { devices: string; limits: string; usage: string }>(
      `SELECT node_id, name, host, pid, devices, limits, usage, started_at, heartbeat_at,
         extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_s,
         CASE WHEN state IN ('active', 'draining') AND now() - heartbeat_at > $1 * interval '1 millisecond'
           THEN 'lost' ELSE state END AS state
       FROM nodes ${includeStopped ? '' : "WHERE state <> 'stopped'"}
       ORDER BY name, started_at DESC`,
      [leaseMs],
    );
    return rows.map((r) => ({
      ...r,
      devices: JSON.parse(r.devices) as DeviceInfo[],
      limits: JSON.parse(r.limits) as NodeRow['limits'],
      usage: JSON.parse(r.usage) as NodeRow['usage'],
    }));
  }

  /**
   * Claims, lane by lane, what this node can start now (see CLAIM). Each lane's claim commits on
   * its own: if a later lane fails, what earlier ones claimed is returned (the error comes back at
   * the next claim).
   */
  async claim(
    node: { id: string; name: string },
    lanes: readonly ClaimLane[],
    leaseMs: number,
    offsets: OwnerOffsets = new Map(),
  ): Promise<ClaimedTask[]> {
    const out: ClaimedTask[] = [];
    const fair = [...offsets.values()].some((o) => o !== 0);
    const owners = fair ? [[...offsets.keys()], [...offsets.values()]] : [];
    for (const lane of lanes) {
      if (lane.limit <= 0 || lane.kinds.length === 0 || lane.requests.length === 0) continue;
      const quotas = lane.quotas ?? [];
      const quotaArgs = quotas.length ? [quotas.map((q) => q.owner), quotas.map((q) => q.limit)] : [];
      const sql = CLAIMS[Number(fair)]![Number(quotas.length > 0)]!;
      const args = [
        lane.kinds,
        lane.requests,
        lane.maxMemGb,
        node.name,
        lane.limit,
        node.id,
        leaseMs,
        ...owners,
        ...quotaArgs,
      ];
      try {
        out.push(
          ...(quotas.length ? await this.claimWithQuotas(sql, args) : await this.claimRows(sql, args)),
        );
      } catch (err) {
        if (out.length === 0) throw err;
        break;
      }
    }
    return out;
  }

  private async claimRows(sql: string, args: unknown[]): Promise<ClaimedTask[]> {
    return (await this.pool.query<ClaimedTask>(sql, args)).rows;
  }

  /** A claim with running quotas, one at a time in the cluster (see quotaClaimSql). */
  private claimWithQuotas(sql: string, args: unknown[]): Promise<ClaimedTask[]> {
    return inTransaction(this.pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [this.lockSpace, LOCK_QUOTA_CLAIM]);
      return (await client.query<ClaimedTask>(sql, args)).rows;
    });
  }

  /** Waiting tasks owned by this node that it does not hold (`held`): given back. Their ids. */
  async releaseStrays(nodeId: string, held: readonly string[]): Promise<string[]> {
    const { rows } = await this.pool.query<{ task_id: string }>(
      `UPDATE tasks SET owner_node = NULL, node_name = NULL
       WHERE owner_node = $1 AND status = 'queued' AND NOT (task_id = ANY($2)) RETURNING task_id`,
      [nodeId, held],
    );
    return rows.map((r) => r.task_id);
  }

  /** The first `limit` waiting tasks in claim order, how many wait in all, and who runs what. */
  async waitingTasks(limit: number): Promise<WaitingView> {
    const [order, count, running] = await Promise.all([
      this.pool.query<WaitingTask>(
        `SELECT task_id, task_type, priority, enqueued_at, device_request, gpu_memory_gb, pin_node, owner FROM tasks
         WHERE status = 'queued' AND owner_node IS NULL ORDER BY queue_key, seq LIMIT $1`,
        [limit],
      ),
      this.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM tasks WHERE status = 'queued' AND owner_node IS NULL",
      ),
      this.pool.query<{ owner: string; task_type: string; n: number }>(
        `SELECT owner, task_type, count(*)::int AS n FROM tasks
         WHERE owner IS NOT NULL AND owner_node IS NOT NULL AND status IN ('queued', 'running')
         GROUP BY owner, task_type`,
      ),
    ]);
    return { tasks: order.rows, total: count.rows[0]?.n ?? 0, running: running.rows };
  }

  /** Gives back a claimed task that was not started (still queued); false if the fence is stale. */
  async unclaim(taskId: string, fence: Fence): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE tasks SET owner_node = NULL, node_name = NULL
       WHERE task_id = $1 AND owner_node = $2 AND lease_epoch = $3 AND status = 'queued' RETURNING 1`,
      [taskId, fence.node, fence.epoch],
    );
    return (res.rowCount ?? 0) > 0;
  }

  /**
   * Marks nodes past their lease as lost and puts every task held by no live node back in the
   * queue, each with a log line naming the node (its next start counts the next attempt). One sweeper at
   * a time (a transaction-scoped advisory lock); the others return at once with nothing. A sweeper
   * stalled mid-transaction loses its session (and the lock) after a third of the lease.
   */
  async sweepLost(leaseMs: number): Promise<SweepResult> {
    return inTransaction(this.pool, async (client) => {
      // A node frozen inside this transaction (SIGSTOP, a VM paused) would hold the lock, and so
      // stop every sweep, for as long as it stays frozen: the server ends such a session instead.
      await client.query(
        `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(1000, Math.round(leaseMs / 3))}`,
      );
      const { rows: lock } = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1, $2) AS ok',
        [this.lockSpace, LOCK_SWEEP],
      );
      if (!lock[0]?.ok) return { lost: [], requeued: [] };
      const { rows: lost } = await client.query<{ node_id: string; name: string }>(
        `UPDATE nodes SET state = 'lost'
         WHERE state IN ('active', 'draining') AND now() - heartbeat_at > $1 * interval '1 millisecond'
         RETURNING node_id, name`,
        [leaseMs],
      );
      return { lost, requeued: await requeueOrphans(client) };
    });
  }
}

/**
 * Tasks whose owner is no live node (lost, stopped without giving them back, or gone), back in
 * the queue, each with a log line naming the node (one statement).
 */
async function requeueOrphans(client: pg.PoolClient): Promise<SweepResult['requeued']> {
  const { rows } = await client.query<{ task_id: string; node: string; was: string }>(
    `WITH old AS (
       SELECT t.task_id, t.status AS was, t.attempts, t.device, coalesce(n.name, t.owner_node) AS node,
         coalesce(n.state, 'gone') AS node_state
       FROM tasks t LEFT JOIN nodes n ON n.node_id = t.owner_node
       WHERE t.status IN ('queued', 'running') AND t.owner_node IS NOT NULL
         AND (n.node_id IS NULL OR n.state NOT IN ('active', 'draining'))
       FOR UPDATE OF t SKIP LOCKED
     ),
     moved AS (
       UPDATE tasks t SET owner_node = NULL, node_name = NULL, device = NULL,
         -- A cancel asked while its node was gone is carried out now, not on the next node.
         status = CASE WHEN t.cancel_requested THEN 'cancelled' ELSE 'queued' END,
         finished_at = CASE WHEN t.cancel_requested THEN now() ELSE t.finished_at END,
         message = CASE WHEN t.cancel_requested THEN 'cancelled (its node was lost)'
           ELSE 'waiting for a slot (re-queued from node ' || old.node || ')' END,
         log_seq = t.log_seq + 1, updated_at = now()
       FROM old WHERE t.task_id = old.task_id
       RETURNING t.task_id, t.log_seq, t.status, old.was, old.attempts, old.device, old.node, old.node_state
     ),
     logged AS (
       INSERT INTO task_logs (task_id, seq, timestamp, level, message)
       SELECT task_id, log_seq, now(), 'WARNING',
         'Node ' || node ||
         CASE WHEN node_state = 'stopped' THEN ' shut down without handing this task back'
           ELSE ' stopped answering (no heartbeat within the lease)' END ||
         CASE WHEN was = 'running'
           THEN ' while it was running (attempt ' || attempts || ' on ' || coalesce(device, 'unknown device') || ')'
           ELSE '' END ||
         CASE WHEN status = 'cancelled' THEN '; cancelled, as was asked'
           WHEN was = 'running' THEN '; re-queued to run again' ELSE '; re-queued' END
       FROM moved
     )
     SELECT task_id, node, was FROM moved WHERE status = 'queued'`,
  );
  return rows;
}
