/**
 * Teams sharing the service (issue 16): named tokens, task owners, owner-only control, admin-only
 * settings, the queued quota, per-user rate limits and visibility — through the real HTTP API
 * with real tokens, on a real SQLite store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gates } from '../gate-job.js';
import { startService, tmpDir, waitFor } from '../helpers.js';

const TOKENS = 'alice:tok-a,bob:tok-b,carol:tok-c';

function client(url: string) {
  return async (
    token: string,
    route: string,
    init: { method?: string; body?: unknown; text?: boolean } = {},
  ) => {
    const res = await fetch(`${url}${route}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text,
      body: (init.text ? {} : JSON.parse(text)) as Record<string, unknown> & { message?: string },
    };
  };
}

/** A service with the gate kind (tasks that run until released), these settings and a client. */
async function gateService(env: Record<string, string>) {
  const gates = new Gates();
  const svc = await startService(tmpDir(), {
    listen: true,
    extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
    env,
  });
  return { gates, svc, call: client(svc.url) };
}

describe('users, owners and quotas', () => {
  it('records the owner; only the owner or an admin may cancel or delete; settings are for admins', async () => {
    const { gates, call } = await gateService({ RFUAV_API_TOKENS: TOKENS, RFUAV_ADMINS: 'carol' });
    const a = await call('tok-a', '/api/v2/preprocessing/gate', { body: {} });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.owner, 'alice');
    const id = String(a.body.task_id);
    await waitFor(() => gates.isRunning(id), 5000, 'the task to run');
    // Reading is team-wide; control is not.
    assert.equal((await call('tok-b', `/api/v2/tasks/${id}`)).body.owner, 'alice');
    const foreign = await call('tok-b', `/api/v2/tasks/${id}/cancel`, { method: 'POST' });
    assert.equal(foreign.status, 403);
    assert.match(String(foreign.body.message), /belongs to alice; only its owner or an admin/);
    assert.equal(foreign.body.owner, 'alice');
    assert.ok(gates.isRunning(id), 'a refused cancel stops nothing');
    const own = await call('tok-a', `/api/v2/tasks/${id}/cancel`, { method: 'POST' });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal((await call('tok-b', `/api/v2/tasks/${id}`, { method: 'DELETE' })).status, 403);
    assert.equal(
      (await call('tok-c', `/api/v2/tasks/${id}`, { method: 'DELETE' })).status,
      200,
      'an admin may',
    );

    // Bob's task, cancelled by the admin; the kind's own cancel route is guarded the same way.
    const b = await call('tok-b', '/api/v2/preprocessing/gate', { body: {} });
    const bid = String(b.body.task_id);
    assert.equal(
      (await call('tok-a', `/api/v2/preprocessing/gate/${bid}/cancel`, { method: 'POST' })).status,
      404,
    );
    assert.equal((await call('tok-a', `/api/v2/tasks/${bid}/cancel`, { method: 'POST' })).status, 403);
    assert.equal((await call('tok-c', `/api/v2/tasks/${bid}/cancel`, { method: 'POST' })).status, 200);

    // Lists by owner (alice's first task was deleted above).
    await call('tok-a', '/api/v2/preprocessing/gate', { body: {} });
    const owners = async (token: string, q: string) =>
      ((await call(token, `/api/v2/tasks${q}`)).body.other_tasks as { owner: string }[]).map((t) => t.owner);
    assert.deepEqual(await owners('tok-a', '?owner=me'), ['alice']);
    assert.deepEqual(await owners('tok-c', '?owner=bob'), ['bob']);
    assert.deepEqual((await owners('tok-b', '')).sort(), ['alice', 'bob']);

    // Who am I; the user list and the settings are for admins.
    const me = await call('tok-a', '/api/v2/users/me');
    assert.deepEqual(
      { name: me.body.name, role: me.body.role, running: me.body.running },
      { name: 'alice', role: 'user', running: 1 },
    );
    assert.equal((await call('tok-a', '/api/v2/users')).status, 403);
    const all = await call('tok-c', '/api/v2/users');
    assert.deepEqual(
      (all.body.users as { name: string; role: string }[]).map((u) => `${u.name}:${u.role}`),
      ['alice:user', 'bob:user', 'carol:admin'],
    );
    const limits = { max_concurrent: { cpu: { preprocessing: 3 } } };
    const refused = await call('tok-b', '/api/v2/resources/config', { body: limits });
    assert.equal(refused.status, 403);
    assert.match(
      String(refused.body.message),
      /only an admin may POST \/api\/v2\/resources\/config; bob is not one/,
    );
    assert.equal((await call('tok-c', '/api/v2/resources/config', { body: limits })).status, 200);
    const metrics = (await call('tok-c', '/metrics', { text: true })).text;
    assert.match(metrics, /rfuav_user_tasks\{user="alice",status="running"\} 1/);
    for (const t of gates.started) gates.release(t.id);
  });

  it('the queued quota answers 429 with Retry-After, naming it; the next task is accepted once one has started', async () => {
    const { gates, call, svc } = await gateService({
      RFUAV_API_TOKENS: TOKENS,
      RFUAV_ADMINS: 'carol',
      RFUAV_QUOTAS: '{"queued":2}',
      RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}',
    });
    const submit = (token: string) => call(token, '/api/v2/preprocessing/gate', { body: {} });
    // Concurrent submissions cannot slip past the quota together.
    const first = await Promise.all([submit('tok-a'), submit('tok-a'), submit('tok-a'), submit('tok-a')]);
    assert.deepEqual(first.map((r) => r.status).sort(), [200, 200, 429, 429]);
    const over = first.find((r) => r.status === 429);
    assert.match(String(over?.body.message), /alice has 2 tasks waiting, the queued quota \(2\)/);
    assert.equal(over?.body.quota, 'queued');
    assert.equal(over?.headers.get('retry-after'), '5');
    // One of alice's starts: a place in her quota frees.
    await call('tok-c', '/api/v2/resources/config', {
      body: { max_concurrent: { cpu: { preprocessing: 1 } } },
    });
    await waitFor(() => gates.started.length === 1, 5000, 'one task to start');
    await call('tok-c', '/api/v2/resources/config', {
      body: { max_concurrent: { cpu: { preprocessing: 0 } } },
    });
    const me = await call('tok-a', '/api/v2/users/me');
    assert.deepEqual([me.body.queued, me.body.running], [1, 1]);
    assert.equal((await submit('tok-a')).status, 200);
    assert.equal((await submit('tok-a')).status, 429);
    assert.equal((await submit('tok-b')).status, 200, "another user's quota is their own");
    // A batch is created whole or not at all: bob has 1 waiting, 2 more would pass his quota.
    const bob = svc.config.users.get('bob');
    await assert.rejects(
      svc.service.submitAll('gate', [{}, {}], (i) => `item ${i}`, { owner: bob }),
      /bob has 1 tasks waiting, the queued quota \(2\), and asks for 2 more/,
    );
    assert.equal((await call('tok-b', '/api/v2/users/me')).body.queued, 1, 'none of the batch was created');
    for (const t of gates.started) gates.release(t.id);
  });

  it('rate limits count per user, whatever token or address', async () => {
    const { call } = await gateService({
      RFUAV_API_TOKENS: 'alice:tok-a,bob:tok-b',
      RFUAV_RATE_LIMIT: '3',
      RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}',
    });
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await call('tok-a', '/api/v2/preprocessing/gate', { body: {} })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await call('tok-b', '/api/v2/preprocessing/gate', { body: {} })).status, 200);
  });

  it("with RFUAV_VISIBILITY=own a user sees only their own tasks; an admin sees everyone's", async () => {
    const { call } = await gateService({
      RFUAV_API_TOKENS: TOKENS,
      RFUAV_ADMINS: 'carol',
      RFUAV_VISIBILITY: 'own',
      RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}',
    });
    const a = String((await call('tok-a', '/api/v2/preprocessing/gate', { body: {} })).body.task_id);
    await call('tok-b', '/api/v2/preprocessing/gate', { body: {} });
    assert.equal((await call('tok-b', `/api/v2/tasks/${a}`)).status, 404);
    assert.equal((await call('tok-b', `/api/v2/tasks/${a}/logs?follow=false`)).status, 404);
    assert.equal((await call('tok-b', `/api/v2/tasks/${a}/cancel`, { method: 'POST' })).status, 404);
    const mine = await call('tok-b', '/api/v2/tasks');
    assert.equal(mine.body.total_other, 1, "the total counts bob's own, not everyone's");
    const listed = mine.body.other_tasks as { owner: string }[];
    assert.deepEqual(
      listed.map((t) => t.owner),
      ['bob'],
    );
    const asked = await call('tok-b', '/api/v2/tasks?owner=alice');
    assert.equal(asked.status, 403);
    assert.match(String(asked.body.message), /only your own tasks/);
    assert.equal((await call('tok-c', `/api/v2/tasks/${a}`)).status, 200);
    assert.equal(((await call('tok-c', '/api/v2/tasks')).body.other_tasks as unknown[]).length, 2);
  });

  it("an admin changes a user's quotas live: at once, kept across a restart, dropped back on DELETE", async () => {
    const dir = tmpDir();
    const env = {
      RFUAV_API_TOKENS: TOKENS,
      RFUAV_ADMINS: 'carol',
      RFUAV_QUOTAS: '{"queued":5,"running":{"preprocessing":1}}',
      RFUAV_LIMITS: '{"cpu":{"preprocessing":4}}',
    };
    const gates = new Gates();
    const svc = await startService(dir, {
      listen: true,
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
      env,
    });
    const call = client(svc.url);
    const quotas = (token: string, name: string, body: unknown) =>
      call(token, `/api/v2/users/${name}/quotas`, { body });
    const submit = (token: string) => call(token, '/api/v2/preprocessing/gate', { body: {} });
    await submit('tok-a');
    await submit('tok-a');
    await waitFor(() => gates.started.length === 1, 5000, "alice's first task");
    assert.equal((await quotas('tok-a', 'alice', { running: { preprocessing: 2 } })).status, 403);
    // Raised: her waiting task starts at once, with no other event to wake the scheduler.
    const raised = await quotas('tok-c', 'alice', { running: { preprocessing: 2 }, queued: 1 });
    assert.equal(raised.status, 200, raised.text);
    assert.deepEqual(raised.body.quotas, { queued: 1, running: { preprocessing: 2 } });
    assert.deepEqual(raised.body.configured, { queued: 5, running: { preprocessing: 1 } });
    await waitFor(() => gates.started.length === 2, 5000, "alice's second task, on the raised quota");
    // The queued quota of 1 applies to the next submission.
    assert.equal((await submit('tok-a')).status, 200);
    const over = await submit('tok-a');
    assert.equal(over.status, 429);
    assert.match(String(over.body.message), /the queued quota \(1\)/);
    assert.equal((await submit('tok-b')).status, 200, "bob's quotas are his own");
    // null lifts a quota; a second change lays over the first.
    const lifted = await quotas('tok-c', 'alice', { queued: null });
    assert.deepEqual(lifted.body.quotas, { running: { preprocessing: 2 } });
    assert.equal((await submit('tok-a')).status, 200);
    for (const [body, field, re] of [
      [{ queued: -1 }, 'queued', /queued/],
      [{ queued: '5' }, 'queued', /queued/],
      [{ running: { gaming: 1 } }, 'running.gaming', /not a resource class/],
      [{ running: { training: 1.5 } }, 'running.training', /integer/],
      [{ colour: 1 }, 'colour', /unknown quota/],
    ] as const) {
      const bad = await quotas('tok-c', 'alice', body);
      assert.equal(bad.status, 422, JSON.stringify(body));
      assert.match(String(bad.body.message), new RegExp(field.replace('.', '\\.')), bad.text);
      assert.match(String(bad.body.message), re, bad.text);
    }
    assert.equal((await quotas('tok-c', 'dave', { queued: 1 })).status, 404);
    assert.deepEqual((await call('tok-a', '/api/v2/users/me')).body.quotas, {
      running: { preprocessing: 2 },
    });
    // A restart keeps the change.
    await svc.service.changeLimits({ cpu: { preprocessing: 0 } });
    for (const t of gates.started) gates.release(t.id);
    await svc.close();
    const again = await startService(dir, {
      listen: true,
      extraJobs: [new Gates().job('gate', 'preprocessing', 'gate')],
      env,
    });
    const call2 = client(again.url);
    assert.deepEqual((await call2('tok-a', '/api/v2/users/me')).body.quotas, {
      running: { preprocessing: 2 },
    });
    const dropped = await call2('tok-c', '/api/v2/users/alice/quotas', { method: 'DELETE' });
    assert.equal(dropped.status, 200, dropped.text);
    assert.deepEqual(dropped.body.quotas, { queued: 5, running: { preprocessing: 1 } });
    assert.equal(((await call2('tok-a', '/api/v2/users/me')).body.quotas as { queued: number }).queued, 5);
  });
});
