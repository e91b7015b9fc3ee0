import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { notFound } from '../../domain/errors.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { CommonTaskFields, DeviceFields, ErrorSchema, TaskIdParams } from '../schemas.js';

/**
 * POST /inference/batch: the inference fields, with `source_paths` and `save_base_path` in place
 * of `source_path` and `save_path` (derived from the job's own schema, so the two never drift).
 */
function batchBody(inference: TObject) {
  const { source_path: _source, save_path: _save, ...fields } = inference.properties;
  return Type.Object(
    {
      ...fields,
      source_paths: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 1000 }),
      save_base_path: Type.String({ minLength: 1, default: 'results' }),
      priority: CommonTaskFields.priority,
      description: CommonTaskFields.description,
      ...DeviceFields,
    },
    { additionalProperties: false },
  );
}

const BatchResult = Type.Object({
  status: Type.Literal('success'),
  message: Type.String(),
  task_ids: Type.Array(Type.String()),
  total: Type.Integer(),
});

const MetricsResponse = Type.Object({
  task_id: Type.String(),
  total_epochs: Type.Union([Type.Integer(), Type.Null()]),
  epochs: Type.Array(Type.Object({ epoch: Type.Integer() }, { additionalProperties: true })),
});

/**
 * The model families' routes beyond the ones every kind gets (routes/jobs.ts): a training task's
 * learning curve (SPEC §2.2) and one inference task per source in one request (§2.3).
 */
export function modelTaskRoutes(deps: AppDeps, shared: HttpShared) {
  return async (app: FastifyInstance) => {
    const { registry } = deps;
    if (registry.get('training')) trainingMetricsRoute(app, deps);
    const inference = registry.get('inference');
    if (inference) inferenceBatchRoute(app, deps, shared, inference.body);
  };
}

function trainingMetricsRoute(app: FastifyInstance, deps: AppDeps): void {
  const { service } = deps;
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
      const task = await service.getRecord(request.params.task_id, request.user);
      if (task.task_type !== 'training') throw notFound(`task '${task.task_id}' is not a training task`);
      return {
        task_id: task.task_id,
        total_epochs: task.total_epochs,
        epochs: await deps.store.getEpochMetrics(task.task_id),
      };
    },
  );
}

/** `inferenceBody`: the inference kind's own body schema, which the batch body is derived from. */
function inferenceBatchRoute(
  app: FastifyInstance,
  deps: AppDeps,
  shared: HttpShared,
  inferenceBody: TObject,
): void {
  const { service } = deps;
  app.post<{
    Body: { source_paths: string[]; save_base_path: string; name?: string } & Record<string, unknown>;
  }>(
    '/api/v2/inference/batch',
    {
      onRequest: shared.creationHooks,
      schema: {
        tags: ['inference'],
        summary: 'One inference task per source; outputs under save_base_path/<index>[/<name>]',
        body: batchBody(inferenceBody),
        response: {
          200: BatchResult,
          400: ErrorSchema,
          409: ErrorSchema,
          422: ErrorSchema,
          429: ErrorSchema,
        },
      },
    },
    async (request) => {
      const { source_paths, save_base_path, ...common } = request.body;
      const tasks = await service.submitAll(
        'inference',
        source_paths.map((source_path, i) => ({
          ...common,
          source_path,
          save_path: path.posix.join(save_base_path, String(i)),
        })),
        (i) => `source_paths[${i}]`,
        { owner: request.user },
      );
      return {
        status: 'success' as const,
        message: `${tasks.length} inference task(s) queued`,
        task_ids: tasks.map((t) => t.task_id),
        total: tasks.length,
      };
    },
  );
}
