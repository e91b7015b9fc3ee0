import type { Logger } from 'pino';
import type { Config, LimitSpec } from '../config.js';
import {
  AppError,
  CancelledError,
  conflict,
  forbidden,
  InterruptedError,
  notFound,
  ShutdownError,
  unavailable,
} from '../domain/errors.js';
import {
  DEFAULT_PRIORITY,
  isTerminal,
  listGroupOf,
  type LogExtra,
  type LogLevel,
  type NewLogEntry,
  type TaskPatch,
  type TaskRecord,
  type TaskStatus,
} from '../domain/task.js';
import { isAdmin, LOCAL_USER, mayControl, type User } from '../domain/users.js';
import type { DeviceManager } from '../devices/manager.js';
import type { RunnerKeepAlive } from '../engines/torch/runner.js';
import { JobFailure, type JobDefinition, type JobRegistry } from '../jobs/job.js';
import type { LogBus } from '../logbus/logbus.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import { effectiveLimits, mergeSpecs } from '../scheduler/limits.js';
import { LocalQueue, type QueueSnapshot, type TaskQueue } from '../scheduler/queue.js';
import { FairShare } from '../scheduler/fair-share.js';
import type { Placement } from '../scheduler/types.js';
import { isStoreUnavailable, type Store } from '../store/store.js';
import { newTaskId } from '../util/ids.js';
import type { PathSandbox } from '../util/sandbox.js';
import type { ClusterDevices, NodeGpus } from './device-request.js';
import { recoverUnfinished } from './recovery.js';
import { createRunContext } from './run-context.js';
import { SubmissionChecks, type CheckedRequest, type SubmittedBody } from './submission.js';
import { Team } from './team.js';
import { TaskCounts } from './task-counts.js';

export type { CommonFields } from './submission.js';

export interface SubmitMeta {
  /** Unknown request fields that were dropped; noted in the task log. */
  ignoredFields?: string[];
  /** Who submits (the task's owner; their queued quota applies). Left out: the local user. */
  owner?: User;
}

export type TaskView = Omit<TaskRecord, 'params' | 'enqueued_at'> & {
  parameters: Record<string, unknown>;
  queue_position?: number;
  pending_reason?: string;
  effective_priority?: number;
};

interface RunningJob {
  controller: AbortController;
  /** Why the work is being stopped, if it is. */
  stopReason: 'cancel' | 'shutdown' | 'lost' | null;
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
  /** Where accepted tasks wait; defaults to this node's in-memory queue (LocalQueue). */
  queue?: TaskQueue;
  /** Milliseconds since the epoch; injectable so tests can fake time. */
  now?: () => number;
  /** This process as a node of a cluster (the store and the queue are shared with other nodes). */
  cluster?: ClusterSeams;
  /** The usage ledger, when the queue given in `queue` orders by it too (else one is made here). */
  fairShare?: FairShare;
}

/** What the service needs of its cluster node (cluster/cluster-node.ts provides it). */
export interface ClusterSeams {
  /** Asks the node running a task to cancel it (false when no node runs it). */
  remoteCancel(id: string): Promise<boolean>;
  /** The node's lease, which keeps its runners going (RunContext.keepAlive). */
  keepAlive: RunnerKeepAlive;
  /** The nodes' devices, which requests are checked against (and `node` pins to). */
  devices: ClusterDevices;
}

/**
 * Owns the life of every task: acceptance, queueing, dispatch onto device slots, running the job,
 * cancellation, recovery after a restart, and graceful stop. It is the composition of parts with
 * one concern each: the checks a request must pass (submission.ts, device-request.ts), the queue
 * that decides what runs (scheduler/queue.ts, a seam), what a running job is handed
 * (run-context.ts), recovery (recovery.ts) and the counts by kind and status (task-counts.ts).
 * It is woken only by events (submission, completion, cancellation, limit or device changes).
 */
