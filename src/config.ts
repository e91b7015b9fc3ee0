import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_NAME_PATTERN, RESOURCE_CLASSES, type ResourceClass } from './domain/task.js';
import { ConfigError } from './domain/errors.js';
import { loadUsers, type UserDirectory } from './util/users.js';

export const VERSION = '0.1.0';

export type LimitSpec = Record<string, Partial<Record<ResourceClass, number>>>;

export interface Config {
  /** Service home: the SQLite database and service files live here. */
  home: string;
  /** Every path a request names is confined to this folder. */
  dataRoot: string;
  dbFile: string;
  /**
   * PostgreSQL instead of the embedded SQLite file (DATABASE_URL or --database-url):
   * postgres://user:password@host:port/database. Null: SQLite under the home.
   */
  databaseUrl: string | null;
  /** Connections the PostgreSQL store keeps open at most (RFUAV_PG_POOL). */
  pgPoolSize: number;
  /** With PostgreSQL, this node in the cluster: its name and how it keeps its lease. */
  node: NodeSettings;
  host: string;
  port: number;
  /** Who may call (RFUAV_API_TOKENS, RFUAV_ADMINS, RFUAV_USERS_FILE, RFUAV_QUOTAS; src/util/users.ts). */
  users: UserDirectory;
  /** Whether users see every task (team) or only their own (RFUAV_VISIBILITY). */
  visibility: 'team' | 'own';
  /**
   * Fair share (scheduler/fair-share.ts): usage half-life (RFUAV_FAIRSHARE_HALFLIFE_H) and the
   * most priority steps it may add to a heavy user's tasks (RFUAV_FAIRSHARE_STEPS; 0 = off), and
   * how often the ledger is saved to the store and every node's charges read back
   * (RFUAV_FAIRSHARE_SAVE_S: in a cluster, how soon one node's use counts on the others).
   */
  fairShare: { halfLifeMs: number; steps: number; saveMs: number };
  /** Allow listening on a non-loopback address without tokens. */
  insecure: boolean;
  /**
   * Origins allowed to call the API from a browser page (CORS): '*' (any, the default: the
   * reference's pages are opened from file://, origin "null") or a list, which may include "null".
   */
  corsOrigins: '*' | string[];
  nvidiaSmi: string;
  /** How often GPU memory figures are re-read from the driver while GPUs exist (ms). */
  gpuRefreshMs: number;
  agingIntervalMs: number;
  /** What `device: cuda` means on a node without GPUs. */
  cudaFallback: 'cpu' | 'reject';
  /** Slot limits given at start-up (persisted live changes are applied on top). */
  startupLimits: LimitSpec;
  bodyLimitBytes: number;
  /** Task creations allowed per client per rate window; 0 disables the limit. */
  rateLimitMax: number;
  rateLimitWindowMs: number;
  /**
   * Proxies whose X-Forwarded-For is believed (RFUAV_TRUST_PROXY: addresses, CIDR ranges or
   * 'loopback', comma-separated), so a client behind nginx is limited as itself. Empty: none.
   */
  trustProxy: string[];
  sseHeartbeatMs: number;
  /** How long running work may take to stop on shutdown before it is killed and re-queued. */
  shutdownGraceMs: number;
  logLevel: string;
  environment: string;
  /** How the PyTorch runner is started and watched. */
  torch: TorchSettings;
  /** POST /api/v2/inference/predict (see src/predict/predict-service.ts). */
  predict: PredictSettings;
}

export interface NodeSettings {
  /** What operators call this node (RFUAV_NODE_NAME or --node-name; default the host name). */
  name: string;
  /** How often the node renews its lease and sweeps for lost nodes (RFUAV_HEARTBEAT_S). */
  heartbeatMs: number;
  /** A node silent this long is lost; its tasks go back to the queue (RFUAV_LEASE_S). */
  leaseMs: number;
  /** Backstop poll for work submitted on other nodes (RFUAV_POLL_S). */
  pollMs: number;
  /** How long another node's marker may be missing before the data root counts as not shared. */
  sharedRootGraceMs: number;
}

export interface TorchSettings {
  /** Interpreter with torch, torchvision and yaml (RFUAV_PYTHON; a CUDA venv on GPU servers). */
  python: string;
  /** A runner silent (no event, no stderr) for this long is stopped and its task failed. */
  silenceTimeoutMs: number;
  /** SIGTERM → SIGKILL grace when a run is stopped. */
  killGraceMs: number;
  /** CPU threads one run may use (torch.set_num_threads). */
  threads: number;
}

