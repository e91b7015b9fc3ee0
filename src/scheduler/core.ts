import { RESOURCE_CLASSES, type ResourceClass } from '../domain/task.js';
import type { DeviceInfo } from '../domain/devices.js';
import type { Quotas } from '../domain/users.js';
import { FairShare, type Factor } from './fair-share.js';
import type { Limits, Placement, QueueEntry } from './types.js';

/** The owner of entries that name none (a service without users). */
const NO_OWNER = 'local';

interface Entry extends QueueEntry {
  /** Submission order among entries; breaks ties so equals run first-in first-out. */
  seq: number;
  /**
   * Order key. Aging improves a waiting task's priority by one step per `agingIntervalMs`, so its
   * effective priority at time t is `priority - (t - enqueuedAt) / interval`. Comparing that for
   * two tasks at the same t is comparing `enqueuedAt + priority * interval`, which does not depend
   * on t: the queue order never has to be recomputed as time passes, and nothing starves, since any
   * task submitted `(p_old - p_new) * interval` after an old one ranks behind it.
   */
  key: number;
}

/**
 * Tasks with identical needs (class, device request, memory) wait in one lane: one queue per
 * owner, each in key order. The lane's head is the owner head that comes first once fair share
 * has moved each owner's tasks back by their own amount.
 */
interface Lane {
  name: string;
  cls: ResourceClass;
  queues: Map<string, Entry[]>;
  size: number;
  /** Why the lane's head could not be placed at the last dispatch (null when never blocked). */
  blockedReason: string | null;
}

export interface SchedulerCoreOptions {
  devices: DeviceInfo[];
  limits: Limits;
  /** Milliseconds of waiting per step of priority gained; 0 disables aging. */
  agingIntervalMs: number;
  /** Usage per user and how far it moves their tasks back; none: no fair share. */
  fairShare?: FairShare;
  /** A user's quotas (running tasks per class are enforced here); none: no quotas. */
  quotas?: (owner: string) => Quotas | undefined;
}

/** A running task as the core keeps it: its placement, and until when its use was charged. */
interface Running extends Placement {
  chargedTo: number;
}

function compare(a: Entry, b: Entry): number {
  return a.key - b.key || a.seq - b.seq;
}

/**
 * The pure scheduling core: priority queue with aging and fair share, slots per device × resource
 * class, running quotas per user, and placement.
 *
 * Dispatch order: a waiting task's effective key is `enqueuedAt + (priority + fairShareSteps) ×
 * agingInterval`, where fairShareSteps = steps × (1 − F) for its owner and F = 2^(−u/s) (Slurm's
 * classic fair-share factor; see fair-share.ts): (a) a user who has used less than their share
 * has smaller steps, so their tasks go first; (b) all of one user's tasks move by the same steps,
 * so priority and submission order still decide among them; (c) steps never exceed `steps`, so
 * a task is overtaken only by tasks submitted at most (steps + priority difference) aging
 * intervals after it — nothing starves. Lanes hold one queue per owner, each in plain key
 * order (owner offsets change as usage does; within one owner they cancel out), and a lane's
 * head is the owner head that comes first in effective order among owners under their quota.
 *
 * It performs no I/O and reads no clock: callers pass times in. Waiting costs nothing
 * but an array slot; `dispatch()` is called when something changed (submission, completion,
 * cancellation, limit or device change) and returns the tasks to start now.
 */
export class SchedulerCore {
  private devices = new Map<string, DeviceInfo>();
  private limits: Limits = {};
  private readonly agingIntervalMs: number;
  private readonly lanes = new Map<string, Lane>();
  private readonly waiting = new Map<string, { entry: Entry; lane: Lane }>();
  private readonly running = new Map<string, Running>();
  /** device → class → running task ids (insertion order = start order). */
  private readonly holders = new Map<string, Record<ResourceClass, Set<string>>>();
  /** owner → class → running tasks (for the running quotas). */
  private readonly runningBy = new Map<string, Record<ResourceClass, number>>();
  private nextSeq = 1;
  readonly fairShare: FairShare;
  private readonly quotas: (owner: string) => Quotas | undefined;
  /** The latest time a caller passed in, and the fair-share factors computed then. */
  private now = 0;
  private factors = new Map<string, Factor>();

  constructor(opts: SchedulerCoreOptions) {
    this.agingIntervalMs = opts.agingIntervalMs;
    this.fairShare = opts.fairShare ?? new FairShare({ halfLifeMs: 1, steps: 0, gpuWeight: 0, cpuWeight: 0 });
    this.quotas = opts.quotas ?? (() => undefined);
    this.setDevices(opts.devices);
    this.setLimits(opts.limits);
  }

