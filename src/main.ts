import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { isLoopback, type Config } from './config.js';
import { CpuMonitor } from './devices/cpu.js';
import { DeviceManager } from './devices/manager.js';
import { buildApp } from './http/app.js';
import { augmentJob } from './jobs/augment.js';
import { cropJob } from './jobs/crop.js';
import { evaluationJob } from './jobs/evaluation.js';
import { inferenceJob } from './jobs/inference.js';
import { OnnxSessionCache } from './engines/onnx/engine.js';
import { TorchVersionProbe } from './engines/torch/versions.js';
import { trainingJob } from './jobs/training.js';
import { JobRegistry, type JobDefinition } from './jobs/job.js';
import { spectrogramJob } from './jobs/spectrogram.js';
import { splitJob } from './jobs/split.js';
import { WorkerPool } from './workers/pool.js';
import { LogBus } from './logbus/logbus.js';
import { ServiceMetrics } from './metrics/metrics.js';
import type { DeviceInfo } from './domain/devices.js';
import type { TaskQueue } from './scheduler/queue.js';
import { TaskService } from './service/task-service.js';
import { ClusterNode } from './cluster/cluster-node.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/store.js';
import { PathSandbox } from './util/sandbox.js';
import { PredictService } from './predict/predict-service.js';
import { FairShare } from './scheduler/fair-share.js';
import { SignalExplorer } from './predict/explorer.js';

/** The built-in task kinds: one line each. */
function builtinJobs(pool: WorkerPool, config: Config, sessions: OnnxSessionCache): JobDefinition[] {
  return [
    splitJob,
    augmentJob(pool),
    cropJob,
    spectrogramJob(pool),
    trainingJob(config.torch),
    evaluationJob(config.torch),
    inferenceJob(config.torch, sessions, pool),
  ];
}

/**
 * The built-in task kinds as the CLI reads them (kind, route, body schema), without a service:
 * the worker pool and ONNX sessions the definitions hold start only when a job runs.
 */
export function builtinJobSchemas(
  config: Config,
): Pick<JobDefinition, 'kind' | 'resourceClass' | 'family' | 'route' | 'body'>[] {
  return builtinJobs(new WorkerPool(), config, new OnnxSessionCache()).map(
    ({ kind, resourceClass, family, route, body }) => ({ kind, resourceClass, family, route, body }),
  );
}

export interface ServiceOptions {
  config: Config;
  /** Extra task kinds (tests register controllable ones here). */
  extraJobs?: JobDefinition[];
  logger?: Logger;
  now?: () => number;
  /** Defaults to the embedded SQLite store under the service home. */
  store?: Store;
  /**
   * Where accepted tasks wait; defaults to this node's in-memory queue. The seam a cluster's
   * shared queue plugs into (scheduler/queue.ts).
   */
  queue?: (devices: DeviceInfo[]) => TaskQueue;
}

export interface RunningService {
  config: Config;
  app: FastifyInstance;
  service: TaskService;
  store: Store;
  logger: Logger;
  /** Starts listening; refuses a non-loopback address without tokens unless `insecure`. */
  listen(): Promise<string>;
  /** Two-phase stop: stop accepting, let work stop or re-queue it, flush and close the store. */
  close(): Promise<void>;
}

export class InsecureListenError extends Error {
  constructor(host: string) {
    super(
      `refusing to listen on ${host} without API tokens: set RFUAV_API_TOKENS, or pass --insecure (RFUAV_INSECURE=1) if this network is trusted`,
    );
    this.name = 'InsecureListenError';
  }
}

function assertSafeListen(config: Config): void {
  if (!isLoopback(config.host) && !config.users.secured && !config.insecure) {
    throw new InsecureListenError(config.host);
  }
}

/** Composition root: config → store → devices → scheduler/service → HTTP. Nothing is global. */
export async function createService(opts: ServiceOptions): Promise<RunningService> {
  // Checked before the store is opened or any task recovered, so a refused start touches nothing.
  assertSafeListen(opts.config);
  const core = await createCore(opts);
  // The device manager reports changes to the service, which is built after it (it needs the
  // devices): until then there is nothing to tell.
  let service: TaskService | null = null;
  const devices = await startDevices(core.config, () => service?.devicesChanged());
  const svc = createTaskService(core, devices, opts);
  service = svc;
  const app = await createHttp(core, devices, svc);
  await svc.start();
  core.clusterNode?.attach(svc);
  core.logger.info(
    {
      home: core.config.home,
      dataRoot: core.config.dataRoot,
      gpus: devices.gpuCount,
      queued: svc.waitingCount,
    },
    'service ready',
  );
  return runningService(core, devices, svc, app);
}