export class TaskService {
  private readonly deps: TaskServiceDeps;
  private readonly now: () => number;
  private readonly queue: TaskQueue;
  private readonly checks: SubmissionChecks;
  private readonly counts = new TaskCounts();
  /** The fair-share ledger, the day's GPU use, the queued quota and quotas changed live. */
  readonly team: Team;
  private readonly running = new Map<string, RunningJob>();
  private limitOverrides: LimitSpec = {};
  /** In a cluster: the last read of the stored counts (refreshCounts). */
  private countsRead: { at: number; done: Promise<void> } | null = null;
  private dispatchScheduled = false;
  private dispatchTriggeredAt = 0;
  /** A claim is in flight; a wake-up meanwhile runs another pass after it. */
  private claiming = false;
  private claimAgain = false;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';

  constructor(deps: TaskServiceDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    const { users } = deps.config;
    const fairShare = deps.fairShare ?? FairShare.forTeam(deps.config.fairShare, users.list());
    this.queue =
      deps.queue ??
      new LocalQueue({
        devices: deps.devices.devices(),
        agingIntervalMs: deps.config.agingIntervalMs,
        fairShare,
        quotas: (owner) => users.get(owner)?.quotas,
        now: this.now,
      });
    this.team = new Team({
      store: deps.store,
      users,
      fairShare,
      saveMs: deps.config.fairShare.saveMs,
      logger: deps.logger,
      now: this.now,
      accrue: (now) => this.queue.accrue?.(now),
      changed: () => this.requestDispatch(),
    });
    this.checks = new SubmissionChecks({
      registry: deps.registry,
      paths: deps.paths,
      node: () => this.node(),
      cluster: deps.cluster?.devices,
    });
  }

  get accepting(): boolean {
    return this.state === 'running';
  }

  /** When this service was made (ISO), for the node list. */
  readonly startedAt = new Date().toISOString();

  /** Loads limits and counts, re-queues what a previous run left unfinished, and dispatches. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    const { store } = this.deps;
    this.limitOverrides = (await store.getLimitOverrides()) as LimitSpec;
    this.applyLimits();
    this.counts.load(await store.countByKindAndStatus());
    await recoverUnfinished({
      store,
      registry: this.deps.registry,
      queue: this.queue,
      counts: this.counts,
      node: this.node(),
      log: (id, message, level, extra) => this.log(id, message, level, extra),
      iso: () => this.iso(),
    });
    await this.team.start();
    this.state = 'running';
    this.requestDispatch();
  }

  /** Who has had the devices lately. */
  get fairShare(): FairShare {
    return this.team.fairShare;
  }

  /** Called by the device manager when GPUs or their memory changed. */
  devicesChanged(): void {
    this.queue.setDevices(this.deps.devices.devices());
    this.applyLimits();
    this.requestDispatch();
  }

  /** This node's GPUs as device requests are resolved against them. */
  private node(): NodeGpus {
    return { gpus: this.deps.devices.readings(), cudaFallback: this.deps.config.cudaFallback };
  }

  /** The scheduler's state as plain data, for health, resources and metrics. */
  snapshot(): QueueSnapshot {
    return this.queue.snapshot();
  }

  /** Tasks waiting for a slot (a gauge: cheaper than a snapshot). */
  get waitingCount(): number {
    return this.queue.waitingCount;
  }

  // ----- submission -----

  async submit(kind: string, body: SubmittedBody, meta: SubmitMeta = {}): Promise<TaskView> {
    return this.create(await this.check(kind, body), meta);
  }

  /** Everything that decides whether a request is accepted; nothing is written yet. */
  private async check(kind: string, body: SubmittedBody): Promise<CheckedRequest> {
    if (this.state !== 'running') throw unavailable('the service is shutting down');
    return this.checks.check(kind, body);
  }

  /** Stores a checked request as a queued task and wakes the scheduler. */
  private async create(c: CheckedRequest, meta: SubmitMeta): Promise<TaskView> {
    const owner = meta.owner ?? LOCAL_USER;
    return this.team.admit(owner, () => this.store(c, meta, owner));
  }

