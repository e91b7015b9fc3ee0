/**
 * The CLI follows a task over SSE through a TCP proxy that breaks the connection mid-stream: it
 * reconnects with Last-Event-ID and prints every log line exactly once, in order, then exits as
 * the task ended. The service runs in this process (with a job kind the test controls); the CLI
 * is the real one from dist/, as a user runs it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { Type } from '@sinclair/typebox';
import type { JobDefinition } from '../../src/jobs/job.js';
import { replayedLog, startService, tmpDir, waitFor } from '../helpers.js';
import { ensureBuilt, http, rfuav } from '../process.js';

/** Logs lines 1–5 and half-way progress, waits for the test, then logs lines 6–10 with metrics. */
function chatterJob(gates: Map<string, () => void>): JobDefinition {
  return {
    kind: 'chatter',
    resourceClass: 'preprocessing',
    route: 'chatter',
    body: Type.Object({}),
    validate: async () => ({ params: {}, input_path: null, output_path: null }),
    run: async (_params, ctx) => {
      for (let i = 1; i <= 5; i++) ctx.log(`line ${i}`);
      ctx.progress(50, 'half way');
      await new Promise<void>((resolve, reject) => {
        gates.set(ctx.task.task_id, resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error));
      });
      for (let i = 6; i <= 10; i++) {
        const metrics = i === 8 ? { epoch: 1, loss: 0.25, val_acc: 87.5 } : undefined;
        ctx.log(`line ${i}`, 'INFO', metrics ? { stage: 'epoch_end', metrics } : {});
      }
      return { message: 'chatter done' };
    },
  };
}

/**
 * Forwards TCP to the service. Each response's bytes are watched: once one contains the armed
 * marker, the connection is cut halfway through it (so the event carrying it arrives torn).
 * `dropAll` cuts every open connection; `requests` keeps each request's head as sent.
 */
class DroppingProxy {
  readonly requests: string[] = [];
  private readonly open = new Set<net.Socket>();
  private marker: string | null = null;
  private server: net.Server | null = null;
  cuts = 0;
  /** Everything passed on to clients, for waiting until an entry has reached one. */
  passed = '';

