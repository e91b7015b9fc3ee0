/**
 * Fair share (issue 16): who has had the devices lately, and how much that moves a user's tasks
 * back in the queue. Pure: no I/O, no clock (callers pass `now`, ms since the epoch).
 *
 * Usage U of a user is the device-seconds of their running tasks, a GPU second weighted
 * `gpuWeight` and a CPU second `cpuWeight`, decayed with a half-life H: usage from H ago counts
 * half, from 2H a quarter. Among the users with usage left, u = U / ΣU is a user's part of the
 * recent usage and s = share / Σshare their part of the team; the fair-share factor is Slurm's classic F = 2^(−u/s): 1 for a user who has used nothing,
 * 0.5 for one who has used exactly their share, towards 0 for one who has used far more.
 *
 * The queue order then adds `steps × (1 − F)` priority steps to each of a user's tasks (the
 * scheduler core turns steps into its order key; see core.ts). Bounded by `steps`: a user's
 * task can be overtaken by later tasks of others only for as long as aging takes to give
 * `steps` priority steps, so nothing starves; a single user's own tasks keep their order, since
 * all of them move by the same amount.
 */
import type { User } from '../domain/users.js';
import type { UsageRecord } from '../store/store.js';

export interface FairShareOptions {
  /** Half-life of usage (ms); RFUAV_FAIRSHARE_HALFLIFE_H. */
  halfLifeMs: number;
  /** The most priority steps fair share may add (a user far over their share); 0 turns it off. */
  steps: number;
  /** Weight of one device-second of use: GPUs count above CPU. */
  gpuWeight: number;
  cpuWeight: number;
}

export const DEFAULT_FAIR_SHARE: FairShareOptions = {
  halfLifeMs: 24 * 3600_000,
  steps: 10,
  gpuWeight: 1,
  cpuWeight: 0.1,
};

/** Usage left below this counts as none (a user idle for ~30 half-lives). */
const NEGLIGIBLE = 1e-9;

export class FairShare {
  private readonly usage = new Map<string, { usage: number; at: number }>();
  private readonly shares = new Map<string, number>();
  /** Charges not yet written to the store (added to its ledger there: nodes never overwrite each other). */
  private unsaved = new Map<string, number>();
  /** GPU-seconds per user in the last 24 h, as the store last counted them (the daily budget). */
  private gpuDay = new Map<string, number>();

  constructor(readonly opts: FairShareOptions = DEFAULT_FAIR_SHARE) {}

  /** The team's ledger: the configured half-life and steps, each user's share weight. */
  static forTeam(
    settings: Pick<FairShareOptions, 'halfLifeMs' | 'steps'>,
    users: readonly User[],
  ): FairShare {
    const fs = new FairShare({ ...DEFAULT_FAIR_SHARE, ...settings });
    for (const u of users) fs.setShare(u.name, u.share);
    return fs;
  }

  setGpuDay(rows: readonly { owner: string; seconds: number }[]): void {
    this.gpuDay = new Map(rows.map((r) => [r.owner, r.seconds]));
  }

  gpuSecondsToday(user: string): number {
    return this.gpuDay.get(user) ?? 0;
  }

  get enabled(): boolean {
    return this.opts.steps > 0;
  }

  /** A user's share weight (1 unless set). */
  setShare(user: string, share: number): void {
    this.shares.set(user, share);
  }

  shareOf(user: string): number {
    return this.shares.get(user) ?? 1;
  }

  /**
   * Usage as the store has it (at start, and after each save: every node's charges). Charges made
   * here since the last `takeUnsaved` are not in it yet and are kept on top.
   */
  load(records: readonly UsageRecord[]): void {
    for (const r of records)
      this.usage.set(r.user, { usage: r.usage + (this.unsaved.get(r.user) ?? 0), at: r.at });
  }

  /** A charge taken for the store that did not reach it: saved with the next ones. */
  recharge(user: string, amount: number): void {
    this.unsaved.set(user, (this.unsaved.get(user) ?? 0) + amount);
  }

  /** The charges made since the last call, for the store to add to its ledger. */
  takeUnsaved(): { user: string; amount: number }[] {
    const out = [...this.unsaved].map(([user, amount]) => ({ user, amount }));
    this.unsaved = new Map();
    return out;
  }

  /** A user's usage decayed to `now`. */
  usageOf(user: string, now: number): number {
    const u = this.usage.get(user);
    if (!u) return 0;
    const dt = Math.max(0, now - u.at);
    return u.usage * 2 ** (-dt / this.opts.halfLifeMs);
  }

  /** Adds `seconds` of use of one device (`gpu`: a GPU, else the CPU) to a user, as of `now`. */
  charge(user: string, seconds: number, gpu: boolean, now: number): void {
    if (!(seconds > 0)) return;
    const amount = seconds * (gpu ? this.opts.gpuWeight : this.opts.cpuWeight);
    this.usage.set(user, { usage: this.usageOf(user, now) + amount, at: now });
    this.unsaved.set(user, (this.unsaved.get(user) ?? 0) + amount);
  }

  /**
   * The factors at `now` of the users with usage left. Everyone uses this one definition — the
   * scheduler, the cluster's claim, /users, /metrics — so what is shown is what orders the queue;
   * a user with no usage has F = 1 (no steps) and is not in the map.
   */
  factors(now: number): Map<string, Factor> {
    const users = new Set<string>();
    for (const [user] of this.usage) if (this.usageOf(user, now) > NEGLIGIBLE) users.add(user);
    let totalUse = 0;
    let totalShare = 0;
    const use = new Map<string, number>();
    for (const u of users) {
      const x = this.usageOf(u, now);
      use.set(u, x);
      totalUse += x;
      totalShare += this.shareOf(u);
    }
    const out = new Map<string, Factor>();
    for (const u of users) {
      const usedPart = totalUse > NEGLIGIBLE ? (use.get(u) as number) / totalUse : 0;
      const sharePart = this.shareOf(u) / totalShare;
      const factor = 2 ** (-usedPart / sharePart);
      out.set(u, {
        factor,
        steps: this.enabled ? this.opts.steps * (1 - factor) : 0,
        usedOverShare: usedPart / sharePart,
      });
    }
    return out;
  }
}

export interface Factor {
  /** F = 2^(−u/s), in (0, 1]. */
  factor: number;
  /** Priority steps added to the user's tasks: steps × (1 − F). */
  steps: number;
  /** u / s: 1 = exactly their share of recent use, 3 = three times it. */
  usedOverShare: number;
}
