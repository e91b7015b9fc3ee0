import type { onRequestHookHandler } from 'fastify';
import type { Logger } from 'pino';
import type { ClusterNode } from '../cluster/cluster-node.js';
import type { Config } from '../config.js';
import type { CpuMonitor } from '../devices/cpu.js';
import type { DeviceManager } from '../devices/manager.js';
import type { TorchVersionProbe } from '../engines/torch/versions.js';
import type { JobRegistry } from '../jobs/job.js';
import type { LogBus } from '../logbus/logbus.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { SignalExplorer } from '../predict/explorer.js';
import type { PredictService } from '../predict/predict-service.js';
import type { TaskService } from '../service/task-service.js';
import type { Store } from '../store/store.js';
import type { PathSandbox } from '../util/sandbox.js';
import type { SseStreams } from './sse.js';

/** What the HTTP layer is built from (passed down from the composition root). */
export interface AppDeps {
  config: Config;
  store: Store;
  bus: LogBus;
  service: TaskService;
  devices: DeviceManager;
  cpu: CpuMonitor;
  /** PyTorch/CUDA versions of the runner's interpreter (GET /api/v2/resources/gpu). */
  torchVersions: TorchVersionProbe;
  metrics: ServiceMetrics;
  registry: JobRegistry;
  logger: Logger;
  /** The data root's sandbox (GET /api/v2/files lists inside it). */
  paths: PathSandbox;
  /** POST /api/v2/inference/predict, when the service offers it. */
  predict?: PredictService;
  /** The spectrogram explorer's recording info and slice pictures (GET /api/v2/signal/…). */
  explorer?: SignalExplorer;
  /** This process as a node of a PostgreSQL cluster (null: a single node on SQLite). */
  clusterNode?: ClusterNode | null;
}

/** Parts the HTTP layer builds once and shares between route plugins. */
export interface HttpShared {
  streams: SseStreams;
  /**
   * onRequest hooks for every task-creating route: one rate limit per client shared by all of
   * them (SPEC §5), so spreading requests over routes does not multiply the allowance.
   */
  creationHooks: onRequestHookHandler[];
}
