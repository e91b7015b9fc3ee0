;; The STFT's hot loop for spectrogram images, in WebAssembly SIMD (f32x4), sharing PFFFT's
;; memory and calling its transform directly. Compiled by scripts/build-wasm.mjs into
;; spectrum-wasm.ts (committed; a test checks it matches this source).
(module
  (import "env" "memory" (memory 0))
  ;; pffft_transform_ordered(setup, input, output, work, direction)
  (import "env" "fft" (func $fft (param i32 i32 i32 i32 i32)))

  ;; For `count` frames starting at `signal` (interleaved complex float32, frames `hopBytes`
  ;; apart): multiply by `window` (interleaved, one value per I and per Q) into `in`, transform
  ;; into `out`, and add each bin's |X|^2 to `acc` (n float32, natural bin order). The smallest and
  ;; largest |X|^2 seen are folded into `extremes` (4 lanes of min, then 4 lanes of max).
  ;; `frameBytes` = 8*n, a multiple of 32; all pointers 16-byte aligned.
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
        ;; in = signal frame x window
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
        ;; acc[k] += re^2 + im^2, four bins (32 bytes of output) at a time
        (local.set $i (i32.const 0))
        (block $pdone
          (loop $pl
            (br_if $pdone (i32.ge_u (local.get $i) (local.get $frameBytes)))
            (local.set $v0 (v128.load (i32.add (local.get $out) (local.get $i))))
            (local.set $v1 (v128.load offset=16 (i32.add (local.get $out) (local.get $i))))
            (local.set $v0 (f32x4.mul (local.get $v0) (local.get $v0)))
            (local.set $v1 (f32x4.mul (local.get $v1) (local.get $v1)))
            ;; (re0^2 im0^2 re1^2 im1^2), (re2^2 im2^2 re3^2 im3^2) -> re^2 lanes + im^2 lanes
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
;; One image row: for each of `count` columns, v = a[c]*(1 - w) + b[c]*w (float32 rows a and
  ;; b, computed in float64), q = (v - min)*k, colour index 255 if q >= 255, floor(q) if q > 0, else 0;
  ;; lut[index] (RGB0 as an i32) stored at out + 3c. Each store writes one byte past its pixel,
  ;; which the next pixel overwrites: `out` needs one spare byte at its end.
  (func (export "colourRow")
    (param $a i32) (param $b i32) (param $w f64) (param $out i32) (param $count i32)
    (param $min f64) (param $k f64) (param $lut i32)
    (local $end i32) (local $q f64) (local $i i32)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $count) (i32.const 2))))
    (block $done
      (loop $c
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $q
          (f64.mul
            (f64.sub
              (f64.add
                (f64.mul (f64.promote_f32 (f32.load (local.get $a))) (f64.sub (f64.const 1) (local.get $w)))
                (f64.mul (f64.promote_f32 (f32.load (local.get $b))) (local.get $w)))
              (local.get $min))
            (local.get $k)))
        (local.set $i
          (if (result i32) (f64.ge (local.get $q) (f64.const 255))
            (then (i32.const 255))
            (else
              (if (result i32) (f64.gt (local.get $q) (f64.const 0))
                (then (i32.trunc_f64_s (local.get $q)))
                (else (i32.const 0))))))
        (i32.store (local.get $out) (i32.load (i32.add (local.get $lut) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 3)))
        (br $c))))
)
