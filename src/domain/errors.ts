/**
 * Every error the service reports on purpose carries a stable code and an HTTP status. They are
 * declared here and mapped to responses in exactly one place (src/http/errors.ts).
 */
export type ErrorCode =
  | 'bad_request'
  | 'bad_path'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'validation'
  | 'rate_limited'
  | 'unavailable';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  bad_path: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  validation: 422,
  rate_limited: 429,
  unavailable: 503,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly detail: unknown;

  constructor(code: ErrorCode, message: string, detail?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.statusCode = STATUS[code];
    this.detail = detail ?? null;
  }
}

export const badPath = (message: string, detail?: unknown) => new AppError('bad_path', message, detail);
export const notFound = (message: string) => new AppError('not_found', message);
export const conflict = (message: string, detail?: unknown) => new AppError('conflict', message, detail);
export const unavailable = (message: string) => new AppError('unavailable', message);
export const forbidden = (message: string, detail?: unknown) => new AppError('forbidden', message, detail);
/** A request that is well-formed JSON but breaks a rule; `field` names the offending field. */
export const invalidField = (field: string, message: string) =>
  new AppError('validation', `${field}: ${message}`, { field });

/** Why a running job's signal was aborted: the task was cancelled. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

/**
 * A job's work stopped for a reason that is not the task's own (e.g. its runner stopped itself
 * because the node's lease could not be renewed in time): the task is re-queued to run again.
 */
export class InterruptedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InterruptedError';
  }
}

/** Why a running job's signal was aborted: the service is stopping (the task is re-queued). */
export class ShutdownError extends Error {
  constructor() {
    super('service shutting down');
    this.name = 'ShutdownError';
  }
}

/** A setting (environment, users file) that cannot be used; the message names it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
