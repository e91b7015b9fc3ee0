import type { Static, TObject } from '@sinclair/typebox';
import type { EpochMetrics, LogExtra, LogLevel, ResourceClass, TaskRecord } from '../domain/task.js';
import type { RunnerKeepAlive } from '../engines/torch/runner.js';
import type { PathSandbox } from '../util/sandbox.js';

/** What a job's `validate` may consult: fast, local checks only. */
export interface ValidateContext {
  paths: PathSandbox;
}

/** A validated request, ready to be stored as a task. Paths stay as the client named them. */
export interface PreparedTask<P extends object = Record<string, unknown>> {
  /** What `run` will get back (stored with the task as JSON). */
  params: P;
  input_path: string | null;
  output_path: string | null;
  total_epochs?: number | null;
  /** Lines for the task log at acceptance (e.g. a fallback decision). */
  notes?: string[];
}

export interface RunContext {
  task: TaskRecord;
  /** Aborted on cancel or shutdown: stop promptly and let `run` reject or return. */
  signal: AbortSignal;
  device: string;
  paths: PathSandbox;
  /**
   * In a cluster: whether this node still holds its tasks. A child process that can outlive a
   * frozen node (the PyTorch runner) is kept going by it and stops by itself without it.
   */
  keepAlive?: RunnerKeepAlive;
  log(message: string, level?: LogLevel, extra?: Omit<LogExtra, 'progress'>): void;
  /** Percent 0–100; the service throttles what it writes. */
  progress(percent: number, message?: string): void;
  /**
   * One finished epoch: stored in the metric history (the same epoch again replaces it) and shown
   * as the task's current_epoch and latest_metrics. Resolves once written.
   */
  epochMetrics(metrics: EpochMetrics): Promise<void>;
  /** Forgets the stored epochs after `lastEpoch` (a run that resumed from, or restarted before, them). */
  truncateMetrics(lastEpoch: number): Promise<void>;
}

export interface JobOutcome {
  message?: string;
  stats?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

/**
 * One task kind as its file under src/jobs writes it (through `defineJob`): `validate` sees its
 * own body type and returns its own params type, and `run` gets those params back.
 */
export interface JobSpec<S extends TObject, P extends object> {
  kind: string;
  resourceClass: ResourceClass;
  /**
   * Where the kind is created: POST /api/v2/<family>/<route>. Defaults: a preprocessing kind is in
   * the `preprocessing` family (and has no route unless it names one); any other kind is its own
   * family, created at `start` (POST /api/v2/training/start).
   */
  family?: string;
  route?: string;
  /** Request body schema (without the common fields, which the service adds). */
  body: S;
  /** Fast semantic checks at submission (milliseconds; no reading of whole datasets). */
  validate(body: Static<S>, ctx: ValidateContext): Promise<PreparedTask<P>>;
  /** The work. Throw to fail the task; the message becomes its `error`. */
  run(params: P, ctx: RunContext): Promise<JobOutcome>;
}

/** A task kind as the registry, the service and the routes hold it, whatever its types. */
export interface JobDefinition {
  kind: string;
  resourceClass: ResourceClass;
  family?: string;
  route?: string;
  body: TObject;
  validate(body: Record<string, unknown>, ctx: ValidateContext): Promise<PreparedTask>;
  run(params: Record<string, unknown>, ctx: RunContext): Promise<JobOutcome>;
}

/**
 * Registers nothing: turns a typed job into the registry's form. The two assertions here are the
 * only ones a job needs: a body reaches `validate` only after it passed `spec.body` (the route's
 * schema, or TaskService's check of the job's own fields), and the params `run` gets are the
 * ones this job's `validate` returned, stored as JSON with the task and read back.
 */
export function defineJob<S extends TObject, P extends object>(spec: JobSpec<S, P>): JobDefinition {
  return {
    kind: spec.kind,
    resourceClass: spec.resourceClass,
    family: spec.family,
    route: spec.route,
    body: spec.body,
    validate: async (body, ctx) => {
      const prepared = await spec.validate(body as Static<S>, ctx);
      return { ...prepared, params: prepared.params as Record<string, unknown> };
    },
    run: (params, ctx) => spec.run(params as unknown as P, ctx),
  };
}

/** Where a kind is created over HTTP (see JobSpec.family), or null for a kind with no route. */
export function creationRoute(def: Pick<JobDefinition, 'kind' | 'resourceClass' | 'family' | 'route'>) {
  const preprocessing = def.resourceClass === 'preprocessing';
  const route = def.route ?? (preprocessing ? undefined : 'start');
  if (!route) return null;
  return { family: def.family ?? (preprocessing ? 'preprocessing' : def.kind), route };
}

/** "Queue a training task", "Queue an inference task": a kind's one-line summary in OpenAPI and --help. */
export function queueSummary(kind: string): string {
  return `Queue ${/^[aeiou]/i.test(kind) ? 'an' : 'a'} ${kind} task`;
}

export class JobRegistry {
  private readonly defs = new Map<string, JobDefinition>();

  register(def: JobDefinition): void {
    if (this.defs.has(def.kind)) throw new Error(`job kind ${def.kind} registered twice`);
    this.defs.set(def.kind, def);
  }

  get(kind: string): JobDefinition | undefined {
    return this.defs.get(kind);
  }

  kinds(): string[] {
    return [...this.defs.keys()];
  }

  all(): JobDefinition[] {
    return [...this.defs.values()];
  }
}

/** A failure that still has stats worth keeping on the task (e.g. per-file results). */
export class JobFailure extends Error {
  constructor(
    message: string,
    readonly stats: Record<string, unknown> | null = null,
  ) {
    super(message);
    this.name = 'JobFailure';
  }
}

/** Rejects with the abort reason when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
