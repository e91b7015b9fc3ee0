/**
 * Dispatch latency: how long a freed slot stays empty before the next waiting task is running.
 *
 * N bench_hold tasks (hold_ms ≈ 20) are queued while the cpu preprocessing limit is 0, then the
 * limit is raised to 1 live (POST /api/v2/resources/config), so the tasks run strictly one after
 * another with nothing else going on. (Queueing them first keeps the HTTP creation traffic out of
 * the measurement; with the limit at 1 from the start, the early gaps would include competing
 * with the submissions for the event loop.)
 *
 * Two views of the same gap are reported:
 *  - from the stored timestamps: task i's finished_at → task i+1's started_at (ms resolution; this
 *    also covers recording the end of task i: its final update, log line and slot release);
 *  - from the service's own histogram rfuav_dispatch_latency_seconds (GET /metrics): scheduling
 *    event → task marked running, in-process, sub-ms, but only as bucket bounds.
 *
 * Run: node --import tsx bench/dispatch.ts   (BENCH_QUICK=1 for 30 tasks)
 */
import {
  QUICK,
  fmtInt,
  fmtMs,
  machineInfo,
  mdTable,
  percentile,
  strictExit,
  verdict,
  writeSection,
} from './report.js';
import { health, listTasks, postJson, startServer, type BenchServer, type TaskView } from './server.js';

const TASKS = Number(process.env.BENCH_DISPATCH_TASKS ?? (QUICK ? 30 : 200));
const HOLD_MS = 20;
const BUDGET_MS = 50;
/** Submissions in flight at once (only to queue the tasks quickly; not measured). */
const SUBMIT_CONCURRENCY = 10;

interface Gaps {
  n: number;
  p50: number;
  p99: number;
  max: number;
  /** Pairs whose next task started before the previous finished: the limit was not respected. */
  overlaps: number;
  /** First started_at → last finished_at. */
  spanMs: number;
}

async function submitAll(server: BenchServer): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < TASKS) {
      next++;
      await postJson(`${server.url}/api/v2/preprocessing/bench-hold`, { hold_ms: HOLD_MS });
    }
  };
  await Promise.all(Array.from({ length: SUBMIT_CONCURRENCY }, worker));
}

