/**
 * `inference`: POST /api/v2/inference/start (SPEC §2.3) on an image, a raw IQ recording or a
 * folder of them, on ONNX Runtime in process or PyTorch through the runner. A recording is cut
 * into slices rendered exactly as the spectrogram task renders them and classified frame by
 * frame. Writes an annotated copy per image, an annotated animation per recording,
 * predictions.json and predictions.csv.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { badPath, invalidField } from '../domain/errors.js';
import {
  ANIMATION_BOX,
  ANIMATION_FRAME_MS,
  ANIMATION_MAX_FRAMES,
  annotated,
  annotateImage,
  writeAnimation,
} from '../engines/annotate.js';
import { chooseEngine, topK } from '../engines/choose.js';
import { readModelCard } from '../engines/model-card.js';
import { onnxCardMismatch, onnxProbabilities, type OnnxSessionCache } from '../engines/onnx/engine.js';
import { iqSampleCount, isRecording, type IqDtype } from '../signal/iq.js';
import type { RenderMode } from '../signal/slice-image.js';
import type { FrameResult } from '../workers/slice-worker.js';
import {
  describeSlicing,
  resolveSlicing,
  type SlicingKey,
  samplesPerSlice,
  sliceGrid,
  sliceStart,
  SLICING_REQUEST_FIELDS,
} from '../signal/slicing.js';
import type { WorkerPool } from '../workers/pool.js';
import { existingPath, isImageFile, isInside, outputFolder, withName } from '../util/files.js';
import { throwIfAborted, type JobDefinition, defineJob, type RunContext } from './job.js';
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

/** Every regular file under `root` (or `root` itself), relative paths, sorted. */
async function sourceFiles(root: string): Promise<string[]> {
  const st = await fs.stat(root);
  if (!st.isDirectory()) return [''];
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? path.join(rel, e.name) : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

interface Prediction {
  file: string;
  frame: number | null;
  class: string;
  confidence: number;
  top5: { class: string; confidence: number }[];
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One thing to classify: an image, or one frame (slice) of a recording. */
interface Item {
  /** Path relative to the source folder; '' when the source is this one file. */
  rel: string;
  /** 1-based frame number within a recording; null for an image. */
  frame: number | null;
  /** The recording's last frame: its animation can be written. */
  last: boolean;
}

/** An item ready for an engine: its tensor (ONNX) or a file to read (PyTorch), or why it is not. */
interface Prepared {
  item: Item;
  tensor?: Float32Array;
  file?: string;
  preview?: Buffer | null;
  error?: string;
}

interface Failure {
  file: string;
  frame?: number;
  error: string;
}

const ANNOTATED_FORMATS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tiff', '.tif']);

/** "3 image(s)", "12 frame(s) of 4 recording(s)", or both joined by "and". */
function amount(images: number, frames: number, recordings: number): string {
  const parts: string[] = [];
  if (images > 0 || recordings === 0) parts.push(`${images} image(s)`);
  if (recordings > 0) parts.push(`${frames} frame(s) of ${recordings} recording(s)`);
  return parts.join(' and ');
}

function gpuIndex(device: string): number | null {
  const m = /^cuda:(\d+)$/.exec(device);
  return m ? Number(m[1]) : null;
}

function message(err: unknown): string {
  return (err as Error).message.split('\n')[0] ?? String(err);
}

export function inferenceJob(
  torch: TorchSettings,
  sessions: OnnxSessionCache,
  pool: WorkerPool,
): JobDefinition {
  return defineJob<typeof InferenceBody, InferenceParams>({
    kind: 'inference',
    resourceClass: 'inference',
    body: InferenceBody,

    async validate(body: InferenceBody, { paths }) {
      const card = await readModelCard(paths.resolve(body.cfg_path, 'cfg_path'), 'cfg_path', body.cfg_path);
      const chosen = await chooseEngine(paths, body.weight_path, body.engine);
      if (chosen.engine === 'onnx') {
        // The model is loaded now (and stays cached for the run): it must fit its card.
        const lease = await sessions
          .acquire(paths.resolve(chosen.model, 'weight_path'))
          .catch((err: Error) => {
            throw invalidField(
              'weight_path',
              `'${chosen.model}' is not a loadable ONNX model (${message(err)})`,
            );
          });
        const mismatch = onnxCardMismatch(lease.session, card);
        lease.release();
        if (mismatch)
          throw invalidField('weight_path', `${mismatch} ('${chosen.model}' vs '${body.cfg_path}')`);
      }
      const slicing = resolveSlicing(body, card.signal);
      const sl = slicing.values;
      const perSlice = samplesPerSlice(sl);
      const { path: source, stat: st } = await existingPath(paths, body.source_path, 'source_path');
      if (st.isFile()) {
        if (isRecording(path.basename(source))) {
          let samples: number;
          try {
            samples = await iqSampleCount(source, sl.dtype);
          } catch (err) {
            throw invalidField('source_path', message(err).replace(source, `'${body.source_path}'`));
          }
          if (samples < perSlice) {
            throw invalidField(
              'source_path',
              `'${body.source_path}' holds ${samples} samples, less than one slice of ${perSlice} (sample_rate × duration_time)`,
            );
          }
        } else if (!isImageFile(path.basename(source))) {
          throw invalidField(
            'source_path',
            `'${body.source_path}' is neither an image (.jpg .jpeg .png .gif .bmp .tiff .webp) nor a raw IQ recording (.iq .dat)`,
          );
        }
      }
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
      const params: InferenceParams = {
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
      return {
        params: { ...params, num_classes: card.num_classes },
        input_path: paths.display(source),
        output_path: paths.display(out),
        notes: [
          ...(chosen.note ? [chosen.note] : []),
          ...(slicing.differences.length > 0 && (st.isDirectory() || isRecording(path.basename(source)))
            ? [
                `Recordings are sliced with ${slicing.differences.join(', ')}: not as the model card's signal section says, so their frames may not look like the training images`,
              ]
            : []),
        ],
      };
    },

    async run(p, ctx) {
      const card = await readModelCard(ctx.paths.resolve(p.cfg_path, 'cfg_path'), 'cfg_path', p.cfg_path);
      const source = ctx.paths.resolve(p.source_path, 'source_path');
      const out = ctx.paths.resolve(p.output_path, 'save_path');
      await fs.mkdir(out, { recursive: true });
      const all = await sourceFiles(source);
      const isDir = all.length !== 1 || all[0] !== '';
      const abs = (rel: string) => (rel === '' ? source : path.join(source, rel));
      const shown = (rel: string) => (rel === '' ? path.basename(source) : rel);
      const target = (rel: string) => path.join(out, isDir ? rel : path.basename(source));
      // Every file written goes through the sandbox: a symbolic link inside save_path (a folder
      // or a file of a previous run) must not lead the outputs out of it (out of the data root,
      // or back onto the source images).
      const safe = (file: string) => ctx.paths.within(out, file, 'save_path');
      const failed: Failure[] = [];
      const items: Item[] = [];
      let recordings = 0;
      for (const rel of all) {
        const name = path.basename(abs(rel));
        if (isImageFile(name)) {
          items.push({ rel, frame: null, last: true });
        } else if (isRecording(name)) {
          let samples: number;
          try {
            samples = await iqSampleCount(abs(rel), p.dtype);
          } catch (err) {
            failed.push({ file: shown(rel), error: message(err).replace(abs(rel), 'the file') });
            continue;
          }
          // Tasks accepted before ratio existed cut consecutive slices (ratio 0).
          const { count, tail } = sliceGrid(samples, p.samples_per_slice, p.ratio ?? 0);
          if (count === 0) {
            failed.push({
              file: shown(rel),
              error: `${samples} samples: less than one slice of ${p.samples_per_slice}`,
            });
            continue;
          }
          if (tail > 0)
            ctx.log(`${shown(rel)}: the last ${tail} samples do not fill a slice and are not classified`);
          for (let f = 1; f <= count; f++) items.push({ rel, frame: f, last: f === count });
          recordings++;
        } else {
          failed.push({ file: shown(rel), error: 'neither an image nor a raw IQ recording (.iq .dat)' });
        }
      }
      const frames = items.filter((i) => i.frame !== null).length;
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
          (isDir && failed.length ? `; ${failed.length} other file(s) skipped` : ''),
      );

      const predictions: Prediction[] = [];
      const counts: Record<string, number> = {};
      const animations: string[] = [];
      let animation: Buffer[] = [];
      let done = 0;
      const progress = () =>
        ctx.progress(items.length ? (done / items.length) * 95 : 95, `${done}/${items.length}`);

      /** Records one item's outcome: prediction, annotated copy or animation frame. */
      const finish = async (r: Prepared, probs: ArrayLike<number> | undefined): Promise<void> => {
        const { item } = r;
        done++;
        if (!probs) {
          failed.push({
            file: shown(item.rel),
            ...(item.frame !== null ? { frame: item.frame } : {}),
            error: r.error ?? 'could not be read',
          });
        } else {
          const top5 = topK(probs, card.labels, 5);
          const best = top5[0] as { class: string; confidence: number };
          predictions.push({ file: shown(item.rel), frame: item.frame, ...best, top5 });
          counts[best.class] = (counts[best.class] ?? 0) + 1;
          if (p.annotate) await annotate(r, best);
        }
        if (item.frame !== null && item.last) await flushAnimation(item.rel);
      };

      /** The annotated copy of an image, or the annotated frame of a recording's animation. */
      const annotate = async (r: Prepared, best: { class: string; confidence: number }): Promise<void> => {
        const { item } = r;
        try {
          if (item.frame === null) {
            const t = target(item.rel);
            const ext = path.extname(t).toLowerCase();
            const file = safe(ANNOTATED_FORMATS.has(ext) ? t : `${t}.png`);
            await fs.mkdir(path.dirname(file), { recursive: true });
            await annotateImage(abs(item.rel), file, best.class, best.confidence);
            return;
          }
          const preview = r.preview ?? (await framePreview(r));
          if (!preview) return;
          const a = await annotated(preview, `${best.class} #${item.frame}`, best.confidence);
          animation.push(await a.png({ compressionLevel: 2 }).toBuffer());
        } catch (err) {
          ctx.log(
            `${shown(item.rel)}${item.frame !== null ? ` frame ${item.frame}` : ''}: classified, but the annotated output could not be written (${message(err)})`,
            'WARNING',
          );
        }
      };

      const framePreview = async (r: Prepared): Promise<Buffer | null> =>
        r.file && p.annotate && (r.item.frame ?? 0) <= ANIMATION_MAX_FRAMES
          ? sharp(r.file)
              .resize({ ...ANIMATION_BOX, fit: 'inside', withoutEnlargement: true })
              .png()
              .toBuffer()
          : null;

      const flushAnimation = async (rel: string): Promise<void> => {
        const frames = animation;
        animation = [];
        if (!frames.length) return;
        try {
          const file = safe(`${target(rel)}.${p.animation_format}`);
          await fs.mkdir(path.dirname(file), { recursive: true });
          await writeAnimation(frames, file, p.animation_format, ANIMATION_FRAME_MS);
          animations.push(path.relative(out, file));
        } catch (err) {
          ctx.log(`${shown(rel)}: the annotated animation could not be written (${message(err)})`, 'WARNING');
        }
      };

      const frameJob = (item: Item, pngPath: string | null, preview: boolean) => ({
        source: {
          file: abs(item.rel),
          dtype: p.dtype,
          firstSample: sliceStart((item.frame as number) - 1, p.samples_per_slice, p.ratio ?? 0),
          samples: p.samples_per_slice,
        },
        stftPoint: p.stft_point,
        width: p.width,
        height: p.height,
        colormap: 'jet' as const,
        render: p.render ?? 'power', // tasks accepted before render existed: today's rendering
        inputSize: card.image_size,
        pngPath,
        preview:
          preview && (item.frame as number) <= ANIMATION_MAX_FRAMES ? ANIMATION_BOX : { width: 0, height: 0 },
      });

      /** Runs `make`, turning a failure into the item's error unless the task was cancelled. */
      const attempt = async (item: Item, make: () => Promise<Prepared>): Promise<Prepared> => {
        try {
          return await make();
        } catch (err) {
          throwIfAborted(ctx.signal);
          return { item, error: message(err) };
        }
      };

      const t0 = performance.now();
      if (p.engine === 'onnx') {
        const lease = await sessions.acquire(
          ctx.paths.resolve(p.model_path, 'weight_path'),
          gpuIndex(ctx.device),
        );
        if (lease.fallback !== undefined) {
          ctx.log(
            `Placed on ${ctx.device}, but ONNX Runtime cannot use the GPU here (${lease.fallback || 'no CUDA execution provider in this build'}): running on the CPU`,
            'WARNING',
          );
        }
        const size = card.image_size;
        const per = 3 * size * size;
        // Stopped with the task, or when the run fails: a batch being prepared is then wasted work.
        const stopPrefetch = new AbortController();
        const signal = AbortSignal.any([ctx.signal, stopPrefetch.signal]);
        const prepare = (item: Item) =>
          attempt(item, async () => {
            if (item.frame === null) {
              const r = await pool.imageInput({ input: abs(item.rel), size }, signal);
              return 'error' in r ? { item, error: r.error } : { item, tensor: r.tensor };
            }
            const r: FrameResult = await pool.frameInput(frameJob(item, null, true), signal);
            return {
              item,
              tensor: r.tensor as Float32Array,
              preview: r.preview ? Buffer.from(r.preview) : null,
            };
          });
        const chunks: Item[][] = [];
        for (let i = 0; i < items.length; i += p.batch_size) chunks.push(items.slice(i, i + p.batch_size));
        const prepareChunk = (c: number) => {
          const ready = Promise.all((chunks[c] as Item[]).map(prepare));
          ready.catch(() => undefined); // awaited below; cancelled with the task otherwise
          return ready;
        };
        let next = chunks.length ? prepareChunk(0) : null;
        let finishing: Promise<void> = Promise.resolve();
        try {
          for (let c = 0; c < chunks.length; c++) {
            const ready = await (next as Promise<Prepared[]>);
            throwIfAborted(ctx.signal);
            // The workers decode and render the next batch while ONNX Runtime runs this one.
            next = c + 1 < chunks.length ? prepareChunk(c + 1) : null;
            const ok = ready.filter((r) => r.tensor);
            const input = new Float32Array(ok.length * per);
            ok.forEach((r, j) => input.set(r.tensor as Float32Array, j * per));
            const probs = ok.length ? await onnxProbabilities(lease.session, input, ok.length, size) : [];
            if (ok.length && (probs[0]?.length ?? 0) !== card.num_classes) {
              throw new Error(
                `the ONNX model has ${probs[0]?.length} outputs but the model card ${card.num_classes} classes`,
              );
            }
            const byItem = new Map(ok.map((r, j) => [r, probs[j]]));
            // Outputs of this batch are written while the next one runs; batches stay in order.
            await finishing;
            finishing = (async () => {
              for (const r of ready) await finish(r, byItem.get(r));
              progress();
            })();
            finishing.catch(() => undefined); // awaited with the next batch or below
          }
          await finishing;
        } finally {
          // On a failure mid-run, the next batch may still be rendering and the last one's
          // outputs still being written: let them settle before the task ends.
          stopPrefetch.abort();
          await Promise.allSettled([next, finishing]);
          lease.release();
        }
      } else if (items.length) {
        // Frames become PNG files the runner reads like images; one runner for everything, so
        // the model loads once.
        // A folder of the task's own: two tasks writing to one save_path must not share frames,
        // and a run again after a crash clears what the interrupted one left.
        const scratch = path.join(out, `.frames-${ctx.task.task_id}`);
        await fs.rm(scratch, { recursive: true, force: true });
        await fs.mkdir(scratch);
        try {
          const prepared: Prepared[] = [];
          const renderShare = frames ? 40 : 0;
          for (let i = 0; i < items.length; i += 2 * pool.size) {
            throwIfAborted(ctx.signal);
            const batch = items.slice(i, i + 2 * pool.size);
            // Every frame of the batch settles before going on: on a cancel none is still
            // being written when the scratch folder is removed.
            const settled = await Promise.allSettled(
              batch.map((item, j): Promise<Prepared> =>
                item.frame === null
                  ? Promise.resolve({ item, file: abs(item.rel) })
                  : attempt(item, async () => {
                      // Named by the item's place in the whole list: unique across recordings.
                      const file = path.join(scratch, `${i + j}.png`);
                      await pool.frameInput(frameJob(item, file, false), ctx.signal);
                      return { item, file };
                    }),
              ),
            );
            for (const r of settled) {
              if (r.status === 'rejected') throw r.reason;
              prepared.push(r.value);
            }
            if (frames)
              ctx.progress(
                (prepared.length / items.length) * renderShare,
                `rendered ${prepared.length}/${items.length}`,
              );
          }
          const files = prepared.filter((r) => r.file).map((r) => r.file as string);
          const results = await torchClassify(torch, ctx, p, files, (pct, msg) =>
            ctx.progress(renderShare + (pct / 100) * (95 - renderShare), msg),
          );
          const byFile = new Map(files.map((f, j) => [f, results[j]]));
          for (const r of prepared) {
            throwIfAborted(ctx.signal);
            const got = r.file ? byFile.get(r.file) : undefined;
            await finish(got?.error ? { ...r, error: got.error } : r, got?.probs);
          }
        } finally {
          await fs.rm(scratch, { recursive: true, force: true }).catch((err: unknown) => {
            ctx.log(`The scratch frames could not be removed (${message(err)})`, 'WARNING');
          });
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      for (const f of failed)
        ctx.log(`${f.file}${f.frame ? ` frame ${f.frame}` : ''}: ${f.error}`, 'WARNING');
      await fs.writeFile(safe(path.join(out, 'predictions.json')), JSON.stringify(predictions, null, 2));
      const csv = ['file,frame,class,confidence,top5'];
      for (const pr of predictions) {
        csv.push(
          [
            csvCell(pr.file),
            pr.frame ?? '',
            csvCell(pr.class),
            pr.confidence.toFixed(6),
            csvCell(pr.top5.map((t) => `${t.class}:${t.confidence.toFixed(4)}`).join(' ')),
          ].join(','),
        );
      }
      await fs.writeFile(safe(path.join(out, 'predictions.csv')), `${csv.join('\n')}\n`);
      const images = predictions.filter((x) => x.frame === null).length;
      const classifiedFrames = predictions.length - images;
      return {
        message:
          `classified ${amount(images, classifiedFrames, recordings)}` +
          (failed.length ? `, ${failed.length} not classified` : ''),
        result: {
          engine: p.engine,
          model: card.model,
          counts,
          files: all.length,
          images,
          recordings,
          frames: classifiedFrames,
          animations,
          failed,
          images_per_second: seconds > 0 ? predictions.length / seconds : null,
          seconds,
          output_path: ctx.paths.display(out),
          predictions_json: 'predictions.json',
          predictions_csv: 'predictions.csv',
        },
      };
    },
  });
}

/** One runner call for every file (PyTorch engine); unreadable ones come back with their error. */
async function torchClassify(
  torch: TorchSettings,
  ctx: RunContext,
  p: InferenceParams,
  files: string[],
  progress: (percent: number, message?: string) => void,
): Promise<{ probs?: number[]; error?: string }[]> {
  if (!files.length) return [];
  const r = (await runTorchForTask({
    torch,
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
