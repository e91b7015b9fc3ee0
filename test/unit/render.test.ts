import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { COLORMAPS } from '../../src/signal/colormap.js';
import { colourise, colouriseFast, renderSpectrogram } from '../../src/signal/render.js';
import { magnitudeDb, stftPlan } from '../../src/signal/stft.js';

/** A tone at +fs/4 plus weak noise: its line must sit in the upper half (positive frequency). */
function toneIq(samples: number): Float32Array {
  const iq = new Float32Array(2 * samples);
  let seed = 1;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.01;
  for (let k = 0; k < samples; k++) {
    iq[2 * k] = Math.cos((Math.PI / 2) * k) + noise();
    iq[2 * k + 1] = Math.sin((Math.PI / 2) * k) + noise();
  }
  return iq;
}

describe('spectrogram rendering', () => {
  it('puts low frequencies at the bottom and maps the extremes to the ends of jet', () => {
    const db = new Float32Array([0, 1, 2, 3, 4, 5]); // 3 freqs × 2 frames, row 0 = lowest
    const rgb = colourise(db, 3, 2);
    const px = (row: number, col: number) => [...rgb.subarray((row * 2 + col) * 3, (row * 2 + col) * 3 + 3)];
    const jet = COLORMAPS.jet;
    assert.deepEqual(
      px(2, 0),
      [...jet.subarray(0, 3)],
      'bottom-left is the minimum (lowest frequency, first frame)',
    );
    assert.deepEqual(px(0, 1), [...jet.subarray(765, 768)], 'top-right is the maximum');
  });

  it('renders a tone at +fs/4 as a horizontal line in the upper half, at the requested size and format', async () => {
    const plan = stftPlan(256);
    const { db, freqs, frames } = magnitudeDb(toneIq(256 * 40), plan);
    for (const format of ['png', 'jpg', 'webp'] as const) {
      const img = await renderSpectrogram(db, freqs, frames, { width: 320, height: 240, format });
      const meta = await sharp(img).metadata();
      assert.deepEqual(
        [meta.format === 'jpeg' ? 'jpg' : meta.format, meta.width, meta.height],
        [format, 320, 240],
      );
    }
    const png = await renderSpectrogram(db, freqs, frames, { width: 200, height: 256, format: 'png' });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    // the hottest row (most red): fs/4 is three quarters of the way up the shifted axis → row ≈ 64 from the top
    let bestRow = -1;
    let best = -1;
    for (let r = 0; r < 256; r++) {
      const i = (r * 200 + 100) * 3;
      const heat = (data[i] as number) - (data[i + 2] as number);
      if (heat > best) {
        best = heat;
        bestRow = r;
      }
    }
    assert.ok(Math.abs(bestRow - 64) <= 2, `line at row ${bestRow}`);
  });

  it('resamples rows in data space to the requested height, keeping the extremes at the ends', () => {
    const db = new Float32Array([0, 1, 2, 3, 4, 5]); // 3 freqs × 2 frames
    const rgb = colourise(db, 3, 2, 'jet', { min: 0, max: 5 }, 6);
    assert.equal(rgb.length, 6 * 2 * 3);
    const px = (row: number, col: number) => [...rgb.subarray((row * 2 + col) * 3, (row * 2 + col) * 3 + 3)];
    const jet = COLORMAPS.jet;
    assert.deepEqual(px(5, 0), [...jet.subarray(0, 3)], 'bottom row: the lowest frequency');
    assert.deepEqual(px(0, 1), [...jet.subarray(765, 768)], 'top row: the highest');
    // In between, values interpolate: row 2 of 6 (from the top) sits between freq 1 and 2.
    const mid = 3 * Math.floor(((((6 - 1 - 2 + 0.5) * 3) / 6 - 0.5) * 2 + 0) * (256 / 5));
    assert.deepEqual(px(2, 0), [...jet.subarray(mid, mid + 3)]);
  });

  it('colours in WebAssembly byte for byte as the JavaScript reference does', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (const [freqs, columns, height] of [
      [64, 50, 64],
      [64, 50, 97],
      [128, 33, 40],
      [16, 3, 1],
    ] as const) {
      const db = Float32Array.from({ length: freqs * columns }, () => -40 + 60 * rand());
      db[5] = -40; // the extremes land on both ends of the table
      db[7] = 20;
      const range = { min: -40, max: 20 };
      const js = colourise(db, freqs, columns, 'jet', range, height);
      const wasm = colouriseFast(db, freqs, columns, 'jet', range, height);
      assert.equal(wasm.length, js.length);
      assert.ok(wasm.equals(js), `${freqs}x${columns} -> ${height} rows differ`);
    }
    const flat = new Float32Array(32).fill(3);
    const same = { min: 3, max: 3 };
    assert.ok(colouriseFast(flat, 8, 4, 'jet', same, 8).equals(colourise(flat, 8, 4, 'jet', same, 8)));
  });
});
