/**
 * The directory of users (issue 16): who a bearer token belongs to, their role, share and quotas.
 * Built once from the environment and an optional users file:
 *
 * - `RFUAV_API_TOKENS=alice:tok1,bob:tok2` names each token's user; a plain `tok1,tok2` makes each
 *   token its own user (`token-1`, `token-2`), as before users existed.
 * - `RFUAV_ADMINS=alice,…` names the admins of that form.
 * - `RFUAV_USERS_FILE` (YAML or JSON): `users: [{name, role, share, quotas, token_sha256}]` and
 *   optional `defaults: {share, quotas}`. Tokens are stored only as salted hashes
 *   (`sha256:<salt hex>:<digest hex>`, made by `rfuav hash-token`).
 * - `RFUAV_QUOTAS` (JSON): every user's default quotas, e.g. `{"queued":200,"running":{"training":2}}`.
 *
 * When nobody is named admin anywhere, every user is one: the team trusts itself, as it had to
 * when tokens were anonymous. A salted SHA-256 and not a slow password hash: API tokens are long
 * random secrets, so a fast hash loses nothing against guessing, and a request must not pay tens of
 * milliseconds of key stretching.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError, invalidField } from '../domain/errors.js';
import { RESOURCE_CLASSES, type ResourceClass } from '../domain/task.js';
import {
  applyOverride,
  LOCAL_USER,
  USER_NAME,
  type QuotaOverride,
  type Quotas,
  type Role,
  type User,
} from '../domain/users.js';
import { RecentMap } from './recent.js';

type Env = Record<string, string | undefined>;

interface Credential {
  user: User;
  /** A token from the environment, or a hash from the users file. */
  plain?: Buffer;
  salt?: Buffer;
  digest?: Buffer;
}

const HASH = /^sha256:([0-9a-f]{16,128}):([0-9a-f]{64})$/;

function digestOf(salt: Buffer, token: Buffer): Buffer {
  return createHash('sha256').update(salt).update(token).digest();
}

/** A users-file line for `token` (a fresh random salt each time). */
export function hashToken(token: string): string {
  const salt = randomBytes(16);
  return `sha256:${salt.toString('hex')}:${digestOf(salt, Buffer.from(token)).toString('hex')}`;
}

/** A new random token (32 bytes, URL-safe base64). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export class UserDirectory {
  /** As configured (environment and users file). */
  private readonly configured = new Map<string, User>();
  /** As in force: the configured users with the admins' quota overrides applied. */
  private readonly byName = new Map<string, User>();
  private overrides: Record<string, QuotaOverride> = {};
  private readonly credentials: Credential[];
  /** Tokens already matched, to their user's name (a hashed token then costs one map lookup). */
  private readonly seen = new RecentMap<string, string>(1024);

  constructor(credentials: Credential[], users: User[]) {
    this.credentials = credentials;
    for (const u of users) this.configured.set(u.name, u);
    if (credentials.length === 0 && !this.configured.has(LOCAL_USER.name))
      this.configured.set(LOCAL_USER.name, LOCAL_USER);
    this.setOverrides({});
  }

  /** Whether requests must carry a token (some are configured). */
  get secured(): boolean {
    return this.credentials.length > 0;
  }

  /** The user a bearer token belongs to (with the quotas in force now), or null. Constant time per credential. */
  authenticate(token: string): User | null {
    const known = this.seen.get(token);
    if (known) return this.byName.get(known) ?? null;
    const given = Buffer.from(token);
    let found: User | null = null;
    for (const c of this.credentials) {
      let ok = false;
      if (c.plain) ok = c.plain.length === given.length && timingSafeEqual(c.plain, given);
      else if (c.salt && c.digest) ok = timingSafeEqual(digestOf(c.salt, given), c.digest);
      if (ok) found = c.user;
    }
    if (!found) return null;
    this.seen.set(token, found.name);
    return this.byName.get(found.name) ?? null;
  }

  /** A user as in force now (the local user alone when no tokens are configured). */
  get(name: string): User | undefined {
    return this.byName.get(name);
  }

  /** Every user, by name (the local user alone when no tokens are configured). */
  list(): User[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A user's quotas as configured, before any override. */
  configuredQuotas(name: string): Quotas | undefined {
    return this.configured.get(name)?.quotas;
  }

  /** A user's override (empty when none). */
  overrideOf(name: string): QuotaOverride {
    return this.overrides[name] ?? {};
  }

  /**
   * Replaces every override (from the store: at start, after a change, or when another node says
   * one changed). Overrides of users no longer configured are kept but unused.
   */
  setOverrides(overrides: Record<string, QuotaOverride>): void {
    this.overrides = { ...overrides };
    for (const [name, u] of this.configured) {
      const o = this.overrides[name];
      this.byName.set(name, o ? Object.freeze({ ...u, quotas: applyOverride(u.quotas, o) }) : u);
    }
  }
}

