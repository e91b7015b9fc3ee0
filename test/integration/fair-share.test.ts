/**
 * Fair share through the real service (issue 16): named users with real tokens, two fake GPUs
 * (a fake nvidia-smi), tasks that run until the test ends them; who runs what, the pending reason,
 * the running quota, and the ledger kept across a restart.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createService } from '../../src/main.js';
import pino from 'pino';
import { Gates } from '../gate-job.js';
import { fakeNvidiaSmi, testConfig, tmpDir, waitFor } from '../helpers.js';

const GB = 1024;

async function gpuService(dir: string, env: Record<string, string> = {}) {
  const smi = fakeNvidiaSmi(dir, [{ totalMiB: 24 * GB }, { totalMiB: 24 * GB }]);
  const gates = new Gates();
  const svc = await createService({
    config: testConfig(dir, {
      RFUAV_NVIDIA_SMI: smi.path,
      RFUAV_GPU_REFRESH_S: '3600',
      RFUAV_API_TOKENS: 'alice:tok-a,bob:tok-b,carol:tok-c',
      RFUAV_LIMITS: '{"gpu":{"training":1}}',
      ...env,
    }),
    extraJobs: [gates.job('gate', 'training', 'gate')],
    logger: pino({ level: process.env.FS_LOG ?? 'silent' }),
  });
  const url = await svc.listen();
  // Cleanup even when an assertion fails (closing waits for running work: release it first).
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await svc.service.changeLimits({ gpu: { training: 0 } });
    for (const s of gates.started) gates.release(s.id);
    await svc.close();
  };
  after(close);
  const call = async (token: string, route: string, body?: unknown) => {
    const res = await fetch(`${url}${route}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  const submit = async (token: string) =>
    String((await call(token, '/api/v2/gate/gate', { device: 'cuda' })).task_id);
  return { svc, gates, call, submit, close };
}

/** Ends the running tasks, oldest first, one every `ms`, until `n` have ended. */
async function runDown(gates: Gates, n: number, ms: number): Promise<string[]> {
  const ended: string[] = [];
  while (ended.length < n) {
    const running = gates.started.filter((s) => gates.isRunning(s.id));
    const oldest = running[0];
    if (!oldest) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    await new Promise((r) => setTimeout(r, ms));
    gates.release(oldest.id);
    ended.push(oldest.id);
  }
  return ended;
}

