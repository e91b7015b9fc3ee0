/**
 * `inference`: POST /api/v2/inference/start (SPEC §2.3) on an image, a raw IQ recording or a
 * folder of them, on ONNX Runtime in process or PyTorch through the runner. A recording is cut
 * into slices rendered exactly as the spectrogram task renders them and classified frame by
 * frame. Writes an annotated copy per image, an annotated animation per recording,
 * predictions.json and predictions.csv.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { badPath, invalidField } from '../domain/errors.js';
import type { LogLevel } from '../domain/task.js';
import { ANIMATION_BOX, ANIMATION_MAX_FRAMES } from '../engines/annotate.js';
import { runBatches } from '../engines/batches.js';
import { chooseEngine } from '../engines/choose.js';
import { InferenceOutputs } from '../engines/inference/outputs.js';
import {
  amount,
  errorLine,
  planItems,
  sourceFiles,
  SourceLayout,
  type Item,
  type ItemPlan,
  type Prepared,
} from '../engines/inference/source.js';
import { readModelCard, type ModelCard } from '../engines/model-card.js';
import {
  onnxCardMismatch,
  onnxProbabilities,
  stackTensors,
  type OnnxSessionCache,
} from '../engines/onnx/engine.js';
import { iqSampleCount, isRecording, type IqDtype } from '../signal/iq.js';
import type { RenderMode } from '../signal/slice-image.js';
import {
  describeSlicing,
  resolveSlicing,
  samplesPerSlice,
  sliceRegion,
  SLICING_REQUEST_FIELDS,
  type Slicing,
  type SlicingKey,
} from '../signal/slicing.js';
import { existingPath, isImageFile, isInside, outputFolder, withName } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';
import type { WorkerPool } from '../workers/pool.js';
import type { FrameJob } from '../workers/slice-worker.js';
import {
  defineJob,
  throwIfAborted,
  type JobDefinition,
  type JobOutcome,
  type PreparedTask,
  type RunContext,
} from './job.js';
import { runTorchForTask } from './torch-run.js';
export const InferenceBody = Type.Object({
  cfg_path: Type.String({ minLength: 1, description: 'Model card (config.yaml) written by training' }),
  weight_path: Type.String({ minLength: 1, description: '.pth (PyTorch) or .onnx weights' }),
  source_path: Type.String({
    minLength: 1,
    description: 'An image, a raw .iq/.dat recording, or a folder of them',
  }),
  save_path: Type.String({ minLength: 1, default: 'results', description: 'Output folder (created)' }),
  name: Type.Optional(
    Type.String({
      maxLength: 200,
      description: 'Sub-folder appended to save_path (outputs go to save_path/name)',
    }),
  ),
  engine: Type.Unsafe<'auto' | 'onnx' | 'torch'>({
    type: 'string',
    enum: ['auto', 'onnx', 'torch'],
    default: 'auto',
    description: 'auto: ONNX Runtime when an .onnx is given or sits beside the .pth',
  }),
  batch_size: Type.Integer({ minimum: 1, maximum: 256, default: 8 }),
  annotate: Type.Boolean({
    default: true,
    description: 'Write annotated copies of images and animations of recordings (false: predictions only)',
  }),
  // How raw recordings become frames: as the spectrogram task made the training images. Left
  // out, a field comes from the model card's signal section, then the spectrogram defaults.
  ...SLICING_REQUEST_FIELDS,
  animation_format: Type.Union([Type.Literal('webp'), Type.Literal('gif')], { default: 'webp' }),
});
type InferenceBody = Static<typeof InferenceBody>;

interface InferenceParams {
  cfg_path: string;
  source_path: string;
  output_path: string;
  engine: 'onnx' | 'torch';
  /** The file the engine loads (.onnx for onnx, .pth for torch). */
  model_path: string;
  batch_size: number;
  annotate: boolean;
  sample_rate: number;
  duration_time?: number;
  stft_point: number;
  dtype: IqDtype;
  width: number;
  height: number;
  samples_per_slice: number;
  /** As the spectrogram task: slice step duration_time × 2^−ratio, and how slices are drawn. */
  ratio: number;
  render: RenderMode;
  /** The slicing fields taken from the model card's signal section (for the log). */
  slicing_from_card?: string[];
  animation_format: 'webp' | 'gif';
}