  private async store(c: CheckedRequest, meta: SubmitMeta, owner: User): Promise<TaskView> {
    const { kind, def, body, placement, prepared } = c;
    const taskId = body.task_id ?? newTaskId();
    const priority = body.priority ?? DEFAULT_PRIORITY[def.resourceClass];
    // The first lines of its log are written with the task, in one write.
    const firstLog: NewLogEntry[] = [
      {
        level: 'INFO',
        message: `Task accepted: ${kind}, priority ${priority}, device ${placement.request}${placement.memGb ? `, needs ${placement.memGb} GB of GPU memory` : ''}${body.node ? `, only on node ${body.node}` : ''}`,
      },
      ...c.notes.map((message) => ({ level: 'WARNING' as const, message })),
    ];
    if (meta.ignoredFields?.length) {
      firstLog.push({
        level: 'WARNING',
        message: `Ignored unknown request field(s): ${meta.ignoredFields.join(', ')}`,
      });
    }
    const task = await this.deps.store.createTask(
      {
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
        pin_node: body.node ?? null,
        owner: owner.name,
      },
      firstLog,
    );
    this.counts.bump(kind, null, 'queued');
    this.queue.add([
      {
        id: taskId,
        cls: def.resourceClass,
        request: placement.request,
        memGb: placement.memGb,
        priority,
        enqueuedAt: Date.parse(task.enqueued_at),
        owner: owner.name,
      },
    ]);
    this.requestDispatch();
    return this.view(task);
  }

  /**
   * Several tasks of one kind from one request (e.g. POST /inference/batch): every body is
   * checked first, so a bad one creates none; errors are prefixed with `label(i)`.
   */
  async submitAll(
    kind: string,
    bodies: SubmittedBody[],
    label: (index: number) => string,
    meta: SubmitMeta = {},
  ): Promise<TaskView[]> {
    const checked: CheckedRequest[] = [];
    for (let i = 0; i < bodies.length; i++) {
      try {
        checked.push(await this.check(kind, bodies[i] as SubmittedBody));
      } catch (err) {
        if (err instanceof AppError) throw new AppError(err.code, `${label(i)}: ${err.message}`, err.detail);
        throw err;
      }
    }
    // The queued quota for the whole batch first, so a batch is created whole or not at all.
    await this.team.admitBatch(meta.owner ?? LOCAL_USER, checked.length);
    const out: TaskView[] = [];
    for (const c of checked) out.push(await this.create(c, meta));
    return out;
  }

  // ----- reading -----

  /** A task as `reader` may see it (with visibility `own`, another user's task is not found). */
  async get(id: string, reader?: User): Promise<TaskView> {
    return this.view(await this.visible(id, reader));
  }

  private async visible(id: string, reader: User | undefined): Promise<TaskRecord> {
    const t = await this.deps.store.getTask(id);
    if (!t || (reader && !this.maySee(reader, t.owner))) throw notFound(`task '${id}' not found`);
    return t;
  }

  /** Whether `reader` may see tasks of `owner` (everyone's with visibility team, the default). */
  maySee(reader: User, owner: string | null): boolean {
    return this.deps.config.visibility !== 'own' || isAdmin(reader) || owner === reader.name;
  }

  /** The task, if `actor` may control it: 403 naming the owner otherwise. */
  private async controlled(id: string, actor: User | undefined): Promise<TaskRecord> {
    const t = await this.visible(id, actor);
    if (actor && !mayControl(actor, t.owner)) {
      throw forbidden(
        `task '${id}' belongs to ${t.owner ?? 'nobody (it predates users)'}; only its owner or an admin may change it`,
        { owner: t.owner },
      );
    }
    return t;
  }

  /**
   * In a cluster: other nodes change tasks too, so the counts (list totals, health, /metrics) are
   * read from the store again — before a list, and at each heartbeat — at most once a second,
   * since each read counts the whole table.
   */
  refreshCounts(): Promise<void> {
    const now = Date.now();
    if (!this.countsRead || now - this.countsRead.at > STORED_COUNTS_MS) {
      const done = this.deps.store.countByKindAndStatus().then((rows) => this.counts.load(rows));
      this.countsRead = { at: now, done };
      done.catch(() => {
        if (this.countsRead?.done === done) this.countsRead = null;
      });
    }
    return this.countsRead.done;
  }

  async getRecord(id: string, reader?: User): Promise<TaskRecord> {
    return this.visible(id, reader);
  }

