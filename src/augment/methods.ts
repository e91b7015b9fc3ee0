/**
 * The six augmentation methods of SPEC §2.5, after the albumentations transforms of the same
 * names (their default parameter ranges), built on sharp where it has the operation and on plain
 * pixel arithmetic where it has not. Every random choice comes from the generator passed in, so a
 * seed reproduces an augmented dataset exactly.
 *
 * Images are handled as 8-bit RGB raw pixels; the caller decodes and encodes.
 */
import sharp from 'sharp';
import { gaussian } from '../util/random.js';

export const AUGMENT_METHODS = [
  'AdvancedBlur',
  'CLAHE',
  'ColorJitter',
  'GaussNoise',
  'ISONoise',
  'Sharpen',
] as const;
export type AugmentMethod = (typeof AUGMENT_METHODS)[number];

export function isAugmentMethod(name: string): name is AugmentMethod {
  return (AUGMENT_METHODS as readonly string[]).includes(name);
}

export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
}

type Rand = () => number;

const uniform = (rand: Rand, lo: number, hi: number) => lo + (hi - lo) * rand();
const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

async function throughSharp(img: RawImage, op: (s: sharp.Sharp) => sharp.Sharp): Promise<RawImage> {
  const raw = { width: img.width, height: img.height, channels: 3 as const };
  const data = await op(sharp(img.data, { raw })).removeAlpha().raw().toBuffer();
  return { data, width: img.width, height: img.height };
}

/**
 * AdvancedBlur: a generalized Gaussian kernel (odd size 3–7, σx and σy in 0.2–1.0 px, rotated by
 * up to ±90°, shape β in 0.5–8) multiplied element-wise by noise in 0.9–1.1, normalised.
 */
export function advancedBlurKernel(rand: Rand): { size: number; kernel: number[] } {
  const size = 3 + 2 * Math.floor(rand() * 3);
  const sx = uniform(rand, 0.2, 1.0);
  const sy = uniform(rand, 0.2, 1.0);
  const angle = uniform(rand, -Math.PI / 2, Math.PI / 2);
  const beta = rand() < 0.5 ? uniform(rand, 0.5, 1) : uniform(rand, 1, 8);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const half = (size - 1) / 2;
  const kernel: number[] = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - half;
      const dy = y - half;
      // Rotate into the kernel's axes, then the generalized Gaussian exp(-(d²/2)^β).
      const u = (cos * dx + sin * dy) / sx;
      const v = (-sin * dx + cos * dy) / sy;
      const w = Math.exp(-(((u * u + v * v) / 2) ** beta));
      kernel.push(w * uniform(rand, 0.9, 1.1));
    }
  }
  const sum = kernel.reduce((a, b) => a + b, 0);
  return { size, kernel: kernel.map((k) => k / sum) };
}

async function advancedBlur(img: RawImage, rand: Rand): Promise<RawImage> {
  const { size, kernel } = advancedBlurKernel(rand);
  return throughSharp(img, (s) => s.convolve({ width: size, height: size, kernel, scale: 1 }));
}

/**
 * CLAHE on luminance (as albumentations equalises LAB's L): sharp's local histogram equalisation
 * over an 8 × 8 grid of tiles, contrast limit 2–4, applied to the luma channel; the change in luma
 * is added to R, G and B, so hues stay.
 */
async function clahe(img: RawImage, rand: Rand): Promise<RawImage> {
  const n = img.width * img.height;
  const luma = Buffer.allocUnsafe(n);
  const d = img.data;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    luma[i] = clamp8(0.299 * (d[j] as number) + 0.587 * (d[j + 1] as number) + 0.114 * (d[j + 2] as number));
  }
  const equalised = await sharp(luma, { raw: { width: img.width, height: img.height, channels: 1 } })
    .clahe({
      width: Math.max(1, Math.ceil(img.width / 8)),
      height: Math.max(1, Math.ceil(img.height / 8)),
      maxSlope: 2 + Math.floor(rand() * 3),
    })
    .raw()
    .toBuffer();
  const out = Buffer.allocUnsafe(3 * n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const delta = (equalised[i] as number) - (luma[i] as number);
    out[j] = clamp8((d[j] as number) + delta);
    out[j + 1] = clamp8((d[j + 1] as number) + delta);
    out[j + 2] = clamp8((d[j + 2] as number) + delta);
  }
  return { data: out, width: img.width, height: img.height };
}

/**
 * ColorJitter: brightness, contrast and saturation factors in 0.8–1.2 and a hue shift of up to
 * ±0.2 of the colour circle (±72°). Contrast scales around the image's mean grey level.
 */
async function colorJitter(img: RawImage, rand: Rand): Promise<RawImage> {
  const brightness = uniform(rand, 0.8, 1.2);
  const contrast = uniform(rand, 0.8, 1.2);
  const saturation = uniform(rand, 0.8, 1.2);
  const hue = Math.round(uniform(rand, -0.2, 0.2) * 360);
  const d = img.data;
  let sum = 0;
  for (let j = 0; j < d.length; j += 3) {
    sum += 0.299 * (d[j] as number) + 0.587 * (d[j + 1] as number) + 0.114 * (d[j + 2] as number);
  }
  const mean = sum / (d.length / 3);
  const modulated = await throughSharp(img, (s) => s.modulate({ brightness, saturation, hue }));
  // Contrast as a second pass, so it applies to the modulated image whatever sharp's order.
  return throughSharp(modulated, (s) => s.linear(contrast, mean * brightness * (1 - contrast)));
}

