import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tmpDir, waitFor } from '../helpers.js';
import { http, spawnServer } from '../process.js';

type Task = { task_id: string; status: string; attempts: number; message: string; device: string | null };

describe('crash recovery and graceful shutdown (real processes)', () => {
  it('after kill -9, every accepted task is back; running ones are re-queued and run again with history intact', async () => {
    const dir = tmpDir();
    const env = {
      RFUAV_HOME: path.join(dir, 'home'),
      RFUAV_DATA_ROOT: path.join(dir, 'data'),
      RFUAV_RATE_LIMIT: '0',
    };
    const s1 = await spawnServer(env);
    const create = (ms: number, extra: Record<string, unknown> = {}) =>
      http<Task>(`${s1.url}/api/v2/preprocessing/sleep`, 'POST', { ms, ...extra });
    assert.equal((await create(10, { task_id: 'done-before' })).status, 200);
    await waitFor(
      async () => (await http<Task>(`${s1.url}/api/v2/tasks/done-before`)).body.status === 'completed',
    );
    for (const id of ['long-a', 'long-b']) assert.equal((await create(600_000, { task_id: id })).status, 200);
    await waitFor(async () => (await http<Task>(`${s1.url}/api/v2/tasks/long-b`)).body.status === 'running');
    await waitFor(async () => (await http<Task>(`${s1.url}/api/v2/tasks/long-a`)).body.status === 'running');
    // a creation storm, killed in the middle: every task the client saw accepted must survive
    const accepted: string[] = [];
    let stop = false;
    const storm = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !stop && i < 200; i++) {
          try {
            const r = await create(5, { task_id: `storm-${w}-${i}`, priority: 1 + (i % 10) });
            if (r.status === 200) accepted.push(r.body.task_id);
          } catch {
            return; // connection cut by the kill
          }
        }
      }),
    );
    await waitFor(() => accepted.length >= 150, 20_000, 'storm to get going');
    await new Promise((r) => setTimeout(r, 200)); // let the two long tasks log a few ticks
    const logsBefore = (await fetch(`${s1.url}/api/v2/tasks/long-a/logs?follow=false`).then((r) => r.text()))
      .split('\n')
      .filter((l) => l.startsWith('id: ')).length;
    s1.child.kill('SIGKILL');
    stop = true;
    await storm;
    assert.equal((await s1.exited).signal, 'SIGKILL');

    const s2 = await spawnServer({ ...env, RFUAV_LIMITS: '{"cpu":{"preprocessing":2}}' });
    for (const id of accepted) {
      const r = await http<Task>(`${s2.url}/api/v2/tasks/${id}`);
      assert.equal(r.status, 200, `accepted task ${id} was lost`);
    }
    assert.equal((await http<Task>(`${s2.url}/api/v2/tasks/done-before`)).body.status, 'completed');
    for (const id of ['long-a', 'long-b']) {
      const t = await waitFor(
        async () => {
          const r = (await http<Task>(`${s2.url}/api/v2/tasks/${id}`)).body;
          return r.status === 'running' && r.attempts === 2 ? r : null;
        },
        10_000,
        `${id} to run again`,
      );
      assert.equal(t.device, 'cpu');
      const text = await fetch(`${s2.url}/api/v2/tasks/${id}/logs?follow=false`).then((r) => r.text());
      const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
      assert.ok(
        ids.every((n, i) => n === i + 1),
        'log history has a gap',
      );
      assert.ok(ids.length > logsBefore, 'log history was lost');
      assert.match(
        text,
        /The service stopped while this task was running \(attempt 1 on cpu\); re-queued to run again/,
      );
      assert.match(text, /Started on cpu \(attempt 2\)/);
    }
    // storm tasks wait behind the long ones (2 slots); make room and they all complete
    await http(`${s2.url}/api/v2/tasks/long-a/cancel`, 'POST');
    await http(`${s2.url}/api/v2/tasks/long-b/cancel`, 'POST');
    await waitFor(
      async () => {
        const list = (
          await http<{ total_other: number }>(`${s2.url}/api/v2/tasks?status=completed&task_type=sleep`)
        ).body;
        return list.total_other >= accepted.length + 1;
      },
      30_000,
      'storm tasks to complete',
    );
    // The queue then empties: besides the accepted ones, it may hold requests the kill cut off
    // after the store took them but before their answer reached the client (stored, so run).
    await waitFor(
      async () =>
        (await http<{ resource_status: { queue_length: number } }>(`${s2.url}/api/v1/health`)).body
          .resource_status.queue_length === 0,
      30_000,
      'the queue to empty',
    );
  });

  it('SIGTERM stops gracefully: exit 0, running work re-queued, then run again after restart', async () => {
    const dir = tmpDir();
    const env = { RFUAV_HOME: path.join(dir, 'home'), RFUAV_DATA_ROOT: path.join(dir, 'data') };
    const s1 = await spawnServer(env);
    await http(`${s1.url}/api/v2/preprocessing/sleep`, 'POST', { ms: 600_000, task_id: 'graceful' });
    await waitFor(
      async () => (await http<Task>(`${s1.url}/api/v2/tasks/graceful`)).body.status === 'running',
    );
    s1.child.kill('SIGTERM');
    const { code } = await s1.exited;
    assert.equal(code, 0, s1.output());
    const s2 = await spawnServer(env);
    const t = await waitFor(async () => {
      const r = (await http<Task>(`${s2.url}/api/v2/tasks/graceful`)).body;
      return r.status === 'running' ? r : null;
    });
    assert.equal(t.attempts, 2);
    const text = await fetch(`${s2.url}/api/v2/tasks/graceful/logs?follow=false`).then((r) => r.text());
    assert.match(text, /Interrupted by a service shutdown; re-queued to run again/);
    assert.doesNotMatch(text, /The service stopped while this task was running/);
  });
});