/** What the job is built with (by the composition root). */
interface Deps {
  torch: TorchSettings;
  sessions: OnnxSessionCache;
  pool: WorkerPool;
}

export function inferenceJob(
  torch: TorchSettings,
  sessions: OnnxSessionCache,
  pool: WorkerPool,
): JobDefinition {
  const deps: Deps = { torch, sessions, pool };
  return defineJob<typeof InferenceBody, InferenceParams>({
    kind: 'inference',
    resourceClass: 'inference',
    body: InferenceBody,
    validate: (body, { paths }) => validateInference(sessions, body, paths),
    run: (p, ctx) => runInference(deps, p, ctx),
  });
}

// ——— at submission ———

async function validateInference(
  sessions: OnnxSessionCache,
  body: InferenceBody,
  paths: PathSandbox,
): Promise<PreparedTask<InferenceParams & { num_classes: number }>> {
  const card = await readModelCard(paths.resolve(body.cfg_path, 'cfg_path'), 'cfg_path', body.cfg_path);
  const chosen = await chooseEngine(paths, body.weight_path, body.engine);
  if (chosen.engine === 'onnx') await checkOnnxModel(sessions, paths, chosen.model, card, body.cfg_path);
  const slicing = resolveSlicing(body, card.signal);
  const perSlice = samplesPerSlice(slicing.values);
  const { path: source, stat: st } = await existingPath(paths, body.source_path, 'source_path');
  if (st.isFile()) await checkSourceFile(source, body.source_path, slicing.values.dtype, perSlice);
  // name: a sub-folder of save_path (the reference's meaning), so runs do not overwrite.
  const outputRel = withName(body.save_path, body.name);
  const out = paths.resolve(outputRel, 'save_path');
  if (st.isFile() ? path.dirname(source) === out : isInside(out, source)) {
    throw badPath(
      'save_path: must not be the source folder or inside it (annotated copies would mix with, or overwrite, the originals)',
      { field: 'save_path' },
    );
  }
  await outputFolder(paths, outputRel, 'save_path');
  const params = inferenceParams(body, outputRel, chosen, slicing, perSlice);
  const slicesRecordings = st.isDirectory() || isRecording(path.basename(source));
  return {
    params: { ...params, num_classes: card.num_classes },
    input_path: paths.display(source),
    output_path: paths.display(out),
    notes: [
      ...(chosen.note ? [chosen.note] : []),
      ...(slicing.differences.length > 0 && slicesRecordings
        ? [
            `Recordings are sliced with ${slicing.differences.join(', ')}: not as the model card's signal section says, so their frames may not look like the training images`,
          ]
        : []),
    ],
  };
}

/** The model is loaded now (and stays cached for the run): it must fit its card. */
async function checkOnnxModel(
  sessions: OnnxSessionCache,
  paths: PathSandbox,
  model: string,
  card: ModelCard,
  cfgPath: string,
): Promise<void> {
  const lease = await sessions.acquire(paths.resolve(model, 'weight_path')).catch((err: Error) => {
    throw invalidField('weight_path', `'${model}' is not a loadable ONNX model (${errorLine(err)})`);
  });
  const mismatch = onnxCardMismatch(lease.session, card);
  lease.release();
  if (mismatch) throw invalidField('weight_path', `${mismatch} ('${model}' vs '${cfgPath}')`);
}

/** A source that is one file: an image, or a recording holding at least one slice. */
async function checkSourceFile(
  source: string,
  shown: string,
  dtype: IqDtype,
  perSlice: number,
): Promise<void> {
  if (isRecording(path.basename(source))) {
    let samples: number;
    try {
      samples = await iqSampleCount(source, dtype);
    } catch (err) {
      throw invalidField('source_path', errorLine(err).replace(source, `'${shown}'`));
    }
    if (samples < perSlice) {
      throw invalidField(
        'source_path',
        `'${shown}' holds ${samples} samples, less than one slice of ${perSlice} (sample_rate × duration_time)`,
      );
    }
  } else if (!isImageFile(path.basename(source))) {
    throw invalidField(
      'source_path',
      `'${shown}' is neither an image (.jpg .jpeg .png .gif .bmp .tiff .webp) nor a raw IQ recording (.iq .dat)`,
    );
  }
}

