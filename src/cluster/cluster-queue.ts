import type { DeviceInfo } from '../domain/devices.js';
import { RESOURCE_CLASSES, type ResourceClass } from '../domain/task.js';
import { SchedulerCore } from '../scheduler/core.js';
import type { FairShare } from '../scheduler/fair-share.js';
import type { User } from '../domain/users.js';
import { RecentMap } from '../util/recent.js';
import { coreSnapshot, type QueueSnapshot, type TaskQueue, type WaitingInfo } from '../scheduler/queue.js';
import type { Limits, Placement, QueueEntry } from '../scheduler/types.js';
import type {
  ClaimLane,
  ClaimedTask,
  Fence,
  NodeRow,
  PgCluster,
  WaitingTask,
  WaitingView,
} from '../store/postgres/cluster.js';
import { clusterPendingReason } from './pending-reason.js';

export interface ClusterQueueOptions {
  cluster: PgCluster;
  /** This process's node (id from its registration). */
  node: { id: string; name: string };
  devices: DeviceInfo[];
  agingIntervalMs: number;
  /** Task kinds per resource class (the registry's). */
  kindsOf: Record<ResourceClass, readonly string[]>;
  /** What `cuda` means on a node without GPUs, as at submission. */
  cudaFallback: 'cpu' | 'reject';
  /** Tasks given back to the shared queue (other nodes may claim them now). */
  onGivenBack?: (ids: string[]) => void;
  /** A node whose heartbeat is older than this claims nothing (it may have been declared lost). */
  leaseMs: number;
  /** The cluster's nodes as of the last heartbeat (what pending reasons are worked out from). */
  nodes?: () => readonly NodeRow[];
  /**
   * Usage per user, shared with the service (which saves it to the common ledger and reads every
   * node's charges back): this node charges its own running tasks, and claims in fair-share order.
   */
  fairShare?: FairShare;
  /**
   * The team, with their quotas: running quotas and spent GPU budgets are enforced across the
   * cluster by the claim, and by this node's scheduler for tasks claimed together. Read at every
   * claim, so a quota changed live applies to the next one.
   */
  users?: { get(name: string): User | undefined; list(): readonly User[] };
}

/**
 * The queue shared through PostgreSQL (the TaskQueue seam's second implementation). Waiting tasks
 * live only in the database; `claim` takes, lane by lane, what this node can start now (its free
 * slots per device × class, GPU memory), in the cluster-wide order, and places it with the same
 * SchedulerCore a single node uses — which here holds only this node's claimed and running tasks.
 * A claim that cannot be placed after all is given back at once. Every claim carries an epoch:
 * `fence(id)` is what this node's writes for the task must present.
 */
export class ClusterQueue implements TaskQueue {
  private readonly core: SchedulerCore;
  /** Tasks this node holds a claim on now (claimed, starting or running) → the claim's epoch. */
  private readonly held = new Map<string, number>();
  /**
   * The epochs of claims that have ended, kept for a while: every write this node makes for a task
   * it once claimed stays fenced, so a write still on its way when the claim was lost or given
   * back (a log line, a final status) can never land unfenced. (Held claims are never evicted.)
   */
  private readonly past = new RecentMap<string, number>(20_000);
  private readonly givingBack = new Set<Promise<unknown>>();
  private claiming = false;
  private draining = false;
  private waiting: {
    order: Map<string, { position: number; task: WaitingTask }>;
    byClass: Record<ResourceClass, number>;
    total: number;
    /** Owner → class → tasks claimed or running in the whole cluster. */
    runningBy: Map<string, Record<ResourceClass, number>>;
  } = {
    order: new Map(),
    byClass: { training: 0, inference: 0, preprocessing: 0 },
    total: 0,
    runningBy: new Map(),
  };
  private readonly classOf = new Map<string, ResourceClass>();

