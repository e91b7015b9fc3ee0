/**
 * Worker-thread task (run by Piscina, see WorkerPool): one slice of IQ → STFT → dB matrix →
 * coloured, resized, encoded image (and optionally the .npy matrix), written straight to disk so
 * only timings travel back. Runs off the event loop that serves HTTP.
 */
import fs from 'node:fs/promises';
import { npyFloat32 } from './npy.js';
import { colourise, encodeImage, type ImageFormat } from './render.js';
import { sliceImageData } from './slice-image.js';
import { stftPlan, type StftPlan } from './stft.js';
import type { ColormapName } from './colormap.js';

export interface SliceJob {
  iq: Float32Array;
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
  const t0 = performance.now();
  const data = sliceImageData(job.iq, plan, job.width, job.npyPath !== null);
  const t1 = performance.now();
  const rgb = colourise(data.reduced, data.freqs, data.columns, job.colormap, data);
  const image = await encodeImage(rgb, data.columns, data.freqs, job);
  await fs.writeFile(job.imagePath, image);
  if (job.npyPath && data.db) await fs.writeFile(job.npyPath, npyFloat32(data.db, data.freqs, data.frames));
  return { freqs: data.freqs, frames: data.frames, stftMs: t1 - t0, renderMs: performance.now() - t1 };
}
