/**
 * The reference's inference output: the predicted class and its confidence drawn in the
 * top-left corner of a copy of the image, on a dark box so it reads on any spectrogram, sized
 * from the image's height so it stays legible on thumbnails and on 1920×1440 alike.
 */
import sharp from 'sharp';
import { PNG_COMPRESSION } from '../signal/png.js';

/** Animation frames are scaled to fit this box and capped in number, so memory stays bounded. */
export const ANIMATION_BOX = { width: 640, height: 480 };
export const ANIMATION_MAX_FRAMES = 300;
export const ANIMATION_FRAME_MS = 200;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A copy of `input` (a file or encoded bytes) with the label drawn on, ready to encode. */
export async function annotated(
  input: string | Buffer,
  label: string,
  confidence: number,
): Promise<sharp.Sharp> {
  const img = sharp(input, { failOn: 'error' });
  const meta = await img.metadata();
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  const text = `${label} ${(confidence * 100).toFixed(1)}%`;
  const font = Math.max(10, Math.round(Math.min(h / 16, (w * 0.9) / (0.62 * text.length))));
  const pad = Math.max(2, Math.round(font * 0.3));
  const boxW = Math.min(w, Math.round(text.length * font * 0.62 + 2 * pad));
  const boxH = Math.min(h, font + 2 * pad);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${boxW}" height="${boxH}">
<rect width="100%" height="100%" fill="#000000" fill-opacity="0.6"/>
<text x="${pad}" y="${pad + font * 0.82}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${font}" fill="#ffffff" font-weight="bold">${esc(text)}</text>
</svg>`;
  return img.composite([{ input: Buffer.from(svg), left: 0, top: 0 }]);
}

export async function annotateImage(
  input: string,
  output: string,
  label: string,
  confidence: number,
): Promise<void> {
  const img = await annotated(input, label, confidence);
  // PNG at the service's fast zlib level (the default level costs ~10 ms more per 640×480 copy).
  await (output.toLowerCase().endsWith('.png') ? img.png({ compressionLevel: PNG_COMPRESSION }) : img).toFile(
    output,
  );
}

/**
 * An image (a file or encoded bytes) as one frame of an animation: fitted into ANIMATION_BOX
 * (never enlarged), as PNG. Frames of one recording come out the same size, as an animation needs.
 */
export function animationFrame(input: string | Buffer): Promise<Buffer> {
  return sharp(input)
    .resize({ ...ANIMATION_BOX, fit: 'inside', withoutEnlargement: true })
    .png()
    .toBuffer();
}

/** Frames of equal size (encoded images) as one looping animated WebP or GIF. */
export async function writeAnimation(
  frames: Buffer[],
  output: string,
  format: 'webp' | 'gif',
  frameMs: number,
): Promise<void> {
  const joined = sharp(frames, { join: { animated: true } });
  const delay = frames.map(() => frameMs);
  await (format === 'gif' ? joined.gif({ loop: 0, delay }) : joined.webp({ loop: 0, delay })).toFile(output);
}