function inferenceParams(
  body: InferenceBody,
  outputRel: string,
  chosen: { engine: 'onnx' | 'torch'; model: string },
  slicing: { values: Slicing; fromCard: SlicingKey[] },
  perSlice: number,
): InferenceParams {
  const sl = slicing.values;
  return {
    cfg_path: body.cfg_path,
    source_path: body.source_path,
    output_path: outputRel,
    engine: chosen.engine,
    model_path: chosen.model,
    batch_size: body.batch_size,
    annotate: body.annotate,
    sample_rate: sl.sample_rate,
    duration_time: sl.duration_time,
    stft_point: sl.stft_point,
    dtype: sl.dtype,
    width: sl.width,
    height: sl.height,
    samples_per_slice: perSlice,
    ratio: sl.ratio,
    render: sl.render,
    slicing_from_card: slicing.fromCard,
    animation_format: body.animation_format,
  };
}

// ——— the run: plan, one engine's pipeline, outputs ———

/** What one run works with, resolved once. */
interface InferenceRun {
  deps: Deps;
  p: InferenceParams;
  ctx: RunContext;
  card: ModelCard;
  layout: SourceLayout;
  plan: ItemPlan;
  outputs: InferenceOutputs;
  /** Tasks accepted before ratio and render existed: consecutive slices, today's rendering. */
  ratio: number;
  render: RenderMode;
}

async function runInference(deps: Deps, p: InferenceParams, ctx: RunContext): Promise<JobOutcome> {
  const card = await readModelCard(ctx.paths.resolve(p.cfg_path, 'cfg_path'), 'cfg_path', p.cfg_path);
  const source = ctx.paths.resolve(p.source_path, 'source_path');
  const out = ctx.paths.resolve(p.output_path, 'save_path');
  await fs.mkdir(out, { recursive: true });
  const layout = new SourceLayout(source, out, await sourceFiles(source));
  const ratio = p.ratio ?? 0;
  const log = (message: string, level?: LogLevel) => ctx.log(message, level);
  const plan = await planItems(layout, { dtype: p.dtype, samplesPerSlice: p.samples_per_slice, ratio }, log);
  logPlan(p, card, layout, plan, ctx);
  const outputs = new InferenceOutputs(
    {
      layout,
      labels: card.labels,
      annotate: p.annotate,
      animationFormat: p.animation_format,
      paths: ctx.paths,
      log,
    },
    plan.failed,
  );
  const run: InferenceRun = { deps, p, ctx, card, layout, plan, outputs, ratio, render: p.render ?? 'power' };
  const t0 = performance.now();
  if (p.engine === 'onnx') await onnxPipeline(run);
  else if (plan.items.length) await torchPipeline(run);
  const seconds = (performance.now() - t0) / 1000;
  for (const f of outputs.failed)
    ctx.log(`${f.file}${f.frame ? ` frame ${f.frame}` : ''}: ${f.error}`, 'WARNING');
  await outputs.writePredictions();
  return summary(run, seconds);
}

function logPlan(
  p: InferenceParams,
  card: ModelCard,
  layout: SourceLayout,
  plan: ItemPlan,
  ctx: RunContext,
): void {
  const { items, frames, recordings, failed } = plan;
  if (frames > 0 && p.slicing_from_card?.length) {
    ctx.log(
      `Recordings are sliced and drawn as the model card says: ${describeSlicing(p, p.slicing_from_card as SlicingKey[])}`,
    );
  }
  ctx.log(
    `Classifying ${amount(items.length - frames, frames, recordings)} ` +
      `with ${card.model} on ${p.engine === 'onnx' ? 'ONNX Runtime' : 'PyTorch'}` +
      (frames
        ? ` (slices of ${p.samples_per_slice} samples, ${p.stft_point}-point STFT, ${p.width}x${p.height})`
        : '') +
      (layout.isDir && failed.length ? `; ${failed.length} other file(s) skipped` : ''),
  );
}

