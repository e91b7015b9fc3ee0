/**
 * Pillow's bilinear resize, reproduced bit for bit: what torchvision's `Resize` does to a PIL
 * image when a model is trained (python/rfuav_torch), so inference here sees exactly the pixels
 * training saw. libvips' (sharp's) linear kernel differs from it by up to ~20 levels on real
 * spectrograms.
 *
 * The algorithm is Pillow's ImagingResample (Resample.c): separable, horizontal pass first over
 * only the rows the vertical pass needs; a triangle filter whose support grows with the
 * reduction factor (antialiasing); weights normalised, then turned into 22-bit fixed point; each
 * pass rounds and clips to 8 bits.
 *
 * RGB goes through the WebAssembly SIMD passes (wasm/resample.wat: ~10× faster than the
 * JavaScript here); other channel counts through the JavaScript, which is also the reference the
 * tests hold both to (with Pillow itself).
 */
import { ensureScratch, pffft, resample, type Scratch } from '../../signal/wasm/kernel.js';

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const MAX = (1 << PRECISION_BITS) * 256;

interface Coefficients {
  ksize: number;
  /** Per output position: first input index and tap count. */
  bounds: Int32Array;
  /** ksize fixed-point weights per output position. */
  weights: Int32Array;
}

function bilinear(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1). */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filterScale; // bilinear support 1.0 × filterscale
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinear((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax && ww !== 0 ? (k[x] as number) / ww : 0;
      weights[xx * ksize + x] =
        w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  if (v >= MAX) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** The JavaScript implementation, any channel count: the reference the WebAssembly one is held to. */
export function pilBilinearResizeJs(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
): Uint8Array {
  if (src.length !== width * height * channels) throw new Error('pixel buffer does not match its size');
  const needH = outW !== width;
  const needV = outH !== height;
  const h = coefficients(width, outW);
  const v = coefficients(height, outH);
  let rows = src;
  let rowsH = height;
  let firstRow = 0;
  if (needH) {
    // Only the source rows the vertical pass reads.
    firstRow = v.bounds[0] as number;
    const lastRow = (v.bounds[outH * 2 - 2] as number) + (v.bounds[outH * 2 - 1] as number);
    rowsH = needV ? lastRow - firstRow : height;
    if (!needV) firstRow = 0;
    rows = new Uint8Array(outW * rowsH * channels);
    const { bounds, weights, ksize } = h;
    // One channel at a time with a plain accumulator: V8 keeps it in a register (a per-pixel
    // accumulator array was ~5× slower). Pillow's sums fit in 32 bits; so do these.
    for (let yy = 0; yy < rowsH; yy++) {
      const inRow = (yy + firstRow) * width * channels;
      const outRow = yy * outW * channels;
      for (let c = 0; c < channels; c++) {
        for (let xx = 0; xx < outW; xx++) {
          const taps = bounds[xx * 2 + 1] as number;
          const kb = xx * ksize;
          let p = inRow + (bounds[xx * 2] as number) * channels + c;
          let ss = HALF;
          for (let x = 0; x < taps; x++, p += channels)
            ss += (src[p] as number) * (weights[kb + x] as number);
          rows[outRow + xx * channels + c] = clip8(ss);
        }
      }
    }
  }
  if (!needV) return needH ? rows : src.slice();
  const rowWidth = needH ? outW : width;
  const out = new Uint8Array(rowWidth * outH * channels);
  const stride = rowWidth * channels;
  // Tap by tap over whole rows: sequential memory, one accumulator row.
  const acc = new Float64Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = (v.bounds[yy * 2] as number) - (needH ? firstRow : 0);
    const taps = v.bounds[yy * 2 + 1] as number;
    const kb = yy * v.ksize;
    acc.fill(HALF);
    for (let y = 0; y < taps; y++) {
      const w = v.weights[kb + y] as number;
      const base = (y + ymin) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i] as number) + (rows[base + i] as number) * w;
    }
    const outRow = yy * stride;
    for (let i = 0; i < stride; i++) out[outRow + i] = clip8(acc[i] as number);
  }
  return out;
}

/** Scratch in the shared WebAssembly memory, reused (one per thread). */
const scratch: Scratch = { ptr: 0, bytes: 0 };
const align16 = (n: number) => (n + 31) & ~15; // room for 4-byte spills past the end, aligned

/**
 * Resizes interleaved 8-bit pixels (`channels` per pixel) to `outW`×`outH` exactly as
 * `PIL.Image.resize((outW, outH), Image.BILINEAR)` does.
 */
export function pilBilinearResize(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
): Uint8Array {
  if (src.length !== width * height * channels) throw new Error('pixel buffer does not match its size');
  if (channels !== 3) return pilBilinearResizeJs(src, width, height, channels, outW, outH);
  const needH = outW !== width;
  const needV = outH !== height;
  if (!needH && !needV) return src.slice();
  const h = coefficients(width, outW);
  const v = coefficients(height, outH);
  const firstRow = needH && needV ? (v.bounds[0] as number) : 0;
  const rowsH =
    needH && needV
      ? (v.bounds[outH * 2 - 2] as number) + (v.bounds[outH * 2 - 1] as number) - firstRow
      : height;
  const rowWidth = needH ? outW : width;
  const stride = rowWidth * 3;
  const sizes = [
    src.length, // source
    needH && needV ? outW * rowsH * 3 : 0, // after the horizontal pass
    stride * outH, // result
    4 * (stride + 4), // vertical accumulators
    h.bounds.byteLength,
    h.weights.byteLength,
    v.bounds.byteLength,
    v.weights.byteLength,
  ].map(align16);
  const base = ensureScratch(
    scratch,
    sizes.reduce((a, b) => a + b, 0),
    `a ${width}x${height} image`,
  );
  const at: number[] = [];
  sizes.reduce((offset, size) => (at.push(offset), offset + size), base);
  const [srcP, rowsP, outP, accP, hbP, hwP, vbP, vwP] = at as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const heap = new Uint8Array(pffft.HEAPF32.buffer);
  heap.set(src, srcP);
  heap.set(new Uint8Array(h.bounds.buffer), hbP);
  heap.set(new Uint8Array(h.weights.buffer), hwP);
  heap.set(new Uint8Array(v.bounds.buffer), vbP);
  heap.set(new Uint8Array(v.weights.buffer), vwP);
  if (needH && needV) {
    resample.horizontal3(srcP + firstRow * width * 3, width * 3, rowsH, rowsP, outW, hbP, hwP, h.ksize);
    resample.vertical(rowsP, stride, outP, outH, vbP, vwP, v.ksize, firstRow, accP);
  } else if (needH) {
    resample.horizontal3(srcP, width * 3, height, outP, outW, hbP, hwP, h.ksize);
  } else {
    resample.vertical(srcP, stride, outP, outH, vbP, vwP, v.ksize, 0, accP);
  }
  return heap.slice(outP, outP + stride * outH);
}
