import { timingSafeEqual } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import cors from '@fastify/cors';
import { VERSION } from '../config.js';
import { AppError } from '../domain/errors.js';
import { createValidators } from '../util/validators.js';
import type { AppDeps, HttpShared } from './deps.js';
import { errorBody, installErrorHandling } from './errors.js';
import { resourceRoutes } from './routes/resources.js';
import { systemRoutes } from './routes/system.js';
import { taskRoutes } from './routes/tasks.js';
import { SseStreams } from './sse.js';
import { renderReferencePage, type OpenApiDoc } from './reference-page.js';
import { preprocessingRoutes } from './routes/preprocessing.js';
import { modelTaskRoutes } from './routes/model-tasks.js';
import { predictRoutes } from './routes/predict.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Unknown body fields dropped by the schema (noted in the task's log). */
    ignoredFields?: string[];
  }
}

/** Routes open without a token even when tokens are configured. */
const OPEN_API_ROUTES = new Set(['/api/v1/health', '/api/v1/health/ready']);

/** Index of the configured token the request carries, or -1. Constant time per token. */
function bearerIndex(request: FastifyRequest, tokens: Buffer[]): number {
  const h = request.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return -1;
  const given = Buffer.from(h.slice(7).trim());
  let found = -1;
  tokens.forEach((t, i) => {
    if (t.length === given.length && timingSafeEqual(t, given)) found = i;
  });
  return found;
}

/**
 * Builds the HTTP app (not listening). Bodies are validated without type coercion ("5" is not 5),
 * and unknown body fields are dropped consistently; query strings and path parameters are coerced,
 * as they only ever arrive as text.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, metrics } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger (a pino child per request showed up in profiles); request
    // logging is off, and errors are logged with their own context.
    childLoggerFactory: (logger) => logger,
    // While closing, requests still in flight on open connections reach the routes, where the
    // service's own 503 (SPEC §2.9 error body) answers anything that would start work.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // A trailing slash answers as without it, as the reference (FastAPI redirects) does.
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
  });

  const bodyAjv = createValidators('body');
  const textAjv = createValidators('text');
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object),
  );

  installErrorHandling(app);
  const streams = new SseStreams();

  // CORS before every other hook, so a preflight is answered (204) before auth or shutdown
  // checks, and every answer, errors and SSE streams included, carries the allow-origin header.
  // The reference's own test page is opened from file:// (origin "null"): '*' lets it in.
  await app.register(cors, {
    origin: config.corsOrigins === '*' ? '*' : config.corsOrigins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['content-type', 'authorization', 'last-event-id', 'accept', 'cache-control'],
    exposedHeaders: ['retry-after', 'www-authenticate'],
    maxAge: 600,
  });

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
    if (!deps.service.accepting && routeOf(request).startsWith('/api/') && request.method !== 'GET') {
      throw new AppError('unavailable', 'the service is shutting down; try again shortly');
    }
  });

  const tokens = config.apiTokens.map((t) => Buffer.from(t));
  if (tokens.length > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const route = routeOf(request);
      const guarded = (route.startsWith('/api/') && !OPEN_API_ROUTES.has(route)) || route === '/metrics';
      if (guarded && bearerIndex(request, tokens) < 0) {
        metrics.rejected.inc({ reason: 'unauthorized' });
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
      timer = metrics.httpDuration.labels(request.method, route, String(reply.statusCode));
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

  await app.register(rateLimit, {
    global: false,
    // Per client: the token it authenticated with when tokens are configured (however the header
    // is spelled), else its address. A made-up Authorization header buys no fresh allowance.
    keyGenerator: (request) => {
      const i = tokens.length > 0 ? bearerIndex(request, tokens) : -1;
      return i >= 0 ? `token:${i}` : `ip:${request.ip}`;
    },
    errorResponseBuilder: (_request, ctx) => {
      metrics.rejected.inc({ reason: 'rate_limited' });
      return new AppError('rate_limited', `too many tasks created; retry in ${Math.ceil(ctx.ttl / 1000)} s`, {
        limit: ctx.max,
        window_seconds: config.rateLimitWindowMs / 1000,
      });
    },
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'RFUAV Model Service',
        version: VERSION,
        description:
          'Train, evaluate and serve RF drone-identification models. Tasks are durable and scheduled onto GPU/CPU slots.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
      security: tokens.length > 0 ? [{ bearer: [] }] : [],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // One limiter instance (one counter store) for all task-creating routes.
  const shared: HttpShared = {
    streams,
    creationHooks:
      config.rateLimitMax > 0
        ? [app.rateLimit({ max: config.rateLimitMax, timeWindow: config.rateLimitWindowMs })]
        : [],
  };
  await app.register(systemRoutes(deps, shared));
  await app.register(taskRoutes(deps, shared));
  await app.register(preprocessingRoutes(deps, shared));
  await app.register(modelTaskRoutes(deps, shared));
  await app.register(resourceRoutes(deps));
  if (deps.predict) await app.register(predictRoutes(deps, deps.predict));

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // The reference serves ReDoc here; ours renders the same document without a CDN script.
  let referencePage: string | null = null;
  app.get('/redoc', { schema: { hide: true } }, async (_request, reply) => {
    referencePage ??= renderReferencePage(app.swagger() as OpenApiDoc);
    return reply.type('text/html; charset=utf-8').send(referencePage);
  });

  app.addHook('onClose', async () => streams.closeAll());
  app.addHook('preClose', async () => streams.closeAll());
  return app;
}

export { errorBody };
export type { AppDeps } from './deps.js';
