import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { VERSION } from '../../config.js';
import { unavailable } from '../../domain/errors.js';
import { SUPPORTED_MODELS } from '../../domain/models.js';
import { creationRoute } from '../../jobs/job.js';
import type { AppDeps, HttpShared } from '../deps.js';

/** GET /api/v1/health, /api/v1/health/ready, /api/v1/info, / and /metrics. */
export function systemRoutes(deps: AppDeps, { streams }: HttpShared) {
  return async (app: FastifyInstance) => {
    attachGauges(deps, streams);
    healthRoute(app, deps, streams);
    readyRoute(app, deps);
    infoRoute(app, deps);
    rootRoute(app);
    metricsRoute(app, deps);
  };
}

/** What /metrics reads at each scrape: counts, the queue, slots and open log streams. */
function attachGauges(deps: AppDeps, streams: HttpShared['streams']): void {
  const { service, metrics } = deps;
  const cluster = deps.clusterNode;
  metrics.attach(
    {
      taskCounts: () => service.countsByKindAndStatus(),
      queueLength: () => service.waitingCount,
      slots: () => {
        const { usage, limits } = service.snapshot();
        const out: { device: string; cls: string; used: number; limit: number }[] = [];
        for (const [device, lim] of Object.entries(limits)) {
          for (const [cls, limit] of Object.entries(lim)) {
            out.push({ device, cls, used: usage[device]?.[cls as 'training'] ?? 0, limit });
          }
        }
        return out;
      },
      logStreams: () => streams.size,
      userTasks: () => deps.store.countUnfinishedByOwner(),
      userUsage: () => {
        const now = Date.now();
        const users = deps.config.users.list().map((u) => u.name);
        const f = service.fairShare.factors(now);
        return users.map((user) => ({
          user,
          usage: service.fairShare.usageOf(user, now),
          factor: f.get(user)?.factor ?? 1,
        }));
      },
      gpus: () => deps.devices.readings(),
      clusterNodes: cluster
        ? () => {
            const s = cluster.summary();
            return [
              { state: 'active', n: s.nodes_active },
              { state: 'draining', n: s.nodes_draining },
              { state: 'lost', n: s.nodes_lost },
            ];
          }
        : undefined,
    },
    cluster?.node.name,
  );
}

/** Health reads only in-memory counters: its cost does not grow with the number of stored tasks. */
function healthRoute(app: FastifyInstance, deps: AppDeps, streams: HttpShared['streams']): void {
  const { service } = deps;
  const resourceStatus = () => {
    const now = service.snapshot();
    return {
      device_usage: now.usage,
      queue_length: now.waiting,
      running: now.running,
      gpu_count: deps.devices.gpuCount,
    };
  };

  app.get(
    '/api/v1/health',
    {
      schema: {
        tags: ['system'],
        summary: 'Liveness and a summary of load (never needs a token)',
        response: {
          200: Type.Object({
            status: Type.Literal('healthy'),
            timestamp: Type.String(),
            version: Type.String(),
            training_tasks: Type.Integer(),
            inference_tasks: Type.Integer(),
            active_log_streams: Type.Integer(),
            resource_status: Type.Unknown(),
            store: Type.String(),
            // Several nodes on PostgreSQL: this node and how many others are up (last heartbeat).
            cluster: Type.Optional(Type.Unknown()),
          }),
        },
      },
    },
    async () => ({
      status: 'healthy' as const,
      timestamp: new Date().toISOString(),
      version: VERSION,
      training_tasks: service.countKind('training'),
      inference_tasks: service.countKind('inference'),
      active_log_streams: streams.size,
      resource_status: resourceStatus(),
      store: deps.store.dialect,
      ...(deps.clusterNode ? { cluster: deps.clusterNode.summary() } : {}),
    }),
  );
}

function readyRoute(app: FastifyInstance, deps: AppDeps): void {
  const { service } = deps;
  app.get(
    '/api/v1/health/ready',
    {
      schema: {
        tags: ['system'],
        summary: 'Readiness: 503 while the store is unreachable or the service stops',
      },
    },
    async () => {
      if (!service.accepting) throw unavailable('the service is not accepting work (starting or stopping)');
      try {
        await deps.store.ping();
      } catch {
        throw unavailable('the task store is unreachable');
      }
      return { status: 'ready', store: deps.store.dialect, timestamp: new Date().toISOString() };
    },
  );
}

function infoRoute(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/api/v1/info',
    { schema: { tags: ['system'], summary: 'Service name, version, supported models and limits' } },
    async () => ({
      app_name: 'RFUAV Model Service',
      version: VERSION,
      environment: deps.config.environment,
      supported_models: SUPPORTED_MODELS,
      task_types: deps.registry.kinds(),
      // Where each kind is created (the dashboard's forms post there; its schema is in /openapi.json).
      task_routes: Object.fromEntries(
        deps.registry.all().flatMap((def) => {
          const at = creationRoute(def);
          return at ? [[def.kind, `/api/v2/${at.family}/${at.route}`]] : [];
        }),
      ),
      resource_limits: deps.service.limits(),
      gpu_available: deps.devices.gpuCount > 0,
      gpu_count: deps.devices.gpuCount,
      store: deps.store.dialect,
    }),
  );
}

function rootRoute(app: FastifyInstance): void {
  app.get(
    '/',
    {
      schema: {
        tags: ['system'],
        summary: 'Browsers are sent to the dashboard (/ui/), others get a JSON overview',
      },
    },
    async (request, reply) => {
      const accept = request.headers.accept ?? '';
      // Browsers go to the dashboard; API clients get the JSON overview.
      if (accept.includes('text/html')) return reply.redirect('/ui/', 302);
      return {
        name: 'RFUAV Model Service',
        version: VERSION,
        features: [
          'durable tasks (survive restarts)',
          'priority queue with aging',
          'GPU/CPU slot scheduling with memory-aware placement',
          'live task logs over SSE',
          'dataset split',
          'image crop',
        ],
        endpoints: {
          health: '/api/v1/health',
          info: '/api/v1/info',
          tasks: '/api/v2/tasks',
          resources: '/api/v2/resources',
          preprocessing: '/api/v2/preprocessing',
          docs: '/docs',
          openapi: '/openapi.json',
          metrics: '/metrics',
        },
      };
    },
  );
}

function metricsRoute(app: FastifyInstance, { metrics }: AppDeps): void {
  app.get(
    '/metrics',
    { schema: { tags: ['system'], summary: 'Prometheus metrics' } },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
}
