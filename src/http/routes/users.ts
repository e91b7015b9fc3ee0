/**
 * GET /api/v2/users/me — who the caller is, their quotas and what they have waiting and running;
 * GET /api/v2/users — every user with the same (admins only); POST and DELETE
 * /api/v2/users/{name}/quotas — an admin changes a user's quotas live, or drops the change.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { RESOURCE_CLASSES } from '../../domain/task.js';
import type { Quotas, User } from '../../domain/users.js';
import type { FairShare } from '../../scheduler/fair-share.js';
import type { OwnerStatusCount } from '../../store/store.js';
import { parseQuotaChange } from '../../util/users.js';
import type { AppDeps } from '../deps.js';
import { adminOnly } from '../hooks.js';
import { ErrorSchema } from '../schemas.js';

const QuotasView = Type.Object(
  {
    queued: Type.Optional(Type.Integer()),
    running: Type.Optional(Type.Record(Type.String(), Type.Integer())),
    gpu_hours_per_day: Type.Optional(Type.Number()),
  },
  { description: 'the quotas in force (absent: unlimited)' },
);

const Lift = Type.Null({ description: 'null lifts the quota (unlimited)' });
const CountOrLift = Type.Union([Type.Integer({ minimum: 0 }), Lift]);

/**
 * The body's types, checked by the route's validator (a 422 naming the field); open to unknown
 * fields and classes so that parseQuotaChange can name those too, rather than the validator
 * dropping them unseen.
 */
const QuotaChange = Type.Object(
  {
    queued: Type.Optional(CountOrLift),
    running: Type.Optional(
      Type.Object(Object.fromEntries(RESOURCE_CLASSES.map((c) => [c, Type.Optional(CountOrLift)])), {
        additionalProperties: true,
      }),
    ),
    gpu_hours_per_day: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Lift])),
  },
  {
    additionalProperties: true,
    description:
      "fields given replace the user's quota (over their earlier change); the others stay as they are",
  },
);

const QuotasAnswer = Type.Object({
  status: Type.Literal('success'),
  user: Type.String(),
  quotas: QuotasView,
  configured: QuotasView,
});

const UserView = Type.Object({
  name: Type.String(),
  role: Type.String(),
  share: Type.Number(),
  quotas: QuotasView,
  queued: Type.Integer({ description: 'tasks waiting (pending or queued), on every node' }),
  running: Type.Integer(),
  usage: Type.Number({
    description: 'device-seconds used, decayed with the fair-share half-life (a CPU second counts 0.1)',
  }),
  fair_share: Type.Number({
    description: 'F = 2^(−u/s): 1 = has used nothing lately, 0.5 = exactly their share',
  }),
  used_over_share: Type.Number({ description: 'their part of recent use over their part of the shares' }),
});

function userView(u: User, counts: OwnerStatusCount[], fs: FairShare, now: number) {
  const mine = counts.filter((c) => c.owner === u.name);
  const n = (statuses: string[]) =>
    mine.filter((c) => statuses.includes(c.status)).reduce((a, c) => a + c.n, 0);
  const f = fs.factors(now).get(u.name);
  return {
    name: u.name,
    role: u.role,
    share: u.share,
    quotas: u.quotas,
    queued: n(['pending', 'queued']),
    running: n(['running']),
    usage: fs.usageOf(u.name, now),
    fair_share: f?.factor ?? 1,
    used_over_share: f?.usedOverShare ?? 0,
  };
}

export function userRoutes({ config, store, service }: AppDeps) {
  const view = async (users: User[]) => {
    const counts = await store.countUnfinishedByOwner();
    const now = Date.now();
    return users.map((u) => userView(u, counts, service.fairShare, now));
  };
  return async (app: FastifyInstance) => {
    app.get(
      '/api/v2/users/me',
      {
        schema: {
          tags: ['users'],
          summary: 'The caller: name, role, share, quotas, tasks waiting and running',
          response: { 200: UserView },
        },
      },
      async (request) => (await view([request.user]))[0],
    );
    app.get(
      '/api/v2/users',
      {
        preHandler: adminOnly,
        schema: {
          tags: ['users'],
          summary: 'Every user, with their tasks waiting and running (admins only)',
          response: { 200: Type.Object({ users: Type.Array(UserView) }), 403: ErrorSchema },
        },
      },
      async () => ({ users: await view(config.users.list()) }),
    );
    quotaRoutes(app, { config, service });
  };
}

function quotaRoutes(app: FastifyInstance, { config, service }: Pick<AppDeps, 'config' | 'service'>) {
  const answer = (name: string, quotas: Quotas) => ({
    status: 'success' as const,
    user: name,
    quotas,
    configured: config.users.configuredQuotas(name) ?? {},
  });
  const Params = Type.Object({ name: Type.String() });
  app.post<{ Params: Static<typeof Params>; Body: Static<typeof QuotaChange> }>(
    '/api/v2/users/:name/quotas',
    {
      preHandler: adminOnly,
      config: { keepNulls: true },
      schema: {
        tags: ['users'],
        summary: "Change a user's quotas live, at once on every node (admins only; persisted)",
        params: Params,
        body: QuotaChange,
        response: { 200: QuotasAnswer, 403: ErrorSchema, 404: ErrorSchema, 422: ErrorSchema },
      },
    },
    async (request) => {
      const change = parseQuotaChange(request.body);
      return answer(request.params.name, await service.team.changeQuotas(request.params.name, change));
    },
  );
  app.delete<{ Params: Static<typeof Params> }>(
    '/api/v2/users/:name/quotas',
    {
      preHandler: adminOnly,
      schema: {
        tags: ['users'],
        summary: "Drop the live change of a user's quotas: the configured ones apply again (admins only)",
        params: Params,
        response: { 200: QuotasAnswer, 403: ErrorSchema, 404: ErrorSchema },
      },
    },
    async (request) => answer(request.params.name, await service.team.resetQuotas(request.params.name)),
  );
}
