/**
 * Three nodes behind a real nginx running deploy/nginx.conf (only its addresses replaced), with an
 * API token on every node: work submitted through the balancer spreads over all three, every
 * route answers through it, live logs stream through it unbuffered, a cancel reaches the node that
 * runs the task, and a drained node takes nothing more.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { launchChromium } from '../chromium.js';
import { followSleep, ranOn, startNode, statusOf, stopNodes } from '../cluster-nodes.js';
import { tmpDir, waitFor } from '../helpers.js';
import { startNginx, type TestNginx } from '../nginx.js';
import { startPostgres, type TestPostgres } from '../postgres.js';
import type { ServerProcess } from '../process.js';

const TOKEN = 'cluster-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let server: TestPostgres;
let nodes: ServerProcess[] = [];
let lb: TestNginx;
let db: string;
after(async () => {
  await server?.stop();
});

async function call<T = Record<string, unknown>>(
  route: string,
  init: { method?: string; body?: unknown; token?: boolean } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${lb.url}${route}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.token === false ? {} : auth),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : text) as T };
}

const sleep = async (ms: number): Promise<string> => {
  const r = await call<{ task_id: string }>('/api/v2/preprocessing/sleep', { body: { ms } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.task_id;
};

describe('three nodes behind nginx (deploy/nginx.conf)', async () => {
  // Started in the suite's body, so the nodes live until the suite ends (a process started in a
  // before hook is stopped when that hook ends).
  server = await startPostgres();
  db = await server.createDatabase();
  const dataRoot = path.join(tmpDir(), 'data');
  nodes = await Promise.all(
    ['a', 'b', 'c'].map((name) =>
      startNode(db, name, dataRoot, { RFUAV_API_TOKENS: TOKEN, RFUAV_TRUST_PROXY: 'loopback' }),
    ),
  );
  lb = await startNginx(nodes.map((n) => new URL(n.url).host));
  after(async () => {
    lb.stop();
    await stopNodes(...nodes);
  });

  it('spreads work over every node, and every route answers through the balancer', async () => {
    // Two preprocessing slots per node: twelve tasks at once need all three nodes.
    const ids = await Promise.all(Array.from({ length: 12 }, () => sleep(1500)));
    assert.deepEqual(await ranOn(db, ids), ['a', 'b', 'c']);
    const one = await call<{ status: string; node: string }>(`/api/v2/tasks/${ids[0]}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.status, 'completed');
    const list = await call<{ total_other: number }>('/api/v2/tasks');
    assert.equal(list.status, 200);
    assert.equal(list.body.total_other, 12);
    const listed = await call<{ nodes: { name: string; state: string }[] }>('/api/v2/nodes');
    // Each node listed active under one current id. A node starved past its 3 s lease while three
    // start at once on two cores rejoins, leaving its old id listed as lost (CI, stop 22).
    assert.deepEqual(
      listed.body.nodes.filter((n) => n.state !== 'lost').map((n) => `${n.name}:${n.state}`),
      ['a:active', 'b:active', 'c:active'],
    );
    const health = await call<{ cluster: { nodes_active: number } }>('/api/v1/health', { token: false });
    assert.equal(health.status, 200);
    assert.equal(health.body.cluster.nodes_active, 3);
    assert.equal((await call('/api/v2/resources')).status, 200);
    const metrics = await call<string>('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /rfuav_cluster_nodes\{state="active",node="[abc]"\} 3/);
    // The token is checked behind the balancer as well.
    assert.equal((await call('/api/v2/tasks', { token: false })).status, 401);
    assert.equal((await call('/api/v2/preprocessing/sleep', { body: { ms: 1 }, token: false })).status, 401);
  });

  it('streams a task’s log through nginx as it is written, not when it ends', async () => {
    const id = await sleep(2000);
    const res = await fetch(`${lb.url}/api/v2/tasks/${id}/logs`, { headers: auth });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const { ticks: ns, firstTickAt, endAt: finishedAt } = await followSleep(res);
    assert.ok(finishedAt > 0, 'the stream ends with the final status');
    assert.ok(ns.length >= 10, `${ns.length} ticks`);
    assert.deepEqual(
      ns,
      ns.map((_, i) => i),
      'every line once, in order',
    );
    // Unbuffered: the first lines arrived long before the end (a buffering proxy sends all at once).
    assert.ok(finishedAt - firstTickAt > 1000, `first line ${finishedAt - firstTickAt} ms before the end`);
  });

  it('a cancel through the balancer stops the task on whichever node runs it, within 2 s', async () => {
    const id = await sleep(60_000);
    await waitFor(async () => (await statusOf(db, id))?.status === 'running', 10_000, 'the task to run');
    const asked = Date.now();
    const r = await call(`/api/v2/tasks/${id}/cancel`, { method: 'POST' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor(async () => (await statusOf(db, id))?.status === 'cancelled', 5000, 'the cancel');
    assert.ok(Date.now() - asked < 2000, `cancelled after ${Date.now() - asked} ms`);
  });

  it("the dashboard through the balancer: the overview shows each node's slots in use", async () => {
    const ids = await Promise.all([sleep(6000), sleep(6000)]);
    await waitFor(
      async () =>
        (await Promise.all(ids.map((id) => statusOf(db, id)))).every((t) => t?.status === 'running'),
      10_000,
      'both tasks to run',
    );
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${lb.url}/ui/`);
      await page.locator('#token').fill(TOKEN);
      await page.locator('#token-form button').click();
      for (const name of ['a', 'b', 'c'])
        await page.waitForSelector(`#nodes tr[data-node="${name}"] .node-slots[data-device="cpu"]`);
      // Each node's preprocessing slots as "used / limit"; the two running tasks are counted once.
      const used = async () =>
        (
          await page
            .locator('#nodes .slot-class', { hasText: 'preprocessing' })
            .evaluateAll((els) => els.map((e) => e.textContent ?? ''))
        ).reduce((sum, text) => sum + Number(/(\d+) \/ 2/.exec(text)?.[1] ?? NaN), 0);
      await waitFor(async () => (await used()) === 2, 10_000, 'two slots in use over the nodes');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      // The slots are free again for the next test.
      for (const id of ids) await call(`/api/v2/tasks/${id}/cancel`, { method: 'POST' });
      await waitFor(
        async () =>
          (await Promise.all(ids.map((id) => statusOf(db, id)))).every((t) => t?.status === 'cancelled'),
        10_000,
        'both tasks cancelled',
      );
    }
  });

  it('a node drained through the balancer takes no more work; the others do', async () => {
    const r = await call<{ node: { name: string; state: string } }>('/api/v2/nodes/a/drain', {
      method: 'POST',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.node.state, 'draining');
    const ids = await Promise.all(Array.from({ length: 6 }, () => sleep(300)));
    assert.deepEqual(await ranOn(db, ids), ['b', 'c']);
  });
});
