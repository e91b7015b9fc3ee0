import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inTransaction, withClient } from '../../src/store/postgres/client.js';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import pg from 'pg';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { isStoreUnavailable, type Store } from '../../src/store/store.js';
import { startPostgres, type TestPostgres } from '../postgres.js';
import { newTask, storeConformance } from '../store-conformance.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const urls = new WeakMap<Store, string>();
storeConformance(
  'PostgreSQL',
  async () => {
    const url = await server.createDatabase();
    const s = await PgStore.open({ url });
    urls.set(s, url);
    return s;
  },
  async (s) => {
    const url = urls.get(s) as string;
    await s.close();
    return PgStore.open({ url });
  },
);

describe('PostgreSQL store', () => {
  it('migrates a database once, however many nodes start on it together', async () => {
    const url = await server.createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PgStore.open({ url })));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
    await c.end();
    assert.deepEqual(
      rows.map((r) => [r.version, r.n]),
      PG_MIGRATIONS.map((m) => [m.version, 1]),
    );
    // They share it: a task one writes, the others read at once.
    await stores[0]!.createTask(newTask('shared'));
    for (const s of stores) assert.equal((await s.getTask('shared'))?.task_id, 'shared');
    for (const s of stores) await s.close();
  });

  it('appends a batch of log entries in one write, numbered in order among single appends', async () => {
    const s = await PgStore.open({ url: await server.createDatabase() });
    await s.createTask(newTask('batched'));
    const line = (message: string) => ({ level: 'INFO' as const, message });
    // Batches and single appends at once: every entry gets its own number, a batch's in order.
    const [one, batch, two, other] = await Promise.all([
      s.appendLog('batched', line('single 1')),
      s.appendLogs('batched', [line('b1'), { ...line('b2'), progress: 40, step: 2 }, line('b3')]),
      s.appendLog('batched', line('single 2')),
      s.appendLogs('batched', [line('c1'), line('c2')]),
    ]);
    const seqs = [one.seq, ...batch.map((e) => e.seq), two.seq, ...other.map((e) => e.seq)];
    assert.deepEqual(
      [...seqs].sort((x, y) => x - y),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      batch.map((e) => e.seq - (batch[0]?.seq ?? 0)),
      [0, 1, 2],
    );
    const stored = await s.readLogs('batched', 0, 100);
    assert.deepEqual(
      stored.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6, 7],
    );
    const b2 = stored.find((e) => e.message === 'b2');
    assert.deepEqual([b2?.seq, b2?.progress, b2?.step], [batch[1]?.seq, 40, 2]);
    assert.deepEqual(await s.appendLogs('batched', []), []);
    await assert.rejects(s.appendLogs('missing', [line('x')]), /task 'missing' not found/);
    await s.close();
  });

  it('answers "unavailable" while the server is down and recovers by itself', async () => {
    const url = await server.createDatabase();
    const errors: Error[] = [];
    const s = await PgStore.open({ url, onError: (e) => errors.push(e) });
    await s.createTask(newTask('before'));
    server.stopServer();
    try {
      const err = await s.getTask('before').then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err, 'a read with the server down fails');
      assert.ok(isStoreUnavailable(err), `unavailable, not a bug: ${String(err)}`);
    } finally {
      server.startServer();
    }
    let task;
    for (let i = 0; i < 50 && !task; i++) {
      task = await s.getTask('before').catch(() => undefined);
      if (!task) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(task?.task_id, 'before', 'the pool reconnects on its own');
    await s.createTask(newTask('after'));
    assert.equal((await s.getTask('after'))?.status, 'pending');
    await s.close();
  });

  it('a connection cut between two statements of a transaction fails that call, not the process', async () => {
    const url = await server.createDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    const killer = new pg.Client({ connectionString: url });
    await killer.connect();
    // Cut while the client is lent and idle between statements: the server ending it emits an
    // 'error' on the client, which ended the whole node before a listener was attached for the loan.
    const cut = inTransaction(pool, async (client) => {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await killer.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      await new Promise((r) => setTimeout(r, 200));
      await client.query('SELECT 1');
    });
    await assert.rejects(cut);
    // The broken connection was not lent again: the pool goes on with a fresh one.
    assert.equal(await withClient(pool, async (c) => (await c.query('SELECT 2 AS n')).rows[0].n), 2);
    await killer.end();
    await pool.end();
  });
});
