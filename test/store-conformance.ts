import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../src/domain/errors.js';
import type { NewTask } from '../src/domain/task.js';
import type { Store } from '../src/store/store.js';

export function newTask(id: string, over: Partial<NewTask> = {}): NewTask {
  return {
    task_id: id,
    task_type: 'dataset_split',
    priority: 5,
    device_request: 'cpu',
    gpu_memory_gb: null,
    name: null,
    description: null,
    params: { input_path: 'a', nested: { x: [1, 2] } },
    input_path: 'a',
    output_path: 'b',
    total_epochs: null,
    ...over,
  };
}

/**
 * The contract every Store implementation must meet. Run against SQLite here, and against
 * PostgreSQL by the cluster store, unchanged. `open` returns a fresh, empty store; `reopen` (when
 * given) opens the same database again, to check durability.
 */
export function storeConformance(
  name: string,
  open: () => Promise<Store>,
  reopen?: (s: Store) => Promise<Store>,
): void {
  describe(`Store conformance: ${name}`, () => {
    it('writes a task with its first log entries, numbered from 1; later appends follow them', async () => {
      const s = await open();
      await s.createTask(newTask('f1'), [
        { level: 'INFO', message: 'accepted' },
        { level: 'WARNING', message: 'a note', stage: 'queued' },
      ]);
      const next = await s.appendLog('f1', { level: 'INFO', message: 'started' });
      assert.equal(next.seq, 3);
      const logs = await s.readLogs('f1', 0, 10);
      assert.deepEqual(
        logs.map((e) => [e.seq, e.level, e.message, e.stage ?? null]),
        [
          [1, 'INFO', 'accepted', null],
          [2, 'WARNING', 'a note', 'queued'],
          [3, 'INFO', 'started', null],
        ],
      );
      await assert.rejects(s.createTask(newTask('f1'), [{ level: 'INFO', message: 'again' }]));
      assert.equal((await s.readLogs('f1', 0, 10)).length, 3, 'a refused task writes no entry');
      await s.close();
    });

    it('creates and reads a task with every field, JSON columns round-tripped', async () => {
      const s = await open();
      const t = await s.createTask(
        newTask('t1', { total_epochs: 3, gpu_memory_gb: 1.5, name: 'n', description: 'd' }),
      );
      assert.equal(t.status, 'pending');
      assert.equal(t.progress, 0);
      assert.equal(t.attempts, 0);
      assert.deepEqual(t.params, { input_path: 'a', nested: { x: [1, 2] } });
      assert.equal(t.created_at, t.enqueued_at);
      const again = await s.getTask('t1');
      assert.deepEqual(again, t);
      assert.equal(await s.getTask('nope'), undefined);
      await s.close();
    });

    it('refuses a reused task_id with a conflict instead of overwriting', async () => {
      const s = await open();
      await s.createTask(newTask('dup', { description: 'first' }));
      await assert.rejects(
        s.createTask(newTask('dup', { description: 'second' })),
        (e: unknown) => e instanceof AppError && e.statusCode === 409,
      );
      assert.equal((await s.getTask('dup'))?.description, 'first');
      await s.close();
    });

    it('updates only from the expected statuses (compare-and-set)', async () => {
      const s = await open();
      await s.createTask(newTask('c1'));
      const q = await s.updateTask('c1', { status: 'queued' }, ['pending']);
      assert.equal(q?.status, 'queued');
      assert.equal(await s.updateTask('c1', { status: 'running' }, ['pending']), undefined);
      const r = await s.updateTask('c1', { status: 'running', device: 'cpu', attempts: 1, stats: { a: 1 } }, [
        'queued',
      ]);
      assert.equal(r?.status, 'running');
      assert.deepEqual(r?.stats, { a: 1 });
      const n = await s.updateTask('c1', { stats: null, result: { ok: true } });
      assert.equal(n?.stats, null);
      assert.deepEqual(n?.result, { ok: true });
      assert.equal(await s.updateTask('missing', { progress: 3 }), undefined);
      await s.close();
    });

    it('lists newest first, filtered by status and kinds, limited; counts by kind and status', async () => {
      const s = await open();
      for (let i = 0; i < 6; i++) {
        await s.createTask(newTask(`l${i}`, { task_type: i % 2 ? 'training' : 'image_crop' }));
      }
      await s.updateTask('l4', { status: 'queued' });
      assert.deepEqual(
        (await s.listTasks({ limit: 3 })).map((t) => t.task_id),
        ['l5', 'l4', 'l3'],
      );
      assert.deepEqual(
        (await s.listTasks({ limit: 10, kinds: ['training'] })).map((t) => t.task_id),
        ['l5', 'l3', 'l1'],
      );
      assert.deepEqual(
        (await s.listTasks({ limit: 10, status: 'queued' })).map((t) => t.task_id),
        ['l4'],
      );
      assert.deepEqual(await s.listTasks({ limit: 10, kinds: [] }), []);
      // Pages further down, and ids by their start (exact: case counts, % is no wildcard).
      assert.deepEqual(
        (await s.listTasks({ limit: 2, offset: 2 })).map((t) => t.task_id),
        ['l3', 'l2'],
      );
      assert.deepEqual(
        (await s.listTasks({ limit: 2, offset: 1, kinds: ['training'] })).map((t) => t.task_id),
        ['l3', 'l1'],
      );
      assert.deepEqual(
        (await s.listTasks({ limit: 10, idPrefix: 'l3' })).map((t) => t.task_id),
        ['l3'],
      );
      assert.deepEqual(await s.listTasks({ limit: 10, idPrefix: 'L3' }), []);
      assert.deepEqual(await s.listTasks({ limit: 10, idPrefix: 'l%' }), []);
      assert.deepEqual(
        (await s.listTasks({ limit: 2, beforeId: 'l4', kinds: ['training'] })).map((t) => t.task_id),
        ['l3', 'l1'],
      );
      assert.deepEqual(await s.listTasks({ limit: 2, beforeId: 'no-such-task' }), []);
      const counts = (await s.countByKindAndStatus()).sort((a, b) =>
        `${a.task_type}${a.status}`.localeCompare(`${b.task_type}${b.status}`),
      );
      assert.deepEqual(counts, [
        { task_type: 'image_crop', status: 'pending', n: 2 },
        { task_type: 'image_crop', status: 'queued', n: 1 },
        { task_type: 'training', status: 'pending', n: 3 },
      ]);
      await s.close();
    });

    it("keeps each task's owner: lists by owner, counts what each one has waiting and running", async () => {
      const s = await open();
      await s.createTask(newTask('o1', { owner: 'alice' }));
      await s.createTask(newTask('o2', { owner: 'alice', status: 'queued' }));
      await s.createTask(newTask('o3', { owner: 'bob' }));
      await s.createTask(newTask('o4'));
      await s.updateTask('o1', { status: 'running' });
      assert.equal((await s.getTask('o1'))?.owner, 'alice');
      assert.equal((await s.getTask('o4'))?.owner, null);
      assert.deepEqual(
        (await s.listTasks({ limit: 10, owner: 'alice' })).map((t) => t.task_id),
        ['o2', 'o1'],
      );
      assert.equal(await s.countWaitingOf('alice'), 1);
      assert.equal(await s.countTasksOf('alice', ['dataset_split', 'training']), 2);
      assert.equal(await s.countTasksOf('alice', ['dataset_split', 'training'], 'running'), 1);
      assert.equal(await s.countTasksOf('alice', ['image_crop']), 0);
      assert.equal(await s.countTasksOf('alice', []), 0);
      assert.equal(await s.countWaitingOf('bob'), 1);
      assert.equal(await s.countWaitingOf('carol'), 0);
      await s.updateTask('o3', { status: 'cancelled' });
      const rows = (await s.countUnfinishedByOwner()).map((r) => `${r.owner}:${r.status}:${r.n}`).sort();
      assert.deepEqual(rows, ['alice:queued:1', 'alice:running:1', 'null:pending:1']);
      await s.close();
    });

    it('keeps the fair-share ledger: charges add up, stored usage decays with the half-life', async () => {
      const s = await open();
      const ledger = async (charges: { user: string; amount: number }[], now: number) =>
        Object.fromEntries(
          (await s.chargeUsage(charges, now, 1000)).map((r) => [r.user, Math.round(r.usage * 1000) / 1000]),
        );
      assert.deepEqual(await ledger([], 0), {});
      assert.deepEqual(await ledger([{ user: 'alice', amount: 100 }], 0), { alice: 100 });
      // One half-life later: alice's 100 is 50, plus her new 50; bob starts at 10.
      assert.deepEqual(
        await ledger(
          [
            { user: 'alice', amount: 50 },
            { user: 'bob', amount: 10 },
          ],
          1000,
        ),
        { alice: 100, bob: 10 },
      );
      assert.deepEqual(await ledger([], 2000), { alice: 50, bob: 5 });
      await s.close();
    });

    it('counts GPU-seconds per owner inside a time window (the daily GPU budget)', async () => {
      const s = await open();
      const at = (hhmm: string) => `2026-12-02T${hhmm}:00.000Z`;
      const run = async (id: string, owner: string, device: string, from: string, to: string | null) => {
        await s.createTask(newTask(id, { owner }));
        await s.updateTask(id, { status: 'running', device, started_at: at(from) });
        if (to) await s.updateTask(id, { status: 'completed', finished_at: at(to) });
      };
      await run('g1', 'alice', 'cuda:0', '10:00', '11:00');
      await run('g2', 'alice', 'cpu', '10:00', '11:00');
      await run('g3', 'bob', 'cuda:1', '11:30', null);
      await run('g4', 'alice', 'cuda:0', '08:00', '09:00');
      const rows = (await s.gpuSecondsBetween(at('10:30'), at('12:00')))
        .map((r) => `${r.owner}:${Math.round(r.seconds)}`)
        .sort();
      assert.deepEqual(rows, ['alice:1800', 'bob:1800']);
      await s.close();
    });

    it('lists unfinished tasks oldest first', async () => {
      const s = await open();
      for (const id of ['u1', 'u2', 'u3', 'u4']) await s.createTask(newTask(id));
      await s.updateTask('u1', { status: 'running' });
      await s.updateTask('u2', { status: 'completed' });
      await s.updateTask('u3', { status: 'queued' });
      assert.deepEqual(
        (await s.listUnfinished()).map((t) => `${t.task_id}:${t.status}`),
        ['u1:running', 'u3:queued', 'u4:pending'],
      );
      await s.close();
    });

    it('numbers log entries per task from 1 without gaps, even when appended concurrently', async () => {
      const s = await open();
      await s.createTask(newTask('g1'));
      await s.createTask(newTask('g2'));
      const appends = [];
      for (let i = 0; i < 50; i++) {
        appends.push(s.appendLog(i % 2 ? 'g1' : 'g2', { level: 'INFO', message: `m${i}` }));
      }
      const entries = await Promise.all(appends);
      const seqs = (id: number) =>
        entries
          .filter((_, i) => i % 2 === id)
          .map((e) => e.seq)
          .sort((a, b) => a - b);
      assert.deepEqual(
        seqs(1),
        Array.from({ length: 25 }, (_, i) => i + 1),
      );
      assert.deepEqual(
        seqs(0),
        Array.from({ length: 25 }, (_, i) => i + 1),
      );
      const e = await s.appendLog('g1', {
        level: 'WARNING',
        message: 'epoch done',
        metrics: { loss: 0.5 },
        step: 3,
        stage: 'epoch_end',
      });
      assert.equal(e.seq, 26);
      const tail = await s.readLogs('g1', 24, 100);
      assert.deepEqual(
        tail.map((x) => x.seq),
        [25, 26],
      );
      assert.deepEqual(tail[1], e);
      assert.equal((await s.readLogs('g1', 0, 5)).length, 5);
      await s.close();
    });

    it('deletes a task with its logs and metrics', async () => {
      const s = await open();
      await s.createTask(newTask('d1'));
      await s.appendLog('d1', { level: 'INFO', message: 'x' });
      await s.putEpochMetrics('d1', { epoch: 1, loss: 1 });
      assert.equal(await s.deleteTask('d1'), true);
      assert.equal(await s.deleteTask('d1'), false);
      assert.equal(await s.getTask('d1'), undefined);
      assert.deepEqual(await s.readLogs('d1', 0, 10), []);
      assert.deepEqual(await s.getEpochMetrics('d1'), []);
      await s.close();
    });

    it('keeps one metrics row per epoch (a rewrite replaces it) and truncates after a resume point', async () => {
      const s = await open();
      await s.createTask(newTask('m1'));
      for (const epoch of [1, 2, 3]) await s.putEpochMetrics('m1', { epoch, train_loss: 1 / epoch });
      await s.putEpochMetrics('m1', { epoch: 2, train_loss: 0.25 });
      assert.deepEqual(
        (await s.getEpochMetrics('m1')).map((m) => [m.epoch, m.train_loss]),
        [
          [1, 1],
          [2, 0.25],
          [3, 1 / 3],
        ],
      );
      await s.truncateEpochMetrics('m1', 1);
      assert.deepEqual(
        (await s.getEpochMetrics('m1')).map((m) => m.epoch),
        [1],
      );
      await s.close();
    });

    it('stores and replaces limit overrides', async () => {
      const s = await open();
      assert.deepEqual(await s.getLimitOverrides(), {});
      await s.setLimitOverrides({ cpu: { training: 1 }, gpu: { inference: 2, training: 1 } });
      assert.deepEqual(await s.getLimitOverrides(), {
        cpu: { training: 1 },
        gpu: { inference: 2, training: 1 },
      });
      await s.setLimitOverrides({ cpu: { preprocessing: 3 } });
      assert.deepEqual(await s.getLimitOverrides(), { cpu: { preprocessing: 3 } });
      await s.ping();
      await s.close();
    });

    it("stores each user's quota override, nulls (lifted quotas) included, and removes it", async () => {
      const s = await open();
      assert.deepEqual(await s.getQuotaOverrides(), {});
      await s.setQuotaOverride('alice', { queued: 3, running: { training: null } });
      await s.setQuotaOverride('bob', { gpu_hours_per_day: 1.5 });
      await s.setQuotaOverride('alice', { queued: null, running: { training: 2 } });
      assert.deepEqual(await s.getQuotaOverrides(), {
        alice: { queued: null, running: { training: 2 } },
        bob: { gpu_hours_per_day: 1.5 },
      });
      await s.setQuotaOverride('bob', null);
      await s.setQuotaOverride('nobody', null);
      assert.deepEqual(Object.keys(await s.getQuotaOverrides()), ['alice']);
      await s.close();
    });

    if (reopen) {
      it('keeps everything committed across a reopen', async () => {
        const s = await open();
        await s.createTask(newTask('p1'));
        await s.updateTask('p1', { status: 'running', attempts: 1 });
        await s.appendLog('p1', { level: 'INFO', message: 'hello' });
        await s.setLimitOverrides({ cpu: { training: 0 } });
        const s2 = await reopen(s);
        assert.equal((await s2.getTask('p1'))?.status, 'running');
        assert.equal((await s2.readLogs('p1', 0, 10))[0]?.message, 'hello');
        assert.deepEqual(await s2.getLimitOverrides(), { cpu: { training: 0 } });
        const next = await s2.appendLog('p1', { level: 'INFO', message: 'again' });
        assert.equal(next.seq, 2);
        await s2.close();
      });
    }
  });
}
