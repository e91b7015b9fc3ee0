import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Type, type Static } from '@sinclair/typebox';
import { badPath } from '../domain/errors.js';
import { imagesUnder, inputAndOutput, isImageFile, isInside } from '../util/files.js';
import { JobFailure, throwIfAborted, type JobDefinition, defineJob } from './job.js';

export const CropBody = Type.Object({
  input_path: Type.String({
    minLength: 1,
    description: 'An image, or a folder of images (sub-folders mirrored)',
  }),
  output_path: Type.String({ minLength: 1, description: 'Folder that receives the cropped images' }),
  x: Type.Integer({ minimum: 0 }),
  y: Type.Integer({ minimum: 0 }),
  width: Type.Integer({ minimum: 1 }),
  height: Type.Integer({ minimum: 1 }),
});
type CropBody = Static<typeof CropBody>;

interface CropParams {
  input_path: string;
  output_path: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

const MAX_REPORTED_FAILURES = 100;

export const cropJob: JobDefinition = defineJob<typeof CropBody, CropParams>({
  kind: 'image_crop',
  resourceClass: 'preprocessing',
  route: 'crop',
  body: CropBody,

  async validate(body: CropBody, { paths }) {
    const { input, output, stat: st } = await inputAndOutput(paths, body);
    if (st.isFile() && !isImageFile(path.basename(input))) {
      throw badPath(
        `input_path: '${body.input_path}' is not an image (.jpg .jpeg .png .gif .bmp .tiff .webp)`,
        {
          field: 'input_path',
        },
      );
    }
    if (st.isDirectory() && isInside(output, input)) {
      throw badPath('output_path: must not be inside input_path', { field: 'output_path' });
    }
    const { x, y, width, height } = body;
    const params: CropParams = {
      input_path: body.input_path,
      output_path: body.output_path,
      x,
      y,
      width,
      height,
    };
    return { params, input_path: paths.display(input), output_path: paths.display(output) };
  },

  async run(p, ctx) {
    const input = ctx.paths.resolve(p.input_path, 'input_path');
    const output = ctx.paths.resolve(p.output_path, 'output_path');
    const st = await fs.stat(input);
    const root = st.isDirectory() ? input : path.dirname(input);
    const files = st.isDirectory() ? await imagesUnder(input) : [path.basename(input)];
    if (files.length === 0) throw new Error(`no images found in ${p.input_path}`);
    ctx.log(`Cropping ${files.length} image(s) to ${p.width}x${p.height} at (${p.x}, ${p.y})`);
    const failures: { file: string; error: string }[] = [];
    let success = 0;
    for (const [i, rel] of files.entries()) {
      throwIfAborted(ctx.signal);
      const src = path.join(root, rel);
      try {
        const dst = ctx.paths.within(output, path.join(output, rel), 'output_path');
        const meta = await sharp(src).metadata();
        const w = meta.width ?? 0;
        const h = meta.height ?? 0;
        if (p.x + p.width > w || p.y + p.height > h) {
          throw new Error(
            `the crop ${p.width}x${p.height} at (${p.x}, ${p.y}) falls outside the ${w}x${h} image`,
          );
        }
        await fs.mkdir(path.dirname(dst), { recursive: true });
        await sharp(src).extract({ left: p.x, top: p.y, width: p.width, height: p.height }).toFile(dst);
        success++;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        failures.push({ file: rel, error: msg });
        ctx.log(`${rel}: ${msg}`, 'WARNING');
      }
      ctx.progress(((i + 1) / files.length) * 100, `cropped ${i + 1}/${files.length}`);
    }
    const stats = {
      total_images: files.length,
      success,
      failed: failures.length,
      failures: failures.slice(0, MAX_REPORTED_FAILURES),
    };
    if (success === 0) {
      const first = failures[0];
      throw new JobFailure(
        `no image could be cropped${first ? `; ${first.file}: ${first.error}` : ''}`,
        stats,
      );
    }
    return { message: `cropped ${success} of ${files.length} image(s)`, stats };
  },
});
