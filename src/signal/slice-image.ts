import { bySource, imageTaps, type Taps } from './mpl-resample.js';
import {
  dbColumns,
  forEachFrame,
  frameCount,
  powerColumns,
  powerToDbInPlace,
  type FrameColumns,
  type SliceSamples,
  type StftPlan,
} from './stft.js';

/** How a slice's STFT becomes a picture (the spectrogram task's `render`). */
export type RenderMode = 'matplotlib' | 'power';

export interface SliceImageData {
  freqs: number;
  frames: number;
  /** Time columns (≤ the requested width). */
  columns: number;
  /**
   * frequency × columns, fftshift-ed rows (most negative frequency first): 10·log10 of the RMS
   * |Z| of the frames in each column — the energy in that pixel's span, so a burst shorter than
   * a pixel still shows.
   */
  reduced: Float32Array;
  /** 10·log10(|Z|) extremes over every bin of every frame (the full matrix's min–max range). */
  min: number;
  max: number;
  /** The full frequency × time dB matrix, when asked for (save_matrix). */
  db: Float32Array | null;
}

/**
 * One pass over a slice: STFT, then, per image column, the mean |Z|² of the frames that fall in
 * it, with the extremes of the full-resolution matrix; logarithms only for the reduced matrix
 * (and for every bin only when `keepMatrix`). A 19 533-frame slice is thus coloured and resized
 * at 1920 columns, not 19 533. Memory: the reduced matrix plus one frame (and the full matrix
 * only when asked).
 */
export function sliceImageData(
  source: SliceSamples,
  plan: StftPlan,
  maxColumns: number,
  keepMatrix: boolean,
): SliceImageData {
  const n = plan.n;
  const frames = frameCount(source instanceof Float32Array ? source.length / 2 : source.samples, n);
  const columns = Math.max(1, Math.min(maxColumns, frames));
  const reduced = new Float32Array(n * columns);
  const db = keepMatrix ? new Float32Array(n * frames) : null;
  const scale2 = plan.scale * plan.scale;
  const shifted = (b: number) => (b < n / 2 ? b + n / 2 : b - n / 2);
  // Column c's mean |Z|², fftshift-ed, from the sum of its frames' unscaled |X|².
  const writeColumn = (c: number, sums: ArrayLike<number>, at: number, count: number) => {
    const k = scale2 / count;
    for (let b = 0; b < n; b++) reduced[shifted(b) * columns + c] = (sums[at + b] as number) * k;
  };
  const { minPower, maxPower } = db
    ? matrixAndColumns(inMemory(source), plan, frames, columns, db, writeColumn)
    : powerColumns(source, plan, columns, writeColumn); // all per-bin work in the SIMD kernel
  powerToDbInPlace(reduced, new Int32Array(reduced.buffer));
  const extremes = new Float32Array([minPower * scale2, maxPower * scale2]);
  powerToDbInPlace(extremes, new Int32Array(extremes.buffer));
  return { freqs: n, frames, columns, reduced, min: extremes[0] as number, max: extremes[1] as number, db };
}

function inMemory(source: SliceSamples): Float32Array {
  if (source instanceof Float32Array) return source;
  const iq = new Float32Array(2 * source.samples);
  source.fill(iq);
  return iq;
}

/** save_matrix: every frame's dB row into `db` too, so this path goes frame by frame in JavaScript. */
function matrixAndColumns(
  iq: Float32Array,
  plan: StftPlan,
  frames: number,
  columns: number,
  db: Float32Array,
  writeColumn: (c: number, sums: ArrayLike<number>, at: number, count: number) => void,
): { minPower: number; maxPower: number } {
  const n = plan.n;
  const half = n / 2;
  const scale2 = plan.scale * plan.scale;
  const row = new Float32Array(n);
  const rowBits = new Int32Array(row.buffer);
  const acc = new Float64Array(n);
  let minPower = Infinity;
  let maxPower = -Infinity;
  let column = 0;
  let inColumn = 0;
  forEachFrame(iq, plan, frames, (t, out, at) => {
    const c = Math.floor((t * columns) / frames);
    if (c !== column) {
      writeColumn(column, acc, 0, inColumn);
      acc.fill(0);
      column = c;
      inColumn = 0;
    }
    for (let b = 0; b < n; b++) {
      const re = out[at + 2 * b] as number;
      const im = out[at + 2 * b + 1] as number;
      const p = re * re + im * im;
      if (p < minPower) minPower = p;
      if (p > maxPower) maxPower = p;
      acc[b] = (acc[b] as number) + p;
      row[b < half ? b + half : b - half] = p * scale2;
    }
    inColumn++;
    powerToDbInPlace(row, rowBits);
    for (let f = 0; f < n; f++) db[f * frames + t] = row[f] as number;
  });
  writeColumn(column, acc, 0, inColumn);
  return { minPower, maxPower };
}

