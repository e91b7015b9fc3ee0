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
;; The image path of matplotlib-equal rendering: for `count` frames (as in accumulate), each
  ;; bin's |X|^2 (extremes folded as there) becomes dB, 10*log10|Z| = ln(max(|X|^2, floor))*5/ln 10
  ;; + offset (`floor` and `offset` carry the transform's scaling), into `row` (n float32, natural
  ;; bin order); then the frame's row is added, weighted, to each image column it falls in: for
  ;; entry e in starts[f] .. starts[f+1] (i32), acc + columns[e] (a byte offset, i32) +=
  ;; weights[e] (f32) * row. So a 19 533-frame slice reaches its 1920 columns in one pass, without
  ;; the frames' matrix.
  ;;
  ;; ln x, for x a positive normal float32 (the floor keeps it one): x = 2^e * m with m in
  ;; [2/3, 4/3) (the exponent taken from the bits of x minus those of 2/3), then
  ;; ln m = P(m - 1), P a degree-5 least-squares fit of ln(1 + u) on u in [-1/3, 1/3] (Chebyshev
  ;; nodes): |error| < 3e-5 dB over the range (test/unit/stft.test.ts checks < 1e-3 dB).
  (func (export "accumulateDb")
    (param $signal i32) (param $count i32) (param $hopBytes i32)
    (param $window i32) (param $frameBytes i32)
    (param $in i32) (param $out i32) (param $work i32) (param $setup i32)
    (param $row i32) (param $acc i32) (param $extremes i32)
    (param $starts i32) (param $columns i32) (param $weights i32)
    (param $floor f32) (param $offset f32)
    (local $f i32) (local $i i32) (local $src i32) (local $e i32) (local $eEnd i32)
    (local $dst i32) (local $rowBytes i32)
    (local $v0 v128) (local $v1 v128) (local $p v128) (local $lo v128) (local $hi v128)
    (local $x v128) (local $u v128) (local $fl v128) (local $off v128) (local $w v128)
    (local.set $lo (v128.load (local.get $extremes)))
    (local.set $hi (v128.load offset=16 (local.get $extremes)))
    (local.set $fl (f32x4.splat (local.get $floor)))
    (local.set $off (f32x4.splat (local.get $offset)))
    (local.set $rowBytes (i32.shr_u (local.get $frameBytes) (i32.const 1)))
    (local.set $src (local.get $signal))
    (block $done
      (loop $frame
        (br_if $done (i32.ge_u (local.get $f) (local.get $count)))
        (local.set $i (i32.const 0))
        (block $wdone
          (loop $wl
            (br_if $wdone (i32.ge_u (local.get $i) (local.get $frameBytes)))
            (v128.store (i32.add (local.get $in) (local.get $i))
              (f32x4.mul
                (v128.load (i32.add (local.get $src) (local.get $i)))
                (v128.load (i32.add (local.get $window) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $wl)))
        (call $fft (local.get $setup) (local.get $in) (local.get $out) (local.get $work) (i32.const 0))
        ;; row[k] = dB of re^2 + im^2, four bins (32 bytes of output) at a time
        (local.set $i (i32.const 0))
        (block $pdone
          (loop $pl
            (br_if $pdone (i32.ge_u (local.get $i) (local.get $frameBytes)))
            (local.set $v0 (v128.load (i32.add (local.get $out) (local.get $i))))
            (local.set $v1 (v128.load offset=16 (i32.add (local.get $out) (local.get $i))))
            (local.set $v0 (f32x4.mul (local.get $v0) (local.get $v0)))
            (local.set $v1 (f32x4.mul (local.get $v1) (local.get $v1)))
            (local.set $p
              (f32x4.add
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1))
                (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1))))
            (local.set $lo (f32x4.min (local.get $lo) (local.get $p)))
            (local.set $hi (f32x4.max (local.get $hi) (local.get $p)))
            ;; x = max(p, floor); e = (bits(x) - bits(2/3)) >> 23; u = (x / 2^e) - 1
            (local.set $x (f32x4.max (local.get $p) (local.get $fl)))
            (local.set $v0
              (i32x4.shr_s (i32x4.sub (local.get $x) (v128.const i32x4 0x3f2aaaab 0x3f2aaaab 0x3f2aaaab 0x3f2aaaab))
                (i32.const 23)))
            (local.set $u
              (f32x4.sub
                (i32x4.sub (local.get $x) (i32x4.shl (local.get $v0) (i32.const 23)))
                (v128.const f32x4 1 1 1 1)))
            ;; P(u) = u*(c1 + u*(c2 + u*(c3 + u*(c4 + u*c5))))
            (local.set $v1 (v128.const f32x4 0.23122212290763855 0.23122212290763855 0.23122212290763855 0.23122212290763855))
            (local.set $v1 (f32x4.add (f32x4.mul (local.get $v1) (local.get $u))
              (v128.const f32x4 -0.2786063551902771 -0.2786063551902771 -0.2786063551902771 -0.2786063551902771)))
            (local.set $v1 (f32x4.add (f32x4.mul (local.get $v1) (local.get $u))
              (v128.const f32x4 0.33153146505355835 0.33153146505355835 0.33153146505355835 0.33153146505355835)))
            (local.set $v1 (f32x4.add (f32x4.mul (local.get $v1) (local.get $u))
              (v128.const f32x4 -0.49897417426109314 -0.49897417426109314 -0.49897417426109314 -0.49897417426109314)))
            (local.set $v1 (f32x4.add (f32x4.mul (local.get $v1) (local.get $u))
              (v128.const f32x4 1.0000255107879639 1.0000255107879639 1.0000255107879639 1.0000255107879639)))
            (local.set $v1 (f32x4.mul (local.get $v1) (local.get $u)))
            ;; dB = (e*ln 2 + P(u)) * 5/ln 10 + offset
            (local.set $v1
              (f32x4.add
                (f32x4.mul
                  (f32x4.add
                    (f32x4.mul (f32x4.convert_i32x4_s (local.get $v0))
                      (v128.const f32x4 0.6931471805599453 0.6931471805599453 0.6931471805599453 0.6931471805599453))
                    (local.get $v1))
                  (v128.const f32x4 2.1714724095162588 2.1714724095162588 2.1714724095162588 2.1714724095162588))
                (local.get $off)))
            (v128.store (i32.add (local.get $row) (i32.shr_u (local.get $i) (i32.const 1))) (local.get $v1))
            (local.set $i (i32.add (local.get $i) (i32.const 32)))
            (br $pl)))
        ;; the columns this frame falls in: acc column += weight * row
        (local.set $e (i32.load (i32.add (local.get $starts) (i32.shl (local.get $f) (i32.const 2)))))
        (local.set $eEnd (i32.load offset=4 (i32.add (local.get $starts) (i32.shl (local.get $f) (i32.const 2)))))
        (block $cdone
          (loop $cl
            (br_if $cdone (i32.ge_u (local.get $e) (local.get $eEnd)))
            (local.set $dst
              (i32.add (local.get $acc) (i32.load (i32.add (local.get $columns) (i32.shl (local.get $e) (i32.const 2))))))
            (local.set $w (v128.load32_splat (i32.add (local.get $weights) (i32.shl (local.get $e) (i32.const 2)))))
            (local.set $i (i32.const 0))
            (block $adone
              (loop $al
                (br_if $adone (i32.ge_u (local.get $i) (local.get $rowBytes)))
                (v128.store (i32.add (local.get $dst) (local.get $i))
                  (f32x4.add
                    (v128.load (i32.add (local.get $dst) (local.get $i)))
                    (f32x4.mul (local.get $w) (v128.load (i32.add (local.get $row) (local.get $i))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $al)))
            (local.set $e (i32.add (local.get $e) (i32.const 1)))
            (br $cl)))
        (local.set $src (i32.add (local.get $src) (local.get $hopBytes)))
        (local.set $f (i32.add (local.get $f) (i32.const 1)))
        (br $frame)))
    (v128.store (local.get $extremes) (local.get $lo))
    (v128.store offset=16 (local.get $extremes) (local.get $hi)))

  ;; accumulateDb's columns (`cols` × n float32, column-major, natural bin order) as a
  ;; frequency-major matrix at `dst` (n rows of `cols`, fftshift-ed: row f holds bin
  ;; (f + n/2) mod n). Sixteen rows at a time (n/2 when that is fewer, so a block never wraps),
  ;; so each 64-byte line of `src` is read once. n is a power of two >= 16.
  (func (export "transposeShift") (param $src i32) (param $n i32) (param $cols i32) (param $dst i32)
    (local $f i32) (local $c i32) (local $j i32) (local $s i32) (local $d i32) (local $rowBytes i32)
    (local $block i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $block (i32.shr_u (local.get $n) (i32.const 1)))
    (if (i32.gt_u (local.get $block) (i32.const 16)) (then (local.set $block (i32.const 16))))
    (block $fdone
      (loop $fl
        (br_if $fdone (i32.ge_u (local.get $f) (local.get $n)))
        (local.set $c (i32.const 0))
        (block $cdone
          (loop $cl
            (br_if $cdone (i32.ge_u (local.get $c) (local.get $cols)))
            ;; s = src + 4·(c·n + ((f + n/2) mod n)); d = dst + 4·(f·cols + c)
            (local.set $s
              (i32.add (local.get $src)
                (i32.shl
                  (i32.add (i32.mul (local.get $c) (local.get $n))
                    (i32.and (i32.add (local.get $f) (i32.shr_u (local.get $n) (i32.const 1)))
                      (i32.sub (local.get $n) (i32.const 1))))
                  (i32.const 2))))
            (local.set $d
              (i32.add (local.get $dst)
                (i32.shl (i32.add (i32.mul (local.get $f) (local.get $cols)) (local.get $c)) (i32.const 2))))
            (local.set $j (i32.const 0))
            (block $jdone
              (loop $jl
                (br_if $jdone (i32.ge_u (local.get $j) (local.get $block)))
                (f32.store (local.get $d) (f32.load (local.get $s)))
                (local.set $s (i32.add (local.get $s) (i32.const 4)))
                (local.set $d (i32.add (local.get $d) (local.get $rowBytes)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $jl)))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (br $cl)))
        (local.set $f (i32.add (local.get $f) (local.get $block)))
        (br $fl))))

  ;; One image row: for each of `count` pixels, v = sum over j < ntaps of weights[j] * (the float32
  ;; at base + offsets[j]), computed in float64, base advancing by `stride` bytes per pixel (4 for a
  ;; frequency-major matrix, 4·n for a column-major one); q = (v - min)*k, colour index 255 if
  ;; q >= 255, floor(q) if q > 0, else 0; lut[index] (RGB0 as an i32) stored at out + 3c. Each
  ;; store writes one byte past its pixel, which the next pixel overwrites: `out` needs one spare
  ;; byte at its end. `offsets` are i32 byte offsets, `weights` float64.
  (func (export "colourRow")
    (param $base i32) (param $stride i32) (param $offsets i32) (param $weights i32) (param $ntaps i32)
    (param $out i32) (param $count i32) (param $min f64) (param $k f64) (param $lut i32)
    (local $end i32) (local $q f64) (local $v f64) (local $i i32) (local $j i32) (local $tapsEnd i32)
    (local.set $end (i32.add (local.get $out) (i32.mul (local.get $count) (i32.const 3))))
    (local.set $tapsEnd (i32.shl (local.get $ntaps) (i32.const 2)))
    (block $done
      (loop $c
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $v (f64.const 0))
        (local.set $j (i32.const 0))
        (block $tdone
          (loop $t
            (br_if $tdone (i32.ge_u (local.get $j) (local.get $tapsEnd)))
            (local.set $v
              (f64.add (local.get $v)
                (f64.mul
                  (f64.promote_f32
                    (f32.load (i32.add (local.get $base) (i32.load (i32.add (local.get $offsets) (local.get $j))))))
                  (f64.load (i32.add (local.get $weights) (i32.shl (local.get $j) (i32.const 1)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $t)))
        (local.set $q (f64.mul (f64.sub (local.get $v) (local.get $min)) (local.get $k)))
        (local.set $i
          (if (result i32) (f64.ge (local.get $q) (f64.const 255))
            (then (i32.const 255))
            (else
              (if (result i32) (f64.gt (local.get $q) (f64.const 0))
                (then (i32.trunc_f64_s (local.get $q)))
                (else (i32.const 0))))))
        (i32.store (local.get $out) (i32.load (i32.add (local.get $lut) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $base (i32.add (local.get $base) (local.get $stride)))
        (local.set $out (i32.add (local.get $out) (i32.const 3)))
        (br $c))))
)
