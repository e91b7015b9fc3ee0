/**
 * Worker-thread task (run by Piscina, see WorkerPool): one slice of IQ → STFT → dB matrix →
 * coloured, resized, encoded image (and optionally the .npy matrix), written straight to disk so
 * only timings travel back. Runs off the event loop that serves HTTP.
 */
import fs from 'node:fs';
import { readSamplesSync, type IqDtype } from './iq.js';
import { npyFloat32 } from './npy.js';
import { colouriseFast, encodeImage, type ImageFormat } from './render.js';
import { sliceImageData } from './slice-image.js';
import { stftPlan, type SliceSamples, type StftPlan } from './stft.js';
import type { ColormapName } from './colormap.js';

export interface SliceJob {
  /**
   * The slice: samples in memory (transferred), or a region of a recording the worker reads
   * itself, straight into the STFT's memory (no copy on the main thread, none in between).
   */
  source: Float32Array | { file: string; dtype: IqDtype; firstSample: number; samples: number };
  stftPoint: number;
  width: number;
  height: number;
  format: ImageFormat;
  colormap: ColormapName;
  imagePath: string;
  npyPath: string | null;
}

export interface SliceResult {
  freqs: number;
  frames: number;
  stftMs: number;
  renderMs: number;
}

const plans = new Map<number, StftPlan>();

export async function renderSlice(job: SliceJob): Promise<SliceResult> {
  let plan = plans.get(job.stftPoint);
  if (!plan) {
    plan = stftPlan(job.stftPoint);
    plans.set(job.stftPoint, plan);
  }
  const src = job.source;
  let fd: number | null = null;
  try {
    const samples: SliceSamples =
      src instanceof Float32Array
        ? src
        : {
            samples: src.samples,
            fill: (target: Float32Array) =>
              readSamplesSync((fd ??= fs.openSync(src.file, 'r')), src.dtype, src.firstSample, target),
          };
    return await render(job, plan, samples);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

async function render(job: SliceJob, plan: StftPlan, samples: SliceSamples): Promise<SliceResult> {
  const t0 = performance.now();
  const data = sliceImageData(samples, plan, job.width, job.npyPath !== null);
  const t1 = performance.now();
  const rgb = colouriseFast(data.reduced, data.freqs, data.columns, job.colormap, data, job.height);
  const image = await encodeImage(rgb, data.columns, job.height, job);
  await fs.promises.writeFile(job.imagePath, image);
  if (job.npyPath && data.db)
    await fs.promises.writeFile(job.npyPath, npyFloat32(data.db, data.freqs, data.frames));
  return { freqs: data.freqs, frames: data.frames, stftMs: t1 - t0, renderMs: performance.now() - t1 };
}
