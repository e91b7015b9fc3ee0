import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../domain/errors.js';
import { isTerminal, type LogEntry } from '../domain/task.js';
import type { FinalStatus, LogBus } from '../logbus/logbus.js';
import type { Store } from '../store/store.js';

const PAGE = 500;

/** Open streams, so a shutdown can end them instead of waiting for clients to leave. */
export class SseStreams {
  private readonly open = new Set<() => void>();
  add(end: () => void): () => void {
    this.open.add(end);
    return () => this.open.delete(end);
  }
  get size(): number {
    return this.open.size;
  }
  closeAll(): void {
    for (const end of [...this.open]) end();
  }
}

/** The sequence number to resume after: `Last-Event-ID` wins over `?since=`. */
export function resumePoint(request: FastifyRequest, since: number | undefined): number {
  const header = request.headers['last-event-id'];
  if (header !== undefined) {
    const text = Array.isArray(header) ? header[0] : header;
    if (!/^\d{1,15}$/.test(text ?? '')) {
      throw new AppError('bad_request', 'Last-Event-ID must be a non-negative integer sequence number');
    }
    return Number(text);
  }
  return since ?? 0;
}

/**
 * One entry as an SSE event. A log line is an unnamed event (what the reference's pages listen
 * to); a progress entry is `event: progress` with `{timestamp, progress, message}`, so a client
 * that only knows log lines never sees it, and one that follows progress replays it by id.
 */
function entryEvent(e: LogEntry): string {
  if (e.progress != null) {
    const data = { timestamp: e.timestamp, progress: e.progress, message: e.message };
    return `id: ${e.seq}\nevent: progress\ndata: ${JSON.stringify(data)}\n\n`;
  }
  const data: Record<string, unknown> = { timestamp: e.timestamp, level: e.level, message: e.message };
  if (e.metrics != null) data.metrics = e.metrics;
  if (e.step != null) data.step = e.step;
  if (e.stage != null) data.stage = e.stage;
  return `id: ${e.seq}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * SSE per SPEC §2.7. The live subscription is opened before history is read, and entries are
 * emitted only with a sequence number above the last one sent: whatever lands while history is
 * being replayed arrives exactly once, with no gap. The final status event closes the stream.
 */
export async function streamTaskLog(opts: {
  request: FastifyRequest;
  reply: FastifyReply;
  taskId: string;
  after: number;
  /** false: close after the history (with the final status if the task has ended). */
  follow: boolean;
  store: Store;
  bus: LogBus;
  streams: SseStreams;
  heartbeatMs: number;
}): Promise<void> {
  const { request, reply, taskId, store, bus } = opts;
  const raw = reply.raw;
  let last = opts.after;
  let live = false;
  let ended = false;
  let pendingFinal: FinalStatus | null = null;
  const buffered: LogEntry[] = [];

  /** Writes an entry once; returns false when the socket buffer is full. */
  const emit = (e: LogEntry): boolean => {
    if (ended || e.seq <= last) return true;
    last = e.seq;
    return raw.write(entryEvent(e));
  };
  const finish = (f: FinalStatus | null) => {
    if (ended) return;
    if (f) raw.write(`data: ${JSON.stringify({ status: f.status, message: f.message })}\n\n`);
    cleanup();
    raw.end();
  };
  const unsubscribe = bus.subscribe(taskId, {
    onEntry: (e) => (live ? emit(e) : buffered.push(e)),
    onFinish: (f) => (live ? finish(f) : (pendingFinal = f)),
  });
  const heartbeat = setInterval(() => {
    if (!ended) raw.write(': heartbeat\n\n');
  }, opts.heartbeatMs);
  const untrack = opts.streams.add(() => finish(null));
  function cleanup() {
    ended = true;
    clearInterval(heartbeat);
    unsubscribe();
    untrack();
  }
  // The response's 'close' fires when the client goes away (or the stream ends); a client that
  // left before we got here is caught by the destroyed check.
  raw.on('close', cleanup);
  if (raw.destroyed) cleanup();

  reply.hijack();
  raw.writeHead(200, {
    // Headers set by hooks so far (CORS above all) go out with the stream.
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  raw.write(': stream of task ' + taskId + '\n\n');

  try {
    for (;;) {
      const page = await store.readLogs(taskId, last, PAGE);
      for (const e of page) {
        // History can be long: wait for a slow client instead of buffering all of it.
        if (!emit(e) && !ended) await new Promise((r) => raw.once('drain', r).once('close', r));
      }
      if (page.length < PAGE || ended) break;
    }
    for (const e of buffered) emit(e);
    buffered.length = 0;
    live = true;
    if (pendingFinal) return finish(pendingFinal);
    const task = await store.getTask(taskId);
    if (!task) return finish({ status: 'cancelled', message: 'task deleted' });
    if (isTerminal(task.status)) {
      // The task ended before we subscribed, or is ending right now: let queued appends land
      // (they reach us live), then pick up anything written since the replay.
      await new Promise((r) => setImmediate(r));
      await bus.flush();
      if (ended) return;
      for (const e of await store.readLogs(taskId, last, 10_000)) emit(e);
      finish({ status: task.status, message: task.error ?? task.message });
    } else if (!opts.follow) finish(null);
  } catch (err) {
    request.log.warn({ err, task: taskId }, 'log stream failed');
    finish(null);
  }
}
