/**
 * The hooks every request passes through, in order: a body without Content-Type read as JSON,
 * work refused while stopping, the bearer token, empty query values and explicit nulls as "not
 * given" (unknown body fields noted), and the response timer. CORS comes before all of them
 * (registered in buildApp), so a preflight never meets the token check.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.js';
import type { ServiceMetrics } from '../metrics/metrics.js';
import type { TaskService } from '../service/task-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Unknown body fields dropped by the schema (noted in the task's log). */
    ignoredFields?: string[];
  }
}

/** Routes open without a token even when tokens are configured. */
const OPEN_API_ROUTES = new Set(['/api/v1/health', '/api/v1/health/ready']);

/** Index of the configured token the request carries, or -1. Constant time per token. */
export function bearerIndex(request: FastifyRequest, tokens: Buffer[]): number {
  const h = request.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return -1;
  const given = Buffer.from(h.slice(7).trim());
  let found = -1;
  tokens.forEach((t, i) => {
    if (t.length === given.length && timingSafeEqual(t, given)) found = i;
  });
  return found;
}

export interface RequestHookDeps {
  service: Pick<TaskService, 'accepting'>;
  metrics: ServiceMetrics;
  /** Configured API tokens (none: no token check). */
  tokens: Buffer[];
}

export function installRequestHooks(app: FastifyInstance, o: RequestHookDeps): void {
  // A body sent without Content-Type is JSON, as FastAPI reads it (curl -d without -H, fetch
  // with a string body and no headers from some clients).
  app.addHook('onRequest', async (request) => {
    const h = request.headers;
    if (
      h['content-type'] === undefined &&
      (h['transfer-encoding'] !== undefined || Number(h['content-length']) > 0)
    )
      h['content-type'] = 'application/json';
  });

  // Decisions use the matched route pattern, never the raw URL: the router decodes %xx, so a
  // check on the URL text could be walked around with /%61pi/... .
  const routeOf = (request: FastifyRequest): string => request.routeOptions.url ?? '';

  // Refuse work while shutting down, before anything else.
  app.addHook('onRequest', async (request) => {
    if (!o.service.accepting && routeOf(request).startsWith('/api/') && request.method !== 'GET') {
      throw new AppError('unavailable', 'the service is shutting down; try again shortly');
    }
  });

  if (o.tokens.length > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const route = routeOf(request);
      const guarded = (route.startsWith('/api/') && !OPEN_API_ROUTES.has(route)) || route === '/metrics';
      if (guarded && bearerIndex(request, o.tokens) < 0) {
        o.metrics.rejected.inc({ reason: 'unauthorized' });
        reply.header('www-authenticate', 'Bearer');
        throw new AppError(
          'unauthorized',
          'a valid bearer token is required (Authorization: Bearer <token>)',
        );
      }
    });
  }

  // Empty query values (`?status=&task_type=`, as the reference's clients send them) mean "not given".
  app.addHook('preValidation', async (request) => {
    const q = request.query as Record<string, unknown> | undefined;
    if (q && typeof q === 'object') for (const k of Object.keys(q)) if (q[k] === '') delete q[k];
  });

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

  // Explicit null for a field means "not given", as in the reference (pydantic's Optional
  // fields); then record (and let the schema drop) body fields the route does not know.
  app.addHook('preValidation', async (request) => {
    const body = request.body;
    if (body === undefined) return;
    const schema = request.routeOptions.schema?.body as { properties?: Record<string, unknown> } | undefined;
    if (!schema?.properties || typeof body !== 'object' || body === null || Array.isArray(body)) return;
    const fields = body as Record<string, unknown>;
    for (const k of Object.keys(fields)) if (fields[k] === null) delete fields[k];
    const extra = Object.keys(body).filter((k) => !(k in (schema.properties as object)));
    if (extra.length > 0) request.ignoredFields = extra;
  });
}
