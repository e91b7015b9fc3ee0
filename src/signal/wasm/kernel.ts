/**
 * The WebAssembly this service runs: PFFFT and our own kernel (spectrum.wat), sharing one memory.
 * Loaded once per thread (top-level await).
 */
import fs from 'node:fs';
import PFFFT from '@echogarden/pffft-wasm/simd';
import { RESAMPLE_WASM } from './resample-wasm.js';
import { SPECTRUM_WASM } from './spectrum-wasm.js';

/**
 * PFFFT (SIMD build, compiled to WebAssembly): ~3× faster than fft.js per 1024-point transform
 * here, float32 like scipy's complex64 STFT of float32 input. Loaded once per thread. We
 * instantiate it ourselves to get its memory, which our own kernel (wasm/spectrum.wat) shares.
 */
let memory: WebAssembly.Memory | null = null;
// The glue only learns of success; a failure to load is raced in so it rejects instead of hanging.
let failLoad: (err: unknown) => void = () => undefined;
const loadFailed = new Promise<never>((_, reject) => (failLoad = reject));
export const pffft = await Promise.race([
  PFFFT({
    instantiateWasm(
      imports: WebAssembly.Imports,
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) {
      const url = new URL('pffft.wasm', import.meta.resolve('@echogarden/pffft-wasm/simd'));
      WebAssembly.instantiate(fs.readFileSync(url), imports).then(({ instance, module }) => {
        memory = Object.values(instance.exports).find((v) => v instanceof WebAssembly.Memory) ?? null;
        receive(instance, module);
      }, failLoad);
      return {};
    },
  }),
  loadFailed,
]);

/** Our kernel (spectrum.wat): the STFT's image paths in SIMD, and the colouring of rows. */
export const kernel = await (async () => {
  if (!memory) throw new Error('PFFFT did not expose its WebAssembly memory');
  // The first call swaps the glue's wrapper for the raw export, which another module can import.
  const probe = pffft._pffft_new_setup(16, 1);
  const buf = pffft._pffft_aligned_malloc(3 * 128);
  pffft._pffft_transform_ordered(probe, buf, buf + 128, buf + 256, 0);
  pffft._pffft_aligned_free(buf);
  pffft._pffft_destroy_setup(probe);
  const { instance } = await WebAssembly.instantiate(SPECTRUM_WASM, {
    env: { memory, fft: pffft._pffft_transform_ordered },
  });
  return instance.exports as unknown as {
    accumulate(
      signal: number,
      count: number,
      hopBytes: number,
      window: number,
      frameBytes: number,
      input: number,
      output: number,
      work: number,
      setup: number,
      acc: number,
      extremes: number,
    ): void;
    accumulateDb(
      signal: number,
      count: number,
      hopBytes: number,
      window: number,
      frameBytes: number,
      input: number,
      output: number,
      work: number,
      setup: number,
      row: number,
      acc: number,
      extremes: number,
      starts: number,
      columns: number,
      weights: number,
      floor: number,
      offset: number,
    ): void;
    transposeShift(src: number, n: number, cols: number, dst: number): void;
    colourRow(
      base: number,
      stride: number,
      offsets: number,
      weights: number,
      ntaps: number,
      out: number,
      count: number,
      min: number,
      k: number,
      lut: number,
    ): void;
  };
})();

/** Pillow's bilinear resample passes (resample.wat), on the same memory. */
export const resample = (
  await WebAssembly.instantiate(RESAMPLE_WASM, { env: { memory: memory as unknown as WebAssembly.Memory } })
).instance.exports as unknown as {
  horizontal3(
    src: number,
    srcStride: number,
    rows: number,
    out: number,
    outW: number,
    bounds: number,
    weights: number,
    ksize: number,
  ): void;
  vertical(
    rows: number,
    stride: number,
    out: number,
    outH: number,
    bounds: number,
    weights: number,
    ksize: number,
    rowOffset: number,
    acc: number,
  ): void;
};

/** A buffer in the shared WebAssembly memory that grows on demand and is reused (one per thread). */
export interface Scratch {
  ptr: number;
  bytes: number;
}

/**
 * Makes `scratch` hold at least `bytes`, 16-byte aligned. Read pffft.HEAPF32 again afterwards:
 * growing the memory detaches older views.
 */
export function ensureScratch(scratch: Scratch, bytes: number, what: string): number {
  if (scratch.bytes < bytes) {
    if (scratch.ptr) pffft._pffft_aligned_free(scratch.ptr);
    scratch.ptr = pffft._pffft_aligned_malloc(bytes);
    scratch.bytes = scratch.ptr ? bytes : 0;
    if (!scratch.ptr) throw new RangeError(`no memory for ${what} (${bytes} bytes)`);
  }
  return scratch.ptr;
}
