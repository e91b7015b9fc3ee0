import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { EVALUATION_METRICS, formatMetric } from '../domain/metrics.js';
import { createService, InsecureListenError } from '../main.js';
import { StoreLockedError } from '../store/sqlite/sqlite-store.js';
import { IqFormatError } from '../signal/iq.js';
import { addNoiseAtSnr } from '../signal/noise.js';
import { CLASS_PROFILES, writeDataset } from '../signal/synth.js';
import { ApiClient, ApiError } from './client.js';
import { ProgressBar } from './progress.js';

const USAGE = `rfuav — RFUAV Model Service

Usage:
  rfuav serve [--host 127.0.0.1] [--port 8000] [--home DIR] [--data-root DIR] [--insecure]
  rfuav tasks [--status S] [--type KIND] [--limit N] [--json]
  rfuav logs [-f] <task_id>
  rfuav cancel <task_id>
  rfuav split --input DIR --output DIR [--train-ratio 0.8] [--val-ratio R] [--seed N]
  rfuav crop --input PATH --output DIR --x N --y N --width N --height N
  rfuav spectrogram --input PATH --output DIR [--sample-rate 100e6] [--stft-point 1024]
        [--duration 0.1] [--ratio 1] [--render matplotlib|power] [--dtype float32|int16]
        [--format png|jpg|webp] [--width 1920] [--height 1440] [--save-matrix]
        [--animation webp|gif]
  rfuav augment --input DATASET [--output DIR] [--methods A,B,…] [--seed N]
  rfuav train --model NAME --num-classes N --train DIR --val DIR --save DIR [--name SUB]
        [--epochs 100] [--batch-size 8] [--lr 0.0001] [--image-size 224] [--device cuda]
        [--weights FILE.pth] [--seed S] [--keep-epochs N] [--no-pretrained] [--no-shuffle]
        [--no-resume]
  rfuav evaluate --cfg config.yaml --weights FILE.pth --data DIR --save DIR [--device cuda]
        [--batch-size 16]
  rfuav infer --cfg config.yaml --weights FILE.pth|FILE.onnx --source IMAGE|RECORDING|DIR
        [--save results] [--engine auto|onnx|torch] [--device cuda] [--batch-size 8]
        [--sample-rate 100e6] [--stft-point 1024] [--duration 0.1] [--ratio 1]
        [--render matplotlib|power] [--dtype float32|int16] [--width 1920] [--height 1440]
        [--animation webp|gif]   (how recordings become frames)
  rfuav predict FILE (--model DIR | --cfg config.yaml --weights FILE) [--top-k 5]
        [--stft-point 1024] [--width 1920] [--height 1440] [--dtype float32|int16] [--json]
        (FILE: a local image, or a .iq/.dat IQ chunk; answered at once, no task)

Local commands (no server needed):
  rfuav synth --out DIR [--classes 4] [--per-class 10] [--sample-rate 100e6]
        [--duration 0.1] [--snr DB[,DB…]] [--seed S]
  rfuav noise --input FILE --output FILE --snr DB [--dtype float32|int16]
        [--occupied-fraction F] [--seed S]

Common to client commands:
  --server URL   service address (default $RFUAV_SERVER or http://127.0.0.1:8000)
  --token T      bearer token (default $RFUAV_TOKEN, else the first of $RFUAV_API_TOKENS)
  --priority N, --task-id ID, --description TEXT   (submitting commands)
  --no-follow    submit and print the task id without following it

Environment for serve: RFUAV_HOME, RFUAV_DATA_ROOT, RFUAV_API_TOKENS, RFUAV_INSECURE, and the
RFUAV_* settings listed in the README.`;

class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

const CLIENT_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SUBMIT_OPTIONS = {
  ...CLIENT_OPTIONS,
  priority: { type: 'string' },
  'task-id': { type: 'string' },
  description: { type: 'string' },
  'no-follow': { type: 'boolean' },
  input: { type: 'string' },
  output: { type: 'string' },
} as const;

type Parse = (v: Values, name: string) => number | undefined;

/** The body every file-processing command starts from, plus the numeric flags that were given. */
function fileBody(
  v: Values,
  numbers: [flag: string, field: string, parse: Parse][] = [],
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    input_path: str(v, 'input', true),
    output_path: str(v, 'output', true),
  };
  flags(v, body, numbers);
  return body;
}