  setDevices(devices: DeviceInfo[]): void {
    this.devices = new Map(devices.map((d) => [d.id, d]));
    for (const d of devices) if (!this.holders.has(d.id)) this.holders.set(d.id, emptyHolders());
  }

  getDevices(): DeviceInfo[] {
    return [...this.devices.values()];
  }

  setLimits(limits: Limits): void {
    this.limits = structuredClone(limits);
  }

  getLimits(): Limits {
    return structuredClone(this.limits);
  }

  limit(device: string, cls: ResourceClass): number {
    return this.limits[device]?.[cls] ?? 0;
  }

  get waitingCount(): number {
    return this.waiting.size;
  }

  get runningCount(): number {
    return this.running.size;
  }

  isWaiting(id: string): boolean {
    return this.waiting.has(id);
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  enqueue(q: QueueEntry): void {
    const { entry, queue } = this.admit(q);
    queue.splice(lowerBound(queue, entry), 0, entry);
  }

  /**
   * Enqueues many tasks at once (a restart's recovery): appended, then each queue sorted once,
   * instead of one sorted insert (and array shift) per task.
   */
  enqueueMany(list: QueueEntry[]): void {
    const touched = new Set<Entry[]>();
    for (const q of list) {
      const { entry, queue } = this.admit(q);
      queue.push(entry);
      touched.add(queue);
    }
    for (const queue of touched) queue.sort(compare);
  }

  private admit(q: QueueEntry): { entry: Entry; lane: Lane; queue: Entry[] } {
    if (this.waiting.has(q.id) || this.running.has(q.id))
      throw new Error(`task ${q.id} is already scheduled`);
    const entry: Entry = {
      ...q,
      owner: q.owner ?? NO_OWNER,
      seq: this.nextSeq++,
      key: this.agingIntervalMs > 0 ? q.enqueuedAt + q.priority * this.agingIntervalMs : q.priority,
    };
    const laneName = `${q.cls}|${q.request}|${q.memGb ?? 0}`;
    let lane = this.lanes.get(laneName);
    if (!lane) {
      lane = { name: laneName, cls: q.cls, queues: new Map(), size: 0, blockedReason: null };
      this.lanes.set(laneName, lane);
    }
    let queue = lane.queues.get(entry.owner as string);
    if (!queue) {
      queue = [];
      lane.queues.set(entry.owner as string, queue);
    }
    lane.size++;
    this.waiting.set(q.id, { entry, lane });
    return { entry, lane, queue };
  }

  /** Takes an entry out of its lane (cancelled, or placed). */
  private unqueue(entry: Entry, lane: Lane): void {
    const queue = lane.queues.get(entry.owner as string) as Entry[];
    queue.splice(lowerBound(queue, entry), 1);
    if (queue.length === 0) lane.queues.delete(entry.owner as string);
    lane.size--;
    this.waiting.delete(entry.id);
    if (lane.size === 0) this.lanes.delete(lane.name);
  }

  /** Removes a waiting task (cancelled before it started). */
  remove(id: string): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.unqueue(w.entry, w.lane);
    return true;
  }

  /** Frees the slot of a task whose work has stopped, charging its owner for the use (at `now`). */
  release(id: string, now = this.now): boolean {
    const p = this.running.get(id);
    if (!p) return false;
    this.charge(p, Math.max(now, this.now));
    this.running.delete(id);
    this.holders.get(p.device)?.[p.cls].delete(id);
    const by = this.runningBy.get(p.owner as string);
    if (by) by[p.cls]--;
    return true;
  }

  /** Charges a running task's owner for its use since it was last charged. */
  private charge(p: Running, now: number): void {
    if (now <= p.chargedTo) return;
    const gpu = this.devices.get(p.device)?.kind === 'gpu';
    this.fairShare.charge(p.owner as string, (now - p.chargedTo) / 1000, gpu, now);
    p.chargedTo = now;
  }

  /** Brings usage up to `now` for every running task (before a dispatch, or a save of the ledger). */
  accrue(now: number): void {
    if (now < this.now) return;
    this.now = now;
    for (const p of this.running.values()) this.charge(p, now);
  }

  /** An entry's place in the dispatch order: its key, moved back by its owner's fair share. */
  private effective(e: Entry): number {
    const steps = this.factors.get(e.owner as string)?.steps ?? 0;
    return e.key + steps * (this.agingIntervalMs > 0 ? this.agingIntervalMs : 1);
  }

