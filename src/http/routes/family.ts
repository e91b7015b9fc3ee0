import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { notFound } from '../../domain/errors.js';
import type { JobDefinition } from '../../jobs/job.js';
import type { User } from '../../domain/users.js';
import type { AppDeps, HttpShared } from '../deps.js';
import { ActionResult, ErrorSchema, LogQuery, TaskIdParams, TaskSchema, taskBody } from '../schemas.js';
import { logStream } from './tasks.js';

export interface FamilyOptions {
  /** URL segment under /api/v2 and the OpenAPI tag, e.g. "training". */
  family: string;
  /** POST /api/v2/<family>/<route> → a task of each definition's kind. */
  creators: { route: string; def: JobDefinition; summary: string }[];
  /** Kinds this family's GET routes answer for (others are 404 here, with a pointer). */
  kinds: string[];
  /** Whether requests carry device fields (device, gpu_memory_gb). */
  withDevice: boolean;
  /**
   * POST /api/v2/<family>/{task_id}/<name> cancels a task of this family, as the reference's
   * routes do (training/{id}/stop, preprocessing/{id}/cancel); the answer is /tasks/{id}/cancel's.
   */
  cancelRoute?: 'stop' | 'cancel';
}

/** The routes every task family has: creation, GET /{task_id}, GET /{task_id}/logs (SSE). */
export function registerFamily(
  app: FastifyInstance,
  deps: AppDeps,
  shared: HttpShared,
  o: FamilyOptions,
): void {
  for (const creator of o.creators) creationRoute(app, deps, shared, o, creator);
  if (o.cancelRoute) cancelRoute(app, deps, o, o.cancelRoute);
  getRoute(app, deps, o);
  logsRoute(app, deps, shared, o);
}

const familyBase = (o: FamilyOptions) => `/api/v2/${o.family}`;

function creationRoute(
  app: FastifyInstance,
  { service }: AppDeps,
  shared: HttpShared,
  o: FamilyOptions,
  { route, def, summary }: FamilyOptions['creators'][number],
): void {
  app.post(
    `${familyBase(o)}/${route}`,
    {
      onRequest: shared.creationHooks,
      schema: {
        tags: [o.family],
        summary,
        body: taskBody(def.body, o.withDevice),
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
        owner: request.user,
      }),
  );
}

/** The task, if it belongs to this family (a 404 with a pointer otherwise). */
async function ownTask({ service }: AppDeps, o: FamilyOptions, id: string, reader: User) {
  const view = await service.get(id, reader);
  if (!o.kinds.includes(view.task_type)) {
    throw notFound(
      `task '${view.task_id}' is a ${view.task_type} task, not ${o.family}; use /api/v2/tasks/${view.task_id}`,
    );
  }
  return view;
}

function cancelRoute(
  app: FastifyInstance,
  deps: AppDeps,
  o: FamilyOptions,
  name: NonNullable<FamilyOptions['cancelRoute']>,
): void {
  app.post<{ Params: Static<typeof TaskIdParams> }>(
    `${familyBase(o)}/:task_id/${name}`,
    {
      schema: {
        tags: [o.family],
        summary: `${name === 'stop' ? 'Stop' : 'Cancel'} a ${o.family} task (waiting: at once; running: its work is stopped, then its slot frees)`,
        params: TaskIdParams,
        response: { 200: ActionResult, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) =>
      deps.service.cancel(
        (await ownTask(deps, o, request.params.task_id, request.user)).task_id,
        request.user,
      ),
  );
}

function getRoute(app: FastifyInstance, deps: AppDeps, o: FamilyOptions): void {
  app.get<{ Params: Static<typeof TaskIdParams> }>(
    `${familyBase(o)}/:task_id`,
    {
      schema: {
        tags: [o.family],
        summary: `A ${o.family} task`,
        params: TaskIdParams,
        response: { 200: TaskSchema, 404: ErrorSchema },
      },
    },
    async (request) => ownTask(deps, o, request.params.task_id, request.user),
  );
}

function logsRoute(app: FastifyInstance, deps: AppDeps, shared: HttpShared, o: FamilyOptions): void {
  app.get<{ Params: Static<typeof TaskIdParams>; Querystring: Static<typeof LogQuery> }>(
    `${familyBase(o)}/:task_id/logs`,
    {
      schema: {
        tags: [o.family],
        summary: `Log of a ${o.family} task (SSE): history, then live, then the final status`,
        params: TaskIdParams,
        querystring: LogQuery,
      },
    },
    async (request, reply) => logStream(deps, shared.streams, request, reply, o.kinds),
  );
}
