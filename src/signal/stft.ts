import { kernel, pffft } from './wasm/kernel.js';

export interface StftPlan {
  n: number;
  hop: number;
  window: Float64Array;
  /** The window with each value twice (I and Q), in float32 like the transform. */
  window2: Float32Array;
  /** 1 / sum(window): scipy's 'spectrum' scaling. */
  scale: number;
  /** PFFFT setup and its buffers (n complex float32 each) in the WebAssembly memory. */
  setup: number;
  input: number;
  output: number;
  work: number;
  /** For the SIMD kernel: window2 in WebAssembly memory, n float32 accumulators, 8 extremes. */
  windowPtr: number;
  acc: number;
  extremes: number;
}

/** scipy.signal.windows.hamming(n) (symmetric). */
export function hamming(n: number): Float64Array {
  const w = new Float64Array(n);
  if (n === 1) {
    w[0] = 1;
    return w;
  }
  for (let i = 0; i < n; i++) w[i] = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (n - 1));
  return w;
}

export function stftPlan(n: number): StftPlan {
  // PFFFT's complex transform needs a multiple of 16 (its SIMD width × 4).
  if (!Number.isInteger(n) || n < 16 || (n & (n - 1)) !== 0) {
    throw new RangeError(`stft_point must be a power of two ≥ 16 (got ${n})`);
  }
  const window = hamming(n);
  let sum = 0;
  for (const v of window) sum += v;
  const window2 = new Float32Array(2 * n);
  for (let j = 0; j < n; j++) window2[2 * j] = window2[2 * j + 1] = window[j] as number;
  // Plans live as long as the thread (one per STFT size, cached by their users): never freed.
  const plan: StftPlan = {
    n,
    hop: n / 2,
    window,
    window2,
    scale: 1 / sum,
    setup: newSetup(n),
    input: pffft._pffft_aligned_malloc(8 * n),
    output: pffft._pffft_aligned_malloc(8 * n),
    work: pffft._pffft_aligned_malloc(8 * n),
    windowPtr: pffft._pffft_aligned_malloc(8 * n),
    acc: pffft._pffft_aligned_malloc(4 * n),
    extremes: pffft._pffft_aligned_malloc(32),
  };
  pffft.HEAPF32.set(window2, plan.windowPtr >> 2);
  return plan;
}

function newSetup(n: number): number {
  const setup = pffft._pffft_new_setup(n, 1);
  if (setup === 0) throw new RangeError(`no FFT plan for ${n} points`);
  return setup;
}

/** Number of frames scipy produces for `length` complex samples. */
export function frameCount(length: number, n: number): number {
  const hop = n / 2;
  const padded = length + 2 * (n / 2);
  const extra = ((-(padded - n) % hop) + hop) % hop;
  return Math.floor((padded + extra - n) / hop) + 1;
}

export interface Spectrum {
  /** Frequency bins (= n). */
  freqs: number;
  /** Time frames. */
  frames: number;
  /** Row-major frequency × time, frequency axis fftshift-ed (most negative frequency first). */
  re: Float32Array;
  im: Float32Array;
}

/**
 * Complex STFT of `iq` (interleaved I, Q). Returns real and imaginary parts; `magnitudeDb` is the
 * cheaper path when only |Z| is needed.
 */
export function stft(iq: Float32Array, plan: StftPlan): Spectrum {
  const frames = frameCount(iq.length / 2, plan.n);
  const re = new Float32Array(plan.n * frames);
  const im = new Float32Array(plan.n * frames);
  forEachFrame(iq, plan, frames, (t, out, at) => {
    const half = plan.n / 2;
    for (let k = 0; k < plan.n; k++) {
      // fftshift: bin k goes to row (k + n/2) mod n
      const row = (k + half) % plan.n;
      re[row * frames + t] = (out[at + 2 * k] as number) * plan.scale;
      im[row * frames + t] = (out[at + 2 * k + 1] as number) * plan.scale;
    }
  });
  return { freqs: plan.n, frames, re, im };
}

/** Floor for 10·log10(|Z|) so silent bins give a finite value. */
export const DB_FLOOR_MAGNITUDE = 1e-12;
export const POWER_FLOOR = DB_FLOOR_MAGNITUDE ** 2; // a normal float32, so the bit tricks below hold