describe('fair share through the service', () => {
  it('two users flooding two GPUs share them; a late third user goes next; the reason says why', async () => {
    const dir = tmpDir();
    // Nothing runs until every task is in: each task then runs about as long as any other.
    const { svc, gates, call, submit } = await gpuService(dir, { RFUAV_LIMITS: '{"gpu":{"training":0}}' });
    for (let i = 0; i < 30; i++) await submit('tok-a');
    for (let i = 0; i < 30; i++) await submit('tok-b');
    await call('tok-c', '/api/v2/resources/config', { max_concurrent: { gpu: { training: 1 } } });
    await waitFor(() => gates.started.length === 2, 5000, 'both GPUs busy');
    await runDown(gates, 20, 20);
    // Of the first 22 to start (2 at once, then one per ended task): 11 ± 2 each.
    await waitFor(() => gates.started.length >= 22, 5000, '22 starts');
    const first = gates.started.slice(0, 22);
    const owners = await Promise.all(first.map(async (s) => (await svc.service.getRecord(s.id)).owner));
    const alice = owners.filter((o) => o === 'alice').length;
    assert.ok(Math.abs(alice - 11) <= 2, `alice ran ${alice} of 22`);
    // Both GPUs busy again (the last end's start has happened), then carol comes.
    await waitFor(() => gates.started.filter((g) => gates.isRunning(g.id)).length === 2, 5000, 'both busy');
    const late = await submit('tok-c');
    const before = gates.started.length;
    await runDown(gates, 1, 20);
    await waitFor(() => gates.started.length > before, 5000, 'the next start');
    assert.equal(gates.started[before]?.id, late, "carol's task, submitted last, started next");
    // A task of the heavier user says fair share holds it back.
    const users = (await call('tok-c', '/api/v2/users')) as { users: { name: string; usage: number }[] };
    const heavier = users.users.filter((u) => u.name !== 'carol').sort((a, b) => b.usage - a.usage)[0]?.name;
    const waiting = (await call(
      heavier === 'alice' ? 'tok-a' : 'tok-b',
      '/api/v2/tasks?owner=me&status=queued',
    )) as {
      other_tasks: { pending_reason?: string }[];
    };
    assert.ok(
      waiting.other_tasks.some((t) =>
        /has used \d+\.\d× their share recently/.test(t.pending_reason ?? ''),
      ) || waiting.other_tasks.some((t) => /earlier tasks? .*same needs/.test(t.pending_reason ?? '')),
      JSON.stringify(waiting.other_tasks.slice(0, 3)),
    );
  });

  it('a running quota holds a user to it while the other GPU serves someone else; the ledger survives a restart', async () => {
    const dir = tmpDir();
    const env = { RFUAV_QUOTAS: '{"running":{"training":1}}' };
    const first = await gpuService(dir, env);
    const a1 = await first.submit('tok-a');
    const a2 = await first.submit('tok-a');
    const b1 = await first.submit('tok-b');
    await waitFor(() => first.gates.started.length === 2, 5000, 'two starts');
    assert.deepEqual(first.gates.started.map((s) => s.id).sort(), [a1, b1].sort());
    const waiting = (await first.call('tok-a', `/api/v2/tasks/${a2}`)) as { pending_reason: string };
    assert.match(waiting.pending_reason, /alice has 1 training task\(s\) running, their quota \(1\)/);
    await new Promise((r) => setTimeout(r, 300));
    first.gates.release(a1);
    await waitFor(() => first.gates.isRunning(a2), 5000, "alice's second task");
    first.gates.release(a2);
    first.gates.release(b1);
    await waitFor(
      async () => ((await first.call('tok-a', '/api/v2/users/me')).running as number) === 0,
      5000,
      'all ended',
    );
    const usage = (await first.call('tok-a', '/api/v2/users/me')).usage as number;
    assert.ok(usage > 0.2, `alice used ${usage} GPU seconds`);
    await first.close();
    const second = await gpuService(dir, env);
    const again = (await second.call('tok-a', '/api/v2/users/me')).usage as number;
    assert.ok(Math.abs(again - usage) / usage < 0.01, `${again} after the restart, ${usage} before`);
  });

  it("a spent GPU-hours budget, counted from the stored runs, holds the user's next GPU task back", async () => {
    // 0.0002 GPU-hours = 0.72 s.
    const { svc, gates, call, submit } = await gpuService(tmpDir(), {
      RFUAV_QUOTAS: '{"gpu_hours_per_day":0.0002}',
    });
    const first = await submit('tok-a');
    await waitFor(() => gates.isRunning(first), 5000, "alice's first task");
    await new Promise((r) => setTimeout(r, 1000));
    gates.release(first);
    await waitFor(
      async () => ((await call('tok-a', '/api/v2/users/me')).running as number) === 0,
      5000,
      'it ended',
    );
    await svc.service.team.saveUsage();
    const next = await submit('tok-a');
    const bobs = await submit('tok-b');
    await waitFor(() => gates.isRunning(bobs), 5000, "bob's task");
    const waiting = (await call('tok-a', `/api/v2/tasks/${next}`)) as {
      status: string;
      pending_reason: string;
    };
    assert.equal(waiting.status, 'queued');
    assert.match(
      waiting.pending_reason,
      /alice has used 0\.000\d+ of their 0\.0002 GPU-hours in the last 24 h/,
    );
  });
});
