/**
 * Fair share and running quotas in the pure scheduler core, on a fake clock and fake GPUs
 * (issue 16): who runs when two users flood the queue, a late third user, decay, the aging bound,
 * priorities within one user, and quotas.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceInfo } from '../../src/domain/devices.js';
import type { Quotas } from '../../src/domain/users.js';
import { SchedulerCore } from '../../src/scheduler/core.js';
import { FairShare, type FairShareOptions } from '../../src/scheduler/fair-share.js';
import { effectiveLimits } from '../../src/scheduler/limits.js';
import type { Placement } from '../../src/scheduler/types.js';

const gpu = (i: number): DeviceInfo => ({
  id: `cuda:${i}`,
  kind: 'gpu',
  index: i,
  name: `Fake GPU ${i}`,
  totalMemoryGb: 24,
  freeMemoryGb: 24,
});
const GPUS = [gpu(0), gpu(1)];
const AGING_MS = 60_000;
const TASK_MS = 10_000;
const HOUR = 3600_000;

function setup(opts: Partial<FairShareOptions> = {}, quotas: Record<string, Quotas> = {}) {
  const fairShare = new FairShare({
    halfLifeMs: 24 * HOUR,
    steps: 10,
    gpuWeight: 1,
    cpuWeight: 0.1,
    ...opts,
  });
  // One training task per GPU at a time.
  const limits = effectiveLimits(GPUS, { gpu: { training: 1 } });
  const core = new SchedulerCore({
    devices: GPUS,
    limits,
    agingIntervalMs: AGING_MS,
    fairShare,
    quotas: (o) => quotas[o],
  });
  let n = 0;
  const submit = (owner: string, at: number, priority = 5) => {
    const id = `${owner}-${++n}`;
    core.enqueue({ id, cls: 'training', request: 'cuda', memGb: null, priority, enqueuedAt: at, owner });
    return id;
  };
  return { core, fairShare, submit };
}

/** Runs the core on a fake clock: every task takes TASK_MS; `onTick` may submit more. */
function simulate(
  core: SchedulerCore,
  until: (started: (Placement & { at: number })[]) => boolean,
  onTick: (now: number) => void = () => {},
  start = 0,
) {
  const started: (Placement & { at: number })[] = [];
  const ends: { id: string; at: number }[] = [];
  let now = start;
  for (let guard = 0; guard < 100_000 && !until(started); guard++) {
    onTick(now);
    for (const p of core.dispatch(now)) {
      started.push({ ...p, at: now });
      ends.push({ id: p.id, at: now + TASK_MS });
    }
    ends.sort((a, b) => a.at - b.at);
    const next = ends.shift();
    if (!next) break;
    now = next.at;
    core.release(next.id, now);
  }
  return started;
}

