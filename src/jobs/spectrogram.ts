import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { badPath } from '../domain/errors.js';
import {
  ANIMATION_FRAME_MS,
  ANIMATION_MAX_FRAMES,
  animationFrame,
  writeAnimation,
} from '../engines/annotate.js';
import { iqSampleCount, isRecording, type IqDtype } from '../signal/iq.js';
import { SIGNAL_FILE, writeSignalFile, type SignalParams } from '../signal/params.js';
import type { RenderMode } from '../signal/slice-image.js';
import { samplesPerSlice, SLICING_FIELDS, sliceGrid, sliceRegion } from '../signal/slicing.js';
import type { WorkerPool } from '../workers/pool.js';
import { InOrderTasks } from '../workers/in-order.js';
import type { SliceJob, SliceResult } from '../workers/slice-worker.js';
import { inputAndOutput, isInside } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';
import {
  defineJob,
  throwIfAborted,
  type JobDefinition,
  type JobOutcome,
  type PreparedTask,
  type RunContext,
} from './job.js';

export const SpectrogramBody = Type.Object({
  input_path: Type.String({
    minLength: 1,
    description: 'A .iq/.dat recording, or a root of class folders of them',
  }),
  output_path: Type.String({ minLength: 1, description: 'Receives the images, mirroring the input layout' }),
  ...SLICING_FIELDS,
  format: Type.Union([Type.Literal('png'), Type.Literal('jpg'), Type.Literal('webp')], { default: 'png' }),
  colormap: Type.Literal('jet', { default: 'jet' }),
  save_matrix: Type.Boolean({ default: false, description: 'Also write each slice’s dB matrix as .npy' }),
  animation: Type.Boolean({
    default: false,
    description: 'Also write the frames of each recording as one animated image, <pack>.<animation_format>',
  }),
  animation_format: Type.Union([Type.Literal('webp'), Type.Literal('gif')], { default: 'webp' }),
});
type Body = Static<typeof SpectrogramBody>;

interface Params extends Omit<Body, 'colormap'> {
  colormap: 'jet';
  samples_per_slice: number;
}

/** Recordings as paths relative to `root`: files directly in it and in its class folders. */
async function recordingsUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile() && isRecording(e.name)) out.push(e.name);
    if (e.isDirectory()) {
      for (const f of await fs.readdir(path.join(root, e.name), { withFileTypes: true })) {
        if (f.isFile() && isRecording(f.name)) out.push(path.join(e.name, f.name));
      }
    }
  }
  return out.sort();
}

/** `<pack> (<i>).<ext>`, i from 1, beside the recording's mirrored folder. */
export function sliceFileName(recording: string, index: number, ext: string): string {
  const pack = path.basename(recording, path.extname(recording));
  return `${pack} (${index + 1}).${ext}`;
}

export function spectrogramJob(pool: WorkerPool): JobDefinition {
  return defineJob<typeof SpectrogramBody, Params>({
    kind: 'spectrogram',
    resourceClass: 'preprocessing',
    route: 'spectrogram',
    body: SpectrogramBody,
    validate: (body, { paths }) => validateSpectrogram(body, paths),
    run: (p, ctx) => runSpectrogram(pool, p, ctx),
  });
}

async function validateSpectrogram(body: Body, paths: PathSandbox): Promise<PreparedTask<Params>> {
  const { input, output, stat: st } = await inputAndOutput(paths, body);
  const perSlice = samplesPerSlice(body);
  const files = st.isFile() ? [recordingFile(body, input)] : await recordingsIn(body, input, output);
  const root = st.isFile() ? path.dirname(input) : input;
  for (const f of files) {
    try {
      await iqSampleCount(path.join(root, f), body.dtype as IqDtype);
    } catch (err) {
      throw badPath(`input_path: ${(err as Error).message.replace(root + path.sep, '')}`, {
        field: 'input_path',
      });
    }
  }
  // Only this kind's own fields (the body also carries task_id, priority and the like).
  const params: Params = {
    input_path: body.input_path,
    output_path: body.output_path,
    sample_rate: body.sample_rate,
    stft_point: body.stft_point,
    duration_time: body.duration_time,
    ratio: body.ratio,
    render: body.render,
    dtype: body.dtype,
    format: body.format,
    width: body.width,
    height: body.height,
    colormap: 'jet',
    save_matrix: body.save_matrix,
    animation: body.animation,
    animation_format: body.animation_format,
    samples_per_slice: perSlice,
  };
  return { params, input_path: paths.display(input), output_path: paths.display(output), notes: [] };
}

