import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gates } from '../gate-job.js';
import { fakeNvidiaSmi, startService, tmpDir, waitFor, type FakeGpu } from '../helpers.js';

const GB = 1024;

async function gpuService(gpus: FakeGpu[], env: Record<string, string> = {}) {
  const dir = tmpDir();
  const smi = fakeNvidiaSmi(dir, gpus);
  const gates = new Gates();
  const svc = await startService(dir, {
    env: { RFUAV_NVIDIA_SMI: smi.path, RFUAV_GPU_REFRESH_S: '3600', ...env },
    extraJobs: [gates.job('train_gate', 'training'), gates.job('infer_gate', 'inference')],
  });
  const submit = (kind: string, body: Record<string, unknown>) => svc.service.submit(kind, body);
  const task = (id: string) => svc.service.get(id);
  return { svc, gates, smi, submit, task };
}

describe('scheduling on devices (fake nvidia-smi)', () => {
  it("spreads 'cuda' training over two GPUs, then keeps the third waiting with a plain reason", async () => {
    const { gates, submit, task } = await gpuService([{ totalMiB: 24 * GB }, { totalMiB: 24 * GB }]);
    for (const id of ['t1', 't2', 't3']) await submit('train_gate', { task_id: id, device: 'cuda' });
    await waitFor(() => gates.started.length === 2);
    assert.deepEqual(gates.started.map((s) => s.device).sort(), ['cuda:0', 'cuda:1']);
    const t3 = await waitFor(async () => ((await task('t3')).status === 'queued' ? task('t3') : null));
    assert.match(
      t3.pending_reason ?? '',
      /waiting for a training slot on any GPU \(cuda:0 1\/1 in use, held by task t\d; cuda:1 1\/1 in use/,
    );
    assert.equal((await task('t1')).device, gates.started.find((s) => s.id === 't1')?.device);
    gates.release('t2');
    await waitFor(() => gates.isRunning('t3'));
    assert.equal(
      gates.started.find((s) => s.id === 't3')?.device,
      gates.started.find((s) => s.id === 't2')?.device,
    );
  });

  it("honours 'cuda:N', rejects it out of range at submission, and never double-books a training GPU", async () => {
    const { gates, submit, task } = await gpuService([{ totalMiB: 8 * GB }, { totalMiB: 8 * GB }]);
    await assert.rejects(
      submit('train_gate', { device: 'cuda:2' }),
      /device: cuda:2 is out of range: this node has 2 GPUs/,
    );
    await submit('train_gate', { task_id: 'a', device: 'cuda:1' });
    await submit('train_gate', { task_id: 'b', device: 'cuda:1' });
    await submit('train_gate', { task_id: 'c', device: 'cuda:0' });
    await waitFor(() => gates.started.length === 2);
    assert.deepEqual(gates.started.map((s) => `${s.id}@${s.device}`).sort(), ['a@cuda:1', 'c@cuda:0']);
    const b = await waitFor(async () => ((await task('b')).status === 'queued' ? task('b') : null));
    assert.match(b.pending_reason ?? '', /training slot on cuda:1 \(cuda:1 1\/1 in use, held by task a\)/);
  });

  it('places inference by load then free memory on four GPUs, three per GPU at most', async () => {
    const { gates, submit } = await gpuService([
      { totalMiB: 16 * GB, usedMiB: 8 * GB },
      { totalMiB: 16 * GB },
      { totalMiB: 16 * GB, usedMiB: 2 * GB },
      { totalMiB: 16 * GB, usedMiB: 4 * GB },
    ]);
    for (let i = 0; i < 14; i++) await submit('infer_gate', { task_id: `i${i}`, device: 'cuda' });
    await waitFor(() => gates.started.length === 12);
    const per: Record<string, number> = {};
    for (const s of gates.started) per[s.device] = (per[s.device] ?? 0) + 1;
    assert.deepEqual(per, { 'cuda:0': 3, 'cuda:1': 3, 'cuda:2': 3, 'cuda:3': 3 });
    // the first four went to four different GPUs, most free memory first
    assert.deepEqual(
      gates.started.slice(0, 4).map((s) => s.device),
      ['cuda:1', 'cuda:2', 'cuda:3', 'cuda:0'],
    );
  });

  it('keeps a task that states gpu_memory_gb waiting until a GPU reports enough free memory', async () => {
    const { svc, gates, smi, submit, task } = await gpuService([
      { totalMiB: 24 * GB, usedMiB: 20 * GB },
      { totalMiB: 24 * GB, usedMiB: 16 * GB },
    ]);
    await assert.rejects(
      submit('infer_gate', { device: 'cuda', gpu_memory_gb: 30 }),
      /gpu_memory_gb: 30 GB can never fit/,
    );
    await submit('infer_gate', { task_id: 'big', device: 'cuda', gpu_memory_gb: 18 });
    await submit('infer_gate', { task_id: 'small', device: 'cuda', gpu_memory_gb: 6 });
    await waitFor(() => gates.isRunning('small'));
    assert.equal(gates.started.find((s) => s.id === 'small')?.device, 'cuda:1');
    const big = await waitFor(async () => ((await task('big')).status === 'queued' ? task('big') : null));
    assert.equal(big.pending_reason, 'no GPU has 18 GB free (most free: cuda:0 with 4 GB)');
    smi.set([
      { totalMiB: 24 * GB, usedMiB: 2 * GB },
      { totalMiB: 24 * GB, usedMiB: 16 * GB },
    ]);
    // Reading /gpu re-reads the driver; a change wakes the scheduler.
    const refreshed = await svc.app.inject({ url: '/api/v2/resources/gpu' });
    assert.equal(JSON.parse(refreshed.body).devices[0].free_memory_gb, 22);
    await waitFor(() => gates.isRunning('big'), 3000, 'big to start after memory freed');
    assert.equal(gates.started.find((s) => s.id === 'big')?.device, 'cuda:0');
  });

  it("reports GPUs in the reference's /gpu shape with the tasks on each", async () => {
    const { svc, gates, submit } = await gpuService([{ totalMiB: 12 * GB, usedMiB: 1 * GB, util: 37 }]);
    await submit('infer_gate', { task_id: 'on-gpu', device: 'cuda:0', gpu_memory_gb: 2 });
    await waitFor(() => gates.isRunning('on-gpu'));
    const gpu = JSON.parse((await svc.app.inject({ url: '/api/v2/resources/gpu' })).body);
    assert.equal(gpu.available, true);
    assert.equal(gpu.count, 1);
    assert.deepEqual(gpu.devices[0], {
      id: 0,
      device_name: 'cuda:0',
      name: 'NVIDIA Fake 0',
      compute_capability: '8.0',
      total_memory_gb: 12,
      allocated_memory_gb: 1,
      cached_memory_gb: 1,
      used_memory_gb: 1,
      free_memory_gb: 11,
      utilization: 37,
      current_tasks: { training: 0, inference: 1 },
      running_tasks: [{ id: 'on-gpu', type: 'inference', gpu_memory_gb: 2 }],
    });
    // The runner's interpreter is Debian's CPU build of torch: a version, no CUDA.
    assert.match(gpu.pytorch_version, /^\d+\.\d+/);
    assert.equal(gpu.cuda_version, null);
    const res = JSON.parse((await svc.app.inject({ url: '/api/v2/resources' })).body);
    assert.deepEqual(res.gpu_info.devices, gpu.devices);
    assert.deepEqual(res.active_tasks['cuda:0'], [{ id: 'on-gpu', type: 'inference' }]);
    assert.deepEqual(res.limits['cuda:0'], { training: 1, inference: 3, preprocessing: 0 });
    const info = JSON.parse((await svc.app.inject({ url: '/api/v1/info' })).body);
    assert.equal(info.gpu_available, true);
  });

  it('finds GPUs on a driver too old for compute_cap, and reads memory use as utilization', async () => {
    const { svc } = await gpuService([{ totalMiB: 8 * GB, usedMiB: 2 * GB, util: null, computeCap: null }]);
    const gpu = JSON.parse((await svc.app.inject({ url: '/api/v2/resources/gpu' })).body);
    assert.equal(gpu.count, 1);
    assert.equal(gpu.devices[0].compute_capability, null);
    assert.equal(gpu.devices[0].total_memory_gb, 8);
    assert.equal(gpu.devices[0].utilization, 25, 'no utilization.gpu: the share of memory in use');
  });

  it("'auto' takes a free GPU, else the CPU", async () => {
    const { gates, submit } = await gpuService([{ totalMiB: 8 * GB }]);
    await submit('train_gate', { task_id: 'x1', device: 'auto' });
    await submit('train_gate', { task_id: 'x2', device: 'auto' });
    await waitFor(() => gates.started.length === 2);
    assert.deepEqual(
      gates.started.map((s) => s.device),
      ['cuda:0', 'cpu'],
    );
  });
});

describe('scheduling without GPUs', () => {
  it("runs 'cuda' work on the CPU and says so in the log", async () => {
    const dir = tmpDir();
    const gates = new Gates();
    const svc = await startService(dir, { extraJobs: [gates.job('train_gate', 'training')] });
    const t = await svc.service.submit('train_gate', { task_id: 'fb', device: 'cuda' });
    assert.equal(t.device_request, 'cuda');
    await waitFor(() => gates.isRunning('fb'));
    assert.equal((await svc.service.get('fb')).device, 'cpu');
    const logs = await svc.store.readLogs('fb', 0, 20);
    assert.ok(logs.some((l) => l.level === 'WARNING' && /no GPU: the task will run on cpu/.test(l.message)));
    await assert.rejects(
      svc.service.submit('train_gate', { device: 'cuda:0' }),
      /cuda:0 is out of range: this node has 0 GPUs/,
    );
  });

  it('rejects cuda at submission when configured to', async () => {
    const dir = tmpDir();
    const gates = new Gates();
    const svc = await startService(dir, {
      env: { RFUAV_CUDA_FALLBACK: 'reject' },
      extraJobs: [gates.job('train_gate', 'training')],
    });
    await assert.rejects(
      svc.service.submit('train_gate', { device: 'cuda' }),
      /device: 'cuda' was requested but this node has no GPU/,
    );
    await svc.service.submit('train_gate', { task_id: 'on-cpu', device: 'cpu' });
    await waitFor(() => gates.isRunning('on-cpu'));
  });

  it('frees a cancelled task’s slot only after its work has stopped', async () => {
    const dir = tmpDir();
    const gates = new Gates();
    gates.stopDelayMs = 400;
    const svc = await startService(dir, {
      env: { RFUAV_LIMITS: '{"cpu":{"training":1}}' },
      extraJobs: [gates.job('train_gate', 'training')],
    });
    await svc.service.submit('train_gate', { task_id: 'slow-stop', device: 'cpu' });
    await svc.service.submit('train_gate', { task_id: 'next', device: 'cpu' });
    await waitFor(() => gates.isRunning('slow-stop'));
    const cancel = svc.service.cancel('slow-stop');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      gates.isRunning('next'),
      false,
      'the next task started while the cancelled work was still running',
    );
    assert.equal((await svc.service.get('slow-stop')).status, 'running');
    assert.equal((await cancel).message, 'Task cancelled');
    assert.equal((await svc.service.get('slow-stop')).status, 'cancelled');
    await waitFor(() => gates.isRunning('next'), 2000, 'next to start');
    const stoppedAt = Date.parse((await svc.service.get('slow-stop')).finished_at as string);
    const nextAt = Date.parse((await svc.service.get('next')).started_at as string);
    assert.ok(nextAt >= stoppedAt);
  });

  it('starts the next waiting task as soon as a slot frees (event-driven, no polling interval)', async () => {
    const dir = tmpDir();
    const gates = new Gates();
    const svc = await startService(dir, {
      env: { RFUAV_LIMITS: '{"cpu":{"training":1}}' },
      extraJobs: [gates.job('train_gate', 'training')],
    });
    for (let i = 0; i < 5; i++) await svc.service.submit('train_gate', { task_id: `q${i}`, device: 'cpu' });
    for (let i = 0; i < 5; i++) {
      await waitFor(() => gates.isRunning(`q${i}`), 2000);
      for (let j = i + 1; j < 5; j++) {
        assert.equal((await svc.service.get(`q${j}`)).queue_position, j - i);
      }
      gates.release(`q${i}`);
    }
    const done = await waitFor(async () =>
      (await svc.service.get('q4')).status === 'completed' ? true : null,
    );
    assert.ok(done);
    // the scheduler's own measure: every start followed its triggering event within 50 ms
    const metrics = (await svc.app.inject({ url: '/metrics' })).body;
    const count = Number(/rfuav_dispatch_latency_seconds_count (\d+)/.exec(metrics)?.[1]);
    const under50 = Number(/rfuav_dispatch_latency_seconds_bucket\{le="0.05"\} (\d+)/.exec(metrics)?.[1]);
    assert.equal(count, 5);
    assert.equal(under50, 5);
  });

  it('a cancel that races the end of the work answers consistently with the final status', async () => {
    const dir = tmpDir();
    const gates = new Gates();
    const svc = await startService(dir, { extraJobs: [gates.job('train_gate', 'training')] });
    for (let i = 0; i < 10; i++) {
      const id = `race${i}`;
      await svc.service.submit('train_gate', { task_id: id, device: 'cpu' });
      await waitFor(() => gates.isRunning(id));
      if (i % 2) await new Promise((r) => setImmediate(r));
      gates.release(id);
      const outcome = await svc.service.cancel(id).then(
        (r) => r.message,
        (e: Error) => e.message,
      );
      const final = await waitFor(async () => {
        const t = await svc.service.get(id);
        return t.status === 'completed' || t.status === 'cancelled' ? t.status : null;
      });
      if (final === 'cancelled') assert.equal(outcome, 'Task cancelled');
      else
        assert.match(
          outcome,
          /finished \(completed\) before it could be cancelled|has already finished \(completed\)|is completed and not running/,
        );
    }
  });
});