describe('fair share in the scheduler core', () => {
  it('two users flooding 2 GPUs with 100 tasks each get 20 ± 2 of the first 40 runs, whoever came first', () => {
    const { core, submit } = setup();
    for (let i = 0; i < 100; i++) submit('alice', i);
    for (let i = 0; i < 100; i++) submit('bob', 1000 + i);
    let finished = 0;
    const started = simulate(core, (s) => {
      finished = Math.max(0, s.length - 2);
      return finished >= 40;
    });
    const firstForty = started.slice(0, 40);
    const alice = firstForty.filter((p) => p.owner === 'alice').length;
    assert.ok(Math.abs(alice - 20) <= 2, `alice ran ${alice} of 40`);
  });

  it("a third user's single task, submitted late, starts next", () => {
    const { core, submit } = setup();
    for (let i = 0; i < 100; i++) submit('alice', i);
    for (let i = 0; i < 100; i++) submit('bob', 1000 + i);
    let carol = '';
    let lateAt = 0;
    const started = simulate(
      core,
      (s) => s.some((p) => p.id === carol),
      (now) => {
        if (!carol && now >= 20 * TASK_MS) {
          carol = submit('carol', now);
          lateAt = now;
        }
      },
    );
    const c = started.find((p) => p.id === carol) as Placement & { at: number };
    assert.equal(c.at, lateAt, 'at the first free slot after it was submitted');
    assert.ok(started.filter((p) => p.at === lateAt).length <= 2);
  });

  it('usage halves after one half-life (± 1 %)', () => {
    const fs = new FairShare({ halfLifeMs: 24 * HOUR, steps: 10, gpuWeight: 1, cpuWeight: 0.1 });
    fs.charge('alice', 3600, true, 0);
    fs.charge('bob', 3600, false, 0);
    assert.equal(fs.usageOf('alice', 0), 3600);
    assert.equal(fs.usageOf('bob', 0), 360, 'a CPU second weighs 0.1 GPU second');
    const half = fs.usageOf('alice', 24 * HOUR);
    assert.ok(Math.abs(half - 1800) <= 18, String(half));
    assert.ok(Math.abs(fs.usageOf('alice', 48 * HOUR) - 900) <= 9);
    // What is handed to the store, loaded back (a restart, or another node), decays the same.
    const copy = new FairShare(fs.opts);
    copy.load(fs.takeUnsaved().map((c) => ({ user: c.user, usage: c.amount, at: 0 })));
    assert.ok(Math.abs(copy.usageOf('alice', 24 * HOUR) - half) < 1e-6);
  });

  it('nothing starves: a heavy user’s task starts within the aging bound plus one task duration', () => {
    const { core, fairShare, submit } = setup();
    fairShare.charge('alice', 100 * HOUR, true, 0);
    // Bob keeps both GPUs busy for ever: two new tasks per task duration, as fast as they run.
    let next = 0;
    let waiting = '';
    const started = simulate(
      core,
      (s) => s.some((p) => p.id === waiting),
      (now) => {
        while (next <= now) {
          submit('bob', next);
          next += TASK_MS / 2;
        }
        if (!waiting && now >= 5 * TASK_MS) waiting = submit('alice', now);
      },
    );
    const a = started.find((p) => p.id === waiting) as Placement & { at: number };
    const bound = 10 * AGING_MS + TASK_MS;
    assert.ok(a.at - a.enqueuedAt <= bound, `waited ${a.at - a.enqueuedAt} ms, bound ${bound}`);
    assert.ok(a.at - a.enqueuedAt > TASK_MS, 'fair share did hold it back');
  });

  it("priority still orders one user's own tasks; the pending reason names fair share", () => {
    const { core, fairShare, submit } = setup();
    fairShare.charge('alice', 10 * HOUR, true, 0);
    fairShare.charge('bob', 1 * HOUR, true, 0);
    const low = submit('alice', 0, 8);
    const high = submit('alice', 1, 2);
    const bobs = [submit('bob', 2), submit('bob', 3), submit('bob', 4)];
    // Fair share (about 7 steps for alice, 1 for bob) outweighs alice's 3 steps of priority…
    assert.deepEqual(
      core.dispatch(5).map((p) => p.id),
      [bobs[0], bobs[1]],
    );
    assert.match(
      core.pendingReason(high) ?? '',
      /alice has used 1\.8× their share recently; 1 task of others goes first/,
    );
    assert.ok((core.queuePosition(low) as number) > (core.queuePosition(bobs[2] as string) as number));
    // …but among her own tasks, priority decides: the urgent one, submitted later, runs first.
    for (const id of [bobs[0], bobs[1]]) core.release(id as string, 5 + TASK_MS);
    const started = simulate(
      core,
      (s) => s.length === 3,
      () => {},
      5 + TASK_MS,
    ).map((p) => p.id);
    assert.deepEqual(started, [bobs[2], high, low]);
  });

  it('running quotas: a user at their quota waits while others use the free GPU', () => {
    const { core, submit } = setup({}, { alice: { running: { training: 1 } } });
    const a1 = submit('alice', 0);
    const a2 = submit('alice', 1);
    const b1 = submit('bob', 2);
    const placed = core.dispatch(3).map((p) => p.id);
    assert.deepEqual(placed.sort(), [a1, b1].sort());
    assert.match(core.pendingReason(a2) ?? '', /alice has 1 training task\(s\) running, their quota \(1\)/);
    core.release(a1, TASK_MS);
    assert.deepEqual(
      core.dispatch(TASK_MS).map((p) => p.id),
      [a2],
    );
  });

  it('a spent GPU-hours budget holds GPU tasks back (naming it); an auto task takes the CPU; others go on', () => {
    const cpu: DeviceInfo = {
      id: 'cpu',
      kind: 'cpu',
      index: null,
      name: 'cpu',
      totalMemoryGb: null,
      freeMemoryGb: null,
    };
    const devices = [...GPUS, cpu];
    const fairShare = new FairShare({ halfLifeMs: 24 * HOUR, steps: 10, gpuWeight: 1, cpuWeight: 0.1 });
    const quotas: Record<string, Quotas> = { alice: { gpu_hours_per_day: 1 } };
    const core = new SchedulerCore({
      devices,
      limits: effectiveLimits(devices, { gpu: { training: 1 }, cpu: { training: 1 } }),
      agingIntervalMs: AGING_MS,
      fairShare,
      quotas: (o) => quotas[o],
    });
    fairShare.setGpuDay([{ owner: 'alice', seconds: 2 * 3600 }]);
    const add = (id: string, owner: string, request: string, at: number) =>
      core.enqueue({ id, cls: 'training', request, memGb: null, priority: 5, enqueuedAt: at, owner });
    add('a-gpu', 'alice', 'cuda', 0);
    add('a-auto', 'alice', 'auto', 1);
    add('b-gpu', 'bob', 'cuda', 2);
    const placed = core
      .dispatch(3)
      .map((p) => `${p.id}@${p.device}`)
      .sort();
    assert.deepEqual(placed, ['a-auto@cpu', 'b-gpu@cuda:0']);
    assert.match(
      core.pendingReason('a-gpu') ?? '',
      /alice has used 2\.00 of their 1 GPU-hours in the last 24 h/,
    );
    // Older use leaves the window: her GPU task may start.
    fairShare.setGpuDay([{ owner: 'alice', seconds: 1800 }]);
    assert.deepEqual(
      core.dispatch(4).map((p) => `${p.id}@${p.device}`),
      ['a-gpu@cuda:1'],
    );
  });
});