function client(v: Values): ApiClient {
  return new ApiClient({
    server: (v.server as string | undefined) ?? process.env.RFUAV_SERVER ?? 'http://127.0.0.1:8000',
    // On the server's own machine the service's token list is often in the environment already.
    token:
      (v.token as string | undefined) ||
      process.env.RFUAV_TOKEN ||
      process.env.RFUAV_API_TOKENS?.split(',')[0]?.trim() ||
      undefined,
  });
}

function int(v: Values, name: string, required = false): number | undefined {
  const raw = v[name];
  if (raw === undefined) {
    if (required) throw new UsageError(`--${name} is required`);
    return undefined;
  }
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer (got '${raw}')`);
  return n;
}

function float(v: Values, name: string): number | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number (got '${raw}')`);
  return n;
}

function str(v: Values, name: string, required = false): string | undefined {
  const raw = v[name];
  if (raw === undefined && required) throw new UsageError(`--${name} is required`);
  return raw as string | undefined;
}

function common(v: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const p = int(v, 'priority');
  if (p !== undefined) out.priority = p;
  if (v['task-id']) out.task_id = v['task-id'];
  if (v.description) out.description = v.description;
  return out;
}

interface TaskLike {
  task_id: string;
  task_type: string;
  status: string;
  progress: number;
  message: string | null;
  error?: string | null;
  stats?: unknown;
  result?: Record<string, unknown> | null;
  queue_position?: number;
  pending_reason?: string;
  device?: string | null;
  priority?: number;
  created_at?: string;
}

function formatEntry(data: string): string {
  try {
    const e = JSON.parse(data) as { timestamp?: string; level?: string; message?: string };
    const t = e.timestamp ? e.timestamp.slice(11, 19) : '';
    return `${t} ${(e.level ?? 'INFO').padEnd(7)} ${e.message ?? data}`;
  } catch {
    return data;
  }
}

