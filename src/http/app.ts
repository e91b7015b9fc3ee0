import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import cors from '@fastify/cors';
import { AppError } from '../domain/errors.js';
import { createValidators } from '../util/validators.js';
import type { AppDeps, HttpShared } from './deps.js';
import { errorBody, errorHandling } from './errors.js';
import { resourceRoutes } from './routes/resources.js';
import { systemRoutes } from './routes/system.js';
import { taskRoutes } from './routes/tasks.js';
import { SseStreams } from './sse.js';
import { apiDocs } from './docs.js';
import { requestHooks } from './hooks.js';
import { jobRoutes } from './routes/jobs.js';
import { modelTaskRoutes } from './routes/model-tasks.js';
import { nodeRoutes } from './routes/nodes.js';
import { predictRoutes } from './routes/predict.js';
import { uiRoutes } from './routes/ui.js';
import { fileRoutes } from './routes/files.js';
import { signalRoutes } from './routes/signal.js';
import { userRoutes } from './routes/users.js';

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
    // Behind nginx: the client's address from X-Forwarded-For, when the proxy is trusted.
    ...(config.trustProxy.length > 0 ? { trustProxy: config.trustProxy } : {}),
  });

  const bodyAjv = createValidators('body');
  const textAjv = createValidators('text');
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object),
  );

  await app.register(errorHandling);
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

  const { users } = config;
  await app.register(requestHooks, { service: deps.service, metrics, users });

  await app.register(rateLimit, {
    global: false,
    // Per user when tokens are configured (however many tokens or addresses they use), else per
    // address. A made-up Authorization header buys no fresh allowance.
    keyGenerator: (request) =>
      users.secured && request.user ? `user:${request.user.name}` : `ip:${request.ip}`,
    errorResponseBuilder: (_request, ctx) => {
      metrics.rejected.inc({ reason: 'rate_limited' });
      return new AppError('rate_limited', `too many tasks created; retry in ${Math.ceil(ctx.ttl / 1000)} s`, {
        limit: ctx.max,
        window_seconds: config.rateLimitWindowMs / 1000,
      });
    },
  });
  await app.register(apiDocs, { secured: users.secured });

  // One limiter instance (one counter store) for all task-creating routes.
  const shared: HttpShared = {
    streams,
    creationHooks:
      config.rateLimitMax > 0
        ? [app.rateLimit({ max: config.rateLimitMax, timeWindow: config.rateLimitWindowMs })]
        : [],
  };
  await registerRoutes(app, deps, shared);

  app.addHook('onClose', async () => streams.closeAll());
  app.addHook('preClose', async () => streams.closeAll());
  return app;
}

/** Every route the service answers: the API, its documentation's and the dashboard's. */
async function registerRoutes(app: FastifyInstance, deps: AppDeps, shared: HttpShared): Promise<void> {
  await app.register(systemRoutes(deps, shared));
  await app.register(taskRoutes(deps, shared));
  await app.register(jobRoutes(deps, shared));
  await app.register(modelTaskRoutes(deps, shared));
  await app.register(resourceRoutes(deps));
  await app.register(nodeRoutes(deps));
  await app.register(fileRoutes(deps));
  await app.register(userRoutes(deps));
  if (deps.predict) await app.register(predictRoutes(deps, deps.predict));
  if (deps.explorer) await app.register(signalRoutes(deps.explorer));
  await app.register(uiRoutes());
}

export { errorBody };
export type { AppDeps } from './deps.js';
