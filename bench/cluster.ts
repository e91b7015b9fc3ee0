/**
 * Cluster mode, measured on this machine: three nodes on one PostgreSQL behind nginx
 * (deploy/nginx.conf) against one node on its embedded SQLite, in one run.
 *
 *  1. Creation and status reads: autocannon, 50 connections, POST /api/v2/preprocessing/bench-hold
 *     (the preprocessing limit is 0, so tasks only queue: the cost of accepting them), then
 *     GET /api/v2/tasks/{id} over the ids created — through nginx to three nodes, and straight to
 *     the SQLite node.
 *  2. Cross-node dispatch latency: node a may not run the kind (its limit is 0), node b is idle;
 *     one task at a time is submitted to a and its stored created_at → started_at is taken (b
 *     starts it, woken by NOTIFY). The same on the SQLite node (submission → start on itself).
 *  3. Failover: the node running a 60 s task is killed (-9); the time until the task is running on
 *     the other node, for two lease settings.
 *
 * PostgreSQL and nginx come from Debian (test/postgres.ts and test/nginx.ts start them, installing
 * them with apt-get when missing and running as root), on loopback ports and temp folders.
 *
 * Run: node --import tsx bench/cluster.ts   (BENCH_QUICK=1: shorter runs, docs left alone)
 */
import fs from 'node:fs';
import { startNginx } from '../test/nginx.js';
import { startPostgres, type TestPostgres } from '../test/postgres.js';
import { runLoad, type LoadResult } from './load.js';
import { QUICK, fmtInt, fmtMs, machineInfo, mdTable, percentile, writeSection } from './report.js';
import { cpuSeconds, createBenchHome, getJson, postJson, startServer, type BenchServer } from './server.js';

const LOAD_SEC = QUICK ? 2 : 5;
const CONNECTIONS = 50;
const DISPATCH_TASKS = QUICK ? 20 : 100;
const FAILOVER_RUNS = QUICK ? 1 : 3;

interface Row {
  setup: string;
  create: LoadResult;
  read: LoadResult;
  /** CPU seconds spent during the creation run, by part. */
  cpu: Record<Part, number>;
}

type Part = 'service' | 'postgres' | 'nginx' | 'load';

/** Pids of every process whose command name is `comm` (postgres, nginx). */
function pidsOf(comm: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
      } catch {
        return false;
      }
    });
}

/** CPU seconds so far of the service processes, PostgreSQL, nginx and this load generator. */
function cpuNow(servicePids: number[]): Record<Part, number> {
  const sum = (pids: number[]) => pids.reduce((a, p) => a + (cpuSeconds(p) || 0), 0);
  const self = process.cpuUsage();
  return {
    service: sum(servicePids),
    postgres: sum(pidsOf('postgres')),
    nginx: sum(pidsOf('nginx')),
    load: (self.user + self.system) / 1e6,
  };
}

/** Nodes of one database with a shared data root. */
async function startNodes(
  db: string,
  names: string[],
  env: (name: string) => Record<string, string> = () => ({}),
): Promise<BenchServer[]> {
  const shared = createBenchHome('cluster-data');
  return Promise.all(
    names.map((name) =>
      startServer({
        env: {
          DATABASE_URL: db,
          RFUAV_NODE_NAME: name,
          RFUAV_DATA_ROOT: shared.dataRoot,
          ...env(name),
        },
      }),
    ),
  );
}

const hold = (ms: number) => JSON.stringify({ hold_ms: ms });

async function creationAndReads(setup: string, url: string, servicePids: number[]): Promise<Row> {
  // A warm-up, then the measured runs.
  await runLoad({
    url,
    connections: 10,
    amount: 500,
    maxSec: 30,
    method: 'POST',
    path: '/api/v2/preprocessing/bench-hold',
    body: hold(0),
  });
  const cpu0 = cpuNow(servicePids);
  const create = await runLoad({
    url,
    connections: CONNECTIONS,
    durationSec: LOAD_SEC,
    method: 'POST',
    path: '/api/v2/preprocessing/bench-hold',
    body: hold(0),
  });
  const cpu1 = cpuNow(servicePids);
  const cpu = Object.fromEntries((Object.keys(cpu0) as Part[]).map((k) => [k, cpu1[k] - cpu0[k]])) as Record<
    Part,
    number
  >;
  const list = await getJson<{ other_tasks: { task_id: string }[] }>(
    `${url}/api/v2/tasks?task_type=bench_hold&limit=1000`,
  );
  const ids = list.other_tasks.map((t) => t.task_id);
  let i = 0;
  const read = await runLoad({
    url,
    connections: CONNECTIONS,
    durationSec: LOAD_SEC,
    path: () => `/api/v2/tasks/${ids[i++ % ids.length]}`,
  });
  return { setup, create, read, cpu };
}

