/**
 * Worker-thread task (see WorkerPool): decodes one image once, writes one augmented copy per
 * requested method. Pixel arithmetic runs here, never on the event loop that serves HTTP.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PNG_COMPRESSION } from '../signal/png.js';
import { mulberry32 } from '../util/random.js';
import { applyAugmentation, type AugmentMethod, type RawImage } from './methods.js';

export interface AugmentImageJob {
  input: string;
  outputs: { method: AugmentMethod; path: string; seed: number }[];
}

export interface AugmentImageResult {
  width: number;
  height: number;
  ms: number;
}

/** Extensions sharp can write, and the extension a copy gets when it cannot (e.g. .bmp → .png). */
const WRITABLE = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.gif']);
export function augmentedExtension(file: string): string {
  const ext = path.extname(file).toLowerCase();
  return WRITABLE.has(ext) ? path.extname(file) : '.png';
}

function encode(img: RawImage, file: string): Promise<Buffer> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  switch (path.extname(file).toLowerCase()) {
    case '.jpg':
    case '.jpeg':
      return s.jpeg({ quality: 92 }).toBuffer();
    case '.webp':
      return s.webp({ quality: 92 }).toBuffer();
    case '.tif':
    case '.tiff':
      return s.tiff().toBuffer();
    case '.gif':
      return s.gif().toBuffer();
    default:
      return s.png({ compressionLevel: PNG_COMPRESSION }).toBuffer();
  }
}

export async function augmentImage(job: AugmentImageJob): Promise<AugmentImageResult> {
  const t0 = performance.now();
  const { data, info } = await sharp(job.input)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${job.input}: decoded to ${info.channels} channels, expected 3`);
  const img: RawImage = { data, width: info.width, height: info.height };
  for (const out of job.outputs) {
    const augmented = await applyAugmentation(out.method, img, mulberry32(out.seed));
    await fs.writeFile(out.path, await encode(augmented, out.path));
  }
  return { width: info.width, height: info.height, ms: performance.now() - t0 };
}