/** Prints a task's log live with a progress bar; resolves with its final status. */
async function follow(
  api: ApiClient,
  id: string,
  showProgress: boolean,
  show: (entry: LogLine) => boolean = () => true,
): Promise<string> {
  const bar = new ProgressBar();
  let final = 'unknown';
  let finalMessage: string | null = null;
  const stop = new AbortController();
  const poll = showProgress
    ? (async () => {
        while (!stop.signal.aborted) {
          try {
            const t = await api.request<TaskLike>('GET', `/api/v2/tasks/${encodeURIComponent(id)}`);
            const label =
              t.status === 'queued' || t.status === 'pending'
                ? `queued #${t.queue_position ?? '?'}: ${t.pending_reason ?? ''}`
                : (t.message ?? t.status);
            bar.update(t.progress, label);
          } catch {
            // the stream reports failures
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      })()
    : Promise.resolve();
  let lastId: string | undefined;
  // Reconnect with Last-Event-ID if the connection drops before the final status.
  for (let attempt = 0; attempt < 20 && final === 'unknown'; attempt++) {
    try {
      const path = `/api/v2/tasks/${encodeURIComponent(id)}/logs${lastId ? `?since=${lastId}` : ''}`;
      for await (const ev of api.events(path, stop.signal)) {
        if (ev.id) lastId = ev.id;
        const parsed = JSON.parse(ev.data) as { status?: string; message?: string | null };
        if (!ev.id && parsed.status) {
          final = parsed.status;
          finalMessage = parsed.message ?? null;
          break;
        }
        if (!show(parsed as LogLine)) continue;
        bar.clear();
        process.stdout.write(`${formatEntry(ev.data)}\n`);
      }
    } catch (err) {
      if (err instanceof ApiError && err.status !== 0) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  stop.abort();
  await poll;
  if (final === 'completed') bar.update(100, 'completed');
  bar.clear();
  process.stdout.write(`Task ${id} ${final}${finalMessage ? `: ${finalMessage}` : ''}\n`);
  return final;
}

interface LogLine {
  level?: string;
  message?: string;
  stage?: string;
}

interface SubmitHow {
  /** Which log entries to print while following (default: all). */
  show?: (entry: LogLine) => boolean;
  /** Prints the finished task's outcome (default: its stats). */
  report?: (task: TaskLike) => void;
}

async function submit(
  v: Values,
  path: string,
  body: Record<string, unknown>,
  how: SubmitHow = {},
): Promise<number> {
  const api = client(v);
  const task = await api.request<TaskLike>('POST', path, { ...body, ...common(v) });
  process.stdout.write(`Submitted ${task.task_type} task ${task.task_id} (${task.status})\n`);
  if (v['no-follow']) return 0;
  const final = await follow(api, task.task_id, true, how.show);
  if (final === 'completed') {
    const t = await api.request<TaskLike>('GET', `/api/v2/tasks/${encodeURIComponent(task.task_id)}`);
    if (how.report) how.report(t);
    else if (t.stats) process.stdout.write(`stats: ${JSON.stringify(t.stats)}\n`);
    return 0;
  }
  return 1;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      home: { type: 'string' },
      'data-root': { type: 'string' },
      insecure: { type: 'boolean' },
    },
  });
  const port = int(values, 'port');
  const config = loadConfig(process.env, {
    host: values.host,
    port,
    home: values.home,
    dataRoot: values['data-root'],
    insecure: values.insecure,
  });
  const svc = await createService({ config });
  try {
    const address = await svc.listen();
    process.stdout.write(
      `RFUAV Model Service listening on ${address} (home ${config.home}, data root ${config.dataRoot})\n`,
    );
  } catch (err) {
    await svc.close();
    throw err;
  }
  // OS signals are handled here, in the entry point only; components expose close().
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) {
      svc.logger.warn(`${sig} again: exiting now`);
      process.exit(1);
    }
    svc.logger.info(`${sig}: shutting down gracefully`);
    svc.close().then(
      () => process.exit(0),
      (err: unknown) => {
        svc.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // A stray rejection is a bug to log, not a reason to drop every client and running task.
  process.on('unhandledRejection', (err) => svc.logger.error({ err }, 'unhandled promise rejection'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  return new Promise<number>(() => undefined);
}

/** Comma-separated numbers, e.g. an SNR list. */
function numberList(v: Values, name: string): number[] | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const out = String(raw)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(Number);
  if (out.length === 0 || out.some((n) => !Number.isFinite(n))) {
    throw new UsageError(`--${name} must be a number or a comma-separated list of numbers (got '${raw}')`);
  }
  return out;
}

function positive(v: Values, name: string, fallback: number, parse: Parse = float): number {
  const n = parse(v, name) ?? fallback;
  if (!(n > 0)) throw new UsageError(`--${name} must be positive (got ${n})`);
  return n;
}

async function synth(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      classes: { type: 'string' },
      'per-class': { type: 'string' },
      'sample-rate': { type: 'string' },
      duration: { type: 'string' },
      snr: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const out = str(values, 'out', true) as string;
  const classes = positive(values, 'classes', 4, int);
  if (classes > CLASS_PROFILES.length) {
    throw new UsageError(`--classes must be at most ${CLASS_PROFILES.length} (the built-in classes)`);
  }
  const sampleRate = positive(values, 'sample-rate', 100e6);
  const durationS = positive(values, 'duration', 0.1);
  const perClass = positive(values, 'per-class', 10, int);
  const snrsDb = numberList(values, 'snr') ?? [10];
  const seed = int(values, 'seed') ?? 0;
  const bytes = classes * perClass * Math.round(sampleRate * durationS) * 8;
  process.stdout.write(
    `Writing ${classes} classes × ${perClass} recordings of ${durationS} s at ${sampleRate} S/s ` +
      `(${(bytes / 2 ** 20).toFixed(1)} MiB) to ${out}, SNR ${snrsDb.join(', ')} dB, seed ${seed}\n`,
  );
  const bar = new ProgressBar();
  const manifest = await writeDataset({
    out,
    classes,
    perClass,
    sampleRate,
    durationS,
    snrsDb,
    seed,
    onRecording: (done, total, file) => bar.update((done / total) * 100, file),
  });
  bar.clear();
  for (const c of manifest.classes) process.stdout.write(`  ${c.name.padEnd(8)} ${c.summary}\n`);
  const worst = Math.max(...manifest.recordings.map((r) => Math.abs(r.snr_measured_db - r.snr_db)));
  process.stdout.write(
    `${manifest.recordings.length} recordings written; measured SNR within ${worst.toFixed(2)} dB of the target ` +
      `(per recording in ${out}/manifest.json)\n`,
  );
  return 0;
}

async function noise(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      input: { type: 'string' },
      output: { type: 'string' },
      snr: { type: 'string' },
      dtype: { type: 'string' },
      'occupied-fraction': { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const input = str(values, 'input', true) as string;
  const output = str(values, 'output', true) as string;
  const snr = float(values, 'snr');
  if (snr === undefined) throw new UsageError('--snr is required');
  const dtype = values.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'int16')
    throw new UsageError(`--dtype must be float32 or int16 (got '${dtype}')`);
  const bar = new ProgressBar();
  const report = await addNoiseAtSnr(input, output, {
    snrDb: snr,
    dtype,
    seed: int(values, 'seed') ?? 0,
    occupiedFraction: float(values, 'occupied-fraction'),
    onProgress: (f) => bar.update(f * 100, output),
  });
  bar.clear();
  process.stdout.write(
    `${output}: ${report.samples} samples, float32; occupied band ${(report.occupied_fraction * 100).toFixed(1)} % ` +
      `of the sample rate (${report.occupied_estimated ? 'estimated, 99 % power' : 'given'}); ` +
      `SNR ${report.snr_measured_db.toFixed(2)} dB (target ${report.snr_db})\n`,
  );
  return 0;
}

const MODEL_OPTIONS = {
  ...SUBMIT_OPTIONS,
  device: { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

/** Copies the given flags into the body under their API names. */
function flags(
  v: Values,
  body: Record<string, unknown>,
  list: [flag: string, field: string, parse?: Parse][],
): void {
  for (const [flag, field, parse] of list) {
    const value = parse ? parse(v, flag) : str(v, flag);
    if (value !== undefined) body[field] = value;
  }
}

async function train(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...MODEL_OPTIONS,
      model: { type: 'string' },
      'num-classes': { type: 'string' },
      train: { type: 'string' },
      val: { type: 'string' },
      save: { type: 'string' },
      name: { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      'image-size': { type: 'string' },
      weights: { type: 'string' },
      seed: { type: 'string' },
      'keep-epochs': { type: 'string' },
      'no-pretrained': { type: 'boolean' },
      'no-shuffle': { type: 'boolean' },
      'no-resume': { type: 'boolean' },
    },
  });
  const body: Record<string, unknown> = {
    model: str(values, 'model', true),
    num_classes: int(values, 'num-classes', true),
    train_path: str(values, 'train', true),
    val_path: str(values, 'val', true),
    save_path: str(values, 'save', true),
  };
  flags(values, body, [
    ['name', 'name'],
    ['device', 'device'],
    ['weights', 'weight_path'],
    ['epochs', 'num_epochs', int],
    ['batch-size', 'batch_size', int],
    ['lr', 'learning_rate', float],
    ['image-size', 'image_size', int],
    ['seed', 'seed', int],
    ['keep-epochs', 'keep_epoch_weights', int],
  ]);
  if (values['no-pretrained']) body.pretrained = false;
  if (values['no-shuffle']) body.shuffle = false;
  if (values['no-resume']) body.resume = false;
  return submit(values, '/api/v2/training/start', body, {
    // Step lines are what the progress bar shows; one line per epoch (epoch_end) stays.
    show: (e) =>
      e.stage !== 'training' && e.stage !== 'epoch_start' && e.stage !== 'validation' && e.level !== 'DEBUG',
    report: (t) => {
      const r = t.result ?? {};
      const onnx = r.onnx as {
        path?: string;
        check?: { agrees?: boolean; max_abs_logit_difference?: number };
      } | null;
      process.stdout.write(
        `best validation accuracy ${formatMetric('best_acc', r.best_acc)}; model folder ${String(r.output_path)} ` +
          `(config.yaml, best_model.pth${onnx?.path ? `, ${onnx.path}` : ''})` +
          (onnx?.check?.max_abs_logit_difference !== undefined
            ? `; ONNX ${onnx.check.agrees ? 'matches' : 'DIFFERS FROM'} PyTorch (max |Δ logit| ${onnx.check.max_abs_logit_difference.toExponential(1)})`
            : '') +
          '\n',
      );
    },
  });
}

async function evaluate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...MODEL_OPTIONS,
      cfg: { type: 'string' },
      weights: { type: 'string' },
      data: { type: 'string' },
      save: { type: 'string' },
    },
  });
  const body: Record<string, unknown> = {
    cfg_path: str(values, 'cfg', true),
    weight_path: str(values, 'weights', true),
    data_path: str(values, 'data', true),
    save_path: str(values, 'save', true),
  };
  flags(values, body, [
    ['device', 'device'],
    ['batch-size', 'batch_size', int],
  ]);
  return submit(values, '/api/v2/evaluation/start', body, {
    report: (t) => {
      const r = t.result ?? {};
      const rows = [['METRIC', 'VALUE']];
      for (const k of EVALUATION_METRICS) rows.push([k, formatMetric(k, r[k])]);
      rows.push(['samples', String(r.samples)]);
      process.stdout.write(`${table(rows)}\n`);
      const snr = r.accuracy_vs_snr as
        { snr_folder: string; accuracy: number; samples: number }[] | undefined;
      if (snr?.length) {
        const snrRows = [['SNR', 'ACCURACY', 'SAMPLES']];
        for (const p of snr)
          snrRows.push([p.snr_folder, formatMetric('accuracy', p.accuracy), String(p.samples)]);
        process.stdout.write(`\n${table(snrRows)}\n`);
      }
      const files = Object.values((r.files as Record<string, string> | undefined) ?? {});
      process.stdout.write(`\nwritten to ${String(r.output_path)}: ${files.join(', ')}\n`);
    },
  });
}

