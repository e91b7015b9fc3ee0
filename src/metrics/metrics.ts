import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsSources {
  taskCounts(): { kind: string; status: string; n: number }[];
  queueLength(): number;
  slots(): { device: string; cls: string; used: number; limit: number }[];
  logStreams(): number;
  /** Unfinished tasks per owner and status (read from the store at scrape time). */
  userTasks?(): Promise<{ owner: string | null; status: string; n: number }[]>;
  /** Each user's decayed usage (device-seconds) and fair-share factor. */
  userUsage?(): { user: string; usage: number; factor: number }[];
  /** In a cluster: the nodes by state, as of this node's last heartbeat. */
  clusterNodes?(): { state: string; n: number }[];
  /** This node's GPUs as last read from nvidia-smi (at the refresh interval, not per scrape). */
  gpus?(): {
    index: number;
    name: string;
    utilization: number | null;
    usedMemoryGb: number;
    totalMemoryGb: number;
  }[];
}

const GB = 1024 ** 3;

/**
 * Prometheus metrics of one service instance (its own registry: no process-wide singleton).
 * Gauges are computed at scrape time from the live counters, so they cost nothing between scrapes.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly dispatchLatency: Histogram;
  readonly rejected: Counter<'reason'>;
  readonly taskDuration: Histogram<'kind' | 'status'>;
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
    this.taskDuration = new Histogram({
      name: 'rfuav_task_duration_seconds',
      help: 'Time from a task starting to its end, by kind and final status',
      labelNames: ['kind', 'status'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600],
      registers,
    });
    // The process: CPU, resident memory, heap, event-loop lag, GC (prom-client's standard set).
    collectDefaultMetrics({ register: this.registry });
    // prom-client calls collect() with the gauge as `this`; the sources are read through a getter.
    const sources = () => this.sources;
    scrapeGauges(registers, sources);
    userGauges(registers, sources);
    gpuGauges(registers, sources);
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

type Sources = () => MetricsSources | null;

/** Per-user gauges: tasks waiting and running, usage and fair-share factor. */
function userGauges(registers: Registry[], sources: Sources): void {
  new Gauge({
    name: 'rfuav_user_tasks',
    help: 'Tasks waiting (pending, queued) and running per user',
    labelNames: ['user', 'status'],
    registers,
    async collect() {
      this.reset();
      for (const c of (await sources()?.userTasks?.()) ?? [])
        this.inc({ user: c.owner ?? '(none)', status: c.status === 'running' ? 'running' : 'queued' }, c.n);
    },
  });
  new Gauge({
    name: 'rfuav_user_usage_seconds',
    help: 'Device-seconds each user has used, decayed with the fair-share half-life (CPU seconds weigh 0.1)',
    labelNames: ['user'],
    registers,
    collect() {
      this.reset();
      for (const u of sources()?.userUsage?.() ?? []) this.set({ user: u.user }, u.usage);
    },
  });
  new Gauge({
    name: 'rfuav_user_fair_share',
    help: "Each user's fair-share factor 2^(-usage part / share part): 1 = nothing used lately",
    labelNames: ['user'],
    registers,
    collect() {
      this.reset();
      for (const u of sources()?.userUsage?.() ?? []) this.set({ user: u.user }, u.factor);
    },
  });
}

/** Gauges computed at scrape time from the service's live figures. */
function scrapeGauges(registers: Registry[], sources: Sources): void {
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

/** Per-GPU gauges from the last nvidia-smi reading. */
function gpuGauges(registers: Registry[], sources: Sources): void {
  const gpuGauge = (
    name: string,
    help: string,
    value: (g: NonNullable<ReturnType<NonNullable<MetricsSources['gpus']>>>[number]) => number | null,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['gpu', 'name'],
      registers,
      collect() {
        this.reset();
        for (const g of sources()?.gpus?.() ?? []) {
          const v = value(g);
          if (v !== null) this.set({ gpu: `cuda:${g.index}`, name: g.name }, v);
        }
      },
    });
  gpuGauge('rfuav_gpu_utilization_ratio', 'GPU utilisation (nvidia-smi utilization.gpu) as a ratio', (g) =>
    g.utilization === null ? null : g.utilization / 100,
  );
  gpuGauge(
    'rfuav_gpu_memory_used_bytes',
    'GPU memory in use (nvidia-smi memory.used)',
    (g) => g.usedMemoryGb * GB,
  );
  gpuGauge(
    'rfuav_gpu_memory_total_bytes',
    'GPU memory in all (nvidia-smi memory.total)',
    (g) => g.totalMemoryGb * GB,
  );
}
