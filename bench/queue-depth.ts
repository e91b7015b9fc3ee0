/**
 * A deep queue: 100 000 waiting tasks (cpu preprocessing limit 0, so none ever runs).
 *
 *  1. Fill: create them over HTTP (50 connections); creation rate and server memory by depth.
 *  2. At that depth: status reads, health, memory, database size.
 *  3. Restart: SIGTERM, start again on the same home, time until listening, and check that every
 *     task was recovered into the queue (health resource_status.queue_length).
 *  4. Creation latency at that depth, on the restarted server.
 *
 * The fill is the one long run of the benchmarks (bounded by BENCH_FILL_MAX_SEC, default 600 s);
 * if the bound is hit, everything after it is measured at the depth reached, and the report says so.
 *
 * Run: node --import tsx bench/queue-depth.ts   (BENCH_QUICK=1 for 5 000 tasks and 1 s runs)
 */
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
import {
  createBenchHome,
  dbFileSizes,
  health,
  startServer,
  type BenchServer,
  type MemoryReading,
  type StopResult,
} from './server.js';

const TASKS = Number(process.env.BENCH_QUEUE_TASKS ?? (QUICK ? 5_000 : 100_000));
const FILL_MAX_SEC = Number(process.env.BENCH_FILL_MAX_SEC ?? 600);
const CONNECTIONS = 50;
const DURATION_SEC = QUICK ? 1 : 5;
const LIMITS = { cpu: { preprocessing: 0 } };
const RSS_BUDGET = 500 * 1024 ** 2;
const CREATE_PATH = '/api/v2/preprocessing/bench-hold';

interface DepthSample {
  depth: number;
  /** Creations per second over the step that ended at this depth. */
  rate: number;
  rss: number;
  wal: number;
}

interface Scenario {
  name: string;
  p99Ms: number;
  minRps?: number;
  result: LoadResult;
}

const meets = (s: Scenario) =>
  s.result.p99 < s.p99Ms &&
  (s.minRps === undefined || s.result.rps >= s.minRps) &&
  s.result.non2xx === 0 &&
  s.result.errors === 0;

