/**
 * The hooks every request passes through, in order: a body without Content-Type read as JSON,
 * work refused while stopping, the bearer token, empty query values and explicit nulls as "not
 * given" (unknown body fields noted), and the response timer. CORS comes before all of them
 * (registered in buildApp), so a preflight never meets the token check.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError, forbidden } from '../domain/errors.js';
import { isAdmin, LOCAL_USER, type User } from '../domain/users.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { TaskService } from '../service/task-service.js';
import type { UserDirectory } from '../util/users.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Unknown body fields dropped by the schema (noted in the task's log). */
    ignoredFields?: string[];
    /** Who makes the request: the token's user, or the local user when no tokens are configured. */
    user: User;
  }
  interface FastifyContextConfig {
    /** The route reads an explicit null as a value (a quota lifted), not as "not given". */
    keepNulls?: boolean;
  }
}

/** Routes open without a token even when tokens are configured. */
const OPEN_API_ROUTES = new Set(['/api/v1/health', '/api/v1/health/ready']);

/** A route's preHandler for what only admins may do (slot limits, quotas, node state). */
export async function adminOnly(request: FastifyRequest): Promise<void> {
  if (!isAdmin(request.user)) {
    throw forbidden(
      `only an admin may ${request.method} ${request.routeOptions.url}; ${request.user.name} is not one (RFUAV_ADMINS, or role: admin in RFUAV_USERS_FILE)`,
    );
  }
}

/** The user whose token the request carries, or null. */
export function bearerUser(request: FastifyRequest, users: UserDirectory): User | null {
  const h = request.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return null;
  return users.authenticate(h.slice(7).trim());
}

export interface RequestHookDeps {
  service: Pick<TaskService, 'accepting'>;
  metrics: ServiceMetrics;
  /** Who may call (no tokens configured: every caller is the local user). */
  users: UserDirectory;
}

/** A body sent without Content-Type is JSON, as FastAPI reads it (curl -d without -H, fetch
 * with a string body and no headers from some clients). */
const jsonWithoutContentType = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRequest', async (request) => {
      const h = request.headers;
      if (
        h['content-type'] === undefined &&
        (h['transfer-encoding'] !== undefined || Number(h['content-length']) > 0)
      )
        h['content-type'] = 'application/json';
    });
  },
  { name: 'json-without-content-type' },
);

// Decisions use the matched route pattern, never the raw URL: the router decodes %xx, so a
// check on the URL text could be walked around with /%61pi/... .
const routeOf = (request: FastifyRequest): string => request.routeOptions.url ?? '';

/** Work is refused (503) while the service stops, before anything else is looked at. */
const refuseWhileStopping = fp(
  async (app: FastifyInstance, o: Pick<RequestHookDeps, 'service'>) => {
    app.addHook('onRequest', async (request) => {
      if (!o.service.accepting && routeOf(request).startsWith('/api/') && request.method !== 'GET') {
        throw new AppError('unavailable', 'the service is shutting down; try again shortly');
      }
    });
  },
  { name: 'refuse-while-stopping' },
);

/**
 * Who calls: with tokens configured, /api/* (but health) and /metrics need one, and the request
 * is its user's; without, every caller is the local user.
 */
const bearerAuth = fp(
  async (app: FastifyInstance, o: Pick<RequestHookDeps, 'users' | 'metrics'>) => {
    if (!o.users.secured) {
      // Every caller is the local user, with the quotas in force now: a getter, not a hook run
      // on every request.
      app.decorateRequest('user', {
        getter: () => o.users.get(LOCAL_USER.name) ?? LOCAL_USER,
      });
      return;
    }
    app.decorateRequest('user', null as unknown as User);
    app.addHook('onRequest', async (request, reply) => {
      const route = routeOf(request);
      const guarded = (route.startsWith('/api/') && !OPEN_API_ROUTES.has(route)) || route === '/metrics';
      const user = bearerUser(request, o.users);
      if (user) request.user = user;
      else if (guarded) {
        o.metrics.rejected.inc({ reason: 'unauthorized' });
        reply.header('www-authenticate', 'Bearer');
        throw new AppError(
          'unauthorized',
          'a valid bearer token is required (Authorization: Bearer <token>)',
        );
      }
    });
  },
  { name: 'bearer-auth' },
);

/**
 * "Not given", as the reference's clients mean it: empty query values (`?status=&task_type=`),
 * and explicit nulls in a body (pydantic's Optional fields). Then body fields the route does not
 * know are recorded (the schema drops them; the task's log notes them).
 */
const notGiven = fp(
  async (app: FastifyInstance) => {
    app.addHook('preValidation', async (request) => {
      const q = request.query as Record<string, unknown> | undefined;
      if (q && typeof q === 'object') for (const k of Object.keys(q)) if (q[k] === '') delete q[k];
    });
    app.addHook('preValidation', async (request) => {
      const body = request.body;
      if (body === undefined) return;
      const schema = request.routeOptions.schema?.body as
        { properties?: Record<string, unknown> } | undefined;
      if (!schema?.properties || typeof body !== 'object' || body === null || Array.isArray(body)) return;
      const fields = body as Record<string, unknown>;
      if (!request.routeOptions.config.keepNulls)
        for (const k of Object.keys(fields)) if (fields[k] === null) delete fields[k];
      const extra = Object.keys(body).filter((k) => !(k in (schema.properties as object)));
      if (extra.length > 0) request.ignoredFields = extra;
    });
  },
  { name: 'not-given' },
);

/** Response times by method, route and status (the /metrics histogram). */
const responseTimer = fp(
  async (app: FastifyInstance, o: Pick<RequestHookDeps, 'metrics'>) => {
    // Label children cached per method/route/status: prom-client hashes the labels on every
    // observe() otherwise, which cost ~5% of a status read's time here.
    const timers = new Map<string, { observe(v: number): void }>();
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      const k = `${request.method} ${reply.statusCode} ${route}`;
      let timer = timers.get(k);
      if (!timer) {
        timer = o.metrics.httpDuration.labels(request.method, route, String(reply.statusCode));
        timers.set(k, timer);
      }
      timer.observe(reply.elapsedTime / 1000);
    });
  },
  { name: 'response-timer' },
);

/**
 * Every request hook, as one plugin (fastify-plugin: its hooks apply to the whole app, not to an
 * encapsulated child), registered in the order requests meet them.
 */
export const requestHooks = fp(
  async (app: FastifyInstance, o: RequestHookDeps) => {
    await app.register(jsonWithoutContentType);
    await app.register(refuseWhileStopping, { service: o.service });
    await app.register(bearerAuth, { users: o.users, metrics: o.metrics });
    await app.register(notGiven);
    await app.register(responseTimer, { metrics: o.metrics });
  },
  { name: 'request-hooks' },
);