export { ConfigError };

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw == null || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be a number between ${min} and ${max} (got '${raw}')`);
  }
  return n;
}

function bool(env: Env, name: string): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env[name] ?? '').toLowerCase());
}

export function parseLimitSpec(text: string, source: string): LimitSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(`${source} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed == null || Array.isArray(parsed)) {
    throw new ConfigError(`${source} must be an object like {"cpu": {"training": 1}}`);
  }
  const out: LimitSpec = {};
  for (const [dev, classes] of Object.entries(parsed)) {
    if (!isDeviceKey(dev))
      throw new ConfigError(`${source}: unknown device '${dev}' (cpu, gpu, cuda or cuda:N)`);
    if (typeof classes !== 'object' || classes == null)
      throw new ConfigError(`${source}.${dev} must be an object`);
    for (const [cls, n] of Object.entries(classes)) {
      if (!(RESOURCE_CLASSES as readonly string[]).includes(cls)) {
        throw new ConfigError(`${source}.${dev}: unknown resource class '${cls}'`);
      }
      if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 1000) {
        throw new ConfigError(`${source}.${dev}.${cls} must be an integer 0–1000`);
      }
      (out[dev] ??= {})[cls as ResourceClass] = n as number;
    }
  }
  return out;
}

/** "cpu", "gpu"/"cuda" (every GPU) or "cuda:N". */
export function isDeviceKey(key: string): boolean {
  return key === 'cpu' || key === 'gpu' || key === 'cuda' || /^cuda:\d{1,3}$/.test(key);
}

export interface PredictSettings {
  /** Requests for one model run together up to this many (1 = no batching). */
  maxBatch: number;
  /** How long the first request of a batch waits for company. */
  maxWaitMs: number;
  /** Requests in progress at once (decoding, waiting, running); more are refused with 429. */
  maxInflight: number;
  /** Body size limit of the predict route (an image or an IQ chunk rides in the body). */
  bodyLimitBytes: number;
}

export interface ConfigOverrides {
  host?: string;
  port?: number;
  home?: string;
  dataRoot?: string;
  insecure?: boolean;
  databaseUrl?: string;
  nodeName?: string;
}

