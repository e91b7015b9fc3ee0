import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RESOURCE_CLASSES, type ResourceClass } from '../../src/domain/task.js';
import { SchedulerCore } from '../../src/scheduler/core.js';
import { effectiveLimits } from '../../src/scheduler/limits.js';
import type { DeviceInfo } from '../../src/domain/devices.js';
import type { Placement } from '../../src/scheduler/types.js';
import { mulberry32 } from '../../src/util/random.js';

const cpu: DeviceInfo = {
  id: 'cpu',
  kind: 'cpu',
  index: null,
  name: 'cpu',
  totalMemoryGb: null,
  freeMemoryGb: null,
};
const gpu = (i: number, totalGb = 24, freeGb = totalGb): DeviceInfo => ({
  id: `cuda:${i}`,
  kind: 'gpu',
  index: i,
  name: `Fake GPU ${i}`,
  totalMemoryGb: totalGb,
  freeMemoryGb: freeGb,
});

function core(devices: DeviceInfo[], agingIntervalMs = 0, limits = effectiveLimits(devices)) {
  return new SchedulerCore({ devices, limits, agingIntervalMs });
}

let n = 0;
function entry(
  cls: ResourceClass,
  request: string,
  opts: { priority?: number; at?: number; memGb?: number | null; id?: string } = {},
) {
  return {
    id: opts.id ?? `t${++n}`,
    cls,
    request,
    memGb: opts.memGb ?? null,
    priority: opts.priority ?? 5,
    enqueuedAt: opts.at ?? 0,
  };
}

describe('scheduler core: ordering', () => {
  it('runs the most urgent (smallest) priority first, equals in submission order', () => {
    const c = core([cpu], 0, { cpu: { training: 1, inference: 0, preprocessing: 0 } });
    c.enqueue(entry('training', 'cpu', { id: 'a', priority: 5 }));
    c.enqueue(entry('training', 'cpu', { id: 'b', priority: 2 }));
    c.enqueue(entry('training', 'cpu', { id: 'c', priority: 5 }));
    c.enqueue(entry('training', 'cpu', { id: 'd', priority: 2 }));
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [p] = c.dispatch();
      assert.ok(p);
      order.push(p.id);
      c.release(p.id);
    }
    assert.deepEqual(order, ['b', 'd', 'a', 'c']);
  });

  it('ages waiting tasks: an old low-priority task overtakes newer urgent ones', () => {
    const step = 1000;
    const c = core([cpu], step, { cpu: { training: 1, inference: 0, preprocessing: 0 } });
    c.enqueue(entry('training', 'cpu', { id: 'blocker', priority: 1, at: 0 }));
    assert.equal(c.dispatch()[0]?.id, 'blocker');
    c.enqueue(entry('training', 'cpu', { id: 'old-low', priority: 10, at: 0 }));
    // priority 1 submitted 8.5 steps later ranks before it; 9.5 steps later ranks after it
    c.enqueue(entry('training', 'cpu', { id: 'urgent-early', priority: 1, at: 8500 }));
    c.enqueue(entry('training', 'cpu', { id: 'urgent-late', priority: 1, at: 9500 }));
    assert.equal(c.queuePosition('urgent-early'), 1);
    assert.equal(c.queuePosition('old-low'), 2);
    assert.equal(c.queuePosition('urgent-late'), 3);
    assert.equal(c.effectivePriority('old-low', 5000), 5);
    assert.equal(c.effectivePriority('old-low', 50_000), 1);
  });

  it('does not block tasks for other devices behind one that cannot be placed (no head-of-line blocking)', () => {
    const c = core([cpu, gpu(0)]);
    c.enqueue(entry('training', 'cuda:0', { id: 'g1', priority: 1 }));
    c.enqueue(entry('training', 'cuda:0', { id: 'g2', priority: 1 }));
    c.enqueue(entry('training', 'cpu', { id: 'c1', priority: 9 }));
    const placed = c.dispatch().map((p) => p.id);
    assert.deepEqual(placed.sort(), ['c1', 'g1']);
    assert.ok(c.isWaiting('g2'));
    assert.match(
      c.pendingReason('g2') ?? '',
      /training slot on cuda:0 \(cuda:0 1\/1 in use, held by task g1\)/,
    );
  });

  it('reports queue positions across lanes and counts earlier tasks with the same needs', () => {
    const c = core([cpu], 0, { cpu: { training: 0, inference: 0, preprocessing: 0 } });
    c.enqueue(entry('training', 'cpu', { id: 'x', priority: 3 }));
    c.enqueue(entry('preprocessing', 'cpu', { id: 'y', priority: 4 }));
    c.enqueue(entry('training', 'cpu', { id: 'z', priority: 5 }));
    c.dispatch();
    assert.deepEqual(
      ['x', 'y', 'z'].map((id) => c.queuePosition(id)),
      [1, 2, 3],
    );
    assert.match(c.pendingReason('z') ?? '', /^1 earlier task with the same needs goes first; .*limit 0/);
  });

  it('removes a waiting task without disturbing the others', () => {
    const c = core([cpu], 0, { cpu: { training: 0, inference: 0, preprocessing: 0 } });
    for (const id of ['a', 'b', 'c']) c.enqueue(entry('training', 'cpu', { id }));
    assert.equal(c.remove('b'), true);
    assert.equal(c.remove('b'), false);
    assert.equal(c.queuePosition('c'), 2);
    assert.equal(c.waitingCount, 2);
  });
});

