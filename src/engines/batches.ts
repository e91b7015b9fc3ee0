/**
 * Items through a model in batches, three stages overlapped: while the model runs batch c, the
 * worker threads prepare batch c + 1 and the outputs of batch c − 1 are still being written.
 * Batches are finished in order, one at a time. Used by the inference task on ONNX Runtime.
 */

export interface BatchStages<I, R> {
  items: I[];
  batchSize: number;
  /** The task's signal: preparing stops with it (and when the run fails). */
  signal: AbortSignal;
  /** Called before each batch runs; throws to stop the run (the task's cancel check). */
  checkpoint(): void;
  /** One item's input, made off the event loop; `signal` stops it. */
  prepare(item: I, signal: AbortSignal): Promise<R>;
  /** The model's output for each prepared item of a batch (undefined: none, e.g. unreadable). */
  run(ready: R[]): Promise<(ArrayLike<number> | undefined)[]>;
  /** Writes a batch's outputs (runs while the next batch is in the model). */
  finish(ready: R[], outputs: (ArrayLike<number> | undefined)[]): Promise<void>;
}

export async function runBatches<I, R>(s: BatchStages<I, R>): Promise<void> {
  // Stopped with the task, or when the run fails: a batch being prepared is then wasted work.
  const stopPrefetch = new AbortController();
  const signal = AbortSignal.any([s.signal, stopPrefetch.signal]);
  const chunks: I[][] = [];
  for (let i = 0; i < s.items.length; i += s.batchSize) chunks.push(s.items.slice(i, i + s.batchSize));
  const prepareChunk = (c: number) => {
    const ready = Promise.all((chunks[c] as I[]).map((item) => s.prepare(item, signal)));
    ready.catch(() => undefined); // awaited below; cancelled with the task otherwise
    return ready;
  };
  let next = chunks.length ? prepareChunk(0) : null;
  let finishing: Promise<void> = Promise.resolve();
  try {
    for (let c = 0; c < chunks.length; c++) {
      const ready = await (next as Promise<R[]>);
      s.checkpoint();
      // The workers prepare the next batch while the model runs this one.
      next = c + 1 < chunks.length ? prepareChunk(c + 1) : null;
      const outputs = await s.run(ready);
      // Outputs of this batch are written while the next one runs; batches stay in order.
      await finishing;
      finishing = s.finish(ready, outputs);
      finishing.catch(() => undefined); // awaited with the next batch or below
    }
    await finishing;
  } finally {
    // On a failure mid-run, the next batch may still be preparing and the last one's outputs
    // still being written: let them settle before the run ends.
    stopPrefetch.abort();
    await Promise.allSettled([next, finishing]);
  }
}
