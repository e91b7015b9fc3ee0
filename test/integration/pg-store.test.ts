import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import { isStoreUnavailable, StoreLockedError, type Store } from '../../src/store/store.js';
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
  it('migrates a database once, however many services start on it together', async () => {
    const url = await server.createDatabase();
    // Only one of them may keep the database (one service per database until cluster mode);
    // every one of them migrates under the lock, and nobody applies a migration twice.
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => PgStore.open({ url })));
    const opened = results
      .filter((r) => r.status === 'fulfilled')
      .map((r) => (r as PromiseFulfilledResult<PgStore>).value);
    const refused = results
      .filter((r) => r.status === 'rejected')
      .map((r) => (r as PromiseRejectedResult).reason);
    assert.equal(opened.length, 1);
    assert.equal(refused.length, 3);
    for (const err of refused) {
      assert.ok(err instanceof StoreLockedError, String(err));
      assert.match(
        err.message,
        /already using the PostgreSQL database postgres:\/\/postgres@127\.0\.0\.1:\d+\/t/,
      );
    }
    const pgc = await import('pg');
    const c = new pgc.default.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version',
    );
    await c.end();
    assert.ok(rows.length >= 1);
    for (const r of rows) assert.equal(r.n, 1);
    await opened[0]!.close();
    // Closed: the database is free again.
    const again = await PgStore.open({ url });
    await again.close();
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
    // The one-service lock went with the server; it is taken again, so a second service is
    // still refused.
    let second: unknown = null;
    for (let i = 0; i < 150; i++) {
      second = await PgStore.open({ url }).then(
        async (other) => (await other.close(), null),
        (e: unknown) => e,
      );
      if (second) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(second instanceof StoreLockedError, String(second));
    await s.close();
  });
});