/**
 * `--snr -10` would read as a flag named "1" and "0" to parseArgs: an option followed by a negative
 * number becomes `--snr=-10`.
 */
export function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    if (a.startsWith('--') && !a.includes('=') && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

async function infer(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...MODEL_OPTIONS,
      cfg: { type: 'string' },
      weights: { type: 'string' },
      source: { type: 'string' },
      save: { type: 'string' },
      engine: { type: 'string' },
      'sample-rate': { type: 'string' },
      duration: { type: 'string' },
      animation: { type: 'string' },
      ratio: { type: 'string' },
      render: { type: 'string' },
      ...FRAME_OPTIONS,
    },
  });
  const body: Record<string, unknown> = {
    cfg_path: str(values, 'cfg', true),
    weight_path: str(values, 'weights', true),
    source_path: str(values, 'source', true),
  };
  flags(values, body, [
    ['save', 'save_path'],
    ['engine', 'engine'],
    ['device', 'device'],
    ['batch-size', 'batch_size', int],
    ['sample-rate', 'sample_rate', float],
    ['duration', 'duration_time', float],
    ['ratio', 'ratio', int],
    ['render', 'render'],
    ['animation', 'animation_format'],
    ...FRAME_FLAGS,
  ]);
  return submit(values, '/api/v2/inference/start', body, {
    report: (t) => {
      const r = t.result ?? {};
      const counts = (r.counts as Record<string, number> | undefined) ?? {};
      const rows = [['CLASS', 'IMAGES/FRAMES']];
      for (const [cls, n] of Object.entries(counts).sort((a, b) => b[1] - a[1])) rows.push([cls, String(n)]);
      process.stdout.write(`${table(rows)}\n`);
      const failed = (r.failed as { file: string; frame?: number; error: string }[] | undefined) ?? [];
      for (const f of failed)
        process.stdout.write(`not classified: ${f.file}${f.frame ? ` frame ${f.frame}` : ''} (${f.error})\n`);
      const ips =
        typeof r.images_per_second === 'number' ? `, ${r.images_per_second.toFixed(1)} images/s` : '';
      const what = [
        r.images || !r.recordings ? `${String(r.images)} image(s)` : '',
        r.recordings ? `${String(r.frames)} frame(s) of ${String(r.recordings)} recording(s)` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      const anims = (r.animations as string[] | undefined)?.length ? ', annotated animations' : '';
      process.stdout.write(
        `${what} on ${String(r.engine)}${ips}; written to ${String(r.output_path)} (annotated copies${anims}, predictions.json, predictions.csv)\n`,
      );
    },
  });
}

