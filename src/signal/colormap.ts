/**
 * Colormaps as 256-entry RGB lookup tables, built the way matplotlib builds its
 * LinearSegmentedColormap tables (linear interpolation between anchor points, N = 256), then
 * converted to bytes as matplotlib does (`(lut * 255).astype(uint8)`, i.e. truncation). Checked
 * entry by entry against matplotlib's own table (test/fixtures/colormap-jet.json).
 */

type Segment = readonly (readonly [number, number, number])[];

/** matplotlib's `_jet_data`. */
const JET: Record<'red' | 'green' | 'blue', Segment> = {
  red: [
    [0, 0, 0],
    [0.35, 0, 0],
    [0.66, 1, 1],
    [0.89, 1, 1],
    [1, 0.5, 0.5],
  ],
  green: [
    [0, 0, 0],
    [0.125, 0, 0],
    [0.375, 1, 1],
    [0.64, 1, 1],
    [0.91, 0, 0],
    [1, 0, 0],
  ],
  blue: [
    [0, 0.5, 0.5],
    [0.11, 1, 1],
    [0.34, 1, 1],
    [0.65, 0, 0],
    [1, 0, 0],
  ],
};

/**
 * matplotlib.colors._create_lookup_table for gamma = 1, with the same floating-point steps
 * (anchors scaled by N - 1, grid from numpy.linspace), so truncation to bytes agrees exactly.
 */
function channel(seg: Segment, n: number): Float64Array {
  const out = new Float64Array(n);
  const xs = seg.map((s) => s[0] * (n - 1));
  const step = 1 / (n - 1); // numpy.linspace(0, 1, n): i * step
  out[0] = (seg[0] as readonly number[])[2] as number;
  out[n - 1] = (seg[seg.length - 1] as readonly number[])[1] as number;
  for (let i = 1; i < n - 1; i++) {
    const x = (n - 1) * (i * step);
    // numpy.searchsorted(xs, x), side='left': first anchor ≥ x
    let j = 0;
    while (j < xs.length && (xs[j] as number) < x) j++;
    const x0 = xs[j - 1] as number;
    const x1 = xs[j] as number;
    const y0 = (seg[j - 1] as readonly number[])[2] as number; // y1 of the anchor on the left
    const y1 = (seg[j] as readonly number[])[1] as number; // y0 of the anchor on the right
    const v = ((x - x0) / (x1 - x0)) * (y1 - y0) + y0;
    out[i] = Math.min(1, Math.max(0, v));
  }
  return out;
}

function table(data: Record<'red' | 'green' | 'blue', Segment>): Uint8Array {
  const n = 256;
  const r = channel(data.red, n);
  const g = channel(data.green, n);
  const b = channel(data.blue, n);
  const lut = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    lut[3 * i] = Math.trunc((r[i] as number) * 255);
    lut[3 * i + 1] = Math.trunc((g[i] as number) * 255);
    lut[3 * i + 2] = Math.trunc((b[i] as number) * 255);
  }
  return lut;
}

export const COLORMAPS = { jet: table(JET) } as const;
export type ColormapName = keyof typeof COLORMAPS;

/**
 * matplotlib's value → entry rule for N = 256 on [min, max]: floor((v − min) · 256 / (max − min)),
 * the maximum mapping to the last entry. `toIndex` is 256 / (max − min) (0 for a flat range).
 * spectrum.wat's colourRow does the same arithmetic (tested byte for byte).
 */
export function lutIndex(v: number, min: number, toIndex: number): number {
  const q = (v - min) * toIndex;
  return q >= 255 ? 255 : q > 0 ? Math.floor(q) : 0;
}

/** Image row y (0 = top) of `height` → the fractional fftshift-ed frequency row it samples. */
export function sourceRow(y: number, height: number, freqs: number): number {
  return Math.min(freqs - 1, Math.max(0, ((height - 1 - y + 0.5) * freqs) / height - 0.5));
}