interface TaskTimes {
  status: string;
  created_at: string;
  started_at: string | null;
  node?: string | null;
}

/** Submits one task at a time to `submitTo` and takes created_at → started_at of each. */
async function dispatchLatencies(submitTo: string, readFrom: string): Promise<number[]> {
  const out: number[] = [];
  for (let n = 0; n < DISPATCH_TASKS; n++) {
    const { task_id } = await postJson<{ task_id: string }>(`${submitTo}/api/v2/preprocessing/bench-hold`, {
      hold_ms: 0,
    });
    for (let tries = 0; ; tries++) {
      const t = await getJson<TaskTimes>(`${readFrom}/api/v2/tasks/${task_id}`);
      if (t.status === 'completed' && t.started_at) {
        out.push(Date.parse(t.started_at) - Date.parse(t.created_at));
        break;
      }
      if (tries > 500) throw new Error(`task ${task_id} did not run: ${JSON.stringify(t)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  return out.sort((a, b) => a - b);
}

/** Kill -9 of the node running a task → running on the other node, in ms. */
async function failoverOnce(pg: TestPostgres, leaseS: number, heartbeatS: number): Promise<number> {
  const db = await pg.createDatabase();
  const nodes = await startNodes(db, ['a', 'b'], () => ({
    RFUAV_LEASE_S: String(leaseS),
    RFUAV_HEARTBEAT_S: String(heartbeatS),
    RFUAV_POLL_S: '0.5',
  }));
  try {
    const { task_id } = await postJson<{ task_id: string }>(
      `${(nodes[0] as BenchServer).url}/api/v2/preprocessing/bench-hold`,
      { hold_ms: 60_000 },
    );
    let runner: string | null = null;
    while (!runner) {
      const t = await getJson<TaskTimes>(`${(nodes[0] as BenchServer).url}/api/v2/tasks/${task_id}`);
      if (t.status === 'running') runner = t.node ?? null;
      else await new Promise((r) => setTimeout(r, 20));
    }
    const victim = runner === 'a' ? 0 : 1;
    const other = nodes[1 - victim] as BenchServer;
    process.kill((nodes[victim] as BenchServer).pid, 'SIGKILL');
    const killedAt = Date.now();
    for (;;) {
      const t = await getJson<TaskTimes>(`${other.url}/api/v2/tasks/${task_id}`);
      if (t.status === 'running' && t.node !== runner) return Date.now() - killedAt;
      if (Date.now() - killedAt > leaseS * 1000 * 4) throw new Error('the task was not taken over');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop(5000)));
  }
}

function stats(sorted: number[]): string[] {
  return [
    fmtInt(sorted.length),
    fmtMs(percentile(sorted, 50)),
    fmtMs(percentile(sorted, 95)),
    fmtMs(sorted.at(-1) ?? NaN),
  ];
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const pg = await startPostgres();
  const rows: Row[] = [];
  let dispatch: { setup: string; ms: number[] }[] = [];
  const failover: { lease: string; ms: number[] }[] = [];
  try {
    // 1. Creation and reads.
    const single = await startServer({ limits: { cpu: { preprocessing: 0 } } });
    rows.push(await creationAndReads('1 node, SQLite (direct)', single.url, [single.pid]));
    await single.stop();
    const db = await pg.createDatabase();
    const three = await startNodes(db, ['a', 'b', 'c'], () => ({
      RFUAV_LIMITS: JSON.stringify({ cpu: { preprocessing: 0 } }),
    }));
    const lb = await startNginx(three.map((n) => new URL(n.url).host));
    try {
      rows.push(
        await creationAndReads(
          '3 nodes, PostgreSQL, through nginx',
          lb.url,
          three.map((n) => n.pid),
        ),
      );
    } finally {
      lb.stop();
      await Promise.all(three.map((n) => n.stop()));
    }

    // 2. Dispatch latency across nodes, and on one SQLite node.
    const alone = await startServer({ limits: { cpu: { preprocessing: 1 } } });
    const local = await dispatchLatencies(alone.url, alone.url);
    await alone.stop();
    const db2 = await pg.createDatabase();
    const pair = await startNodes(db2, ['a', 'b'], (name) => ({
      RFUAV_LIMITS: JSON.stringify({ cpu: { preprocessing: name === 'a' ? 0 : 1 } }),
    }));
    try {
      const cross = await dispatchLatencies((pair[0] as BenchServer).url, (pair[1] as BenchServer).url);
      dispatch = [
        { setup: '1 node, SQLite: submission → start on itself', ms: local },
        { setup: '2 nodes, PostgreSQL: submitted on a → started on b (NOTIFY)', ms: cross },
      ];
    } finally {
      await Promise.all(pair.map((n) => n.stop()));
    }

    // 3. Failover.
    for (const [lease, hb] of [
      [3, 0.25],
      [10, 1],
    ] as const) {
      const ms: number[] = [];
      for (let r = 0; r < FAILOVER_RUNS; r++) ms.push(await failoverOnce(pg, lease, hb));
      failover.push({
        lease: `RFUAV_LEASE_S=${lease}, RFUAV_HEARTBEAT_S=${hb}`,
        ms: ms.sort((a, b) => a - b),
      });
    }
  } finally {
    await pg.stop();
  }

  const load = mdTable(
    ['setup', 'creations/s', 'p50 ms', 'p99 ms', 'status reads/s', 'p50 ms', 'p99 ms', 'non-2xx'],
    rows.map((r) => [
      r.setup,
      fmtInt(r.create.rps),
      fmtMs(r.create.p50),
      fmtMs(r.create.p99),
      fmtInt(r.read.rps),
      fmtMs(r.read.p50),
      fmtMs(r.read.p99),
      fmtInt(r.create.non2xx + r.read.non2xx + r.create.errors + r.read.errors),
    ]),
  );
  const perTask = (r: Row, part: Part) => fmtMs((r.cpu[part] * 1000) / Math.max(1, r.create.completed));
  const cpu = mdTable(
    ['setup', 'service', 'PostgreSQL', 'nginx', 'load generator', 'all'],
    rows.map((r) => [
      r.setup,
      perTask(r, 'service'),
      perTask(r, 'postgres'),
      perTask(r, 'nginx'),
      perTask(r, 'load'),
      fmtMs(
        ((r.cpu.service + r.cpu.postgres + r.cpu.nginx + r.cpu.load) * 1000) /
          Math.max(1, r.create.completed),
      ),
    ]),
  );
  const lat = mdTable(
    ['setup', 'tasks', 'p50 ms', 'p95 ms', 'max ms'],
    dispatch.map((d) => [d.setup, ...stats(d.ms)]),
  );
  const fail = mdTable(
    ['lease', 'runs', 'kill -9 → running elsewhere, each (ms)'],
    failover.map((f) => [f.lease, String(f.ms.length), f.ms.map((m) => fmtInt(m)).join(', ')]),
  );
  const body = `Command: \`node --import tsx bench/cluster.ts\`. PostgreSQL 15 (Debian, fsync off as in the
tests), three service nodes and nginx, and the load generator all share this machine's cores, so
the cluster figures measure what one machine can do with four servers on it, not what three GPU
servers would; compare the two rows for the cost of the shared store and the extra hop.

Creation and status reads (${CONNECTIONS} connections, ${LOAD_SEC} s each, after 500 warm-up creations; tasks only queue):

${load}

CPU milliseconds per creation, by part, during the creation run (from /proc; the machine has
${machine.cores} cores to share among them):

${cpu}

Dispatch latency (created_at → started_at as stored, one task at a time, the runner idle):

${lat}

Failover (the node running a task is killed; it is taken over once the lease has run out and the
next heartbeat of the other node sweeps it):

${fail}
`;
  console.log(body);
  writeSection(
    'cluster',
    'Cluster: three nodes behind nginx, dispatch across nodes, failover',
    machine,
    body,
  );
}

await main();
process.exit(0);
