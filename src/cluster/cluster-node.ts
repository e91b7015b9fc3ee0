import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { DeviceInfo } from '../domain/devices.js';
import type { ResourceClass } from '../domain/task.js';
import type { RunnerKeepAlive } from '../engines/torch/runner.js';
import type { QueueSnapshot } from '../scheduler/queue.js';
import { isLive, type NodeRow, type PgCluster } from '../store/postgres/cluster.js';
import { PgStore } from '../store/postgres/pg-store.js';
import { ClusterLogBus } from './cluster-log-bus.js';
import type { FairShare } from '../scheduler/fair-share.js';
import { ClusterQueue } from './cluster-queue.js';
import { FencedStore } from './fenced-store.js';
import { fenceAfterMs, leaseHoldsFor, NodeAgent } from './node-agent.js';
import { SharedRootCheck } from './shared-root.js';
import { CHANNELS, Wakeups } from './wakeups.js';

/** How long a task's log entries gather before they are written together (and notified). */
const LOG_BATCH_MS = 250;

/** What the node needs of the service it serves (structural: no import of the service layer). */
export interface NodeService {
  requestDispatch(): void;
  reloadLimits(): Promise<void>;
  reloadQuotas(): Promise<void>;
  cancelRequested(ids: readonly string[]): void;
  abandon(ids: readonly string[], why: string): void;
  snapshot(): QueueSnapshot;
  refreshCounts(): Promise<void>;
}

/**
 * This process as a node of a cluster sharing one PostgreSQL database: the fenced store its
 * service writes through, the shared queue it claims from, and the agent that keeps its lease.
 * Built in three steps because the service needs the store and the queue before it exists:
 * `openClusterNode` (store), `makeQueue` (once devices and kinds are known), `attach` (service).
 */
export class ClusterNode {
  readonly store: FencedStore;
  /** The node's log bus: batched writes, and followers of what any node writes. */
  readonly logBus: ClusterLogBus;
  readonly node: { id: string; name: string };
  private queue: ClusterQueue | null = null;
  private agent: NodeAgent | null = null;
  private service: NodeService | null = null;
  private readonly wakeups: Wakeups;
  /** The nodes as of the last heartbeat. */
  private known: NodeRow[] = [];
  /** Registering counts as the first renewal of the lease. */
  private readonly registeredAt = Date.now();
  /**
   * What keeps this node's PyTorch runners going: a deadline on their stdin, `timeoutMs` ahead,
   * sent only while the lease holds beyond it. The timeout is the time between a renewal and the
   * node stopping its own work, less two heartbeats (10 s of the default 30 s lease), so two
   * renewals may come late without stopping anything, and a node that is frozen (SIGSTOP, a hung
   * VM) or cut off cannot leave a runner going after another node has claimed its task: the
   * others wait the whole lease.
   */
  readonly keepAlive: RunnerKeepAlive;
  /** Whether the other nodes' marker files are visible in the data root (shared storage). */
  private readonly sharedRoot: SharedRootCheck;
  /** The node id whose marker is in the data root. */
  private markedId = '';

  private constructor(
    readonly pg: PgStore,
    readonly cluster: PgCluster,
    node: { id: string; name: string },
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.node = node;
    this.sharedRoot = new SharedRootCheck(config.dataRoot, logger, config.node.sharedRootGraceMs);
    this.markDataRoot();
    const timeoutMs = fenceAfterMs(config.node) - 2 * config.node.heartbeatMs;
    this.keepAlive = {
      timeoutMs,
      // Before the agent starts, the registration is the last renewal.
      ok: () =>
        this.agent
          ? this.agent.leaseHolds(timeoutMs)
          : leaseHoldsFor(this.registeredAt, timeoutMs, config.node),
    };
    this.wakeups = new Wakeups(
      config.databaseUrl as string,
      (channel, payload) => cluster.notify(channel, payload),
      {
        [CHANNELS.queue]: () => this.service?.requestDispatch(),
        [CHANNELS.cancel]: (ids) => this.service?.cancelRequested(ids),
        [CHANNELS.logs]: (ids) => this.logBus.poke(ids, false),
        [CHANNELS.logEnd]: (ids) => this.logBus.poke(ids, true),
        [CHANNELS.limits]: () =>
          void this.service
            ?.reloadLimits()
            .catch((err: Error) => logger.warn({ err: err.message }, 'could not reload the slot limits')),
        [CHANNELS.quotas]: () =>
          void this.service
            ?.reloadQuotas()
            .catch((err: Error) => logger.warn({ err: err.message }, 'could not reload the quotas')),
      },
      logger,
      // After a reconnect: what was notified meanwhile is read again.
      () => {
        this.service?.requestDispatch();
        void this.service?.reloadLimits().catch(() => undefined);
        void this.service?.reloadQuotas().catch(() => undefined);
      },
    );
    this.store = new FencedStore(
      pg,
      (id) => this.queue?.fence(id),
      (id) => this.service?.abandon([id], 'another node holds this task now'),
      (what, ids) => this.wakeups.signal(CHANNELS[what], ids),
    );
    this.logBus = new ClusterLogBus(this.store, {
      batchMs: LOG_BATCH_MS,
      pollMs: Math.max(LOG_BATCH_MS, config.node.pollMs),
      written: (id, ended) => this.wakeups.signal(ended ? CHANNELS.logEnd : CHANNELS.logs, [id]),
    });
  }

  makeQueue(
    devices: DeviceInfo[],
    kindsOf: Record<ResourceClass, readonly string[]>,
    fairShare?: FairShare,
  ): ClusterQueue {
    this.queue = new ClusterQueue({
      fairShare,
      users: this.config.users,
      cluster: this.cluster,
      node: this.node,
      devices,
      agingIntervalMs: this.config.agingIntervalMs,
      kindsOf,
      cudaFallback: this.config.cudaFallback,
      leaseMs: this.config.node.leaseMs,
      onGivenBack: (ids) => this.wakeups.signal(CHANNELS.queue, ids),
      nodes: () => this.known,
    });
    return this.queue;
  }

