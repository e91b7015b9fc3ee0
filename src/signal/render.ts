import sharp from 'sharp';
import { COLORMAPS, lutIndex, type ColormapName } from './colormap.js';

export type ImageFormat = 'png' | 'jpg' | 'webp';

export interface RenderOptions {
  width: number;
  height: number;
  format: ImageFormat;
  colormap?: ColormapName;
}

/**
 * Colours a dB matrix (frequency × time, fftshift-ed, as magnitudeDb returns it): min–max scaled
 * over the whole slice, mapped through the colormap, low frequencies at the bottom and time left
 * to right, then resized to width × height and encoded.
 */
export function colourise(
  db: Float32Array,
  freqs: number,
  frames: number,
  colormap: ColormapName = 'jet',
): Buffer {
  let min = Infinity;
  let max = -Infinity;
  for (const v of db) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max - min;
  const lut = COLORMAPS[colormap];
  const rgb = Buffer.allocUnsafe(freqs * frames * 3);
  for (let f = 0; f < freqs; f++) {
    // Row 0 of the image is the top: the highest frequency (last fftshift-ed row).
    const src = (freqs - 1 - f) * frames;
    let o = f * frames * 3;
    for (let t = 0; t < frames; t++) {
      const i = 3 * lutIndex(span > 0 ? ((db[src + t] as number) - min) / span : 0);
      rgb[o++] = lut[i] as number;
      rgb[o++] = lut[i + 1] as number;
      rgb[o++] = lut[i + 2] as number;
    }
  }
  return rgb;
}

export async function renderSpectrogram(
  db: Float32Array,
  freqs: number,
  frames: number,
  opts: RenderOptions,
): Promise<Buffer> {
  const img = sharp(colourise(db, freqs, frames, opts.colormap), {
    raw: { width: frames, height: freqs, channels: 3 },
  }).resize(opts.width, opts.height, { fit: 'fill' });
  if (opts.format === 'png') return img.png().toBuffer();
  if (opts.format === 'jpg') return img.jpeg({ quality: 92 }).toBuffer();
  return img.webp({ quality: 92 }).toBuffer();
}