const DB_PER_LN = 5 / Math.LN10; // 10·log10(|Z|) = 5·log10(|Z|²) = (5 / ln 10)·ln(|Z|²)
const LN2_DB = DB_PER_LN * Math.LN2;
const FLOOR_BITS = new Int32Array(new Float32Array([POWER_FLOOR]).buffer)[0] as number;
/** ln and 2⁻²³/m₀ for m₀ = 1 + j/2048, the mantissa's top 11 bits. */
const TABLE_BITS = 11;
const LN_M0 = new Float64Array(1 << TABLE_BITS);
const ULP_OVER_M0 = new Float64Array(1 << TABLE_BITS);
for (let j = 0; j < 1 << TABLE_BITS; j++) {
  const m0 = 1 + j / (1 << TABLE_BITS);
  LN_M0[j] = Math.log(m0);
  ULP_OVER_M0[j] = 2 ** -23 / m0;
}

/**
 * In place: power |Z|² (float32) → 10·log10(|Z|), floored at DB_FLOOR_MAGNITUDE. Reads each
 * float's bits: exponent e, the mantissa's top 11 bits pick m₀ from a table, and the remaining
 * bits give r = (m − m₀)/m₀ < 2⁻¹¹, so ln m = ln m₀ + r − r²/2 with an error under 1e-11 —
 * exact to float32 — at a fraction of Math.log10's cost. `bits` is an Int32Array over the same
 * memory as `values`.
 */
export function powerToDbInPlace(values: Float32Array, bits: Int32Array, n = values.length): void {
  for (let i = 0; i < n; i++) {
    let b = bits[i] as number;
    if (b < FLOOR_BITS) b = FLOOR_BITS; // positive floats order like their bits; also catches -0
    const j = (b >>> (23 - TABLE_BITS)) & ((1 << TABLE_BITS) - 1);
    const r = (b & ((1 << (23 - TABLE_BITS)) - 1)) * (ULP_OVER_M0[j] as number);
    values[i] = ((b >> 23) - 127) * LN2_DB + DB_PER_LN * ((LN_M0[j] as number) + r - 0.5 * r * r);
  }
}

/**
 * Hands `use` each frame's row of 10·log10(|Z|), fftshift-ed (most negative frequency first).
 * The row buffer is reused: copy what you keep.
 */
export function forEachDbFrame(
  iq: Float32Array,
  plan: StftPlan,
  use: (t: number, row: Float32Array) => void,
): number {
  const frames = frameCount(iq.length / 2, plan.n);
  const { n } = plan;
  const half = n / 2;
  const scale2 = plan.scale * plan.scale;
  const row = new Float32Array(n);
  const bits = new Int32Array(row.buffer);
  forEachFrame(iq, plan, frames, (t, out, at) => {
    for (let k = 0; k < n; k++) {
      const r = out[at + 2 * k] as number;
      const i = out[at + 2 * k + 1] as number;
      row[k < half ? k + half : k - half] = (r * r + i * i) * scale2;
    }
    powerToDbInPlace(row, bits);
    use(t, row);
  });
  return frames;
}

/**
 * 10·log10(|Z|) of the STFT, frequency × time after fftshift (the matrix `save_matrix` writes).
 * |Z| below DB_FLOOR_MAGNITUDE is clamped to it (-120 dB).
 */
export function magnitudeDb(
  iq: Float32Array,
  plan: StftPlan,
): { freqs: number; frames: number; db: Float32Array } {
  const frames = frameCount(iq.length / 2, plan.n);
  const db = new Float32Array(plan.n * frames);
  forEachDbFrame(iq, plan, (t, row) => {
    for (let f = 0; f < row.length; f++) db[f * frames + t] = row[f] as number;
  });
  return { freqs: plan.n, frames, db };
}

/**
 * Windows each frame of the zero-padded signal and hands its FFT to `use`: interleaved re, im of
 * bins 0…n−1 (unscaled) at `out[at…at + 2n)`, valid until `use` returns.
 */
