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
}

export class OnnxSessionCache {
  private readonly entries = new Map<string, Cached>();

  constructor(
    private readonly capacity = 4,
    private readonly threads = 1,
  ) {}

  /** The session for `file`, created on first use; the file's size and mtime are part of the key. */
  async get(file: string): Promise<ort.InferenceSession> {
    const st = await fs.stat(file);
    const key = `${st.size}:${st.mtimeMs}`;
    const hit = this.entries.get(file);
    if (hit && hit.key === key) {
      this.entries.delete(file);
      this.entries.set(file, hit); // most recently used last
      return hit.session;
    }
    if (hit) this.drop(file, hit);
    const session = ort.InferenceSession.create(file, {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    const entry = { key, session };
    this.entries.set(file, entry);
    session.catch(() => {
      if (this.entries.get(file) === entry) this.entries.delete(file);
    });
    while (this.entries.size > this.capacity) {
      const [oldest, e] = this.entries.entries().next().value as [string, Cached];
      this.drop(oldest, e);
    }
    return session;
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(file: string, e: Cached): void {
    this.entries.delete(file);
    e.session.then((s) => s.release()).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const [file, e] of [...this.entries]) this.drop(file, e);
  }
}

/** The model's raw outputs for a batch of CHW tensors laid out one after another in `input`. */
export async function onnxLogits(
  session: ort.InferenceSession,
  input: Float32Array,
  batch: number,
  size: number,
): Promise<Float32Array> {
  const feeds = {
    [session.inputNames[0] as string]: new ort.Tensor('float32', input, [batch, 3, size, size]),
  };
  const result = await session.run(feeds);
  return result[session.outputNames[0] as string]?.data as Float32Array;
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