/** input_path as one recording: its name, or why it is not one. */
function recordingFile(body: Body, input: string): string {
  if (!isRecording(input)) {
    throw badPath(`input_path: '${body.input_path}' is not a .iq or .dat recording`, {
      field: 'input_path',
    });
  }
  return path.basename(input);
}

/** input_path as a folder: its recordings, or why there are none to convert. */
async function recordingsIn(body: Body, input: string, output: string): Promise<string[]> {
  if (isInside(output, input))
    throw badPath('output_path: must not be inside input_path', { field: 'output_path' });
  const files = await recordingsUnder(input);
  if (files.length === 0) {
    throw badPath(`input_path: no .iq or .dat recordings in '${body.input_path}' or its class folders`, {
      field: 'input_path',
    });
  }
  return files;
}

/** What one run works with, resolved once. */
interface SliceRun {
  p: Params;
  ctx: RunContext;
  pool: WorkerPool;
  /** Slice step exponent and rendering, with the defaults of tasks from before they existed. */
  ratio: number;
  render: RenderMode;
  /** The folder the recordings' relative paths start from, and the output folder. */
  root: string;
  output: string;
  /** The slices handed to the workers and not yet taken back. */
  slices: InOrderTasks<SliceResult>;
}

/** Counts for the task's stats, added up as the slices come back. */
interface Tally {
  done: number;
  truncated: number;
  stftMs: number;
  renderMs: number;
  animations: number;
}

async function runSpectrogram(pool: WorkerPool, p: Params, ctx: RunContext): Promise<JobOutcome> {
  // Tasks accepted before ratio and render existed were asked for consecutive slices,
  // power-averaged: they keep that if they run again after an upgrade.
  const ratio = p.ratio ?? 0;
  const render = p.render ?? 'power';
  const input = ctx.paths.resolve(p.input_path, 'input_path');
  const output = ctx.paths.resolve(p.output_path, 'output_path');
  const st = await fs.stat(input);
  const root = st.isFile() ? path.dirname(input) : input;
  const files = st.isFile() ? [path.basename(input)] : await recordingsUnder(input);
  const sizes = await Promise.all(files.map((f) => iqSampleCount(path.join(root, f), p.dtype)));
  const total = sizes.reduce((a, n) => a + sliceGrid(n, p.samples_per_slice, ratio).count, 0);
  ctx.log(
    `Converting ${files.length} recording(s) into ${total} slice(s) of ${p.samples_per_slice} samples ` +
      `(${p.duration_time} s at ${p.sample_rate} S/s, one every ${p.duration_time * 2 ** -ratio} s: ratio ${ratio}), ` +
      `${p.stft_point}-point STFT, ${p.width}x${p.height} ${p.format} (${render} rendering)` +
      ` on ${pool.size} worker thread(s)`,
  );
  const started = performance.now();
  const tally: Tally = { done: 0, truncated: 0, stftMs: 0, renderMs: 0, animations: 0 };
  const slices = new InOrderTasks<SliceResult>(pool.size, (r) => {
    tally.done++;
    tally.stftMs += r.stftMs;
    tally.renderMs += r.renderMs;
    ctx.progress(total > 0 ? (tally.done / total) * 100 : 100, `slice ${tally.done}/${total}`);
  });
  const run: SliceRun = { p, ctx, pool, ratio, render, root, output, slices };
  try {
    for (const rel of files) await convertRecording(run, rel, tally);
    await slices.drain();
  } finally {
    // On failure or cancel, let the slices already handed to workers finish or fail first.
    await slices.settle();
  }
  // How these images were made, beside them: split and augment carry it along, training
  // copies it into the model card, and raw-IQ inference slices the same way from the card.
  await writeSignalFile(
    ctx.paths.within(output, path.join(output, SIGNAL_FILE), 'output_path'),
    signalParams(run),
  );
  return outcome(p, files.length, tally, (performance.now() - started) / 1000);
}