  private compareEffective(a: Entry, b: Entry): number {
    return this.effective(a) - this.effective(b) || a.seq - b.seq;
  }

  /** Whether `owner` may start another task of `cls` (their running quota). */
  private underQuota(owner: string, cls: ResourceClass): boolean {
    const q = this.quotas(owner)?.running?.[cls];
    return q === undefined || (this.runningBy.get(owner)?.[cls] ?? 0) < q;
  }

  /** Why `owner` may not start work on a GPU now (their daily GPU-hours are spent), or null. */
  private gpuBudgetReason(owner: string): string | null {
    const budget = this.quotas(owner)?.gpu_hours_per_day;
    if (budget === undefined) return null;
    const used = this.fairShare.gpuSecondsToday(owner);
    if (used < budget * 3600) return null;
    const hours = used / 3600;
    return `${owner} has used ${hours >= 10 ? hours.toFixed(1) : hours.toPrecision(3)} of their ${budget} GPU-hours in the last 24 h; their GPU tasks wait until older use leaves the window`;
  }

  /** The lane's next task: the first owner head in effective order whose owner is under quota. */
  private laneHead(lane: Lane): Entry | undefined {
    let best: Entry | undefined;
    for (const [owner, queue] of lane.queues) {
      const head = queue[0];
      if (!head || !this.underQuota(owner, lane.cls)) continue;
      // Over the GPU budget, a task that only a GPU can take waits (an `auto` one may use the CPU).
      if (head.request !== 'cpu' && head.request !== 'auto' && this.gpuBudgetReason(owner)) continue;
      if (!best || this.compareEffective(head, best) < 0) best = head;
    }
    return best;
  }

  /**
   * Places every waiting task that can run now, most urgent first (`now`: for fair share, the
   * usage of running tasks is charged up to it first). Lanes whose head cannot be placed are
   * skipped, so a task waiting for a busy GPU never holds back one that fits elsewhere.
   */
  dispatch(now = this.now): Placement[] {
    this.accrue(now);
    this.factors = this.fairShare.enabled ? this.fairShare.factors(this.now) : new Map();
    const placed: Placement[] = [];
    const blocked = new Set<Lane>();
    for (;;) {
      let best: { lane: Lane; head: Entry; device: string } | null = null;
      for (const lane of this.lanes.values()) {
        if (blocked.has(lane)) continue;
        const head = this.laneHead(lane);
        if (!head) {
          // Every owner with work in this lane is at their running quota.
          blocked.add(lane);
          lane.blockedReason = this.quotaReason(lane);
          continue;
        }
        if (best && this.compareEffective(head, best.head) >= 0) continue;
        const device = this.choose(head);
        if (device === null) {
          blocked.add(lane);
          lane.blockedReason = this.explain(head);
          continue;
        }
        best = { lane, head, device };
      }
      // Every non-empty lane is now blocked or was placed from.
      if (!best) break;
      placed.push(this.place(best.head, best.lane, best.device));
    }
    // Placements later in the pass may have changed why an earlier-blocked lane waits.
    if (placed.length > 0) {
      for (const lane of blocked) {
        const head = this.laneHead(lane);
        lane.blockedReason = head ? this.explain(head) : this.quotaReason(lane);
      }
    }
    return placed;
  }

  private place(head: Entry, lane: Lane, device: string): Placement {
    this.unqueue(head, lane);
    const p: Placement = {
      id: head.id,
      cls: head.cls,
      request: head.request,
      memGb: head.memGb,
      priority: head.priority,
      enqueuedAt: head.enqueuedAt,
      owner: head.owner,
      device,
    };
    this.running.set(head.id, { ...p, chargedTo: this.now });
    (this.holders.get(device) as Record<ResourceClass, Set<string>>)[head.cls].add(head.id);
    const owner = head.owner as string;
    let by = this.runningBy.get(owner);
    if (!by) {
      by = { training: 0, inference: 0, preprocessing: 0 };
      this.runningBy.set(owner, by);
    }
    by[head.cls]++;
    return p;
  }

