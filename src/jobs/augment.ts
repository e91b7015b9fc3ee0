import fs from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { badPath, invalidField } from '../domain/errors.js';
import { AUGMENT_METHODS, isAugmentMethod, type AugmentMethod } from '../augment/methods.js';
import { augmentedExtension } from '../augment/image-task.js';
import { classFolders, existingPath, imagesIn, isInside, outputFolder, statOrNull } from '../util/files.js';
import { carrySignalFile, SIGNAL_FILE } from '../signal/params.js';
import { hash32 } from '../util/random.js';
import type { WorkerPool } from '../workers/pool.js';
import {
  defineJob,
  JobFailure,
  throwIfAborted,
  type JobDefinition,
  type JobOutcome,
  type PreparedTask,
  type RunContext,
  type ValidateContext,
} from './job.js';

export const AugmentBody = Type.Object({
  dataset_path: Type.String({
    minLength: 1,
    description: 'A split dataset: train/<class>/…, valid/<class>/…',
  }),
  output_path: Type.Optional(Type.String({ minLength: 1, description: 'Default: <dataset_path>_aug' })),
  methods: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      maxItems: 16,
      description: `Subset of ${AUGMENT_METHODS.join(', ')}; empty, null or absent: all six`,
    }),
  ),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295 })),
});
type Body = Static<typeof AugmentBody>;

interface Params {
  dataset_path: string;
  output_path: string;
  methods: AugmentMethod[];
  seed: number;
}

/** Splits that get augmented copies; a `test` split is copied as it is (augmenting test data would skew scores). */
const AUGMENTED_SPLITS = ['train', 'valid'] as const;

export function augmentedName(file: string, method: AugmentMethod): string {
  return `${path.basename(file, path.extname(file))}_${method}${augmentedExtension(file)}`;
}

export function augmentJob(pool: WorkerPool): JobDefinition {
  return defineJob<typeof AugmentBody, Params>({
    kind: 'data_augmentation',
    resourceClass: 'preprocessing',
    route: 'augment',
    body: AugmentBody,
    validate,
    run: (p, ctx) => run(pool, p, ctx),
  });
}

async function validate(body: Body, { paths }: ValidateContext): Promise<PreparedTask<Params>> {
  const { path: dataset } = await existingPath(paths, body.dataset_path, 'dataset_path', 'folder');
  for (const split of AUGMENTED_SPLITS) {
    if (!(await statOrNull(path.join(dataset, split)))?.isDirectory()) {
      throw badPath(
        `dataset_path: '${body.dataset_path}' has no '${split}' folder (split the dataset first)`,
        {
          field: 'dataset_path',
        },
      );
    }
  }
  const methods = checkedMethods(body.methods);
  const outputName = body.output_path ?? `${body.dataset_path.replace(/[/\\]+$/, '')}_aug`;
  const output = paths.resolve(outputName, 'output_path');
  if (isInside(output, dataset) || isInside(dataset, output)) {
    throw badPath('output_path: must not be inside dataset_path or contain it', { field: 'output_path' });
  }
  await outputFolder(paths, outputName, 'output_path');
  const params: Params = {
    dataset_path: body.dataset_path,
    output_path: outputName,
    methods,
    // Always stored, so a re-run after a restart writes the same images.
    seed: body.seed ?? Math.floor(Math.random() * 2 ** 32),
  };
  return { params, input_path: paths.display(dataset), output_path: paths.display(output) };
}

/** The methods asked for (empty, null or absent: all six), each known and named once. */
function checkedMethods(asked: string[] | undefined): AugmentMethod[] {
  const methods = asked?.length ? asked : [...AUGMENT_METHODS];
  const unknown = methods.filter((m) => !isAugmentMethod(m));
  if (unknown.length > 0) {
    throw invalidField(
      'methods',
      `unknown augmentation method${unknown.length > 1 ? 's' : ''} ${unknown.map((m) => `'${m}'`).join(', ')}` +
        ` (known: ${AUGMENT_METHODS.join(', ')})`,
    );
  }
  const twice = methods.filter((m, i) => methods.indexOf(m) !== i);
  if (twice.length > 0) throw invalidField('methods', `'${twice[0]}' is listed more than once`);
  return methods as AugmentMethod[];
}

interface WorkItem {
  split: string;
  cls: string;
  file: string;
}