/** Hands every slice of one recording to the workers; with `animation`, then writes its animation. */
async function convertRecording(run: SliceRun, rel: string, tally: Tally): Promise<void> {
  const { p, ctx, output } = run;
  const outDir = ctx.paths.within(output, path.join(output, path.dirname(rel)), 'output_path');
  await fs.mkdir(outDir, { recursive: true });
  const file = path.join(run.root, rel);
  const samples = await iqSampleCount(file, p.dtype);
  const { count, tail, uncovered } = sliceGrid(samples, p.samples_per_slice, run.ratio);
  tally.truncated += uncovered;
  if (tail > 0) {
    ctx.log(
      count === 0
        ? `${rel}: its ${samples} samples do not fill a slice of ${p.samples_per_slice}: no image`
        : `${rel}: the last ${tail} samples do not fill a slice and are dropped`,
      'WARNING',
    );
  }
  if (uncovered > tail)
    ctx.log(`${rel}: ratio ${run.ratio} skips ${uncovered - tail} samples between slices`);
  const images: string[] = [];
  for (let index = 0; index < count; index++) {
    throwIfAborted(ctx.signal);
    const imagePath = ctx.paths.within(
      output,
      path.join(outDir, sliceFileName(rel, index, p.format)),
      'output_path',
    );
    images.push(imagePath);
    // The worker reads its slice itself, straight into the STFT's memory: the main
    // thread holds no samples, whatever the recording's size.
    const job: SliceJob = {
      source: sliceRegion(file, p.dtype, index, p.samples_per_slice, run.ratio),
      stftPoint: p.stft_point,
      width: p.width,
      height: p.height,
      format: p.format,
      colormap: p.colormap,
      render: run.render,
      imagePath,
      npyPath: p.save_matrix ? path.join(outDir, sliceFileName(rel, index, 'npy')) : null,
    };
    await run.slices.add(run.pool.renderSlice(job, ctx.signal));
  }
  if (p.animation && images.length > 0) {
    await run.slices.drain(); // this recording's frames are all on disk
    await animate(run, rel, outDir, images);
    tally.animations++;
  }
}

/** The recording's images (the first ANIMATION_MAX_FRAMES) as one animated image beside them. */
async function animate(run: SliceRun, rel: string, outDir: string, images: string[]): Promise<void> {
  const frames = images.slice(0, ANIMATION_MAX_FRAMES);
  if (images.length > frames.length) {
    run.ctx.log(
      `${rel}: the animation keeps the first ${frames.length} of ${images.length} frames`,
      'WARNING',
    );
  }
  // Frames scaled to one common size first: an animation's frames must match.
  const scaled = await Promise.all(frames.map((f) => animationFrame(f)));
  const pack = path.basename(rel, path.extname(rel));
  const out = path.join(outDir, `${pack}.${run.p.animation_format}`);
  await writeAnimation(scaled, out, run.p.animation_format, ANIMATION_FRAME_MS);
}

/** signal.json: how this run cut and drew its images. */
function signalParams({ p, ratio, render }: SliceRun): SignalParams {
  return {
    sample_rate: p.sample_rate,
    stft_point: p.stft_point,
    duration_time: p.duration_time,
    ratio,
    noverlap: p.stft_point / 2,
    dtype: p.dtype,
    width: p.width,
    height: p.height,
    colormap: p.colormap,
    render,
    format: p.format,
    source: p.input_path,
  };
}

function outcome(p: Params, files: number, t: Tally, seconds: number): JobOutcome {
  const { done } = t;
  const stats = {
    files,
    slices: done,
    images: done,
    matrices: p.save_matrix ? done : 0,
    animations: t.animations,
    truncated_samples: t.truncated,
    seconds,
    seconds_per_slice: done > 0 ? seconds / done : null,
    stft_ms_per_slice: done > 0 ? t.stftMs / done : null,
    render_ms_per_slice: done > 0 ? t.renderMs / done : null,
  };
  return { message: `${done} spectrogram image(s) from ${files} recording(s)`, stats };
}
