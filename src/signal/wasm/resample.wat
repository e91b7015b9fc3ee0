;; Pillow's bilinear resample (ImagingResample, 8 bits per channel) in WebAssembly SIMD: the two
;; separable passes of src/engines/preprocess/pil-resize.ts, same integer arithmetic (22-bit
;; fixed-point weights, 32-bit sums, round by adding 1 << 21, clip to 0..255), so the bytes
;; equal Pillow's. The caller lays out the buffers in the shared memory and pads each one by
;; 16 bytes: pixels are read and written 4 bytes at a time.
(module
  (import "env" "memory" (memory 1))

  ;; (sum >> 22) clipped to 0..255, in the low byte of each 32-bit lane, packed into bytes 0..3.
  (func $clip (param $v v128) (result v128)
    (local $c v128)
    (local.set $c
      (i32x4.min_s
        (i32x4.max_s (i32x4.shr_s (local.get $v) (i32.const 22)) (v128.const i32x4 0 0 0 0))
        (v128.const i32x4 255 255 255 255)))
    (i8x16.narrow_i16x8_u
      (i16x8.narrow_i32x4_s (local.get $c) (local.get $c))
      (i16x8.narrow_i32x4_s (local.get $c) (local.get $c))))

  ;; Horizontal pass over `rows` rows of 3-channel pixels: each pixel's 3 channels in one vector.
  ;; bounds: (first input x, taps) i32 pairs per output x; weights: ksize i32 per output x.
  (func (export "horizontal3")
    (param $src i32) (param $srcStride i32) (param $rows i32)
    (param $out i32) (param $outW i32)
    (param $bounds i32) (param $weights i32) (param $ksize i32)
    (local $x i32) (local $taps i32) (local $p i32) (local $k i32) (local $b i32)
    (local $acc v128) (local $o i32) (local $row i32)
    (local.set $o (local.get $out))
    (local.set $row (local.get $src))
    (block $end
      (br_if $end (i32.eqz (local.get $rows)))
      (loop $each_row
        (local.set $x (i32.const 0))
        (loop $each_x
          (local.set $b (i32.add (local.get $bounds) (i32.shl (local.get $x) (i32.const 3))))
          (local.set $p
            (i32.add (local.get $row) (i32.mul (i32.load (local.get $b)) (i32.const 3))))
          (local.set $taps (i32.load offset=4 (local.get $b)))
          (local.set $k
            (i32.add (local.get $weights)
              (i32.shl (i32.mul (local.get $x) (local.get $ksize)) (i32.const 2))))
          (local.set $acc (v128.const i32x4 2097152 2097152 2097152 2097152))
          (block $no_taps
            (br_if $no_taps (i32.eqz (local.get $taps)))
            (loop $each_tap
              (local.set $acc
                (i32x4.add (local.get $acc)
                  (i32x4.mul
                    (i32x4.extend_low_i16x8_u
                      (i16x8.extend_low_i8x16_u (v128.load32_zero (local.get $p))))
                    (i32x4.splat (i32.load (local.get $k))))))
              (local.set $p (i32.add (local.get $p) (i32.const 3)))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br_if $each_tap
                (local.tee $taps (i32.sub (local.get $taps) (i32.const 1))))))
          ;; 4 bytes out (the 4th is overwritten by the next pixel, or lands in the padding).
          (v128.store32_lane 0 (local.get $o) (call $clip (local.get $acc)))
          (local.set $o (i32.add (local.get $o) (i32.const 3)))
          (br_if $each_x
            (i32.lt_u (local.tee $x (i32.add (local.get $x) (i32.const 1))) (local.get $outW))))
        (local.set $row (i32.add (local.get $row) (local.get $srcStride)))
        (br_if $each_row
          (local.tee $rows (i32.sub (local.get $rows) (i32.const 1)))))))

  ;; Vertical pass: output row yy = sum over its taps of input rows (ymin - rowOffset + t) × weight,
  ;; 4 bytes of a row at a time, accumulated in `acc` (stride rounded up to 4, i32 each).
  (func (export "vertical")
    (param $rows i32) (param $stride i32) (param $out i32) (param $outH i32)
    (param $bounds i32) (param $weights i32) (param $ksize i32) (param $rowOffset i32)
    (param $acc i32)
    (local $yy i32) (local $t i32) (local $taps i32) (local $base i32) (local $w v128)
    (local $i i32) (local $a i32) (local $k i32) (local $o i32)
    (block $end
      (br_if $end (i32.eqz (local.get $outH)))
      (loop $each_out_row
        (local.set $i (i32.const 0))
        (loop $init
          (v128.store (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 2)))
            (v128.const i32x4 2097152 2097152 2097152 2097152))
          (br_if $init
            (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $stride))))
        (local.set $taps
          (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $yy) (i32.const 3)))))
        (local.set $base
          (i32.add (local.get $rows)
            (i32.mul
              (i32.sub
                (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $yy) (i32.const 3))))
                (local.get $rowOffset))
              (local.get $stride))))
        (local.set $k
          (i32.add (local.get $weights)
            (i32.shl (i32.mul (local.get $yy) (local.get $ksize)) (i32.const 2))))
        (block $no_taps
          (br_if $no_taps (i32.eqz (local.get $taps)))
          (loop $each_tap
            (local.set $w (i32x4.splat (i32.load (local.get $k))))
            (local.set $i (i32.const 0))
            (local.set $a (local.get $acc))
            (loop $each_byte
              (v128.store (local.get $a)
                (i32x4.add (v128.load (local.get $a))
                  (i32x4.mul
                    (i32x4.extend_low_i16x8_u
                      (i16x8.extend_low_i8x16_u
                        (v128.load32_zero (i32.add (local.get $base) (local.get $i)))))
                    (local.get $w))))
              (local.set $a (i32.add (local.get $a) (i32.const 16)))
              (br_if $each_byte
                (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $stride))))
            (local.set $base (i32.add (local.get $base) (local.get $stride)))
            (local.set $k (i32.add (local.get $k) (i32.const 4)))
            (br_if $each_tap (local.tee $taps (i32.sub (local.get $taps) (i32.const 1))))))
        ;; Clip and store; the last group may spill into the next row (written next) or padding.
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $yy) (local.get $stride))))
        (local.set $i (i32.const 0))
        (loop $store
          (v128.store32_lane 0 (i32.add (local.get $o) (local.get $i))
            (call $clip (v128.load (i32.add (local.get $acc) (i32.shl (local.get $i) (i32.const 2))))))
          (br_if $store
            (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $stride))))
        (br_if $each_out_row
          (i32.lt_u (local.tee $yy (i32.add (local.get $yy) (i32.const 1))) (local.get $outH))))))
)
