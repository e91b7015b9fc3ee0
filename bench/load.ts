/**
 * A bounded autocannon run against the child server, with exact latency percentiles.
 *
 * autocannon's own latency histogram stores whole milliseconds, which is too coarse for budgets of
 * 5–10 ms (a p99 of "1" could be 1.0 or 1.99). Its 'response' event carries the float response
 * time, so every 2xx latency is kept here instead and percentiles are computed exactly.
 */
import autocannon from 'autocannon';
import { percentile } from './report.js';

export interface LoadOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:41234 (always loopback). */
  url: string;
  connections: number;
  /** Run for this many seconds (autocannon ends runs on its 1 s tick, so whole seconds). */
  durationSec?: number;
  /** Or send exactly this many requests... */
  amount?: number;
  /** ...but never run longer than this (hard bound for `amount` runs). */
  maxSec?: number;
  method?: 'GET' | 'POST';
  /** Fixed path, or one computed per request (e.g. to spread reads over many task ids). */
  path: string | (() => string);
  /** JSON text, fixed or per request. */
  body?: string | (() => string);
  /** Called on every response (e.g. to follow the progress of a long `amount` run). */
  onResponse?: (statusCode: number) => void;
}

export interface LoadResult {
  /** Responses received (any status). */
  completed: number;
  /** First request → last response, seconds. */
  durationSec: number;
  /** Responses per second. */
  rps: number;
  /** Latency of 2xx responses, milliseconds. */
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  /** Connection errors and timeouts (no response at all). */
  errors: number;
  timeouts: number;
  statusCounts: Record<string, number>;
}

export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const dynamicPath = typeof opts.path === 'function' ? opts.path : null;
  const dynamicBody = typeof opts.body === 'function' ? opts.body : null;
  const request: autocannon.Request = {
    method: opts.method ?? 'GET',
    path: typeof opts.path === 'string' ? opts.path : '/',
    ...(opts.body !== undefined ? { headers: { 'content-type': 'application/json' } } : {}),
    ...(typeof opts.body === 'string' ? { body: opts.body } : {}),
    // Only per-request requests pay for rebuilding the request buffer on every send.
    ...(dynamicPath || dynamicBody
      ? {
          setupRequest: (req: autocannon.Request) => ({
            ...req,
            ...(dynamicPath ? { path: dynamicPath() } : {}),
            ...(dynamicBody ? { body: dynamicBody() } : {}),
          }),
        }
      : {}),
  };

  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let completed = 0;
  let lastResponseAt = 0;

  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        ...(opts.amount ? { amount: opts.amount } : { duration: opts.durationSec ?? 5 }),
        timeout: 10,
        requests: [request],
      },
      (err, result) => {
        clearTimeout(bound);
        if (err) return reject(err);
        latencies.sort((a, b) => a - b);
        const durationSec = ((lastResponseAt || performance.now()) - t0) / 1000;
        resolve({
          completed,
          durationSec,
          rps: completed / durationSec,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: latencies[latencies.length - 1] ?? NaN,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCounts,
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      completed++;
      lastResponseAt = performance.now();
      const code = String(statusCode);
      statusCounts[code] = (statusCounts[code] ?? 0) + 1;
      if (code.startsWith('2')) latencies.push(responseTimeMs);
      opts.onResponse?.(Number(statusCode));
    });
    // Hard bound on every run, whatever autocannon does (e.g. an `amount` that is never reached).
    const maxSec = opts.maxSec ?? (opts.durationSec ?? 5) + 10;
    // (Declared after the callback that clears it; the callback only ever runs later.)
    const bound = setTimeout(() => {
      console.error(`[bench] load run hit its ${maxSec} s bound; stopping it`);
      instance.stop();
    }, maxSec * 1000);
  });
}

/** "–" or e.g. "429×12, 503×3" for the non-2xx statuses seen. */
export function describeNon2xx(r: LoadResult): string {
  const bad = Object.entries(r.statusCounts).filter(([code]) => !code.startsWith('2'));
  const parts = bad.map(([code, n]) => `${code}×${n}`);
  if (r.errors > 0) parts.push(`errors×${r.errors}`);
  return parts.length > 0 ? parts.join(', ') : '0';
}
