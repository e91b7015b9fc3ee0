import { randomUUID } from 'node:crypto';
import type { ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { Config, LimitSpec } from '../config.js';
import { AppError, conflict, invalidField, notFound, unavailable } from '../domain/errors.js';
import {
  DEFAULT_PRIORITY,
  isTerminal,
  listGroupOf,
  type LogLevel,
  type ResourceClass,
  type TaskPatch,
  type TaskRecord,
  type TaskStatus,
} from '../domain/task.js';
import type { DeviceManager } from '../devices/manager.js';
import {
  JobFailure,
  type JobDefinition,
  type JobRegistry,
  type PreparedTask,
  type RunContext,
} from '../jobs/job.js';
import type { LogBus } from '../logbus/logbus.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import { SchedulerCore } from '../scheduler/core.js';
import { effectiveLimits, mergeSpecs } from '../scheduler/limits.js';
import type { Placement, QueueEntry } from '../scheduler/types.js';
import type { Store } from '../store/store.js';
import type { PathSandbox } from '../util/sandbox.js';
import { createValidators } from '../util/validators.js';

/** Fields every task-creating request may carry besides its kind's own. */
export interface CommonFields {
  task_id?: string;
  priority?: number;
  name?: string | null;
  description?: string | null;
  device?: string;
  gpu_memory_gb?: number;
}

export interface SubmitMeta {
  /** Unknown request fields that were dropped; noted in the task log. */
  ignoredFields?: string[];
}

export type TaskView = Omit<TaskRecord, 'params' | 'enqueued_at'> & {
  parameters: Record<string, unknown>;
  queue_position?: number;
  pending_reason?: string;
  effective_priority?: number;
};

/** A request that passed every check at submission, ready to be stored. */
interface CheckedRequest {
  kind: string;
  def: JobDefinition;
  body: Record<string, unknown> & CommonFields;
  placement: { request: string; memGb: number | null };
  prepared: PreparedTask;
  /** Warnings for the task log (e.g. a CPU fallback). */
  notes: string[];
}

interface RunningJob {
  controller: AbortController;
  /** Why the work is being stopped, if it is. */
  stopReason: 'cancel' | 'shutdown' | null;
  done: Promise<void>;
}

export interface TaskServiceDeps {
  config: Config;
  store: Store;
  bus: LogBus;
  devices: DeviceManager;
  registry: JobRegistry;
  paths: PathSandbox;
  metrics: ServiceMetrics;
  logger: Logger;
  /** Milliseconds since the epoch; injectable so tests can fake time. */
  now?: () => number;
}

const PROGRESS_WRITE_MS = 250;

/** Job body checks for callers that did not come through a route's schema (as strict as one). */

/**
 * Owns the life of every task: acceptance, queueing, dispatch onto device slots, running the job,
 * cancellation, recovery after a restart, and graceful stop. The scheduling decisions themselves
 * are made by the pure SchedulerCore; this class performs the I/O around them and is woken only by
 * events (submission, completion, cancellation, limit or device changes).
 */
export class TaskService {
  readonly core: SchedulerCore;
  private readonly deps: TaskServiceDeps;
  private readonly now: () => number;
  private readonly running = new Map<string, RunningJob>();
  /** Checks of job bodies, made by the one validator factory and kept per schema. */
  private readonly bodyValidators = createValidators('body');
  private readonly bodyCheckers = new WeakMap<object, ValidateFunction>();
  /** Counts by kind and status, kept in step with every committed transition. */
  private readonly counts = new Map<string, number>();
  private limitOverrides: LimitSpec = {};
  private dispatchScheduled = false;
  private dispatchTriggeredAt = 0;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';

  constructor(deps: TaskServiceDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.core = new SchedulerCore({
      devices: deps.devices.devices(),
      limits: {},
      agingIntervalMs: deps.config.agingIntervalMs,
    });
  }

  get accepting(): boolean {
    return this.state === 'running';
  }

  /** Loads limits and counts, re-queues what a previous run left unfinished, and dispatches. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    const { store } = this.deps;
    this.limitOverrides = (await store.getLimitOverrides()) as LimitSpec;
    this.applyLimits();
    for (const c of await store.countByKindAndStatus()) this.counts.set(key(c.task_type, c.status), c.n);
    await this.recover();
    this.state = 'running';
    this.requestDispatch();
  }

  /** Called by the device manager when GPUs or their memory changed. */
  devicesChanged(): void {
    this.core.setDevices(this.deps.devices.devices());
    this.applyLimits();
    this.requestDispatch();
  }

  // ----- submission -----

  async submit(
    kind: string,
    body: Record<string, unknown> & CommonFields,
    meta: SubmitMeta = {},
  ): Promise<TaskView> {
    return this.create(await this.check(kind, body), meta);
  }

  /** Everything that decides whether a request is accepted; nothing is written yet. */
  private async check(kind: string, body: Record<string, unknown> & CommonFields): Promise<CheckedRequest> {
    if (this.state !== 'running') throw unavailable('the service is shutting down');
    const def = this.deps.registry.get(kind);
    if (!def) throw new AppError('bad_request', `unknown task kind '${kind}'`);
    const notes: string[] = [];
    const placement = this.resolveRequest(def.resourceClass, body.device, body.gpu_memory_gb ?? null, notes);
    // A job sees only the fields its own schema declares; the common ones (task_id, priority,
    // device, …) are the service's business and never end up in a job's parameters.
    const prepared = await def.validate(this.ownFields(def, body) as never, {
      paths: this.deps.paths.forOneCheck(),
    });
    return { kind, def, body, placement, prepared, notes: [...notes, ...(prepared.notes ?? [])] };
  }

  /** Stores a checked request as a queued task and wakes the scheduler. */
  private async create(c: CheckedRequest, meta: SubmitMeta): Promise<TaskView> {
    const { kind, def, body, placement, prepared } = c;
    const taskId = body.task_id ?? randomUUID();
    const priority = body.priority ?? DEFAULT_PRIORITY[def.resourceClass];
    const task = await this.deps.store.createTask({
      task_id: taskId,
      task_type: kind,
      priority,
      device_request: def.resourceClass === 'preprocessing' ? 'cpu' : (body.device ?? 'cuda'),
      gpu_memory_gb: placement.memGb,
      name: body.name ?? null,
      description: body.description ?? null,
      params: prepared.params,
      input_path: prepared.input_path,
      output_path: prepared.output_path,
      total_epochs: prepared.total_epochs ?? null,
      message: 'waiting for a slot',
      status: 'queued',
    });
    this.bump(kind, null, 'queued');
    this.log(
      taskId,
      `Task accepted: ${kind}, priority ${priority}, device ${placement.request}${placement.memGb ? `, needs ${placement.memGb} GB of GPU memory` : ''}`,
    );
    for (const n of c.notes) this.log(taskId, n, 'WARNING');
    if (meta.ignoredFields?.length) {
      this.log(taskId, `Ignored unknown request field(s): ${meta.ignoredFields.join(', ')}`, 'WARNING');
    }
    this.core.enqueue({
      id: taskId,
      cls: def.resourceClass,
      request: placement.request,
      memGb: placement.memGb,
      priority,
      enqueuedAt: Date.parse(task.enqueued_at),
    });
    this.requestDispatch();
    return this.view(task);
  }

  /**
   * The fields of `body` that the job declares, with its schema's defaults filled in and its
   * types checked: HTTP routes have done this already; other callers (batch routes, tests) rely
   * on it here.
   */
  private ownFields(def: JobDefinition, body: Record<string, unknown>): Record<string, unknown> {
    const own: Record<string, unknown> = {};
    for (const k of Object.keys(def.body.properties)) if (body[k] !== undefined) own[k] = body[k];
    let check = this.bodyCheckers.get(def.body);
    if (!check) {
      check = this.bodyValidators.compile(def.body);
      this.bodyCheckers.set(def.body, check);
    }
    if (!check(own)) {
      const first = check.errors?.[0];
      const field =
        (first?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') ||
        String((first?.params as { missingProperty?: string } | undefined)?.missingProperty ?? 'body');
      throw invalidField(field, first?.message ?? 'is invalid');
    }
    return own;
  }

  /**
   * Several tasks of one kind from one request (e.g. POST /inference/batch): every body is
   * checked first, so a bad one creates none; errors are prefixed with `label(i)`.
   */
  async submitAll(
    kind: string,
    bodies: (Record<string, unknown> & CommonFields)[],
    label: (index: number) => string,
  ): Promise<TaskView[]> {
    const checked: CheckedRequest[] = [];
    for (let i = 0; i < bodies.length; i++) {
      try {
        checked.push(await this.check(kind, bodies[i] as Record<string, unknown> & CommonFields));
      } catch (err) {
        if (err instanceof AppError) throw new AppError(err.code, `${label(i)}: ${err.message}`, err.detail);
        throw err;
      }
    }
    const out: TaskView[] = [];
    for (const c of checked) out.push(await this.create(c, {}));
    return out;
  }

  /**
   * Resolves a device request against this node (SPEC §1): cpu, cuda (any GPU), cuda:N, auto.
   * `cuda` on a node without GPUs falls back to the CPU (noted in the log) unless configured to
   * reject; `cuda:N` out of range is a 422.
   */
  private resolveRequest(
    cls: ResourceClass,
    device: string | undefined,
    memGb: number | null,
    notes: string[],
  ): { request: string; memGb: number | null } {
    if (cls === 'preprocessing') return { request: 'cpu', memGb: null };
    const gpus = this.deps.devices.readings();
    const want = device ?? 'cuda';
    let request: string;
    if (want === 'cpu') request = 'cpu';
    else if (want === 'auto') request = gpus.length > 0 ? 'auto' : 'cpu';
    else if (want === 'cuda') {
      if (gpus.length > 0) request = 'cuda';
      else if (this.deps.config.cudaFallback === 'reject') {
        throw invalidField('device', "'cuda' was requested but this node has no GPU");
      } else {
        request = 'cpu';
        notes.push("Device 'cuda' was requested but this node has no GPU: the task will run on cpu");
      }
    } else {
      const m = /^cuda:(\d+)$/.exec(want);
      if (!m) throw invalidField('device', `'${want}' is not one of cpu, cuda, cuda:N, auto`);
      const n = Number(m[1]);
      if (n >= gpus.length) {
        throw invalidField(
          'device',
          `${want} is out of range: this node has ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}`,
        );
      }
      request = want;
    }
    if (request === 'cpu') return { request, memGb: null };
    if (memGb != null) {
      const eligible = request.startsWith('cuda:') ? gpus.filter((g) => `cuda:${g.index}` === request) : gpus;
      const largest = Math.max(0, ...eligible.map((g) => g.totalMemoryGb));
      if (memGb > largest && request !== 'auto') {
        throw invalidField(
          'gpu_memory_gb',
          `${memGb} GB can never fit: the largest eligible GPU has ${Math.round(largest * 10) / 10} GB in all`,
        );
      }
    }
    return { request, memGb };
  }

  // ----- reading -----

  async get(id: string): Promise<TaskView> {
    const t = await this.deps.store.getTask(id);
    if (!t) throw notFound(`task '${id}' not found`);
    return this.view(t);
  }

  async getRecord(id: string): Promise<TaskRecord> {
    const t = await this.deps.store.getTask(id);
    if (!t) throw notFound(`task '${id}' not found`);
    return t;
  }

  async list(filter: { status?: TaskStatus; task_type?: string; limit: number }) {
    const groups = { training: [] as string[], inference: [] as string[], other: [] as string[] };
    for (const kind of this.deps.registry.kinds()) {
      if (filter.task_type && kind !== filter.task_type) continue;
      groups[listGroupOf(kind)].push(kind);
    }
    const fetch = async (kinds: string[]) =>
      kinds.length === 0
        ? []
        : (
            await this.deps.store.listTasks({
              status: filter.status,
              kinds,
              limit: filter.limit,
            })
          ).map((t) => this.view(t));
    const total = (kinds: string[]) => {
      let n = 0;
      for (const [k, v] of this.counts) {
        const [kind, status] = k.split('\u0000');
        if (kinds.includes(kind as string) && (!filter.status || status === filter.status)) n += v;
      }
      return n;
    };
    const [training, inference, other] = await Promise.all([
      fetch(groups.training),
      fetch(groups.inference),
      fetch(groups.other),
    ]);
    return {
      training_tasks: training,
      inference_tasks: inference,
      other_tasks: other,
      total_training: total(groups.training),
      total_inference: total(groups.inference),
      total_other: total(groups.other),
    };
  }

  view(t: TaskRecord): TaskView {
    // Spelled out rather than `{ ...rest }`: object rest on the (frozen, cached) record took a
    // slow generic path and was the largest cost of a status read in profiles.
    const v: TaskView = {
      task_id: t.task_id,
      task_type: t.task_type,
      status: t.status,
      message: t.message,
      progress: t.progress,
      device: t.device,
      device_request: t.device_request,
      priority: t.priority,
      created_at: t.created_at,
      updated_at: t.updated_at,
      started_at: t.started_at,
      finished_at: t.finished_at,
      name: t.name,
      description: t.description,
      attempts: t.attempts,
      gpu_memory_gb: t.gpu_memory_gb,
      current_epoch: t.current_epoch,
      total_epochs: t.total_epochs,
      latest_metrics: t.latest_metrics,
      input_path: t.input_path,
      output_path: t.output_path,
      stats: t.stats,
      result: t.result,
      error: t.error,
      parameters: t.params,
    };
    if (t.status === 'pending' || t.status === 'queued') {
      const pos = this.core.queuePosition(t.task_id);
      if (pos !== undefined) {
        v.queue_position = pos;
        v.pending_reason = this.core.pendingReason(t.task_id) ?? 'waiting for the scheduler';
        v.effective_priority = this.core.effectivePriority(t.task_id, this.now()) ?? t.priority;
      }
    }
    return v;
  }

  /** Number of stored tasks of a kind (any status). */
  countKind(kind: string): number {
    let n = 0;
    for (const [k, v] of this.counts) if (k.startsWith(`${kind}\u0000`)) n += v;
    return n;
  }

  countsByKindAndStatus(): { kind: string; status: string; n: number }[] {
    return [...this.counts].map(([k, n]) => {
      const [kind, status] = k.split('\u0000') as [string, string];
      return { kind, status, n };
    });
  }

  // ----- cancel / delete -----

  async cancel(
    id: string,
    waitMs = 10_000,
  ): Promise<{ status: 'success'; message: string; task_id: string }> {
    const t = await this.deps.store.getTask(id);
    if (!t) throw notFound(`task '${id}' not found`);
    if (isTerminal(t.status)) throw conflict(`task '${id}' has already finished (${t.status})`);
    if (this.core.isWaiting(id)) {
      // The store first: if the write fails the task is still queued in both places.
      const done = await this.deps.store.updateTask(
        id,
        { status: 'cancelled', message: 'cancelled before it started', finished_at: this.iso() },
        ['pending', 'queued'],
      );
      if (done) {
        // A dispatch in between may have placed it; its start then finds it cancelled and stops.
        this.core.remove(id);
        this.bump(t.task_type, t.status, 'cancelled');
        this.log(id, 'Cancelled while waiting; it never started');
        this.finishStream(id, 'cancelled', done.message);
        this.requestDispatch();
        return { status: 'success', message: 'Task cancelled before it started', task_id: id };
      }
    }
    const job = this.running.get(id);
    if (!job) {
      const again = await this.deps.store.getTask(id);
      throw conflict(`task '${id}' is ${again?.status ?? 'gone'} and not running on this node`);
    }
    if (job.stopReason === null) {
      job.stopReason = 'cancel';
      this.log(id, 'Cancellation requested; stopping the work');
      job.controller.abort(new CancelledError());
    }
    const stopped = await Promise.race([
      job.done.then(() => true),
      new Promise<boolean>((r) => setTimeout(r, waitMs, false).unref()),
    ]);
    if (!stopped) {
      return {
        status: 'success',
        message: 'Cancellation requested; the slot is released when the work has stopped',
        task_id: id,
      };
    }
    const after = await this.deps.store.getTask(id);
    if (after && after.status !== 'cancelled') {
      // The work ended on its own while the cancellation was on its way.
      throw conflict(`task '${id}' finished (${after.status}) before it could be cancelled`);
    }
    return { status: 'success', message: 'Task cancelled', task_id: id };
  }

  async delete(id: string): Promise<{ status: 'success'; message: string; task_id: string }> {
    const t = await this.deps.store.getTask(id);
    if (!t) throw notFound(`task '${id}' not found`);
    if (!isTerminal(t.status)) throw conflict(`task '${id}' is ${t.status}; cancel it before deleting it`);
    if (await this.deps.store.deleteTask(id)) this.bump(t.task_type, t.status, null);
    return { status: 'success', message: 'Task deleted', task_id: id };
  }

  // ----- limits -----

  limits() {
    return this.core.getLimits();
  }

  async changeLimits(change: LimitSpec) {
    const next = mergeSpecs(this.limitOverrides, change);
    await this.deps.store.setLimitOverrides(next as Record<string, Record<string, number>>);
    this.limitOverrides = next;
    this.applyLimits();
    this.requestDispatch();
    return this.core.getLimits();
  }

  private applyLimits(): void {
    const devices = this.deps.devices.devices();
    this.core.setLimits(effectiveLimits(devices, this.deps.config.startupLimits, this.limitOverrides));
  }

  /** Waiting tasks per kind, from the committed counts. */
  queueByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { kind, status, n } of this.countsByKindAndStatus()) {
      if ((status === 'pending' || status === 'queued') && n > 0) out[kind] = (out[kind] ?? 0) + n;
    }
    return out;
  }

  activeTasks(): Record<string, { id: string; type: string }[]> {
    const out: Record<string, { id: string; type: string }[]> = {};
    for (const d of this.core.getDevices()) {
      out[d.id] = this.core.runningOn(d.id).map((p) => ({ id: p.id, type: p.cls }));
    }
    return out;
  }

  // ----- dispatch and running -----

  /** Coalesces wake-ups: many events in one turn of the event loop cause one dispatch pass. */
  requestDispatch(): void {
    if (this.dispatchScheduled || this.state === 'stopping' || this.state === 'stopped') return;
    this.dispatchScheduled = true;
    this.dispatchTriggeredAt = performance.now();
    setImmediate(() => this.dispatchNow());
  }

  private dispatchNow(): void {
    this.dispatchScheduled = false;
    if (this.state !== 'running') return;
    const triggeredAt = this.dispatchTriggeredAt;
    const placements = this.core.dispatch();
    for (const p of placements) {
      // The job exists from the moment of placement, so a cancel that arrives before the task is
      // marked running still finds something to abort.
      let resolveDone!: () => void;
      const job: RunningJob = {
        controller: new AbortController(),
        stopReason: null,
        done: new Promise<void>((r) => (resolveDone = r)),
      };
      this.running.set(p.id, job);
      void this.startTask(p, job, triggeredAt)
        .catch((err: unknown) => this.deps.logger.error({ err, task: p.id }, 'task run failed unexpectedly'))
        .finally(() => {
          this.running.delete(p.id);
          this.core.release(p.id);
          this.requestDispatch();
          resolveDone();
        });
    }
  }

  private async startTask(p: Placement, job: RunningJob, triggeredAt: number): Promise<void> {
    const { store } = this.deps;
    let task: TaskRecord | undefined;
    try {
      const before = await store.getTask(p.id);
      if (!before) return;
      task = await store.updateTask(
        p.id,
        {
          status: 'running',
          device: p.device,
          started_at: this.iso(),
          attempts: before.attempts + 1,
          progress: 0,
          message: `running on ${p.device}`,
          error: null,
        },
        ['pending', 'queued'],
      );
      if (!task) return;
      this.bump(task.task_type, before.status, 'running');
      this.deps.metrics.dispatchLatency.observe((performance.now() - triggeredAt) / 1000);
    } catch (err) {
      // The store refused the start: the task is still queued there, so put it back in the
      // queue, after a pause so a store that is down is not hammered.
      this.deps.logger.error({ err, task: p.id }, 'could not start task; retrying in 1 s');
      setTimeout(() => {
        if (this.state !== 'running' || this.core.isWaiting(p.id) || this.core.isRunning(p.id)) return;
        this.core.enqueue(p);
        this.requestDispatch();
      }, 1000).unref();
      return;
    }
    const def = this.deps.registry.get(task.task_type) as JobDefinition;
    this.log(p.id, `Started on ${p.device} (attempt ${task.attempts})`);
    await this.runJob(def, task, p, job);
  }

  private async runJob(def: JobDefinition, task: TaskRecord, p: Placement, job: RunningJob): Promise<void> {
    const id = task.task_id;
    let lastWrite = 0;
    let lastPct = -1;
    let pendingWrite: Promise<unknown> = Promise.resolve();
    const ctx: RunContext = {
      task,
      signal: job.controller.signal,
      device: p.device,
      paths: this.deps.paths,
      // What a task says reaches clients: the data root's absolute location is taken out.
      log: (message, level = 'INFO', extra = {}) =>
        this.log(id, this.deps.paths.scrub(message), level, extra),
      progress: (percent, message) => {
        const pct = Math.max(0, Math.min(100, Math.floor(percent)));
        const t = this.now();
        if (pct === lastPct || t - lastWrite < PROGRESS_WRITE_MS) return;
        lastPct = pct;
        lastWrite = t;
        const patch: TaskPatch = { progress: pct };
        if (message) patch.message = message;
        pendingWrite = pendingWrite
          .then(() => this.deps.store.updateTask(id, patch, ['running']))
          .catch(() => undefined);
        // The same step as an event for followers (SSE, the CLI), in order with the log lines.
        this.log(id, message ? this.deps.paths.scrub(message) : '', 'INFO', { progress: pct });
      },
      // Epoch writes go through the same chain as progress, so they land in order.
      epochMetrics: (metrics) => {
        const write = pendingWrite.then(async () => {
          await this.deps.store.putEpochMetrics(id, metrics);
          await this.deps.store.updateTask(id, { current_epoch: metrics.epoch, latest_metrics: metrics }, [
            'running',
          ]);
        });
        pendingWrite = write.catch(() => undefined);
        return write;
      },
      truncateMetrics: (lastEpoch) => {
        const write = pendingWrite.then(async () => {
          await this.deps.store.truncateEpochMetrics(id, lastEpoch);
          const kept = (await this.deps.store.getEpochMetrics(id)).at(-1) ?? null;
          await this.deps.store.updateTask(
            id,
            { current_epoch: kept ? kept.epoch : 0, latest_metrics: kept },
            ['running'],
          );
        });
        pendingWrite = write.catch(() => undefined);
        return write;
      },
    };
    let patch: TaskPatch;
    let level: LogLevel = 'INFO';
    let line: string;
    try {
      const out = await def.run(task.params, ctx);
      if (job.controller.signal.aborted) throw job.controller.signal.reason;
      patch = {
        status: 'completed',
        progress: 100,
        message: out.message ?? 'completed',
        stats: out.stats ?? null,
        result: out.result ?? null,
        finished_at: this.iso(),
      };
      line = `Completed: ${patch.message}`;
    } catch (err) {
      if (job.stopReason === 'shutdown') {
        patch = { status: 'queued', message: 'interrupted by a shutdown; it will run again', device: null };
        line = 'Interrupted by a service shutdown; re-queued to run again';
        level = 'WARNING';
      } else if (job.stopReason === 'cancel') {
        patch = { status: 'cancelled', message: 'cancelled while running', finished_at: this.iso() };
        line = 'Cancelled; the work has stopped';
      } else {
        const msg = this.deps.paths.scrub(err instanceof Error ? err.message : String(err));
        patch = { status: 'failed', message: 'failed', error: msg, finished_at: this.iso() };
        if (err instanceof JobFailure && err.stats) patch.stats = err.stats;
        line = `Failed: ${msg}`;
        level = 'ERROR';
      }
    }
    await pendingWrite;
    try {
      // Retried: the slot is about to be freed, and a lost final write would leave the task
      // "running" in the store until the next restart re-queues it.
      const saved = await retry(() => this.deps.store.updateTask(id, patch, ['running']), 3, 500);
      if (saved) this.bump(saved.task_type, 'running', saved.status);
      this.log(id, line, level, patch.status === 'completed' ? { stage: 'completed' } : {});
      if (saved && isTerminal(saved.status)) {
        this.finishStream(id, saved.status, saved.error ?? saved.message);
      }
    } catch (err) {
      this.deps.logger.error({ err, task: id }, 'could not record the end of a task');
    }
  }

  /** Tells log followers the task ended (after its last entry). */
  private finishStream(id: string, status: TaskStatus, message: string | null): void {
    this.deps.bus.finish(id, { status, message }).catch((err: unknown) => {
      this.deps.logger.warn({ err, task: id }, 'could not notify log followers');
    });
  }

  /** Appends to the task log; a failed write is reported in the service log, never thrown. */
  log(
    taskId: string,
    message: string,
    level: LogLevel = 'INFO',
    extra: { stage?: string; step?: number; metrics?: Record<string, unknown>; progress?: number } = {},
  ): void {
    this.deps.bus.append(taskId, { level, message, ...extra }).catch((err: unknown) => {
      this.deps.logger.warn({ err, task: taskId }, 'could not write a task log entry');
    });
  }

  // ----- recovery and shutdown -----

  /** After a crash: running tasks go back to the queue (attempt count and log say so). */
  private async recover(): Promise<void> {
    const { store } = this.deps;
    const entries: QueueEntry[] = [];
    const pending: string[] = [];
    for (const t of await store.listUnfinished()) {
      let status = t.status;
      if (t.status === 'running') {
        const requeued = await store.updateTask(
          t.task_id,
          { status: 'queued', message: 're-queued after a restart', device: null },
          ['running'],
        );
        if (!requeued) continue;
        status = 'queued';
        this.bump(t.task_type, 'running', 'queued');
        this.log(
          t.task_id,
          `The service stopped while this task was running (attempt ${t.attempts} on ${t.device ?? 'unknown device'}); re-queued to run again`,
          'WARNING',
        );
      }
      const def = this.deps.registry.get(t.task_type);
      try {
        if (!def) throw new Error(`task kind '${t.task_type}' is not available on this node`);
        // Notes (e.g. the CPU fallback) were logged at acceptance; not again on every restart.
        const placement = this.resolveRequest(
          def.resourceClass,
          t.device_request ?? undefined,
          t.gpu_memory_gb,
          [],
        );
        entries.push({
          id: t.task_id,
          cls: def.resourceClass,
          request: placement.request,
          memGb: placement.memGb,
          priority: t.priority,
          enqueuedAt: Date.parse(t.enqueued_at),
        });
        if (status === 'pending') pending.push(t.task_id);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        const failed = await store.updateTask(
          t.task_id,
          {
            status: 'failed',
            message: 'failed',
            error: `cannot run after restart: ${msg}`,
            finished_at: this.iso(),
          },
          ['pending', 'queued'],
        );
        if (failed) {
          this.bump(t.task_type, status, 'failed');
          this.log(t.task_id, `Cannot run after restart: ${msg}`, 'ERROR');
        }
      }
    }
    this.core.enqueueMany(entries);
    // Tasks another node accepted but none queued yet (cluster store): this node queues them.
    for (const id of pending) {
      const t = await store.updateTask(id, { status: 'queued', message: 'waiting for a slot' }, ['pending']);
      if (t) this.bump(t.task_type, 'pending', 'queued');
    }
  }

  /**
   * Two-phase stop: no new dispatch; running work is asked to stop and, if it does within the
   * grace period, re-queued (it runs again after the next start). Work that does not stop in time
   * is left as `running` in the store and re-queued by the next start's recovery.
   */
  /** Phase one of a stop: accept no new tasks and start no waiting ones. */
  beginShutdown(): void {
    if (this.state === 'new' || this.state === 'running') this.state = 'stopping';
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    const jobs = [...this.running.values()];
    for (const job of jobs) {
      if (job.stopReason === null) {
        job.stopReason = 'shutdown';
        job.controller.abort(new ShutdownError());
      }
    }
    const grace = this.deps.config.shutdownGraceMs;
    await Promise.race([
      Promise.all(jobs.map((j) => j.done)),
      new Promise((r) => setTimeout(r, grace).unref()),
    ]);
    await this.deps.bus.flush();
    this.state = 'stopped';
  }

  private bump(kind: string, from: TaskStatus | null, to: TaskStatus | null): void {
    if (from) this.counts.set(key(kind, from), Math.max(0, (this.counts.get(key(kind, from)) ?? 0) - 1));
    if (to) this.counts.set(key(kind, to), (this.counts.get(key(kind, to)) ?? 0) + 1);
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }
}

async function retry<T>(fn: () => Promise<T>, attempts: number, delayMs: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, delayMs * i));
    }
  }
}

function key(kind: string, status: string): string {
  return `${kind}\u0000${status}`;
}

export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export class ShutdownError extends Error {
  constructor() {
    super('service shutting down');
    this.name = 'ShutdownError';
  }
}
