import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { LimitSpec } from '../../config.js';
import { invalidField } from '../../domain/errors.js';
import type { AppDeps } from '../deps.js';
import { adminOnly } from '../hooks.js';
import { ErrorSchema } from '../schemas.js';
import { nodeView } from './nodes.js';

const ClassLimits = Type.Object(
  {
    training: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
    inference: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
    preprocessing: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  },
  // Unknown class names are an error here (not silently dropped): a typo must not read as success.
  { additionalProperties: Type.Never(), minProperties: 1 },
);

const ConfigBody = Type.Object(
  {
    max_concurrent: Type.Record(Type.String({ pattern: '^(cpu|gpu|cuda|cuda:[0-9]{1,3})$' }), ClassLimits, {
      description:
        'device ("cpu", "cuda:N", or "gpu" for every GPU) → resource class → maximum concurrent tasks',
      minProperties: 1,
      // Keys that do not match the device pattern are errors, not silently ignored.
      additionalProperties: Type.Never(),
    }),
  },
  { additionalProperties: false },
);

const round = (n: number) => Math.round(n * 100) / 100;

export function resourceRoutes(deps: AppDeps) {
  return async (app: FastifyInstance) => {
    overviewRoute(app, deps);
    gpuRoute(app, deps);
    cpuRoute(app, deps);
    configRoute(app, deps);
  };
}

/**
 * The reference's GPU object (its GET /resources/gpu), from nvidia-smi: `allocated_memory_gb`
 * is the driver's memory.used and `cached_memory_gb` the same figure (the reference read
 * both from its own torch process; a service that runs each task in a child process only
 * knows the driver's total). `utilization` is nvidia-smi's utilization.gpu, or the share of
 * memory in use where the driver reports none. `current_tasks` counts this node's running
 * tasks per class; `running_tasks` lists them.
 */
async function gpuInfo({ service, devices, torchVersions }: AppDeps, maxAgeMs: number) {
  const [readings, versions] = await Promise.all([devices.refresh(maxAgeMs), torchVersions.get()]);
  const { runningOn } = service.snapshot();
  const list = readings.map((g) => {
    const id = `cuda:${g.index}`;
    const running = runningOn[id] ?? [];
    const count = (cls: string) => running.filter((p) => p.cls === cls).length;
    return {
      id: g.index,
      device_name: id,
      name: g.name,
      compute_capability: g.computeCapability,
      total_memory_gb: round(g.totalMemoryGb),
      allocated_memory_gb: round(g.usedMemoryGb),
      cached_memory_gb: round(g.usedMemoryGb),
      used_memory_gb: round(g.usedMemoryGb),
      free_memory_gb: round(g.freeMemoryGb),
      utilization:
        g.utilization ??
        (g.totalMemoryGb > 0 ? Math.round((g.usedMemoryGb / g.totalMemoryGb) * 1000) / 10 : 0),
      current_tasks: { training: count('training'), inference: count('inference') },
      running_tasks: running.map((p) => ({ id: p.id, type: p.cls, gpu_memory_gb: p.memGb })),
    };
  });
  return {
    available: list.length > 0,
    count: list.length,
    devices: list,
    cuda_version: list.length > 0 ? versions.cuda_version : null,
    pytorch_version: versions.pytorch_version,
  };
}

function overviewRoute(app: FastifyInstance, deps: AppDeps): void {
  const { service } = deps;
  app.get(
    '/api/v2/resources',
    { schema: { tags: ['resources'], summary: 'Slot usage, running tasks, limits, GPUs and the queue' } },
    async () => {
      const gpu_info = await gpuInfo(deps, 2000);
      const now = service.snapshot();
      const cluster = deps.clusterNode;
      // In a cluster: every node beside this one's figures (this_node marks it).
      const nodes = cluster ? (await cluster.nodes()).map((n) => nodeView(n, cluster.node.id)) : undefined;
      const active: Record<string, { id: string; type: string }[]> = {};
      for (const [device, tasks] of Object.entries(now.runningOn)) {
        active[device] = tasks.map((t) => ({ id: t.id, type: t.cls }));
      }
      return {
        device_usage: now.usage,
        active_tasks: active,
        limits: now.limits,
        gpu_info,
        queue: { length: now.waiting, by_kind: service.queueByKind(), by_class: now.waitingByClass },
        ...(nodes ? { nodes } : {}),
      };
    },
  );
}

function gpuRoute(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/api/v2/resources/gpu',
    { schema: { tags: ['resources'], summary: 'GPUs as nvidia-smi reports them' } },
    async () => {
      // Always a fresh reading; concurrent callers share one nvidia-smi run.
      return gpuInfo(deps, 0);
    },
  );
}

function cpuRoute(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/api/v2/resources/cpu',
    { schema: { tags: ['resources'], summary: 'CPU and memory of this node' } },
    async () => deps.cpu.read(),
  );
}

function configRoute(app: FastifyInstance, deps: AppDeps): void {
  const { service, devices } = deps;
  app.post<{ Body: Static<typeof ConfigBody> }>(
    '/api/v2/resources/config',
    {
      preHandler: adminOnly,
      schema: {
        tags: ['resources'],
        summary: 'Change slot limits live (persisted; raising one starts waiting work at once)',
        body: ConfigBody,
        response: { 403: ErrorSchema, 422: ErrorSchema },
      },
    },
    async (request) => {
      const known = new Set(devices.devices().map((d) => d.id));
      for (const key of Object.keys(request.body.max_concurrent)) {
        if (key.startsWith('cuda:') && !known.has(key)) {
          throw invalidField(`max_concurrent.${key}`, `this node has no device ${key}`);
        }
        if ((key === 'gpu' || key === 'cuda') && devices.gpuCount === 0) {
          throw invalidField(`max_concurrent.${key}`, 'this node has no GPU');
        }
      }
      const current = await service.changeLimits(request.body.max_concurrent as LimitSpec);
      return { status: 'success', message: 'limits updated', current_config: current };
    },
  );
}