/** The parts that hold no devices or running work: logger, store, log bus, workers, task kinds. */
async function createCore(opts: ServiceOptions) {
  const { config } = opts;
  const logger = opts.logger ?? pino({ level: config.logLevel });
  // With PostgreSQL this process is a node of a cluster: its service writes through the node's
  // fenced store and claims from the shared queue.
  const clusterNode = !opts.store && config.databaseUrl ? await ClusterNode.open(config, logger) : null;
  const store = opts.store ?? clusterNode?.store ?? new SqliteStore({ file: config.dbFile });
  // A cluster node's followers also see what other nodes write to a task's log.
  const bus = clusterNode ? clusterNode.logBus : new LogBus(store);
  const paths = new PathSandbox(config.dataRoot);
  const metrics = new ServiceMetrics();
  const workers = new WorkerPool();
  const sessions = new OnnxSessionCache(4, config.torch.threads);
  const registry = new JobRegistry();
  for (const job of [...builtinJobs(workers, config, sessions), ...(opts.extraJobs ?? [])])
    registry.register(job);
  return { config, logger, store, bus, paths, metrics, workers, sessions, registry, clusterNode };
}

type Core = Awaited<ReturnType<typeof createCore>>;

/** The GPUs and CPU of this node, read once before the service places any work on them. */
async function startDevices(config: Config, onChange: () => void): Promise<DeviceManager> {
  const devices = new DeviceManager({
    nvidiaSmi: config.nvidiaSmi,
    refreshMs: config.gpuRefreshMs,
    onChange,
  });
  await devices.start();
  return devices;
}

function createTaskService(core: Core, devices: DeviceManager, opts: ServiceOptions): TaskService {
  const { config, store, bus, registry, paths, metrics, logger } = core;
  const kindsOf = { training: [] as string[], inference: [] as string[], preprocessing: [] as string[] };
  for (const kind of registry.kinds())
    kindsOf[(registry.get(kind) as JobDefinition).resourceClass].push(kind);
  const cluster = core.clusterNode;
  // One ledger for the service (which saves it) and the queue that orders and charges by it.
  const fairShare = FairShare.forTeam(config.fairShare, config.users.list());
  const queue = opts.queue?.(devices.devices()) ?? cluster?.makeQueue(devices.devices(), kindsOf, fairShare);
  return new TaskService({
    fairShare,
    config,
    store,
    bus,
    devices,
    registry,
    paths,
    metrics,
    logger,
    now: opts.now,
    queue,
    cluster: cluster
      ? {
          remoteCancel: (id) => cluster.requestCancel(id),
          keepAlive: cluster.keepAlive,
          devices: cluster.devices,
        }
      : undefined,
  });
}

/** The HTTP app over the service (not listening yet). */
async function createHttp(
  core: Core,
  devices: DeviceManager,
  service: TaskService,
): Promise<FastifyInstance> {
  const { config, store, bus, metrics, registry, logger, sessions, workers, paths } = core;
  const torchVersions = new TorchVersionProbe(config.torch.python);
  // On a GPU node the first GPU read should not wait seconds for torch to import; elsewhere the
  // probe runs on the first request that needs it (none may ever come).
  if (devices.gpuCount > 0) torchVersions.warm();
  const predict = new PredictService(config.predict, sessions, workers, paths);
  return buildApp({
    config,
    store,
    bus,
    service,
    devices,
    cpu: new CpuMonitor(),
    torchVersions,
    metrics,
    registry,
    logger,
    paths,
    predict,
    explorer: new SignalExplorer(predict, workers, paths),
    clusterNode: core.clusterNode,
  });
}

/** The started service's handle: listen, and an idempotent close that stops the parts in order. */
function runningService(
  core: Core,
  devices: DeviceManager,
  svc: TaskService,
  app: FastifyInstance,
): RunningService {
  const { config, store, logger, workers, sessions } = core;
  let closing: Promise<void> | null = null;
  return {
    config,
    app,
    service: svc,
    store,
    logger,
    async listen() {
      assertSafeListen(config);
      return app.listen({ host: config.host, port: config.port });
    },
    close() {
      closing ??= (async () => {
        // Stop starting work first, then let in-flight requests finish, then stop running work.
        svc.beginShutdown();
        await app.close();
        await svc.stop();
        await workers.close();
        await sessions.close();
        devices.stop();
        await core.clusterNode?.stop();
        await store.close();
      })();
      return closing;
    },
  };
}
