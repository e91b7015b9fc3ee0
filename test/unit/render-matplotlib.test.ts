import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { colourColumns, colouriseFast } from '../../src/signal/render.js';
import {
  HANNING_LUT,
  antialiasedInterpolation,
  axisTaps,
  filterScales,
} from '../../src/signal/mpl-resample.js';
import { sliceColumns, sliceImageData } from '../../src/signal/slice-image.js';
import { sliceGrid, sliceStart } from '../../src/signal/slicing.js';
import { stftPlan } from '../../src/signal/stft.js';

/**
 * Pictures equal to the reference pipeline's: test/fixtures/matplotlib holds images matplotlib
 * rendered from two synthetic slices exactly as the reference's generate_images draws them
 * (scripts/make-matplotlib-fixtures.py), at three sizes; the slices are regenerated here.
 */
const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/matplotlib');

interface Case {
  name: string;
  sample_rate: number;
  stft_point: number;
  seed: number;
  samples: number;
  iq_sha256: string;
  frames: number;
  images: { file: string; width: number; height: number }[];
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as {
  matplotlib: string;
  cases: Case[];
};

/** murmur3's 32-bit finaliser of the index, in [-0.5, 0.5): the script's hash_unit. */
function hashUnit(i: number): number {
  let h = Math.imul(i, 0x9e3779b1) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 2 ** 32 - 0.5;
}

const frac = (x: number) => x - Math.floor(x);

/** numpy.round: halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The script's `signal`: noise floor, a steady carrier, hopping bursts, a repeating chirp. */
function signal(samples: number, fs: number, seed: number): Float32Array {
  const iq = new Float32Array(2 * samples);
  const base = seed * 4 * samples;
  const tau = 2 * Math.PI;
  for (let k = 0; k < samples; k++) {
    const t = k / fs;
    let i = 0.05 * (hashUnit(base + 4 * k) + hashUnit(base + 4 * k + 1));
    let q = 0.05 * (hashUnit(base + 4 * k + 2) + hashUnit(base + 4 * k + 3));
    let ph = frac(0.21 * k);
    i += 0.1 * Math.cos(tau * ph);
    q += 0.1 * Math.sin(tau * ph);
    const slot = Math.floor(t / 1e-3);
    if (t - slot * 1e-3 < 0.4e-3) {
      ph = frac((((slot * 7 + seed) % 11) - 5) * 0.07 * k);
      i += Math.cos(tau * ph);
      q += Math.sin(tau * ph);
    }
    const tc = t - Math.floor(t / 5e-3) * 5e-3;
    ph = frac(-0.45 * fs * tc + 0.5 * ((0.4 * fs) / 5e-3) * tc * tc);
    i += 0.3 * Math.cos(tau * ph);
    q += 0.3 * Math.sin(tau * ph);
    // The 1/4096 grid hides last-bit differences between numpy's and V8's sin and cos.
    iq[2 * k] = roundHalfEven(i * 4096) / 4096;
    iq[2 * k + 1] = roundHalfEven(q * 4096) / 4096;
  }
  return iq;
}

async function decode(file: string): Promise<Buffer> {
  return (await sharp(path.join(FIXTURES, file)).removeAlpha().raw().toBuffer({ resolveWithObject: true }))
    .data;
}

function meanAbsDiff(a: Buffer, b: Buffer): number[] {
  assert.equal(a.length, b.length);
  const sum = new Float64Array(3);
  for (let i = 0; i < a.length; i++)
    sum[i % 3] = (sum[i % 3] as number) + Math.abs((a[i] as number) - (b[i] as number));
  return [...sum].map((s) => s / (a.length / 3));
}

describe(`spectrogram pictures against matplotlib ${manifest.matplotlib} (the reference's generate_images)`, () => {
  for (const c of manifest.cases) {
    it(`slice ${c.name} (${c.samples} samples, ${c.stft_point}-point STFT): mean |Δ| ≤ 1.5 per channel at every size`, async () => {
      const iq = signal(c.samples, c.sample_rate, c.seed);
      const sha = crypto.createHash('sha256').update(new Uint8Array(iq.buffer)).digest('hex');
      assert.equal(sha, c.iq_sha256, 'the regenerated slice is the one the fixtures were rendered from');
      const plan = stftPlan(c.stft_point);
      for (const img of c.images) {
        const expected = await decode(img.file);
        const t0 = performance.now();
        const data = sliceColumns(iq, plan, img.width, img.height, false);
        assert.equal(data.frames, c.frames);
        const ours = colourColumns(data.columns, img.width, img.height, data.rowTaps, 'jet', data);
        const ms = performance.now() - t0;
        const d = meanAbsDiff(ours, expected);
        // Today's power-averaged rendering, for comparison (what the issue measured).
        const p = sliceImageData(iq, plan, img.width, false);
        let power = colouriseFast(p.reduced, p.freqs, p.columns, 'jet', p, img.height);
        if (p.columns !== img.width) {
          power = await sharp(power, { raw: { width: p.columns, height: img.height, channels: 3 } })
            .resize(img.width, img.height, { fit: 'fill' })
            .raw()
            .toBuffer();
        }
        const dp = meanAbsDiff(power, expected);
        const show = (v: number[]) => v.map((x) => x.toFixed(3)).join(', ');
        console.log(
          `  ${c.name} ${img.width}x${img.height}: mean |Δ| R, G, B = ${show(d)} (power-averaged: ${show(dp)}); ${ms.toFixed(0)} ms`,
        );
        for (const v of d) assert.ok(v <= 1.5, `${img.file}: mean |Δ| ${show(d)}`);
      }
    });
  }
});

describe('slicing as the reference’s generate_images steps it', () => {
  /** generate_images' loop, transcribed: i += 2 ** -ratio while (i + 1)·slice_point ≤ len. */
  function reference(samples: number, perSlice: number, ratio: number): number[] {
    const starts: number[] = [];
    for (let i = 0; (i + 1) * perSlice <= samples; i += 2 ** -ratio) starts.push(Math.trunc(i * perSlice));
    return starts;
  }

  it('gives the reference’s slice starts and count for every ratio, dropping a last partial window', () => {
    for (const [samples, perSlice] of [
      [4_000_000, 1_000_000], // 0.4 s at 10 MS/s in 0.1 s slices
      [4700, 2000],
      [2000, 2000],
      [1999, 2000],
      [10_007, 333], // an odd slice: half steps fall between samples
    ] as const) {
      for (let ratio = -3; ratio <= 4; ratio++) {
        const starts = reference(samples, perSlice, ratio);
        const grid = sliceGrid(samples, perSlice, ratio);
        assert.equal(grid.count, starts.length, `${samples}/${perSlice} ratio ${ratio}`);
        starts.forEach((s, k) => assert.equal(sliceStart(k, perSlice, ratio), s));
        const end = starts.length ? (starts.at(-1) as number) + perSlice : 0;
        assert.equal(grid.tail, samples - end);
      }
    }
    // the example: 0.4 s in 0.1 s slices is 4 slices at ratio 0, 7 at the default 1
    assert.equal(sliceGrid(4_000_000, 1_000_000, 0).count, 4);
    assert.equal(sliceGrid(4_000_000, 1_000_000, 1).count, 7);
    assert.deepEqual(sliceGrid(4700, 2000, -1), { count: 1, tail: 2700, uncovered: 2700 });
    assert.deepEqual(sliceGrid(6000, 2000, -1), { count: 2, tail: 0, uncovered: 2000 });
  });
});

describe('matplotlib’s resampling geometry', () => {
  it('picks Hanning unless both axes are enlarged more than 3× (or exactly 1× or 2×)', () => {
    assert.equal(antialiasedInterpolation(19_533, 1024, 1920, 1440), 'hanning');
    assert.equal(antialiasedInterpolation(300, 256, 1920, 1440), 'nearest'); // 6.4× and 5.6×
    assert.equal(antialiasedInterpolation(300, 512, 1920, 1440), 'hanning'); // 2.8× in height
    assert.equal(antialiasedInterpolation(960, 720, 1920, 1440), 'nearest'); // exactly 2×
  });

  it('widens the filter by the reduction, within Agg’s limit of 200 for both axes together', () => {
    assert.deepEqual(filterScales(19_533 / 1920, 1024 / 1440), [19_533 / 1920, 1]);
    const [sx, sy] = filterScales(19_533 / 224, 1024 / 224);
    assert.ok(Math.abs(sx - 200 / (1024 / 224)) < 1e-9, `${sx}`);
    assert.ok(Math.abs(sy - 1024 / 224) < 1e-9, `${sy}: unchanged, as Agg computes it`);
  });

  it('has Agg’s Hanning table and weights summing to one, edges reflected', () => {
    for (let i = 0; i < 256; i++)
      assert.equal((HANNING_LUT[i] as number) + (HANNING_LUT[256 + i] as number), 1 << 14);
    const taps = axisTaps(10, 4, 2.5, 'hanning');
    for (let o = 0; o < 4; o++) {
      let sum = 0;
      for (let e = taps.start[o] as number; e < (taps.start[o + 1] as number); e++) {
        sum += taps.weight[e] as number;
        assert.ok((taps.index[e] as number) >= 0 && (taps.index[e] as number) < 10);
      }
      assert.ok(Math.abs(sum - 1) < 1e-12);
    }
    assert.deepEqual([...axisTaps(4, 8, 1, 'nearest').index], [0, 0, 1, 1, 2, 2, 3, 3]);
  });
});