/** How an IQ chunk or recording is drawn as a frame (as the spectrogram task drew the training images). */
const FRAME_OPTIONS = {
  'stft-point': { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  dtype: { type: 'string' },
} as const;
const FRAME_FLAGS: [string, string, Parse?][] = [
  ['stft-point', 'stft_point', int],
  ['width', 'width', int],
  ['height', 'height', int],
  ['dtype', 'dtype'],
];

async function predict(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...CLIENT_OPTIONS,
      model: { type: 'string' },
      cfg: { type: 'string' },
      weights: { type: 'string' },
      'top-k': { type: 'string' },
      json: { type: 'boolean' },
      ...FRAME_OPTIONS,
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1)
    throw new UsageError('predict takes one file: an image or an IQ chunk');
  const fields: Record<string, unknown> = {};
  flags(values, fields, [
    ['model', 'model'],
    ['cfg', 'cfg_path'],
    ['weights', 'weight_path'],
    ['top-k', 'top_k', int],
    ...FRAME_FLAGS,
  ]);
  if (fields.model === undefined && (fields.cfg_path === undefined || fields.weight_path === undefined))
    throw new UsageError('--model DIR, or --cfg with --weights, is required');
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, String(v));
  const bytes = await fs.readFile(file);
  const iq = /\.(iq|dat)$/i.test(file);
  form.set(iq ? 'iq' : 'image', new Blob([bytes]), path.basename(file));
  const a = await client(values).upload<{
    class: string;
    confidence: number;
    top_k: { class: string; confidence: number }[];
    latency_ms: number;
    batch_size: number;
  }>('/api/v2/inference/predict', form);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(a)}\n`);
    return 0;
  }
  const rows = [['CLASS', 'CONFIDENCE']];
  for (const t of a.top_k) rows.push([t.class, `${(t.confidence * 100).toFixed(2)}%`]);
  process.stdout.write(
    `${path.basename(file)}: ${a.class} (${(a.confidence * 100).toFixed(1)}%)\n${table(rows)}\n` +
      `answered in ${a.latency_ms.toFixed(1)} ms on the server${a.batch_size > 1 ? ` (batched with ${a.batch_size - 1} other request(s))` : ''}\n`,
  );
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = joinNegativeValues(argv);
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 2;
  }
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'tasks': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...CLIENT_OPTIONS,
          status: { type: 'string' },
          type: { type: 'string' },
          limit: { type: 'string' },
          json: { type: 'boolean' },
        },
      });
      const q = new URLSearchParams();
      if (values.status) q.set('status', values.status);
      if (values.type) q.set('task_type', values.type);
      q.set('limit', String(int(values, 'limit') ?? 50));
      const res = await client(values).request<Record<string, TaskLike[] | number>>(
        'GET',
        `/api/v2/tasks?${q}`,
      );
      const all = [
        ...(res.training_tasks as TaskLike[]),
        ...(res.inference_tasks as TaskLike[]),
        ...(res.other_tasks as TaskLike[]),
      ].sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? ''));
      if (values.json) {
        process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return 0;
      }
      const rows = [['TASK_ID', 'TYPE', 'STATUS', 'PROGRESS', 'DEVICE', 'PRI', 'MESSAGE']];
      for (const t of all) {
        const msg =
          t.status === 'queued' || t.status === 'pending'
            ? `#${t.queue_position ?? '?'} ${t.pending_reason ?? ''}`
            : (t.error ?? t.message ?? '');
        rows.push([
          t.task_id,
          t.task_type,
          t.status,
          `${t.progress}%`,
          t.device ?? '-',
          String(t.priority ?? ''),
          msg.slice(0, 80),
        ]);
      }
      process.stdout.write(`${table(rows)}\n`);
      process.stdout.write(
        `training ${res.total_training}, inference ${res.total_inference}, other ${res.total_other}\n`,
      );
      return 0;
    }
    case 'logs': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...CLIENT_OPTIONS, follow: { type: 'boolean', short: 'f' } },
      });
      const id = positionals[0];
      if (!id) throw new UsageError('logs needs a task id');
      const api = client(values);
      if (values.follow) {
        const final = await follow(api, id, false);
        return final === 'completed' ? 0 : 1;
      }
      for await (const ev of api.events(`/api/v2/tasks/${encodeURIComponent(id)}/logs?follow=false`)) {
        const parsed = JSON.parse(ev.data) as { status?: string; message?: string };
        if (!ev.id && parsed.status) process.stdout.write(`Task ${id} ${parsed.status}\n`);
        else process.stdout.write(`${formatEntry(ev.data)}\n`);
      }
      return 0;
    }
    case 'cancel': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: CLIENT_OPTIONS,
      });
      const id = positionals[0];
      if (!id) throw new UsageError('cancel needs a task id');
      const res = await client(values).request<{ message: string }>(
        'POST',
        `/api/v2/tasks/${encodeURIComponent(id)}/cancel`,
      );
      process.stdout.write(`${res.message}\n`);
      return 0;
    }
    case 'split': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...SUBMIT_OPTIONS,
          'train-ratio': { type: 'string' },
          'val-ratio': { type: 'string' },
          seed: { type: 'string' },
        },
      });
      const body = fileBody(values, [
        ['train-ratio', 'train_ratio', float],
        ['val-ratio', 'val_ratio', float],
        ['seed', 'seed', int],
      ]);
      return submit(values, '/api/v2/preprocessing/split', body);
    }
    case 'crop': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...SUBMIT_OPTIONS,
          x: { type: 'string' },
          y: { type: 'string' },
          width: { type: 'string' },
          height: { type: 'string' },
        },
      });
      const required: Parse = (v, name) => int(v, name, true);
      const body = fileBody(values, [
        ['x', 'x', required],
        ['y', 'y', required],
        ['width', 'width', required],
        ['height', 'height', required],
      ]);
      return submit(values, '/api/v2/preprocessing/crop', body);
    }
    case 'spectrogram': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...SUBMIT_OPTIONS,
          'sample-rate': { type: 'string' },
          'stft-point': { type: 'string' },
          duration: { type: 'string' },
          dtype: { type: 'string' },
          format: { type: 'string' },
          width: { type: 'string' },
          height: { type: 'string' },
          'save-matrix': { type: 'boolean' },
          animation: { type: 'string' },
          ratio: { type: 'string' },
          render: { type: 'string' },
        },
      });
      const body = fileBody(values, [
        ['sample-rate', 'sample_rate', float],
        ['stft-point', 'stft_point', int],
        ['duration', 'duration_time', float],
        ['width', 'width', int],
        ['height', 'height', int],
        ['ratio', 'ratio', int],
      ]);
      if (values.render) body.render = values.render;
      if (values.dtype) body.dtype = values.dtype;
      if (values.format) body.format = values.format;
      if (values['save-matrix']) body.save_matrix = true;
      if (values.animation) {
        body.animation = true;
        body.animation_format = values.animation;
      }
      return submit(values, '/api/v2/preprocessing/spectrogram', body);
    }
    case 'augment': {
      const { values } = parseArgs({
        args: rest,
        options: { ...SUBMIT_OPTIONS, methods: { type: 'string' }, seed: { type: 'string' } },
      });
      const body: Record<string, unknown> = { dataset_path: str(values, 'input', true) };
      if (values.output) body.output_path = values.output;
      if (values.methods) body.methods = values.methods.split(',').map((m) => m.trim());
      const seed = int(values, 'seed');
      if (seed !== undefined) body.seed = seed;
      return submit(values, '/api/v2/preprocessing/augment', body);
    }
    case 'train':
      return train(rest);
    case 'evaluate':
      return evaluate(rest);
    case 'infer':
      return infer(rest);
    case 'predict':
      return predict(rest);
    case 'synth':
      return synth(rest);
    case 'noise':
      return noise(rest);
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

export async function run(argv: string[]): Promise<void> {
  try {
    const code = await main(argv);
    process.exitCode = code;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`rfuav: ${err.message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else if (
      err instanceof ConfigError ||
      err instanceof InsecureListenError ||
      err instanceof StoreLockedError
    ) {
      process.stderr.write(`rfuav: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof ApiError) {
      process.stderr.write(`rfuav: ${err.message}\n`);
      process.exitCode = 1;
    } else if (
      err instanceof RangeError ||
      err instanceof IqFormatError ||
      ['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR', 'ENOSPC', 'EEXIST'].includes(
        (err as { code?: string }).code ?? '',
      )
    ) {
      // Local commands (synth, noise): a bad argument or file, not a bug.
      process.stderr.write(`rfuav: ${(err as Error).message}\n`);
      process.exitCode = 1;
    } else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`rfuav: ${(err as Error).message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`rfuav: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