  /** Starts heartbeats, sweeps and polling for `service` (after its start). */
  attach(service: NodeService): void {
    if (!this.queue) throw new Error('makeQueue comes before attach');
    this.service = service;
    const { heartbeatMs, leaseMs, pollMs } = this.config.node;
    this.agent = new NodeAgent({
      cluster: this.cluster,
      queue: this.queue,
      node: this.node,
      heartbeatMs,
      leaseMs,
      pollMs,
      renewedAt: this.registeredAt,
      snapshot: () => service.snapshot(),
      wake: () => service.requestDispatch(),
      abandon: (ids, why) => service.abandon(ids, why),
      requeued: (ids) => this.wakeups.signal(CHANNELS.queue, ids),
      cancel: (ids) => service.cancelRequested(ids),
      nodes: (nodes) => {
        this.known = nodes;
        this.markDataRoot();
        this.sharedRoot.check(nodes, this.node.id);
        // Other nodes change tasks too: health's and /metrics' counts are read again.
        void service.refreshCounts().catch(() => undefined);
      },
      logger: this.logger,
    });
    this.agent.start();
    void this.wakeups.start();
  }

  /**
   * What requests are checked against (ClusterDevices in service/device-request.ts): the GPUs of
   * a live node by name, and what any live node has. Read from the last heartbeat's list, asked
   * again when a name is not in it (a node that joined since).
   */
  readonly devices = {
    gpusOf: async (name: string) => {
      let node = this.live().find((n) => n.name === name);
      if (!node) {
        this.known = await this.nodes();
        node = this.live().find((n) => n.name === name);
      }
      return node ? gpusIn(name === this.node.name ? this.ownDevices() : node.devices) : null;
    },
    anyNode: () => {
      const best = new Map<number, number>();
      for (const devices of [this.ownDevices(), ...this.live().map((n) => n.devices)])
        for (const g of gpusIn(devices)) best.set(g.index, Math.max(best.get(g.index) ?? 0, g.totalMemoryGb));
      return [...best]
        .sort((x, y) => x[0] - y[0])
        .map(([index, totalMemoryGb]) => ({ index, totalMemoryGb }));
    },
    names: () => this.live().map((n) => n.name),
  };

  /** Leaves this node's marker in the data root, again once it has a new id (rejoin). */
  private markDataRoot(): void {
    if (this.markedId === this.node.id) return;
    void this.sharedRoot.mark(this.node);
    this.markedId = this.node.id;
  }

  private live(): NodeRow[] {
    return this.known.filter(isLive);
  }

  private ownDevices(): DeviceInfo[] {
    return this.queue?.devices() ?? [];
  }

  /** The cluster's nodes, as GET /api/v2/nodes shows them. */
  nodes(): Promise<NodeRow[]> {
    return this.cluster.listNodes(this.config.node.leaseMs);
  }

  /** The cluster in figures, as of the last heartbeat (health reads it on every request). */
  summary() {
    const count = (state: string) => this.known.filter((n) => n.state === state).length;
    return {
      node: this.node.name,
      node_id: this.node.id,
      nodes_active: count('active'),
      nodes_draining: count('draining'),
      nodes_lost: count('lost'),
      // Live nodes whose marker file this node cannot see: the data root is not shared with them.
      data_root_unseen_nodes: this.sharedRoot.unseenNodes(),
    };
  }

  /** Asks the node running `taskId` to cancel it (flag + NOTIFY); false when none runs it. */
  async requestCancel(taskId: string): Promise<boolean> {
    if (!(await this.cluster.requestCancel(taskId))) return false;
    this.wakeups.signal(CHANNELS.cancel, [taskId]);
    return true;
  }

  /** Drains a node (its id or name); false when no live node matches. */
  async drain(idOrName: string): Promise<NodeRow | null> {
    const live = (await this.nodes()).filter(isLive);
    const target = live.find((n) => n.node_id === idOrName) ?? live.find((n) => n.name === idOrName);
    if (!target) return null;
    if (target.node_id === this.node.id && this.agent) await this.agent.drain();
    else await this.cluster.setState(target.node_id, 'draining');
    return { ...target, state: 'draining' };
  }

  /** At a clean stop, after the service has stopped: the row says "stopped", nothing is swept. */
  async stop(): Promise<void> {
    await this.queue?.settle();
    await this.agent?.stop();
    await this.wakeups.stop();
  }

  static async open(config: Config, logger: Logger): Promise<ClusterNode> {
    const pg = await PgStore.open({
      url: config.databaseUrl as string,
      poolSize: config.pgPoolSize,
      agingIntervalMs: config.agingIntervalMs,
      onError: (err) => logger.warn({ err: err.message }, 'PostgreSQL connection error (reconnecting)'),
    });
    try {
      const cluster = pg.cluster();
      const node = { id: '', name: config.node.name };
      // Devices and limits are filled in by the first heartbeat, once they are known.
      node.id = await cluster.registerNode({ name: node.name, devices: [], limits: {} });
      return new ClusterNode(pg, cluster, node, config, logger);
    } catch (err) {
      await pg.close();
      throw err;
    }
  }
}

/** The GPUs among a node's devices, by index, as a request is checked against them. */
function gpusIn(devices: readonly DeviceInfo[]): { index: number; totalMemoryGb: number }[] {
  return devices
    .filter((d) => d.kind === 'gpu' && d.index !== null)
    .map((d) => ({ index: d.index as number, totalMemoryGb: d.totalMemoryGb ?? 0 }));
}
