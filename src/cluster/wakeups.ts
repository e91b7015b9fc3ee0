import pg from 'pg';
import type { Logger } from 'pino';

/** The channels nodes signal each other on. Payloads are task ids at most, never data. */
export const CHANNELS = {
  /** Something became claimable (submitted, handed back, re-queued). */
  queue: 'rfuav_queue',
  /** Slot limits were changed: every node reloads them. */
  limits: 'rfuav_limits',
  /** A user's quotas were changed: every node reloads the overrides. */
  quotas: 'rfuav_quotas',
  /** A cancel for these task ids (comma-separated): their owner stops them. */
  cancel: 'rfuav_cancel',
  /** Log entries of these tasks were written: nodes with followers read them. */
  logs: 'rfuav_logs',
  /** The logs of these tasks are complete (the task ended): followers get the final status. */
  logEnd: 'rfuav_log_end',
} as const;

export type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];

/**
 * LISTEN on one dedicated connection per node (a pooled one could be handed to a query in the
 * middle), reconnecting by itself; a notification lost meanwhile only delays work until the next
 * backstop poll. `signal` sends NOTIFYs coalesced per channel: many events within one turn of the
 * event loop make one NOTIFY, whose payload (under PostgreSQL's 8 000-byte cap) lists the ids.
 */
export class Wakeups {
  private client: pg.Client | null = null;
  private stopped = false;
  private readonly pending = new Map<Channel, Set<string>>();
  private flushScheduled = false;

  constructor(
    private readonly url: string,
    private readonly notify: (channel: Channel, payload: string) => Promise<unknown>,
    private readonly handlers: Partial<Record<Channel, (ids: string[]) => void>>,
    private readonly logger: Logger,
    /** Listening (again): whatever was notified while it was not is caught up here. */
    private readonly onListening: () => void = () => {},
  ) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'rfuav-listen',
      keepAlive: true,
    });
    client.on('error', () => undefined);
    client.on('notification', (n) => {
      const handler = this.handlers[n.channel as Channel];
      handler?.(n.payload ? n.payload.split(',').filter(Boolean) : []);
    });
    client.once('end', () => {
      if (this.client === client) this.client = null;
      if (!this.stopped) this.retrySoon();
    });
    try {
      await client.connect();
      for (const channel of Object.keys(this.handlers)) await client.query(`LISTEN ${channel}`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.client = client;
      this.onListening();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'cannot listen for other nodes; polling meanwhile');
      await client.end().catch(() => undefined);
    }
  }

  /** Tells every node (this one too) about `ids` on `channel`, batched with others this turn. */
  signal(channel: Channel, ids: readonly string[] = []): void {
    let set = this.pending.get(channel);
    if (!set) {
      set = new Set();
      this.pending.set(channel, set);
    }
    for (const id of ids) set.add(id);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.flush();
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batches = [...this.pending];
    this.pending.clear();
    for (const [channel, ids] of batches) {
      for (const payload of payloads([...ids])) {
        await this.notify(channel, payload).catch((err: Error) =>
          this.logger.warn({ err: err.message, channel }, 'could not notify other nodes'),
        );
      }
    }
  }

  private retrySoon(): void {
    setTimeout(() => void this.start(), 1000).unref();
  }
}

/** Comma-joined ids in payloads under 7 900 bytes (PostgreSQL refuses 8 000 and more). */
function payloads(ids: string[]): string[] {
  if (ids.length === 0) return [''];
  const out: string[] = [];
  let cur = '';
  for (const id of ids) {
    if (cur && cur.length + id.length + 1 > 7900) {
      out.push(cur);
      cur = '';
    }
    cur = cur ? `${cur},${id}` : id;
  }
  out.push(cur);
  return out;
}
