import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSources {
  taskCounts(): { kind: string; status: string; n: number }[];
  queueLength(): number;
  slots(): { device: string; cls: string; used: number; limit: number }[];
  logStreams(): number;
  /** In a cluster: the nodes by state, as of this node's last heartbeat. */
  clusterNodes?(): { state: string; n: number }[];
}

/**
 * Prometheus metrics of one service instance (its own registry: no process-wide singleton).
 * Gauges are computed at scrape time from the live counters, so they cost nothing between scrapes.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly dispatchLatency: Histogram;
  readonly rejected: Counter<'reason'>;
  private sources: MetricsSources | null = null;

  constructor() {
    const registers = [this.registry];
    this.httpDuration = new Histogram({
      name: 'rfuav_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.dispatchLatency = new Histogram({
      name: 'rfuav_dispatch_latency_seconds',
      help: 'Time from a scheduling event (submission, freed slot, limit change) to the task it started being marked running',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.rejected = new Counter({
      name: 'rfuav_http_rejected_total',
      help: 'Requests refused before reaching a handler',
      labelNames: ['reason'],
      registers,
    });
    // prom-client calls collect() with the gauge as `this`; the sources are read through a getter.
    const sources = () => this.sources;
    new Gauge({
      name: 'rfuav_tasks',
      help: 'Stored tasks by kind and status',
      labelNames: ['kind', 'status'],
      registers,
      collect() {
        this.reset();
        for (const c of sources()?.taskCounts() ?? []) this.set({ kind: c.kind, status: c.status }, c.n);
      },
    });
    new Gauge({
      name: 'rfuav_queue_length',
      help: 'Tasks waiting for a slot',
      registers,
      collect() {
        this.set(sources()?.queueLength() ?? 0);
      },
    });
    new Gauge({
      name: 'rfuav_slots_in_use',
      help: 'Running tasks per device and resource class',
      labelNames: ['device', 'class'],
      registers,
      collect() {
        this.reset();
        for (const s of sources()?.slots() ?? []) this.set({ device: s.device, class: s.cls }, s.used);
      },
    });
    new Gauge({
      name: 'rfuav_slot_limit',
      help: 'Slot limit per device and resource class',
      labelNames: ['device', 'class'],
      registers,
      collect() {
        this.reset();
        for (const s of sources()?.slots() ?? []) this.set({ device: s.device, class: s.cls }, s.limit);
      },
    });
    new Gauge({
      name: 'rfuav_log_streams',
      help: 'Open live log followers',
      registers,
      collect() {
        this.set(sources()?.logStreams() ?? 0);
      },
    });
    new Gauge({
      name: 'rfuav_cluster_nodes',
      help: 'Cluster nodes by state (active, draining, lost), as this node last saw them',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const c of sources()?.clusterNodes?.() ?? []) this.set({ state: c.state }, c.n);
      },
    });
  }

  /**
   * Reads the figures from `sources`; in a cluster, every series also gets a `node` label (this
   * node's name), so one Prometheus scraping every node behind the balancer tells them apart.
   */
  attach(sources: MetricsSources, node?: string): void {
    this.sources = sources;
    if (node) this.registry.setDefaultLabels({ node });
  }
}
