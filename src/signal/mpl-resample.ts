/**
 * matplotlib's image resampling as geometry: which matrix cells each output pixel averages, and
 * with which weights, when `imshow` draws a matrix bigger or smaller than its axes with its
 * default interpolation ('antialiased') on the Agg backend — the reference pipeline's pictures.
 *
 * What matplotlib does (3.6, image.py `_make_image` and `_resample`, Agg's span generators):
 * the data are scaled to [0.1, 0.9] from their own min–max, resampled *in data space*, unscaled,
 * normalised and only then coloured (N = 256). Resampling is 'nearest' when the image is
 * enlarged more than 3× (or exactly 1× or 2×) on both axes, else a Hanning filter, which Agg's
 * `span_image_resample_gray_affine` widens by the reduction factor when shrinking (an area
 * filter). Its details, kept here because they show in the pictures:
 * - the filter is a 512-entry int16 table over [-1, 1] (`image_filter_lut`, normalised so that
 *   the weights at each subpixel offset sum to 2^14), sampled at steps of 256/scale;
 * - positions are in 1/256 of a source cell; an output pixel's centre is taken at
 *   (x + 0.5)·in/out, the filter starting at that point + 0.5 − scale cells;
 * - the scale is at least 1 and, with both axes together, limited: when sx·sy > 200, sx becomes
 *   200/sy (so at 224×224 from 19 533 frames only about half of the frames are looked at);
 * - cells beyond the edges are reflected (…, 1, 0 | 0, 1, …);
 * - the result is the weighted mean, Σ v·w / Σ w.
 * Two-dimensional weights are the rounded products of the two axes' weights; we apply the axes
 * one after the other (separable), which differs by under 1e-4 of the range: test fixtures
 * rendered by matplotlib match to a mean |Δ| of a few thousandths of a level per channel.
 */

export type Interpolation = 'hanning' | 'nearest';

/** Taps of one axis, per output pixel: `index[start[o] … start[o + 1])`, weights summing to 1. */
export interface Taps {
  start: Int32Array;
  index: Int32Array;
  weight: Float64Array;
}

const SUBPIXEL = 256;
const FILTER_ONE = 1 << 14;
const SCALE_LIMIT = 200;

/** agg::iround / uround. */
const iround = (v: number) => (v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5));

/** Agg's Hanning table (image_filter_lut::calculate + normalize, radius 1, diameter 2). */
export const HANNING_LUT: Int16Array = (() => {
  const w = new Int16Array(2 * SUBPIXEL);
  for (let i = 0; i < SUBPIXEL; i++) {
    const y = 0.5 + 0.5 * Math.cos((Math.PI * i) / SUBPIXEL);
    w[SUBPIXEL + i] = w[SUBPIXEL - i] = iround(y * FILTER_ONE);
  }
  w[0] = w[2 * SUBPIXEL - 1] as number;
  let flip = 1;
  for (let i = 0; i < SUBPIXEL; i++) {
    for (;;) {
      let sum = (w[i] as number) + (w[SUBPIXEL + i] as number);
      if (sum === FILTER_ONE) break;
      const k = FILTER_ONE / sum;
      w[i] = iround((w[i] as number) * k);
      w[SUBPIXEL + i] = iround((w[SUBPIXEL + i] as number) * k);
      sum = (w[i] as number) + (w[SUBPIXEL + i] as number) - FILTER_ONE;
      const inc = sum > 0 ? -1 : 1;
      for (let j = 0; j < 2 && sum !== 0; j++) {
        flip ^= 1;
        const at = (flip ? 1 + (j >> 1) : 1 - (j >> 1)) * SUBPIXEL + i;
        if ((w[at] as number) < FILTER_ONE) {
          w[at] = (w[at] as number) + inc;
          sum += inc;
        }
      }
    }
  }
  for (let i = 0; i < SUBPIXEL; i++) w[SUBPIXEL + i] = w[SUBPIXEL - i] as number;
  w[0] = w[2 * SUBPIXEL - 1] as number;
  return w;
})();

/** `_resample`'s rule for 'antialiased': nearest only when both axes are enlarged > 3×, 1× or 2×. */
export function antialiasedInterpolation(
  inW: number,
  inH: number,
  outW: number,
  outH: number,
): Interpolation {
  const enlarged = (out: number, inn: number) => out > 3 * inn || out === inn || out === 2 * inn;
  return enlarged(outW, inW) && enlarged(outH, inH) ? 'nearest' : 'hanning';
}

