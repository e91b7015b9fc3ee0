import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { CpuMonitor } from '../devices/cpu.js';
import type { DeviceManager } from '../devices/manager.js';
import type { JobRegistry } from '../jobs/job.js';
import type { LogBus } from '../logbus/logbus.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { TaskService } from '../service/task-service.js';
import type { Store } from '../store/store.js';

/** What the HTTP layer is built from (passed down from the composition root). */
export interface AppDeps {
  config: Config;
  store: Store;
  bus: LogBus;
  service: TaskService;
  devices: DeviceManager;
  cpu: CpuMonitor;
  metrics: ServiceMetrics;
  registry: JobRegistry;
  logger: Logger;
}

/** Route config for task-creating routes: one rate limit per client shared by all of them (SPEC §5). */
export function creationLimit(config: Config): Record<string, unknown> {
  if (config.rateLimitMax <= 0) return {};
  return {
    rateLimit: { max: config.rateLimitMax, timeWindow: config.rateLimitWindowMs, groupId: 'task-creation' },
  };
}
