/** A small HTTP client for the CLI: JSON requests, SSE following, clear errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  server: string;
  token?: string;
}

export interface SseEvent {
  id?: string;
  /** The event's name (`progress`); absent on log lines and the final status. */
  event?: string;
  data: string;
}

export class ApiClient {
  constructor(private readonly opts: ClientOptions) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    if (this.opts.token) h.authorization = `Bearer ${this.opts.token}`;
    return h;
  }

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.send<T>(method, path, {
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** A multipart form (fetch sets its content type and boundary). */
  upload<T>(path: string, form: FormData): Promise<T> {
    return this.send<T>('POST', path, { headers: this.headers(), body: form });
  }

  private async send<T>(method: string, path: string, init: RequestInit): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.opts.server), { method, ...init });
    } catch (err) {
      throw new ApiError(
        0,
        `cannot reach the service at ${this.opts.server} (${reason(err as Error)}); is 'rfuav serve' running?`,
      );
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    if (!res.ok) {
      const msg = (json as { message?: string } | null)?.message ?? (text || res.statusText);
      throw new ApiError(res.status, `${res.status}: ${msg}`);
    }
    return json as T;
  }

  /**
   * Follows an SSE stream until the server closes it or `signal` aborts. A connection that breaks
   * mid-stream rejects with an ApiError of status 0, as one that cannot be made does; an event
   * cut off by the break is never yielded.
   */
  async *events(path: string, signal?: AbortSignal, opts: EventsOptions = {}): AsyncGenerator<SseEvent> {
    const res = await fetch(new URL(path, this.opts.server), {
      headers: this.headers({ accept: 'text/event-stream', ...opts.headers }),
      signal,
    }).catch((err: Error) => {
      throw new ApiError(0, `cannot reach the service at ${this.opts.server} (${reason(err)})`);
    });
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message: string }).message;
      } catch {
        // keep text
      }
      throw new ApiError(res.status, `${res.status}: ${msg || res.statusText}`);
    }
    opts.onOpen?.();
    const decoder = new TextDecoder();
    let buf = '';
    const chunks = (res.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = await chunks.next();
        } catch (err) {
          if (signal?.aborted) throw err;
          throw new ApiError(0, `the connection to ${this.opts.server} broke (${reason(err as Error)})`);
        }
        if (next.done) return;
        buf += decoder.decode(next.value, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const ev = parseEvent(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (ev) yield ev;
        }
      }
    } finally {
      // A caller that stops early (the final status came) lets the connection go.
      await chunks.return?.().catch(() => undefined);
    }
  }
}

export interface EventsOptions {
  /** Extra request headers, e.g. Last-Event-ID. */
  headers?: Record<string, string>;
  /** Called once the server has answered 200 and the stream begins. */
  onOpen?: () => void;
}

/** The innermost reason a request failed: "ECONNREFUSED", "other side closed". */
function reason(err: Error): string {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.message ?? cause?.code ?? err.message;
}

/** One event block (the lines before a blank line); comments only (heartbeats) give none. */
function parseEvent(block: string): SseEvent | null {
  const ev: SseEvent = { data: '' };
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    if (line.startsWith('id:')) ev.id = line.slice(3).trim();
    else if (line.startsWith('event:')) ev.event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (data.length === 0) return null;
  ev.data = data.join('\n');
  return ev;
}
