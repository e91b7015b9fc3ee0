/**
 * `inference`: POST /api/v2/inference/start (SPEC §2.3) for images — one image or a folder of
 * them — on ONNX Runtime in process or PyTorch through the runner. Writes an annotated copy per
 * image, predictions.json and predictions.csv. Raw IQ sources are not handled yet (refused at
 * submission with a 422 saying so).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { badPath, invalidField } from '../domain/errors.js';
import { annotateImage } from '../engines/annotate.js';
import { readModelCard, type ModelCard } from '../engines/model-card.js';
import { onnxProbabilities, type OnnxSessionCache } from '../engines/onnx/engine.js';
import { imageTensorInto } from '../engines/preprocess/image.js';
import { existingPath, isImageFile, isInside, outputFolder, statOrNull } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';
import { throwIfAborted, type JobDefinition, type RunContext } from './job.js';
import { runTorchForTask } from './torch-run.js';

const IQ_EXTENSIONS = new Set(['.iq', '.dat']);

export const InferenceBody = Type.Object({
  cfg_path: Type.String({ minLength: 1, description: 'Model card (config.yaml) written by training' }),
  weight_path: Type.String({ minLength: 1, description: '.pth (PyTorch) or .onnx weights' }),
  source_path: Type.String({ minLength: 1, description: 'An image or a folder of images' }),
  save_path: Type.String({ minLength: 1, default: 'results', description: 'Output folder (created)' }),
  engine: Type.Unsafe<'auto' | 'onnx' | 'torch'>({
    type: 'string',
    enum: ['auto', 'onnx', 'torch'],
    default: 'auto',
    description: 'auto: ONNX Runtime when an .onnx is given or sits beside the .pth',
  }),
  batch_size: Type.Integer({ minimum: 1, maximum: 256, default: 8 }),
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
}

/** Which engine runs and on which file, by SPEC §2.3's rule for `auto`. */
async function chooseEngine(
  paths: PathSandbox,
  weightPath: string,
  engine: 'auto' | 'onnx' | 'torch',
): Promise<{ engine: 'onnx' | 'torch'; model: string; note?: string }> {
  const { path: file } = await existingPath(paths, weightPath, 'weight_path', 'file');
  const ext = path.extname(file).toLowerCase();
  if (ext === '.onnx') {
    if (engine === 'torch')
      throw invalidField('engine', "'torch' needs PyTorch weights (.pth), not an .onnx file");
    return { engine: 'onnx', model: weightPath };
  }
  if (ext !== '.pth' && ext !== '.pt')
    throw invalidField('weight_path', `'${weightPath}' is neither .pth/.pt nor .onnx`);
  if (engine === 'torch') return { engine: 'torch', model: weightPath };
  // An .onnx beside the .pth: same stem, or best_model.onnx from the same training run.
  const stem = weightPath.slice(0, weightPath.length - ext.length);
  for (const candidate of [`${stem}.onnx`, path.join(path.dirname(weightPath), 'best_model.onnx')]) {
    const c = paths.resolve(candidate, 'weight_path');
    if ((await statOrNull(c))?.isFile()) {
      return {
        engine: 'onnx',
        model: candidate,
        note: `Using ${candidate} (beside the .pth) on ONNX Runtime`,
      };
    }
  }
  if (engine === 'onnx') {
    throw invalidField('engine', `'onnx' was asked for but no .onnx file sits beside '${weightPath}'`);
  }
  return { engine: 'torch', model: weightPath };
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

function topK(
  probs: ArrayLike<number>,
  labels: string[],
  k: number,
): { class: string; confidence: number }[] {
  return Array.from(probs, (p, i) => ({ class: labels[i] as string, confidence: p }))
    .sort((a, b) => b.confidence - a.confidence)
    .slice(0, k);
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function inferenceJob(
  torch: TorchSettings,
  sessions: OnnxSessionCache,
): JobDefinition<typeof InferenceBody> {
  return {
    kind: 'inference',
    resourceClass: 'inference',
    body: InferenceBody,

    async validate(body: InferenceBody, { paths }) {
      const card = await readModelCard(paths.resolve(body.cfg_path, 'cfg_path'), 'cfg_path', body.cfg_path);
      const chosen = await chooseEngine(paths, body.weight_path, body.engine);
      const { path: source, stat: st } = await existingPath(paths, body.source_path, 'source_path');
      if (st.isFile()) {
        const ext = path.extname(source).toLowerCase();
        if (IQ_EXTENSIONS.has(ext)) {
          throw invalidField(
            'source_path',
            'raw IQ sources (.iq/.dat) are not supported by inference yet; convert them with /api/v2/preprocessing/spectrogram first',
          );
        }
        if (!isImageFile(path.basename(source))) {
          throw invalidField(
            'source_path',
            `'${body.source_path}' is not an image (.jpg .jpeg .png .gif .bmp .tiff .webp)`,
          );
        }
      }
      const out = paths.resolve(body.save_path, 'save_path');
      if (st.isFile() ? path.dirname(source) === out : isInside(out, source)) {
        throw badPath(
          'save_path: must not be the source folder or inside it (annotated copies would mix with, or overwrite, the originals)',
          { field: 'save_path' },
        );
      }
      await outputFolder(paths, body.save_path, 'save_path');
      const params: InferenceParams = {
        cfg_path: body.cfg_path,
        source_path: body.source_path,
        output_path: body.save_path,
        engine: chosen.engine,
        model_path: chosen.model,
        batch_size: body.batch_size,
      };
      return {
        params: { ...params, num_classes: card.num_classes },
        input_path: paths.display(source),
        output_path: paths.display(out),
        notes: chosen.note ? [chosen.note] : [],
      };
    },

    async run(raw, ctx) {
      const p = raw as unknown as InferenceParams;
      const card = await readModelCard(ctx.paths.resolve(p.cfg_path, 'cfg_path'), 'cfg_path', p.cfg_path);
      const source = ctx.paths.resolve(p.source_path, 'source_path');
      const out = ctx.paths.resolve(p.output_path, 'save_path');
      await fs.mkdir(out, { recursive: true });
      const all = await sourceFiles(source);
      const isDir = all.length !== 1 || all[0] !== '';
      const abs = (rel: string) => (rel === '' ? source : path.join(source, rel));
      const shown = (rel: string) => (rel === '' ? path.basename(source) : rel);
      const failed: { file: string; error: string }[] = [];
      const images: string[] = [];
      for (const rel of all) {
        const name = path.basename(abs(rel));
        if (isImageFile(name)) images.push(rel);
        else if (IQ_EXTENSIONS.has(path.extname(name).toLowerCase()))
          failed.push({ file: shown(rel), error: 'raw IQ is not supported by inference yet' });
        else failed.push({ file: shown(rel), error: 'not an image file' });
      }
      ctx.log(
        `Classifying ${images.length} image(s) with ${card.model} on ${p.engine === 'onnx' ? 'ONNX Runtime' : 'PyTorch'}${isDir && failed.length ? `; ${failed.length} other file(s) skipped` : ''}`,
      );
      const predictions: Prediction[] = [];
      const t0 = performance.now();
      const results: { probs?: ArrayLike<number>; error?: string }[] = [];
      if (p.engine === 'onnx') {
        if (ctx.device.startsWith('cuda')) {
          ctx.log(
            `Placed on ${ctx.device}, but this ONNX Runtime build has no CUDA execution provider: running on the CPU`,
            'warning',
          );
        }
        const classify = await onnxClassifier(sessions, ctx.paths.resolve(p.model_path, 'weight_path'), card);
        for (let i = 0; i < images.length; i += p.batch_size) {
          throwIfAborted(ctx.signal);
          results.push(...(await classify(images.slice(i, i + p.batch_size).map(abs))));
          ctx.progress((results.length / images.length) * 95, `${results.length}/${images.length} images`);
        }
      } else if (images.length) {
        // One runner for the whole source: the model loads once; its progress is the task's.
        results.push(...(await torchClassify(torch, ctx, p, images.map(abs))));
      }
      const seconds = (performance.now() - t0) / 1000;
      for (let j = 0; j < images.length; j++) {
        throwIfAborted(ctx.signal);
        const rel = images[j] as string;
        const r = results[j] as { probs?: ArrayLike<number>; error?: string };
        if (!r.probs) {
          failed.push({ file: shown(rel), error: r.error ?? 'could not be read' });
          continue;
        }
        const top5 = topK(r.probs, card.labels, 5);
        const best = top5[0] as { class: string; confidence: number };
        predictions.push({
          file: shown(rel),
          frame: null,
          class: best.class,
          confidence: best.confidence,
          top5,
        });
        const target = path.join(out, isDir ? rel : path.basename(source));
        await fs.mkdir(path.dirname(target), { recursive: true });
        const ext = path.extname(target).toLowerCase();
        const annotated = ['.jpg', '.jpeg', '.png', '.webp', '.tiff', '.tif'].includes(ext)
          ? target
          : `${target}.png`;
        try {
          await annotateImage(abs(rel), annotated, best.class, best.confidence);
        } catch (err) {
          ctx.log(
            `${shown(rel)}: classified, but the annotated copy could not be written (${(err as Error).message})`,
            'warning',
          );
        }
      }
      for (const f of failed) ctx.log(`${f.file}: ${f.error}`, 'warning');
      await fs.writeFile(path.join(out, 'predictions.json'), JSON.stringify(predictions, null, 2));
      const csv = ['file,frame,class,confidence,top5'];
      for (const pr of predictions) {
        csv.push(
          [
            csvCell(pr.file),
            '',
            csvCell(pr.class),
            pr.confidence.toFixed(6),
            csvCell(pr.top5.map((t) => `${t.class}:${t.confidence.toFixed(4)}`).join(' ')),
          ].join(','),
        );
      }
      await fs.writeFile(path.join(out, 'predictions.csv'), `${csv.join('\n')}\n`);
      const counts: Record<string, number> = {};
      for (const pr of predictions) counts[pr.class] = (counts[pr.class] ?? 0) + 1;
      return {
        message: `classified ${predictions.length} image(s)${failed.length ? `, ${failed.length} file(s) not classified` : ''}`,
        result: {
          engine: p.engine,
          model: card.model,
          counts,
          files: predictions.length + failed.length,
          images: predictions.length,
          frames: 0,
          failed,
          images_per_second: seconds > 0 ? predictions.length / seconds : null,
          output_path: ctx.paths.display(out),
          predictions_json: 'predictions.json',
          predictions_csv: 'predictions.csv',
        },
      };
    },
  };
}

/** ONNX Runtime over a batch of image files; unreadable ones come back with their error. */
async function onnxClassifier(sessions: OnnxSessionCache, model: string, card: ModelCard) {
  const session = await sessions.get(model);
  const size = card.image_size;
  const per = 3 * size * size;
  return async (files: string[]) => {
    const input = new Float32Array(files.length * per);
    const ok: number[] = [];
    const results: { probs?: ArrayLike<number>; error?: string }[] = files.map(() => ({}));
    for (let i = 0; i < files.length; i++) {
      try {
        await imageTensorInto(files[i] as string, size, input, ok.length * per);
        ok.push(i);
      } catch (err) {
        results[i] = { error: `unreadable image: ${(err as Error).message.split('\n')[0]}` };
      }
    }
    if (ok.length) {
      const probs = await onnxProbabilities(session, input.subarray(0, ok.length * per), ok.length, size);
      if ((probs[0]?.length ?? 0) !== card.num_classes) {
        throw new Error(
          `the ONNX model has ${probs[0]?.length} outputs but the model card ${card.num_classes} classes`,
        );
      }
      ok.forEach((i, j) => (results[i] = { probs: probs[j] }));
    }
    return results;
  };
}

/** One runner call per batch (PyTorch engine). */
async function torchClassify(torch: TorchSettings, ctx: RunContext, p: InferenceParams, files: string[]) {
  const r = (await runTorchForTask({
    torch,
    command: 'infer',
    ctx,
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