describe('scheduler core: placement', () => {
  it("'cuda' picks the least-loaded GPU, then the one with most free memory", () => {
    const c = core([cpu, gpu(0, 24, 10), gpu(1, 24, 20), gpu(2, 24, 20)]);
    c.enqueue(entry('inference', 'cuda', { id: 'a' }));
    assert.equal(c.dispatch()[0]?.device, 'cuda:1'); // all idle: most free memory, lowest index on tie
    c.enqueue(entry('inference', 'cuda', { id: 'b' }));
    assert.equal(c.dispatch()[0]?.device, 'cuda:2'); // cuda:1 now has a task
    c.enqueue(entry('inference', 'cuda', { id: 'c' }));
    assert.equal(c.dispatch()[0]?.device, 'cuda:0'); // the only idle GPU, despite less memory
  });

  it("'auto' takes a GPU when one is free and otherwise the CPU", () => {
    const c = core([cpu, gpu(0)]);
    c.enqueue(entry('training', 'auto', { id: 'a' }));
    c.enqueue(entry('training', 'auto', { id: 'b' }));
    c.enqueue(entry('training', 'auto', { id: 'c' }));
    c.enqueue(entry('training', 'auto', { id: 'd' }));
    const placed = c.dispatch();
    assert.deepEqual(
      placed.map((p) => `${p.id}@${p.device}`),
      ['a@cuda:0', 'b@cpu', 'c@cpu'],
    );
    assert.match(c.pendingReason('d') ?? '', /a GPU or the cpu/);
  });

  it('places a task that states gpu_memory_gb only where free memory minus declared use covers it', () => {
    const c = core([cpu, gpu(0, 24, 12), gpu(1, 24, 20)], 0, {
      cpu: { training: 2, inference: 4, preprocessing: 2 },
      'cuda:0': { training: 1, inference: 3, preprocessing: 0 },
      'cuda:1': { training: 1, inference: 3, preprocessing: 0 },
    });
    c.enqueue(entry('inference', 'cuda', { id: 'big', memGb: 15 }));
    assert.equal(c.dispatch()[0]?.device, 'cuda:1');
    c.enqueue(entry('inference', 'cuda', { id: 'big2', memGb: 15 }));
    assert.deepEqual(c.dispatch(), []);
    assert.equal(c.pendingReason('big2'), 'no GPU has 15 GB free (most free: cuda:0 with 12 GB)');
    c.enqueue(entry('inference', 'cuda', { id: 'small', memGb: 4 }));
    assert.equal(c.dispatch()[0]?.device, 'cuda:0'); // less loaded; fits
    c.release('big');
    assert.equal(c.dispatch()[0]?.id, 'big2');
  });

  it('never places on a device that does not exist and says so', () => {
    const c = core([cpu]);
    c.enqueue(entry('training', 'cuda:3', { id: 'x' }));
    assert.deepEqual(c.dispatch(), []);
    assert.equal(c.pendingReason('x'), 'device cuda:3 does not exist on this node');
  });

  it('a raised limit lets waiting work start at the next dispatch; a lowered one never evicts', () => {
    const devices = [cpu];
    const c = core(devices, 0, { cpu: { training: 1, inference: 0, preprocessing: 0 } });
    for (const id of ['a', 'b', 'c']) c.enqueue(entry('training', 'cpu', { id }));
    assert.equal(c.dispatch().length, 1);
    c.setLimits({ cpu: { training: 3, inference: 0, preprocessing: 0 } });
    assert.equal(c.dispatch().length, 2);
    c.setLimits({ cpu: { training: 1, inference: 0, preprocessing: 0 } });
    assert.equal(c.runningCount, 3);
    c.enqueue(entry('training', 'cpu', { id: 'd' }));
    c.release('a');
    assert.deepEqual(c.dispatch(), []); // 2 still running > new limit 1
  });
});