/** Creates TASKS tasks with ids qd-0…, recording rate, RSS and WAL size every tenth of the way. */
async function fill(server: BenchServer): Promise<{ result: LoadResult; samples: DepthSample[] }> {
  const step = Math.max(1, Math.floor(TASKS / 10));
  const samples: DepthSample[] = [];
  let created = 0;
  let seq = 0;
  let stepStart = performance.now();
  const result = await runLoad({
    url: server.url,
    connections: CONNECTIONS,
    amount: TASKS,
    maxSec: FILL_MAX_SEC,
    method: 'POST',
    path: CREATE_PATH,
    // Client-chosen ids, so reads can later address any depth of the queue without listing it.
    body: () => `{"hold_ms":0,"task_id":"qd-${seq++}"}`,
    onResponse: (status) => {
      if (status < 200 || status >= 300) return;
      created++;
      if (created % step !== 0) return;
      const now = performance.now();
      const sample = {
        depth: created,
        rate: (step / (now - stepStart)) * 1000,
        rss: server.memory()?.rssBytes ?? NaN,
        wal: dbFileSizes(server.home).wal,
      };
      samples.push(sample);
      stepStart = now;
      console.error(
        `[bench] ${fmtInt(created)} created: ${fmtInt(sample.rate)}/s, server RSS ${fmtMiB(sample.rss)}, WAL ${fmtMiB(sample.wal)}`,
      );
    },
  });
  return { result, samples };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const home = createBenchHome('queue-depth');
  const servers: BenchServer[] = [];
  const start = async () => {
    // Recovery of a deep queue (and replay of a large WAL) can take a while before listening.
    const s = await startServer({ home, limits: LIMITS, startTimeoutMs: 600_000 });
    servers.push(s);
    return s;
  };

  const scenarios: Scenario[] = [];
  let filled!: { result: LoadResult; samples: DepthSample[] };
  let depth = 0;
  let afterFill: MemoryReading | null = null;
  let filesAfterFill = { db: 0, wal: 0 };
  let stopped!: StopResult;
  let filesAfterStop = { db: 0, wal: 0 };
  let cold!: BenchServer;
  let restarted!: BenchServer;
  let recovered = 0;
  let afterRestart: MemoryReading | null = null;
  let atEnd: MemoryReading | null = null;
  try {
    cold = await start();
    console.error(`[bench] filling the queue with ${fmtInt(TASKS)} tasks (bound ${FILL_MAX_SEC} s)`);
    filled = await fill(cold);
    depth = (await health(cold)).resource_status.queue_length;
    afterFill = cold.memory();
    filesAfterFill = dbFileSizes(home);

    const base: Pick<LoadOptions, 'url' | 'connections' | 'durationSec'> = {
      url: cold.url,
      connections: CONNECTIONS,
      durationSec: DURATION_SEC,
    };
    // Spread over the whole queue: the cost of a queued task's view (queue position) may depend on it.
    const created = filled.result.statusCounts['200'] ?? 0;
    console.error(`[bench] status reads at depth ${fmtInt(depth)}`);
    const reads = await runLoad({
      ...base,
      path: () => `/api/v2/tasks/qd-${Math.floor(Math.random() * created)}`,
    });
    scenarios.push({
      name: 'task status (GET /api/v2/tasks/:id, random depth)',
      p99Ms: 5,
      minRps: 15000,
      result: reads,
    });
    console.error(`[bench] health at depth ${fmtInt(depth)}`);
    const healthRun = await runLoad({ ...base, path: '/api/v1/health' });
    scenarios.push({ name: 'health (GET /api/v1/health)', p99Ms: 5, result: healthRun });

    console.error('[bench] stopping (SIGTERM) and restarting on the same home');
    stopped = await cold.stop(300_000);
    filesAfterStop = dbFileSizes(home);
    restarted = await start();
    recovered = (await health(restarted)).resource_status.queue_length;
    afterRestart = restarted.memory();

    console.error(`[bench] creation at depth ${fmtInt(recovered)} (restarted server)`);
    const creation = await runLoad({
      url: restarted.url,
      connections: CONNECTIONS,
      durationSec: DURATION_SEC,
      method: 'POST',
      path: CREATE_PATH,
      body: '{"hold_ms":0}',
    });
    scenarios.push({
      name: 'create task (POST …/bench-hold), after restart',
      p99Ms: 10,
      minRps: 7000,
      result: creation,
    });
    atEnd = restarted.memory();
  } finally {
    for (const s of servers) await s.stop(300_000);
    home.cleanup();
  }

  const fillSec = filled.result.durationSec;
  const created = filled.result.statusCounts['200'] ?? 0;
  const partial = created < TASKS;
  const rssOk = (m: MemoryReading | null) => m !== null && m.rssBytes < RSS_BUDGET;
  const mem = (m: MemoryReading | null) =>
    m ? `${fmtMiB(m.rssBytes)} (peak ${fmtMiB(m.peakRssBytes)})` : '–';
  const files = (f: { db: number; wal: number }) => `db ${fmtMiB(f.db)}, WAL ${fmtMiB(f.wal)}`;

  const loadTable = mdTable(
    ['Scenario', 'Requests/s', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'non-2xx', 'Budget', 'Result'],
    scenarios.map((s) => [
      s.name,
      fmtInt(s.result.rps),
      fmtMs(s.result.p50),
      fmtMs(s.result.p99),
      fmtMs(s.result.max),
      describeNon2xx(s.result),
      `p99 < ${s.p99Ms} ms${s.minRps ? `, ≥ ${fmtInt(s.minRps)}/s` : ''}`,
      verdict(meets(s)),
    ]),
  );
  const factTable = mdTable(
    ['Measure', 'Value', 'Budget', 'Result'],
    [
      [
        `Fill: ${fmtInt(TASKS)} creations over HTTP`,
        `${fmtInt(created)} created in ${fmtMs(fillSec)} s = ${fmtInt(created / fillSec)}/s; non-2xx ${describeNon2xx(filled.result)}`,
        partial ? `all within ${FILL_MAX_SEC} s` : '–',
        partial ? '**FAIL** (bound hit)' : '–',
      ],
      ['Server RSS after fill', mem(afterFill), '< 500 MiB', verdict(rssOk(afterFill))],
      ['Database after fill', files(filesAfterFill), '–', '–'],
      [
        'Graceful stop (SIGTERM → exit)',
        `${fmtInt(stopped.ms)} ms${stopped.killed ? ' — timed out, SIGKILLed' : ''}`,
        '–',
        stopped.killed ? '**FAIL**' : '–',
      ],
      ['Database after stop', files(filesAfterStop), '–', '–'],
      [
        'Start, empty home: spawn → listening (service part)',
        `${fmtInt(cold.spawnToListenMs)} ms (${fmtInt(cold.serviceReadyMs)} ms)`,
        '–',
        '–',
      ],
      [
        `Restart with ${fmtInt(depth)} queued: spawn → listening (service part)`,
        `${fmtInt(restarted.spawnToListenMs)} ms (${fmtInt(restarted.serviceReadyMs)} ms)`,
        '–',
        '–',
      ],
      [
        'Recovered queue_length',
        fmtInt(recovered),
        `= ${fmtInt(depth)}`,
        verdict(recovered === depth && depth === created),
      ],
      ['Server RSS after restart', mem(afterRestart), '< 500 MiB', verdict(rssOk(afterRestart))],
      ['Server RSS at the end', mem(atEnd), '< 500 MiB', verdict(rssOk(atEnd))],
    ],
  );
  const depthTable = mdTable(
    ['Depth reached', 'Creations/s over the last step', 'Server RSS', 'WAL size'],
    filled.samples.map((s) => [fmtInt(s.depth), fmtInt(s.rate), fmtMiB(s.rss), fmtMiB(s.wal)]),
  );
  const notes = [
    `${CONNECTIONS} connections; latency runs ${DURATION_SEC} s each, without warm-up (the fill warmed the server; the creation run is the restarted server's first load). Latency is of 2xx responses as the client saw them.`,
    `Limit \`{"cpu":{"preprocessing":0}}\`: nothing runs, every task stays queued. "Service part" of a start is createService() + listen() inside the server (store open, recovery, routes), without the Node/tsx boot.`,
    `RSS is of the server process as run by the benchmark, i.e. under tsx (its loader thread adds some memory compared with the compiled \`dist/\`).`,
    ...(partial
      ? [
          `**The fill hit its ${FILL_MAX_SEC} s bound: the numbers below are at depth ${fmtInt(depth)}, not ${fmtInt(TASKS)}.**`,
        ]
      : []),
    ...(QUICK ? ['**Quick run (BENCH_QUICK=1): not representative.**'] : []),
  ];
  const body = [
    loadTable,
    factTable,
    `Creation rate, memory and write-ahead log size while filling:\n\n${depthTable}`,
    notes.map((n) => `- ${n}`).join('\n'),
  ].join('\n\n');
  console.log(`## Queue depth\n\n${body}\n`);
  writeSection(
    'queue-depth',
    `Queue depth: ${fmtInt(TASKS)} queued tasks (bench/queue-depth.ts)`,
    machine,
    `${body}\n`,
  );

  const failures =
    scenarios.filter((s) => !meets(s)).length +
    [
      rssOk(afterFill),
      rssOk(afterRestart),
      rssOk(atEnd),
      recovered === depth,
      !partial,
      !stopped.killed,
    ].filter((ok) => !ok).length;
  strictExit(failures);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
