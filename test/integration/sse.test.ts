import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiClient } from '../../src/cli/client.js';
import { pino } from 'pino';
import path from 'node:path';
import { createService } from '../../src/main.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { Gates } from '../gate-job.js';
import { startService, testConfig, tmpDir, waitFor } from '../helpers.js';

/**
 * The real SQLite store behind a proxy that adds latency to reads and appends, as a networked
 * database would: it widens the window between "subscribed" and "history read" where an SSE
 * implementation can lose or repeat entries.
 */
function slowStore(inner: Store): Store {
  const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      if (prop === 'readLogs') {
        return async (...a: unknown[]) => {
          await delay(5);
          const rows = await v.apply(target, a);
          await delay(15); // the answer travels back while new entries land
          return rows;
        };
      }
      if (prop === 'appendLog')
        return async (...a: unknown[]) => (await delay(Math.random() * 3), v.apply(target, a));
      return v.bind(target);
    },
  });
}

interface Seen {
  ids: number[];
  messages: string[];
  final: { status: string; message: string | null } | null;
}

async function collect(api: ApiClient, path: string, stopAfter = Infinity): Promise<Seen> {
  const seen: Seen = { ids: [], messages: [], final: null };
  const ac = new AbortController();
  try {
    for await (const ev of api.events(path, ac.signal)) {
      const data = JSON.parse(ev.data);
      if (ev.id === undefined) {
        seen.final = data;
        continue;
      }
      seen.ids.push(Number(ev.id));
      seen.messages.push(data.message);
      if (seen.ids.length >= stopAfter) {
        ac.abort();
        break;
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  }
  return seen;
}

const contiguous = (ids: number[], from: number) => ids.every((id, i) => id === from + i);

describe('task log streams (SSE)', async () => {
  const dir = tmpDir();
  const gates = new Gates();
  const svc = await startService(dir, {
    listen: true,
    env: { RFUAV_SSE_HEARTBEAT_S: '0.05' },
    extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
  });
  const api = new ApiClient({ server: svc.url });
  const submit = (id: string) => svc.service.submit('gate', { task_id: id });

  it('replays history, follows live, then sends the final status and closes; entries carry stage and step', async () => {
    await submit('s1');
    await waitFor(() => gates.isRunning('s1'));
    const stream = collect(api, '/api/v2/tasks/s1/logs');
    for (let i = 0; i < 20; i++) svc.service.log('s1', `live ${i}`);
    await new Promise((r) => setTimeout(r, 50));
    gates.release('s1');
    const seen = await stream;
    assert.ok(contiguous(seen.ids, 1), `ids not contiguous: ${seen.ids}`);
    assert.deepEqual(seen.final, { status: 'completed', message: 'gate opened' });
    assert.ok(seen.messages.includes('live 19'));
    assert.match(seen.messages.at(-1) ?? '', /^Completed/);
    const stored = await svc.store.readLogs('s1', 0, 1000);
    assert.equal(seen.ids.length, stored.length);
    const staged = stored.find((e) => e.stage === 'training');
    assert.equal(staged?.step, 1);
  });

  it('sends progress as `event: progress`, numbered with the log lines, and replays it after Last-Event-ID', async () => {
    const all = await fetch(`${svc.url}/api/v2/tasks/s1/logs`).then((r) => r.text());
    const block = all.split('\n\n').find((b) => b.includes('event: progress'));
    assert.ok(block, `no progress event in:\n${all}`);
    const id = Number(/^id: (\d+)$/m.exec(block)?.[1]);
    const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null');
    assert.equal(data.progress, 50);
    assert.equal(data.message, 'half way');
    assert.ok(!('level' in data), 'a progress event is not a log line');
    const stored = await svc.store.readLogs('s1', id - 1, 1);
    assert.equal(stored[0]?.progress, 50);
    const after = await fetch(`${svc.url}/api/v2/tasks/s1/logs`, {
      headers: { 'last-event-id': String(id - 1) },
    }).then((r) => r.text());
    assert.match(after.split('\n\n').find((b) => b.startsWith(': ') === false) ?? '', /event: progress/);
    const later = await fetch(`${svc.url}/api/v2/tasks/s1/logs`, {
      headers: { 'last-event-id': String(id) },
    }).then((r) => r.text());
    assert.doesNotMatch(later, /event: progress/);
  });

  it('serves a finished task: the whole history then the final status', async () => {
    const seen = await collect(api, '/api/v2/tasks/s1/logs');
    assert.ok(contiguous(seen.ids, 1));
    assert.equal(seen.final?.status, 'completed');
    const viaPre = await collect(api, '/api/v2/preprocessing/s1/logs');
    assert.deepEqual(viaPre.ids, seen.ids);
  });

  it('resumes after Last-Event-ID or ?since=N with no gap and no duplicate', async () => {
    await submit('s2');
    await waitFor(() => gates.isRunning('s2'));
    for (let i = 0; i < 10; i++) svc.service.log('s2', `early ${i}`);
    await svc.service.get('s2');
    const first = await collect(api, '/api/v2/tasks/s2/logs', 5);
    assert.deepEqual(first.ids, [1, 2, 3, 4, 5]);
    for (let i = 0; i < 10; i++) svc.service.log('s2', `later ${i}`);
    await waitFor(async () => (await svc.store.readLogs('s2', 0, 100)).some((e) => e.message === 'later 9'));
    // reconnect with the header, as EventSource does
    const res = await fetch(`${svc.url}/api/v2/tasks/s2/logs?follow=false`, {
      headers: { 'last-event-id': '5' },
    });
    const text = await res.text();
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.equal(ids[0], 6);
    assert.ok(contiguous(ids, 6));
    assert.ok(ids.length >= 17);
    const viaQuery = collect(api, '/api/v2/tasks/s2/logs?since=12');
    await new Promise((r) => setTimeout(r, 30));
    gates.release('s2');
    const rest = await viaQuery;
    assert.equal(rest.ids[0], 13);
    assert.ok(contiguous(rest.ids, 13));
    assert.equal(rest.final?.status, 'completed');
  });

  it('gives many concurrent followers the same complete sequence while entries pour in', async () => {
    await submit('s3');
    await waitFor(() => gates.isRunning('s3'));
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) {
        svc.service.log('s3', `burst ${n++}`);
        if (n % 5 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    const followers: Promise<Seen>[] = [];
    for (let i = 0; i < 8; i++) {
      followers.push(collect(api, `/api/v2/tasks/s3/logs${i % 2 ? `?since=${i}` : ''}`));
      await new Promise((r) => setTimeout(r, 5 + i * 3));
    }
    await waitFor(() => svc.app.server.listening && n > 300);
    writing = false;
    await writer;
    gates.release('s3');
    const results = await Promise.all(followers);
    const stored = (await svc.store.readLogs('s3', 0, 100_000)).map((e) => e.seq);
    for (const [i, r] of results.entries()) {
      const from = i % 2 ? i + 1 : 1;
      assert.ok(contiguous(r.ids, from), `follower ${i} saw a gap or duplicate`);
      assert.equal(r.ids.at(-1), stored.at(-1), `follower ${i} missed the tail`);
      assert.equal(r.final?.status, 'completed');
    }
  });

  it('sends heartbeat comments on idle streams and counts open streams in health', async () => {
    await submit('s4');
    await waitFor(() => gates.isRunning('s4'));
    const ac = new AbortController();
    const res = await fetch(`${svc.url}/api/v2/tasks/s4/logs`, { signal: ac.signal });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const dec = new TextDecoder();
    while (!text.includes(': heartbeat')) text += dec.decode((await reader.read()).value);
    const health = JSON.parse((await svc.app.inject({ url: '/api/v1/health' })).body);
    assert.equal(health.active_log_streams, 1);
    ac.abort();
    await waitFor(
      async () => JSON.parse((await svc.app.inject({ url: '/api/v1/health' })).body).active_log_streams === 0,
    );
    gates.release('s4');
  });

  it('answers unknown tasks and bad resume points with JSON errors', async () => {
    const r404 = await fetch(`${svc.url}/api/v2/tasks/nope/logs`);
    assert.equal(r404.status, 404);
    assert.equal(((await r404.json()) as { status: string }).status, 'error');
    const r400 = await fetch(`${svc.url}/api/v2/tasks/s1/logs`, { headers: { 'last-event-id': 'abc' } });
    assert.equal(r400.status, 400);
    const r422 = await fetch(`${svc.url}/api/v2/tasks/s1/logs?since=-4`);
    assert.equal(r422.status, 422);
  });

  it('loses and repeats nothing when the store is slow (entries land while history is read)', async () => {
    const dir2 = tmpDir();
    const config = testConfig(dir2);
    const slow = await createService({
      config,
      store: slowStore(new SqliteStore({ file: path.join(dir2, 'slow.sqlite') })),
      extraJobs: [gates.job('gate2', 'preprocessing')],
      logger: pino({ level: 'silent' }),
    });
    const url = await slow.listen();
    const api2 = new ApiClient({ server: url });
    try {
      await slow.service.submit('gate2', { task_id: 'slow1' });
      await waitFor(() => gates.isRunning('slow1'));
      let writing = true;
      let n = 0;
      const writer = (async () => {
        while (writing) {
          slow.service.log('slow1', `entry ${n++}`);
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      const followers: Promise<Seen>[] = [];
      for (let i = 0; i < 6; i++) {
        followers.push(collect(api2, '/api/v2/tasks/slow1/logs'));
        await new Promise((r) => setTimeout(r, 20));
      }
      await waitFor(() => n > 200);
      writing = false;
      await writer;
      gates.release('slow1');
      const results = await Promise.all(followers);
      // followers end with the final status, which is sent after every entry has been written
      const last = (await slow.store.readLogs('slow1', 0, 100_000)).at(-1)?.seq;
      for (const [i, r] of results.entries()) {
        assert.ok(contiguous(r.ids, 1), `follower ${i} saw a gap or duplicate: ${r.ids.join(',')}`);
        assert.equal(r.ids.at(-1), last, `follower ${i} missed the tail`);
      }
    } finally {
      await slow.close();
    }
  });
});
