import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { badPath, invalidField } from '../domain/errors.js';
import { classFolders, imagesIn, inputAndOutput, isInside } from '../util/files.js';
import { carrySignalFile, SIGNAL_FILE } from '../signal/params.js';
import { hash32, mulberry32, shuffle } from '../util/random.js';
import { throwIfAborted, type JobDefinition, defineJob } from './job.js';

export const SplitBody = Type.Object({
  input_path: Type.String({ minLength: 1, description: 'Folder with one sub-folder of images per class' }),
  output_path: Type.String({
    minLength: 1,
    description: 'Receives train/<class>, valid/<class> [, test/<class>]',
  }),
  train_ratio: Type.Number({ minimum: 0.1, maximum: 0.9, default: 0.8 }),
  val_ratio: Type.Optional(
    Type.Number({ minimum: 0.05, maximum: 0.5, description: 'When given, a third test split gets the rest' }),
  ),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295 })),
});
type SplitBody = Static<typeof SplitBody>;

interface SplitParams {
  input_path: string;
  output_path: string;
  train_ratio: number;
  val_ratio: number | null;
  seed: number;
}

/**
 * How many of `n` images go to train / valid / test. When there are enough images, every split
 * gets at least one, so a small class still appears in each.
 */
/** Ratios are decimal fractions: 0.7 + 0.3 is 1, whatever binary floating point says. */
const RATIO_EPSILON = 1e-9;

export function splitCounts(n: number, train: number, val: number | null): [number, number, number] {
  // train + val = 1: the test split is asked for but gets nothing, as the ratios say.
  if (val != null && train + val >= 1 - RATIO_EPSILON) val = null;
  const parts = val == null ? 2 : 3;
  const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
  let nTrain: number;
  let nVal: number;
  if (n >= parts) {
    nTrain = clamp(Math.round(n * train), 1, n - (parts - 1));
    nVal = val == null ? n - nTrain : clamp(Math.round(n * val), 1, n - nTrain - 1);
  } else {
    nTrain = Math.min(n, Math.max(1, Math.round(n * train)));
    nVal = val == null ? n - nTrain : Math.min(n - nTrain, Math.round(n * val));
  }
  return [nTrain, nVal, n - nTrain - nVal];
}

export const splitJob: JobDefinition = defineJob<typeof SplitBody, SplitParams>({
  kind: 'dataset_split',
  resourceClass: 'preprocessing',
  route: 'split',
  body: SplitBody,

  async validate(body: SplitBody, { paths }) {
    const { input, output, stat } = await inputAndOutput(paths, body);
    if (!stat.isDirectory()) {
      throw badPath(`input_path: '${body.input_path}' is not a folder`, { field: 'input_path' });
    }
    if (isInside(output, input) || isInside(input, output)) {
      throw badPath('output_path: must not be inside input_path or contain it', { field: 'output_path' });
    }
    const classes = await classFolders(input);
    if (classes.length === 0) {
      throw badPath(`input_path: '${body.input_path}' has no class sub-folders`, { field: 'input_path' });
    }
    // train + val = 1 is the reference's default form (0.8 + 0.2): an empty test split.
    if (body.val_ratio != null && body.train_ratio + body.val_ratio > 1 + RATIO_EPSILON) {
      throw invalidField(
        'val_ratio',
        `train_ratio + val_ratio is ${+(body.train_ratio + body.val_ratio).toFixed(6)}; it must not exceed 1`,
      );
    }
    // A seed is always stored, so a re-run after a restart reproduces the same split.
    const params: SplitParams = {
      input_path: body.input_path,
      output_path: body.output_path,
      train_ratio: body.train_ratio,
      val_ratio: body.val_ratio ?? null,
      seed: body.seed ?? Math.floor(Math.random() * 2 ** 32),
    };
    return { params, input_path: paths.display(input), output_path: paths.display(output) };
  },

  async run(p, ctx) {
    const input = ctx.paths.resolve(p.input_path, 'input_path');
    const output = ctx.paths.resolve(p.output_path, 'output_path');
    const classes = await classFolders(input);
    const plan: { cls: string; file: string; split: string }[] = [];
    const perClass: Record<string, { train: number; valid: number; test: number }> = {};
    for (const cls of classes) {
      const files = await imagesIn(path.join(input, cls));
      shuffle(files, mulberry32(p.seed ^ hash32(cls)));
      const [nTrain, nVal] = splitCounts(files.length, p.train_ratio, p.val_ratio);
      files.forEach((file, i) =>
        plan.push({ cls, file, split: i < nTrain ? 'train' : i < nTrain + nVal ? 'valid' : 'test' }),
      );
      perClass[cls] = { train: nTrain, valid: nVal, test: files.length - nTrain - nVal };
      if (files.length === 0) ctx.log(`Class '${cls}' has no images; it is skipped`, 'WARNING');
    }
    if (plan.length === 0) throw new Error(`no images found under the class folders of ${p.input_path}`);
    const splits = p.val_ratio == null ? ['train', 'valid'] : ['train', 'valid', 'test'];
    ctx.log(
      `Splitting ${plan.length} images of ${classes.length} classes into ${splits.join('/')} (seed ${p.seed})`,
    );
    for (const s of splits)
      for (const cls of classes)
        await fs.mkdir(ctx.paths.within(output, path.join(output, s, cls), 'output_path'), {
          recursive: true,
        });
    let done = 0;
    for (const item of plan) {
      throwIfAborted(ctx.signal);
      await fs.copyFile(
        path.join(input, item.cls, item.file),
        ctx.paths.within(output, path.join(output, item.split, item.cls, item.file), 'output_path'),
      );
      done++;
      ctx.progress((done / plan.length) * 100, `copied ${done}/${plan.length}`);
    }
    // How the images were rendered from raw IQ travels with them (training copies it into the card).
    if (
      await carrySignalFile(
        input,
        ctx.paths.within(output, path.join(output, SIGNAL_FILE), 'output_path'),
        ctx.paths.realRoot,
      )
    )
      ctx.log(`Carried ${SIGNAL_FILE} (how these spectrograms were rendered) into ${p.output_path}`);
    const count = (s: 'train' | 'valid' | 'test') => Object.values(perClass).reduce((a, c) => a + c[s], 0);
    const stats = {
      total_images: plan.length,
      train_images: count('train'),
      val_images: count('valid'),
      test_images: count('test'),
      // The reference's shape: class names; their count beside them.
      classes,
      num_classes: classes.length,
      per_class: perClass,
      seed: p.seed,
    };
    return {
      message: `split ${stats.total_images} images: ${stats.train_images} train, ${stats.val_images} valid, ${stats.test_images} test`,
      stats,
    };
  },
});