/** span_image_resample_affine::prepare: the filter's width in source cells on each axis. */
export function filterScales(sx: number, sy: number): [number, number] {
  if (sx * sy > SCALE_LIMIT) {
    sx = (sx * SCALE_LIMIT) / (sx * sy);
    sy = (sy * SCALE_LIMIT) / (sx * sy); // with the new sx, as Agg does: sy is unchanged
  }
  const clamp = (s: number) => Math.min(SCALE_LIMIT, Math.max(1, s));
  return [clamp(sx), clamp(sy)];
}

/** Agg's wrap_mode_reflect. */
function reflect(i: number, size: number): number {
  const m = ((i % (2 * size)) + 2 * size) % (2 * size);
  return m >= size ? 2 * size - m - 1 : m;
}

/**
 * The source cells and weights of each of `outSize` pixels along one axis of `inSize` cells
 * (`scale` from filterScales for this axis).
 */
export function axisTaps(inSize: number, outSize: number, scale: number, kind: Interpolation): Taps {
  const ratio = inSize / outSize;
  const start = new Int32Array(outSize + 1);
  const index: number[] = [];
  const weight: number[] = [];
  const rx = iround(scale * SUBPIXEL);
  const rxInv = iround(SUBPIXEL / scale);
  for (let o = 0; o < outSize; o++) {
    start[o] = index.length;
    if (kind === 'nearest') {
      index.push(Math.min(inSize - 1, Math.floor((o + 0.5) * ratio)));
      weight.push(1);
      continue;
    }
    const s = iround((o + 0.5) * ratio * SUBPIXEL) + SUBPIXEL / 2 - rx;
    const first = s >> 8;
    let hr = ((SUBPIXEL - 1 - (s & (SUBPIXEL - 1))) * rxInv) >> 8;
    const from = weight.length;
    let total = 0;
    for (let j = 0; ; j++) {
      const w = HANNING_LUT[hr] as number;
      index.push(reflect(first + j, inSize));
      weight.push(w);
      total += w;
      hr += rxInv;
      if (hr >= 2 * SUBPIXEL) break;
    }
    for (let j = from; j < weight.length; j++) weight[j] = (weight[j] as number) / total;
  }
  start[outSize] = index.length;
  return { start, index: Int32Array.from(index), weight: Float64Array.from(weight) };
}

/** Both axes' taps for an inW × inH matrix drawn at outW × outH, as matplotlib would. */
export function imageTaps(
  inW: number,
  inH: number,
  outW: number,
  outH: number,
): { x: Taps; y: Taps; kind: Interpolation } {
  const kind = antialiasedInterpolation(inW, inH, outW, outH);
  const [sx, sy] = filterScales(inW / outW, inH / outH);
  return { x: axisTaps(inW, outW, sx, kind), y: axisTaps(inH, outH, sy, kind), kind };
}

/**
 * The same taps seen from the source side: for each source cell, the output pixels it feeds and
 * with which weight (`pixel[start[i] … start[i + 1])`), so a stream of cells (STFT frames) can be
 * added into the pixels as it is produced.
 */
export function bySource(
  taps: Taps,
  inSize: number,
): { start: Int32Array; pixel: Int32Array; weight: Float32Array } {
  const counts = new Int32Array(inSize + 1);
  for (const i of taps.index) counts[i + 1] = (counts[i + 1] as number) + 1;
  for (let i = 0; i < inSize; i++) counts[i + 1] = (counts[i + 1] as number) + (counts[i] as number);
  const start = counts.slice();
  const fill = counts.slice(0, inSize);
  const pixel = new Int32Array(taps.index.length);
  const weight = new Float32Array(taps.index.length);
  const outSize = taps.start.length - 1;
  for (let o = 0; o < outSize; o++) {
    for (let e = taps.start[o] as number; e < (taps.start[o + 1] as number); e++) {
      const i = taps.index[e] as number;
      const at = fill[i] as number;
      fill[i] = at + 1;
      pixel[at] = o;
      weight[at] = taps.weight[e] as number;
    }
  }
  return { start, pixel, weight };
}
