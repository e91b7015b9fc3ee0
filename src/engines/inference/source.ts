/**
 * What an inference run classifies: the files of its source (one file, or a folder walked
 * recursively), each image one item and each raw recording one item per slice, and the files it
 * cannot classify with the reason. Engine-independent: ONNX Runtime and the PyTorch runner get the
 * same items in the same order.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LogLevel } from '../../domain/task.js';
import { iqSampleCount, isRecording, type IqDtype } from '../../signal/iq.js';
import { sliceGrid } from '../../signal/slicing.js';
import { isImageFile } from '../../util/files.js';

/** One thing to classify: an image, or one frame (slice) of a recording. */
export interface Item {
  /** Path relative to the source folder; '' when the source is this one file. */
  rel: string;
  /** 1-based frame number within a recording; null for an image. */
  frame: number | null;
  /** The recording's last frame: its animation can be written. */
  last: boolean;
}

/** An item ready for an engine: its tensor (ONNX) or a file to read (PyTorch), or why it is not. */
export interface Prepared {
  item: Item;
  tensor?: Float32Array;
  file?: string;
  preview?: Buffer | null;
  error?: string;
}

/** A file, or a frame of a recording, that was not classified, and why. */
export interface Failure {
  file: string;
  frame?: number;
  error: string;
}

export type Log = (message: string, level?: LogLevel) => void;

/** The first line of an error's message (ONNX Runtime's and sharp's run on for many lines). */
export function errorLine(err: unknown): string {
  return (err as Error).message.split('\n')[0] ?? String(err);
}

/** Where the source's files are, how the log names them, and where their outputs go. */
export class SourceLayout {
  /** `files` as sourceFiles lists them: [''] when the source is one file. */
  constructor(
    readonly source: string,
    readonly out: string,
    readonly files: string[],
  ) {}

  get isDir(): boolean {
    return this.files.length !== 1 || this.files[0] !== '';
  }

  abs(rel: string): string {
    return rel === '' ? this.source : path.join(this.source, rel);
  }

  shown(rel: string): string {
    return rel === '' ? path.basename(this.source) : rel;
  }

  /** The output path for a file's copy: the source layout mirrored under `out`. */
  target(rel: string): string {
    return path.join(this.out, this.isDir ? rel : path.basename(this.source));
  }
}

/** Every regular file under `root` (or `root` itself, as ''), relative paths, sorted. */
export async function sourceFiles(root: string): Promise<string[]> {
  const st = await fs.stat(root);
  if (!st.isDirectory()) return [''];
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? path.join(rel, e.name) : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/** How recordings are cut into frames (as the spectrogram task cut the training images). */
export interface FrameGrid {
  dtype: IqDtype;
  samplesPerSlice: number;
  ratio: number;
}

export interface ItemPlan {
  items: Item[];
  failed: Failure[];
  recordings: number;
  /** How many of the items are frames of recordings. */
  frames: number;
}

/** The items of every file in `layout`, in its order; files that yield none are `failed`. */
export async function planItems(layout: SourceLayout, grid: FrameGrid, log: Log): Promise<ItemPlan> {
  const failed: Failure[] = [];
  const items: Item[] = [];
  let recordings = 0;
  for (const rel of layout.files) {
    const name = path.basename(layout.abs(rel));
    if (isImageFile(name)) {
      items.push({ rel, frame: null, last: true });
    } else if (isRecording(name)) {
      const frames = await recordingFrames(layout, rel, grid, log);
      if ('error' in frames) {
        failed.push({ file: layout.shown(rel), error: frames.error });
        continue;
      }
      for (let f = 1; f <= frames.count; f++) items.push({ rel, frame: f, last: f === frames.count });
      recordings++;
    } else {
      failed.push({ file: layout.shown(rel), error: 'neither an image nor a raw IQ recording (.iq .dat)' });
    }
  }
  return { items, failed, recordings, frames: items.filter((i) => i.frame !== null).length };
}

/** How many frames a recording yields, or why none. */
async function recordingFrames(
  layout: SourceLayout,
  rel: string,
  grid: FrameGrid,
  log: Log,
): Promise<{ count: number } | { error: string }> {
  let samples: number;
  try {
    samples = await iqSampleCount(layout.abs(rel), grid.dtype);
  } catch (err) {
    return { error: errorLine(err).replace(layout.abs(rel), 'the file') };
  }
  const { count, tail } = sliceGrid(samples, grid.samplesPerSlice, grid.ratio);
  if (count === 0) return { error: `${samples} samples: less than one slice of ${grid.samplesPerSlice}` };
  if (tail > 0)
    log(`${layout.shown(rel)}: the last ${tail} samples do not fill a slice and are not classified`);
  return { count };
}

/** "3 image(s)", "12 frame(s) of 4 recording(s)", or both joined by "and". */
export function amount(images: number, frames: number, recordings: number): string {
  const parts: string[] = [];
  if (images > 0 || recordings === 0) parts.push(`${images} image(s)`);
  if (recordings > 0) parts.push(`${frames} frame(s) of ${recordings} recording(s)`);
  return parts.join(' and ');
}
