/**
 * Worker-thread task (run by Piscina, see WorkerPool): one slice of IQ → STFT → dB matrix →
 * coloured, resized, encoded image (and optionally the .npy matrix), written straight to disk so
 * only timings travel back. Runs off the event loop that serves HTTP.
 */
import fs from 'node:fs/promises';
import { npyFloat32 } from './npy.js';
import { renderSpectrogram, type ImageFormat } from './render.js';
import { magnitudeDb, stftPlan, type StftPlan } from './stft.js';
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
  const { db, freqs, frames } = magnitudeDb(job.iq, plan);
  const t1 = performance.now();
  const image = await renderSpectrogram(db, freqs, frames, job);
  await fs.writeFile(job.imagePath, image);
  if (job.npyPath) await fs.writeFile(job.npyPath, npyFloat32(db, freqs, frames));
  return { freqs, frames, stftMs: t1 - t0, renderMs: performance.now() - t1 };
}