/** Property-style runs: random workloads, checking invariants after every step. */
describe('scheduler core: randomized invariants', () => {
  const requests = ['cpu', 'cuda', 'cuda:0', 'cuda:1', 'auto'];

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}: limits hold, GPU memory is never overbooked, every placement is allowed`, () => {
      const rand = mulberry32(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
      const devices = [cpu, gpu(0, 24, 16), gpu(1, 12, 12)];
      let limits = effectiveLimits(devices);
      const c = core(devices, 1000, limits);
      const running = new Map<string, Placement>();
      const requested = new Map<string, string>();
      let now = 0;
      let id = 0;
      for (let step = 0; step < 600; step++) {
        now += Math.floor(rand() * 500);
        const r = rand();
        if (r < 0.5) {
          const cls = pick(RESOURCE_CLASSES);
          const request = cls === 'preprocessing' ? 'cpu' : pick(requests);
          const memGb = request !== 'cpu' && rand() < 0.3 ? 1 + Math.floor(rand() * 10) : null;
          const tid = `t${id++}`;
          requested.set(tid, request);
          c.enqueue({ id: tid, cls, request, memGb, priority: 1 + Math.floor(rand() * 10), enqueuedAt: now });
        } else if (r < 0.8 && running.size > 0) {
          const victim = pick([...running.keys()]);
          assert.equal(c.release(victim), true);
          running.delete(victim);
        } else if (r < 0.85) {
          limits = effectiveLimits(devices, {
            cpu: { training: Math.floor(rand() * 3), inference: Math.floor(rand() * 5) },
            gpu: { inference: 1 + Math.floor(rand() * 3) },
          });
          c.setLimits(limits);
        }
        const touched = new Set<string>();
        for (const p of c.dispatch()) {
          assert.ok(!running.has(p.id), `task ${p.id} placed twice`);
          running.set(p.id, p);
          touched.add(`${p.device}|${p.cls}`);
          const want = requested.get(p.id);
          const allowed =
            want === 'cpu'
              ? p.device === 'cpu'
              : want === 'cuda'
                ? p.device.startsWith('cuda:')
                : want === 'auto'
                  ? true
                  : p.device === want;
          assert.ok(allowed, `${p.id} asked for ${want} and was placed on ${p.device}`);
        }
        // A lowered limit never evicts running work, but nothing new is placed past a limit.
        const usage = c.usage();
        for (const k of touched) {
          const [dev, cls] = k.split('|') as [string, ResourceClass];
          assert.ok(
            (usage[dev]?.[cls] ?? 0) <= (limits[dev]?.[cls] ?? 0),
            `${dev}/${cls} placed over its limit`,
          );
        }
        for (const d of devices.filter((x) => x.kind === 'gpu')) {
          const onDev = [...running.values()].filter((p) => p.device === d.id);
          const declared = onDev.reduce((a, p) => a + (p.memGb ?? 0), 0);
          // GPU never double-booked: declared memory fits what the driver reported free
          assert.ok(declared <= (d.freeMemoryGb ?? 0) + 1e-9, `${d.id} memory overbooked: ${declared} GB`);
        }
        assert.equal(c.runningCount, running.size);
      }
    });
  }

  it('nothing starves under aging: a steady stream of urgent work still lets a priority-10 task run', () => {
    const step = 100;
    const c = core([cpu], step, { cpu: { training: 1, inference: 0, preprocessing: 0 } });
    let now = 0;
    c.enqueue({ id: 'low', cls: 'training', request: 'cpu', memGb: null, priority: 10, enqueuedAt: now });
    let ran = -1;
    let running: string | null = null;
    for (let i = 0; i < 100 && ran < 0; i++) {
      // two urgent tasks arrive per completion, so the queue only grows
      c.enqueue({ id: `u${i}a`, cls: 'training', request: 'cpu', memGb: null, priority: 1, enqueuedAt: now });
      c.enqueue({ id: `u${i}b`, cls: 'training', request: 'cpu', memGb: null, priority: 1, enqueuedAt: now });
      if (running) c.release(running);
      const [p] = c.dispatch();
      running = p?.id ?? null;
      if (running === 'low') ran = i;
      now += 50;
    }
    assert.ok(ran >= 0, 'the low-priority task never ran');
    // it may wait for work submitted up to 9 aging steps after it, and no longer
    assert.ok(ran * 50 <= 9 * step * 2 + 100, `ran only after ${ran} rounds`);
  });

  it('equal priorities on one lane run strictly first-in first-out under random releases', () => {
    const rand = mulberry32(42);
    const c = core([cpu], 1000, { cpu: { training: 3, inference: 0, preprocessing: 0 } });
    const started: number[] = [];
    const running: string[] = [];
    let next = 0;
    for (let step = 0; step < 300; step++) {
      if (rand() < 0.6)
        c.enqueue({
          id: String(next++),
          cls: 'training',
          request: 'cpu',
          memGb: null,
          priority: 4,
          enqueuedAt: step,
        });
      if (running.length && rand() < 0.5)
        c.release(running.splice(Math.floor(rand() * running.length), 1)[0] as string);
      for (const p of c.dispatch()) {
        started.push(Number(p.id));
        running.push(p.id);
      }
    }
    assert.ok(started.length > 50);
    assert.deepEqual(
      started,
      [...started].sort((a, b) => a - b),
    );
  });
});

describe('scheduler core: bulk enqueue (recovery)', () => {
  it('orders exactly as one-by-one enqueueing does', () => {
    const rand = mulberry32(99);
    const list = Array.from({ length: 500 }, (_, i) => ({
      id: `r${i}`,
      cls: RESOURCE_CLASSES[i % 3] as ResourceClass,
      request: 'cpu',
      memGb: null,
      priority: 1 + Math.floor(rand() * 10),
      enqueuedAt: Math.floor(rand() * 100_000),
    }));
    const a = core([cpu], 1000, { cpu: { training: 0, inference: 0, preprocessing: 0 } });
    const b = core([cpu], 1000, { cpu: { training: 0, inference: 0, preprocessing: 0 } });
    for (const e of list) a.enqueue(e);
    b.enqueueMany(list);
    assert.deepEqual(
      list.map((e) => b.queuePosition(e.id)),
      list.map((e) => a.queuePosition(e.id)),
    );
    const limits = { cpu: { training: 500, inference: 500, preprocessing: 500 } };
    a.setLimits(limits);
    b.setLimits(limits);
    assert.deepEqual(
      b.dispatch().map((p) => p.id),
      a.dispatch().map((p) => p.id),
    );
  });
});
