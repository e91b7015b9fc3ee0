/**
 * ONNX Runtime in process: sessions cached per model file (bounded, least recently used first
 * out; a file changed on disk gets a new session), intra-op threads set per cache, softmax
 * probabilities out.
 */
import fs from 'node:fs/promises';
import ort from 'onnxruntime-node';

interface Cached {
  key: string;
  session: Promise<ort.InferenceSession>;
  /** Holders that have not released it yet; an evicted session is released when this reaches 0. */
  users: number;
  evicted: boolean;
}

/** A session lent out by the cache: call release() when done with it (once). */
export interface SessionLease {
  session: ort.InferenceSession;
  /** 'cuda' when the CUDA execution provider runs it, else 'cpu'. */
  provider: 'cuda' | 'cpu';
  /** Set when a GPU was asked for but this build of ONNX Runtime cannot use one. */
  fallback?: string;
  release(): void;
}

export class OnnxSessionCache {
  private readonly entries = new Map<string, Cached>();
  /** Why the CUDA execution provider could not be used, once it has failed (not retried). */
  private cudaError: string | null = null;

  constructor(
    private readonly capacity = 4,
    private readonly threads = 1,
  ) {}

  /**
   * The session for `file` (created on first use; the file's size and mtime are part of the
   * key), on GPU `gpu` when given and the CUDA execution provider loads, on the CPU otherwise.
   * Sessions in use are never released under their holders: an evicted one goes when its last
   * lease is released.
   */
  async acquire(file: string, gpu: number | null = null): Promise<SessionLease> {
    const st = await fs.stat(file);
    const wantCuda = gpu !== null && this.cudaError === null;
    const id = wantCuda ? `${file}\0cuda:${gpu}` : file;
    const key = `${st.size}:${st.mtimeMs}`;
    let entry = this.entries.get(id);
    if (entry && entry.key !== key) {
      this.evict(id, entry);
      entry = undefined;
    }
    if (entry) {
      this.entries.delete(id);
      this.entries.set(id, entry); // most recently used last
    } else {
      const created = this.create(file, wantCuda ? gpu : null);
      entry = { key, session: created, users: 0, evicted: false };
      const e = entry;
      this.entries.set(id, e);
      created.catch(() => {
        if (this.entries.get(id) === e) this.entries.delete(id);
      });
      for (const [oldId, old] of this.entries) {
        if (this.entries.size <= this.capacity) break;
        if (old !== e) this.evict(oldId, old);
      }
    }
    entry.users++;
    const held = entry;
    let session: ort.InferenceSession;
    try {
      session = await held.session;
    } catch (err) {
      this.unuse(held);
      if (!wantCuda) throw err;
      this.cudaError = (err as Error).message.split('\n')[0] ?? 'unknown error';
      return { ...(await this.acquire(file, null)), fallback: this.cudaError };
    }
    let released = false;
    return {
      session,
      provider: wantCuda ? 'cuda' : 'cpu',
      ...(gpu !== null && !wantCuda ? { fallback: this.cudaError ?? '' } : {}),
      release: () => {
        if (released) return;
        released = true;
        this.unuse(held);
      },
    };
  }

  private create(file: string, gpu: number | null): Promise<ort.InferenceSession> {
    return ort.InferenceSession.create(file, {
      executionProviders: gpu === null ? ['cpu'] : [{ name: 'cuda', deviceId: gpu }],
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(id: string, e: Cached): void {
    if (this.entries.get(id) === e) this.entries.delete(id);
    e.evicted = true;
    if (e.users === 0) this.dispose(e);
  }

  private unuse(e: Cached): void {
    e.users--;
    if (e.evicted && e.users === 0) this.dispose(e);
  }

  private dispose(e: Cached): void {
    e.session.then((s) => s.release()).catch(() => undefined);
  }

  /** Releases every session not in use now; those in use go when their holders release them. */
  async close(): Promise<void> {
    for (const [id, e] of [...this.entries]) this.evict(id, e);
  }
}

/** The batch size an export fixed (e.g. 1 for a model exported without a dynamic batch axis), or null. */
export function fixedBatch(session: ort.InferenceSession): number | null {
  const m = session.inputMetadata[0];
  const b = m && m.isTensor ? m.shape[0] : undefined;
  return typeof b === 'number' && b > 0 ? b : null;
}

/**
 * The model's raw outputs for a batch of CHW tensors laid out one after another in `input`. A
 * model whose export fixed the batch size is run in runs of that size (the last one padded).
 */
export async function onnxLogits(
  session: ort.InferenceSession,
  input: Float32Array,
  batch: number,
  size: number,
): Promise<Float32Array> {
  const run = async (data: Float32Array, n: number) => {
    const feeds = { [session.inputNames[0] as string]: new ort.Tensor('float32', data, [n, 3, size, size]) };
    const result = await session.run(feeds);
    return result[session.outputNames[0] as string]?.data as Float32Array;
  };
  const fixed = fixedBatch(session);
  if (fixed === null || fixed === batch) return run(input, batch);
  const per = 3 * size * size;
  let all = new Float32Array(0);
  for (let b = 0; b < batch; b += fixed) {
    const n = Math.min(fixed, batch - b);
    const chunk = new Float32Array(fixed * per);
    chunk.set(input.subarray(b * per, (b + n) * per));
    const out = await run(chunk, fixed);
    const width = out.length / fixed; // outputs per image
    if (b === 0) all = new Float32Array(width * batch);
    all.set(out.subarray(0, width * n), b * width);
  }
  return all;
}

/** Equal-sized CHW tensors of `size`² images laid out one after another, as a batch's input. */
export function stackTensors(tensors: Float32Array[], size: number): Float32Array {
  const per = 3 * size * size;
  const input = new Float32Array(tensors.length * per);
  tensors.forEach((t, j) => input.set(t, j * per));
  return input;
}

/** Softmax probabilities for a batch of CHW tensors laid out one after another in `input`. */
export async function onnxProbabilities(
  session: ort.InferenceSession,
  input: Float32Array,
  batch: number,
  size: number,
): Promise<Float32Array[]> {
  const logits = await onnxLogits(session, input, batch, size);
  const classes = logits.length / batch;
  const out: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    const p = new Float32Array(classes);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += p[c] = Math.exp((row[c] as number) - max);
    for (let c = 0; c < classes; c++) p[c] = (p[c] as number) / sum;
    out.push(p);
  }
  return out;
}

/**
 * Why `session` cannot serve a model card, or null: its output is not `classes` wide, or its
 * input is fixed at another image size. Dimensions the export left symbolic are not checked.
 */
export function onnxCardMismatch(
  session: ort.InferenceSession,
  card: { num_classes: number; image_size: number },
): string | null {
  const dims = (m: ort.InferenceSession.ValueMetadata | undefined) =>
    m && m.isTensor ? m.shape : ([] as readonly (number | string)[]);
  const out = dims(session.outputMetadata[0]);
  const classes = out[out.length - 1];
  if (typeof classes === 'number' && classes !== card.num_classes)
    return `the ONNX model has ${classes} outputs but the model card ${card.num_classes} classes`;
  const input = dims(session.inputMetadata[0]);
  const [h, w] = [input[2], input[3]];
  if ((typeof h === 'number' && h !== card.image_size) || (typeof w === 'number' && w !== card.image_size))
    return `the ONNX model takes ${w}×${h} images but the model card says image_size ${card.image_size}`;
  return null;
}
