import { forEachDbFrame, frameCount, type StftPlan } from './stft.js';

export interface SliceImageData {
  freqs: number;
  frames: number;
  /** Columns of `columns` (≤ the requested width): each the mean dB of its run of frames. */
  columns: number;
  /** frequency × columns, fftshift-ed rows (most negative frequency first). */
  reduced: Float32Array;
  /** Over every bin of every frame, as matplotlib's autoscaling sees the full matrix. */
  min: number;
  max: number;
  /** The full frequency × time dB matrix, when asked for (save_matrix). */
  db: Float32Array | null;
}

/**
 * One pass over a slice: STFT → dB, reduced in data space to at most `maxColumns` time columns
 * (each the mean of the dB values of the frames that fall in it), with the min and max of the
 * full-resolution matrix. This is how matplotlib's imshow shows a matrix wider than its pixels
 * (resample the data, then colour), and it means a 19 533-frame slice is coloured and resized
 * at 1920 columns instead of all of its frames. Memory: the reduced matrix plus one frame, and
 * the full matrix only when `keepMatrix`.
 */
export function sliceImageData(
  iq: Float32Array,
  plan: StftPlan,
  maxColumns: number,
  keepMatrix: boolean,
): SliceImageData {
  const freqs = plan.n;
  const frames = frameCount(iq.length / 2, freqs);
  const columns = Math.max(1, Math.min(maxColumns, frames));
  const reduced = new Float32Array(freqs * columns);
  const db = keepMatrix ? new Float32Array(freqs * frames) : null;
  const acc = new Float64Array(freqs);
  let min = Infinity;
  let max = -Infinity;
  let column = 0;
  let inColumn = 0;
  const flush = () => {
    for (let f = 0; f < freqs; f++) {
      reduced[f * columns + column] = (acc[f] as number) / inColumn;
      acc[f] = 0;
    }
    inColumn = 0;
  };
  forEachDbFrame(iq, plan, (t, row) => {
    const c = Math.floor((t * columns) / frames);
    if (c !== column) {
      flush();
      column = c;
    }
    for (let f = 0; f < freqs; f++) {
      const v = row[f] as number;
      if (v < min) min = v;
      if (v > max) max = v;
      acc[f] = (acc[f] as number) + v;
    }
    if (db) for (let f = 0; f < freqs; f++) db[f * frames + t] = row[f] as number;
    inColumn++;
  });
  flush();
  return { freqs, frames, columns, reduced, min, max, db };
}
