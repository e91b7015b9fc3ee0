import type { DeviceInfo } from '../domain/devices.js';
import type { ResourceClass } from '../domain/task.js';
import type { Quotas } from '../domain/users.js';
import { SchedulerCore } from './core.js';
import type { FairShare } from './fair-share.js';
import type { Limits, Placement, QueueEntry } from './types.js';

/** Where a waiting task stands, for its task view. */
export interface WaitingInfo {
  /** 1-based position among all waiting tasks in dispatch order. */
  position: number;
  /** Plain-words reason why it is not running. */
  reason: string;
  /** Priority after aging (never below 1). */
  effectivePriority: number;
}

/**
 * The scheduler's state as plain data, made at the moment it is asked for: what the HTTP layer
 * (health, resources, metrics, the overview page) reads. It is a copy, so nothing that holds it
 * can change the queue.
 */
export interface QueueSnapshot {
  /** Running tasks per device and class. */
  usage: Record<string, Record<ResourceClass, number>>;
  limits: Limits;
  devices: DeviceInfo[];
  waiting: number;
  running: number;
  waitingByClass: Record<ResourceClass, number>;
  /** The tasks running on each device, in start order. */
  runningOn: Record<string, { id: string; cls: ResourceClass; memGb: number | null }[]>;
}

/**
 * The queue seam: where accepted tasks wait, and where a node learns which of them to start.
 *
 * TaskService talks only to this interface. Tasks are durable in the store before they are added
 * here (and recovery adds back what the store holds after a restart), so an implementation keeps
 * only what it needs to decide. This node's implementation is LocalQueue (the pure SchedulerCore
 * in memory); a cluster implementation claims from a queue shared through the store.
 *
 * A claim holds a slot until `release`. The service marks each claimed task running in the store,
 * guarded by its status; a claim the store refuses (the task was cancelled meanwhile) is released.
 */
export interface TaskQueue {
  /** Accepted tasks (stored as queued) become candidates. */
  add(entries: readonly QueueEntry[]): void;
  /** Takes a waiting task out (cancelled before it started); false if it was not waiting here. */
  remove(id: string): boolean;
  /** The waiting tasks that can start now, each placed on a device and holding its slot. */
  claim(): Promise<Placement[]>;
  /** Frees the slot of a claimed task whose work has stopped. */
  release(id: string): void;
  isWaiting(id: string): boolean;
  isRunning(id: string): boolean;
  setDevices(devices: DeviceInfo[]): void;
  setLimits(limits: Limits): void;
  getLimits(): Limits;
  /** Where a waiting task stands (undefined if it is not waiting). */
  waitingInfo(id: string, now: number): WaitingInfo | undefined;
  /** Tasks waiting, without building a snapshot (gauges read it on every scrape). */
  readonly waitingCount: number;
  snapshot(): QueueSnapshot;
  /** Charges running tasks' owners for their use up to `now` (a queue with fair share). */
  accrue?(now: number): void;
}

/** What LocalQueue is built with. */
export interface LocalQueueOptions {
  devices: DeviceInfo[];
  agingIntervalMs: number;
  /** Usage per user (shared with the service, which saves it); none: no fair share. */
  fairShare?: FairShare;
  /** A user's quotas (running tasks per class). */
  quotas?: (owner: string) => Quotas | undefined;
  /** The scheduler's clock (ms since the epoch). */
  now?: () => number;
}

/** This node's queue: the pure SchedulerCore, in memory. */
export class LocalQueue implements TaskQueue {
  private readonly core: SchedulerCore;
  private readonly now: () => number;

  constructor(opts: LocalQueueOptions) {
    this.now = opts.now ?? Date.now;
    this.core = new SchedulerCore({
      devices: opts.devices,
      limits: {},
      agingIntervalMs: opts.agingIntervalMs,
      fairShare: opts.fairShare,
      quotas: opts.quotas,
    });
  }

  accrue(now: number): void {
    this.core.accrue(now);
  }

  add(entries: readonly QueueEntry[]): void {
    if (entries.length === 1) this.core.enqueue(entries[0] as QueueEntry);
    else this.core.enqueueMany([...entries]);
  }

  remove(id: string): boolean {
    return this.core.remove(id);
  }

  async claim(): Promise<Placement[]> {
    return this.core.dispatch(this.now());
  }

  release(id: string): void {
    this.core.release(id, this.now());
  }

  isWaiting(id: string): boolean {
    return this.core.isWaiting(id);
  }

  isRunning(id: string): boolean {
    return this.core.isRunning(id);
  }

  setDevices(devices: DeviceInfo[]): void {
    this.core.setDevices(devices);
  }

  setLimits(limits: Limits): void {
    this.core.setLimits(limits);
  }

  getLimits(): Limits {
    return this.core.getLimits();
  }

  waitingInfo(id: string, now: number): WaitingInfo | undefined {
    const position = this.core.queuePosition(id);
    if (position === undefined) return undefined;
    return {
      position,
      reason: this.core.pendingReason(id) ?? 'waiting for the scheduler',
      effectivePriority: this.core.effectivePriority(id, now) as number,
    };
  }

  get waitingCount(): number {
    return this.core.waitingCount;
  }

  snapshot(): QueueSnapshot {
    return coreSnapshot(this.core);
  }
}

/**
 * A SchedulerCore's state as a QueueSnapshot. `waiting` replaces the core's own waiting figures
 * (a shared queue knows more tasks waiting than the core in front of it holds).
 */
export function coreSnapshot(
  core: SchedulerCore,
  waiting?: { count: number; byClass: Record<ResourceClass, number> },
): QueueSnapshot {
  const devices = core.getDevices();
  const runningOn: QueueSnapshot['runningOn'] = {};
  for (const d of devices) {
    runningOn[d.id] = core.runningOn(d.id).map((p) => ({ id: p.id, cls: p.cls, memGb: p.memGb }));
  }
  return {
    usage: core.usage(),
    limits: core.getLimits(),
    devices,
    waiting: waiting?.count ?? core.waitingCount,
    running: core.runningCount,
    waitingByClass: waiting ? { ...waiting.byClass } : core.waitingByClass(),
    runningOn,
  };
}
