import os from 'node:os';
import { Piscina } from 'piscina';
import type { AugmentImageJob, AugmentImageResult } from '../augment/image-task.js';
import type { FrameJob, FrameResult, PreviewJob, SliceJob, SliceResult } from './slice-worker.js';

/**
 * The worker threads for CPU-heavy work (STFT + render, image augmentation), never on the HTTP
 * event loop. Built once by the composition root; threads start on first use and are closed with
 * the service. The worker file is the compiled entry.js in dist/, or dev-entry.mjs under tsx (tests).
 */
export class WorkerPool {
  private pool: Piscina | null = null;

  constructor(private readonly threads = Math.max(1, Math.min(2, os.availableParallelism()))) {}

  private piscina(): Piscina {
    this.pool ??= new Piscina({
      filename: new URL(import.meta.url.endsWith('.ts') ? './dev-entry.mjs' : './entry.js', import.meta.url)
        .href,
      minThreads: 0,
      maxThreads: this.threads,
      idleTimeout: 30_000,
    });
    return this.pool;
  }

  renderSlice(job: SliceJob, signal?: AbortSignal): Promise<SliceResult> {
    return this.piscina().run(job, {
      name: 'renderSlice',
      // Samples in memory move to the worker without a copy; a file region is read there.
      transferList: job.source instanceof Float32Array ? [job.source.buffer as ArrayBuffer] : [],
      signal,
    }) as Promise<SliceResult>;
  }

  /** A recording's slice rendered and resized as a classifier input (inference on raw IQ). */
  frameInput(job: FrameJob, signal?: AbortSignal): Promise<FrameResult> {
    return this.piscina().run(job, { name: 'frameInput', signal }) as Promise<FrameResult>;
  }

  /** A recording's slice as a PNG for a screen (the dashboard's spectrogram explorer). */
  async slicePreview(job: PreviewJob, signal?: AbortSignal): Promise<Buffer> {
    const png = (await this.piscina().run(job, { name: 'slicePreview', signal })) as Uint8Array;
    return Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  }

  /** An image decoded and resized as training did, off the event loop. */
  imageInput(
    job: { input: string | Uint8Array; size: number },
    signal?: AbortSignal,
  ): Promise<{ tensor: Float32Array } | { error: string }> {
    return this.piscina().run(job, { name: 'imageInput', signal }) as Promise<
      { tensor: Float32Array } | { error: string }
    >;
  }

  augmentImage(job: AugmentImageJob, signal?: AbortSignal): Promise<AugmentImageResult> {
    return this.piscina().run(job, { name: 'augmentImage', signal }) as Promise<AugmentImageResult>;
  }

  get size(): number {
    return this.threads;
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    if (p) await p.destroy();
  }
}
