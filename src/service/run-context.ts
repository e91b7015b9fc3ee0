import type { LogExtra, LogLevel, TaskPatch, TaskRecord } from '../domain/task.js';
import type { RunnerKeepAlive } from '../engines/torch/runner.js';
import type { RunContext } from '../jobs/job.js';
import type { Store } from '../store/store.js';
import type { PathSandbox } from '../util/sandbox.js';

/** Progress is written at most this often (and only when the whole percent changes). */
export const PROGRESS_WRITE_MS = 250;

export type TaskLogger = (taskId: string, message: string, level?: LogLevel, extra?: LogExtra) => void;

/**
 * What a running job is handed (jobs/job.ts RunContext), bound to one task on one device: its
 * log lines (with the data root's location taken out), progress (throttled; stored on the task
 * and sent to followers as a progress event), and epoch metrics. Writes of progress and metrics
 * go through one chain, so they land in order; `settled` resolves when all have.
 */
export function createRunContext(o: {
  task: TaskRecord;
  device: string;
  signal: AbortSignal;
  store: Store;
  paths: PathSandbox;
  log: TaskLogger;
  now: () => number;
  keepAlive?: RunnerKeepAlive;
}): { ctx: RunContext; settled: () => Promise<unknown> } {
  const { store, paths } = o;
  const id = o.task.task_id;
  let lastWrite = 0;
  let lastPct = -1;
  let chain: Promise<unknown> = Promise.resolve();
  /** Appends a write to the chain; the returned promise rejects if it failed, the chain goes on. */
  const inOrder = (write: () => Promise<unknown>): Promise<void> => {
    const done = chain.then(write).then(() => undefined);
    chain = done.catch(() => undefined);
    return done;
  };
  const ctx: RunContext = {
    task: o.task,
    signal: o.signal,
    device: o.device,
    paths,
    keepAlive: o.keepAlive,
    log: (message, level = 'INFO', extra = {}) => o.log(id, paths.scrub(message), level, extra),
    progress: (percent, message) => {
      const pct = Math.max(0, Math.min(100, Math.floor(percent)));
      const t = o.now();
      if (pct === lastPct || t - lastWrite < PROGRESS_WRITE_MS) return;
      lastPct = pct;
      lastWrite = t;
      const patch: TaskPatch = { progress: pct };
      if (message) patch.message = message;
      void inOrder(() => store.updateTask(id, patch, ['running'])).catch(() => undefined);
      // The same step as an event for followers (SSE, the CLI), in order with the log lines.
      o.log(id, message ? paths.scrub(message) : '', 'INFO', { progress: pct });
    },
    epochMetrics: (metrics) =>
      inOrder(async () => {
        await store.putEpochMetrics(id, metrics);
        await store.updateTask(id, { current_epoch: metrics.epoch, latest_metrics: metrics }, ['running']);
      }),
    truncateMetrics: (lastEpoch) =>
      inOrder(async () => {
        await store.truncateEpochMetrics(id, lastEpoch);
        const kept = (await store.getEpochMetrics(id)).at(-1) ?? null;
        await store.updateTask(id, { current_epoch: kept ? kept.epoch : 0, latest_metrics: kept }, [
          'running',
        ]);
      }),
  };
  return { ctx, settled: () => chain };
}
