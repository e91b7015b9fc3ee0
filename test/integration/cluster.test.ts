/**
 * Several nodes on one PostgreSQL database, each a real service process (test/fixtures/server.ts:
 * the real composition root plus a `sleep` task kind), on loopback: work spreads over the nodes,
 * runs once, and survives a node killed or frozen past its lease.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  followSleep,
  messages,
  runningOnOneOfTwo as twoNodesRunning,
  sql,
  startNode as startClusterNode,
  statusOf,
  stopNodes,
  submitSleep,
} from '../cluster-nodes.js';
import { writeImageFolder } from '../fixtures/images.js';
import { fakeNvidiaSmi, tmpDir, waitFor } from '../helpers.js';
import { startPostgres, type TestPostgres } from '../postgres.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const dataRoot = path.join(tmpDir(), 'data');
const startNode = (db: string, name: string, env: Record<string, string> = {}) =>
  startClusterNode(db, name, dataRoot, env);
const submit = submitSleep;

describe('a cluster of service processes on PostgreSQL', () => {
  it('spreads tasks over the nodes and runs each once', async () => {
    const db = await server.createDatabase();
    const [a, b] = await Promise.all([startNode(db, 'a'), startNode(db, 'b')]);
    const ids = [];
    for (let i = 0; i < 8; i++) ids.push(await submit(a.url, 1200));
    await waitFor(
      async () => {
        const rows = await sql<{ n: number }>(
          db,
          "SELECT count(*)::int AS n FROM tasks WHERE status = 'completed'",
        );
        return rows[0]!.n === 8;
      },
      30_000,
      'all 8 tasks to complete',
    );
    const byNode = await sql<{ node_name: string; n: number }>(
      db,
      'SELECT node_name, count(*)::int AS n FROM tasks GROUP BY node_name ORDER BY node_name',
    );
    assert.deepEqual(
      byNode.map((r) => r.node_name),
      ['a', 'b'],
      `${JSON.stringify(byNode)}\n${a.output()}\n${b.output()}`,
    );
    for (const id of ids) {
      const started = (await messages(db, id)).filter((m) => m.startsWith('Started on'));
      assert.equal(started.length, 1, `${id} started once:\n${(await messages(db, id)).join('\n')}`);
    }
    // Any node answers for any task, and lists both nodes.
    const t = (await (await fetch(`${b.url}/api/v2/tasks/${ids[0]}`)).json()) as {
      status: string;
      node: string;
    };
    assert.equal(t.status, 'completed');
    assert.ok(t.node === 'a' || t.node === 'b', `the view names the node: ${t.node}`);
    const nodes = (await (await fetch(`${b.url}/api/v2/nodes`)).json()) as {
      nodes: { name: string; state: string }[];
    };
    // Each node active under one current id (a node starved past its lease rejoins, its old id lost).
    assert.deepEqual(
      nodes.nodes.filter((n) => n.state !== 'lost').map((n) => `${n.name}:${n.state}`),
      ['a:active', 'b:active'],
    );
    // Health and resources say what the cluster is, from any node.
    const health = (await (await fetch(`${b.url}/api/v1/health`)).json()) as {
      store: string;
      cluster: { node: string; nodes_active: number; nodes_lost: number; data_root_unseen_nodes: string[] };
    };
    assert.equal(health.store, 'postgresql');
    assert.deepEqual(
      [health.cluster.node, health.cluster.nodes_active, health.cluster.nodes_lost],
      ['b', 2, 0],
    );
    assert.deepEqual(
      health.cluster.data_root_unseen_nodes,
      [],
      'both see each other in the shared data root',
    );
    const resources = (await (await fetch(`${a.url}/api/v2/resources`)).json()) as {
      nodes: { name: string; this_node: boolean }[];
    };
    assert.deepEqual(
      resources.nodes.map((n) => [n.name, n.this_node]),
      [
        ['a', true],
        ['b', false],
      ],
    );
    // Every series of a node's /metrics names it; the cluster's nodes are counted by state.
    const scrape = await (await fetch(`${b.url}/metrics`)).text();
    assert.match(scrape, /^rfuav_queue_length\{node="b"\} 0$/m);
    assert.match(scrape, /^rfuav_cluster_nodes\{state="active",node="b"\} 2$/m);
    assert.match(scrape, /^rfuav_slot_limit\{device="cpu",class="preprocessing",node="b"\} 2$/m);
    await stopNodes(a, b);
  });

  it('pins a task to a named node, checks cuda:N against that node, and refuses an unknown node', async () => {
    const db = await server.createDatabase();
    const gpus = fakeNvidiaSmi(tmpDir(), [{ totalMiB: 8192 }, { totalMiB: 16384 }]);
    await writeImageFolder(path.join(dataRoot, 'pinset/train'), {
      classes: 2,
      perClass: 2,
      size: 32,
      seed: 1,
    });
    await writeImageFolder(path.join(dataRoot, 'pinset/val'), { classes: 2, perClass: 1, size: 32, seed: 2 });
    const [a, b] = await Promise.all([
      startNode(db, 'a', { RFUAV_NVIDIA_SMI: gpus.path }),
      startNode(db, 'b', { RFUAV_NVIDIA_SMI: path.join(tmpDir(), 'none') }),
    ]);
    const post = (url: string, route: string, body: object) =>
      fetch(`${url}/api/v2/${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await post(a.url, 'preprocessing/sleep', { ms: 100, node: 'b' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.pinned_node, 'b');
      ids.push(r.body.task_id as string);
    }
    for (const id of ids) {
      await waitFor(async () => (await statusOf(db, id))?.status === 'completed', 15_000, `${id} to finish`);
      assert.equal((await statusOf(db, id))?.node_name, 'b', 'a pinned task runs only on its node');
    }
    // b's two preprocessing slots taken by pinned tasks: a third waits, and any node says why.
    const long: string[] = [];
    for (let i = 0; i < 3; i++)
      long.push((await post(a.url, 'preprocessing/sleep', { ms: 60_000, node: 'b' })).body.task_id as string);
    const third = await waitFor(
      async () => {
        const t = (await (await fetch(`${a.url}/api/v2/tasks/${long[2]}`)).json()) as Record<string, unknown>;
        return typeof t.pending_reason === 'string' && /busy/.test(t.pending_reason) ? t : null;
      },
      10_000,
      'the third to wait for a busy b',
    );
    assert.equal(third.pending_reason, 'waiting for a cpu preprocessing slot on node b: 1 node, busy');
    assert.equal(third.queue_position, 1);
    for (const id of long) await fetch(`${a.url}/api/v2/tasks/${id}/cancel`, { method: 'POST' });
    const unknown = await post(a.url, 'preprocessing/sleep', { ms: 100, node: 'zzz' });
    assert.equal(unknown.status, 422);
    assert.equal(unknown.body.field, 'node');
    assert.match(String(unknown.body.message), /no node named 'zzz' is registered \(live nodes: a, b\)/);
    const training = (device: string, node?: string) => ({
      model: 'resnet18',
      num_classes: 2,
      train_path: 'pinset/train',
      val_path: 'pinset/val',
      save_path: `runs/pin-${device}-${node ?? 'any'}`,
      device,
      num_epochs: 1,
      ...(node ? { node } : {}),
    });
    // b has no GPU: cuda:1 pinned to it is refused; pinned to a (two GPUs) or to any node, it is not.
    const onB = await post(b.url, 'training/start', training('cuda:1', 'b'));
    assert.equal(onB.status, 422, JSON.stringify(onB.body));
    assert.equal(onB.body.field, 'device');
    assert.match(String(onB.body.message), /cuda:1 is out of range: node b has 0 GPUs/);
    const onA = await post(b.url, 'training/start', training('cuda:1', 'a'));
    assert.equal(onA.status, 200, JSON.stringify(onA.body));
    const anywhere = await post(b.url, 'training/start', training('cuda:1'));
    assert.equal(anywhere.status, 200, JSON.stringify(anywhere.body));
    const tooBig = await post(b.url, 'training/start', { ...training('cuda'), gpu_memory_gb: 20 });
    assert.equal(tooBig.status, 422, JSON.stringify(tooBig.body));
    assert.match(String(tooBig.body.message), /the largest eligible GPU has 16 GB/);
    for (const id of [onA.body.task_id, anywhere.body.task_id])
      await fetch(`${b.url}/api/v2/tasks/${id as string}/cancel`, { method: 'POST' });
    await stopNodes(a, b);
  });

  it('warns loudly, and says in health, when the data root is not shared between nodes', async () => {
    const db = await server.createDatabase();
    const elsewhere = path.join(tmpDir(), 'other-data');
    const grace = { RFUAV_SHARED_ROOT_GRACE_S: '1' };
    const [a, b] = await Promise.all([
      startNode(db, 'a', grace),
      startClusterNode(db, 'b', elsewhere, grace),
    ]);
    const unseen = async (url: string) =>
      (
        (await (await fetch(`${url}/api/v1/health`)).json()) as {
          cluster: { data_root_unseen_nodes: string[] };
        }
      ).cluster.data_root_unseen_nodes;
    await waitFor(async () => (await unseen(a.url)).includes('b'), 10_000, 'a to miss b’s marker');
    await waitFor(async () => (await unseen(b.url)).includes('a'), 10_000, 'b to miss a’s marker');
    // The warning is logged as health starts saying so; the line reaches this process's pipe a
    // moment later (a CI run read the output before it had arrived).
    for (const [node, other] of [
      [a, 'b'],
      [b, 'a'],
    ] as const) {
      const warning = new RegExp(`THE DATA ROOT IS NOT SHARED with node ${other}`);
      await waitFor(() => warning.test(node.output()), 5000, `the warning about ${other}`);
    }
    await stopNodes(a, b);
  });

  it("any node streams a task's log live, with no gap or duplicate, and resumes from Last-Event-ID", async () => {
    const db = await server.createDatabase();
    const [a, b] = await Promise.all([
      startNode(db, 'a'),
      startNode(db, 'b', { RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}' }),
    ]);
    const id = await submit(b.url, 1500);
    const text = await (await fetch(`${b.url}/api/v2/tasks/${id}/logs`)).text();
    const events = text
      .split('\n\n')
      .map((block) => ({
        id: /^id: (\d+)$/m.exec(block)?.[1],
        data: /^data: (.*)$/m.exec(block)?.[1],
      }))
      .filter((e) => e.data);
    const seqs = events.filter((e) => e.id).map((e) => Number(e.id));
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      'every entry once, in order',
    );
    assert.ok(
      events.some((e) => /tick \d+/.test(e.data!)),
      "the running node's lines came through",
    );
    assert.match(events.at(-1)!.data!, /"status":"completed"/);
    assert.equal((await statusOf(db, id))?.node_name, 'a', 'it ran on a, streamed from b');
    const resumed = await (
      await fetch(`${b.url}/api/v2/tasks/${id}/logs`, {
        headers: { 'last-event-id': String(seqs.length - 2) },
      })
    ).text();
    const again = [...resumed.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(again, [seqs.length - 1, seqs.length]);
    await stopNodes(a, b);
  });

  it('wakes other nodes by NOTIFY: a task submitted on one starts on another long before its poll', async () => {
    const db = await server.createDatabase();
    // Heartbeats and polls far apart: only a notification can start the task quickly.
    const slow = { RFUAV_POLL_S: '30', RFUAV_HEARTBEAT_S: '10', RFUAV_LEASE_S: '60' };
    const [a, b] = await Promise.all([
      startNode(db, 'a', slow),
      startNode(db, 'b', { ...slow, RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}' }),
    ]);
    // Past the first polls after start-up.
    await new Promise((r) => setTimeout(r, 1000));
    const submitted = Date.now();
    const id = await submit(b.url, 300);
    await waitFor(
      async () => (await statusOf(db, id))?.status === 'completed',
      10_000,
      'the task to run on a',
    );
    assert.equal((await statusOf(db, id))?.node_name, 'a');
    const took = Date.now() - submitted;
    assert.ok(took < 8000, `done ${took} ms after submission: well before a's next poll (30 s)`);
    // Logs too: b follows a task that runs on a, live, though b reads the store only every 30 s.
    const followed = await submit(b.url, 1500);
    const stream = await fetch(`${b.url}/api/v2/tasks/${followed}/logs`);
    const { text, ticks, firstTickAt, endAt } = await followSleep(stream);
    assert.ok(ticks.length >= 10, text);
    assert.deepEqual(
      ticks,
      ticks.map((_, i) => i),
      'every line once, in order',
    );
    assert.equal((await statusOf(db, followed))?.node_name, 'a');
    assert.ok(
      endAt - firstTickAt > 800,
      `lines came live: the first ${endAt - firstTickAt} ms before the end`,
    );
    const [row] = await sql<{ finished: Date }>(
      db,
      'SELECT finished_at AS finished FROM tasks WHERE task_id = $1',
      [followed],
    );
    const late = endAt - new Date(row!.finished).getTime();
    assert.ok(late < 3000, `the end reached b ${late} ms after the task ended (b's poll: 30 s)`);
    // A limit change on b reaches a at once: a stops taking preprocessing work.
    const res = await fetch(`${b.url}/api/v2/resources/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ max_concurrent: { cpu: { preprocessing: 0 } } }),
    });
    assert.equal(res.status, 200);
    await waitFor(
      async () => {
        const r = (await (await fetch(`${a.url}/api/v2/resources`)).json()) as Record<string, unknown>;
        return JSON.stringify(r).includes('"preprocessing":0');
      },
      5000,
      'a to apply the new limit',
    );
    const waits = await submit(b.url, 300);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await statusOf(db, waits))?.status, 'queued', 'no node may run it now');
    await stopNodes(a, b);
  });

  it('cancel and delete on any node: a task running on another node stops within 2 s', async () => {
    const db = await server.createDatabase();
    const [a, b] = await Promise.all([
      startNode(db, 'a'),
      startNode(db, 'b', { RFUAV_LIMITS: '{"cpu":{"preprocessing":0}}' }),
    ]);
    const id = await submit(b.url, 60_000);
    await waitFor(async () => (await statusOf(db, id))?.status === 'running', 10_000, 'the task to run on a');
    const asked = Date.now();
    const res = await fetch(`${b.url}/api/v2/tasks/${id}/cancel`, { method: 'POST' });
    const body = (await res.json()) as { message: string };
    const took = Date.now() - asked;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.message, 'Task cancelled');
    assert.ok(took < 2000, `cancelled across nodes in ${took} ms`);
    const row = await statusOf(db, id);
    assert.equal(row?.status, 'cancelled');
    assert.equal(row?.node_name, 'a');
    const log = await messages(db, id);
    assert.ok(log.includes('Cancellation requested; stopping the work'), log.join('\n'));
    // Finished: any node deletes it.
    assert.equal((await fetch(`${b.url}/api/v2/tasks/${id}`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${a.url}/api/v2/tasks/${id}`)).status, 404);
    await stopNodes(a, b);
  });

  it('kill -9 of a node mid-task: re-queued within the lease and finished on another node', async () => {
    const db = await server.createDatabase();
    const { id, victim, other } = await runningOnOneOfTwo(db);
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    const killedAt = Date.now();
    await waitFor(
      async () => (await statusOf(db, id))?.node_name === other.name,
      15_000,
      'the other node to take it',
    );
    const tookOver = Date.now() - killedAt;
    await waitFor(async () => (await statusOf(db, id))?.status === 'completed', 30_000, 'the task to finish');
    assert.equal((await statusOf(db, id))?.attempts, 2);
    const log = await messages(db, id);
    const stopped = new RegExp(`^Node ${victim.name} stopped answering .* re-queued to run again`);
    assert.ok(
      log.some((m) => stopped.test(m)),
      log.join('\n'),
    );
    assert.equal(log.filter((m) => m.startsWith('Started on')).length, 2);
    assert.ok(tookOver < 15_000, `took over after ${tookOver} ms`);
    await stopNodes(other.proc);
  });

  it('SIGTERM of a node hands its running task back at once, to run on another', async () => {
    const db = await server.createDatabase();
    const { id, victim, other } = await runningOnOneOfTwo(db);
    victim.proc.child.kill('SIGTERM');
    assert.equal((await victim.proc.exited).code, 0, victim.proc.output());
    const state = await sql<{ state: string }>(db, 'SELECT state FROM nodes WHERE name = $1', [victim.name]);
    assert.deepEqual(
      state.map((r) => r.state),
      ['stopped'],
      'it says it stopped',
    );
    await waitFor(
      async () => (await statusOf(db, id))?.node_name === other.name,
      8000,
      'the other node to take the task (well before the lease)',
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${(await messages(db, id)).join('\n')}\n${victim.proc.output()}`);
    });
    const log = await messages(db, id);
    assert.ok(log.includes('Interrupted by a service shutdown; re-queued to run again'), log.join('\n'));
    assert.ok(
      !log.some((m) => /stopped answering|without handing/.test(m)),
      `handed back, not swept:\n${log.join('\n')}`,
    );
    await stopNodes(other.proc);
  });

  it('a node frozen past its lease: its task runs elsewhere and none of its late writes land', async () => {
    const db = await server.createDatabase();
    const { id, victim, other } = await runningOnOneOfTwo(db);
    victim.proc.child.kill('SIGSTOP');
    try {
      // Generous: this waits out a 3 s lease on two shared cores that other test files load too.
      await waitFor(
        async () => (await statusOf(db, id))?.node_name === other.name,
        30_000,
        'the other node to take it',
      ).catch(async (err: Error) => {
        const nodes = await sql(db, 'SELECT name, state, now() - heartbeat_at AS age FROM nodes');
        throw new Error(
          `${err.message}\nnodes: ${JSON.stringify(nodes)}\n${(await messages(db, id)).join('\n')}\n` +
            `--- ${other.name}:\n${other.proc.output()}`,
        );
      });
    } finally {
      victim.proc.child.kill('SIGCONT');
    }
    await waitFor(async () => (await statusOf(db, id))?.status === 'completed', 30_000, 'the task to finish');
    // Awake again, the frozen node learns it was declared lost, stops its copy and joins anew.
    await waitFor(
      async () => {
        const rows = await sql<{ state: string }>(
          db,
          'SELECT state FROM nodes WHERE name = $1 ORDER BY started_at',
          [victim.name],
        );
        // Lost under its old id (more than once if it fenced itself again while catching up) and
        // active under the newest.
        return (
          rows.length >= 2 &&
          rows.slice(0, -1).every((r) => r.state === 'lost') &&
          rows.at(-1)!.state === 'active'
        );
      },
      30_000,
      'the frozen node to register again',
    ).catch(async (err: Error) => {
      const rows = await sql(db, 'SELECT name, state, started_at FROM nodes ORDER BY started_at');
      throw new Error(
        `${err.message}\nnodes: ${JSON.stringify(rows)}\n--- ${victim.name}:\n${victim.proc.output()}`,
      );
    });
    await new Promise((r) => setTimeout(r, 500));
    const log = await messages(db, id);
    const swept = log.findIndex((m) => m.startsWith(`Node ${victim.name} stopped answering`));
    const restarted = log.findIndex((m, i) => i > swept && m.startsWith('Started on'));
    assert.ok(swept > 0 && restarted > swept, log.join('\n'));
    assert.deepEqual(
      log.slice(swept + 1, restarted).filter((m) => m.startsWith('tick')),
      [],
      'no tick from the frozen node after the sweep',
    );
    const row = await statusOf(db, id);
    assert.equal(row?.status, 'completed');
    assert.equal(row?.node_name, other.name);
    assert.equal(log.filter((m) => m.startsWith('Completed')).length, 1, 'completed once');
    await stopNodes(victim.proc, other.proc);
  });
});

/** Two nodes and an 8 s sleep task running on one of them. */
const runningOnOneOfTwo = (db: string) => twoNodesRunning(db, dataRoot, (url) => submit(url, 8000));
