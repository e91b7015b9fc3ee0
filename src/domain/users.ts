/**
 * Who calls the service (SPEC §5, issue 16): every request is made by a named user, and every
 * task has an owner. Pure: no I/O (the directory of users is built in util/users.ts).
 */
import type { ResourceClass } from './task.js';

export type Role = 'admin' | 'user';

/** Per-user limits; absent fields are unlimited. */
export interface Quotas {
  /** Tasks waiting (pending or queued) at once, in total. */
  queued?: number;
  /** Tasks running at once, per resource class. */
  running?: Partial<Record<ResourceClass, number>>;
  /** GPU-hours in any 24 h: beyond it, the user's tasks wait for GPUs (auto ones run on the CPU). */
  gpu_hours_per_day?: number;
}

/**
 * An admin's live change to a user's quotas (POST /api/v2/users/{name}/quotas): each field given
 * replaces the configured one; null lifts that quota (unlimited). Kept in the store, so restarts
 * and every node of a cluster apply it.
 */
export interface QuotaOverride {
  queued?: number | null;
  running?: Partial<Record<ResourceClass, number | null>>;
  gpu_hours_per_day?: number | null;
}

/** `later` laid over `earlier` (both overrides): what a second change on top of a first leaves. */
export function mergeOverrides(earlier: QuotaOverride, later: QuotaOverride): QuotaOverride {
  const out: QuotaOverride = { ...earlier, ...later };
  if (earlier.running || later.running) out.running = { ...earlier.running, ...later.running };
  return out;
}

/** The quotas in force: the configured ones with the override applied (null: no such quota). */
export function applyOverride(configured: Quotas, o: QuotaOverride): Quotas {
  const out: Quotas = { ...configured };
  if (o.queued !== undefined) setOrLift(out, 'queued', o.queued);
  if (o.gpu_hours_per_day !== undefined) setOrLift(out, 'gpu_hours_per_day', o.gpu_hours_per_day);
  if (o.running) {
    const running: Partial<Record<ResourceClass, number>> = { ...configured.running };
    for (const [cls, n] of Object.entries(o.running) as [ResourceClass, number | null][]) {
      if (n === null) delete running[cls];
      else running[cls] = n;
    }
    if (Object.keys(running).length) out.running = running;
    else delete out.running;
  }
  return out;
}

function setOrLift(q: Quotas, key: 'queued' | 'gpu_hours_per_day', v: number | null): void {
  if (v === null) delete q[key];
  else q[key] = v;
}

export interface User {
  name: string;
  role: Role;
  /** Share weight for fair share (1 by default). */
  share: number;
  quotas: Quotas;
}

/** The caller when no tokens are configured (the service then listens on loopback only). */
export const LOCAL_USER: User = Object.freeze({ name: 'local', role: 'admin', share: 1, quotas: {} });

export function isAdmin(user: User): boolean {
  return user.role === 'admin';
}

/** A user may control (cancel, stop, delete) their own tasks; an admin anyone's. */
export function mayControl(user: User, owner: string | null): boolean {
  return isAdmin(user) || owner === user.name;
}

/** User names: what `owner` and `?owner=` carry (no commas or colons: the token list's syntax). */
export const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