function summary({ p, ctx, card, layout, plan, outputs }: InferenceRun, seconds: number): JobOutcome {
  const { predictions, failed } = outputs;
  const images = predictions.filter((x) => x.frame === null).length;
  const classifiedFrames = predictions.length - images;
  return {
    message:
      `classified ${amount(images, classifiedFrames, plan.recordings)}` +
      (failed.length ? `, ${failed.length} not classified` : ''),
    result: {
      engine: p.engine,
      model: card.model,
      counts: outputs.counts,
      files: layout.files.length,
      images,
      recordings: plan.recordings,
      frames: classifiedFrames,
      animations: outputs.animations,
      failed,
      images_per_second: seconds > 0 ? predictions.length / seconds : null,
      seconds,
      output_path: ctx.paths.display(layout.out),
      predictions_json: 'predictions.json',
      predictions_csv: 'predictions.csv',
    },
  };
}

/** The worker's job for one frame: the recording's slice, drawn as the training images were. */
function frameJob(run: InferenceRun, item: Item, pngPath: string | null, preview: boolean): FrameJob {
  const { p } = run;
  const frame = item.frame as number;
  return {
    source: sliceRegion(run.layout.abs(item.rel), p.dtype, frame - 1, p.samples_per_slice, run.ratio),
    stftPoint: p.stft_point,
    width: p.width,
    height: p.height,
    colormap: 'jet',
    render: run.render,
    inputSize: run.card.image_size,
    pngPath,
    preview: preview && frame <= ANIMATION_MAX_FRAMES ? ANIMATION_BOX : { width: 0, height: 0 },
  };
}

/** Runs `make`, turning a failure into the item's error unless the task was cancelled. */
async function attempt(ctx: RunContext, item: Item, make: () => Promise<Prepared>): Promise<Prepared> {
  try {
    return await make();
  } catch (err) {
    throwIfAborted(ctx.signal);
    return { item, error: errorLine(err) };
  }
}

function gpuIndex(device: string): number | null {
  const m = /^cuda:(\d+)$/.exec(device);
  return m ? Number(m[1]) : null;
}

// ——— ONNX Runtime: in process, inputs made on the worker threads one batch ahead ———

async function onnxPipeline(run: InferenceRun): Promise<void> {
  const { p, ctx, card, outputs } = run;
  const lease = await run.deps.sessions.acquire(
    ctx.paths.resolve(p.model_path, 'weight_path'),
    gpuIndex(ctx.device),
  );
  if (lease.fallback !== undefined) {
    ctx.log(
      `Placed on ${ctx.device}, but ONNX Runtime cannot use the GPU here (${lease.fallback || 'no CUDA execution provider in this build'}): running on the CPU`,
      'WARNING',
    );
  }
  const total = run.plan.items.length;
  try {
    await runBatches<Item, Prepared>({
      items: run.plan.items,
      batchSize: p.batch_size,
      signal: ctx.signal,
      checkpoint: () => throwIfAborted(ctx.signal),
      prepare: (item, signal) => attempt(ctx, item, () => onnxInput(run, item, signal)),
      run: async (ready) => {
        const ok = ready.filter((r) => r.tensor);
        const size = card.image_size;
        const input = stackTensors(
          ok.map((r) => r.tensor as Float32Array),
          size,
        );
        const probs = ok.length ? await onnxProbabilities(lease.session, input, ok.length, size) : [];
        if (ok.length && (probs[0]?.length ?? 0) !== card.num_classes) {
          throw new Error(
            `the ONNX model has ${probs[0]?.length} outputs but the model card ${card.num_classes} classes`,
          );
        }
        const byItem = new Map(ok.map((r, j) => [r, probs[j]]));
        return ready.map((r) => byItem.get(r));
      },
      finish: async (ready, probs) => {
        for (const [j, r] of ready.entries()) await outputs.record(r, probs[j]);
        const done = outputs.done;
        ctx.progress(total ? (done / total) * 95 : 95, `${done}/${total}`);
      },
    });
  } finally {
    lease.release();
  }
}

