import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { ClaimLane, ClaimedTask, PgCluster } from '../../src/store/postgres/cluster.js';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import { startPostgres, type TestPostgres } from '../postgres.js';
import { newTask } from '../store-conformance.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const LEASE = 30_000;
const CPU_LANE: ClaimLane = { kinds: ['dataset_split'], requests: ['cpu'], maxMemGb: null, limit: 10 };

/** A node: its own store (pool) on the shared database, registered under `name`. */
async function node(
  url: string,
  name: string,
): Promise<{ store: PgStore; cluster: PgCluster; id: string; name: string }> {
  const store = await PgStore.open({ url, poolSize: 2 });
  const cluster = store.cluster();
  const id = await cluster.registerNode({ name, devices: [], limits: { cpu: { preprocessing: 2 } } });
  return { store, cluster, id, name };
}

async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, values);
  } finally {
    await c.end();
  }
}

describe('claims on PostgreSQL', () => {
  it('8 claimers × 1 000 tasks: every task claimed once; stale-epoch writes change nothing', async () => {
    const url = await server.createDatabase();
    const nodes = await Promise.all(Array.from({ length: 8 }, (_, i) => node(url, `n${i}`)));
    const creator = nodes[0]!.store;
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => creator.createTask(newTask(`c${i + j}`, { status: 'queued' }))),
      );
    }
    const claims = new Map<string, ClaimedTask[]>(nodes.map((n) => [n.id, []]));
    await Promise.all(
      nodes.map(async (n) => {
        for (;;) {
          const got = await n.cluster.claim(n, [CPU_LANE], LEASE);
          if (got.length === 0) return;
          claims.get(n.id)!.push(...got);
        }
      }),
    );
    const all = [...claims.values()].flat();
    assert.equal(all.length, 1000, 'every task claimed');
    assert.equal(new Set(all.map((c) => c.task_id)).size, 1000, 'no task claimed twice');
    assert.ok([...claims.values()].filter((c) => c.length > 0).length > 1, 'the claimers shared the work');

    // Each owner starts its tasks through the fence: all land.
    for (const n of nodes) {
      for (const c of claims.get(n.id)!) {
        const t = await n.store.updateFenced(
          c.task_id,
          { node: n.id, epoch: c.lease_epoch },
          { status: 'running', attempts: 1 },
          ['queued'],
        );
        assert.equal(t?.status, 'running');
      }
    }
    // Node 0 stops heartbeating (its lease is long past): a sweep re-queues its tasks.
    const [lost, ...alive] = nodes as [(typeof nodes)[0], ...typeof nodes];
    await sql(url, "UPDATE nodes SET heartbeat_at = now() - interval '1 hour' WHERE node_id = $1", [lost.id]);
    const sweeps = await Promise.all(alive.map((n) => n.cluster.sweepLost(30_000)));
    assert.equal(sweeps.filter((s) => s.lost.length > 0).length, 1, 'one sweeper did the work');
    const sweep = sweeps.find((s) => s.lost.length > 0)!;
    const lostTasks = claims.get(lost.id)!;
    assert.deepEqual(
      sweep.lost.map((l) => l.name),
      ['n0'],
    );
    assert.equal(sweep.requeued.length, lostTasks.length);
    assert.equal(
      await lost.cluster.heartbeat(lost.id, { usage: {}, devices: [], limits: {} }),
      null,
      'a lost node learns it at its next heartbeat',
    );

    assert.deepEqual(await lost.cluster.claim(lost, [CPU_LANE], LEASE), [], 'a lost node claims nothing');
    // Its late writes (old fence) change 0 rows: status, log, and nothing appended.
    const before = await sql(
      url,
      'SELECT task_id, status, log_seq, attempts, updated_at FROM tasks WHERE task_id = ANY($1) ORDER BY task_id',
      [lostTasks.map((c) => c.task_id)],
    );
    let landed = 0;
    for (const c of lostTasks) {
      const fence = { node: lost.id, epoch: c.lease_epoch };
      if (await lost.store.updateFenced(c.task_id, fence, { status: 'completed', progress: 100 })) landed++;
      if (await lost.store.appendLogsFenced(c.task_id, fence, [{ level: 'INFO', message: 'late' }])) landed++;
      const batch = [1, 2, 3].map((n) => ({ level: 'INFO' as const, message: `late ${n}` }));
      if (await lost.store.appendLogsFenced(c.task_id, fence, batch)) landed++;
    }
    assert.equal(landed, 0);
    const afterRows = await sql(
      url,
      'SELECT task_id, status, log_seq, attempts, updated_at FROM tasks WHERE task_id = ANY($1) ORDER BY task_id',
      [lostTasks.map((c) => c.task_id)],
    );
    assert.deepEqual(afterRows.rows, before.rows);
    for (const r of afterRows.rows) {
      assert.equal(r.status, 'queued');
      assert.equal(r.attempts, 1, 'the next start counts the next attempt, not the re-queue');
    }
    const lines = await alive[0]!.store.readLogs(lostTasks[0]!.task_id, 0, 10);
    assert.match(
      lines.at(-1)?.message ?? '',
      /^Node n0 stopped answering \(no heartbeat within the lease\) while it was running \(attempt 1 on unknown device\); re-queued to run again$/,
    );

    // Another node claims them again, with a higher epoch, and its writes land.
    const again: ClaimedTask[] = [];
    for (;;) {
      const got = await alive[0]!.cluster.claim(alive[0]!, [CPU_LANE], LEASE);
      if (got.length === 0) break;
      again.push(...got);
    }
    assert.deepEqual(new Set(again.map((c) => c.task_id)), new Set(lostTasks.map((c) => c.task_id)));
    for (const c of again) {
      const old = lostTasks.find((l) => l.task_id === c.task_id)!;
      assert.ok(c.lease_epoch > old.lease_epoch);
      const e = await alive[0]!.store.appendLogsFenced(
        c.task_id,
        { node: alive[0]!.id, epoch: c.lease_epoch },
        [{ level: 'INFO', message: 'mine' }],
      );
      assert.ok(e?.[0], 'the new owner writes');
    }
    for (const n of nodes) await n.store.close();
  });

  it('claims in the cluster-wide order, within what the lane can run, honouring pins', async () => {
    const url = await server.createDatabase();
    const a = await node(url, 'a');
    const b = await node(url, 'b');
    await a.store.createTask(newTask('late-urgent', { status: 'queued', priority: 1 }));
    await a.store.createTask(newTask('normal', { status: 'queued', priority: 5 }));
    await a.store.createTask(
      newTask('gpu-big', { status: 'queued', device_request: 'cuda', gpu_memory_gb: 20 }),
    );
    await a.store.createTask(
      newTask('gpu-small', { status: 'queued', device_request: 'cuda', gpu_memory_gb: 4 }),
    );
    await sql(url, "UPDATE tasks SET pin_node = 'b' WHERE task_id = 'normal'");
    const one = { ...CPU_LANE, limit: 1 };
    assert.deepEqual(
      (await a.cluster.claim(a, [one], LEASE)).map((c) => c.task_id),
      ['late-urgent'],
    );
    assert.deepEqual(await a.cluster.claim(a, [one], LEASE), [], "'normal' is pinned to b");
    assert.deepEqual(
      (await b.cluster.claim(b, [one], LEASE)).map((c) => c.task_id),
      ['normal'],
    );
    const gpu: ClaimLane = { kinds: ['dataset_split'], requests: ['cuda', 'auto'], maxMemGb: 8, limit: 5 };
    assert.deepEqual(
      (await a.cluster.claim(a, [gpu], LEASE)).map((c) => c.task_id),
      ['gpu-small'],
    );
    // Given back unstarted, it is claimable again (by anyone).
    const [big] = await b.cluster.claim(b, [{ ...gpu, maxMemGb: 24 }], LEASE);
    assert.equal(big?.task_id, 'gpu-big');
    assert.equal(
      await a.cluster.unclaim('gpu-big', { node: a.id, epoch: big!.lease_epoch }),
      false,
      "not a's",
    );
    assert.equal(await b.cluster.unclaim('gpu-big', { node: b.id, epoch: big!.lease_epoch }), true);
    assert.equal((await a.cluster.claim(a, [{ ...gpu, maxMemGb: 24 }], LEASE))[0]?.task_id, 'gpu-big');
    await a.store.close();
    await b.store.close();
  });

  it("claims in fair-share order: an owner's offset moves their tasks back, one owner's order kept", async () => {
    const url = await server.createDatabase();
    const a = await node(url, 'a');
    for (const [id, owner] of [
      ['alice-1', 'alice'],
      ['alice-2', 'alice'],
      ['bob-1', 'bob'],
      ['nobody-1', undefined],
    ] as const)
      await a.store.createTask(newTask(id, { status: 'queued', owner }));
    const lane = { ...CPU_LANE, limit: 2 };
    // Plain order without offsets (the index-ordered claim): submission order.
    const plain = await a.cluster.claim(a, [lane], LEASE);
    assert.deepEqual(plain.map((c) => `${c.task_id}:${c.owner}`).sort(), ['alice-1:alice', 'alice-2:alice']);
    for (const c of plain) await a.cluster.unclaim(c.task_id, { node: a.id, epoch: c.lease_epoch });
    // Alice has used a lot: her keys move back 10 minutes; bob's and the unowned task go first.
    const offsets = new Map([
      ['alice', 600_000],
      ['bob', 0],
    ]);
    const next = async () =>
      (await a.cluster.claim(a, [{ ...CPU_LANE, limit: 1 }], LEASE, offsets)).map((c) => c.task_id);
    assert.deepEqual(
      [await next(), await next(), await next(), await next()],
      [['bob-1'], ['nobody-1'], ['alice-1'], ['alice-2']],
    );
    await a.store.close();
  });

  it('holds a user to their running quota across nodes: a claim passes over their tasks while they are at it', async () => {
    const url = await server.createDatabase();
    const a = await node(url, 'a');
    const b = await node(url, 'b');
    for (const [id, owner] of [
      ['alice-1', 'alice'],
      ['alice-2', 'alice'],
      ['bob-1', 'bob'],
    ] as const)
      await a.store.createTask(newTask(id, { status: 'queued', owner }));
    const lane = { ...CPU_LANE, limit: 1, quotas: [{ owner: 'alice', limit: 1 }] };
    const [first] = await a.cluster.claim(a, [lane], LEASE);
    assert.equal(first?.task_id, 'alice-1');
    // Another node: alice has one claimed already, so her second waits; bob's goes.
    assert.deepEqual(
      (await b.cluster.claim(b, [lane], LEASE)).map((c) => c.task_id),
      ['bob-1'],
    );
    assert.deepEqual(await b.cluster.claim(b, [lane], LEASE), []);
    // The same with fair-share offsets (the claim with both).
    assert.deepEqual(await b.cluster.claim(b, [lane], LEASE, new Map([['alice', 60_000]])), []);
    // Her first ends: the second may go.
    await sql(url, "UPDATE tasks SET status = 'completed' WHERE task_id = 'alice-1'");
    assert.deepEqual(
      (await b.cluster.claim(b, [lane], LEASE)).map((c) => c.task_id),
      ['alice-2'],
    );
    await a.store.close();
    await b.store.close();
  });

  it('keeps a running quota exactly: one claim of many, or four nodes claiming at once, never pass it', async () => {
    const url = await server.createDatabase();
    const nodes = await Promise.all(['a', 'b', 'c', 'd'].map((n) => node(url, n)));
    const a = nodes[0]!;
    for (let i = 0; i < 30; i++) {
      await a.store.createTask(newTask(`alice-${i}`, { status: 'queued', owner: 'alice' }));
      await a.store.createTask(newTask(`bob-${i}`, { status: 'queued', owner: 'bob' }));
      await a.store.createTask(newTask(`free-${i}`, { status: 'queued', owner: 'carol' }));
    }
    const quotas = [
      { owner: 'alice', limit: 3 },
      { owner: 'bob', limit: 5 },
    ];
    const lane = { ...CPU_LANE, limit: 10, quotas };
    // One claim of ten: alice's first three, then the rest of the order (submission order here).
    const one = await a.cluster.claim(a, [lane], LEASE);
    const who = (cs: ClaimedTask[]) => cs.map((c) => c.owner);
    assert.equal(one.length, 10);
    assert.equal(who(one).filter((o) => o === 'alice').length, 3, JSON.stringify(who(one)));
    assert.equal(who(one).filter((o) => o === 'bob').length, 4);
    for (const c of one) await a.cluster.unclaim(c.task_id, { node: a.id, epoch: c.lease_epoch });
    // Four nodes, each claiming two at a time until nothing is left for them, all at once.
    const all: ClaimedTask[] = [];
    await Promise.all(
      nodes.map(async (n) => {
        for (;;) {
          const got = await n.cluster.claim(n, [{ ...lane, limit: 2 }], LEASE);
          if (got.length === 0) return;
          all.push(...got);
        }
      }),
    );
    assert.equal(who(all).filter((o) => o === 'alice').length, 3);
    assert.equal(who(all).filter((o) => o === 'bob').length, 5);
    assert.equal(who(all).filter((o) => o === 'carol').length, 30, 'no quota: all of them');
    assert.equal(new Set(all.map((c) => c.task_id)).size, all.length, 'none claimed twice');
    // With fair-share offsets too (the claim with both): still nothing more for alice.
    await a.store.createTask(newTask('carol-late', { status: 'queued', owner: 'carol' }));
    const fair = await a.cluster.claim(a, [lane], LEASE, new Map([['carol', 60_000]]));
    assert.deepEqual(
      fair.map((c) => c.task_id),
      ['carol-late'],
    );
    for (const n of nodes) await n.store.close();
  });

  it('lists nodes with their state and heartbeat age; drain and a clean stop are recorded', async () => {
    const url = await server.createDatabase();
    const a = await node(url, 'gpu-1');
    const b = await node(url, 'gpu-2');
    assert.equal(
      await a.cluster.heartbeat(a.id, { usage: { cpu: { preprocessing: 1 } }, devices: [], limits: {} }),
      'active',
    );
    let nodes = await a.cluster.listNodes(30_000);
    assert.deepEqual(
      nodes.map((n) => [n.name, n.state]),
      [
        ['gpu-1', 'active'],
        ['gpu-2', 'active'],
      ],
    );
    assert.deepEqual(nodes[0]!.usage, { cpu: { preprocessing: 1 } });
    assert.ok(nodes[0]!.heartbeat_age_s >= 0 && nodes[0]!.heartbeat_age_s < 30);
    assert.equal(await b.cluster.setState(b.id, 'draining'), true);
    assert.equal(await b.cluster.heartbeat(b.id, { usage: {}, devices: [], limits: {} }), 'draining');
    await sql(url, "UPDATE nodes SET heartbeat_at = now() - interval '1 minute' WHERE node_id = $1", [a.id]);
    nodes = await b.cluster.listNodes(30_000);
    assert.deepEqual(
      nodes.map((n) => [n.name, n.state]),
      [
        ['gpu-1', 'lost'],
        ['gpu-2', 'draining'],
      ],
      'past its lease reads as lost before any sweep',
    );
    assert.equal(await b.cluster.setState(b.id, 'stopped'), true);
    assert.deepEqual(
      (await b.cluster.listNodes(30_000)).map((n) => n.name),
      ['gpu-1'],
    );
    await a.store.close();
    await b.store.close();
  });
});
