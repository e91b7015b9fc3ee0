/**
 * Training through the service versus the same PyTorch loop run directly (SPEC §7: within 2 %):
 * ResNet-18 at 224 px, batch 8, on a fixed generated ImageFolder set, on CPU. Three ways, run in
 * turn so drifts of a shared machine hit all of them alike:
 *   - bare: bench/bare_train.py, the loop alone (no events, metrics, checkpoints);
 *   - runner: `python -m rfuav_torch train` started by hand, its events read and dropped;
 *   - service: POST /api/v2/training/start to a running service (its own process).
 * Seconds per epoch come from the runner's own timing (epoch_seconds: train + validation +
 * metrics + checkpoint); epoch 1 is left out (warm-up). Also: wall time from submission to the
 * first epoch_start and to the first finished epoch.
 *
 *   node --import tsx bench/training.ts          (BENCH_QUICK=1 for a smoke run)
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { writeImageFolder } from '../test/fixtures/images.js';
import { QUICK, machineInfo, mdTable, verdict, writeSection } from './report.js';
import {
  REPO_ROOT,
  cpuSeconds,
  createBenchHome,
  getJson,
  postJson,
  startServer,
  type TaskView,
} from './server.js';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';
const SIZE = QUICK ? 64 : 224;
const EPOCHS = QUICK ? 2 : Number(process.env.BENCH_EPOCHS ?? 4);
const ROUNDS = QUICK ? 1 : Number(process.env.BENCH_ROUNDS ?? 3);
const THREADS = 2;
const PER_CLASS = 16; // 4 classes × 16 = 64 training images = 8 steps of batch 8

const home = createBenchHome('training');
const train = path.join(home.dataRoot, 'set/train');
const val = path.join(home.dataRoot, 'set/val');
await writeImageFolder(train, { classes: 4, perClass: PER_CLASS, size: SIZE, seed: 3 });
await writeImageFolder(val, { classes: 4, perClass: 4, size: SIZE, seed: 9 });

/** Runs a child to the end, handing each stdout line to `onLine`. */
function runChild(
  cmd: string,
  args: string[],
  stdin: string | null,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'python') },
    });
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    if (stdin !== null) child.stdin.write(stdin);
    child.on('close', (code) => {
      child.stdin.destroy();
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
    });
  });
}

/** The training settings both sides use. */
const SETTINGS = {
  model: 'resnet18',
  num_classes: 4,
  image_size: SIZE,
  batch_size: 8,
  num_epochs: EPOCHS,
  learning_rate: 0.001,
  pretrained: false,
  seed: 1,
  device: 'cpu',
};

/** The runner's request for a run started by hand (as the service would send it). */
function request(out: string) {
  return { ...SETTINGS, resume: false, threads: THREADS, train_path: train, val_path: val, output_dir: out };
}

async function bare(): Promise<number[]> {
  const secs: number[] = [];
  await runChild(
    PYTHON,
    ['bench/bare_train.py', train, val, 'resnet18', String(SIZE), '8', String(EPOCHS), String(THREADS), '1'],
    null,
    (line) => secs.push((JSON.parse(line) as { epoch_seconds: number }).epoch_seconds),
  );
  return secs;
}

async function runnerDirect(
  round: number,
): Promise<{ secs: number[]; firstEpochMs: number; wallMs: number }> {
  const secs: number[] = [];
  const t0 = performance.now();
  let firstEpochMs = NaN;
  // The runner exits on stdin EOF, so stdin stays open until its result arrives.
  const child = runChild(
    PYTHON,
    ['-m', 'rfuav_torch', 'train'],
    `${JSON.stringify(request(path.join(home.dataRoot, `direct-${round}`)))}\n`,
    (line) => {
      const e = JSON.parse(line) as { event: string; values?: { epoch_seconds: number } };
      if (e.event === 'metrics' && e.values) {
        if (secs.length === 0) firstEpochMs = performance.now() - t0;
        secs.push(e.values.epoch_seconds);
      }
    },
  );
  await child;
  return { secs, firstEpochMs, wallMs: performance.now() - t0 };
}

