/**
 * The team's side of the service (issue 16): the fair-share ledger kept in the store, the day's
 * GPU use that budgets are held to, the queued quota at submission, and quotas changed live by an
 * admin. Running quotas themselves are enforced by the queue (scheduler/core.ts, and the claim in
 * a cluster), which reads them from the user directory at every decision: a change here applies
 * to the next dispatch.
 */
import type { Logger } from 'pino';
import { AppError, notFound } from '../domain/errors.js';
import { mergeOverrides, type QuotaOverride, type Quotas, type User } from '../domain/users.js';
import type { FairShare } from '../scheduler/fair-share.js';
import type { Store } from '../store/store.js';
import type { UserDirectory } from '../util/users.js';

export interface TeamDeps {
  store: Store;
  users: UserDirectory;
  fairShare: FairShare;
  /** How often the ledger is written to the store (and other nodes' charges read). */
  saveMs: number;
  logger: Logger;
  now: () => number;
  /** Charges the queue's running tasks up to `now` (before a save). */
  accrue: (now: number) => void;
  /** Something that may let waiting work start changed (a quota, the day's GPU use). */
  changed: () => void;
}

export class Team {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> | null = null;
  /** Creations under way per owner (counted against the queued quota until stored). */
  private readonly reserved = new Map<string, number>();

  constructor(private readonly deps: TeamDeps) {}

  get fairShare(): FairShare {
    return this.deps.fairShare;
  }

  /** Reads the quota overrides and the ledger, and starts saving the ledger periodically. */
  async start(): Promise<void> {
    const { store, users, fairShare } = this.deps;
    users.setOverrides(await store.getQuotaOverrides());
    fairShare.load(await store.chargeUsage([], this.deps.now(), fairShare.opts.halfLifeMs));
    await this.countGpuDay();
    this.timer = setInterval(() => void this.saveUsage().catch(() => undefined), this.deps.saveMs);
    this.timer.unref();
  }

  /** Stops the periodic save and saves what is left. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.saveUsage().catch((err: unknown) =>
      this.deps.logger.warn({ err }, 'the fair-share ledger could not be saved at shutdown'),
    );
  }

  /**
   * Writes the use charged since the last save to the store's ledger (added to it there, so other
   * nodes' charges stay) and reads back everyone's: restarts keep the ledger.
   */
  saveUsage(): Promise<void> {
    // One save at a time: an older answer loaded after a newer one would drop the newer charges.
    const next = (this.saving ?? Promise.resolve()).catch(() => undefined).then(() => this.saveUsageNow());
    this.saving = next;
    return next;
  }

  private async saveUsageNow(): Promise<void> {
    await this.countGpuDay();
    const { fairShare, store } = this.deps;
    const now = this.deps.now();
    this.deps.accrue(now);
    const charges = fairShare.takeUnsaved();
    try {
      fairShare.load(await store.chargeUsage(charges, now, fairShare.opts.halfLifeMs));
    } catch (err) {
      // Not lost: charged again at the next save.
      for (const c of charges) fairShare.recharge(c.user, c.amount);
      throw err;
    }
  }

  /** GPU-seconds per user over the last 24 h, from the store (the daily GPU budget reads them). */
  private async countGpuDay(): Promise<void> {
    // A scan of the day's runs: only when someone has a budget to hold them to.
    if (!this.deps.users.list().some((u) => u.quotas.gpu_hours_per_day !== undefined)) return;
    const now = this.deps.now();
    const rows = await this.deps.store.gpuSecondsBetween(
      new Date(now - 24 * 3600_000).toISOString(),
      new Date(now).toISOString(),
    );
    this.deps.fairShare.setGpuDay(rows);
    // Use leaving the window may let a waiting GPU task start.
    this.deps.changed();
  }

  // ----- the queued quota -----

  /**
   * Runs `create` (which stores one task of `owner`'s) if the owner's queued quota leaves room for
   * it: counted in the store (every node's tasks), plus this node's creations still on their way.
   */
  async admit<T>(owner: User, create: () => Promise<T>): Promise<T> {
    const quota = owner.quotas.queued;
    if (quota === undefined) return create();
    const name = owner.name;
    const waiting = (await this.deps.store.countWaitingOf(name)) + (this.reserved.get(name) ?? 0);
    if (waiting >= quota) throw queuedQuotaError(name, waiting, quota, 1);
    this.reserved.set(name, (this.reserved.get(name) ?? 0) + 1);
    try {
      return await create();
    } finally {
      const left = (this.reserved.get(name) ?? 1) - 1;
      if (left > 0) this.reserved.set(name, left);
      else this.reserved.delete(name);
    }
  }

  /** Refuses a batch of `adding` tasks that would take `owner` past their queued quota. */
  async admitBatch(owner: User, adding: number): Promise<void> {
    const quota = owner.quotas.queued;
    if (quota === undefined) return;
    const waiting = await this.deps.store.countWaitingOf(owner.name);
    if (waiting + adding > quota) throw queuedQuotaError(owner.name, waiting, quota, adding);
  }

  // ----- quotas changed live -----

  /**
   * Changes a user's quotas at once (POST /api/v2/users/{name}/quotas): laid over their earlier
   * change, stored, and applied here (and, through the store's signal, on every node). Lowering a
   * running quota stops nothing that runs; it holds back what would start. Returns the quotas now.
   */
  async changeQuotas(name: string, change: QuotaOverride): Promise<Quotas> {
    const { users, store } = this.deps;
    this.known(name);
    await store.setQuotaOverride(name, mergeOverrides(users.overrideOf(name), change));
    await this.reloadQuotas();
    return this.known(name).quotas;
  }

  /** Drops a user's change: their configured quotas apply again. */
  async resetQuotas(name: string): Promise<Quotas> {
    this.known(name);
    await this.deps.store.setQuotaOverride(name, null);
    await this.reloadQuotas();
    return this.known(name).quotas;
  }

  /** Reads every override from the store (after a change here or on another node). */
  async reloadQuotas(): Promise<void> {
    this.deps.users.setOverrides(await this.deps.store.getQuotaOverrides());
    await this.countGpuDay();
    this.deps.changed();
  }

  private known(name: string): User {
    const u = this.deps.users.get(name);
    if (!u) throw notFound(`no user '${name}' (GET /api/v2/users lists them)`);
    return u;
  }
}

/** 429 for a submission of `adding` tasks beyond a user's queued quota, naming it. */
function queuedQuotaError(user: string, waiting: number, quota: number, adding: number): AppError {
  return new AppError(
    'rate_limited',
    `${user} has ${waiting} tasks waiting, the queued quota (${quota})${adding > 1 ? `, and asks for ${adding} more` : ''}; submit more once some have started`,
    { quota: 'queued', limit: quota, retry_after_s: 5 },
  );
}