/** Every image of the splits, with the output's class folders made. */
async function listWork(dataset: string, output: string, ctx: RunContext) {
  const splits = [...AUGMENTED_SPLITS] as string[];
  if ((await statOrNull(path.join(dataset, 'test')))?.isDirectory()) splits.push('test');
  const work: WorkItem[] = [];
  const classes = new Set<string>();
  for (const split of splits) {
    for (const cls of await classFolders(path.join(dataset, split))) {
      classes.add(cls);
      await fs.mkdir(ctx.paths.within(output, path.join(output, split, cls), 'output_path'), {
        recursive: true,
      });
      for (const file of await imagesIn(path.join(dataset, split, cls))) work.push({ split, cls, file });
    }
  }
  return { work, classes, withTest: splits.includes('test') };
}

/** Writes the augmented versions of one image (in a worker); returns how many. */
async function augmentCopies(
  pool: WorkerPool,
  p: Params,
  ctx: RunContext,
  src: string,
  output: string,
  w: WorkItem,
) {
  const rel = path.join(w.split, w.cls, w.file);
  await pool.augmentImage(
    {
      input: src,
      outputs: p.methods.map((method) => ({
        method,
        path: ctx.paths.within(
          output,
          path.join(output, w.split, w.cls, augmentedName(w.file, method)),
          'output_path',
        ),
        seed: hash32(`${p.seed}:${rel}:${method}`),
      })),
    },
    ctx.signal,
  );
  return p.methods.length;
}

async function run(pool: WorkerPool, p: Params, ctx: RunContext): Promise<JobOutcome> {
  const dataset = ctx.paths.resolve(p.dataset_path, 'dataset_path');
  const output = ctx.paths.resolve(p.output_path, 'output_path');
  const { work, classes, withTest } = await listWork(dataset, output, ctx);
  if (work.length === 0) throw new Error(`no images under ${p.dataset_path}/train or /valid`);
  const toAugment = work.filter((w) => w.split !== 'test').length;
  ctx.log(
    `Augmenting ${toAugment} image(s) of ${classes.size} class(es) with ${p.methods.join(', ')} (seed ${p.seed})` +
      (withTest ? `; the test split's ${work.length - toAugment} image(s) are copied unchanged` : ''),
  );
  const count = { done: 0, originals: 0, augmented: 0, failed: [] as string[] };
  const one = async (w: WorkItem) => {
    const rel = path.join(w.split, w.cls, w.file);
    const src = path.join(dataset, rel);
    try {
      await fs.copyFile(src, ctx.paths.within(output, path.join(output, rel), 'output_path'));
      count.originals++;
      if (w.split !== 'test') {
        // Awaited first: `count.augmented += await …` would read the count before the wait and
        // lose what other images added meanwhile.
        const made = await augmentCopies(pool, p, ctx, src, output, w);
        count.augmented += made;
      }
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      count.failed.push(rel);
      ctx.log(`${rel}: ${(err as Error).message}`, 'WARNING');
    }
    count.done++;
    ctx.progress((count.done / work.length) * 100, `image ${count.done}/${work.length}`);
  };
  // One image per worker in flight, plus one being copied.
  await keepBusy(work, pool.size, one, ctx.signal);
  throwIfAborted(ctx.signal);
  // Augmented spectrograms were still rendered as the originals were: the signal file goes along.
  const signalFile = ctx.paths.within(output, path.join(output, SIGNAL_FILE), 'output_path');
  if (await carrySignalFile(dataset, signalFile, ctx.paths.realRoot))
    ctx.log(`Carried ${SIGNAL_FILE} (how these spectrograms were rendered) into ${p.output_path}`);
  const stats = {
    original_images: count.originals,
    augmented_images: count.augmented,
    // The reference's shape: a count of methods and the class names.
    methods_used: p.methods.length,
    methods: p.methods,
    classes: [...classes].sort(),
    num_classes: classes.size,
    failed_images: count.failed.length,
    seed: p.seed,
  };
  if (count.failed.length === work.length) {
    throw new JobFailure(`no image could be read (first: ${count.failed[0]})`, stats);
  }
  return {
    message: `${count.originals} original and ${count.augmented} augmented image(s) in ${p.output_path}`,
    stats,
  };
}

/** Runs `fn` over `items` with at most `limit` + 1 in flight; stops starting new ones on abort. */
async function keepBusy<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, signal: AbortSignal) {
  const inflight = new Set<Promise<void>>();
  try {
    for (const item of items) {
      throwIfAborted(signal);
      const t: Promise<void> = fn(item).finally(() => inflight.delete(t));
      t.catch(() => undefined); // seen by race/allSettled; never an unhandled rejection
      inflight.add(t);
      if (inflight.size > limit) await Promise.race(inflight);
    }
  } finally {
    await Promise.allSettled(inflight);
  }
}
