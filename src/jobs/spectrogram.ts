import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Type, type Static } from '@sinclair/typebox';
import { badPath } from '../domain/errors.js';
import {
  ANIMATION_BOX,
  ANIMATION_FRAME_MS,
  ANIMATION_MAX_FRAMES,
  writeAnimation,
} from '../engines/annotate.js';
import { iqSampleCount, isRecording, type IqDtype } from '../signal/iq.js';
import { SIGNAL_FILE, writeSignalFile, type SignalParams } from '../signal/params.js';
import { samplesPerSlice, SLICING_FIELDS, sliceGrid, sliceStart } from '../signal/slicing.js';
import type { WorkerPool } from '../workers/pool.js';
import type { SliceResult } from '../workers/slice-worker.js';
import { inputAndOutput, isInside } from '../util/files.js';
import { throwIfAborted, type JobDefinition, defineJob } from './job.js';

export const SpectrogramBody = Type.Object({
  input_path: Type.String({
    minLength: 1,
    description: 'A .iq/.dat recording, or a root of class folders of them',
  }),
  output_path: Type.String({ minLength: 1, description: 'Receives the images, mirroring the input layout' }),
  ...SLICING_FIELDS,
  format: Type.Union([Type.Literal('png'), Type.Literal('jpg'), Type.Literal('webp')], { default: 'png' }),
  colormap: Type.Literal('jet', { default: 'jet' }),
  save_matrix: Type.Boolean({ default: false, description: 'Also write each slice’s dB matrix as .npy' }),
  animation: Type.Boolean({
    default: false,
    description: 'Also write the frames of each recording as one animated image, <pack>.<animation_format>',
  }),
  animation_format: Type.Union([Type.Literal('webp'), Type.Literal('gif')], { default: 'webp' }),
});
type Body = Static<typeof SpectrogramBody>;

interface Params extends Omit<Body, 'colormap'> {
  colormap: 'jet';
  samples_per_slice: number;
}

/** Recordings as paths relative to `root`: files directly in it and in its class folders. */
async function recordingsUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile() && isRecording(e.name)) out.push(e.name);
    if (e.isDirectory()) {
      for (const f of await fs.readdir(path.join(root, e.name), { withFileTypes: true })) {
        if (f.isFile() && isRecording(f.name)) out.push(path.join(e.name, f.name));
      }
    }
  }
  return out.sort();
}

/** `<pack> (<i>).<ext>`, i from 1, beside the recording's mirrored folder. */
export function sliceFileName(recording: string, index: number, ext: string): string {
  const pack = path.basename(recording, path.extname(recording));
  return `${pack} (${index + 1}).${ext}`;
}

