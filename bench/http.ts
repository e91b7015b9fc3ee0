/**
 * HTTP throughput and latency of the three hottest routes, at 50 concurrent connections:
 *   (a) task creation  POST /api/v2/preprocessing/bench-hold {"hold_ms": 0}
 *   (b) status reads   GET  /api/v2/tasks/<id>, spread over 1000 stored tasks
 *   (c) health         GET  /api/v1/health, with every task of (a) stored
 *   (d) training tasks POST /api/v2/training/start, 2 000 requests (class folders checked,
 *       num_classes, save_path, signal file: every submission check a client pays for), with the
 *       server's CPU time per created task. BENCH_COMPARE_URL (and BENCH_COMPARE_PID for its CPU,
 *       BENCH_COMPARE_DATA for the absolute folder its paths are under) runs the same requests
 *       against another server in the same run — e.g. the reference service, started by hand.
 *
 * The server runs with RFUAV_LIMITS={"cpu":{"preprocessing":0,"training":0}}, so created tasks only queue: (a)
 * measures the cost of accepting a task (validate, insert, log, enqueue, mark queued), not of
 * running it, and the reads in (b) are of queued tasks (their views include queue position).
 *
 * Run: node --import tsx bench/http.ts   (BENCH_QUICK=1 for a 1 s smoke run)
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeNon2xx, runLoad, type LoadOptions, type LoadResult } from './load.js';
import {
  QUICK,
  fmtInt,
  fmtMiB,
  fmtMs,
  machineInfo,
  mdTable,
  strictExit,
  verdict,
  writeSection,
} from './report.js';
import { cpuSeconds, health, listTasks, startServer } from './server.js';

const CONNECTIONS = 50;
const DURATION_SEC = QUICK ? 1 : 5;
/** A short unreported run before each measurement, so JIT warm-up does not land in the numbers. */
const WARMUP_SEC = QUICK ? 0 : 1;
/** Training tasks created in scenario (d), as the reference comparison in issue 13 counts them. */
const TRAINING_REQUESTS = QUICK ? 300 : 2000;

interface Budget {
  p99Ms: number;
  minRps?: number;
}

interface Scenario {
  name: string;
  budget: Budget;
  result: LoadResult;
}

function meets(s: Scenario): boolean {
  const r = s.result;
  return (
    r.p99 < s.budget.p99Ms &&
    (s.budget.minRps === undefined || r.rps >= s.budget.minRps) &&
    r.non2xx === 0 &&
    r.errors === 0
  );
}

function budgetText(b: Budget): string {
  return `p99 < ${b.p99Ms} ms${b.minRps ? `, ≥ ${fmtInt(b.minRps)}/s` : ''}`;
}

async function measure(opts: LoadOptions): Promise<LoadResult> {
  if (WARMUP_SEC > 0) await runLoad({ ...opts, durationSec: WARMUP_SEC });
  return runLoad({ ...opts, durationSec: DURATION_SEC });
}

/**
 * The same load against a bare Fastify app in its own process: the ceiling of this machine and
 * load generator (on a small machine, the budgets may be above it).
 */
async function baseline(): Promise<LoadResult> {
  const bare = await startServer({ entry: 'bench/bare-main.ts' });
  try {
    console.error(`[bench] baseline: bare Fastify, ${DURATION_SEC} s`);
    return await measure({ url: bare.url, connections: CONNECTIONS, path: '/' });
  } finally {
    await bare.stop();
  }
}

/** A small ImageFolder dataset (4 classes) for training submissions: only listed, never read. */
function makeDataset(root: string): void {
  for (const split of ['train', 'val']) {
    for (const cls of ['DJI_AVATA2', 'DJI_FPV', 'DJI_MINI4', 'FLYSKY_EL18']) {
      const dir = path.join(root, 'dataset', split, cls);
      fs.mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(dir, `img${i}.png`), '');
    }
  }
}

interface CreationRun {
  label: string;
  result: LoadResult;
  cpuMsPerTask: number;
}

