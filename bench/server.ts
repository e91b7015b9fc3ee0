/**
 * Starts the service under test in a separate child process (bench/server-main.ts) and manages its
 * life: temp directories, readiness, memory readings, graceful stop, and — whatever happens in the
 * benchmark — killing it at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root: the child runs from here so `--import tsx` and relative imports resolve. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Slot limits as RFUAV_LIMITS takes them, e.g. { cpu: { preprocessing: 0 } }. */
export type Limits = Record<string, Record<string, number>>;

/** Service home and data root under os.tmpdir(); reusable across restarts of the server. */
export interface BenchHome {
  home: string;
  dataRoot: string;
  /** Removes both (kept when BENCH_KEEP=1, for inspecting the database afterwards). */
  cleanup(): void;
}

export function createBenchHome(label = 'bench'): BenchHome {
  installExitHooks();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `rfuav-${label}-`));
  const home = path.join(base, 'home');
  const dataRoot = path.join(base, 'data');
  fs.mkdirSync(home);
  fs.mkdirSync(dataRoot);
  const cleanup = () => {
    liveHomes.delete(cleanup);
    if (process.env.BENCH_KEEP === '1') {
      console.error(`[bench] keeping ${base} (BENCH_KEEP=1)`);
      return;
    }
    fs.rmSync(base, { recursive: true, force: true });
  };
  liveHomes.add(cleanup);
  return { home, dataRoot, cleanup };
}

export interface MemoryReading {
  /** Resident set size now (VmRSS), bytes. */
  rssBytes: number;
  /** Peak resident set size over the process's life (VmHWM), bytes. */
  peakRssBytes: number;
}

/** User + system CPU seconds a process has used so far (Linux /proc), or NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return NaN;
  }
}

/** Reads a process's memory from /proc (Linux only; null elsewhere or once it has exited). */
export function readMemory(pid: number): MemoryReading | null {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  const rssBytes = kb('VmRSS');
  const peakRssBytes = kb('VmHWM');
  return Number.isFinite(rssBytes) ? { rssBytes, peakRssBytes } : null;
}

export interface StartOptions {
  /** Child entry, relative to the repository root (bench/bare-main.ts for the baseline). */
  entry?: string;
  /** Reuse a home (for restarts); by default a fresh one is created and removed on stop(). */
  home?: BenchHome;
  /** Start-up slot limits (RFUAV_LIMITS). */
  limits?: Limits;
  /** Extra RFUAV_* variables. */
  env?: Record<string, string>;
  /** How long to wait for the LISTENING line. Recovery of a deep queue needs a while. */
  startTimeoutMs?: number;
}

export interface StopResult {
  /** SIGTERM → process exit. */
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the graceful stop timed out and the process had to be SIGKILLed. */
  killed: boolean;
}

export interface BenchServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  pid: number;
  home: BenchHome;
  /** Spawn → LISTENING line, as seen by the parent (includes Node + tsx boot). */
  spawnToListenMs: number;
  /** createService() + listen() inside the child (store open, recovery, routes). */
  serviceReadyMs: number;
  memory(): MemoryReading | null;
  /** SIGTERM and wait for exit (SIGKILL after `timeoutMs`). Removes the home only if it created it. */
  stop(timeoutMs?: number): Promise<StopResult>;
}

/** Every child still alive: killed on any exit of the benchmark process, including errors. */
const live = new Set<ChildProcess>();
/** Temp homes not yet removed: removed on exit too (after their server is dead). */
const liveHomes = new Set<() => void>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing that is certain to work here.
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const cleanup of liveHomes) cleanup();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`[bench] ${sig}: killing the server and exiting`);
      process.exit(130);
    });
  }
}

/** The child's environment: ours minus every RFUAV_* (so a developer's settings do not leak in). */
function childEnv(home: BenchHome, opts: StartOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RFUAV_')) env[k] = v;
  return {
    ...env,
    RFUAV_HOME: home.home,
    RFUAV_DATA_ROOT: home.dataRoot,
    // Loopback only, OS-chosen free port; never reachable from outside the machine.
    RFUAV_HOST: '127.0.0.1',
    RFUAV_PORT: '0',
    // The creation rate limit (600/min per client by default) would turn a load test into a 429 test.
    RFUAV_RATE_LIMIT: '0',
    RFUAV_LOG_LEVEL: 'warn',
    ...(opts.limits ? { RFUAV_LIMITS: JSON.stringify(opts.limits) } : {}),
    ...opts.env,
    BENCH_EXIT_ON_STDIN_END: '1',
  };
}

