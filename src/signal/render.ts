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
 * Colours a dB matrix (frequency × columns, fftshift-ed rows): scaled from `range` (by default its
 * own min and max) to the colormap, low frequencies at the bottom and time left to right.
 */
export function colourise(
  db: Float32Array,
  freqs: number,
  columns: number,
  colormap: ColormapName = 'jet',
  range?: { min: number; max: number },
): Buffer {
  let min = range?.min ?? Infinity;
  let max = range?.max ?? -Infinity;
  if (!range) {
    for (const v of db) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const span = max - min;
  const lut = COLORMAPS[colormap];
  const rgb = Buffer.allocUnsafe(freqs * columns * 3);
  for (let f = 0; f < freqs; f++) {
    // Row 0 of the image is the top: the highest frequency (last fftshift-ed row).
    const src = (freqs - 1 - f) * columns;
    let o = f * columns * 3;
    for (let t = 0; t < columns; t++) {
      const i = 3 * lutIndex(span > 0 ? ((db[src + t] as number) - min) / span : 0);
      rgb[o++] = lut[i] as number;
      rgb[o++] = lut[i + 1] as number;
      rgb[o++] = lut[i + 2] as number;
    }
  }
  return rgb;
}

/** Resizes raw RGB (width × height) to the requested size and encodes it. */
export function encodeImage(
  rgb: Buffer,
  width: number,
  height: number,
  opts: RenderOptions,
): Promise<Buffer> {
  const img = sharp(rgb, { raw: { width, height, channels: 3 } }).resize(opts.width, opts.height, {
    fit: 'fill',
  });
  if (opts.format === 'png') return img.png().toBuffer();
  if (opts.format === 'jpg') return img.jpeg({ quality: 92 }).toBuffer();
  return img.webp({ quality: 92 }).toBuffer();
}

/** A full dB matrix (frequency × frames) coloured over its own range, resized and encoded. */
export async function renderSpectrogram(
  db: Float32Array,
  freqs: number,
  frames: number,
  opts: RenderOptions,
): Promise<Buffer> {
  return encodeImage(colourise(db, freqs, frames, opts.colormap), frames, freqs, opts);
}