/** Reads and validates configuration once; the result is passed down, never read globally. */
export function loadConfig(env: Env = process.env, o: ConfigOverrides = {}, cwd = process.cwd()): Config {
  const home = path.resolve(cwd, o.home ?? env.RFUAV_HOME ?? '.rfuav');
  const dataRoot = path.resolve(cwd, o.dataRoot ?? env.RFUAV_DATA_ROOT ?? 'data');
  const fallback = env.RFUAV_CUDA_FALLBACK ?? 'cpu';
  if (fallback !== 'cpu' && fallback !== 'reject') {
    throw new ConfigError(`RFUAV_CUDA_FALLBACK must be 'cpu' or 'reject' (got '${fallback}')`);
  }
  const visibility = env.RFUAV_VISIBILITY ?? 'team';
  if (visibility !== 'team' && visibility !== 'own') {
    throw new ConfigError(`RFUAV_VISIBILITY must be 'team' or 'own' (got '${visibility}')`);
  }
  return {
    home,
    dataRoot,
    dbFile: path.join(home, 'rfuav.sqlite'),
    databaseUrl: databaseUrl(o.databaseUrl ?? env.DATABASE_URL),
    pgPoolSize: num(env, 'RFUAV_PG_POOL', 10, 1, 1000),
    node: nodeSettings(env, o.nodeName),
    host: o.host ?? env.RFUAV_HOST ?? '127.0.0.1',
    port: o.port ?? num(env, 'RFUAV_PORT', 8000, 0, 65535),
    users: loadUsers(env, cwd),
    visibility,
    fairShare: {
      halfLifeMs: num(env, 'RFUAV_FAIRSHARE_HALFLIFE_H', 24, 0.01, 24 * 365) * 3600_000,
      steps: num(env, 'RFUAV_FAIRSHARE_STEPS', 10, 0, 1000),
      saveMs: num(env, 'RFUAV_FAIRSHARE_SAVE_S', 30, 0.1, 3600) * 1000,
    },
    insecure: o.insecure ?? bool(env, 'RFUAV_INSECURE'),
    corsOrigins: corsOrigins(env.RFUAV_CORS_ORIGINS),
    nvidiaSmi: env.RFUAV_NVIDIA_SMI ?? 'nvidia-smi',
    gpuRefreshMs: num(env, 'RFUAV_GPU_REFRESH_S', 10, 0.1, 3600) * 1000,
    agingIntervalMs: num(env, 'RFUAV_AGING_INTERVAL_S', 60, 0, 86400) * 1000,
    cudaFallback: fallback,
    startupLimits: env.RFUAV_LIMITS ? parseLimitSpec(env.RFUAV_LIMITS, 'RFUAV_LIMITS') : {},
    bodyLimitBytes: num(env, 'RFUAV_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 1024 ** 3),
    rateLimitMax: num(env, 'RFUAV_RATE_LIMIT', 600, 0),
    rateLimitWindowMs: num(env, 'RFUAV_RATE_WINDOW_S', 60, 1, 86400) * 1000,
    trustProxy: (env.RFUAV_TRUST_PROXY ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    sseHeartbeatMs: num(env, 'RFUAV_SSE_HEARTBEAT_S', 15, 0.05, 3600) * 1000,
    shutdownGraceMs: num(env, 'RFUAV_SHUTDOWN_GRACE_S', 10, 0, 3600) * 1000,
    logLevel: env.RFUAV_LOG_LEVEL ?? 'info',
    environment: env.RFUAV_ENV ?? env.NODE_ENV ?? 'production',
    predict: {
      maxBatch: num(env, 'RFUAV_PREDICT_MAX_BATCH', 8, 1, 256),
      maxWaitMs: num(env, 'RFUAV_PREDICT_MAX_WAIT_MS', 5, 0, 10_000),
      maxInflight: num(env, 'RFUAV_PREDICT_MAX_INFLIGHT', 32, 1, 100_000),
      bodyLimitBytes: num(env, 'RFUAV_PREDICT_BODY_LIMIT_BYTES', 64 * 1024 * 1024, 1024, 1024 ** 3),
    },
    torch: {
      python: env.RFUAV_PYTHON || defaultPython(),
      silenceTimeoutMs: num(env, 'RFUAV_RUNNER_SILENCE_S', 600, 1, 86400) * 1000,
      killGraceMs: num(env, 'RFUAV_RUNNER_KILL_GRACE_S', 10, 0, 3600) * 1000,
      // Default: the cores shared by the CPU's default two training slots.
      threads: num(
        env,
        'RFUAV_TORCH_THREADS',
        Math.max(1, Math.floor(os.availableParallelism() / 2)),
        1,
        1024,
      ),
    },
  };
}

function nodeSettings(env: Env, name: string | undefined): NodeSettings {
  const heartbeatMs = num(env, 'RFUAV_HEARTBEAT_S', 5, 0.05, 3600) * 1000;
  const leaseMs = num(env, 'RFUAV_LEASE_S', 30, 0.2, 86400) * 1000;
  // A node stops its own work two heartbeats before its lease ends, and its runners stop two
  // heartbeats before that unless it renews it (cluster-node.ts): six heartbeats let two
  // renewals fail or come late without stopping anything.
  if (leaseMs < 6 * heartbeatMs) {
    throw new ConfigError(
      `RFUAV_LEASE_S (${leaseMs / 1000}) must be at least six heartbeats (RFUAV_HEARTBEAT_S ${heartbeatMs / 1000})`,
    );
  }
  const given = name ?? env.RFUAV_NODE_NAME;
  // The host name, made a valid node name whatever it is (only a given name can be refused).
  const nodeName =
    given?.trim() ||
    os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 63) ||
    'node';
  if (!new RegExp(NODE_NAME_PATTERN).test(nodeName)) {
    throw new ConfigError(`the node name '${nodeName}' must be 1-63 letters, digits, '.', '_' or '-'`);
  }
  return {
    name: nodeName,
    heartbeatMs,
    leaseMs,
    pollMs: num(env, 'RFUAV_POLL_S', 2, 0.05, 3600) * 1000,
    sharedRootGraceMs: num(env, 'RFUAV_SHARED_ROOT_GRACE_S', 120, 0, 86400) * 1000,
  };
}

/** DATABASE_URL: unset or empty = the embedded SQLite store; else a postgres:// URL. */
function databaseUrl(raw: string | undefined): string | null {
  const url = raw?.trim();
  if (!url) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('DATABASE_URL must be a URL such as postgres://user:password@host:5432/rfuav');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`DATABASE_URL must start with postgres:// (got '${parsed.protocol}//…')`);
  }
  return url;
}

/** RFUAV_CORS_ORIGINS: unset, empty or '*' = any origin; else a comma-separated list of origins. */
function corsOrigins(raw: string | undefined): '*' | string[] {
  const list = (raw ?? '')
    .split(',')
    .map((o) => o.trim().replace(/\/+$/, ''))
    .filter(Boolean);
  if (list.length === 0 || list.includes('*')) return '*';
  for (const o of list) {
    if (o !== 'null' && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(o)) {
      throw new ConfigError(
        `RFUAV_CORS_ORIGINS: '${o}' is not an origin (scheme://host[:port], or null for file:// pages)`,
      );
    }
  }
  return list;
}

/** Debian's interpreter (where python3-torch installs) when present, else python3 on PATH. */
function defaultPython(): string {
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

export const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}