/** Polls the (cheap, in-memory) health route until nothing waits or runs; bounded. */
async function waitUntilIdle(server: BenchServer, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const h = await health(server);
    if (h.resource_status.queue_length === 0 && h.resource_status.running === 0) return;
    if (performance.now() > deadline) {
      throw new Error(
        `tasks still waiting/running after ${timeoutMs} ms: ${JSON.stringify(h.resource_status)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function gapsFromTimestamps(tasks: TaskView[]): Gaps {
  const ran = tasks
    .filter((t) => t.started_at && t.finished_at)
    .map((t) => ({ start: Date.parse(t.started_at as string), end: Date.parse(t.finished_at as string) }))
    .sort((a, b) => a.start - b.start);
  const gaps: number[] = [];
  let overlaps = 0;
  for (let i = 1; i < ran.length; i++) {
    const gap = (ran[i] as { start: number }).start - (ran[i - 1] as { end: number }).end;
    if (gap < 0) overlaps++;
    gaps.push(gap);
  }
  gaps.sort((a, b) => a - b);
  return {
    n: gaps.length,
    p50: percentile(gaps, 50),
    p99: percentile(gaps, 99),
    max: gaps[gaps.length - 1] ?? NaN,
    overlaps,
    spanMs: ran.length > 0 ? Math.max(...ran.map((r) => r.end)) - (ran[0] as { start: number }).start : NaN,
  };
}

interface HistogramView {
  count: number;
  meanMs: number;
  /** Upper bucket bounds (ms) containing p50, p99 and the largest observation. */
  p50: number;
  p99: number;
  max: number;
}

/** Reads a Prometheus histogram (no labels) from /metrics text. */
function parseHistogram(text: string, name: string): HistogramView {
  const buckets: { le: number; n: number }[] = [];
  let sum = NaN;
  let count = NaN;
  for (const line of text.split('\n')) {
    const b = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (b) buckets.push({ le: b[1] === '+Inf' ? Infinity : Number(b[1]), n: Number(b[2]) });
    else if (line.startsWith(`${name}_sum `)) sum = Number(line.split(' ')[1]);
    else if (line.startsWith(`${name}_count `)) count = Number(line.split(' ')[1]);
  }
  if (buckets.length === 0) throw new Error(`histogram ${name} not found in /metrics`);
  buckets.sort((a, b) => a.le - b.le);
  const bound = (q: number) => (buckets.find((bk) => bk.n >= q * count)?.le ?? Infinity) * 1000;
  return { count, meanMs: (sum / count) * 1000, p50: bound(0.5), p99: bound(0.99), max: bound(1) };
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const server = await startServer({ limits: { cpu: { preprocessing: 0 } } });
  let gaps: Gaps;
  let hist: HistogramView;
  let completed: number;
  try {
    console.error(`[bench] queueing ${TASKS} bench_hold tasks (hold_ms=${HOLD_MS}) with the limit at 0`);
    await submitAll(server);
    await postJson(`${server.url}/api/v2/resources/config`, {
      max_concurrent: { cpu: { preprocessing: 1 } },
    });
    console.error('[bench] limit raised to 1; waiting for the queue to drain');
    await waitUntilIdle(server, TASKS * HOLD_MS * 5 + 30_000);

    const tasks = await listTasks(server, 'bench_hold', Math.min(1000, TASKS));
    completed = tasks.filter((t) => t.status === 'completed').length;
    if (completed !== TASKS) throw new Error(`expected ${TASKS} completed tasks, found ${completed}`);
    gaps = gapsFromTimestamps(tasks);
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    hist = parseHistogram(metrics, 'rfuav_dispatch_latency_seconds');
  } finally {
    await server.stop();
  }

  const overheadMs = (gaps.spanMs - TASKS * HOLD_MS) / TASKS;
  const table = mdTable(
    ['Measure', 'n', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'Budget', 'Result'],
    [
      [
        'finished_at(i) → started_at(i+1), stored timestamps',
        gaps.n,
        fmtMs(gaps.p50),
        fmtMs(gaps.p99),
        fmtMs(gaps.max),
        `< ${BUDGET_MS} ms`,
        verdict(gaps.max < BUDGET_MS && gaps.overlaps === 0),
      ],
      [
        'rfuav_dispatch_latency_seconds (bucket upper bounds)',
        hist.count,
        `≤ ${fmtMs(hist.p50)}`,
        `≤ ${fmtMs(hist.p99)}`,
        `≤ ${fmtMs(hist.max)}`,
        `< ${BUDGET_MS} ms`,
        verdict(hist.p99 <= BUDGET_MS),
      ],
    ],
  );
  const notes = [
    `${TASKS} tasks holding a cpu preprocessing slot for ${HOLD_MS} ms each, limit 1, queued first and released by raising the limit live.`,
    `First start → last finish: ${fmtInt(gaps.spanMs)} ms for ${fmtInt(TASKS * HOLD_MS)} ms of holding, i.e. ${fmtMs(overheadMs)} ms per task beyond its hold (gap plus timer slack).`,
    `Histogram mean: ${fmtMs(hist.meanMs)} ms. Stored timestamps have 1 ms resolution, so a gap of 0–1 ms means "immediately".`,
    ...(gaps.overlaps > 0
      ? [`**${gaps.overlaps} pair(s) overlapped: a task started before the previous one finished.**`]
      : []),
    ...(QUICK ? ['**Quick run (BENCH_QUICK=1): not representative.**'] : []),
  ];
  const body = `${table}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  console.log(`## Dispatch latency\n\n${body}`);
  writeSection('dispatch', 'Dispatch latency (bench/dispatch.ts)', machine, body);
  strictExit(gaps.max < BUDGET_MS && gaps.overlaps === 0 && hist.p99 <= BUDGET_MS ? 0 : 1);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
