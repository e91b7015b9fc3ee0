/**
 * A team on a cluster (issue 16): three service processes on one PostgreSQL database, each with
 * one fake GPU (a fake nvidia-smi), named users with real tokens driving the load through the
 * HTTP API. Who ran what and when comes from the shared database: fair share across the nodes, a
 * late user's task going next, owner-only control on any node, a quota changed on one node
 * holding on all of them at once, and one ledger that every node reads alike.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, startNode, stopNodes } from '../cluster-nodes.js';
import { fakeNvidiaSmi, tmpDir, waitFor } from '../helpers.js';
import { startPostgres, type TestPostgres } from '../postgres.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const TOKENS: Record<string, string> = { alice: 'tok-a', bob: 'tok-b', carol: 'tok-c' };
/** How long each task holds its GPU. */
const TASK_MS = 300;

async function call(
  url: string,
  user: string,
  route: string,
  init: { method?: string; body?: unknown } = {},
) {
  const res = await fetch(`${url}${route}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      authorization: `Bearer ${TOKENS[user]}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function submit(url: string, user: string): Promise<string> {
  const r = await call(url, user, '/api/v2/gpu_sleep/start', { body: { ms: TASK_MS, device: 'cuda' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return String(r.body.task_id);
}

interface Run {
  task_id: string;
  owner: string;
  node_name: string;
  started_at: string;
}

/** Tasks that have started, in the order they started. */
const starts = (db: string) =>
  sql<Run>(
    db,
    'SELECT task_id, owner, node_name, started_at FROM tasks WHERE started_at IS NOT NULL ORDER BY started_at, task_id',
  );

const completed = async (db: string) =>
  (await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM tasks WHERE status = 'completed'"))[0]!.n;

describe('a team sharing three GPU nodes', () => {
  it('fair share across the nodes, a late user next, owner-only control, live quotas, one ledger', async () => {
    const db = await server.createDatabase();
    const dataRoot = path.join(tmpDir(), 'data');
    const env = {
      RFUAV_API_TOKENS: Object.entries(TOKENS)
        .map(([u, t]) => `${u}:${t}`)
        .join(','),
      RFUAV_ADMINS: 'carol',
      RFUAV_LIMITS: '{"gpu":{"training":1},"cpu":{"preprocessing":2}}',
      RFUAV_GPU_REFRESH_S: '3600',
      // One node's use counts on the others within half a second.
      RFUAV_FAIRSHARE_SAVE_S: '0.5',
    };
    const nodes = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        startNode(db, name, dataRoot, {
          ...env,
          RFUAV_NVIDIA_SMI: fakeNvidiaSmi(tmpDir(), [{ totalMiB: 24 * 1024 }]).path,
        }),
      ),
    );
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const failure = async () =>
      `${JSON.stringify(await starts(db))}\n${nodes.map((n) => n.output()).join('\n')}`;

    // Alice queues 24 tasks before Bob queues his 24, each through another node. Without fair
    // share her 24 would all run first.
    for (let i = 0; i < 24; i++) await submit(a.url, 'alice');
    for (let i = 0; i < 24; i++) await submit(b.url, 'bob');
    await waitFor(async () => (await completed(db)) >= 6, 60_000, 'six completions');
    // Carol's single task, late: it starts next (by the time a slot or two free on other nodes).
    const lateAt = Date.now();
    const carols = await submit(c.url, 'carol');
    await waitFor(async () => (await completed(db)) >= 24, 60_000, '24 completions');
    const runs = await starts(db);
    const first24 = runs.filter((r) => r.owner !== 'carol').slice(0, 24);
    const count = (who: string) => first24.filter((r) => r.owner === who).length;
    assert.ok(
      Math.abs(count('alice') - count('bob')) <= 6,
      `alice ${count('alice')}, bob ${count('bob')}\n${await failure()}`,
    );
    assert.ok(count('bob') >= 9, await failure());
    const carol = runs.find((r) => r.task_id === carols);
    assert.ok(carol, await failure());
    const before = runs.filter(
      (r) => Date.parse(r.started_at) > lateAt && Date.parse(r.started_at) < Date.parse(carol.started_at),
    );
    assert.ok(before.length <= 2, `${before.length} tasks started between carol's submission and her start`);
    assert.deepEqual(
      [...new Set(runs.map((r) => r.node_name))].sort(),
      ['a', 'b', 'c'],
      'every node ran some',
    );

    // Owner-only control, on any node: bob cannot cancel alice's task; carol (admin) can.
    const waiting = (
      await sql<{ task_id: string }>(
        db,
        "SELECT task_id FROM tasks WHERE owner = 'alice' AND status = 'queued' ORDER BY seq DESC LIMIT 1",
      )
    )[0]!.task_id;
    const foreign = await call(c.url, 'bob', `/api/v2/tasks/${waiting}/cancel`, { method: 'POST' });
    assert.equal(foreign.status, 403);
    assert.match(String(foreign.body.message), /alice/);
    assert.equal(
      (await call(c.url, 'carol', `/api/v2/tasks/${waiting}/cancel`, { method: 'POST' })).status,
      200,
    );

    // A quota changed on node a holds on b and c at once: alice's running training quota to 0.
    const held = await call(a.url, 'carol', '/api/v2/users/alice/quotas', {
      body: { running: { training: 0 } },
    });
    assert.equal(held.status, 200, JSON.stringify(held.body));
    const heldAt = Date.now();
    // Claims already made when it changed may still start; give them 200 ms.
    await waitFor(async () => (await completed(db)) >= 33, 60_000, 'nine more completions');
    const afterHold = (await starts(db)).filter(
      (r) => r.owner === 'alice' && Date.parse(r.started_at) > heldAt + 200,
    );
    assert.deepEqual(afterHold, [], 'no task of alice started on any node once her quota was 0');
    const stillWaiting = (
      await sql<{ task_id: string }>(
        db,
        "SELECT task_id FROM tasks WHERE owner = 'alice' AND status = 'queued' AND owner_node IS NULL LIMIT 1",
      )
    )[0]!.task_id;
    const reason = (await call(b.url, 'alice', `/api/v2/tasks/${stillWaiting}`)).body.pending_reason;
    assert.match(
      String(reason),
      /alice has \d+ training task\(s\) claimed or running in the cluster, their quota \(0\)/,
    );
    // Dropped on node c: her tasks run again, everywhere.
    assert.equal(
      (await call(c.url, 'carol', '/api/v2/users/alice/quotas', { method: 'DELETE' })).status,
      200,
    );
    await waitFor(async () => (await completed(db)) === 48, 60_000, 'every task to end');

    // One ledger: every node reports the same usage for each user, once each has saved and read.
    await new Promise((r) => setTimeout(r, 1500));
    const views = await Promise.all(
      nodes.map(
        async (n) =>
          (await call(n.url, 'carol', '/api/v2/users')).body.users as { name: string; usage: number }[],
      ),
    );
    for (const user of ['alice', 'bob']) {
      const seen = views.map((v) => v.find((u) => u.name === user)!.usage);
      const mean = seen.reduce((x, y) => x + y, 0) / seen.length;
      assert.ok(mean > 1, `${user} used ${mean} GPU seconds`);
      for (const s of seen) assert.ok(Math.abs(s - mean) / mean < 0.02, `${user}: ${seen.join(', ')}`);
    }
    await stopNodes(a, b, c);
  });
});
