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

export interface TaskLogOptions {
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
}

/**
 * SSE per SPEC §2.7. The live subscription is opened before history is read, and entries are
 * emitted only with a sequence number above the last one sent: whatever lands while history is
 * being replayed arrives exactly once, with no gap. The final status event closes the stream.
 */
export async function streamTaskLog(opts: TaskLogOptions): Promise<void> {
  const stream = new TaskLogStream(opts);
  // Subscribed first: entries appended from here on are buffered until the replay is done.
  stream.subscribe();
  stream.writeHead();
  try {
    await stream.replay();
    stream.goLive();
    await stream.settle();
  } catch (err) {
    opts.request.log.warn({ err, task: opts.taskId }, 'log stream failed');
    stream.finish(null);
  }
}

/** One client's stream: the steps of streamTaskLog and the state they share. */
class TaskLogStream {
  private readonly raw: FastifyReply['raw'];
  /** The highest sequence number sent: nothing at or below it is written again. */
  private last: number;
  /** false while history is replayed: live entries and the final status wait in the buffer. */
  private live = false;
  private ended = false;
  private pendingFinal: FinalStatus | null = null;
  private readonly buffered: LogEntry[] = [];
  private unsubscribe: () => void = () => {};
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private untrack: () => void = () => {};

  constructor(private readonly opts: TaskLogOptions) {
    this.raw = opts.reply.raw;
    this.last = opts.after;
  }

  /** The live subscription, the heartbeat and the shutdown hook, each released by cleanup. */
  subscribe(): void {
    const { taskId, bus, streams, heartbeatMs } = this.opts;
    this.unsubscribe = bus.subscribe(
      taskId,
      {
        onEntry: (e) => (this.live ? this.emit(e) : this.buffered.push(e)),
        onFinish: (f) => (this.live ? this.finish(f) : (this.pendingFinal = f)),
      },
      this.last,
    );
    this.heartbeat = setInterval(() => {
      if (!this.ended) this.raw.write(': heartbeat\n\n');
    }, heartbeatMs);
    this.untrack = streams.add(() => this.finish(null));
    // The response's 'close' fires when the client goes away (or the stream ends); a client that
    // left before we got here is caught by the destroyed check.
    this.raw.on('close', this.cleanup);
    if (this.raw.destroyed) this.cleanup();
  }

  /** Takes the response from Fastify and starts the event stream. */
  writeHead(): void {
    const { reply, taskId } = this.opts;
    reply.hijack();
    this.raw.writeHead(200, {
      // Headers set by hooks so far (CORS above all) go out with the stream.
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.raw.write(': stream of task ' + taskId + '\n\n');
  }

  /** The stored history after `last`, page by page. */
  async replay(): Promise<void> {
    const { store, taskId } = this.opts;
    for (;;) {
      const page = await store.readLogs(taskId, this.last, PAGE);
      for (const e of page) {
        // History can be long: wait for a slow client instead of buffering all of it.
        if (!this.emit(e) && !this.ended)
          await new Promise((r) => this.raw.once('drain', r).once('close', r));
      }
      if (page.length < PAGE || this.ended) break;
    }
  }

  /** What arrived during the replay (the overlap is skipped by seq), then entries as they come. */
  goLive(): void {
    for (const e of this.buffered) this.emit(e);
    this.buffered.length = 0;
    this.live = true;
  }

  /** After the history: the final status if the task has ended, else stay open (follow) or close. */
  async settle(): Promise<void> {
    const { store, taskId } = this.opts;
    if (this.pendingFinal) return this.finish(this.pendingFinal);
    const task = await store.getTask(taskId);
    if (!task) return this.finish({ status: 'cancelled', message: 'task deleted' });
    if (isTerminal(task.status))
      await this.finishEnded({ status: task.status, message: task.error ?? task.message });
    else if (!this.opts.follow) this.finish(null);
  }

  /**
   * The task ended before we subscribed, or is ending right now: let queued appends land (they
   * reach us live), then pick up anything written since the replay, then the final status.
   */
  private async finishEnded(final: FinalStatus): Promise<void> {
    const { store, bus, taskId } = this.opts;
    await new Promise((r) => setImmediate(r));
    await bus.flush();
    if (this.ended) return;
    for (const e of await store.readLogs(taskId, this.last, 10_000)) this.emit(e);
    this.finish(final);
  }

  /** Writes an entry once; returns false when the socket buffer is full. */
  private emit(e: LogEntry): boolean {
    if (this.ended || e.seq <= this.last) return true;
    this.last = e.seq;
    return this.raw.write(entryEvent(e));
  }

  /** The final status event (none for `null`), then the end of the stream; once. */
  finish(f: FinalStatus | null): void {
    if (this.ended) return;
    if (f) this.raw.write(`data: ${JSON.stringify({ status: f.status, message: f.message })}\n\n`);
    this.cleanup();
    this.raw.end();
  }

  private readonly cleanup = (): void => {
    this.ended = true;
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.untrack();
  };
}