/** An image's tensor, or a frame's tensor and its animation preview, from a worker thread. */
async function onnxInput(run: InferenceRun, item: Item, signal: AbortSignal): Promise<Prepared> {
  const { pool } = run.deps;
  if (item.frame === null) {
    const r = await pool.imageInput({ input: run.layout.abs(item.rel), size: run.card.image_size }, signal);
    return 'error' in r ? { item, error: r.error } : { item, tensor: r.tensor };
  }
  const r = await pool.frameInput(frameJob(run, item, null, true), signal);
  return { item, tensor: r.tensor as Float32Array, preview: r.preview ? Buffer.from(r.preview) : null };
}

// ——— PyTorch: frames rendered to PNG files first, then one runner for everything ———

async function torchPipeline(run: InferenceRun): Promise<void> {
  const { ctx, plan, outputs } = run;
  // Frames become PNG files the runner reads like images; one runner for everything, so
  // the model loads once.
  // A folder of the task's own: two tasks writing to one save_path must not share frames,
  // and a run again after a crash clears what the interrupted one left.
  const scratch = path.join(run.layout.out, `.frames-${ctx.task.task_id}`);
  await fs.rm(scratch, { recursive: true, force: true });
  await fs.mkdir(scratch);
  try {
    const renderShare = plan.frames ? 40 : 0;
    const prepared = await renderFrames(run, scratch, renderShare);
    const files = prepared.filter((r) => r.file).map((r) => r.file as string);
    const results = await torchClassify(run, files, (pct, msg) =>
      ctx.progress(renderShare + (pct / 100) * (95 - renderShare), msg),
    );
    const byFile = new Map(files.map((f, j) => [f, results[j]]));
    for (const r of prepared) {
      throwIfAborted(ctx.signal);
      const got = r.file ? byFile.get(r.file) : undefined;
      await outputs.record(got?.error ? { ...r, error: got.error } : r, got?.probs);
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true }).catch((err: unknown) => {
      ctx.log(`The scratch frames could not be removed (${errorLine(err)})`, 'WARNING');
    });
  }
}

/** Every item as a file for the runner: an image as it is, a frame rendered into `scratch`. */
async function renderFrames(run: InferenceRun, scratch: string, renderShare: number): Promise<Prepared[]> {
  const { ctx, plan } = run;
  const { pool } = run.deps;
  const { items } = plan;
  const prepared: Prepared[] = [];
  for (let i = 0; i < items.length; i += 2 * pool.size) {
    throwIfAborted(ctx.signal);
    const batch = items.slice(i, i + 2 * pool.size);
    // Every frame of the batch settles before going on: on a cancel none is still
    // being written when the scratch folder is removed.
    const settled = await Promise.allSettled(
      batch.map((item, j): Promise<Prepared> =>
        item.frame === null
          ? Promise.resolve({ item, file: run.layout.abs(item.rel) })
          : attempt(ctx, item, async () => {
              // Named by the item's place in the whole list: unique across recordings.
              const file = path.join(scratch, `${i + j}.png`);
              await pool.frameInput(frameJob(run, item, file, false), ctx.signal);
              return { item, file };
            }),
      ),
    );
    for (const r of settled) {
      if (r.status === 'rejected') throw r.reason;
      prepared.push(r.value);
    }
    if (plan.frames)
      ctx.progress(
        (prepared.length / items.length) * renderShare,
        `rendered ${prepared.length}/${items.length}`,
      );
  }
  return prepared;
}

/** One runner call for every file (PyTorch engine); unreadable ones come back with their error. */
async function torchClassify(
  { deps, ctx, p }: InferenceRun,
  files: string[],
  progress: (percent: number, message?: string) => void,
): Promise<{ probs?: number[]; error?: string }[]> {
  if (!files.length) return [];
  const r = (await runTorchForTask({
    torch: deps.torch,
    command: 'infer',
    ctx,
    progress,
    request: {
      cfg_path: ctx.paths.resolve(p.cfg_path, 'cfg_path'),
      weight_path: ctx.paths.resolve(p.model_path, 'weight_path'),
      files,
      batch_size: p.batch_size,
    },
  })) as { predictions: { file: string; probs?: number[]; error?: string }[] };
  const byFile = new Map(r.predictions.map((x) => [x.file, x]));
  return files.map((f) => byFile.get(f) ?? { error: 'no prediction returned' });
}
