import type { Logger } from 'pino';
import type { QueueSnapshot } from '../scheduler/queue.js';
import type { NodeState, PgCluster } from '../store/postgres/cluster.js';
import type { ClusterQueue } from './cluster-queue.js';

export interface NodeAgentOptions {
  cluster: PgCluster;
  queue: ClusterQueue;
  /** This node; `id` is replaced when the node has to register again (it was declared lost). */
  node: { id: string; name: string };
  heartbeatMs: number;
  leaseMs: number;
  pollMs: number;
  snapshot: () => QueueSnapshot;
  /** Something may be claimable: run a dispatch pass. */
  wake: () => void;
  /** Stop the local work of these tasks at once: this node's claims on them are void. */
  abandon: (ids: string[], why: string) => void;
  /** Tell every node these tasks are claimable (they were re-queued by a sweep). */
  requeued: (ids: string[]) => void;
  /** Cancel these tasks if they run here (asked on another node). */
  cancel: (ids: string[]) => void;
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
  private lastRenewed = Date.now();
  private fenced = false;
  private beating = false;
  state: NodeState = 'active';

  constructor(private readonly o: NodeAgentOptions) {}

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.beat(), this.o.heartbeatMs);
    this.pollTimer = setInterval(() => void this.poll(), this.o.pollMs);
    this.heartbeatTimer.unref();
    this.pollTimer.unref();
    void this.beat();
  }

  /** One heartbeat: renew, learn the stored state, sweep lost nodes, refresh the queue view. */
  async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const s = this.o.snapshot();
      const state = await this.o.cluster.heartbeat(this.o.node.id, {
        usage: s.usage,
        devices: s.devices,
        limits: s.limits,
      });
      if (state === null) await this.declaredLost();
      else {
        this.lastRenewed = Date.now();
        if (this.fenced) this.unfence();
        this.state = state;
        this.o.queue.setDraining(state === 'draining');
      }
      // Cancels asked elsewhere, in case their notification was lost.
      const cancels = await this.o.cluster.cancelsFor(this.o.node.id);
      if (cancels.length > 0) this.o.cancel(cancels);
      const swept = await this.o.cluster.sweepLost(this.o.leaseMs);
      for (const n of swept.lost)
        this.o.logger.warn({ node: n.name }, 'node lost (no heartbeat within the lease)');
      if (swept.requeued.length > 0) this.o.requeued(swept.requeued.map((t) => t.task_id));
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'heartbeat failed');
      this.selfFenceIfDue();
    } finally {
      this.beating = false;
    }
  }

  /** Stops claiming; running work finishes (or is re-queued at shutdown). */
  async drain(): Promise<void> {
    this.o.queue.setDraining(true);
    this.state = 'draining';
    await this.o.cluster.setState(this.o.node.id, 'draining');
  }

  /** A clean exit: the node row says so, and nothing of it is swept as lost. */
  async stop(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.heartbeatTimer = this.pollTimer = null;
    await this.o.cluster.setState(this.o.node.id, 'stopped').catch(() => undefined);
  }

  private async poll(): Promise<void> {
    try {
      const { tasks, total } = await this.o.cluster.waitingTasks(1000);
      this.o.queue.setWaiting(tasks, total);
      if (total > 0) this.o.wake();
    } catch {
      // The next heartbeat says whether the database is gone.
    }
  }

  /**
   * Renewal has failed for longer than is safe: well before the lease runs out (two heartbeats
   * early), this node stops every task it runs and claims nothing, since the others will soon
   * consider it lost and run them.
   */
  private selfFenceIfDue(): void {
    if (this.fenced || Date.now() - this.lastRenewed < this.o.leaseMs - 2 * this.o.heartbeatMs) return;
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

  private unfence(): void {
    this.fenced = false;
    this.o.queue.setDraining(this.state === 'draining');
  }

  /** Another node declared this one lost: its claims are void; it starts again under a new id. */
  private async declaredLost(): Promise<void> {
    const ids = this.o.queue.claimedIds();
    this.o.logger.error(
      { tasks: ids.length, node: this.o.node.name },
      'this node was declared lost: stopping its work',
    );
    this.o.abandon(ids, 'this node was declared lost by the cluster');
    this.o.queue.dropAllClaims();
    const s = this.o.snapshot();
    this.o.node.id = await this.o.cluster.registerNode({
      name: this.o.node.name,
      devices: s.devices,
      limits: s.limits,
    });
    this.lastRenewed = Date.now();
    this.unfence();
    this.state = 'active';
  }
}
