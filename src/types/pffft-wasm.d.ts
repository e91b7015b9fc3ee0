// The package ships no types; these are the exports the STFT uses (see src/signal/stft.ts).
declare module '@echogarden/pffft-wasm/simd' {
  export interface PffftModule {
    HEAPF32: Float32Array;
    /** kind 0 = real, 1 = complex. */
    _pffft_new_setup(n: number, kind: 0 | 1): number;
    _pffft_destroy_setup(setup: number): void;
    /** direction 0 = forward; output in natural order, unscaled, e^{-i} sign. */
    _pffft_transform_ordered(
      setup: number,
      input: number,
      output: number,
      work: number,
      direction: 0 | 1,
    ): void;
    /** 16-byte aligned, as the SIMD build needs. */
    _pffft_aligned_malloc(bytes: number): number;
    _pffft_aligned_free(ptr: number): void;
  }
  const PFFFT: (moduleArg?: object) => Promise<PffftModule>;
  export default PFFFT;
}
