import type { Logger } from 'pino';
import type { QueueSnapshot } from '../scheduler/queue.js';
import type { NodeRow, NodeState, PgCluster } from '../store/postgres/cluster.js';
import type { ClusterQueue } from './cluster-queue.js';

export interface NodeAgentOptions {
  cluster: PgCluster;
  queue: ClusterQueue;
  /** This node; `id` is replaced when the node has to register again (it was declared lost). */
  node: { id: string; name: string };
  heartbeatMs: number;
  leaseMs: number;
  pollMs: number;
  /** When the lease was last renewed before the agent took over (the node's registration). */
  renewedAt: number;
  snapshot: () => QueueSnapshot;
  /** Something may be claimable: run a dispatch pass. */
  wake: () => void;
  /** Stop the local work of these tasks at once: this node's claims on them are void. */
  abandon: (ids: string[], why: string) => void;
  /** Tell every node these tasks are claimable (they were re-queued by a sweep). */
  requeued: (ids: string[]) => void;
  /** Cancel these tasks if they run here (asked on another node). */
  cancel: (ids: string[]) => void;
  /** The cluster's nodes as of this heartbeat (for health, without a query per request). */
  nodes?: (nodes: NodeRow[]) => void;
  logger: Logger;
}

/**
 * A cluster node's life in the database: heartbeats (which renew its lease and report what it
 * runs), the sweep of lost nodes (any node may run it; one at a time), the backstop poll for work
 * submitted elsewhere, draining, and self-fencing — a node that cannot renew its lease stops its
 * own work before the lease runs out, so a task never runs on two nodes.
 */
export class NodeAgent {
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** When the last heartbeat that renewed the lease was sent (the lease runs from then at best). */
  private lastRenewed: number;
  private fenced = false;
  private beating: Promise<void> | null = null;
  private stopping = false;
  state: NodeState = 'active';

  constructor(private readonly o: NodeAgentOptions) {
    this.lastRenewed = o.renewedAt;
  }

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.beat(), this.o.heartbeatMs);
    this.pollTimer = setInterval(() => void this.poll(), this.o.pollMs);
    // Checked on its own clock, not only when a heartbeat fails: a heartbeat that hangs (a
    // network that drops packets) must not keep the node from fencing itself.
    this.deadlineTimer = setInterval(() => this.selfFenceIfDue(), Math.max(50, this.o.heartbeatMs / 2));
    for (const t of [this.heartbeatTimer, this.pollTimer, this.deadlineTimer]) t.unref();
    void this.beat();
  }

  /** One heartbeat: renew, learn the stored state, sweep lost nodes, tidy this node's claims. */
  beat(): Promise<void> {
    if (this.beating || this.stopping) return this.beating ?? Promise.resolve();
    this.beating = this.beatOnce().finally(() => (this.beating = null));
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    try {
      const sent = Date.now();
      const s = this.o.snapshot();
      const state = await this.o.cluster.heartbeat(this.o.node.id, {
        usage: s.usage,
        devices: s.devices,
        limits: s.limits,
      });
      if (this.stopping) return;
      // Fenced meanwhile: the work was stopped, so this id must not keep its claims alive.
      if (state === null || this.fenced) await this.rejoin(state === null ? 'declared lost' : 'fenced');
      else {
        this.lastRenewed = sent;
        this.state = state;
        this.o.queue.setDraining(state === 'draining');
      }
      // Cancels asked elsewhere, in case their notification was lost.
      const cancels = await this.o.cluster.cancelsFor(this.o.node.id);
      if (cancels.length > 0) this.o.cancel(cancels);
      await this.o.queue.reconcile();
      const swept = await this.o.cluster.sweepLost(this.o.leaseMs);
      for (const n of swept.lost)
        this.o.logger.warn({ node: n.name }, 'node lost (no heartbeat within the lease)');
      if (swept.requeued.length > 0) this.o.requeued(swept.requeued.map((t) => t.task_id));
      this.o.nodes?.(await this.o.cluster.listNodes(this.o.leaseMs));
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'heartbeat failed');
      this.selfFenceIfDue();
    }
  }

  /**
   * Whether this node may still act as the owner of its tasks for `forMs` more: it has not fenced
   * itself, and it would not have to before then (the runners' keep-alive asks this).
   */
  leaseHolds(forMs: number): boolean {
    return !this.fenced && leaseHoldsFor(this.lastRenewed, forMs, this.o);
  }

  /** Stops claiming; running work finishes (or is re-queued at shutdown). */
  async drain(): Promise<void> {
    this.o.queue.setDraining(true);
    this.state = 'draining';
    await this.o.cluster.setState(this.o.node.id, 'draining');
  }

  /** A clean exit: the node row says so, and nothing of it is swept as lost. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of [this.heartbeatTimer, this.pollTimer, this.deadlineTimer]) if (t) clearInterval(t);
    this.heartbeatTimer = this.pollTimer = this.deadlineTimer = null;
    await this.beating?.catch(() => undefined);
    await this.o.cluster.setState(this.o.node.id, 'stopped').catch(() => undefined);
  }

  private async poll(): Promise<void> {
    try {
      const view = await this.o.cluster.waitingTasks(1000);
      this.o.queue.setWaiting(view);
      if (view.total > 0) this.o.wake();
    } catch {
      // The next heartbeat says whether the database is gone.
    }
  }

  /**
   * The lease is about to run out without renewal: two heartbeats before it does, this node stops
   * every task it runs and claims nothing, since the others will soon consider it lost and run
   * them. Once the database answers again it joins under a new id (rejoin).
   */
  private selfFenceIfDue(): void {
    if (this.fenced || this.stopping) return;
    if (Date.now() - this.lastRenewed < fenceAfterMs(this.o)) return;
    this.fenced = true;
    this.o.queue.setDraining(true);
    const ids = this.o.queue.claimedIds();
    this.o.logger.error(
      { tasks: ids.length },
      "lease about to expire without renewal: stopping this node's work",
    );
    this.o.abandon(ids, 'this node could not renew its lease');
    this.o.queue.dropAllClaims();
  }

  /**
   * This id's claims are void (another node declared it lost, or it fenced itself): its work
   * stops, its row is marked lost so a sweep puts back what it held, and the process joins again
   * under a new id.
   */
  private async rejoin(why: string): Promise<void> {
    const ids = this.o.queue.claimedIds();
    this.o.logger.error(
      { tasks: ids.length, node: this.o.node.name, why },
      'this node rejoins under a new id',
    );
    this.o.abandon(ids, `this node was ${why}`);
    this.o.queue.dropAllClaims();
    await this.o.cluster.setState(this.o.node.id, 'lost');
    const s = this.o.snapshot();
    this.o.node.id = await this.o.cluster.registerNode({
      name: this.o.node.name,
      devices: s.devices,
      limits: s.limits,
    });
    this.lastRenewed = Date.now();
    this.fenced = false;
    this.state = 'active';
    this.o.queue.setDraining(false);
  }
}

/** How long after a renewal a node stops its own work if no other renewal came: two heartbeats before its lease ends. */
export function fenceAfterMs(t: { leaseMs: number; heartbeatMs: number }): number {
  return t.leaseMs - 2 * t.heartbeatMs;
}

/** Whether a lease renewed at `renewedAt` lets its node act for `forMs` more without fencing itself. */
export function leaseHoldsFor(
  renewedAt: number,
  forMs: number,
  t: { leaseMs: number; heartbeatMs: number },
): boolean {
  return Date.now() - renewedAt + forMs <= fenceAfterMs(t);
}
