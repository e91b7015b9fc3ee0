import os from 'node:os';
import { Piscina } from 'piscina';
import type { SliceJob, SliceResult } from './slice-worker.js';

/**
 * The worker threads that run STFT + render (CPU-heavy, never on the HTTP event loop). Built once
 * by the composition root; threads start on first use and are closed with the service. The worker
 * file is the compiled .js in dist/, or the .ts source when running under tsx (tests).
 */
export class SlicePool {
  private pool: Piscina | null = null;

  constructor(private readonly threads = Math.max(1, Math.min(2, os.availableParallelism()))) {}

  run(job: SliceJob, signal?: AbortSignal): Promise<SliceResult> {
    this.pool ??= new Piscina({
      filename: new URL(`./slice-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
        .href,
      minThreads: 0,
      maxThreads: this.threads,
      idleTimeout: 30_000,
    });
    return this.pool.run(job, {
      transferList: [job.iq.buffer as ArrayBuffer],
      signal,
    }) as Promise<SliceResult>;
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
