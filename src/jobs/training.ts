/**
 * `training`: POST /api/v2/training/start (SPEC §2.2). Submission checks every field in
 * milliseconds (folders are listed, never read image by image); the run is one child process of
 * the PyTorch runner whose epoch metrics go into the task's metric history as they arrive.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { badPath, invalidField } from '../domain/errors.js';
import { SUPPORTED_MODELS } from '../domain/models.js';
import { formatMetric } from '../domain/metrics.js';
import { weightsFile } from '../engines/choose.js';
import { onnxProbeDifference } from '../engines/onnx/probe.js';
import type { RunnerEvent } from '../engines/torch/runner.js';
import { findSignalFile, SIGNAL_FILE, type SignalParams } from '../signal/params.js';
import { classFolders, existingPath, isInside, outputFolder, statOrNull, withName } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';
import { defineJob, type JobDefinition, type JobOutcome, type PreparedTask, type RunContext } from './job.js';
import { runTorchForTask } from './torch-run.js';

export const TrainingBody = Type.Object({
  model: Type.Unsafe<(typeof SUPPORTED_MODELS)[number]>({
    type: 'string',
    enum: [...SUPPORTED_MODELS],
    description: `One of ${SUPPORTED_MODELS.join(', ')}`,
  }),
  num_classes: Type.Integer({
    minimum: 2,
    maximum: 100000,
    description: 'Must equal the class folders of train_path',
  }),
  train_path: Type.String({ minLength: 1, description: 'ImageFolder root: one sub-folder per class' }),
  val_path: Type.String({ minLength: 1, description: 'ImageFolder root with the same class folders' }),
  save_path: Type.String({ minLength: 1, description: 'Output folder (created)' }),
  name: Type.Optional(
    Type.Union([Type.String({ maxLength: 200 }), Type.Null()], {
      description: 'Sub-folder appended to save_path',
    }),
  ),
  batch_size: Type.Integer({ minimum: 1, maximum: 65536, default: 8 }),
  num_epochs: Type.Integer({ minimum: 1, maximum: 100000, default: 100 }),
  learning_rate: Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 0.0001 }),
  image_size: Type.Integer({ minimum: 32, maximum: 4096, default: 224 }),
  weight_path: Type.String({ default: '', description: 'Optional initial weights (.pth)' }),
  pretrained: Type.Boolean({
    default: true,
    description: 'ImageNet weights from the local torch hub cache; without them, random init (logged)',
  }),
  shuffle: Type.Boolean({ default: true }),
  seed: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 4294967295 }), Type.Null()])),
  resume: Type.Boolean({
    default: true,
    description: 'After a crash or restart, continue from checkpoint_last.pt at the next epoch',
  }),
  keep_epoch_weights: Type.Optional(
    Type.Union([Type.Integer({ minimum: 0, maximum: 100000 }), Type.Null()], {
      description: 'Keep only the newest N <model>_epoch_<n>.pth files (default: all)',
    }),
  ),
});
type TrainingBody = Static<typeof TrainingBody>;

export interface TrainingParams {
  model: string;
  num_classes: number;
  train_path: string;
  val_path: string;
  save_path: string;
  name: string | null;
  /** save_path/name, as the client would name it. */
  output_path: string;
  batch_size: number;
  num_epochs: number;
  learning_rate: number;
  image_size: number;
  weight_path: string;
  pretrained: boolean;
  shuffle: boolean;
  seed: number | null;
  resume: boolean;
  keep_epoch_weights: number | null;
  /** From the dataset's signal.json, for the model card's `signal:` section. */
  signal: SignalParams | null;
}

/** An ImageFolder root: exists, is a folder, has class sub-folders. Returns them. */
async function imageFolderClasses(paths: PathSandbox, value: string, field: string): Promise<string[]> {
  const { path: dir, stat } = await existingPath(paths, value, field, 'folder');
  const classes = await classFolders(dir, stat);
  if (classes.length === 0) {
    throw badPath(`${field}: '${value}' has no class sub-folders (expected one folder per class)`, { field });
  }
  return classes;
}

export function trainingJob(torch: TorchSettings): JobDefinition {
  return defineJob<typeof TrainingBody, TrainingParams>({
    kind: 'training',
    resourceClass: 'training',
    body: TrainingBody,
    validate: (body, { paths }) => validateTraining(body, paths),
    run: (p, ctx) => runTraining(torch, p, ctx),
  });
}

