/**
 * Worker-thread task (run by Piscina, see WorkerPool): one slice of IQ → STFT → dB matrix →
 * coloured, resized, encoded image (and optionally the .npy matrix), written straight to disk so
 * only timings travel back. Runs off the event loop that serves HTTP.
 */
import fs from 'node:fs';
import sharp from 'sharp';
import { pilBilinearResize } from '../engines/preprocess/pil-resize.js';
import { rgbToChw } from '../engines/preprocess/image.js';
import { readSamplesSync, type IqDtype } from '../signal/iq.js';
import { npyFloat32 } from '../signal/npy.js';
import { colourColumns, colouriseFast, encodeImage, type ImageFormat } from '../signal/render.js';
import { sliceColumns, sliceImageData, type RenderMode } from '../signal/slice-image.js';
import { stftPlan, type SliceSamples, type StftPlan } from '../signal/stft.js';
import type { ColormapName } from '../signal/colormap.js';

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
  /** matplotlib (the reference's pictures; the default) or power (mean |Z|² per column). */
  render?: RenderMode;
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

function planFor(n: number): StftPlan {
  let plan = plans.get(n);
  if (!plan) {
    plan = stftPlan(n);
    plans.set(n, plan);
  }
  return plan;
}

/** The slice's samples, read by this worker straight into the STFT's memory when from a file. */
async function withSamples<T>(
  src: SliceJob['source'],
  use: (samples: SliceSamples) => Promise<T>,
): Promise<T> {
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
    return await use(samples);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

export function renderSlice(job: SliceJob): Promise<SliceResult> {
  return withSamples(job.source, (samples) => render(job, planFor(job.stftPoint), samples));
}

/** A slice's picture as raw RGB, `columns` wide (the requested width unless power-rendered). */
interface Picture {
  rgb: Buffer;
  columns: number;
  freqs: number;
  frames: number;
  db: Float32Array | null;
  stftMs: number;
}

/** The one place a slice becomes pixels: the spectrogram task and inference both come here. */
function picture(
  samples: SliceSamples,
  plan: StftPlan,
  opts: { width: number; height: number; colormap: ColormapName; render?: RenderMode },
  keepMatrix: boolean,
): Picture {
  const t0 = performance.now();
  if ((opts.render ?? 'matplotlib') === 'matplotlib') {
    const data = sliceColumns(samples, plan, opts.width, opts.height, keepMatrix);
    const stftMs = performance.now() - t0;
    const rgb = colourColumns(data.columns, opts.width, opts.height, data.rowTaps, opts.colormap, data);
    return { rgb, columns: opts.width, freqs: data.freqs, frames: data.frames, db: data.db, stftMs };
  }
  const data = sliceImageData(samples, plan, opts.width, keepMatrix);
  const stftMs = performance.now() - t0;
  const rgb = colouriseFast(data.reduced, data.freqs, data.columns, opts.colormap, data, opts.height);
  return { rgb, columns: data.columns, freqs: data.freqs, frames: data.frames, db: data.db, stftMs };
}

async function render(job: SliceJob, plan: StftPlan, samples: SliceSamples): Promise<SliceResult> {
  const pic = picture(samples, plan, job, job.npyPath !== null);
  const t1 = performance.now();
  const image = await encodeImage(pic.rgb, pic.columns, job.height, job);
  await fs.promises.writeFile(job.imagePath, image);
  if (job.npyPath && pic.db)
    await fs.promises.writeFile(job.npyPath, npyFloat32(pic.db, pic.freqs, pic.frames));
  return { freqs: pic.freqs, frames: pic.frames, stftMs: pic.stftMs, renderMs: performance.now() - t1 };
}

/** One slice drawn for a screen (the dashboard's explorer): a PNG in memory, nothing written. */
export interface PreviewJob {
  source: SliceJob['source'];
  stftPoint: number;
  width: number;
  height: number;
  colormap: ColormapName;
  render?: RenderMode;
}

/** The slice as the spectrogram task draws it, at the asked size, encoded as a PNG. */
export function slicePreview(job: PreviewJob): Promise<Uint8Array> {
  return withSamples(job.source, async (samples) => {
    const pic = picture(samples, planFor(job.stftPoint), job, false);
    return encodeImage(pic.rgb, pic.columns, job.height, { ...job, format: 'png' });
  });
}

/**
 * A slice as a classifier input: width × height and render are how the training images were
 * drawn (the spectrogram task's fields; matplotlib when not given).
 */
export interface FrameJob extends PreviewJob {
  /** The model's input size: the frame comes back as its CHW tensor (ONNX engine)… */
  inputSize: number;
  /** …or is written here as a PNG for the PyTorch runner to read (then no tensor). */
  pngPath: string | null;
  /** A small PNG of the frame for the recording's animation, fitted into this box; 0 = none. */
  preview: { width: number; height: number };
}

export interface FrameResult {
  tensor: Float32Array | null;
  preview: Uint8Array | null;
}

/**
 * One slice of a recording as a classifier input: rendered exactly as the spectrogram task
 * renders it (the pixels a PNG training image decodes to), then resized as training resized it.
 */
export function frameInput(job: FrameJob): Promise<FrameResult> {
  return withSamples(job.source, async (samples) => {
    const pic = picture(samples, planFor(job.stftPoint), job, false);
    let rgb = pic.rgb;
    if (pic.columns !== job.width) {
      // As encodeImage does for power-rendered slices with fewer STFT frames than image columns.
      rgb = await sharp(rgb, { raw: { width: pic.columns, height: job.height, channels: 3 } })
        .resize(job.width, job.height, { fit: 'fill' })
        .raw()
        .toBuffer();
    }
    const raw = { raw: { width: job.width, height: job.height, channels: 3 as const } };
    let tensor: Float32Array | null = null;
    if (job.pngPath) {
      await fs.promises.writeFile(
        job.pngPath,
        await encodeImage(rgb, job.width, job.height, { ...job, format: 'png' }),
      );
    } else {
      const size = job.inputSize;
      tensor = new Float32Array(3 * size * size);
      rgbToChw(pilBilinearResize(rgb, job.width, job.height, 3, size, size), size, tensor, 0);
    }
    const preview =
      job.preview.width > 0
        ? await sharp(rgb, raw)
            .resize({ ...job.preview, fit: 'inside', withoutEnlargement: true })
            .png({ compressionLevel: 2 })
            .toBuffer()
        : null;
    return { tensor, preview };
  });
}