  constructor(private readonly opts: ClusterQueueOptions) {
    this.core = new SchedulerCore({
      devices: opts.devices,
      limits: {},
      agingIntervalMs: opts.agingIntervalMs,
      fairShare: opts.fairShare,
      quotas: (owner) => opts.users?.get(owner)?.quotas,
    });
    for (const cls of RESOURCE_CLASSES) for (const k of opts.kindsOf[cls]) this.classOf.set(k, cls);
  }

  /** The fence of a task this node has claimed (undefined: not this node's). */
  fence(id: string): Fence | undefined {
    const epoch = this.held.get(id) ?? this.past.get(id);
    return epoch === undefined ? undefined : { node: this.opts.node.id, epoch };
  }

  /** A draining node claims nothing more; what it runs finishes. */
  setDraining(on: boolean): void {
    this.draining = on;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Accepted tasks are already waiting in the database, where every node claims from. */
  add(_entries: readonly QueueEntry[]): void {}

  /** Waiting tasks are cancelled in the database (a status change); nothing waits here. */
  remove(id: string): boolean {
    return this.core.remove(id);
  }

  async claim(): Promise<Placement[]> {
    if (this.draining) return [];
    const lanes = this.lanes();
    if (lanes.length === 0) return [];
    this.claiming = true;
    let claimed: ClaimedTask[];
    try {
      claimed = await this.opts.cluster.claim(this.opts.node, lanes, this.opts.leaseMs, this.offsets());
    } finally {
      this.claiming = false;
    }
    const unplaced: string[] = [];
    for (const c of claimed) {
      this.held.set(c.task_id, c.lease_epoch);
      try {
        this.core.enqueue(this.entryOf(c));
      } catch {
        // Claimed again while this node's previous run of it is still stopping: let it go.
        unplaced.push(c.task_id);
      }
    }
    const placed = this.core.dispatch(Date.now());
    for (const c of claimed) if (this.core.isWaiting(c.task_id)) unplaced.push(c.task_id);
    for (const id of unplaced) {
      this.core.remove(id);
      this.giveBack(id);
    }
    return placed;
  }

  /**
   * Gives back what the database says this node holds but it does not (a hand-back that failed,
   * a claim whose answer was lost), unless a claim is on its way. Run from the heartbeat.
   */
  async reconcile(): Promise<void> {
    if (this.claiming) return;
    const freed = await this.opts.cluster.releaseStrays(this.opts.node.id, [...this.held.keys()]);
    if (freed.length > 0) this.opts.onGivenBack?.(freed);
  }

  /**
   * Fair share in the claim order: each user with usage on the common ledger, their keys moved
   * back by their steps (as the single-node core does; users with no usage move by none).
   */
  private offsets(): Map<string, number> {
    const fs = this.opts.fairShare;
    if (!fs?.enabled) return new Map();
    const unit = this.opts.agingIntervalMs > 0 ? this.opts.agingIntervalMs : 1;
    return new Map([...fs.factors(Date.now())].map(([user, f]) => [user, f.steps * unit]));
  }

  accrue(now: number): void {
    this.core.accrue(now);
  }

  /** Frees the slot; a claim that never started goes back to the shared queue. */
  release(id: string): void {
    this.core.release(id, Date.now());
    this.core.remove(id);
    this.giveBack(id);
  }

  isWaiting(id: string): boolean {
    // Anything not claimed here may be waiting in the database: the caller's status change
    // (queued → cancelled) decides.
    return !this.held.has(id);
  }

  isRunning(id: string): boolean {
    return this.core.isRunning(id);
  }

  setDevices(devices: DeviceInfo[]): void {
    this.core.setDevices(devices);
  }

  /** This node's devices, as the scheduler places on them. */
  devices(): DeviceInfo[] {
    return this.core.getDevices();
  }

  setLimits(limits: Limits): void {
    this.core.setLimits(limits);
  }

  getLimits(): Limits {
    return this.core.getLimits();
  }

  /** Replaces the view of the cluster-wide queue (NodeAgent refreshes it on every poll). */
  setWaiting({ tasks, total, running }: WaitingView): void {
    const order = new Map<string, { position: number; task: WaitingTask }>();
    const byClass: Record<ResourceClass, number> = { training: 0, inference: 0, preprocessing: 0 };
    tasks.forEach((t, i) => {
      order.set(t.task_id, { position: i + 1, task: t });
      const cls = this.classOf.get(t.task_type);
      if (cls) byClass[cls]++;
    });
    const runningBy = new Map<string, Record<ResourceClass, number>>();
    for (const r of running) {
      const cls = this.classOf.get(r.task_type);
      if (!cls) continue;
      let mine = runningBy.get(r.owner);
      if (!mine) runningBy.set(r.owner, (mine = { training: 0, inference: 0, preprocessing: 0 }));
      mine[cls] += r.n;
    }
    this.waiting = { order, byClass, total, runningBy };
  }

  /**
   * Why the task's owner holds it back, before any slot is looked at: their running quota, their
   * spent GPU budget, or (a prefix to the slot's reason) fair share. Null: nothing of theirs.
   */
  private teamReason(
    t: WaitingTask,
    cls: ResourceClass,
    now: number,
  ): { reason: string; prefix: boolean } | null {
    const owner = t.owner;
    if (!owner) return null;
    const quotas = this.opts.users?.get(owner)?.quotas;
    const limit = quotas?.running?.[cls];
    const running = this.waiting.runningBy.get(owner)?.[cls] ?? 0;
    if (limit !== undefined && running >= limit)
      return {
        reason: `${owner} has ${running} ${cls} task(s) claimed or running in the cluster, their quota (${limit}); this one starts when one of them ends`,
        prefix: false,
      };
    if (t.device_request !== 'cpu' && this.gpuBudgetSpent().includes(owner))
      return {
        reason: `${owner} has used their ${quotas?.gpu_hours_per_day} GPU-hours of the last 24 h; their GPU tasks wait until older use leaves the window`,
        prefix: false,
      };
    const f = this.opts.fairShare?.factors(now).get(owner);
    if (f && f.steps > 0 && f.usedOverShare > 1)
      return {
        reason: `${owner} has used ${f.usedOverShare.toFixed(1)}× their share recently; tasks of users below their share go first`,
        prefix: true,
      };
    return null;
  }

  waitingInfo(id: string, now: number): WaitingInfo | undefined {
    const w = this.waiting.order.get(id);
    if (!w) return undefined;
    const aging = this.opts.agingIntervalMs;
    const gained = aging > 0 ? Math.floor((now - Date.parse(w.task.enqueued_at)) / aging) : 0;
    const cls = this.classOf.get(w.task.task_type) ?? 'preprocessing';
    const team = this.teamReason(w.task, cls, now);
    const slot = () =>
      clusterPendingReason(
        { cls, request: w.task.device_request ?? 'cpu', memGb: w.task.gpu_memory_gb, pin: w.task.pin_node },
        this.opts.nodes?.() ?? [],
      );
    return {
      position: w.position,
      reason: !team ? slot() : team.prefix ? `${team.reason}; ${slot()}` : team.reason,
      effectivePriority: Math.max(1, w.task.priority - gained),
    };
  }

  get waitingCount(): number {
    return this.waiting.total;
  }

  snapshot(): QueueSnapshot {
    return coreSnapshot(this.core, { count: this.waiting.total, byClass: this.waiting.byClass });
  }

  /** Tasks this node holds a claim on (running or about to). */
  claimedIds(): string[] {
    return [...this.held.keys()];
  }

  /** Forgets every claim at once (the node was declared lost: the claims are void already). */
  dropAllClaims(): void {
    for (const [id, epoch] of this.held) this.past.set(id, epoch);
    this.held.clear();
  }

  /** Resolves when every claim being given back has been (before the store closes). */
  async settle(): Promise<void> {
    await Promise.all([...this.givingBack]);
  }

  private giveBack(id: string): void {
    const epoch = this.held.get(id);
    if (epoch === undefined) return;
    this.held.delete(id);
    this.past.set(id, epoch);
    // Only a task still queued goes back (a shutdown interrupted it, or it was never started);
    // a finished one keeps its row as it is. A failed hand-back is retried by reconcile.
    const p = this.opts.cluster
      .unclaim(id, { node: this.opts.node.id, epoch })
      .then((back) => back && this.opts.onGivenBack?.([id]))
      .catch(() => false);
    this.givingBack.add(p);
    void p.finally(() => this.givingBack.delete(p));
  }

  private entryOf(c: ClaimedTask): QueueEntry {
    const cls = this.classOf.get(c.task_type) ?? 'preprocessing';
    return {
      id: c.task_id,
      cls,
      request: this.localRequest(cls, c.device_request),
      memGb: c.gpu_memory_gb,
      priority: c.priority,
      enqueuedAt: Date.parse(c.enqueued_at),
      owner: c.owner ?? undefined,
    };
  }

  /** A stored device request as this node places it (submission resolved it on some node). */
  private localRequest(cls: ResourceClass, stored: string | null): string {
    if (cls === 'preprocessing' || stored === 'cpu') return 'cpu';
    const gpus = this.core.getDevices().some((d) => d.kind === 'gpu');
    if (!gpus) return 'cpu';
    return stored ?? 'cuda';
  }

  /** What this node could start now, per class and device kind (see ClaimLane). */
  private lanes(): ClaimLane[] {
    const devices = this.core.getDevices();
    const gpus = devices.filter((d) => d.kind === 'gpu');
    const lanes: ClaimLane[] = [];
    for (const cls of RESOURCE_CLASSES) {
      const kinds = this.opts.kindsOf[cls];
      if (kinds.length === 0) continue;
      const cpuFree = this.free('cpu', cls);
      const cpuRequests = ['cpu'];
      if (cls !== 'preprocessing' && gpus.length === 0) {
        cpuRequests.push('auto');
        if (this.opts.cudaFallback === 'cpu') cpuRequests.push('cuda');
      }
      const quotas = (this.opts.users?.list() ?? []).flatMap((u) => {
        const limit = u.quotas.running?.[cls];
        return limit === undefined ? [] : [{ owner: u.name, limit }];
      });
      if (cpuFree > 0) lanes.push({ kinds, requests: cpuRequests, maxMemGb: null, limit: cpuFree, quotas });
      if (cls === 'preprocessing' || gpus.length === 0) continue;
      const open = gpus.filter((g) => this.free(g.id, cls) > 0);
      if (open.length === 0) continue;
      // Users whose daily GPU-hours are spent claim no GPU work (as a running quota of 0).
      const spent = this.gpuBudgetSpent();
      lanes.push({
        kinds,
        requests: ['cuda', 'auto', ...open.map((g) => g.id)],
        maxMemGb: Math.max(...open.map((g) => this.core.freeMemoryGb(g.id))),
        limit: open.reduce((n, g) => n + this.free(g.id, cls), 0),
        quotas: [
          ...quotas.filter((q) => !spent.includes(q.owner)),
          ...spent.map((owner) => ({ owner, limit: 0 })),
        ],
      });
    }
    return lanes;
  }

  /** Users over their GPU-hours per day, as the ledger last counted them. */
  private gpuBudgetSpent(): string[] {
    const fs = this.opts.fairShare;
    if (!fs) return [];
    return (this.opts.users?.list() ?? [])
      .filter((u) => {
        const hours = u.quotas.gpu_hours_per_day;
        return hours !== undefined && fs.gpuSecondsToday(u.name) >= hours * 3600;
      })
      .map((u) => u.name);
  }

  private free(device: string, cls: ResourceClass): number {
    const used = this.core.usage()[device]?.[cls] ?? 0;
    return Math.max(0, this.core.limit(device, cls) - used);
  }
}