export interface SliceColumns {
  freqs: number;
  frames: number;
  width: number;
  /**
   * The image's columns, resampled along time as matplotlib resamples them (see
   * mpl-resample.ts), in dB: frequency × width, fftshift-ed rows (most negative frequency first).
   * Without the full matrix this is a view into the thread's WebAssembly scratch: colour it
   * (colourColumns) or copy it before the next slice.
   */
  columns: Float32Array;
  /** How the frequency axis is then resampled to the image height (fftshift-ed rows). */
  rowTaps: Taps;
  /** 10·log10(|Z|) extremes over every bin of every frame: the range matplotlib normalises by. */
  min: number;
  max: number;
  /** The full frequency × time dB matrix, when asked for (save_matrix). */
  db: Float32Array | null;
}

/**
 * One pass over a slice for a picture equal to the reference's (matplotlib's imshow of the dB
 * matrix): STFT, every bin in dB, each frame added into the image columns that matplotlib's
 * Hanning filter gives it to, with its weights; the frequency axis is left to colourColumns.
 * Memory: the columns (width × freqs) and one frame, plus the full matrix only when asked.
 */
export function sliceColumns(
  source: SliceSamples,
  plan: StftPlan,
  width: number,
  height: number,
  keepMatrix: boolean,
): SliceColumns {
  const n = plan.n;
  const frames = frameCount(source instanceof Float32Array ? source.length / 2 : source.samples, n);
  const { byFrame, rowTaps } = geometry(frames, n, width, height);
  const scale2 = plan.scale * plan.scale;
  let r: { frames: number; sums: Float32Array; minPower: number; maxPower: number; db: Float32Array | null };
  if (keepMatrix) {
    r = matrixAndDbColumns(inMemory(source), plan, width, byFrame);
  } else {
    r = { ...dbColumns(source, plan, width, byFrame), db: null }; // all per-bin work in the SIMD kernel
  }
  const extremes = new Float32Array([r.minPower * scale2, r.maxPower * scale2]);
  powerToDbInPlace(extremes, new Int32Array(extremes.buffer));
  return {
    freqs: n,
    frames: r.frames,
    width,
    columns: r.sums,
    rowTaps,
    min: extremes[0] as number,
    max: extremes[1] as number,
    db: r.db,
  };
}

/** The last geometry asked for on this thread: every slice of a task has the same. */
let lastGeometry: { key: string; byFrame: FrameColumns; rowTaps: Taps } | null = null;

/** Where matplotlib puts each frame (columns, weights) and each frequency row, for one slice size. */
function geometry(frames: number, freqs: number, width: number, height: number) {
  const key = `${frames}x${freqs}>${width}x${height}`;
  if (lastGeometry?.key !== key) {
    const taps = imageTaps(frames, freqs, width, height);
    const s = bySource(taps.x, frames);
    lastGeometry = { key, byFrame: { start: s.start, column: s.pixel, weight: s.weight }, rowTaps: taps.y };
  }
  return lastGeometry;
}

/** save_matrix with matplotlib rendering: frame by frame in JavaScript, keeping every dB row. */
function matrixAndDbColumns(
  iq: Float32Array,
  plan: StftPlan,
  width: number,
  m: FrameColumns,
): { frames: number; sums: Float32Array; minPower: number; maxPower: number; db: Float32Array } {
  const n = plan.n;
  const half = n / 2;
  const frames = frameCount(iq.length / 2, n);
  const sums = new Float32Array(width * n); // column-major, natural bin order, until the end
  const db = new Float32Array(n * frames);
  const scale2 = plan.scale * plan.scale;
  const row = new Float32Array(n);
  const rowBits = new Int32Array(row.buffer);
  let minPower = Infinity;
  let maxPower = -Infinity;
  forEachFrame(iq, plan, frames, (t, out, at) => {
    for (let b = 0; b < n; b++) {
      const re = out[at + 2 * b] as number;
      const im = out[at + 2 * b + 1] as number;
      const p = re * re + im * im;
      if (p < minPower) minPower = p;
      if (p > maxPower) maxPower = p;
      row[b] = p * scale2;
    }
    powerToDbInPlace(row, rowBits);
    for (let b = 0; b < n; b++) db[(b < half ? b + half : b - half) * frames + t] = row[b] as number;
    for (let e = m.start[t] as number; e < (m.start[t + 1] as number); e++) {
      const w = m.weight[e] as number;
      const c = (m.column[e] as number) * n;
      for (let b = 0; b < n; b++) sums[c + b] = (sums[c + b] as number) + w * (row[b] as number);
    }
  });
  const rows = new Float32Array(n * width);
  for (let b = 0; b < n; b++) {
    const f = b < half ? b + half : b - half;
    for (let c = 0; c < width; c++) rows[f * width + c] = sums[c * n + b] as number;
  }
  return { frames, sums: rows, minPower, maxPower, db };
}