/** GaussNoise: zero-mean Gaussian noise per pixel and channel, variance 10–50 (in 0–255 units). */
function gaussNoise(img: RawImage, rand: Rand): RawImage {
  const std = Math.sqrt(uniform(rand, 10, 50));
  const normal = gaussian(rand);
  const out = Buffer.allocUnsafe(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clamp8((img.data[i] as number) + std * normal());
  return { data: out, width: img.width, height: img.height };
}

function rgbToHls(r: number, g: number, b: number): [number, number, number] {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const l = (max + min) / 2;
  if (max === min) return [0, l, 0];
  const d = max - min;
  const s = l > 0.5 ? d / (2 - max - min) : d / (max + min);
  let h: number;
  if (max === r) h = (g - b) / d + (g < b ? 6 : 0);
  else if (max === g) h = (b - r) / d + 2;
  else h = (r - g) / d + 4;
  return [h * 60, l, s];
}

function hueToRgb(p: number, q: number, t: number): number {
  if (t < 0) t += 1;
  if (t > 1) t -= 1;
  if (t < 1 / 6) return p + (q - p) * 6 * t;
  if (t < 1 / 2) return q;
  if (t < 2 / 3) return p + (q - p) * (2 / 3 - t) * 6;
  return p;
}

function hlsToRgb(h: number, l: number, s: number): [number, number, number] {
  if (s === 0) return [l, l, l];
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const t = h / 360;
  return [hueToRgb(p, q, t + 1 / 3), hueToRgb(p, q, t), hueToRgb(p, q, t - 1 / 3)];
}

/**
 * ISONoise (camera sensor noise, after albumentations): colour shift 0.01–0.05 and intensity
 * 0.1–0.5. In HLS, hue gets Gaussian noise of σ = colour shift × 360° × intensity, and lightness
 * gets Poisson-like noise of mean σ_L × intensity × 255 (σ_L the image's lightness spread), scaled
 * by (1 − L) so highlights stay.
 */
function isoNoise(img: RawImage, rand: Rand): RawImage {
  const colorShift = uniform(rand, 0.01, 0.05);
  const intensity = uniform(rand, 0.1, 0.5);
  const normal = gaussian(rand);
  const n = img.width * img.height;
  const d = img.data;
  const h = new Float32Array(n);
  const l = new Float32Array(n);
  const s = new Float32Array(n);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const [hh, ll, ss] = rgbToHls(
      (d[j] as number) / 255,
      (d[j + 1] as number) / 255,
      (d[j + 2] as number) / 255,
    );
    h[i] = hh;
    l[i] = ll;
    s[i] = ss;
    sum += ll;
    sumSq += ll * ll;
  }
  const lStd = Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2));
  // Poisson(λ) drawn as its normal approximation (λ ≥ ~10 here), never negative.
  const lambda = lStd * intensity * 255;
  const hueStd = colorShift * 360 * intensity;
  const out = Buffer.allocUnsafe(3 * n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const lumNoise = Math.max(0, lambda + Math.sqrt(lambda) * normal());
    let hue = ((h[i] as number) + hueStd * normal()) % 360;
    if (hue < 0) hue += 360;
    const light = Math.min(1, (l[i] as number) + (lumNoise / 255) * (1 - (l[i] as number)));
    const [r, g, b] = hlsToRgb(hue, light, s[i] as number);
    out[j] = clamp8(r * 255);
    out[j + 1] = clamp8(g * 255);
    out[j + 2] = clamp8(b * 255);
  }
  return { data: out, width: img.width, height: img.height };
}

/**
 * Sharpen: (1 − α)·identity + α·[[-1,-1,-1],[-1,8+λ,-1],[-1,-1,-1]] with α in 0.2–0.5 and
 * lightness λ in 0.5–1.0, applied as is (not normalised), like albumentations.
 */
export function sharpenKernel(rand: Rand): number[] {
  const alpha = uniform(rand, 0.2, 0.5);
  const lightness = uniform(rand, 0.5, 1.0);
  const k = [-1, -1, -1, -1, 8 + lightness, -1, -1, -1, -1].map((v) => alpha * v);
  k[4] = (k[4] as number) + (1 - alpha);
  return k;
}

async function sharpen(img: RawImage, rand: Rand): Promise<RawImage> {
  const kernel = sharpenKernel(rand);
  return throughSharp(img, (s) => s.convolve({ width: 3, height: 3, kernel, scale: 1 }));
}

const IMPLEMENTATIONS: Record<AugmentMethod, (img: RawImage, rand: Rand) => RawImage | Promise<RawImage>> = {
  AdvancedBlur: advancedBlur,
  CLAHE: clahe,
  ColorJitter: colorJitter,
  GaussNoise: gaussNoise,
  ISONoise: isoNoise,
  Sharpen: sharpen,
};

export async function applyAugmentation(method: AugmentMethod, img: RawImage, rand: Rand): Promise<RawImage> {
  return IMPLEMENTATIONS[method](img, rand);
}
