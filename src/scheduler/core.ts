import { RESOURCE_CLASSES, type ResourceClass } from '../domain/task.js';
import type { DeviceInfo } from '../domain/devices.js';
import type { Limits, Placement, QueueEntry } from './types.js';

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

/** Tasks with identical needs (class, device request, memory) wait in one lane, in key order. */
interface Lane {
  name: string;
  entries: Entry[];
  /** Why the lane's head could not be placed at the last dispatch (null when never blocked). */
  blockedReason: string | null;
}

export interface SchedulerCoreOptions {
  devices: DeviceInfo[];
  limits: Limits;
  /** Milliseconds of waiting per step of priority gained; 0 disables aging. */
  agingIntervalMs: number;
}

function compare(a: Entry, b: Entry): number {
  return a.key - b.key || a.seq - b.seq;
}

/**
 * The pure scheduling core: priority queue with aging, slots per device × resource class, and
 * placement. It performs no I/O and reads no clock: callers pass times in. Waiting costs nothing
 * but an array slot; `dispatch()` is called when something changed (submission, completion,
 * cancellation, limit or device change) and returns the tasks to start now.
 */
export class SchedulerCore {
  private devices = new Map<string, DeviceInfo>();
  private limits: Limits = {};
  private readonly agingIntervalMs: number;
  private readonly lanes = new Map<string, Lane>();
  private readonly waiting = new Map<string, { entry: Entry; lane: Lane }>();
  private readonly running = new Map<string, Placement>();
  /** device → class → running task ids (insertion order = start order). */
  private readonly holders = new Map<string, Record<ResourceClass, Set<string>>>();
  private nextSeq = 1;

  constructor(opts: SchedulerCoreOptions) {
    this.agingIntervalMs = opts.agingIntervalMs;
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
    const { entry, lane } = this.admit(q);
    lane.entries.splice(this.lowerBound(lane.entries, entry), 0, entry);
  }

  /**
   * Enqueues many tasks at once (a restart's recovery): appended, then each lane sorted once,
   * instead of one sorted insert (and array shift) per task.
   */
  enqueueMany(list: QueueEntry[]): void {
    const touched = new Set<Lane>();
    for (const q of list) {
      const { entry, lane } = this.admit(q);
      lane.entries.push(entry);
      touched.add(lane);
    }
    for (const lane of touched) lane.entries.sort(compare);
  }

  private admit(q: QueueEntry): { entry: Entry; lane: Lane } {
    if (this.waiting.has(q.id) || this.running.has(q.id))
      throw new Error(`task ${q.id} is already scheduled`);
    const entry: Entry = {
      ...q,
      seq: this.nextSeq++,
      key: this.agingIntervalMs > 0 ? q.enqueuedAt + q.priority * this.agingIntervalMs : q.priority,
    };
    const laneName = `${q.cls}|${q.request}|${q.memGb ?? 0}`;
    let lane = this.lanes.get(laneName);
    if (!lane) {
      lane = { name: laneName, entries: [], blockedReason: null };
      this.lanes.set(laneName, lane);
    }
    const w = { entry, lane };
    this.waiting.set(q.id, w);
    return w;
  }

  /** Removes a waiting task (cancelled before it started). */
  remove(id: string): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    const i = this.lowerBound(w.lane.entries, w.entry);
    w.lane.entries.splice(i, 1);
    this.waiting.delete(id);
    if (w.lane.entries.length === 0) this.lanes.delete(w.lane.name);
    return true;
  }

  /** Frees the slot of a task whose work has stopped. */
  release(id: string): boolean {
    const p = this.running.get(id);
    if (!p) return false;
    this.running.delete(id);
    this.holders.get(p.device)?.[p.cls].delete(id);
    return true;
  }

  /**
   * Places every waiting task that can run now, most urgent first. Lanes whose head cannot be
   * placed are skipped, so a task waiting for a busy GPU never holds back one that fits elsewhere.
   */
  dispatch(): Placement[] {
    const placed: Placement[] = [];
    const blocked = new Set<Lane>();
    for (;;) {
      let best: { lane: Lane; device: string } | null = null;
      for (const lane of this.lanes.values()) {
        if (blocked.has(lane)) continue;
        const head = lane.entries[0];
        if (!head) continue;
        if (best && compare(head, best.lane.entries[0] as Entry) >= 0) continue;
        const device = this.choose(head);
        if (device === null) {
          blocked.add(lane);
          lane.blockedReason = this.explain(head);
          continue;
        }
        best = { lane, device };
      }
      // Every non-empty lane is now blocked or was placed from.
      if (!best) break;
      const head = best.lane.entries.shift() as Entry;
      if (best.lane.entries.length === 0) this.lanes.delete(best.lane.name);
      this.waiting.delete(head.id);
      const p: Placement = {
        id: head.id,
        cls: head.cls,
        request: head.request,
        memGb: head.memGb,
        priority: head.priority,
        enqueuedAt: head.enqueuedAt,
        device: best.device,
      };
      this.running.set(head.id, p);
      (this.holders.get(best.device) as Record<ResourceClass, Set<string>>)[head.cls].add(head.id);
      placed.push(p);
    }
    // Placements later in the pass may have changed why an earlier-blocked lane waits.
    if (placed.length > 0) {
      for (const lane of blocked) if (lane.entries[0]) lane.blockedReason = this.explain(lane.entries[0]);
    }
    return placed;
  }

  /** 1-based position among all waiting tasks in dispatch order, or undefined if not waiting. */
  queuePosition(id: string): number | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    let ahead = 0;
    for (const lane of this.lanes.values()) ahead += this.lowerBound(lane.entries, w.entry);
    return ahead + 1;
  }

  /** Plain-words reason why a waiting task is not running. */
  pendingReason(id: string): string | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    const head = w.lane.entries[0] as Entry;
    const reason = w.lane.blockedReason ?? this.explain(head);
    const ahead = this.lowerBound(w.lane.entries, w.entry);
    if (ahead === 0) return reason;
    return `${ahead} earlier task${ahead === 1 ? '' : 's'} with the same needs ${ahead === 1 ? 'goes' : 'go'} first; ${reason}`;
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
    for (const lane of this.lanes.values()) {
      const head = lane.entries[0];
      if (head) out[head.cls] += lane.entries.length;
    }
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
    const gpus = [...this.devices.values()].filter((d) => d.kind === 'gpu');
    if (e.request === 'cpu') return this.devices.has('cpu') ? [this.devices.get('cpu') as DeviceInfo] : [];
    if (e.request === 'cuda') return gpus;
    if (e.request === 'auto') {
      const cpu = this.devices.get('cpu');
      return cpu ? [...gpus, cpu] : gpus;
    }
    const d = this.devices.get(e.request);
    return d ? [d] : [];
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

  private lowerBound(arr: Entry[], e: Entry): number {
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compare(arr[mid] as Entry, e) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function emptyHolders(): Record<ResourceClass, Set<string>> {
  return { training: new Set(), inference: new Set(), preprocessing: new Set() };
}

function fmtGb(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : 'unlimited';
}