  async list(filter: {
    status?: TaskStatus;
    task_type?: string;
    limit: number;
    offset?: number;
    idPrefix?: string;
    beforeId?: string;
    owner?: string;
  }) {
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
              offset: filter.offset,
              idPrefix: filter.idPrefix,
              beforeId: filter.beforeId,
              owner: filter.owner,
            })
          ).map((t) => this.view(t));
    if (this.deps.cluster) await this.refreshCounts();
    // One user's list counts their own tasks (the in-memory counts are everyone's).
    const { owner } = filter;
    const total = async (kinds: string[]) =>
      owner === undefined
        ? this.counts.total(kinds, filter.status)
        : this.deps.store.countTasksOf(owner, kinds, filter.status);
    const [training, inference, other, totals] = await Promise.all([
      fetch(groups.training),
      fetch(groups.inference),
      fetch(groups.other),
      Promise.all([total(groups.training), total(groups.inference), total(groups.other)]),
    ]);
    return {
      training_tasks: training,
      inference_tasks: inference,
      other_tasks: other,
      total_training: totals[0],
      total_inference: totals[1],
      total_other: totals[2],
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
      owner: t.owner,
    };
    if (t.node !== undefined) {
      v.node = t.node;
      v.node_id = t.node_id ?? null;
      v.pinned_node = t.pinned_node ?? null;
    }
    if (t.status === 'pending' || t.status === 'queued') {
      const w = this.queue.waitingInfo(t.task_id, this.now());
      if (w) {
        v.queue_position = w.position;
        v.pending_reason = w.reason;
        v.effective_priority = w.effectivePriority;
      }
    }
    return v;
  }

  /** Number of stored tasks of a kind (any status). */
  countKind(kind: string): number {
    return this.counts.total([kind]);
  }

  countsByKindAndStatus(): { kind: string; status: string; n: number }[] {
    return this.counts.rows();
  }

  // ----- cancel / delete -----

  /** Cancels a task; `actor` (when given) must own it or be an admin. */
  async cancel(
    id: string,
    actor?: User,
    waitMs = 10_000,
  ): Promise<{ status: 'success'; message: string; task_id: string }> {
    const t = await this.controlled(id, actor);
    if (isTerminal(t.status)) throw conflict(`task '${id}' has already finished (${t.status})`);
    if (this.queue.isWaiting(id)) {
      // The store first: if the write fails the task is still queued in both places.
      const done = await this.deps.store.updateTask(
        id,
        { status: 'cancelled', message: 'cancelled before it started', finished_at: this.iso() },
        ['pending', 'queued'],
      );
      if (done) {
        // A dispatch in between may have placed it; its start then finds it cancelled and stops.
        this.queue.remove(id);
        this.counts.bump(t.task_type, t.status, 'cancelled');
        this.log(id, 'Cancelled while waiting; it never started');
        this.finishStream(id, 'cancelled', done.message);
        this.requestDispatch();
        return { status: 'success', message: 'Task cancelled before it started', task_id: id };
      }
    }
    const job = this.running.get(id);
    if (!job) return this.cancelElsewhere(id, waitMs);
    this.stopForCancel(id, job);
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

  /** Cancels these tasks if they run here (a cancel asked on another node of the cluster). */
  cancelRequested(ids: readonly string[]): void {
    for (const id of ids) {
      const job = this.running.get(id);
      if (job) this.stopForCancel(id, job);
    }
  }

  private stopForCancel(id: string, job: RunningJob): void {
    if (job.stopReason !== null) return;
    job.stopReason = 'cancel';
    this.log(id, 'Cancellation requested; stopping the work');
    job.controller.abort(new CancelledError());
  }

  /** A task running on another node: ask that node, then wait for the end it records. */
  private async cancelElsewhere(
    id: string,
    waitMs: number,
  ): Promise<{ status: 'success'; message: string; task_id: string }> {
    if (!this.deps.cluster || !(await this.deps.cluster.remoteCancel(id))) {
      const again = await this.deps.store.getTask(id);
      throw conflict(`task '${id}' is ${again?.status ?? 'gone'} and not running on this node`);
    }
    const end = Date.now() + waitMs;
    for (;;) {
      const t = await this.deps.store.getTask(id);
      if (t && isTerminal(t.status)) {
        if (t.status !== 'cancelled') {
          throw conflict(`task '${id}' finished (${t.status}) before it could be cancelled`);
        }
        return { status: 'success', message: 'Task cancelled', task_id: id };
      }
      if (Date.now() >= end) {
        return {
          status: 'success',
          message: 'Cancellation requested; the slot is released when the work has stopped',
          task_id: id,
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async delete(id: string, actor?: User): Promise<{ status: 'success'; message: string; task_id: string }> {
    const t = await this.controlled(id, actor);
    if (!isTerminal(t.status)) throw conflict(`task '${id}' is ${t.status}; cancel it before deleting it`);
    if (await this.deps.store.deleteTask(id)) this.counts.bump(t.task_type, t.status, null);
    return { status: 'success', message: 'Task deleted', task_id: id };
  }

  // ----- limits -----

  limits() {
    return this.queue.getLimits();
  }

  async changeLimits(change: LimitSpec) {
    const next = mergeSpecs(this.limitOverrides, change);
    await this.deps.store.setLimitOverrides(next as Record<string, Record<string, number>>);
    this.limitOverrides = next;
    this.applyLimits();
    this.requestDispatch();
    return this.queue.getLimits();
  }

  /** Quotas changed on another node of the cluster: read the stored overrides again. */
  reloadQuotas(): Promise<void> {
    return this.team.reloadQuotas();
  }

  /** Limits changed elsewhere (another node of the cluster): read the stored overrides again. */
  async reloadLimits(): Promise<void> {
    this.limitOverrides = (await this.deps.store.getLimitOverrides()) as LimitSpec;
    this.applyLimits();
    this.requestDispatch();
  }

  private applyLimits(): void {
    const devices = this.deps.devices.devices();
    this.queue.setLimits(effectiveLimits(devices, this.deps.config.startupLimits, this.limitOverrides));
  }

  /** Waiting tasks per kind, from the committed counts. */
  queueByKind(): Record<string, number> {
    return this.counts.waitingByKind();
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
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    const triggeredAt = this.dispatchTriggeredAt;
    this.claiming = true;
    this.queue
      .claim()
      .then((placements) => {
        for (const p of placements) {
          // A stop began while the claim was out: the task stays queued in the store.
          if (this.state === 'running') this.launch(p, triggeredAt);
          else this.queue.release(p.id);
        }
      })
      .catch((err: unknown) =>
        this.deps.logger.error({ err }, 'the queue could not be read; next wake-up retries'),
      )
      .finally(() => {
        this.claiming = false;
        if (this.claimAgain) {
          this.claimAgain = false;
          this.requestDispatch();
        }
      });
  }

  /** Runs a claimed task; its slot is released when the work has stopped, whatever happened. */
  private launch(p: Placement, triggeredAt: number): void {
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
      // Its last log lines are written before the slot (in a cluster, the claim) is given up.
      .then(() => this.deps.bus.settled(p.id))
      .finally(() => {
        this.running.delete(p.id);
        this.queue.release(p.id);
        this.requestDispatch();
        resolveDone();
      });
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
      this.counts.bump(task.task_type, before.status, 'running');
      this.deps.metrics.dispatchLatency.observe((performance.now() - triggeredAt) / 1000);
    } catch (err) {
      // The store refused the start: the task is still queued there, so put it back in the
      // queue, after a pause so a store that is down is not hammered.
      this.deps.logger.error({ err, task: p.id }, 'could not start task; retrying in 1 s');
      setTimeout(() => {
        if (this.state !== 'running' || this.queue.isWaiting(p.id) || this.queue.isRunning(p.id)) return;
        this.queue.add([p]);
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
    const { ctx, settled } = createRunContext({
      task,
      device: p.device,
      signal: job.controller.signal,
      store: this.deps.store,
      paths: this.deps.paths,
      log: (taskId, message, level, extra) => this.log(taskId, message, level, extra),
      now: this.now,
      keepAlive: this.deps.cluster?.keepAlive,
    });
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
      } else if (err instanceof InterruptedError) {
        const why = this.deps.paths.scrub(err.message);
        patch = { status: 'queued', message: `interrupted (${why}); it will run again`, device: null };
        line = `Interrupted: ${why}; re-queued to run again`;
        level = 'WARNING';
      } else {
        const msg = this.deps.paths.scrub(err instanceof Error ? err.message : String(err));
        patch = { status: 'failed', message: 'failed', error: msg, finished_at: this.iso() };
        if (err instanceof JobFailure && err.stats) patch.stats = err.stats;
        line = `Failed: ${msg}`;
        level = 'ERROR';
      }
    }
    await settled();
    if (job.stopReason === 'lost') {
      // Not this node's any more (cluster): whatever it would write now would be dropped.
      this.deps.logger.warn({ task: id }, 'stopped the work of a task this node no longer holds');
      return;
    }
    try {
      const saved = await this.writeEnd(id, patch, job);
      if (saved) {
        this.counts.bump(saved.task_type, 'running', saved.status);
        this.observeDuration(saved);
      }
      this.log(id, line, level, patch.status === 'completed' ? { stage: 'completed' } : {});
      if (saved && isTerminal(saved.status)) {
        this.finishStream(id, saved.status, saved.error ?? saved.message);
      }
    } catch (err) {
      this.deps.logger.error({ err, task: id }, 'could not record the end of a task');
    }
  }

  /**
   * Writes a task's end (from `running`). Retried, through an outage of the store too: the slot
   * and the claim are about to be given up, and a lost end would leave the task "running" in the
   * store. Three tries for an ordinary error; while the store is unavailable (PostgreSQL
   * restarting, a full disk) for up to END_WRITE_PATIENCE_MS, backing off to 5 s, unless the node
   * loses the task meanwhile. After a try whose answer was lost, the end may have landed: a task
   * already in the status written counts as written.
   */
  private async writeEnd(id: string, patch: TaskPatch, job: RunningJob): Promise<TaskRecord | undefined> {
    const deadline = Date.now() + END_WRITE_PATIENCE_MS;
    for (let i = 1; ; i++) {
      try {
        const done = await this.deps.store.updateTask(id, patch, ['running']);
        if (done || i === 1) return done;
        const now = await this.deps.store.getTask(id);
        return now && now.status === patch.status ? now : undefined;
      } catch (err) {
        const waitOut = isStoreUnavailable(err) && Date.now() < deadline;
        if (job.stopReason === 'lost' || (i >= 3 && !waitOut)) throw err;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** i, 5000)));
      }
    }
  }

  /**
   * This node's claim on these tasks is void (cluster: the node was declared lost, or a write
   * found another owner): their work stops now and nothing more is written for them here.
   */
  abandon(ids: readonly string[], why: string): void {
    for (const id of ids) {
      const job = this.running.get(id);
      if (!job || job.stopReason === 'lost') continue;
      job.stopReason = 'lost';
      job.controller.abort(new Error(why));
    }
  }

  private observeDuration(t: TaskRecord): void {
    if (!t.started_at || !t.finished_at) return;
    const seconds = (Date.parse(t.finished_at) - Date.parse(t.started_at)) / 1000;
    if (seconds >= 0)
      this.deps.metrics.taskDuration.observe({ kind: t.task_type, status: t.status }, seconds);
  }

  /** Tells log followers the task ended (after its last entry). */
  private finishStream(id: string, status: TaskStatus, message: string | null): void {
    this.deps.bus.finish(id, { status, message }).catch((err: unknown) => {
      this.deps.logger.warn({ err, task: id }, 'could not notify log followers');
    });
  }

  /** Appends to the task log; a failed write is reported in the service log, never thrown. */
  log(taskId: string, message: string, level: LogLevel = 'INFO', extra: LogExtra = {}): void {
    this.deps.bus.append(taskId, { level, message, ...extra }).catch((err: unknown) => {
      this.deps.logger.warn({ err, task: taskId }, 'could not write a task log entry');
    });
  }

  // ----- shutdown (recovery at the next start: recovery.ts) -----

  /** Phase one of a stop: accept no new tasks and start no waiting ones. */
  beginShutdown(): void {
    if (this.state === 'new' || this.state === 'running') this.state = 'stopping';
  }

  /**
   * Phase two: running work is asked to stop and, if it does within the grace period, re-queued
   * (it runs again after the next start). Work that does not stop in time is left as `running` in
   * the store and re-queued by the next start's recovery.
   */
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
    await this.team.stop();
    this.state = 'stopped';
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }
}

/** In a cluster, list totals are counted in the store at most this often. */
const STORED_COUNTS_MS = 1000;

/** How long the write of a task's end is retried while the store is unavailable. */
const END_WRITE_PATIENCE_MS = 120_000;
