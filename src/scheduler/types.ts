import type { ResourceClass } from '../domain/task.js';

/** device id → resource class → maximum concurrent tasks. */
export type Limits = Record<string, Record<ResourceClass, number>>;

/**
 * What a waiting task asks for, already resolved against this node's devices:
 * "cpu", "cuda" (any GPU), "cuda:N", or "auto" (a GPU if one can take it now, else the CPU).
 */
export type DeviceRequest = string;

export interface QueueEntry {
  id: string;
  cls: ResourceClass;
  request: DeviceRequest;
  /** GPU memory the task declared it needs (GB), or null. */
  memGb: number | null;
  priority: number;
  /** When the task entered the queue (ms since epoch, from the scheduler's clock). */
  enqueuedAt: number;
  /** Who submitted it: fair share and running quotas are per owner (none: one anonymous owner). */
  owner?: string;
}

/** A task placed on a device; it carries its queue entry so it can be queued again. */
export interface Placement extends QueueEntry {
  device: string;
}