  /** Entries of `queue` that come before `e` in effective order. */
  private aheadIn(queue: Entry[], e: Entry): number {
    if (queue.length === 0) return 0;
    if ((queue[0] as Entry).owner === e.owner) return lowerBound(queue, e);
    // Another owner's queue: shift `e` into its owner's key space, then bisect.
    const unit = this.agingIntervalMs > 0 ? this.agingIntervalMs : 1;
    const shift =
      ((this.factors.get(queue[0]?.owner as string)?.steps ?? 0) -
        (this.factors.get(e.owner as string)?.steps ?? 0)) *
      unit;
    let lo = 0;
    let hi = queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = queue[mid] as Entry;
      if (m.key + shift < e.key || (m.key + shift === e.key && m.seq < e.seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** 1-based position among all waiting tasks in dispatch order, or undefined if not waiting. */
  queuePosition(id: string): number | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    let ahead = 0;
    for (const lane of this.lanes.values())
      for (const q of lane.queues.values()) ahead += this.aheadIn(q, w.entry);
    return ahead + 1;
  }

  /** Plain-words reason why a waiting task is not running. */
  pendingReason(id: string): string | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    const { entry, lane } = w;
    const owner = entry.owner as string;
    if (!this.underQuota(owner, lane.cls)) return this.quotaReasonOf(owner, lane.cls);
    const budget = entry.request === 'cpu' || entry.request === 'auto' ? null : this.gpuBudgetReason(owner);
    if (budget) return budget;
    const head = this.laneHead(lane) ?? entry;
    const reason = lane.blockedReason ?? this.explain(head);
    const own = lowerBound(lane.queues.get(owner) as Entry[], entry);
    let others = 0;
    let byShare = 0;
    for (const [o, q] of lane.queues) {
      if (o === owner) continue;
      const n = this.aheadIn(q, entry);
      others += n;
      // Of those, the ones ahead only because of fair share (later in plain key order).
      byShare += n - Math.min(n, lowerBound(q, entry));
    }
    const tasks = (n: number) => `${n} task${n === 1 ? '' : 's'}`;
    const go = (n: number) => (n === 1 ? 'goes' : 'go');
    const parts: string[] = [];
    const f = this.factors.get(owner);
    if (byShare > 0 && f) {
      if (own > 0) parts.push(`${tasks(own)} of ${owner} with the same needs ${go(own)} first`);
      parts.push(
        `${owner} has used ${f.usedOverShare.toFixed(1)}× their share recently; ${tasks(others)} of others ${go(others)} first`,
      );
    } else if (own + others > 0) {
      parts.push(
        `${own + others} earlier ${tasks(own + others).replace(/^\d+ /, '')} with the same needs ${go(own + others)} first`,
      );
    }
    return [...parts, reason].join('; ');
  }

  private quotaReasonOf(owner: string, cls: ResourceClass): string {
    const q = this.quotas(owner)?.running?.[cls] ?? 0;
    return `${owner} has ${this.runningBy.get(owner)?.[cls] ?? 0} ${cls} task(s) running, their quota (${q}); this one starts when one of them ends`;
  }

  private quotaReason(lane: Lane): string {
    const first = lane.queues.keys().next().value as string;
    return this.quotaReasonOf(first, lane.cls);
  }

  /** Effective priority after aging, for display (never below 1). */
  effectivePriority(id: string, now: number): number | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    if (this.agingIntervalMs <= 0) return w.entry.priority;
    const gained = Math.floor((now - w.entry.enqueuedAt) / this.agingIntervalMs);
    return Math.max(1, w.entry.priority - gained);
  }

  /** Running tasks per device and class. */
  usage(): Record<string, Record<ResourceClass, number>> {
    const out: Record<string, Record<ResourceClass, number>> = {};
    for (const [dev, h] of this.holders) {
      if (!this.devices.has(dev) && RESOURCE_CLASSES.every((c) => h[c].size === 0)) continue;
      out[dev] = {
        training: h.training.size,
        inference: h.inference.size,
        preprocessing: h.preprocessing.size,
      };
    }
    return out;
  }

  runningOn(device: string): Placement[] {
    return [...this.running.values()].filter((p) => p.device === device);
  }

  waitingByClass(): Record<ResourceClass, number> {
    const out: Record<ResourceClass, number> = { training: 0, inference: 0, preprocessing: 0 };
    for (const lane of this.lanes.values()) out[lane.cls] += lane.size;
    return out;
  }

  /** GPU memory still free on a device for placement: driver-reported free minus declared use. */
  freeMemoryGb(device: string): number {
    const d = this.devices.get(device);
    if (!d) return 0;
    const reported = d.freeMemoryGb ?? d.totalMemoryGb ?? Number.POSITIVE_INFINITY;
    let declared = 0;
    for (const p of this.running.values()) if (p.device === device && p.memGb) declared += p.memGb;
    return reported - declared;
  }

