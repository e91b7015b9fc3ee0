import type { ValidateFunction } from 'ajv';
import { AppError, invalidField } from '../domain/errors.js';
import type { JobDefinition, JobRegistry, PreparedTask } from '../jobs/job.js';
import type { PathSandbox } from '../util/sandbox.js';
import { createValidators } from '../util/validators.js';
import {
  gpusForRequest,
  resolveDeviceRequest,
  type ClusterDevices,
  type NodeGpus,
  type ResolvedRequest,
} from './device-request.js';

/** Fields every task-creating request may carry besides its kind's own. */
export interface CommonFields {
  task_id?: string;
  priority?: number;
  name?: string | null;
  description?: string | null;
  device?: string;
  gpu_memory_gb?: number;
  /** In a cluster: the name of the only node that may run it. */
  node?: string;
}

export type SubmittedBody = Record<string, unknown> & CommonFields;

/** A request that passed every check at submission, ready to be stored. */
export interface CheckedRequest {
  kind: string;
  def: JobDefinition;
  body: SubmittedBody;
  placement: ResolvedRequest;
  prepared: PreparedTask;
  /** Warnings for the task log (e.g. a CPU fallback). */
  notes: string[];
}

/**
 * Everything that decides whether a request is accepted, and nothing that writes: the kind's own
 * fields checked against its schema, the device request resolved against this node, then the
 * job's own `validate`. TaskService stores what passes.
 */
export class SubmissionChecks {
  /** Checks of job bodies, made by the one validator factory and kept per schema. */
  private readonly validators = createValidators('body');
  private readonly checkers = new WeakMap<object, ValidateFunction>();

  constructor(
    private readonly deps: {
      registry: JobRegistry;
      paths: PathSandbox;
      node: () => NodeGpus;
      cluster?: ClusterDevices;
    },
  ) {}

  async check(kind: string, body: SubmittedBody): Promise<CheckedRequest> {
    const def = this.deps.registry.get(kind);
    if (!def) throw new AppError('bad_request', `unknown task kind '${kind}'`);
    const notes: string[] = [];
    const placement = resolveDeviceRequest(
      def.resourceClass,
      body.device,
      body.gpu_memory_gb ?? null,
      await gpusForRequest(body.node, this.deps.node(), this.deps.cluster),
      notes,
    );
    // A job sees only the fields its own schema declares; the common ones (task_id, priority,
    // device, …) are the service's business and never end up in a job's parameters. Its checks
    // see a one-check view of the sandbox: a path it names several times is resolved once.
    const prepared = await def.validate(this.ownFields(def, body), { paths: this.deps.paths.forOneCheck() });
    return { kind, def, body, placement, prepared, notes: [...notes, ...(prepared.notes ?? [])] };
  }

  /**
   * The fields of `body` that the job declares, with its schema's defaults filled in and its
   * types checked: HTTP routes have done this already; other callers (batch routes, tests) rely
   * on it here.
   */
  private ownFields(def: JobDefinition, body: Record<string, unknown>): Record<string, unknown> {
    const own: Record<string, unknown> = {};
    for (const k of Object.keys(def.body.properties)) if (body[k] !== undefined) own[k] = body[k];
    let check = this.checkers.get(def.body);
    if (!check) {
      check = this.validators.compile(def.body);
      this.checkers.set(def.body, check);
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
}