/** Reads the users from the environment and the users file; a mistake is a ConfigError naming it. */
export function loadUsers(env: Env, cwd: string): UserDirectory {
  const defaults = parseQuotas(
    env.RFUAV_QUOTAS ? parseJson(env.RFUAV_QUOTAS, 'RFUAV_QUOTAS') : {},
    'RFUAV_QUOTAS',
  );
  const admins = new Set(
    (env.RFUAV_ADMINS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const entries: {
    name: string;
    role?: Role;
    share?: number;
    quotas?: Quotas;
    cred: Omit<Credential, 'user'>;
  }[] = [];
  const items = (env.RFUAV_API_TOKENS ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  items.forEach((item, i) => {
    const colon = item.indexOf(':');
    const named = colon > 0 && USER_NAME.test(item.slice(0, colon)) && colon < item.length - 1;
    const name = named ? item.slice(0, colon) : `token-${i + 1}`;
    entries.push({ name, cred: { plain: Buffer.from(named ? item.slice(colon + 1) : item) } });
  });
  let fileDefaults: { share?: number; quotas?: Quotas } = {};
  if (env.RFUAV_USERS_FILE) {
    const file = readUsersFile(path.resolve(cwd, env.RFUAV_USERS_FILE));
    fileDefaults = file.defaults;
    entries.push(...file.users);
  }
  for (const a of admins) {
    if (!entries.some((e) => e.name === a))
      throw new ConfigError(
        `RFUAV_ADMINS names '${a}', who has no token (RFUAV_API_TOKENS or RFUAV_USERS_FILE)`,
      );
  }
  const anyAdmin = admins.size > 0 || entries.some((e) => e.role === 'admin');
  const users = new Map<string, User>();
  const credentials: Credential[] = [];
  for (const e of entries) {
    if (users.has(e.name)) throw new ConfigError(`user '${e.name}' is named twice`);
    const user: User = Object.freeze({
      name: e.name,
      role: !anyAdmin || admins.has(e.name) || e.role === 'admin' ? 'admin' : 'user',
      share: e.share ?? fileDefaults.share ?? 1,
      quotas: mergeQuotas(mergeQuotas(defaults, fileDefaults.quotas ?? {}), e.quotas ?? {}),
    });
    users.set(e.name, user);
    credentials.push({ ...e.cred, user });
  }
  const plains = credentials.filter((c) => c.plain).map((c) => c.plain?.toString());
  if (new Set(plains).size !== plains.length)
    throw new ConfigError('RFUAV_API_TOKENS holds the same token twice');
  // Without tokens every caller is the local user, who has the default quotas.
  if (entries.length === 0) users.set(LOCAL_USER.name, Object.freeze({ ...LOCAL_USER, quotas: defaults }));
  return new UserDirectory(credentials, [...users.values()]);
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where} is not JSON: ${(err as Error).message}`);
  }
}

function readUsersFile(file: string) {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`RFUAV_USERS_FILE ${file} could not be read: ${(err as Error).message}`);
  }
  const where = `RFUAV_USERS_FILE ${file}`;
  const d = (doc ?? {}) as { users?: unknown; defaults?: unknown };
  if (!Array.isArray(d.users)) throw new ConfigError(`${where}: expected a 'users' list`);
  const defaults = (d.defaults ?? {}) as Record<string, unknown>;
  return {
    defaults: {
      share: defaults.share === undefined ? undefined : share(defaults.share, `${where} defaults.share`),
      quotas: parseQuotas(defaults.quotas ?? {}, `${where} defaults.quotas`),
    },
    users: d.users.map((raw, i) => userEntry(raw, `${where} users[${i}]`)),
  };
}

function userEntry(raw: unknown, where: string) {
  const u = (raw ?? {}) as Record<string, unknown>;
  if (typeof u.name !== 'string' || !USER_NAME.test(u.name))
    throw new ConfigError(`${where}: name must be letters, digits, _ . @ - (at most 64)`);
  if (u.role !== undefined && u.role !== 'admin' && u.role !== 'user')
    throw new ConfigError(`${where}: role must be admin or user`);
  const m = typeof u.token_sha256 === 'string' ? HASH.exec(u.token_sha256) : null;
  if (!m)
    throw new ConfigError(
      `${where}: token_sha256 must be sha256:<salt hex>:<digest hex> (make one with rfuav hash-token)`,
    );
  return {
    name: u.name,
    role: u.role as Role | undefined,
    share: u.share === undefined ? undefined : share(u.share, `${where}.share`),
    quotas: parseQuotas(u.quotas ?? {}, `${where}.quotas`),
    cred: { salt: Buffer.from(m[1] as string, 'hex'), digest: Buffer.from(m[2] as string, 'hex') },
  };
}

function share(v: unknown, where: string): number {
  if (typeof v !== 'number' || !(v > 0) || v > 1e6)
    throw new ConfigError(`${where} must be a number above 0`);
  return v;
}

/** How a quota reader reports a problem: the field's path and what is wrong with it. */
type Fail = (field: string, message: string) => Error;

const configFail: Fail = (field, message) => new ConfigError(`${field} ${message}`);

function count(v: unknown, field: string, fail: Fail): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 1e9)
    throw fail(field, 'must be a whole number ≥ 0');
  return v;
}

function hours(v: unknown, field: string, fail: Fail): number {
  if (typeof v !== 'number' || !(v >= 0) || v > 1e6) throw fail(field, 'must be a number ≥ 0');
  return v;
}

/**
 * Reads quotas from JSON/YAML, checking every field (an unknown one is an error, not ignored).
 * With `nulls`, a field may be null: an override that lifts that quota.
 */
function readQuotas(raw: unknown, where: string, fail: Fail, nulls: boolean): QuotaOverride {
  const at = (k: string) => (where ? `${where}.${k}` : k);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw fail(where || 'body', 'must be an object');
  const q = raw as Record<string, unknown>;
  const out: QuotaOverride = {};
  const value = <T>(v: unknown, read: () => T): T | null => (nulls && v === null ? null : read());
  for (const k of Object.keys(q)) {
    if (k === 'queued') out.queued = value(q.queued, () => count(q.queued, at(k), fail));
    else if (k === 'gpu_hours_per_day') out.gpu_hours_per_day = value(q[k], () => hours(q[k], at(k), fail));
    else if (k === 'running') {
      const r = q.running as Record<string, unknown>;
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw fail(at(k), 'must be an object');
      out.running = {};
      for (const [cls, n] of Object.entries(r)) {
        if (!(RESOURCE_CLASSES as readonly string[]).includes(cls))
          throw fail(at(`running.${cls}`), `is not a resource class (${RESOURCE_CLASSES.join(', ')})`);
        out.running[cls as ResourceClass] = value(n, () => count(n, at(`running.${cls}`), fail));
      }
    } else throw fail(at(k), 'is an unknown quota (queued, running, gpu_hours_per_day)');
  }
  return out;
}

/** Quotas from the configuration (a mistake is a ConfigError naming it). */
export function parseQuotas(raw: unknown, where: string): Quotas {
  return readQuotas(raw, where, configFail, false) as Quotas;
}

/** An admin's change to a user's quotas (null lifts a quota; a mistake is a 422 naming the field). */
export function parseQuotaChange(raw: unknown): QuotaOverride {
  return readQuotas(raw, '', (field, message) => invalidField(field, message), true);
}

function mergeQuotas(base: Quotas, over: Quotas): Quotas {
  return {
    ...base,
    ...over,
    ...(base.running || over.running ? { running: { ...base.running, ...over.running } } : {}),
  };
}
