import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import type { JobDefinition } from '../src/jobs/job.js';
import { createService, type RunningService, type ServiceOptions } from '../src/main.js';
import { runTorch } from '../src/engines/torch/runner.js';
import { writeImageFolder } from './fixtures/images.js';

/** A temp folder removed when the test file ends. */
export function tmpDir(prefix = 'rfuav-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface FakeGpu {
  name?: string;
  totalMiB: number;
  usedMiB?: number;
  /** null: the driver reports [N/A]. */
  util?: number | null;
  /** Compute capability (default "8.0"); null plays a driver too old to know the field. */
  computeCap?: string | null;
}

/**
 * Writes a fake `nvidia-smi` that prints the CSV the service asks for. The GPU list is read from
 * a file beside it on every call, so a test can change memory figures while the service runs.
 * Asked for compute_cap, it adds the column, or fails as drivers before 510 do when a GPU's
 * `computeCap` is null.
 */
export function fakeNvidiaSmi(dir: string, gpus: FakeGpu[]): { path: string; set(gpus: FakeGpu[]): void } {
  const csv = path.join(dir, 'gpus.csv');
  const script = path.join(dir, 'nvidia-smi');
  const set = (list: FakeGpu[]) =>
    fs.writeFileSync(
      csv,
      list
        .map((g, i) => {
          const used = g.usedMiB ?? 0;
          const cap = g.computeCap === undefined ? '8.0' : (g.computeCap ?? 'unsupported');
          return `${i}, ${g.name ?? `NVIDIA Fake ${i}`}, ${g.totalMiB}, ${used}, ${g.totalMiB - used}, ${g.util === null ? '[N/A]' : (g.util ?? 0)}, ${cap}\n`;
        })
        .join(''),
    );
  set(gpus);
  fs.writeFileSync(
    script,
    [
      '#!/bin/sh',
      'case "$1" in',
      `  *compute_cap*) if grep -q unsupported "${csv}"; then echo 'Field "compute_cap" is not a valid field to query.' >&2; exit 2; fi; cat "${csv}" ;;`,
      `  *) cut -d, -f1-6 "${csv}" ;;`,
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { path: script, set };
}

export function testConfig(dir: string, env: Record<string, string> = {}): Config {
  return loadConfig(
    {
      RFUAV_HOME: path.join(dir, 'home'),
      RFUAV_DATA_ROOT: path.join(dir, 'data'),
      RFUAV_PORT: '0',
      RFUAV_NVIDIA_SMI: path.join(dir, 'no-such-nvidia-smi'),
      RFUAV_LOG_LEVEL: 'silent',
      RFUAV_SHUTDOWN_GRACE_S: '5',
      ...env,
    },
    {},
    dir,
  );
}

/** Starts a service in this process (not listening unless asked); closed when the file ends. */
export async function startService(
  dir: string,
  opts: {
    env?: Record<string, string>;
    extraJobs?: JobDefinition[];
    listen?: boolean;
    queue?: ServiceOptions['queue'];
  } = {},
): Promise<RunningService & { url: string }> {
  const svc = await createService({
    config: testConfig(dir, opts.env),
    extraJobs: opts.extraJobs,
    logger: pino({ level: 'silent' }),
    queue: opts.queue,
  });
  let url = '';
  if (opts.listen) url = await svc.listen();
  after(() => svc.close());
  return Object.assign(svc, { url });
}

/** Resolves when `check` returns truthy; event-driven code under test is given up to `ms`. */
export async function waitFor<T>(
  check: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 5000,
  what = 'condition',
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Whether a process with this pid exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The log entries a task's SSE route replays (history only, `?follow=false`). */
export async function replayedLog(url: string, logsPath: string): Promise<Record<string, unknown>[]> {
  const text = await (await fetch(`${url}${logsPath}?follow=false`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
    .filter((e) => 'level' in e);
}

/**
 * What the runner reports after every epoch: the reference's TrainingMetrics names (SPEC §2.6a),
 * written here from the reference's schema, independently of src/domain/metrics.ts.
 */
export const EPOCH_METRICS = [
  'epoch',
  'total_epochs',
  'train_loss',
  'train_acc',
  'val_loss',
  'val_acc',
  'macro_f1',
  'micro_f1',
  'mAP',
  'top1_acc',
  'top3_acc',
  'top5_acc',
  'macro_precision',
  'macro_recall',
  'micro_precision',
  'micro_recall',
  'precision',
  'recall',
  'learning_rate',
  'best_acc',
] as const;

/** The metrics reported in percent (0–100), as the reference does. */
export const PERCENT_METRICS = [
  'train_acc',
  'val_acc',
  'best_acc',
  'top1_acc',
  'top3_acc',
  'top5_acc',
] as const;

/**
 * Trains a small ResNet-18 on the CPU with the runner directly (no service): a model folder
 * (best_model.pth/.onnx, config.yaml) for the inference and predict tests.
 */
export async function trainTinyModel(o: {
  train: string;
  val: string;
  out: string;
  classes: number;
  imageSize: number;
  epochs: number;
  batchSize: number;
}): Promise<void> {
  await runTorch({
    python: process.env.RFUAV_PYTHON ?? '/usr/bin/python3',
    command: 'train',
    request: {
      model: 'resnet18',
      num_classes: o.classes,
      train_path: o.train,
      val_path: o.val,
      output_dir: o.out,
      image_size: o.imageSize,
      num_epochs: o.epochs,
      batch_size: o.batchSize,
      learning_rate: 0.001,
      pretrained: false,
      seed: 1,
      threads: 1,
      device: 'cpu',
    },
    silenceTimeoutMs: 120_000,
    killGraceMs: 1000,
    onEvent: () => undefined,
  });
}

/**
 * The small image model the inference and predict tests share: 3 pattern classes at 48 px
 * (set/train 8 per class, set/val `valPerClass`), one epoch, written to `data/model`.
 */
export async function tinyImageModel(data: string, valPerClass: number): Promise<void> {
  await writeImageFolder(path.join(data, 'set/train'), { classes: 3, perClass: 8, size: 48, seed: 3 });
  await writeImageFolder(path.join(data, 'set/val'), {
    classes: 3,
    perClass: valPerClass,
    size: 48,
    seed: 5,
  });
  await trainTinyModel({
    train: path.join(data, 'set/train'),
    val: path.join(data, 'set/val'),
    out: path.join(data, 'model'),
    classes: 3,
    imageSize: 48,
    epochs: 1,
    batchSize: 4,
  });
}

/**
 * Writes a .pth whose unpickling would call os.system to create `marker`: what a hostile weight
 * file looks like. Loading it weights-only must refuse it, and `marker` must never appear.
 */
export function writePickleBomb(file: string, marker: string): void {
  execFileSync(process.env.RFUAV_PYTHON ?? '/usr/bin/python3', [
    '-c',
    'import os, sys, torch\n' +
      'class Evil:\n    def __reduce__(self):\n        return (os.system, ("touch " + sys.argv[2],))\n' +
      'torch.save({"fc.weight": Evil()}, sys.argv[1])',
    file,
    marker,
  ]);
}

/** Runs a Python snippet in the runner's package (python/) and parses the JSON it prints. */
export function runnerJson<T>(script: string): T {
  const root = path.resolve(import.meta.dirname, '../python');
  const out = execFileSync(process.env.RFUAV_PYTHON ?? '/usr/bin/python3', ['-c', script], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: root },
  });
  return JSON.parse(out.toString().trim()) as T;
}

/** A TCP port free on 127.0.0.1 just now (for a server a test starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