  async start(target: URL): Promise<string> {
    this.server = net.createServer((client) => this.connect(client, target));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  private connect(client: net.Socket, target: URL): void {
    const upstream = net.connect(Number(target.port), target.hostname);
    this.open.add(client);
    let seen = Buffer.alloc(0);
    let forwarded = 0;
    client.on('data', (d: Buffer) => {
      this.requests.push(d.toString('latin1'));
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      const marker = this.marker;
      const at = marker ? seen.indexOf(marker) : -1;
      if (!marker || at < 0) {
        forwarded += d.length;
        this.passed += d.toString('utf8');
        client.write(d);
        return;
      }
      this.marker = null;
      this.cuts++;
      const cutAt = at + Math.floor(Buffer.byteLength(marker) / 2);
      client.write(d.subarray(0, Math.max(0, cutAt - forwarded)), () => client.destroy());
      upstream.destroy();
    });
    const close = () => {
      this.open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  /** The next response that carries `marker` is cut in the middle of it. */
  cutInside(marker: string): void {
    this.marker = marker;
  }

  dropAll(): void {
    for (const s of this.open) s.destroy();
    this.cuts++;
  }

  /** Log-stream requests, with their Last-Event-ID when they had one. */
  streams(): { lastEventId: string | null }[] {
    return this.requests
      .filter((r) => /^GET \/api\/v2\/tasks\/[^/]+\/logs/.test(r))
      .map((r) => ({ lastEventId: /\r\nlast-event-id: *(\d+)/i.exec(r)?.[1] ?? null }));
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

/** The messages of a task's log, in order, as the service stored them. */
async function storedMessages(url: string, id: string): Promise<string[]> {
  return (await replayedLog(url, `/api/v2/tasks/${id}/logs`)).map((e) => String(e.message));
}

/** Each stored message is on exactly one line of `out`, and in the stored order. */
function assertEachOnceInOrder(out: string, messages: string[]): void {
  const lines = out.split('\n');
  let from = 0;
  for (const m of messages) {
    const hits = lines.filter((l) => l.endsWith(` ${m}`));
    assert.equal(hits.length, 1, `'${m}' printed ${hits.length} times:\n${out}`);
    const at = lines.findIndex((l) => l.endsWith(` ${m}`));
    assert.ok(at >= from, `'${m}' out of order:\n${out}`);
    from = at;
  }
}

describe('rfuav follows a task over SSE across dropped connections', async () => {
  before(ensureBuilt);
  const dir = tmpDir();
  const gates = new Map<string, () => void>();
  const svc = await startService(dir, { extraJobs: [chatterJob(gates)], listen: true });
  const proxy = new DroppingProxy();
  const server = await proxy.start(new URL(svc.url));
  after(() => proxy.close());
  const create = async (id: string) =>
    assert.equal(
      (await http(`${svc.url}/api/v2/preprocessing/chatter`, 'POST', { task_id: id })).status,
      200,
    );

  it('logs -f: a cut inside an event and a drop while idle lose nothing and repeat nothing', async () => {
    await create('talk');
    proxy.cutInside('line 4');
    const cli = rfuav(['logs', '-f', 'talk', '--server', server]);
    // The first stream is cut inside line 4; the second one is followed until the job waits.
    await waitFor(
      () => proxy.cuts === 1 && proxy.streams().length === 2 && gates.has('talk'),
      20_000,
      'reconnect',
    );
    await waitFor(async () => (await storedMessages(svc.url, 'talk')).includes('line 5'), 5000, 'line 5');
    // Passed on to the CLI (and given a moment to be read), so its next resume point is later.
    await waitFor(() => proxy.passed.includes('line 5'), 5000, 'line 5 to reach the CLI');
    await new Promise((r) => setTimeout(r, 300));
    proxy.dropAll();
    await waitFor(() => proxy.streams().length === 3, 20_000, 'second reconnect');
    gates.get('talk')?.();
    const r = await cli;
    assert.equal(r.code, 0, r.out + r.err);

    const stored = await storedMessages(svc.url, 'talk');
    assert.ok(stored.includes('line 10'));
    assertEachOnceInOrder(r.out, stored);
    const numbered = [...r.out.matchAll(/ line (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(numbered, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.match(r.out, / line 8\n +loss 0\.2500 {2}val_acc 87\.50%\n/, 'the metrics of an epoch line');
    assert.match(r.out, /^Task talk completed: chatter done$/m);
    assert.match(r.err, /progress 50% half way/);
    assert.match(r.err, /reconnecting to resume after entry \d+/);
    // Every reconnection resumed after the last entry seen: no replay from the start.
    const streams = proxy.streams();
    assert.equal(streams[0]?.lastEventId, null);
    assert.ok(
      streams.slice(1).every((s) => s.lastEventId !== null),
      JSON.stringify(streams),
    );
    assert.ok(Number(streams[2]?.lastEventId) > Number(streams[1]?.lastEventId));
  });

  it('a submitting command follows through the proxy, torn mid-event, and reports the completed task', async () => {
    const data = path.join(dir, 'data');
    for (const cls of ['c0', 'c1']) {
      fs.mkdirSync(path.join(data, 'ds', cls), { recursive: true });
      for (let i = 0; i < 4; i++)
        await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: i * 50, g: 0, b: 0 } } })
          .png()
          .toFile(path.join(data, 'ds', cls, `${i}.png`));
    }
    proxy.cutInside('Splitting 8 images');
    const cuts = proxy.cuts;
    const r = await rfuav([
      'split',
      '--server',
      server,
      '--input',
      'ds',
      '--output',
      'out',
      '--task-id',
      'sp1',
    ]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(proxy.cuts, cuts + 1, 'the stream was cut');
    assertEachOnceInOrder(r.out, await storedMessages(svc.url, 'sp1'));
    assert.match(r.out, /^Task sp1 completed: split 8 images/m);
    assert.match(r.out, /^stats: \{"total_images":8,/m);
  });

  it('gives up with a clear message, exit 1, when the service stays unreachable', async () => {
    await create('lost');
    const lonely = new DroppingProxy();
    const url = await lonely.start(new URL(svc.url));
    const cli = rfuav(['logs', '-f', 'lost', '--server', url], { RFUAV_RECONNECT_S: '1' });
    await waitFor(() => lonely.streams().length === 1 && gates.has('lost'), 20_000, 'stream');
    await lonely.close();
    const r = await cli;
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(
      r.err,
      /lost the log stream of task lost for 1 s \(.*\); the task may still be running: rfuav logs -f lost/,
    );
    gates.get('lost')?.();
  });
});
