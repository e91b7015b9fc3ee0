/**
 * The six augmentation methods of SPEC §2.5, after the albumentations transforms of the same
 * names (their default parameter ranges), built on sharp where it has the operation (convolve,
 * modulate, linear) and on plain pixel arithmetic where it has not — or where sharp's is far
 * slower (CLAHE, see there). Every random choice comes from the generator passed in, so a
 * seed reproduces an augmented dataset exactly.
 *
 * Images are handled as 8-bit RGB raw pixels; the caller decodes and encodes.
 */
import sharp from 'sharp';
import { fastNormal } from '../util/random.js';

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
 * CLAHE on luminance, as OpenCV (and so albumentations) computes it: an 8 × 8 grid of tiles, each
 * with its own histogram clipped at clip × (tile pixels / 256) (clip 1–4), the excess spread over
 * all bins, and its CDF as a lookup table; each pixel blends the tables of the four nearest tile
 * centres bilinearly. Applied to the luma channel; the change in luma is added to R, G and B, so
 * hues stay. (sharp's clahe is libvips' sliding-window equalisation, O(pixels × window): 3.7 s
 * for a 1920×1440 spectrogram, against ~0.1 s for this.)
 */
function clahe(img: RawImage, rand: Rand): RawImage {
  const clip = uniform(rand, 1, 4);
  const { width: W, height: H, data: d } = img;
  const n = W * H;
  const luma = new Uint8Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    luma[i] = clamp8(0.299 * (d[j] as number) + 0.587 * (d[j + 1] as number) + 0.114 * (d[j + 2] as number));
  }
  const tilesX = Math.min(8, W);
  const tilesY = Math.min(8, H);
  const edgeX = Array.from({ length: tilesX + 1 }, (_, t) => Math.floor((t * W) / tilesX));
  const edgeY = Array.from({ length: tilesY + 1 }, (_, t) => Math.floor((t * H) / tilesY));
  const luts = tileTables(luma, W, { tilesX, tilesY, edgeX, edgeY }, clip);
  // Bilinear blend between the tables of the four nearest tile centres.
  const x0s = new Int32Array(W);
  const x1s = new Int32Array(W);
  const wxs = new Float32Array(W);
  for (let x = 0; x < W; x++) [x0s[x], x1s[x], wxs[x]] = nearestTiles(x, edgeX, tilesX);
  const out = Buffer.allocUnsafe(3 * n);
  for (let y = 0; y < H; y++) {
    const [y0, y1, wy] = nearestTiles(y, edgeY, tilesY);
    for (let x = 0; x < W; x++) {
      const x0 = x0s[x] as number;
      const x1 = x1s[x] as number;
      const wx = wxs[x] as number;
      const i = y * W + x;
      const v = luma[i] as number;
      const top =
        (luts[(y0 * tilesX + x0) * 256 + v] as number) * (1 - wx) +
        (luts[(y0 * tilesX + x1) * 256 + v] as number) * wx;
      const bottom =
        (luts[(y1 * tilesX + x0) * 256 + v] as number) * (1 - wx) +
        (luts[(y1 * tilesX + x1) * 256 + v] as number) * wx;
      const delta = top * (1 - wy) + bottom * wy - v;
      const j = 3 * i;
      out[j] = clamp8((d[j] as number) + delta);
      out[j + 1] = clamp8((d[j + 1] as number) + delta);
      out[j + 2] = clamp8((d[j + 2] as number) + delta);
    }
  }
  return { data: out, width: W, height: H };
}

/** CLAHE's tiles: their count across and down, and their pixel edges. */
interface TileGrid {
  tilesX: number;
  tilesY: number;
  edgeX: number[];
  edgeY: number[];
}

