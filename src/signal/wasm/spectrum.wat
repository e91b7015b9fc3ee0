;; The STFT's hot loop for spectrogram images, in WebAssembly SIMD (f32x4), sharing PFFFT's
;; memory and calling its transform directly. Compiled by scripts/build-wasm.mjs into
;; spectrum-wasm.ts (committed; a test checks it matches this source).
(module
  (import "env" "memory" (memory 0))
  ;; pffft_transform_ordered(setup, input, output, work, direction)
  (import "env" "fft" (func $fft (param i32 i32 i32 i32 i32)))

  ;; For `count` frames starting at `signal` (interleaved complex float32, frames `hopBytes`
  ;; apart): multiply by `window` (interleaved, one value per I and per Q) into `in`, transform
  ;; into `out`, and add each bin's |X|² to `acc` (n float32, natural bin order). The smallest and
  ;; largest |X|² seen are folded into `extremes` (4 lanes of min, then 4 lanes of max).
  ;; `frameBytes` = 8·n, a multiple of 32; all pointers 16-byte aligned.
  (func (export "accumulate")
    (param $signal i32) (param $count i32) (param $hopBytes i32)
    (param $window i32) (param $frameBytes i32)
    (param $in i32) (param $out i32) (param $work i32) (param $setup i32)
    (param $acc i32) (param $extremes i32)
    (local $f i32) (local $i i32) (local $src i32) (local $a i32)
    (local $v0 v128) (local $v1 v128) (local $p v128) (local $lo v128) (local $hi v128)
    (local.set $lo (v128.load (local.get $extremes)))
    (local.set $hi (v128.load offset=16 (local.get $extremes)))
    (local.set $src (local.get $signal))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $f) (local.get $count)))
        ;; in = signal frame × window
        (local.set $i (i32.const 0))
        (block $wdone
          (loop $w
            (br_if $wdone (i32.ge_u (local.get $i) (local.get $frameBytes)))
            (v128.store (i32.add (local.get $in) (local.get $i))
              (f32x4.mul
                (v128.load (i32.add (local.get $src) (local.get $i)))
                (v128.load (i32.add (local.get $window) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $w)))
        (call $fft (local.get $setup) (local.get $in) (local.get $out) (local.get $work) (i32.const 0))
        ;; acc[k] += re² + im², four bins (32 bytes of output) at a time
        (local.set $i (i32.const 0))
        (block $pdone
          (loop $pl
            (br_if $pdone (i32.ge_u (local.get $i) (local.get $frameBytes)))
            (local.set $v0 (v128.load (i32.add (local.get $out) (local.get $i))))
            (local.set $v1 (v128.load offset=16 (i32.add (local.get $out) (local.get $i))))
            (local.set $v0 (f32x4.mul (local.get $v0) (local.get $v0)))
            (local.set $v1 (f32x4.mul (local.get $v1) (local.get $v1)))
            ;; (re0² im0² re1² im1²), (re2² im2² re3² im3²) → re² lanes + im² lanes
            (local.set $p
              (f32x4.add
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1))
                (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1))))
            (local.set $a (i32.add (local.get $acc) (i32.shr_u (local.get $i) (i32.const 1))))
            (v128.store (local.get $a) (f32x4.add (v128.load (local.get $a)) (local.get $p)))
            (local.set $lo (f32x4.min (local.get $lo) (local.get $p)))
            (local.set $hi (f32x4.max (local.get $hi) (local.get $p)))
            (local.set $i (i32.add (local.get $i) (i32.const 32)))
            (br $pl)))
        (local.set $src (i32.add (local.get $src) (local.get $hopBytes)))
        (local.set $f (i32.add (local.get $f) (i32.const 1)))
        (br $frame)))
    (v128.store (local.get $extremes) (local.get $lo))
    (v128.store offset=16 (local.get $extremes) (local.get $hi)))
)