/**
 * Scenario (d) against one server just started: 2 000 training submissions after the 1 s
 * warm-up, then the same load for DURATION_SEC more (the steady state, once the JIT and the
 * caches are warm); CPU time read around each.
 */
async function trainingCreation(
  label: string,
  url: string,
  pid: number | null,
  base: string,
): Promise<CreationRun[]> {
  const body = JSON.stringify({
    model: 'resnet18',
    num_classes: 4,
    train_path: `${base}dataset/train`,
    val_path: `${base}dataset/val`,
    save_path: `${base}models/bench`,
    num_epochs: 1,
    device: 'cpu',
  });
  const opts = {
    url,
    connections: CONNECTIONS,
    method: 'POST' as const,
    path: '/api/v2/training/start',
    body,
  };
  // The same warm-up as every scenario (JIT, caches), for every server measured.
  if (WARMUP_SEC > 0) await runLoad({ ...opts, durationSec: WARMUP_SEC });
  const run = async (what: string, load: Partial<LoadOptions>): Promise<CreationRun> => {
    const before = pid ? cpuSeconds(pid) : NaN;
    const result = await runLoad({ ...opts, ...load });
    const after = pid ? cpuSeconds(pid) : NaN;
    const created = result.statusCounts['200'] ?? 0;
    return { label: `${label}, ${what}`, result, cpuMsPerTask: ((after - before) * 1000) / created };
  };
  return [
    await run(`first ${fmtInt(TRAINING_REQUESTS)} after start-up`, {
      amount: TRAINING_REQUESTS,
      maxSec: 120,
    }),
    await run(`the next ${DURATION_SEC} s`, { durationSec: DURATION_SEC }),
  ];
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const ceiling = await baseline();
  const server = await startServer({ limits: { cpu: { preprocessing: 0, training: 0 } } });
  const scenarios: Scenario[] = [];
  const creations: CreationRun[] = [];
  let stored = 0;
  let rss = NaN;
  try {
    const base = { url: server.url, connections: CONNECTIONS };

    console.error(`[bench] (a) task creation, ${DURATION_SEC} s`);
    const creation = await measure({
      ...base,
      method: 'POST',
      path: '/api/v2/preprocessing/bench-hold',
      body: '{"hold_ms":0}',
    });
    scenarios.push({
      name: 'create task (POST /api/v2/preprocessing/bench-hold)',
      budget: { p99Ms: 10, minRps: 7000 },
      result: creation,
    });

    // Ids of stored (queued) tasks, fetched once; each read picks the next one round-robin, so
    // successive reads hit different rows rather than one hot cached row.
    const ids = (await listTasks(server, 'bench_hold', 1000)).map((t) => t.task_id);
    if (ids.length === 0) throw new Error('no tasks were created; cannot benchmark reads');
    let next = 0;
    console.error(`[bench] (b) status reads over ${ids.length} task ids, ${DURATION_SEC} s`);
    const reads = await measure({ ...base, path: () => `/api/v2/tasks/${ids[next++ % ids.length]}` });
    scenarios.push({
      name: `task status (GET /api/v2/tasks/:id, ${ids.length} ids)`,
      budget: { p99Ms: 5, minRps: 15000 },
      result: reads,
    });

    stored = (await health(server)).resource_status.queue_length;
    console.error(`[bench] (c) health with ${stored} queued tasks, ${DURATION_SEC} s`);
    const healthRun = await measure({ ...base, path: '/api/v1/health' });
    scenarios.push({ name: 'health (GET /api/v1/health)', budget: { p99Ms: 5 }, result: healthRun });

    rss = server.memory()?.rssBytes ?? NaN;
  } finally {
    await server.stop();
  }
  // (d) on a fresh server, as the server it is compared with starts: the queue of (a) would
  // otherwise be in every measurement.
  const fresh = await startServer({ limits: { cpu: { preprocessing: 0, training: 0 } } });
  try {
    makeDataset(fresh.home.dataRoot);
    console.error(`[bench] (d) ${TRAINING_REQUESTS} training submissions`);
    const [first, steady] = await trainingCreation('this service', fresh.url, fresh.pid, '');
    creations.push(first as CreationRun, steady as CreationRun);
    scenarios.push({
      name: `create training task (POST /api/v2/training/start, first ${fmtInt(TRAINING_REQUESTS)} after start-up)`,
      budget: { p99Ms: 181, minRps: 5000 },
      result: (first as CreationRun).result,
    });
    scenarios.push({
      name: `create training task (POST /api/v2/training/start, steady)`,
      budget: { p99Ms: 181, minRps: 5000 },
      result: (steady as CreationRun).result,
    });
  } finally {
    await fresh.stop();
  }
  const compareUrl = process.env.BENCH_COMPARE_URL;
  if (compareUrl) {
    const data = process.env.BENCH_COMPARE_DATA ?? '';
    if (data) makeDataset(data);
    console.error(`[bench] (d) against ${compareUrl}`);
    const pid = process.env.BENCH_COMPARE_PID ? Number(process.env.BENCH_COMPARE_PID) : null;
    creations.push(
      ...(await trainingCreation(compareUrl, compareUrl, pid, data ? `${data.replace(/\/$/, '')}/` : '')),
    );
  }

  const row = (name: string, r: LoadResult, budget: string, result: string) => [
    name,
    fmtInt(r.rps),
    fmtMs(r.p50),
    fmtMs(r.p99),
    fmtMs(r.max),
    describeNon2xx(r),
    budget,
    result,
  ];
  const table = mdTable(
    ['Scenario', 'Requests/s', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'non-2xx', 'Budget', 'Result'],
    [
      ...scenarios.map((s) => row(s.name, s.result, budgetText(s.budget), verdict(meets(s)))),
      row('_baseline: bare Fastify `GET /`, no service_', ceiling, '–', '–'),
    ],
  );
  const creationTable = mdTable(
    ['Server', 'Tasks/s', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'non-2xx', 'Server CPU per task (ms)'],
    creations.map((c) => [
      c.label,
      fmtInt(c.result.rps),
      fmtMs(c.result.p50),
      fmtMs(c.result.p99),
      fmtMs(c.result.max),
      describeNon2xx(c.result),
      Number.isFinite(c.cpuMsPerTask) ? c.cpuMsPerTask.toFixed(2) : '–',
    ]),
  );
  const notes = [
    `${CONNECTIONS} connections, ${DURATION_SEC} s per scenario after a ${WARMUP_SEC} s warm-up; latency is of 2xx responses as the client saw them (loopback included).`,
    `The baseline row is a bare Fastify app (bench/bare-main.ts) under the same load: the most this machine and load generator allow.`,
    `The server ran with \`RFUAV_LIMITS={"cpu":{"preprocessing":0,"training":0}}\`: created tasks only queue, so creation measures acceptance cost alone.`,
    `Tasks stored (queued) during the status and health runs: ${fmtInt(stored)}. Server RSS at the end: ${fmtMiB(rss)}.`,
    `Training creation, on a server just started: ${fmtInt(TRAINING_REQUESTS)} requests after a ${WARMUP_SEC} s warm-up (unreported), then ${DURATION_SEC} s more of the same load; 50 connections, \`device: cpu\`, nothing allowed to train. Server CPU = user + system time of the server process over the run (/proc, all its threads), divided by the tasks created. A compared server gets the same requests (its paths absolute), after our server has stopped.`,
    ...(QUICK ? ['**Quick run (BENCH_QUICK=1): not representative.**'] : []),
  ];
  const body = `${table}\n\n### Training task creation, side by side\n\n${creationTable}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  console.log(`## HTTP throughput and latency\n\n${body}`);
  writeSection('http', 'HTTP throughput and latency (bench/http.ts)', machine, body);
  strictExit(scenarios.filter((s) => !meets(s)).length);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
