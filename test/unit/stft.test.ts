import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { frameCount, hamming, magnitudeDb, powerToDbInPlace, stft, stftPlan } from '../../src/signal/stft.js';
import { sliceColumns, sliceImageData } from '../../src/signal/slice-image.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/stft');

interface Fixture {
  name: string;
  n: number;
  samples: number;
  freqs: number;
  frames: number;
  iq: string;
  re: string;
  im: string;
}

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

const fixtures: Fixture[] = fs
  .readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8')) as Fixture);

describe('STFT against scipy reference vectors', () => {
  it('has fixtures to check against', () => assert.ok(fixtures.length >= 4));

  for (const fx of fixtures) {
    it(`${fx.name}: same shape and values as scipy.signal.stft + fftshift (relative error < 1e-4)`, () => {
      const plan = stftPlan(fx.n);
      const z = stft(f32(fx.iq), plan);
      assert.equal(z.freqs, fx.freqs);
      assert.equal(z.frames, fx.frames);
      assert.equal(frameCount(fx.samples, fx.n), fx.frames);
      const re = f32(fx.re);
      const im = f32(fx.im);
      let peak = 0;
      for (let i = 0; i < re.length; i++) peak = Math.max(peak, Math.hypot(re[i] as number, im[i] as number));
      let worst = 0;
      for (let i = 0; i < re.length; i++) {
        const d = Math.hypot(
          (z.re[i] as number) - (re[i] as number),
          (z.im[i] as number) - (im[i] as number),
        );
        worst = Math.max(worst, d / peak);
      }
      assert.ok(worst < 1e-4, `max error ${worst} of the peak magnitude`);
      // the dB matrix is 10·log10 of the same magnitudes
      const { db } = magnitudeDb(f32(fx.iq), plan);
      for (let i = 0; i < re.length; i += 97) {
        const mag = Math.hypot(re[i] as number, im[i] as number);
        if (mag > peak * 1e-3) assert.ok(Math.abs((db[i] as number) - 10 * Math.log10(mag)) < 1e-3);
      }
    });
  }

  it('uses the symmetric Hamming window and refuses bad sizes and short slices', () => {
    const w = hamming(5);
    assert.deepEqual(
      [...w].map((v) => Math.round(v * 1e6) / 1e6),
      [0.08, 0.54, 1, 0.54, 0.08],
    );
    assert.throws(() => stftPlan(1000), /power of two/);
    assert.throws(() => stft(new Float32Array(2 * 100), stftPlan(128)), /at least stft_point = 128/);
  });

  it('floors silent bins instead of returning -Infinity', () => {
    const { db } = magnitudeDb(new Float32Array(2 * 256), stftPlan(64));
    assert.ok(db.every((v) => v === -120));
  });

  it('computes 10·log10(|Z|) from |Z|² to float32 precision over the whole range', () => {
    const values: number[] = [
      0,
      -0,
      1e-30,
      1e-24,
      1e-20,
      3.7e-9,
      0.5,
      1,
      1.5,
      Math.SQRT2,
      2,
      1234.5,
      3e20,
      3.4e38,
    ];
    for (let k = 0; k < 5000; k++) values.push(10 ** (-24 + 60 * ((k * 0.6180339887) % 1)));
    const power = Float32Array.from(values);
    const expected = Array.from(power, (p) => 5 * Math.log10(Math.max(p, 1e-24)));
    powerToDbInPlace(power, new Int32Array(power.buffer));
    for (const [i, e] of expected.entries()) {
      // float32 output: a few ulps of the value, at most ~1e-5 dB at ±120 dB
      assert.ok(
        Math.abs((power[i] as number) - e) <= 2e-7 * Math.abs(e) + 1e-6,
        `${values[i]}: ${power[i]} vs ${e}`,
      );
    }
  });

  it('reduces frames to image columns by mean power, with the full matrix min and max', () => {
    const iq = new Float32Array(2 * 5000);
    for (let i = 0; i < iq.length; i++) iq[i] = Math.sin(i * 0.37) + ((i * 7919) % 13) / 13;
    const plan = stftPlan(64);
    const { db, frames } = magnitudeDb(iq, plan);
    const r = sliceImageData(iq, plan, 40, true);
    assert.equal(r.frames, frames);
    assert.equal(r.columns, 40);
    assert.deepEqual(r.db, db);
    assert.equal(r.min, Math.min(...db));
    assert.equal(r.max, Math.max(...db));
    for (const f of [0, 17, 63]) {
      for (const c of [0, 13, 39]) {
        const ts = Array.from({ length: frames }, (_, t) => t).filter(
          (t) => Math.floor((t * 40) / frames) === c,
        );
        // 10·log10(RMS |Z|) = 5·log10(mean |Z|²), |Z|² = 10^(dB / 5)
        const meanPower = ts.reduce((a, t) => a + 10 ** ((db[f * frames + t] as number) / 5), 0) / ts.length;
        const expected = 5 * Math.log10(meanPower);
        assert.ok(Math.abs((r.reduced[f * 40 + c] as number) - expected) < 1e-4, `f ${f} c ${c}`);
      }
    }
    // The SIMD kernel (no matrix asked for) gives the same image data.
    for (const width of [40, 7, 1]) {
      const simd = sliceImageData(iq, plan, width, false);
      const js = sliceImageData(iq, plan, width, true);
      assert.equal(simd.db, null);
      assert.ok(Math.abs(simd.min - js.min) < 1e-4 && Math.abs(simd.max - js.max) < 1e-4);
      simd.reduced.forEach((v, i) =>
        assert.ok(Math.abs(v - (js.reduced[i] as number)) < 1e-3, `${width}: ${i}`),
      );
    }
    // Fewer frames than the width: one column per frame, no matrix kept unless asked.
    const wide = sliceImageData(iq, plan, 10_000, false);
    assert.equal(wide.columns, frames);
    assert.equal(wide.db, null);
    wide.reduced.forEach((v, i) => assert.ok(Math.abs(v - (db[i] as number)) < 1e-3));
  });

  it('matplotlib columns: the SIMD kernel (polynomial log) gives what the JavaScript path gives, within 1e-3 dB', () => {
    // A wide dynamic range (a strong tone over weak noise) so the log is tried far from 1.
    const iq = new Float32Array(2 * 9000);
    for (let i = 0; i < iq.length; i++)
      iq[i] = 30 * Math.sin(i * 0.37) + (((i * 7919) % 13) / 13 - 0.5) * 1e-3;
    const plan = stftPlan(64);
    const { db, frames } = magnitudeDb(iq, plan);
    for (const [width, height] of [
      [40, 30], // fewer columns than frames: each column a Hanning-weighted mean of frames
      [500, 200], // more columns than frames: interpolation between frames
      [1, 1],
    ] as const) {
      const js = sliceColumns(iq, plan, width, height, true);
      const simd = sliceColumns(iq, plan, width, height, false);
      assert.equal(simd.db, null);
      assert.deepEqual(js.db, db);
      assert.equal(simd.frames, frames);
      assert.equal(js.min, Math.min(...db));
      assert.equal(js.max, Math.max(...db));
      assert.ok(Math.abs(simd.min - js.min) < 1e-3 && Math.abs(simd.max - js.max) < 1e-3);
      let worst = 0;
      simd.columns.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (js.columns[i] as number)))));
      assert.ok(worst < 1e-3, `${width}×${height}: ${worst} dB`);
    }
    // A column of a frame-per-column image is that frame (one tap of weight 1: nearest).
    const same = sliceColumns(iq, plan, frames, 64, false);
    same.columns.forEach((v, i) => assert.ok(Math.abs(v - (db[i] as number)) < 1e-3, `${i}`));
  });
});
