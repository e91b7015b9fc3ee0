/**
 * What an inference run writes: a prediction per item (and counts per class), an annotated copy
 * of each image, an annotated animation per recording, and at the end predictions.json and
 * predictions.csv. Items are recorded in order; a recording's animation is written when its last
 * frame is recorded, so only one recording's frames are held at a time.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PathSandbox } from '../../util/sandbox.js';
import {
  ANIMATION_FRAME_MS,
  ANIMATION_MAX_FRAMES,
  animationFrame,
  annotated,
  annotateImage,
  writeAnimation,
} from '../annotate.js';
import { topK } from '../choose.js';
import { errorLine, type Failure, type Log, type Prepared, type SourceLayout } from './source.js';

export interface Prediction {
  /** Relative to the source (its own name when the source is one file). */
  file: string;
  /** The same file as requests name paths (relative to the data root). */
  path: string;
  frame: number | null;
  class: string;
  confidence: number;
  top5: { class: string; confidence: number }[];
  /** The annotated copy of an image, as requests name paths (absent when none was written). */
  annotated?: string;
}

/** Copies in these formats keep them; any other image gets a .png copy. */
const ANNOTATED_FORMATS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tiff', '.tif']);

export interface OutputOptions {
  layout: SourceLayout;
  labels: string[];
  /** Write annotated copies and animations (false: predictions only). */
  annotate: boolean;
  animationFormat: 'webp' | 'gif';
  paths: PathSandbox;
  log: Log;
}

export class InferenceOutputs {
  readonly predictions: Prediction[] = [];
  readonly counts: Record<string, number> = {};
  /** Animations written, relative to the output folder. */
  readonly animations: string[] = [];
  /** Items recorded so far, classified or not. */
  done = 0;
  /** The annotated frames of the recording being recorded. */
  private animation: Buffer[] = [];

  /** `failed` is the run's list: items that fail here are added to it. */
  constructor(
    private readonly o: OutputOptions,
    readonly failed: Failure[],
  ) {}

  /**
   * Every file written goes through the sandbox: a symbolic link inside save_path (a folder or
   * a file of a previous run) must not lead the outputs out of it (out of the data root, or
   * back onto the source images).
   */
  private safe(file: string): string {
    return this.o.paths.within(this.o.layout.out, file, 'save_path');
  }

  /** Records one item's outcome: prediction, annotated copy or animation frame. */
  async record(r: Prepared, probs: ArrayLike<number> | undefined): Promise<void> {
    const { item } = r;
    const shown = this.o.layout.shown(item.rel);
    this.done++;
    if (!probs) {
      this.failed.push({
        file: shown,
        ...(item.frame !== null ? { frame: item.frame } : {}),
        error: r.error ?? 'could not be read',
      });
    } else {
      const top5 = topK(probs, this.o.labels, 5);
      const best = top5[0] as { class: string; confidence: number };
      const prediction: Prediction = {
        file: shown,
        path: this.o.paths.display(this.o.layout.abs(item.rel)),
        frame: item.frame,
        ...best,
        top5,
      };
      this.predictions.push(prediction);
      this.counts[best.class] = (this.counts[best.class] ?? 0) + 1;
      if (this.o.annotate) {
        const copy = await this.annotate(r, best);
        if (copy) prediction.annotated = this.o.paths.display(copy);
      }
    }
    if (item.frame !== null && item.last) await this.flushAnimation(item.rel);
  }

  /** predictions.json and predictions.csv in the output folder. */
  async writePredictions(): Promise<void> {
    const out = this.o.layout.out;
    await fs.writeFile(
      this.safe(path.join(out, 'predictions.json')),
      JSON.stringify(this.predictions, null, 2),
    );
    await fs.writeFile(this.safe(path.join(out, 'predictions.csv')), predictionsCsv(this.predictions));
  }

  /**
   * The annotated copy of an image (its path is returned), or the annotated frame of a
   * recording's animation.
   */
  private async annotate(r: Prepared, best: { class: string; confidence: number }): Promise<string | null> {
    const { item } = r;
    const { layout } = this.o;
    try {
      if (item.frame === null) {
        const t = layout.target(item.rel);
        const ext = path.extname(t).toLowerCase();
        const file = this.safe(ANNOTATED_FORMATS.has(ext) ? t : `${t}.png`);
        await fs.mkdir(path.dirname(file), { recursive: true });
        await annotateImage(layout.abs(item.rel), file, best.class, best.confidence);
        return file;
      }
      const preview = r.preview ?? (await this.framePreview(r));
      if (!preview) return null;
      const a = await annotated(preview, `${best.class} #${item.frame}`, best.confidence);
      this.animation.push(await a.png({ compressionLevel: 2 }).toBuffer());
      return null;
    } catch (err) {
      this.o.log(
        `${layout.shown(item.rel)}${item.frame !== null ? ` frame ${item.frame}` : ''}: classified, but the annotated output could not be written (${errorLine(err)})`,
        'WARNING',
      );
      return null;
    }
  }

  /** A frame's animation picture from its rendered file (PyTorch engine: no preview came back). */
  private async framePreview(r: Prepared): Promise<Buffer | null> {
    return r.file && this.o.annotate && (r.item.frame ?? 0) <= ANIMATION_MAX_FRAMES
      ? animationFrame(r.file)
      : null;
  }

  private async flushAnimation(rel: string): Promise<void> {
    const frames = this.animation;
    this.animation = [];
    if (!frames.length) return;
    try {
      const file = this.safe(`${this.o.layout.target(rel)}.${this.o.animationFormat}`);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await writeAnimation(frames, file, this.o.animationFormat, ANIMATION_FRAME_MS);
      this.animations.push(path.relative(this.o.layout.out, file));
    } catch (err) {
      this.o.log(
        `${this.o.layout.shown(rel)}: the annotated animation could not be written (${errorLine(err)})`,
        'WARNING',
      );
    }
  }
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** file, frame (empty for an image), class, confidence, the top 5 as "class:confidence …". */
export function predictionsCsv(predictions: Prediction[]): string {
  const csv = ['file,frame,class,confidence,top5'];
  for (const pr of predictions) {
    csv.push(
      [
        csvCell(pr.file),
        pr.frame ?? '',
        csvCell(pr.class),
        pr.confidence.toFixed(6),
        csvCell(pr.top5.map((t) => `${t.class}:${t.confidence.toFixed(4)}`).join(' ')),
      ].join(','),
    );
  }
  return `${csv.join('\n')}\n`;
}
