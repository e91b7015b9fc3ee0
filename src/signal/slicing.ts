/**
 * Where a recording's slices start: the reference's generate_images steps its slice window by
 * `duration_time × 2^−ratio` (`i += 2 ** (-ratio)`, slice i covering samples
 * `int(i·perSlice) … int(i·perSlice) + perSlice`, while `(i + 1)·perSlice ≤ samples`). So
 * ratio 0 cuts the recording into consecutive slices, its default 1 gives half-overlapping ones
 * (7 slices of 0.1 s from 0.4 s instead of 4), 2 quarter steps; a negative ratio skips
 * (−1: every other slice). A last window that would run past the end is not made, and the
 * samples after the last slice are in no image. The spectrogram task and inference on raw IQ
 * both cut here, so a model sees the slices it was trained on.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { invalidField } from '../domain/errors.js';
import type { SignalParams } from './params.js';

/** The schema's bounds for `ratio` (a step of at most 256 slices, at least 1/256 of one). */
export const RATIO_MIN = -8;
export const RATIO_MAX = 8;

/** Complex-sample index where slice `index` (from 0) starts. */
export function sliceStart(index: number, perSlice: number, ratio: number): number {
  // index · 2^−ratio is exact in float64, as the reference's repeated addition of a power of two is.
  return Math.floor(index * 2 ** -ratio * perSlice);
}

/**
 * Where slice `index` (from 0) of `file` lies, as a worker reads it (SliceJob's and FrameJob's
 * `source`): the spectrogram task and inference on raw IQ name their slices here alike.
 */
export function sliceRegion(
  file: string,
  dtype: 'float32' | 'int16',
  index: number,
  perSlice: number,
  ratio: number,
): { file: string; dtype: 'float32' | 'int16'; firstSample: number; samples: number } {
  return { file, dtype, firstSample: sliceStart(index, perSlice, ratio), samples: perSlice };
}

export interface SliceGrid {
  /** Slices the recording yields. */
  count: number;
  /** Samples after the end of the last slice (all of them when count is 0). */
  tail: number;
  /** Samples in no slice: the tail, plus the gaps between slices when ratio < 0. */
  uncovered: number;
}

export function sliceGrid(samples: number, perSlice: number, ratio: number): SliceGrid {
  if (samples < perSlice) return { count: 0, tail: samples, uncovered: samples };
  const step = 2 ** -ratio;
  // The reference's condition, (i + 1)·perSlice ≤ samples with i = k·step; the estimate is then
  // corrected against it, so float rounding cannot add or lose a slice.
  const fits = (k: number) => (k * step + 1) * perSlice <= samples;
  let count = Math.floor((samples - perSlice) / (step * perSlice)) + 1;
  while (count > 1 && !fits(count - 1)) count--;
  while (fits(count)) count++;
  const end = sliceStart(count - 1, perSlice, ratio) + perSlice;
  const covered = ratio < 0 ? count * perSlice : end;
  return { count, tail: samples - end, uncovered: samples - covered };
}

/** A worker holds one slice in memory (twice with save_matrix): bound it. */
export const MAX_SAMPLES_PER_SLICE = 20_000_000;

/** The fields that say how a recording is cut and transformed (shared with inference on raw IQ). */
export const SLICING_FIELDS = {
  sample_rate: Type.Number({ exclusiveMinimum: 0, maximum: 1e11, default: 100e6 }),
  stft_point: Type.Integer({ minimum: 16, maximum: 65536, default: 1024, description: 'A power of two' }),
  duration_time: Type.Number({
    exclusiveMinimum: 0,
    maximum: 3600,
    default: 0.1,
    description: 'Seconds per slice',
  }),
  ratio: Type.Integer({
    minimum: RATIO_MIN,
    maximum: RATIO_MAX,
    default: 1,
    description:
      'Slices start every duration_time × 2^−ratio, as in the reference’s generate_images: 0 = one after another, 1 = half-overlapping (the default), −1 = every other one',
  }),
  dtype: Type.Union([Type.Literal('float32'), Type.Literal('int16')], { default: 'float32' }),
  width: Type.Integer({ minimum: 16, maximum: 8192, default: 1920 }),
  height: Type.Integer({ minimum: 16, maximum: 8192, default: 1440 }),
  render: Type.Union([Type.Literal('matplotlib'), Type.Literal('power')], {
    default: 'matplotlib',
    description:
      'matplotlib: the reference’s pictures (imshow of the dB matrix, its antialiasing filter); power: each pixel the mean |Z|² of its frames in dB (a burst shorter than a pixel still shows)',
  }),
};

