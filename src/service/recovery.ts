import type { TaskStatus } from '../domain/task.js';
import type { JobRegistry } from '../jobs/job.js';
import type { TaskQueue } from '../scheduler/queue.js';
import type { QueueEntry } from '../scheduler/types.js';
import type { Store } from '../store/store.js';
import { resolveDeviceRequest, type NodeGpus } from './device-request.js';
import type { TaskLogger } from './run-context.js';
import type { TaskCounts } from './task-counts.js';

export interface RecoveryDeps {
  store: Store;
  registry: JobRegistry;
  queue: TaskQueue;
  counts: TaskCounts;
  node: NodeGpus;
  log: TaskLogger;
  iso: () => string;
}

/**
 * After a start (a crash or a stop before it): every unfinished task in the store goes back into
 * the queue. A task the store still calls running was interrupted: it is re-queued, and its log
 * says which attempt on which device was cut short (training resumes from its checkpoint when it
 * runs again). A task this node can no longer run (its kind is gone, its GPU is gone) fails with
 * the reason. Pending tasks (accepted by another node, none queued yet) are queued here.
 */
export async function recoverUnfinished(d: RecoveryDeps): Promise<void> {
  const entries: QueueEntry[] = [];
  const pending: string[] = [];
  for (const t of await d.store.listUnfinished()) {
    let status: TaskStatus = t.status;
    if (t.status === 'running') {
      const requeued = await d.store.updateTask(
        t.task_id,
        { status: 'queued', message: 're-queued after a restart', device: null },
        ['running'],
      );
      if (!requeued) continue;
      status = 'queued';
      d.counts.bump(t.task_type, 'running', 'queued');
      d.log(
        t.task_id,
        `The service stopped while this task was running (attempt ${t.attempts} on ${t.device ?? 'unknown device'}); re-queued to run again`,
        'WARNING',
      );
    }
    const def = d.registry.get(t.task_type);
    try {
      if (!def) throw new Error(`task kind '${t.task_type}' is not available on this node`);
      // Notes (e.g. the CPU fallback) were logged at acceptance; not again on every restart.
      const placement = resolveDeviceRequest(
        def.resourceClass,
        t.device_request ?? undefined,
        t.gpu_memory_gb,
        d.node,
        [],
      );
      entries.push({
        id: t.task_id,
        cls: def.resourceClass,
        request: placement.request,
        memGb: placement.memGb,
        priority: t.priority,
        enqueuedAt: Date.parse(t.enqueued_at),
        owner: t.owner ?? undefined,
      });
      if (status === 'pending') pending.push(t.task_id);
    } catch (err) {
      await failUnrunnable(
        d,
        t.task_id,
        t.task_type,
        status,
        err instanceof Error ? err.message : String(err),
      );
    }
  }
  d.queue.add(entries);
  for (const id of pending) {
    const t = await d.store.updateTask(id, { status: 'queued', message: 'waiting for a slot' }, ['pending']);
    if (t) d.counts.bump(t.task_type, 'pending', 'queued');
  }
}

async function failUnrunnable(d: RecoveryDeps, id: string, kind: string, status: TaskStatus, msg: string) {
  const failed = await d.store.updateTask(
    id,
    { status: 'failed', message: 'failed', error: `cannot run after restart: ${msg}`, finished_at: d.iso() },
    ['pending', 'queued'],
  );
  if (failed) {
    d.counts.bump(kind, status, 'failed');
    d.log(id, `Cannot run after restart: ${msg}`, 'ERROR');
  }
}
