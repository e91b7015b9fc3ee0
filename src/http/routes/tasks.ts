import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { forbidden, notFound } from '../../domain/errors.js';
import type { User } from '../../domain/users.js';
import { TASK_STATUSES, type TaskStatus } from '../../domain/task.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { ActionResult, ErrorSchema, LogQuery, TaskIdParams, TaskSchema } from '../schemas.js';
import { resumePoint, streamTaskLog, type SseStreams } from '../sse.js';

const ListQuery = Type.Object({
  status: Type.Optional(Type.Union(TASK_STATUSES.map((s) => Type.Literal(s)))),
  task_type: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  offset: Type.Integer({
    minimum: 0,
    maximum: 10_000_000,
    default: 0,
    description: 'skip this many of the newest matches (each group)',
  }),
  before: Type.Optional(
    Type.String({ maxLength: 64, description: 'only tasks created before this task id (the next page)' }),
  ),
  q: Type.Optional(Type.String({ maxLength: 64, description: 'only task ids that start with this' })),
  owner: Type.Optional(
    Type.String({ maxLength: 64, description: "only this user's tasks ('me': the caller's own)" }),
  ),
});

const errors = { 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };

export function taskRoutes(deps: AppDeps, { streams }: HttpShared) {
  return async (app: FastifyInstance) => {
    listRoute(app, deps);
    getRoute(app, deps);
    logsRoute(app, deps, streams);
    cancelRoute(app, deps);
    deleteRoute(app, deps);
  };
}

function listRoute(app: FastifyInstance, { service }: AppDeps): void {
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/api/v2/tasks',
    {
      schema: {
        tags: ['tasks'],
        summary: 'List tasks, newest first (reference shape plus other_tasks)',
        querystring: ListQuery,
        response: {
          200: Type.Object({
            training_tasks: Type.Array(TaskSchema),
            inference_tasks: Type.Array(TaskSchema),
            other_tasks: Type.Array(TaskSchema),
            total_training: Type.Integer(),
            total_inference: Type.Integer(),
            total_other: Type.Integer(),
          }),
        },
      },
    },
    async (request) =>
      service.list({
        owner: listOwner(service, request.user, request.query.owner),
        status: request.query.status as TaskStatus | undefined,
        task_type: request.query.task_type,
        limit: request.query.limit,
        offset: request.query.offset,
        idPrefix: request.query.q || undefined,
        beforeId: request.query.before || undefined,
      }),
  );
}

/**
 * Whose tasks a list shows: `?owner=` (a name, or `me`); with visibility `own`, a user who is not
 * an admin sees only their own, and asking for someone else's is a 403.
 */
function listOwner(service: AppDeps['service'], user: User, asked: string | undefined): string | undefined {
  const owner = asked === 'me' ? user.name : asked;
  if (owner !== undefined && !service.maySee(user, owner))
    throw forbidden(`owner: you may list only your own tasks (RFUAV_VISIBILITY=own)`, { field: 'owner' });
  return owner ?? (service.maySee(user, null) ? undefined : user.name);
}

function getRoute(app: FastifyInstance, { service }: AppDeps): void {
  app.get<{ Params: Static<typeof TaskIdParams> }>(
    '/api/v2/tasks/:task_id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'One task of any kind',
        params: TaskIdParams,
        response: { 200: TaskSchema, 404: ErrorSchema },
      },
    },
    async (request) => service.get(request.params.task_id, request.user),
  );
}

function logsRoute(app: FastifyInstance, deps: AppDeps, streams: SseStreams): void {
  app.get<{ Params: Static<typeof TaskIdParams>; Querystring: Static<typeof LogQuery> }>(
    '/api/v2/tasks/:task_id/logs',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Task log as Server-Sent Events: history, then live, then the final status',
        params: TaskIdParams,
        querystring: LogQuery,
      },
    },
    async (request, reply) => logStream(deps, streams, request, reply),
  );
}

function cancelRoute(app: FastifyInstance, { service }: AppDeps): void {
  app.post<{ Params: Static<typeof TaskIdParams> }>(
    '/api/v2/tasks/:task_id/cancel',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Cancel a waiting or running task (its slot frees once the work has stopped)',
        params: TaskIdParams,
        response: { 200: ActionResult, ...errors },
      },
    },
    async (request) => service.cancel(request.params.task_id, request.user),
  );
}

function deleteRoute(app: FastifyInstance, { service }: AppDeps): void {
  app.delete<{ Params: Static<typeof TaskIdParams> }>(
    '/api/v2/tasks/:task_id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Delete a finished task and its logs',
        params: TaskIdParams,
        response: { 200: ActionResult, ...errors },
      },
    },
    async (request) => service.delete(request.params.task_id, request.user),
  );
}

/** Shared by every `.../{task_id}/logs` route. */
export async function logStream(
  deps: AppDeps,
  streams: SseStreams,
  request: import('fastify').FastifyRequest,
  reply: import('fastify').FastifyReply,
  kinds?: readonly string[],
): Promise<void> {
  const { task_id } = request.params as { task_id: string };
  const { since, follow } = request.query as { since?: number; follow?: boolean };
  const after = resumePoint(request, since);
  const task = await deps.service.getRecord(task_id, request.user);
  if (kinds && !kinds.includes(task.task_type)) {
    throw notFound(`task '${task_id}' is a ${task.task_type} task; use /api/v2/tasks/${task_id}/logs`);
  }
  await streamTaskLog({
    request,
    reply,
    taskId: task_id,
    after,
    follow: follow !== false,
    store: deps.store,
    bus: deps.bus,
    streams,
    heartbeatMs: deps.config.sseHeartbeatMs,
  });
}
