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

/** The schema's bounds for `ratio` (a step of at most 256 slices, at least 1/256 of one). */
export const RATIO_MIN = -8;
export const RATIO_MAX = 8;

/** Complex-sample index where slice `index` (from 0) starts. */
export function sliceStart(index: number, perSlice: number, ratio: number): number {
  // index · 2^−ratio is exact in float64, as the reference's repeated addition of a power of two is.
  return Math.floor(index * 2 ** -ratio * perSlice);
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
