/**
 * `evaluation`: POST /api/v2/evaluation/start (SPEC §2.4). Scores a trained model (model card +
 * .pth) on an ImageFolder root, or on a root of SNR folders each holding one; the runner computes
 * the numbers, this side draws the confusion matrix and the accuracy-vs-SNR plot.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { TorchSettings } from '../config.js';
import { badPath } from '../domain/errors.js';
import { formatMetric } from '../domain/metrics.js';
import { accuracyVsSnrSvg, confusionMatrixSvg, svgToPng, type SnrPoint } from '../charts/charts.js';
import { weightsFile } from '../engines/choose.js';
import { readModelCard } from '../engines/model-card.js';
import { classFolders, existingPath, outputFolder } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';
import { defineJob, type JobDefinition, type JobOutcome, type PreparedTask, type RunContext } from './job.js';
import { runTorchForTask } from './torch-run.js';

export const EvaluationBody = Type.Object({
  cfg_path: Type.String({ minLength: 1, description: 'Model card (config.yaml) written by training' }),
  weight_path: Type.String({ minLength: 1, description: 'PyTorch weights (.pth)' }),
  data_path: Type.String({
    minLength: 1,
    description: 'ImageFolder root, or a root of SNR folders (e.g. -10dB, 0dB, 10dB) each holding one',
  }),
  save_path: Type.String({ minLength: 1, description: 'Output folder for metrics and plots (created)' }),
  batch_size: Type.Integer({ minimum: 1, maximum: 4096, default: 16 }),
});
type EvaluationBody = Static<typeof EvaluationBody>;

interface EvaluationParams {
  cfg_path: string;
  weight_path: string;
  data_path: string;
  save_path: string;
  batch_size: number;
  layout: 'imagefolder' | 'snr';
}

export function evaluationJob(torch: TorchSettings): JobDefinition {
  return defineJob<typeof EvaluationBody, EvaluationParams>({
    kind: 'evaluation',
    resourceClass: 'inference',
    body: EvaluationBody,
    validate: (body, { paths }) => validateEvaluation(body, paths),
    run: (p, ctx) => runEvaluation(torch, p, ctx),
  });
}

async function validateEvaluation(
  body: EvaluationBody,
  paths: PathSandbox,
): Promise<PreparedTask<EvaluationParams>> {
  const card = await readModelCard(paths.resolve(body.cfg_path, 'cfg_path'), 'cfg_path', body.cfg_path);
  await weightsFile(paths, body.weight_path, 'weight_path');
  const { path: data } = await existingPath(paths, body.data_path, 'data_path', 'folder');
  const top = await classFolders(data);
  if (top.length === 0)
    throw badPath(`data_path: '${body.data_path}' has no sub-folders`, { field: 'data_path' });
  const known = (names: string[]) => names.filter((n) => Object.hasOwn(card.class_names, n));
  // Sub-folders named like the model's classes: one ImageFolder. Otherwise SNR folders.
  const layout = known(top).length > 0 ? 'imagefolder' : 'snr';
  const groups = layout === 'imagefolder' ? [data] : top.map((t) => path.join(data, t));
  for (const g of groups) {
    const classes = await classFolders(g);
    const unknown = classes.filter((c) => !Object.hasOwn(card.class_names, c));
    if (classes.length === 0 || unknown.length > 0) {
      const where = path.relative(data, g) || '.';
      throw badPath(
        classes.length === 0
          ? `data_path: '${where}' holds no class folders (expected an ImageFolder root or SNR folders of them)`
          : `data_path: '${where}' has class folders the model does not know: ${unknown.slice(0, 10).join(', ')} (the model's classes: ${card.labels.join(', ')})`,
        { field: 'data_path' },
      );
    }
  }
  const { path: out } = await outputFolder(paths, body.save_path, 'save_path');
  const params: EvaluationParams = { ...body, layout };
  return {
    params,
    input_path: paths.display(data),
    output_path: paths.display(out),
    notes: [],
  };
}

type SnrRow = { snr_folder: string; snr_db: number | null; accuracy: number; samples: number };

async function runEvaluation(
  torch: TorchSettings,
  p: EvaluationParams,
  ctx: RunContext,
): Promise<JobOutcome> {
  const out = ctx.paths.resolve(p.save_path, 'save_path');
  await fs.mkdir(out, { recursive: true });
  const r = await runTorchForTask({
    torch,
    command: 'evaluate',
    ctx,
    // Every field of the runner's EvaluateRequest (python/rfuav_torch/evaluate.py).
    request: {
      cfg_path: ctx.paths.resolve(p.cfg_path, 'cfg_path'),
      weight_path: ctx.paths.resolve(p.weight_path, 'weight_path'),
      data_path: ctx.paths.resolve(p.data_path, 'data_path'),
      output_dir: out,
      batch_size: p.batch_size,
    },
  });
  const cm = r.confusion_matrix as { labels: string[]; matrix: number[][] };
  const perSnr = r.accuracy_vs_snr as SnrRow[] | undefined;
  const files = await drawPlots(out, cm, perSnr);
  const metrics = r.metrics as Record<string, number>;
  ctx.log(`Wrote ${Object.values(files).join(', ')} to ${ctx.paths.display(out)}`);
  return {
    message: `accuracy ${formatMetric('accuracy', metrics.accuracy)} on ${String(r.samples)} images`,
    result: {
      ...metrics,
      samples: r.samples,
      layout: r.layout,
      confusion_matrix: cm,
      ...(perSnr ? { accuracy_vs_snr: perSnr } : {}),
      output_path: ctx.paths.display(out),
      files,
    },
  };
}

/** The confusion matrix and (with SNR folders) the accuracy-vs-SNR plot as PNGs beside the
 * runner's JSON files; returns every file of the evaluation by role. */
async function drawPlots(
  out: string,
  cm: { labels: string[]; matrix: number[][] },
  perSnr: SnrRow[] | undefined,
): Promise<Record<string, string>> {
  const files: Record<string, string> = {
    metrics: 'metrics.json',
    confusion_matrix: 'confusion_matrix.json',
    confusion_matrix_png: 'confusion_matrix.png',
  };
  await svgToPng(
    confusionMatrixSvg(cm.labels, cm.matrix),
    path.join(out, files.confusion_matrix_png as string),
  );
  if (perSnr?.length) {
    const points: SnrPoint[] = perSnr.map((s) => ({
      label: s.snr_folder,
      snr_db: s.snr_db,
      accuracy: s.accuracy,
      samples: s.samples,
    }));
    files.accuracy_vs_snr = 'accuracy_vs_snr.json';
    files.accuracy_vs_snr_png = 'accuracy_vs_snr.png';
    await svgToPng(accuracyVsSnrSvg(points), path.join(out, files.accuracy_vs_snr_png));
  }
  return files;
}