/** One 256-entry equalisation table per tile, from its histogram clipped at `clip`. */
function tileTables(luma: Uint8Array, W: number, g: TileGrid, clip: number): Float32Array {
  const luts = new Float32Array(g.tilesX * g.tilesY * 256);
  const hist = new Float64Array(256);
  for (let ty = 0; ty < g.tilesY; ty++) {
    for (let tx = 0; tx < g.tilesX; tx++) {
      hist.fill(0);
      for (let y = g.edgeY[ty] as number; y < (g.edgeY[ty + 1] as number); y++) {
        for (let x = g.edgeX[tx] as number; x < (g.edgeX[tx + 1] as number); x++) {
          const v = luma[y * W + x] as number;
          hist[v] = (hist[v] as number) + 1;
        }
      }
      const area =
        ((g.edgeX[tx + 1] as number) - (g.edgeX[tx] as number)) *
        ((g.edgeY[ty + 1] as number) - (g.edgeY[ty] as number));
      const limit = Math.max(1, (clip * area) / 256);
      let excess = 0;
      for (let v = 0; v < 256; v++) {
        const h = hist[v] as number;
        if (h > limit) {
          excess += h - limit;
          hist[v] = limit;
        }
      }
      const spread = excess / 256;
      const lut = (ty * g.tilesX + tx) * 256;
      let cdf = 0;
      for (let v = 0; v < 256; v++) {
        cdf += (hist[v] as number) + spread;
        luts[lut + v] = area > 0 ? (cdf * 255) / area : v;
      }
    }
  }
  return luts;
}

/** The two tiles whose centres bracket pixel `p` along one axis, and the weight of the second. */
function nearestTiles(p: number, edges: number[], tiles: number): [number, number, number] {
  const centre = (t: number) => ((edges[t] as number) + (edges[t + 1] as number) - 1) / 2;
  let t = 0;
  while (t < tiles - 1 && p > centre(t + 1)) t++;
  if (tiles === 1 || p <= centre(0)) return [0, 0, 0];
  if (t === tiles - 1) return [t, t, 0];
  const a = centre(t);
  const b = centre(t + 1);
  return [t, t + 1, (p - a) / (b - a)];
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
  const normal = fastNormal(rand);
  const out = Buffer.allocUnsafe(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clamp8((img.data[i] as number) + std * normal());
  return { data: out, width: img.width, height: img.height };
}

function hueToRgb(p: number, q: number, t: number): number {
  if (t < 0) t += 1;
  if (t > 1) t -= 1;
  if (t < 1 / 6) return p + (q - p) * 6 * t;
  if (t < 1 / 2) return q;
  if (t < 2 / 3) return p + (q - p) * (2 / 3 - t) * 6;
  return p;
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
  const normal = fastNormal(rand);
  const n = img.width * img.height;
  const d = img.data;
  // RGB → HLS (hue in degrees, lightness and saturation 0–1).
  const hue = new Float32Array(n);
  const light = new Float32Array(n);
  const sat = new Float32Array(n);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const r = (d[j] as number) / 255;
    const g = (d[j + 1] as number) / 255;
    const b = (d[j + 2] as number) / 255;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const l = (max + min) / 2;
    let h = 0;
    let s = 0;
    if (max !== min) {
      const delta = max - min;
      s = l > 0.5 ? delta / (2 - max - min) : delta / (max + min);
      if (max === r) h = (g - b) / delta + (g < b ? 6 : 0);
      else if (max === g) h = (b - r) / delta + 2;
      else h = (r - g) / delta + 4;
      h *= 60;
    }
    hue[i] = h;
    light[i] = l;
    sat[i] = s;
    sum += l;
    sumSq += l * l;
  }
  const lStd = Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2));
  // Poisson(λ) drawn as its normal approximation, never negative.
  const lambda = lStd * intensity * 255;
  const lambdaStd = Math.sqrt(lambda);
  const hueStd = colorShift * 360 * intensity;
  const out = Buffer.allocUnsafe(3 * n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const lumNoise = Math.max(0, lambda + lambdaStd * normal());
    let h = ((hue[i] as number) + hueStd * normal()) % 360;
    if (h < 0) h += 360;
    const l0 = light[i] as number;
    const l = Math.min(1, l0 + (lumNoise / 255) * (1 - l0));
    const s = sat[i] as number;
    if (s === 0) {
      out[j] = out[j + 1] = out[j + 2] = clamp8(l * 255);
      continue;
    }
    const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
    const p = 2 * l - q;
    const t = h / 360;
    out[j] = clamp8(hueToRgb(p, q, t + 1 / 3) * 255);
    out[j + 1] = clamp8(hueToRgb(p, q, t) * 255);
    out[j + 2] = clamp8(hueToRgb(p, q, t - 1 / 3) * 255);
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
