/**
 * GET /api/v2/users/me — who the caller is, their quotas and what they have waiting and running;
 * GET /api/v2/users — every user with the same (admins only).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { User } from '../../domain/users.js';
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
});

function userView(u: User, counts: OwnerStatusCount[]) {
  const mine = counts.filter((c) => c.owner === u.name);
  const n = (statuses: string[]) =>
    mine.filter((c) => statuses.includes(c.status)).reduce((a, c) => a + c.n, 0);
  return {
    name: u.name,
    role: u.role,
    share: u.share,
    quotas: u.quotas,
    queued: n(['pending', 'queued']),
    running: n(['running']),
  };
}

export function userRoutes({ config, store }: AppDeps) {
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
      async (request) => userView(request.user, await store.countUnfinishedByOwner()),
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
      async () => {
        const counts = await store.countUnfinishedByOwner();
        return { users: config.users.list().map((u) => userView(u, counts)) };
      },
    );
  };
}
