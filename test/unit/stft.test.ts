import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { frameCount, hamming, magnitudeDb, stft, stftPlan } from '../../src/signal/stft.js';

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
});