export function spectrogramJob(pool: WorkerPool): JobDefinition {
  return defineJob<typeof SpectrogramBody, Params>({
    kind: 'spectrogram',
    resourceClass: 'preprocessing',
    route: 'spectrogram',
    body: SpectrogramBody,

    async validate(body: Body, { paths }) {
      const { input, output, stat: st } = await inputAndOutput(paths, body);
      const perSlice = samplesPerSlice(body);
      let files: string[];
      if (st.isFile()) {
        if (!isRecording(input)) {
          throw badPath(`input_path: '${body.input_path}' is not a .iq or .dat recording`, {
            field: 'input_path',
          });
        }
        files = [path.basename(input)];
      } else {
        if (isInside(output, input))
          throw badPath('output_path: must not be inside input_path', { field: 'output_path' });
        files = await recordingsUnder(input);
        if (files.length === 0) {
          throw badPath(
            `input_path: no .iq or .dat recordings in '${body.input_path}' or its class folders`,
            {
              field: 'input_path',
            },
          );
        }
      }
      const root = st.isFile() ? path.dirname(input) : input;
      for (const f of files) {
        try {
          await iqSampleCount(path.join(root, f), body.dtype as IqDtype);
        } catch (err) {
          throw badPath(`input_path: ${(err as Error).message.replace(root + path.sep, '')}`, {
            field: 'input_path',
          });
        }
      }
      // Only this kind's own fields (the body also carries task_id, priority and the like).
      const params: Params = {
        input_path: body.input_path,
        output_path: body.output_path,
        sample_rate: body.sample_rate,
        stft_point: body.stft_point,
        duration_time: body.duration_time,
        ratio: body.ratio,
        render: body.render,
        dtype: body.dtype,
        format: body.format,
        width: body.width,
        height: body.height,
        colormap: 'jet',
        save_matrix: body.save_matrix,
        animation: body.animation,
        animation_format: body.animation_format,
        samples_per_slice: perSlice,
      };
      return {
        params,
        input_path: paths.display(input),
        output_path: paths.display(output),
        notes: [],
      };
    },

    async run(p, ctx) {
      // Tasks accepted before ratio and render existed were asked for consecutive slices,
      // power-averaged: they keep that if they run again after an upgrade.
      const ratio = p.ratio ?? 0;
      const renderMode = p.render ?? 'power';
      const grid = (samples: number) => sliceGrid(samples, p.samples_per_slice, ratio);
      const input = ctx.paths.resolve(p.input_path, 'input_path');
      const output = ctx.paths.resolve(p.output_path, 'output_path');
      const st = await fs.stat(input);
      const root = st.isFile() ? path.dirname(input) : input;
      const files = st.isFile() ? [path.basename(input)] : await recordingsUnder(input);
      const sizes = await Promise.all(files.map((f) => iqSampleCount(path.join(root, f), p.dtype)));
      const total = sizes.reduce((a, n) => a + grid(n).count, 0);
      ctx.log(
        `Converting ${files.length} recording(s) into ${total} slice(s) of ${p.samples_per_slice} samples ` +
          `(${p.duration_time} s at ${p.sample_rate} S/s, one every ${p.duration_time * 2 ** -ratio} s: ratio ${ratio}), ` +
          `${p.stft_point}-point STFT, ${p.width}x${p.height} ${p.format} (${renderMode} rendering)` +
          ` on ${pool.size} worker thread(s)`,
      );
      const started = performance.now();
      let done = 0;
      let truncated = 0;
      let stftMs = 0;
      let renderMs = 0;
      let animations = 0;
      const inflight: Promise<SliceResult>[] = [];
      const settle = async () => {
        const r = await (inflight.shift() as Promise<SliceResult>);
        done++;
        stftMs += r.stftMs;
        renderMs += r.renderMs;
        ctx.progress(total > 0 ? (done / total) * 100 : 100, `slice ${done}/${total}`);
      };
      try {
        await convertAll();
      } finally {
        // On failure or cancel, let the slices already handed to workers finish or fail first.
        await Promise.allSettled(inflight);
      }
      async function convertAll(): Promise<void> {
        for (const rel of files) {
          const outDir = ctx.paths.within(output, path.join(output, path.dirname(rel)), 'output_path');
          await fs.mkdir(outDir, { recursive: true });
          const file = path.join(root, rel);
          const samples = await iqSampleCount(file, p.dtype);
          const { count, tail, uncovered } = grid(samples);
          truncated += uncovered;
          if (tail > 0) {
            ctx.log(
              count === 0
                ? `${rel}: its ${samples} samples do not fill a slice of ${p.samples_per_slice}: no image`
                : `${rel}: the last ${tail} samples do not fill a slice and are dropped`,
              'WARNING',
            );
          }
          if (uncovered > tail)
            ctx.log(`${rel}: ratio ${ratio} skips ${uncovered - tail} samples between slices`);
          const images: string[] = [];
          for (let index = 0; index < count; index++) {
            throwIfAborted(ctx.signal);
            const imagePath = ctx.paths.within(
              output,
              path.join(outDir, sliceFileName(rel, index, p.format)),
              'output_path',
            );
            images.push(imagePath);
            // The worker reads its slice itself, straight into the STFT's memory: the main
            // thread holds no samples, whatever the recording's size.
            const task = pool.renderSlice(
              {
                source: {
                  file,
                  dtype: p.dtype,
                  firstSample: sliceStart(index, p.samples_per_slice, ratio),
                  samples: p.samples_per_slice,
                },
                stftPoint: p.stft_point,
                width: p.width,
                height: p.height,
                format: p.format,
                colormap: p.colormap,
                render: renderMode,
                imagePath,
                npyPath: p.save_matrix ? path.join(outDir, sliceFileName(rel, index, 'npy')) : null,
              },
              ctx.signal,
            );
            // Handled here so a failure while another slice is awaited is not an unhandled
            // rejection; settle() still sees it and fails the task.
            task.catch(() => undefined);
            inflight.push(task);
            // Keep every worker busy, with one more queued so a worker that finishes starts
            // again at once.
            if (inflight.length > pool.size) await settle();
          }
          if (p.animation && images.length > 0) {
            while (inflight.length > 0) await settle(); // this recording's frames are all on disk
            await animate(rel, outDir, images);
          }
        }
        while (inflight.length > 0) await settle();
      }
      async function animate(rel: string, outDir: string, images: string[]): Promise<void> {
        const frames = images.slice(0, ANIMATION_MAX_FRAMES);
        if (images.length > frames.length) {
          ctx.log(
            `${rel}: the animation keeps the first ${frames.length} of ${images.length} frames`,
            'WARNING',
          );
        }
        // Frames scaled to one common size first: an animation's frames must match.
        const scaled = await Promise.all(
          frames.map((f) =>
            sharp(f)
              .resize({ ...ANIMATION_BOX, fit: 'inside', withoutEnlargement: true })
              .png()
              .toBuffer(),
          ),
        );
        const pack = path.basename(rel, path.extname(rel));
        const out = path.join(outDir, `${pack}.${p.animation_format}`);
        await writeAnimation(scaled, out, p.animation_format, ANIMATION_FRAME_MS);
        animations++;
      }
      // How these images were made, beside them: split and augment carry it along, training
      // copies it into the model card, and raw-IQ inference slices the same way from the card.
      const signal: SignalParams = {
        sample_rate: p.sample_rate,
        stft_point: p.stft_point,
        duration_time: p.duration_time,
        ratio,
        noverlap: p.stft_point / 2,
        dtype: p.dtype,
        width: p.width,
        height: p.height,
        colormap: p.colormap,
        render: renderMode,
        format: p.format,
        source: p.input_path,
      };
      await writeSignalFile(ctx.paths.within(output, path.join(output, SIGNAL_FILE), 'output_path'), signal);
      const seconds = (performance.now() - started) / 1000;
      const stats = {
        files: files.length,
        slices: done,
        images: done,
        matrices: p.save_matrix ? done : 0,
        animations,
        truncated_samples: truncated,
        seconds,
        seconds_per_slice: done > 0 ? seconds / done : null,
        stft_ms_per_slice: done > 0 ? stftMs / done : null,
        render_ms_per_slice: done > 0 ? renderMs / done : null,
      };
      return { message: `${done} spectrogram image(s) from ${files.length} recording(s)`, stats };
    },
  });
}
