import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceInfo } from '../../src/domain/devices.js';
import type { ResourceClass } from '../../src/domain/task.js';
import {
  LocalQueue,
  type QueueSnapshot,
  type TaskQueue,
  type WaitingInfo,
} from '../../src/scheduler/queue.js';
import type { Limits, Placement, QueueEntry } from '../../src/scheduler/types.js';
import { Gates } from '../gate-job.js';
import { startService, tmpDir, waitFor } from '../helpers.js';

/**
 * A second TaskQueue, written here against the interface alone: strictly first come, first
 * served, one task at a time on the CPU, priorities ignored. If TaskService schedules through the
 * seam and nothing else, the service runs tasks in this queue's order, and every read (views,
 * health, resources) shows this queue's state.
 */
class FifoQueue implements TaskQueue {
  readonly calls: string[] = [];
  private waiting: QueueEntry[] = [];
  private running: Placement | null = null;

  add(entries: readonly QueueEntry[]): void {
    this.calls.push(`add ${entries.map((e) => e.id).join(',')}`);
    this.waiting.push(...entries);
  }
  remove(id: string): boolean {
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((e) => e.id !== id);
    return this.waiting.length < before;
  }
  async claim(): Promise<Placement[]> {
    if (this.running || this.waiting.length === 0) return [];
    const next = this.waiting.shift() as QueueEntry;
    this.running = { ...next, device: 'cpu' };
    this.calls.push(`claim ${next.id}`);
    return [this.running];
  }
  release(id: string): void {
    if (this.running?.id === id) this.running = null;
    this.calls.push(`release ${id}`);
  }
  isWaiting(id: string): boolean {
    return this.waiting.some((e) => e.id === id);
  }
  isRunning(id: string): boolean {
    return this.running?.id === id;
  }
  setDevices(_devices: DeviceInfo[]): void {}
  setLimits(_limits: Limits): void {}
  getLimits(): Limits {
    return { cpu: { training: 1, inference: 1, preprocessing: 1 } };
  }
  waitingInfo(id: string): WaitingInfo | undefined {
    const i = this.waiting.findIndex((e) => e.id === id);
    return i < 0 ? undefined : { position: i + 1, reason: 'first come, first served', effectivePriority: 1 };
  }
  get waitingCount(): number {
    return this.waiting.length;
  }
  snapshot(): QueueSnapshot {
    const usage: Record<ResourceClass, number> = { training: 0, inference: 0, preprocessing: 0 };
    if (this.running) usage[this.running.cls]++;
    return {
      usage: { cpu: usage },
      limits: this.getLimits(),
      devices: [],
      waiting: this.waiting.length,
      running: this.running ? 1 : 0,
      waitingByClass: { training: 0, inference: 0, preprocessing: this.waiting.length },
      runningOn: { cpu: this.running ? [{ id: this.running.id, cls: this.running.cls, memGb: null }] : [] },
    };
  }
}

describe('the queue seam', () => {
  it('TaskService schedules through any TaskQueue: its order, its waiting info, its snapshot', async () => {
    const gates = new Gates();
    const fifo = new FifoQueue();
    const svc = await startService(tmpDir(), {
      extraJobs: [gates.job('gate', 'preprocessing', 'gate')],
      queue: () => fifo,
    });
    // Priorities would run q3 and q4 before q2; this queue runs them as they came.
    await svc.service.submit('gate', { task_id: 'q1', priority: 9 });
    await waitFor(() => gates.isRunning('q1'));
    await svc.service.submit('gate', { task_id: 'q2', priority: 9 });
    await svc.service.submit('gate', { task_id: 'q3', priority: 1 });
    await svc.service.submit('gate', { task_id: 'q4', priority: 1 });
    const q3 = await svc.service.get('q3');
    assert.equal(q3.queue_position, 2);
    assert.equal(q3.pending_reason, 'first come, first served');
    const health = JSON.parse((await svc.app.inject({ url: '/api/v1/health' })).body);
    assert.equal(health.resource_status.queue_length, 3);
    assert.deepEqual(health.resource_status.device_usage, {
      cpu: { training: 0, inference: 0, preprocessing: 1 },
    });
    const resources = JSON.parse((await svc.app.inject({ url: '/api/v2/resources' })).body);
    assert.deepEqual(resources.active_tasks, { cpu: [{ id: 'q1', type: 'preprocessing' }] });

    await svc.service.cancel('q4');
    for (const id of ['q1', 'q2', 'q3']) {
      await waitFor(() => gates.isRunning(id), 10_000, `${id} running`);
      gates.release(id);
    }
    await waitFor(async () => (await svc.service.get('q3')).status === 'completed');
    assert.deepEqual(
      gates.started.map((s) => s.id),
      ['q1', 'q2', 'q3'],
    );
    assert.equal((await svc.service.get('q4')).status, 'cancelled');
    assert.deepEqual(
      fifo.calls.filter((c) => !c.startsWith('add')),
      ['claim q1', 'release q1', 'claim q2', 'release q2', 'claim q3', 'release q3'],
    );
  });

  it('LocalQueue hands out copies: changing a snapshot or the limits it gave changes nothing', async () => {
    const cpu: DeviceInfo = {
      id: 'cpu',
      kind: 'cpu',
      index: null,
      name: 'cpu',
      totalMemoryGb: null,
      freeMemoryGb: null,
    };
    const q = new LocalQueue({ devices: [cpu], agingIntervalMs: 0 });
    q.setLimits({ cpu: { training: 1, inference: 1, preprocessing: 1 } });
    q.add([
      { id: 'a', cls: 'preprocessing', request: 'cpu', memGb: null, priority: 5, enqueuedAt: 1 },
      { id: 'b', cls: 'preprocessing', request: 'cpu', memGb: null, priority: 5, enqueuedAt: 2 },
    ]);
    const placed = await q.claim();
    assert.deepEqual(
      placed.map((p) => [p.id, p.device]),
      [['a', 'cpu']],
    );
    const snap = q.snapshot();
    assert.equal(snap.running, 1);
    assert.equal(snap.waiting, 1);
    snap.limits.cpu!.preprocessing = 99;
    (snap.usage.cpu as Record<string, number>).preprocessing = 42;
    assert.equal(q.getLimits().cpu?.preprocessing, 1);
    assert.equal(q.snapshot().usage.cpu?.preprocessing, 1);
    assert.equal(q.waitingInfo('b', 0)?.position, 1);
    q.release('a');
    assert.deepEqual(
      (await q.claim()).map((p) => p.id),
      ['b'],
    );
  });
});