export type SlicingKey = keyof typeof SLICING_FIELDS;
const SLICING_KEYS = Object.keys(SLICING_FIELDS) as SlicingKey[];

/** A complete set of slicing values (sample rate … rendering), as the fields' schemas type them. */
const SlicingSchema = Type.Object(SLICING_FIELDS);
export type Slicing = Static<typeof SlicingSchema>;

/** The spectrogram task's defaults, read off the field schemas. */
const SLICING_DEFAULTS = Object.fromEntries(
  SLICING_KEYS.map((k) => [k, SLICING_FIELDS[k].default as unknown]),
) as Slicing;

function noDefault<T extends TSchema>(schema: T): T {
  const { default: _default, ...rest } = schema as T & { default?: unknown };
  return rest as T;
}

/**
 * The slicing fields as a request to classify raw IQ gives them (inference, predict): without
 * defaults, so that a field left out can come from the model card's signal section
 * (resolveSlicing), and only then from the spectrogram task's defaults.
 */
export const SLICING_REQUEST_FIELDS = {
  sample_rate: Type.Optional(noDefault(SLICING_FIELDS.sample_rate)),
  stft_point: Type.Optional(noDefault(SLICING_FIELDS.stft_point)),
  duration_time: Type.Optional(noDefault(SLICING_FIELDS.duration_time)),
  dtype: Type.Optional(noDefault(SLICING_FIELDS.dtype)),
  width: Type.Optional(noDefault(SLICING_FIELDS.width)),
  height: Type.Optional(noDefault(SLICING_FIELDS.height)),
  ratio: Type.Optional(noDefault(SLICING_FIELDS.ratio)),
  render: Type.Optional(noDefault(SLICING_FIELDS.render)),
};

/**
 * How to slice and draw recordings for a model: the request's fields, else the model card's
 * `signal` section (how its training images were made; values the fields' schemas refuse are
 * ignored), else the defaults. `fromCard` lists what came from the card, `differences` where the
 * request overrides it (for the task log).
 */
export function resolveSlicing(
  given: Partial<Slicing>,
  trained: SignalParams | null | undefined,
): { values: Slicing; fromCard: SlicingKey[]; differences: string[] } {
  const values: Record<string, unknown> = { ...SLICING_DEFAULTS };
  const fromCard: SlicingKey[] = [];
  const differences: string[] = [];
  for (const k of SLICING_KEYS) {
    const asked = given[k];
    const card = trained?.[k];
    const usable = card !== undefined && Value.Check(SlicingSchema.properties[k], card);
    if (asked !== undefined && asked !== null) {
      values[k] = asked;
      if (usable && card !== asked)
        differences.push(`${k} ${String(asked)} (the model was trained on ${String(card)})`);
    } else if (usable) {
      values[k] = card;
      fromCard.push(k);
    }
  }
  return { values: values as Slicing, fromCard, differences };
}

/** "sample_rate 2000000, stft_point 512, …" for a log line. */
export function describeSlicing(
  values: Partial<Record<SlicingKey, unknown>>,
  keys: readonly SlicingKey[],
): string {
  return keys.map((k) => `${k} ${String(values[k])}`).join(', ');
}

/** The STFT kernel takes powers of two only (the schema already bounds the range). */
export function checkStftPoint(stftPoint: number): void {
  if ((stftPoint & (stftPoint - 1)) !== 0) {
    throw invalidField('stft_point', `must be a power of two (got ${stftPoint})`);
  }
}

/** Complex samples per slice, after the checks the schema cannot express. */
export function samplesPerSlice(body: {
  sample_rate: number;
  duration_time: number;
  stft_point: number;
  ratio?: number;
}): number {
  checkStftPoint(body.stft_point);
  const perSlice = Math.round(body.sample_rate * body.duration_time);
  if (perSlice < body.stft_point) {
    throw invalidField(
      'duration_time',
      `a slice of ${perSlice} samples (sample_rate × duration_time) is shorter than stft_point ${body.stft_point}`,
    );
  }
  if (perSlice > MAX_SAMPLES_PER_SLICE) {
    throw invalidField(
      'duration_time',
      `a slice of ${perSlice} samples is over the limit of ${MAX_SAMPLES_PER_SLICE}`,
    );
  }
  if (body.ratio !== undefined && perSlice * 2 ** -body.ratio < 1) {
    throw invalidField('ratio', `a step of duration_time × 2^−${body.ratio} is under one sample`);
  }
  return perSlice;
}
