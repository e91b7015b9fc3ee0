/**
 * An image as the models were trained to see it (torchvision ToTensor after Resize on a PIL
 * image): decoded to 8-bit RGB (alpha dropped, grey replicated — as PIL's convert('RGB')),
 * resized with Pillow's bilinear filter, scaled to [0, 1], channels first.
 */
import sharp from 'sharp';
import { pilBilinearResize } from './pil-resize.js';

/** Writes the CHW float tensor of one image into `out` at `offset` (3·size² values). */
export async function imageTensorInto(
  input: string | Buffer,
  size: number,
  out: Float32Array,
  offset = 0,
): Promise<void> {
  const { data, info } = await sharp(input, { failOn: 'error' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 channels after decoding, got ${info.channels}`);
  const rgb = pilBilinearResize(
    new Uint8Array(data.buffer, data.byteOffset, data.length),
    info.width,
    info.height,
    3,
    size,
    size,
  );
  rgbToChw(rgb, size, out, offset);
}

/** Interleaved 8-bit RGB (size × size) → channels-first floats in [0, 1] at `offset` of `out`. */
export function rgbToChw(rgb: Uint8Array, size: number, out: Float32Array, offset: number): void {
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    out[offset + i] = (rgb[i * 3] as number) / 255;
    out[offset + plane + i] = (rgb[i * 3 + 1] as number) / 255;
    out[offset + 2 * plane + i] = (rgb[i * 3 + 2] as number) / 255;
  }
}

/** Worker-thread task: one image (a file or encoded bytes) → its CHW tensor, or the reason it failed. */
export async function imageInput(job: {
  input: string | Uint8Array;
  size: number;
}): Promise<{ tensor: Float32Array } | { error: string }> {
  const tensor = new Float32Array(3 * job.size * job.size);
  try {
    await imageTensorInto(
      typeof job.input === 'string' ? job.input : Buffer.from(job.input),
      job.size,
      tensor,
    );
    return { tensor };
  } catch (err) {
    return { error: `unreadable image: ${(err as Error).message.split('\n')[0]}` };
  }
}