async function viaService(url: string, pid: number, round: number) {
  const t0 = Date.now();
  // CPU of the service process, sampled as the run goes; the window between the first
  // epoch_start and the last epoch_end is what the service costs while PyTorch trains.
  const samples: { t: number; cpu: number }[] = [];
  const task = await postJson<TaskView>(`${url}/api/v2/training/start`, {
    ...SETTINGS,
    train_path: 'set/train',
    val_path: 'set/val',
    save_path: `service-${round}`,
  });
  const id = task.task_id;
  for (;;) {
    samples.push({ t: Date.now(), cpu: cpuSeconds(pid) });
    const t = await getJson<TaskView & { error?: string | null }>(`${url}/api/v2/training/${id}`);
    if (t.status === 'completed' || t.status === 'failed' || t.status === 'cancelled') {
      if (t.status !== 'completed') throw new Error(`service run ${t.status}: ${String(t.error)}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const wallMs = Date.now() - t0;
  const curve = await getJson<{ epochs: { epoch_seconds: number }[] }>(
    `${url}/api/v2/training/${id}/metrics`,
  );
  const log = await (await fetch(`${url}/api/v2/tasks/${id}/logs?follow=false`)).text();
  const entries = log
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { timestamp?: string; stage?: string });
  const at = (stage: string) => Date.parse(entries.find((e) => e.stage === stage)?.timestamp ?? '') - t0;
  const from = t0 + at('epoch_start');
  const to = Date.parse(entries.filter((e) => e.stage === 'epoch_end').at(-1)?.timestamp ?? '');
  const a = samples.find((x) => x.t >= from);
  const b = samples.filter((x) => x.t <= to).at(-1);
  const serviceCpuShare = a && b && b.t > a.t ? (b.cpu - a.cpu) / ((b.t - a.t) / 1000) : NaN;
  return {
    secs: curve.epochs.map((e) => e.epoch_seconds),
    firstStartMs: at('epoch_start'),
    firstEpochMs: at('epoch_end'),
    wallMs,
    serviceCpuShare,
  };
}

const server = await startServer({ home, env: { RFUAV_TORCH_THREADS: String(THREADS) } });
const results = { bare: [] as number[], runner: [] as number[], service: [] as number[] };
const firsts = { runner: [] as number[], service: [] as number[], serviceStart: [] as number[] };
const walls = { runner: [] as number[], service: [] as number[] };
const serviceCpu: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    // The order alternates, so a slow drift of the machine does not always favour one side.
    const b = await bare();
    results.bare.push(...b.slice(1));
    const order = round % 2 === 0 ? ['runner', 'service'] : ['service', 'runner'];
    const line: string[] = [`bare ${b.slice(1).map((x) => x.toFixed(2))}`];
    for (const which of order) {
      if (which === 'runner') {
        const r = await runnerDirect(round);
        results.runner.push(...r.secs.slice(1));
        firsts.runner.push(r.firstEpochMs);
        walls.runner.push(r.wallMs);
        line.push(`runner ${r.secs.slice(1).map((x) => x.toFixed(2))}`);
      } else {
        const s = await viaService(server.url, server.pid, round);
        results.service.push(...s.secs.slice(1));
        firsts.service.push(s.firstEpochMs);
        firsts.serviceStart.push(s.firstStartMs);
        walls.service.push(s.wallMs);
        serviceCpu.push(s.serviceCpuShare);
        line.push(
          `service ${s.secs.slice(1).map((x) => x.toFixed(2))} (server CPU ${(s.serviceCpuShare * 100).toFixed(1)} % of a core)`,
        );
      }
    }
    console.error(`[bench] round ${round + 1}/${ROUNDS}: ${line.join('; ')}`);
  }
} finally {
  await server.stop();
  home.cleanup();
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? (a[m] as number) : ((a[m - 1] as number) + (a[m] as number)) / 2;
};
const overhead = (median(results.service) / median(results.runner) - 1) * 100;
const overheadMean = (mean(results.service) / mean(results.runner) - 1) * 100;
const cpuShare = mean(serviceCpu) * 100;
const row = (label: string, xs: number[], first?: number[], wall?: number[]) => [
  label,
  median(xs).toFixed(2),
  mean(xs).toFixed(2),
  xs.map((x) => x.toFixed(2)).join(', '),
  first ? (mean(first) / 1000).toFixed(1) : '–',
  wall ? (mean(wall) / 1000).toFixed(1) : '–',
];
const table = mdTable(
  ['run', 's / epoch (median)', 'mean', 'epochs 2..n of each run', 'to first epoch (s)', 'wall (s)'],
  [
    row('bare PyTorch loop (bench/bare_train.py)', results.bare),
    row('runner run directly', results.runner, firsts.runner, walls.runner),
    row('through the service (HTTP)', results.service, firsts.service, walls.service),
  ],
);
const body = `ResNet-18, ${SIZE} px, batch 8, ${4 * PER_CLASS} training and 16 validation images (4 generated classes), ${EPOCHS} epochs per run, ${ROUNDS} rounds (runner and service in alternating order), CPU with ${THREADS} torch threads, \`pretrained: false\`. Seconds per epoch are the runner's own epoch timing (training + validation + metrics; writing the weights and the checkpoint comes after it) with epoch 1 left out; the bare loop times training + validation without metrics.

${table}

Service vs runner run directly, per epoch: ${overhead >= 0 ? '+' : ''}${overhead.toFixed(2)} % by median, ${overheadMean >= 0 ? '+' : ''}${overheadMean.toFixed(2)} % by mean (budget < 2 %: ${verdict(overhead < 2)}). CPU the service process itself used between the first epoch_start and the last epoch_end: ${cpuShare.toFixed(2)} % of one core (mean over the service runs, sampled from /proc every 250 ms while the benchmark polls the task; this is what the service could take from PyTorch). Submission to first epoch_start (service): ${(mean(firsts.serviceStart) / 1000).toFixed(2)} s — interpreter start, \`import torch\`, model construction and dataset listing; wall time also includes the ONNX export and its ONNX Runtime check.`;
console.log(body);
writeSection('training', 'Training overhead (bench/training.ts)', machineInfo(), body);
