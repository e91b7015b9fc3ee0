/**
 * GET /api/v2/users/me — who the caller is, their quotas and what they have waiting and running;
 * GET /api/v2/users — every user with the same (admins only).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { User } from '../../domain/users.js';
import type { FairShare } from '../../scheduler/fair-share.js';
import type { OwnerStatusCount } from '../../store/store.js';
import type { AppDeps } from '../deps.js';
import { adminOnly } from '../hooks.js';
import { ErrorSchema } from '../schemas.js';

const UserView = Type.Object({
  name: Type.String(),
  role: Type.String(),
  share: Type.Number(),
  quotas: Type.Object({
    queued: Type.Optional(Type.Integer()),
    running: Type.Optional(Type.Record(Type.String(), Type.Integer())),
  }),
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
  };
}
