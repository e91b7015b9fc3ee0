import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { notFound } from '../../domain/errors.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { ActionResult, ErrorSchema, TaskIdParams } from '../schemas.js';
import { registerFamily } from './family.js';

const MetricsResponse = Type.Object({
  task_id: Type.String(),
  total_epochs: Type.Union([Type.Integer(), Type.Null()]),
  epochs: Type.Array(Type.Object({ epoch: Type.Integer() }, { additionalProperties: true })),
});

/** /api/v2/training (SPEC §2.2), /api/v2/inference (§2.3) and /api/v2/evaluation (§2.4), when registered. */
export function modelTaskRoutes(deps: AppDeps, shared: HttpShared) {
  return async (app: FastifyInstance) => {
    const { service, registry } = deps;
    const training = registry.get('training');
    if (training) {
      registerFamily(app, deps, shared, {
        family: 'training',
        creators: [{ route: 'start', def: training, summary: 'Queue a training task' }],
        kinds: ['training'],
        withDevice: true,
      });

      app.get<{ Params: Static<typeof TaskIdParams> }>(
        '/api/v2/training/:task_id/metrics',
        {
          schema: {
            tags: ['training'],
            summary: 'The learning curve: metrics of every finished epoch',
            params: TaskIdParams,
            response: { 200: MetricsResponse, 404: ErrorSchema },
          },
        },
        async (request) => {
          const task = await service.getRecord(request.params.task_id);
          if (task.task_type !== 'training') throw notFound(`task '${task.task_id}' is not a training task`);
          return {
            task_id: task.task_id,
            total_epochs: task.total_epochs,
            epochs: await deps.store.getEpochMetrics(task.task_id),
          };
        },
      );

      app.post<{ Params: Static<typeof TaskIdParams> }>(
        '/api/v2/training/:task_id/stop',
        {
          schema: {
            tags: ['training'],
            summary: 'Stop a training task (same as cancel: the runner process group is terminated)',
            params: TaskIdParams,
            response: { 200: ActionResult, 404: ErrorSchema, 409: ErrorSchema },
          },
        },
        async (request) => {
          const task = await service.getRecord(request.params.task_id);
          if (task.task_type !== 'training') throw notFound(`task '${task.task_id}' is not a training task`);
          return service.cancel(task.task_id);
        },
      );
    }

    const inference = registry.get('inference');
    if (inference) {
      registerFamily(app, deps, shared, {
        family: 'inference',
        creators: [{ route: 'start', def: inference, summary: 'Queue an inference task (images)' }],
        kinds: ['inference'],
        withDevice: true,
      });
    }

    const evaluation = registry.get('evaluation');
    if (evaluation) {
      registerFamily(app, deps, shared, {
        family: 'evaluation',
        creators: [{ route: 'start', def: evaluation, summary: 'Queue an evaluation task' }],
        kinds: ['evaluation'],
        withDevice: true,
      });
    }
  };
}