export function forEachFrame(
  iq: Float32Array,
  plan: StftPlan,
  frames: number,
  use: (t: number, out: Float32Array, at: number) => void,
): void {
  const { n, hop, window2 } = plan;
  const length = iq.length / 2;
  if (!Number.isInteger(length) || length < n) {
    // scipy refuses this too ("window is longer than input signal")
    throw new RangeError(`a slice needs at least stft_point = ${n} complex samples (got ${length})`);
  }
  // Read after every allocation: a growing WebAssembly memory detaches older views.
  const heap = pffft.HEAPF32;
  const input = plan.input >> 2;
  const output = plan.output >> 2;
  const lead = n / 2; // boundary='zeros'
  for (let t = 0; t < frames; t++) {
    // Frame t covers padded positions [t·hop, t·hop + n); padded position p is sample p - lead.
    const first = t * hop - lead;
    if (first >= 0 && first + n <= length) {
      const base = 2 * first;
      for (let j = 0; j < 2 * n; j++) heap[input + j] = (iq[base + j] as number) * (window2[j] as number);
    } else {
      for (let j = 0; j < n; j++) {
        const s = first + j;
        const inside = s >= 0 && s < length;
        heap[input + 2 * j] = inside ? (iq[2 * s] as number) * (window2[2 * j] as number) : 0;
        heap[input + 2 * j + 1] = inside ? (iq[2 * s + 1] as number) * (window2[2 * j] as number) : 0;
      }
    }
    pffft._pffft_transform_ordered(plan.setup, plan.input, plan.output, plan.work, 0);
    use(t, heap, output);
  }
}

/**
 * A slice's samples (interleaved I, Q float32): in memory, or `samples` complex samples that
 * `fill` writes into the view it is given (so a worker can read a file region directly into
 * WebAssembly memory, without a copy in between).
 */
export type SliceSamples = Float32Array | { samples: number; fill(target: Float32Array): void };

/** The zero-padded slice in WebAssembly memory, grown as needed and reused (one per thread). */
let padded = { ptr: 0, bytes: 0 };

/**
 * The image path of the STFT, in the SIMD kernel: for each of `columns` runs of consecutive
 * frames (frame t belongs to column ⌊t·columns / frames⌋), the sum over its frames of each bin's
 * unscaled |X|², handed to `use` as `sums[at + k]` (k in natural FFT order, valid until `use`
 * returns) with the run's frame count. Returns the frame count and the smallest and largest
 * unscaled |X|² of any bin of any frame.
 */
export function powerColumns(
  source: SliceSamples,
  plan: StftPlan,
  columns: number,
  use: (column: number, sums: Float32Array, at: number, count: number) => void,
): { frames: number; minPower: number; maxPower: number } {
  const { n, hop } = plan;
  const length = source instanceof Float32Array ? source.length / 2 : source.samples;
  if (!Number.isInteger(length) || length < n) {
    throw new RangeError(`a slice needs at least stft_point = ${n} complex samples (got ${length})`);
  }
  const frames = frameCount(length, n);
  if (!Number.isInteger(columns) || columns < 1 || columns > frames) {
    throw new RangeError(`columns must be 1–${frames} (got ${columns})`);
  }
  // boundary='zeros' and padded=True: n/2 zeros before, zeros after up to the last frame's end.
  const bytes = 8 * ((frames - 1) * hop + n);
  if (padded.bytes < bytes) {
    if (padded.ptr) pffft._pffft_aligned_free(padded.ptr);
    padded = { ptr: pffft._pffft_aligned_malloc(bytes), bytes };
    if (!padded.ptr) throw new RangeError(`no memory for a slice of ${length} samples`);
  }
  const heap = pffft.HEAPF32; // after any allocation
  const at = padded.ptr >> 2;
  heap.fill(0, at, at + n);
  const samples = heap.subarray(at + n, at + n + 2 * length);
  if (source instanceof Float32Array) samples.set(source);
  else source.fill(samples); // e.g. read from the file straight into WebAssembly memory
  heap.fill(0, at + n + 2 * length, at + bytes / 4);
  const ext = plan.extremes >> 2;
  heap.fill(Infinity, ext, ext + 4);
  heap.fill(-Infinity, ext + 4, ext + 8);
  const acc = plan.acc >> 2;
  for (let c = 0; c < columns; c++) {
    const t0 = Math.ceil((c * frames) / columns);
    const t1 = Math.ceil(((c + 1) * frames) / columns);
    heap.fill(0, acc, acc + n);
    kernel.accumulate(
      padded.ptr + t0 * hop * 8,
      t1 - t0,
      hop * 8,
      plan.windowPtr,
      8 * n,
      plan.input,
      plan.output,
      plan.work,
      plan.setup,
      plan.acc,
      plan.extremes,
    );
    use(c, heap, acc, t1 - t0);
  }
  return {
    frames,
    minPower: Math.min(...heap.subarray(ext, ext + 4)),
    maxPower: Math.max(...heap.subarray(ext + 4, ext + 8)),
  };
}
