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
