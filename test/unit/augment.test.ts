import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  advancedBlurKernel,
  applyAugmentation,
  AUGMENT_METHODS,
  sharpenKernel,
  type RawImage,
} from '../../src/augment/methods.js';
import { fastNormal, mulberry32, normalQuantile } from '../../src/util/random.js';

/** A spectrogram-like test image: smooth colour gradient, a bright block and fine stripes. */
function testImage(width = 96, height = 64, contrast = 1): RawImage {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const j = 3 * (y * width + x);
      const block = x > 30 && x < 60 && y > 20 && y < 40 ? 90 : 0;
      const stripe = x % 4 < 2 ? 30 : 0;
      const base = 60 + contrast * (x + block + stripe);
      data[j] = Math.min(255, base);
      data[j + 1] = Math.min(255, 40 + contrast * y);
      data[j + 2] = Math.min(255, 200 - contrast * (x / 2));
    }
  }
  return { data, width, height };
}

function luma(img: RawImage): Float64Array {
  const out = new Float64Array(img.width * img.height);
  for (let i = 0; i < out.length; i++) {
    const d = img.data;
    out[i] =
      0.299 * (d[3 * i] as number) + 0.587 * (d[3 * i + 1] as number) + 0.114 * (d[3 * i + 2] as number);
  }
  return out;
}

const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
const std = (a: ArrayLike<number>) => {
  const m = mean(a);
  return Math.sqrt(Array.from(a).reduce((s, v) => s + (v - m) ** 2, 0) / a.length);
};

/** Sum of squared luma differences between neighbours: falls with blur, rises with sharpening. */
function edgeEnergy(img: RawImage): number {
  const l = luma(img);
  const at = (x: number, y: number) => l[y * img.width + x] as number;
  let e = 0;
  for (let y = 1; y < img.height; y++) {
    for (let x = 1; x < img.width; x++) e += (at(x, y) - at(x - 1, y)) ** 2 + (at(x, y) - at(x, y - 1)) ** 2;
  }
  return e;
}

describe('augmentation methods', () => {
  it('each keeps the size, changes the pixels, and repeats exactly for a seed', async () => {
    const img = testImage();
    for (const method of AUGMENT_METHODS) {
      const a = await applyAugmentation(method, img, mulberry32(1));
      const again = await applyAugmentation(method, img, mulberry32(1));
      const other = await applyAugmentation(method, img, mulberry32(2));
      assert.equal(a.width, img.width, method);
      assert.equal(a.height, img.height, method);
      assert.equal(a.data.length, img.data.length, method);
      assert.ok(!a.data.equals(img.data), `${method} left the image unchanged`);
      assert.ok(a.data.equals(again.data), `${method} is not reproducible`);
      assert.ok(!a.data.equals(other.data), `${method} ignores its seed`);
    }
  });

  it('blur softens edges and sharpen strengthens them', async () => {
    const img = testImage();
    let softened = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const blurred = await applyAugmentation('AdvancedBlur', img, mulberry32(seed));
      const sharpened = await applyAugmentation('Sharpen', img, mulberry32(seed));
      // A tight kernel (σ near 0.2 px) barely blurs, as in albumentations; none sharpens.
      assert.ok(edgeEnergy(blurred) <= edgeEnergy(img) * 1.001, `blur seed ${seed}`);
      if (edgeEnergy(blurred) < 0.95 * edgeEnergy(img)) softened++;
      assert.ok(edgeEnergy(sharpened) > edgeEnergy(img), `sharpen seed ${seed}`);
    }
    assert.ok(softened >= 4, `only ${softened} of 8 blurs softened the image`);
    for (let seed = 1; seed <= 20; seed++) {
      const { size, kernel } = advancedBlurKernel(mulberry32(seed));
      assert.ok([3, 5, 7].includes(size));
      assert.equal(kernel.length, size * size);
      assert.ok(Math.abs(kernel.reduce((a, b) => a + b, 0) - 1) < 1e-9);
      const k = sharpenKernel(mulberry32(seed));
      const sum = k.reduce((a, b) => a + b, 0);
      assert.ok(sum >= 0.75 && sum <= 1, `sharpen kernel sum ${sum}`); // 1 − α + αλ
    }
  });

  it('CLAHE raises the contrast of a flat image; GaussNoise adds noise of the documented strength', async () => {
    const flat = testImage(96, 64, 0.3);
    const eq = await applyAugmentation('CLAHE', flat, mulberry32(3));
    assert.ok(std(luma(eq)) > 1.3 * std(luma(flat)), `${std(luma(eq))} vs ${std(luma(flat))}`);

    const mid: RawImage = { data: Buffer.alloc(64 * 64 * 3, 128), width: 64, height: 64 };
    const noisy = await applyAugmentation('GaussNoise', mid, mulberry32(4));
    const diff = Array.from(noisy.data, (v) => v - 128);
    assert.ok(Math.abs(mean(diff)) < 0.5, `mean shift ${mean(diff)}`);
    const s = std(diff);
    assert.ok(s > Math.sqrt(10) * 0.9 && s < Math.sqrt(50) * 1.1, `noise std ${s}`);
  });

  it('ColorJitter and ISONoise change colour but keep the picture', async () => {
    const img = testImage();
    for (const method of ['ColorJitter', 'ISONoise'] as const) {
      const out = await applyAugmentation(method, img, mulberry32(5));
      const a = luma(img);
      const b = luma(out);
      // Still the same picture: luma strongly correlated with the original.
      const ma = mean(a);
      const mb = mean(b);
      let cov = 0;
      for (let i = 0; i < a.length; i++) cov += ((a[i] as number) - ma) * ((b[i] as number) - mb);
      const r = cov / a.length / (std(a) * std(b));
      assert.ok(r > 0.8, `${method}: correlation ${r}`);
    }
  });

  it('draws image noise from a normal distribution', () => {
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8);
    assert.ok(Math.abs(normalQuantile(0.001) + 3.090232306) < 1e-8);
    assert.equal(normalQuantile(0.5), 0);
    const draw = fastNormal(mulberry32(9));
    const xs = Array.from({ length: 200_000 }, draw);
    assert.ok(Math.abs(mean(xs)) < 0.01, `mean ${mean(xs)}`);
    assert.ok(Math.abs(std(xs) - 1) < 0.01, `std ${std(xs)}`);
    const within1 = xs.filter((x) => Math.abs(x) < 1).length / xs.length;
    assert.ok(Math.abs(within1 - 0.6827) < 0.005, `P(|x| < 1) = ${within1}`);
  });
});
