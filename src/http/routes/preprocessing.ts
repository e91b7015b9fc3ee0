import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { notFound } from '../../domain/errors.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { ErrorSchema, LogQuery, TaskIdParams, TaskSchema, taskBody } from '../schemas.js';
import { logStream } from './tasks.js';

/** POST /api/v2/preprocessing/<route> for every registered preprocessing job, plus reads. */
export function preprocessingRoutes(deps: AppDeps, { streams, creationHooks }: HttpShared) {
  return async (app: FastifyInstance) => {
    const { service, registry } = deps;
    const defs = registry
      .kinds()
      .map((k) => registry.get(k))
      .filter((d) => d?.resourceClass === 'preprocessing' && d.route);
    const kinds = defs.map((d) => d?.kind as string);

    for (const def of defs) {
      if (!def) continue;
      app.post(
        `/api/v2/preprocessing/${def.route}`,
        {
          onRequest: creationHooks,
          schema: {
            tags: ['preprocessing'],
            summary: `Queue a ${def.kind} task`,
            body: taskBody(def.body, false),
            response: {
              200: TaskSchema,
              400: ErrorSchema,
              409: ErrorSchema,
              422: ErrorSchema,
              429: ErrorSchema,
            },
          },
        },
        async (request) =>
          service.submit(def.kind, request.body as Record<string, unknown>, {
            ignoredFields: request.ignoredFields,
          }),
      );
    }

    app.get<{ Params: Static<typeof TaskIdParams> }>(
      '/api/v2/preprocessing/:task_id',
      {
        schema: {
          tags: ['preprocessing'],
          summary: 'A preprocessing task',
          params: TaskIdParams,
          response: { 200: TaskSchema, 404: ErrorSchema },
        },
      },
      async (request) => {
        const view = await service.get(request.params.task_id);
        if (!kinds.includes(view.task_type))
          throw notFound(`task '${view.task_id}' is not a preprocessing task`);
        return view;
      },
    );

    app.get<{ Params: Static<typeof TaskIdParams>; Querystring: Static<typeof LogQuery> }>(
      '/api/v2/preprocessing/:task_id/logs',
      {
        schema: {
          tags: ['preprocessing'],
          summary: 'Log of a preprocessing task (SSE)',
          params: TaskIdParams,
          querystring: LogQuery,
        },
      },
      async (request, reply) => logStream(deps, streams, request, reply, kinds),
    );
  };
}