export async function startServer(opts: StartOptions = {}): Promise<BenchServer> {
  installExitHooks();
  const ownsHome = !opts.home;
  const home = opts.home ?? createBenchHome();
  const t0 = performance.now();
  // BENCH_SERVER_NODE_ARGS passes extra Node flags to the server only, e.g. "--cpu-prof" to profile it.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', opts.entry ?? 'bench/server-main.ts'],
    {
      cwd: REPO_ROOT,
      env: childEnv(home, opts),
      // stdin stays open (the child exits when it closes); stdout carries LISTENING and pino logs.
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );

  // Server output goes to our stderr, prefixed, so stdout carries only the benchmark's tables. The
  // pipes must keep being drained for the child's whole life, or it would block on a full pipe.
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(prefixLines(chunk.toString())));
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });

  const ready = new Promise<{ url: string; readyMs: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not report LISTENING within ${opts.startTimeoutMs ?? 60_000} ms`)),
      opts.startTimeoutMs ?? 60_000,
    );
    lines.on('line', (line) => {
      const m = /^LISTENING (\S+) ready_ms=([\d.]+)$/.exec(line);
      if (!m) {
        process.stderr.write(prefixLines(`${line}\n`));
        return;
      }
      clearTimeout(timer);
      resolve({ url: m[1] as string, readyMs: Number(m[2]) });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening (code ${code}, signal ${signal})`));
    });
  });

  let started: { url: string; readyMs: number };
  try {
    started = await ready;
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    if (ownsHome) home.cleanup();
    throw err;
  }
  const spawnToListenMs = performance.now() - t0;
  let stopping = false;
  void exited.then(({ code, signal }) => {
    if (!stopping)
      console.error(`[bench] server ${child.pid} exited unexpectedly (code ${code}, signal ${signal})`);
  });

  return {
    url: started.url,
    pid: child.pid as number,
    home,
    spawnToListenMs,
    serviceReadyMs: started.readyMs,
    memory: () => readMemory(child.pid as number),
    async stop(timeoutMs = 30_000) {
      stopping = true;
      const s0 = performance.now();
      let killed = false;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      const { code, signal } = await exited;
      if (ownsHome) home.cleanup();
      return { ms: performance.now() - s0, code, signal, killed };
    },
  };
}

function prefixLines(text: string): string {
  return text
    .split('\n')
    .map((l, i, all) => (l === '' && i === all.length - 1 ? '' : `[server] ${l}\n`))
    .join('');
}

// ----- small HTTP helpers for set-up and checks (not for load: that is autocannon's job) -----

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function postJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export interface Health {
  status: string;
  resource_status: { queue_length: number; running: number };
}

export const health = (server: { url: string }) => getJson<Health>(`${server.url}/api/v1/health`);

/** Task fields the benchmarks read (GET /api/v2/tasks/:id and the list). */
export interface TaskView {
  task_id: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
}

/** Newest-first task ids of a kind (the list route caps `limit` at 1000). */
export async function listTasks(server: { url: string }, kind: string, limit: number): Promise<TaskView[]> {
  const res = await getJson<{ other_tasks: TaskView[] }>(
    `${server.url}/api/v2/tasks?task_type=${encodeURIComponent(kind)}&limit=${limit}`,
  );
  return res.other_tasks;
}

/** Sizes (bytes) of the service's SQLite database and its write-ahead log; 0 when absent. */
export function dbFileSizes(home: BenchHome): { db: number; wal: number } {
  const size = (f: string) => {
    try {
      return fs.statSync(path.join(home.home, f)).size;
    } catch {
      return 0;
    }
  };
  return { db: size('rfuav.sqlite'), wal: size('rfuav.sqlite-wal') };
}
