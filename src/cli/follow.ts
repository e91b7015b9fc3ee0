/**
 * Following a task over its log stream (SPEC §2.7), never by polling: progress arrives as
 * `event: progress`, log lines as unnamed events, both numbered; the final status is an unnamed
 * event without an id, after which the server closes the stream. A connection that drops (a
 * network error, or the stream ending before the final status) is opened again with
 * `Last-Event-ID` set to the last number seen, so each entry is shown once and none is lost.
 */
import { ApiError, type ApiClient, type SseEvent } from './client.js';
import { taskPath } from './command.js';
import { formatEntry, type LogLine } from './format.js';
import { ProgressBar } from './progress.js';

export interface FinalStatus {
  status: string;
  message: string | null;
}

/** The stream could not be reopened within the allowed time; the task's outcome is unknown. */
export class StreamLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamLostError';
  }
}

export interface ReconnectPolicy {
  /** First wait after a drop; doubles on each failed attempt up to `maxDelayMs`. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** How long the stream may stay unreachable before giving up. */
  giveUpAfterMs: number;
}

/** 0.2 s, 0.4 s … 5 s between attempts; RFUAV_RECONNECT_S (default 30) before giving up. */
export function reconnectPolicy(env: NodeJS.ProcessEnv = process.env): ReconnectPolicy {
  const s = Number(env.RFUAV_RECONNECT_S ?? 30);
  return {
    firstDelayMs: 200,
    maxDelayMs: 5000,
    giveUpAfterMs: (Number.isFinite(s) && s >= 0 ? s : 30) * 1000,
  };
}

/** Worth another attempt: no answer at all, or a server that is busy, stopping or behind a proxy. */
function retryable(err: unknown): err is ApiError {
  return err instanceof ApiError && [0, 429, 502, 503, 504].includes(err.status);
}

function finalStatus(ev: SseEvent): FinalStatus | null {
  if (ev.id !== undefined || ev.event !== undefined) return null;
  const data = JSON.parse(ev.data) as { status?: unknown; message?: unknown };
  if (typeof data.status !== 'string') return null;
  return { status: data.status, message: typeof data.message === 'string' ? data.message : null };
}

export interface StreamHooks {
  /** A connection dropped; the next attempt comes after `delayMs`. */
  onDrop?(reason: string, resumeAfter: number | undefined, delayMs: number): void;
}

/**
 * Every numbered event of a task's log exactly once, in order, across dropped connections;
 * resolves with the final status.
 */
export async function readTaskStream(
  api: ApiClient,
  taskId: string,
  onEvent: (ev: SseEvent) => void,
  policy: ReconnectPolicy = reconnectPolicy(),
  hooks: StreamHooks = {},
): Promise<FinalStatus> {
  const path = taskPath(taskId, '/logs');
  let last: number | undefined;
  let delay = policy.firstDelayMs;
  let lostSince: number | null = null;
  for (;;) {
    const headers: Record<string, string> = last === undefined ? {} : { 'last-event-id': String(last) };
    let why: string;
    try {
      const onOpen = () => (lostSince = null);
      for await (const ev of api.events(path, undefined, { headers, onOpen })) {
        const final = finalStatus(ev);
        if (final) return final;
        if (ev.id === undefined) continue;
        const seq = Number(ev.id);
        // The server sends only entries after Last-Event-ID; this guards the promise anyway.
        if (last !== undefined && seq <= last) continue;
        last = seq;
        delay = policy.firstDelayMs;
        onEvent(ev);
      }
      why = 'the stream ended before the task did';
    } catch (err) {
      if (!retryable(err)) throw err;
      why = err.message;
    }
    lostSince ??= Date.now();
    if (Date.now() - lostSince >= policy.giveUpAfterMs) {
      throw new StreamLostError(
        `lost the log stream of task ${taskId} for ${Math.round(policy.giveUpAfterMs / 1000)} s (${why}); ` +
          `the task may still be running: rfuav logs -f ${taskId}`,
      );
    }
    hooks.onDrop?.(why, last, delay);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, policy.maxDelayMs);
  }
}

export interface FollowOptions {
  /** Which log lines to print (default: all). */
  show?: (line: LogLine) => boolean;
  /** What the progress line says until the first progress event (e.g. the queue position). */
  initial?: { progress: number; label: string };
  policy?: ReconnectPolicy;
}

/**
 * Prints a task's log as it happens (stdout), its progress on a bar or plain lines (stderr), and
 * the final line; resolves with the final status.
 */
export async function followTask(
  api: ApiClient,
  taskId: string,
  o: FollowOptions = {},
): Promise<FinalStatus> {
  const bar = new ProgressBar();
  if (o.initial) bar.update(o.initial.progress, o.initial.label);
  // Until the first progress event, the newest log line says more than "queued" does.
  let relabel = o.initial !== undefined;
  let dropped = false;
  const final = await readTaskStream(
    api,
    taskId,
    (ev) => {
      dropped = false;
      if (ev.event === 'progress') {
        const p = JSON.parse(ev.data) as { progress?: number; message?: string | null };
        relabel = false;
        bar.update(p.progress ?? 0, p.message ?? '');
      } else if (ev.event === undefined) {
        const line = JSON.parse(ev.data) as LogLine;
        if (o.show && !o.show(line)) return;
        bar.above(process.stdout, `${formatEntry(line)}\n`);
        if (relabel) bar.update(o.initial?.progress ?? 0, line.message ?? '');
      }
    },
    o.policy,
    {
      onDrop: (why, after) => {
        // Once per outage: the attempts that follow it are not news.
        if (dropped) return;
        dropped = true;
        const from = after === undefined ? 'from the start' : `after entry ${after}`;
        bar.above(process.stderr, `rfuav: ${why}; reconnecting to resume ${from}\n`);
      },
    },
  );
  if (final.status === 'completed') bar.update(100, 'completed');
  bar.clear();
  process.stdout.write(`Task ${taskId} ${final.status}${final.message ? `: ${final.message}` : ''}\n`);
  return final;
}
