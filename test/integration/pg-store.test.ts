import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
});