/** The class folders of train_path, checked against num_classes and val_path's. */
async function checkClasses(body: TrainingBody, paths: PathSandbox): Promise<string[]> {
  const trainClasses = await imageFolderClasses(paths, body.train_path, 'train_path');
  if (trainClasses.length > body.num_classes) {
    throw invalidField(
      'num_classes',
      `is ${body.num_classes} but train_path has ${trainClasses.length} class folders (${trainClasses.slice(0, 20).join(', ')}${trainClasses.length > 20 ? ', …' : ''})`,
    );
  }
  const valClasses = await imageFolderClasses(paths, body.val_path, 'val_path');
  const missing = trainClasses.filter((c) => !valClasses.includes(c));
  const extra = valClasses.filter((c) => !trainClasses.includes(c));
  if (missing.length || extra.length) {
    throw badPath(
      `val_path: its class folders differ from train_path's${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not in train_path: ${extra.join(', ')}` : ''}`,
      { field: 'val_path' },
    );
  }
  return trainClasses;
}

async function validateTraining(
  body: TrainingBody,
  paths: PathSandbox,
): Promise<PreparedTask<TrainingParams>> {
  const trainClasses = await checkClasses(body, paths);
  const name = body.name ?? null;
  paths.resolve(body.save_path, 'save_path');
  const outputRel = withName(body.save_path, name);
  const { path: output, exists: outExists } = await outputFolder(paths, outputRel, 'save_path');
  for (const field of ['train_path', 'val_path'] as const) {
    if (isInside(output, paths.resolve(body[field], field))) {
      throw badPath(`save_path: the output folder must not be inside ${field} (it would become a class)`, {
        field: 'save_path',
      });
    }
  }
  if (body.weight_path) await weightsFile(paths, body.weight_path, 'weight_path');
  const notes: string[] = [];
  if (trainClasses.length < body.num_classes) {
    // The reference trains such heads (its examples use 37 on subsets); so do we, saying so.
    notes.push(
      `num_classes is ${body.num_classes} but train_path has ${trainClasses.length} class folders: the head gets ${body.num_classes} outputs and outputs ${trainClasses.length}-${body.num_classes - 1} stay unused (the model card lists them)`,
    );
  }
  if (outExists && (await statOrNull(path.join(output, 'checkpoint_last.pt')))) {
    notes.push(
      `${outputRel} already holds a training run; its files will be overwritten (resume applies only after this task is interrupted)`,
    );
  }
  // How the training images were rendered from raw IQ (signal.json beside the dataset, made
  // by the spectrogram task and carried by split/augment): the card will remember it.
  const signal = await findSignalFile(paths.resolve(body.train_path, 'train_path'), paths.realRoot, (p) =>
    paths.stat(p),
  );
  const params: TrainingParams = {
    model: body.model,
    num_classes: body.num_classes,
    train_path: body.train_path,
    val_path: body.val_path,
    save_path: body.save_path,
    name,
    output_path: outputRel,
    batch_size: body.batch_size,
    num_epochs: body.num_epochs,
    learning_rate: body.learning_rate,
    image_size: body.image_size,
    weight_path: body.weight_path,
    pretrained: body.pretrained,
    shuffle: body.shuffle,
    seed: body.seed ?? null,
    resume: body.resume,
    keep_epoch_weights: body.keep_epoch_weights ?? null,
    signal,
  };
  return {
    params,
    input_path: paths.display(paths.resolve(body.train_path, 'train_path')),
    output_path: paths.display(output),
    total_epochs: body.num_epochs,
    notes,
  };
}

async function runTraining(torch: TorchSettings, p: TrainingParams, ctx: RunContext): Promise<JobOutcome> {
  const output = ctx.paths.resolve(p.output_path, 'save_path');
  await fs.mkdir(output, { recursive: true });
  // Resuming is for this task's own interrupted attempts, never a stranger's checkpoint.
  const resume = p.resume && ctx.task.attempts > 1;
  if (p.signal) {
    const g = p.signal;
    ctx.log(
      `The training images were rendered from raw IQ at ${g.sample_rate} S/s, ${g.stft_point}-point STFT, ${g.duration_time} s slices, ${g.width}x${g.height} (${SIGNAL_FILE}); the model card carries these`,
    );
  }
  if (ctx.task.attempts > 1 && !p.resume) {
    ctx.log('resume is false: training starts again from epoch 1', 'WARNING');
  }
  const history = epochHistory(ctx, p.num_epochs);
  const result = await runTorchForTask({
    torch,
    command: 'train',
    ctx,
    // Every field of the runner's TrainRequest (python/rfuav_torch/train.py), the body's
    // defaults already applied; the runner's copy of them is for runs outside the service.
    request: {
      model: p.model,
      num_classes: p.num_classes,
      train_path: ctx.paths.resolve(p.train_path, 'train_path'),
      val_path: ctx.paths.resolve(p.val_path, 'val_path'),
      output_dir: output,
      batch_size: p.batch_size,
      num_epochs: p.num_epochs,
      learning_rate: p.learning_rate,
      image_size: p.image_size,
      weight_path: p.weight_path ? ctx.paths.resolve(p.weight_path, 'weight_path') : '',
      pretrained: p.pretrained,
      shuffle: p.shuffle,
      seed: p.seed,
      resume,
      keep_epoch_weights: p.keep_epoch_weights,
      signal: p.signal ?? null,
    },
    onEvent: history.onEvent,
  });
  await history.settled();
  const onnx = result.onnx as RunnerOnnx | undefined;
  const onnxCheck = onnx?.probe_logits
    ? await checkOnnx(torch, ctx, path.join(output, onnx.path), p.image_size, onnx.probe_logits)
    : null;
  const best = Number(result.best_acc);
  return {
    message: `trained ${p.model} for ${p.num_epochs} epochs: best validation accuracy ${formatMetric('best_acc', best)}`,
    result: {
      best_acc: best,
      epochs: result.epochs,
      final_metrics: result.final_metrics,
      class_names: result.class_names,
      output_path: ctx.paths.display(output),
      artifacts: {
        model_card: 'config.yaml',
        best_weights: 'best_model.pth',
        checkpoint: 'checkpoint_last.pt',
        onnx: onnx?.path ?? null,
        metrics: 'metrics.jsonl',
        log: 'train.log',
      },
      onnx: onnx ? { path: onnx.path, bytes: onnx.bytes, check: onnxCheck } : null,
    },
  };
}

/** best_model.onnx as the runner reports it. */
interface RunnerOnnx {
  path: string;
  bytes: number;
  probe_logits?: number[][];
}

/**
 * The runner's history and metrics events into the task's metric history, written in arrival
 * order; `settled` waits for the writes and reports a failed one once (never left unhandled).
 */
function epochHistory(
  ctx: RunContext,
  total: number,
): { onEvent(event: RunnerEvent): void; settled(): Promise<void> } {
  let writes: Promise<void> = Promise.resolve();
  let writeError: unknown = null;
  const write = (fn: () => Promise<void>) => {
    writes = writes.then(fn).catch((err: unknown) => {
      writeError ??= err;
    });
  };
  return {
    onEvent(event) {
      if (event.event === 'history') {
        const done = Number(event.epochs_done) || 0;
        // The epochs done, from metrics.jsonl: stored again, so none the last run did not report
        // is missing.
        const kept = (Array.isArray(event.epochs) ? event.epochs : []).filter(
          (e): e is Record<string, unknown> =>
            typeof e === 'object' && e !== null && Number((e as { epoch?: unknown }).epoch) <= done,
        );
        write(async () => {
          await ctx.truncateMetrics(done);
          for (const e of kept) await ctx.epochMetrics({ ...e, epoch: Number(e.epoch) });
        });
      } else if (event.event === 'metrics') {
        const values = { ...(event.values as Record<string, unknown>), epoch: Number(event.epoch) };
        write(() => ctx.epochMetrics(values));
        ctx.log(epochLine(values, total), 'INFO', {
          stage: 'epoch_end',
          step: values.epoch,
          metrics: values,
        });
      }
    },
    async settled() {
      await writes;
      if (writeError) {
        ctx.log(
          `Some epoch metrics could not be stored (${writeError instanceof Error ? writeError.message : String(writeError)}); metrics.jsonl in the model folder has them all`,
          'WARNING',
        );
      }
    },
  };
}

/** best_model.onnx run by ONNX Runtime on the probe input, against PyTorch's logits for it. */
async function checkOnnx(
  torch: TorchSettings,
  ctx: RunContext,
  file: string,
  imageSize: number,
  probeLogits: number[][],
): Promise<Record<string, unknown>> {
  try {
    const diff = await onnxProbeDifference(file, imageSize, probeLogits, torch.threads);
    ctx.log(
      `best_model.onnx checked with ONNX Runtime against PyTorch on the probe input: max |Δ logit| = ${diff.toExponential(2)}`,
      diff < 1e-3 ? 'INFO' : 'WARNING',
    );
    return { max_abs_logit_difference: diff, agrees: diff < 1e-3 };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    ctx.log(`best_model.onnx could not be checked with ONNX Runtime: ${error}`, 'WARNING');
    return { agrees: false, error };
  }
}

function epochLine(m: Record<string, unknown>, total: number): string {
  const f = (k: string) => formatMetric(k, m[k]);
  const secs = typeof m.epoch_seconds === 'number' ? ` (${m.epoch_seconds.toFixed(1)} s)` : '';
  return `Epoch ${String(m.epoch)}/${total}: train loss ${f('train_loss')} acc ${f('train_acc')}, val loss ${f('val_loss')} acc ${f('val_acc')}, best ${f('best_acc')}${secs}`;
}
