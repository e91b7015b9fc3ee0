import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createService, type RunningService } from '../../src/main.js';
import { Gates } from '../gate-job.js';
import { replayedLog, testConfig, tmpDir, waitFor } from '../helpers.js';
import { startPostgres, type TestPostgres } from '../postgres.js';

let pgServer: TestPostgres;
before(async () => {
  pgServer = await startPostgres();
});
after(async () => {
  await pgServer?.stop();
});

const gates = new Gates();

async function start(
  url: string,
  env: Record<string, string> = {},
): Promise<RunningService & { url: string }> {
  const svc = await createService({
    config: testConfig(tmpDir(), { DATABASE_URL: url, ...env }),
    extraJobs: [gates.job('gate_pre', 'preprocessing', 'gate')],
    logger: pino({ level: 'silent' }),
  });
  return Object.assign(svc, { url: await svc.listen() });
}

interface NodeList {
  total: number;
  nodes: { name: string; state: string; this_node: boolean }[];
}

/** The fields these tests read from the service's answers. */
interface Answer {
  task_id: string;
  status: string;
  progress: number;
  store?: string;
}

async function call(url: string, method = 'GET', body?: unknown): Promise<{ status: number; json: Answer }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Answer };
}

describe('the service on PostgreSQL (DATABASE_URL)', () => {
  it('runs tasks, serves their logs, and says which store it uses', async () => {
    const db = await pgServer.createDatabase();
    const svc = await start(db);
    try {
      const ready = await call(`${svc.url}/api/v1/health/ready`);
      assert.equal(ready.json?.store, 'postgresql');
      const created = await call(`${svc.url}/api/v2/preprocessing/gate`, 'POST', { label: 'one' });
      assert.equal(created.status, 200, JSON.stringify(created.json));
      const id = created.json.task_id as string;
      await waitFor(() => gates.isRunning(id), 5000, 'the task to start');
      gates.release(id);
      const done = await waitFor(async () => {
        const t = await call(`${svc.url}/api/v2/tasks/${id}`);
        return t.json?.status === 'completed' && t.json;
      });
      assert.equal(done.progress, 100);
      const lines = (await replayedLog(svc.url, `/api/v2/tasks/${id}/logs`)) as { message?: string }[];
      assert.match(lines[0]?.message ?? '', /^Task accepted: gate_pre/);
      assert.ok(lines.some((l) => /gate job .* waiting/.test(l.message ?? '')));
    } finally {
      await svc.close();
    }
  });

  it('keeps queued work across a restart, and lists itself as a node', async () => {
    const db = await pgServer.createDatabase();
    const first = await start(db, { RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}', RFUAV_NODE_NAME: 'first' });
    let ids: string[];
    try {
      ids = await Promise.all(
        [1, 2, 3].map(
          async (i) =>
            (await call(`${first.url}/api/v2/preprocessing/gate`, 'POST', { label: `q${i}` })).json.task_id,
        ),
      );
      const listed = (await fetch(`${first.url}/api/v2/nodes`).then((r) => r.json())) as NodeList;
      assert.equal(listed.total, 1);
      assert.equal(listed.nodes[0]?.name, 'first');
      assert.equal(listed.nodes[0]?.state, 'active');
      assert.equal(listed.nodes[0]?.this_node, true);
      const waiting = await call(`${first.url}/api/v2/tasks/${ids[2]}`);
      assert.equal(waiting.json.status, 'queued');
    } finally {
      await first.close();
    }
    const second = await start(db, { RFUAV_NODE_NAME: 'second' });
    try {
      // Limits are no longer 0: the waiting tasks run on the new node.
      // (Each is let go as soon as it runs: the default limit runs fewer than three at once.)
      for (const id of ids) await waitFor(() => gates.release(id), 5000, `task ${id} to start again`);
      for (const id of ids) {
        await waitFor(
          async () => (await call(`${second.url}/api/v2/tasks/${id}`)).json?.status === 'completed',
        );
      }
      // The first node stopped cleanly: it is not listed; the second is.
      const listed = (await fetch(`${second.url}/api/v2/nodes`).then((r) => r.json())) as NodeList;
      assert.deepEqual(
        listed.nodes.map((n: { name: string }) => n.name),
        ['second'],
      );
    } finally {
      await second.close();
    }
  });

  it('answers 503 while PostgreSQL is down, and serves again once it is back', async () => {
    const db = await pgServer.createDatabase();
    const svc = await start(db);
    try {
      const created = await call(`${svc.url}/api/v2/preprocessing/gate`, 'POST', { label: 'x' });
      const id = created.json.task_id as string;
      await waitFor(() => gates.isRunning(id));
      pgServer.stopServer();
      try {
        const read = await call(`${svc.url}/api/v2/tasks?limit=5`);
        assert.equal(read.status, 503, JSON.stringify(read.json));
        const create = await call(`${svc.url}/api/v2/preprocessing/gate`, 'POST', { label: 'y' });
        assert.equal(create.status, 503, JSON.stringify(create.json));
        const ready = await call(`${svc.url}/api/v1/health/ready`);
        assert.equal(ready.status, 503);
      } finally {
        pgServer.startServer();
      }
      await waitFor(
        async () => (await call(`${svc.url}/api/v2/tasks?limit=5`)).status === 200,
        10_000,
        'reads again',
      );
      gates.release(id);
      const done = await waitFor(
        async () => {
          const t = await call(`${svc.url}/api/v2/tasks/${id}`);
          return t.json?.status === 'completed' && t.json;
        },
        10_000,
        'the running task to complete after the outage',
      );
      assert.equal(done.status, 'completed');
    } finally {
      await svc.close();
    }
  });
});
