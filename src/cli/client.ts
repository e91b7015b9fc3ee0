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
        `cannot reach the service at ${this.opts.server} (${(err as Error).cause ?? (err as Error).message}); is 'rfuav serve' running?`,
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

  /** Follows an SSE stream until the server closes it or `signal` aborts. */
  async *events(path: string, signal?: AbortSignal): AsyncGenerator<SseEvent> {
    const res = await fetch(new URL(path, this.opts.server), {
      headers: this.headers({ accept: 'text/event-stream' }),
      signal,
    }).catch((err: Error) => {
      throw new ApiError(0, `cannot reach the service at ${this.opts.server} (${err.message})`);
    });
    if (!res.ok || !res.body) {
      const text = await res.text();
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message: string }).message;
      } catch {
        // keep text
      }
      throw new ApiError(res.status, `${res.status}: ${msg}`);
    }
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const ev: SseEvent = { data: '' };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          if (line.startsWith('id:')) ev.id = line.slice(3).trim();
          else if (line.startsWith('event:')) ev.event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length > 0) {
          ev.data = data.join('\n');
          yield ev;
        }
      }
    }
  }
}