  // ----- placement -----

  private candidates(e: Entry): DeviceInfo[] {
    const gpus = this.gpuBudgetReason(e.owner as string)
      ? []
      : [...this.devices.values()].filter((d) => d.kind === 'gpu');
    if (e.request === 'cpu') return this.devices.has('cpu') ? [this.devices.get('cpu') as DeviceInfo] : [];
    if (e.request === 'cuda') return gpus;
    if (e.request === 'auto') {
      const cpu = this.devices.get('cpu');
      return cpu ? [...gpus, cpu] : gpus;
    }
    const d = this.devices.get(e.request);
    return d && (d.kind !== 'gpu' || gpus.length > 0 || !this.gpuBudgetReason(e.owner as string)) ? [d] : [];
  }

  private hasSlot(device: string, cls: ResourceClass): boolean {
    const used = this.holders.get(device)?.[cls].size ?? 0;
    return used < this.limit(device, cls);
  }

  private fitsMemory(d: DeviceInfo, e: Entry): boolean {
    return d.kind !== 'gpu' || e.memGb == null || this.freeMemoryGb(d.id) >= e.memGb;
  }

  private load(device: string): number {
    const h = this.holders.get(device);
    return h ? h.training.size + h.inference.size + h.preprocessing.size : 0;
  }

  /** The device to start `e` on now, or null. GPUs: least loaded, then most free memory. */
  private choose(e: Entry): string | null {
    const fit = this.candidates(e).filter((d) => this.hasSlot(d.id, e.cls) && this.fitsMemory(d, e));
    const gpus = fit.filter((d) => d.kind === 'gpu');
    if (gpus.length > 0) {
      gpus.sort(
        (a, b) =>
          this.load(a.id) - this.load(b.id) ||
          this.freeMemoryGb(b.id) - this.freeMemoryGb(a.id) ||
          (a.index ?? 0) - (b.index ?? 0),
      );
      return (gpus[0] as DeviceInfo).id;
    }
    return fit[0]?.id ?? null;
  }

  private explain(e: Entry): string {
    const budget = e.request === 'cpu' ? null : this.gpuBudgetReason(e.owner as string);
    if (budget && (e.request !== 'auto' || !this.devices.has('cpu'))) return budget;
    const cands = this.candidates(e);
    const cls = `${e.cls === 'inference' ? 'an' : 'a'} ${e.cls} slot`;
    if (cands.length === 0) return `device ${e.request} does not exist on this node`;
    const busy = (d: DeviceInfo): string => {
      const lim = this.limit(d.id, e.cls);
      if (lim === 0) return `${d.id} allows no ${e.cls} tasks (limit 0)`;
      const ids = [...(this.holders.get(d.id)?.[e.cls] ?? [])];
      const shown = ids.slice(0, 3).join(', ') + (ids.length > 3 ? ` and ${ids.length - 3} more` : '');
      return `${d.id} ${ids.length}/${lim} in use, held by task${ids.length === 1 ? '' : 's'} ${shown}`;
    };
    const withSlot = cands.filter((d) => this.hasSlot(d.id, e.cls));
    if (withSlot.length > 0 && e.memGb != null) {
      // Slots exist but memory does not.
      const best = withSlot
        .filter((d) => d.kind === 'gpu')
        .sort((a, b) => this.freeMemoryGb(b.id) - this.freeMemoryGb(a.id))[0];
      const most = best ? ` (most free: ${best.id} with ${fmtGb(this.freeMemoryGb(best.id))} GB)` : '';
      return `no GPU has ${fmtGb(e.memGb)} GB free${most}`;
    }
    if (cands.length === 1) {
      const d = cands[0] as DeviceInfo;
      if (this.limit(d.id, e.cls) === 0)
        return `waiting: ${busy(d)}; raise it with POST /api/v2/resources/config`;
      return `waiting for ${cls} on ${d.id} (${busy(d)})`;
    }
    const where = e.request === 'auto' ? 'a GPU or the cpu' : 'any GPU';
    return `waiting for ${cls} on ${where} (${cands.map(busy).join('; ')})`;
  }
}

/** Index of the first entry of `arr` (sorted by key, then seq) not before `e`. */
function lowerBound(arr: Entry[], e: Entry): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(arr[mid] as Entry, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function emptyHolders(): Record<ResourceClass, Set<string>> {
  return { training: new Set(), inference: new Set(), preprocessing: new Set() };
}

function fmtGb(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : 'unlimited';
}
