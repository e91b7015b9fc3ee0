import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../domain/errors.js';
import { isStoreUnavailable } from '../store/store.js';

export interface ErrorBody {
  status: 'error';
  message: string;
  /** Human-readable, as FastAPI's HTTPException `detail` (the reference's pages print it). */
  detail: string;
  /** The request field the error concerns, when there is one. */
  field?: string;
  timestamp: string;
  /** Further machine-readable facts (issues, limit_bytes, code, …) sit beside these. */
  [extra: string]: unknown;
}

const RESERVED = new Set(['status', 'message', 'detail', 'timestamp']);

/**
 * SPEC §2.9's error body. `extra` (an AppError's detail object) adds its fields beside the
 * standard ones, never over them; a detail that is not an object is not shown.
 */
export function errorBody(message: string, extra: unknown = null): ErrorBody {
  const body: ErrorBody = { status: 'error', message, detail: message, timestamp: '' };
  if (extra && typeof extra === 'object' && !Array.isArray(extra)) {
    for (const [k, v] of Object.entries(extra)) if (!RESERVED.has(k) && v !== undefined) body[k] = v;
  }
  body.timestamp = new Date().toISOString();
  return body;
}

interface AjvIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** Names the offending field of a schema violation, e.g. "train_ratio" or "max_concurrent.cpu". */
function fieldOf(issue: AjvIssue, part: string | undefined): string {
  const base = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const extra = (issue.params?.missingProperty ?? issue.params?.additionalProperty) as string | undefined;
  const field = [base, extra].filter(Boolean).join('.');
  return field || part || 'body';
}

/**
 * The one place where errors become HTTP responses (SPEC §2.9). Known errors keep their status and
 * message; anything unexpected is logged with its stack and answered as a bare 500 without it.
 */
function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validationContext?: string }, request, reply) => {
    if (err instanceof AppError) {
      // An answer that says when to come back says it in the header too (429, 503).
      const retry = (err.detail as { retry_after_s?: unknown } | null)?.retry_after_s;
      if (typeof retry === 'number' && !reply.hasHeader('retry-after'))
        reply.header('retry-after', String(retry));
      return reply.status(err.statusCode).send(errorBody(err.message, err.detail));
    }
    if (err.validation) {
      const issue = err.validation[0] as AjvIssue;
      const field = fieldOf(issue, err.validationContext);
      let why = issue.message ?? 'is invalid';
      if (issue.keyword === 'required') why = 'is required';
      if (issue.keyword === 'not') why = 'is not a known field here';
      if (issue.keyword === 'enum')
        why = `must be one of ${(issue.params?.allowedValues as unknown[]).join(', ')}`;
      return reply.status(422).send(
        errorBody(`${field}: ${why}`, {
          field,
          in: err.validationContext ?? 'body',
          issues: err.validation.map((v) => ({
            field: fieldOf(v as AjvIssue, err.validationContext),
            message: v.message,
          })),
        }),
      );
    }
    const status = err.statusCode ?? 500;
    if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send(
        errorBody('request body is too large', {
          limit_bytes: request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit,
        }),
      );
    }
    if (status >= 400 && status < 500) {
      // Fastify's own client errors: malformed JSON, wrong content type, bad headers.
      const message =
        err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? `unsupported content type '${request.headers['content-type'] ?? ''}': send application/json`
          : err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
            ? 'the request body is empty but the content type says JSON'
            : err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
              ? `the request body is not valid JSON: ${err.message}`
              : err.message;
      return reply.status(status).send(errorBody(message, err.code ? { code: err.code } : null));
    }
    // Before the file-system case below: a lost database connection also carries a syscall.
    if (isStoreUnavailable(err)) {
      request.log.error({ err }, 'store unavailable');
      return reply.status(503).send(errorBody('the task store is unavailable; try again shortly'));
    }
    const sys = err as FastifyError & { syscall?: string };
    if (typeof sys.syscall === 'string' && /^E[A-Z]+$/.test(err.code ?? '')) {
      // A filesystem error while looking at a path the request named (unreadable folder, ...).
      return reply.status(400).send(
        errorBody(`cannot access a path named in the request (${err.code} during ${sys.syscall})`, {
          code: err.code,
        }),
      );
    }
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send(errorBody('internal error; the service log has the details'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(errorBody(`no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

/** The error handler above as a plugin (fastify-plugin: it applies to the whole app). */
export const errorHandling = fp(async (app: FastifyInstance) => installErrorHandling(app), {
  name: 'error-handling',
});
