/**
 * POST /api/v2/inference/predict (SPEC §2.3): synchronous classification of one image or one IQ
 * chunk on ONNX Runtime, outside the task queue. Requests for the same model are batched: the
 * first waits up to `maxWaitMs` for others, a full batch (`maxBatch`) runs at once. One model run
 * at a time across all models (ONNX Runtime's own threads do the parallel work), and at most
 * `maxInflight` requests in progress: beyond that the caller gets 429 at once instead of a queue
 * without bound, so predict traffic cannot crowd out the queued tasks.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PredictSettings } from '../config.js';
import { AppError, invalidField } from '../domain/errors.js';
import { readModelCard, type ModelCard } from '../engines/model-card.js';
import { onnxProbabilities, stackTensors, type OnnxSessionCache } from '../engines/onnx/engine.js';
import { chooseEngine, topK } from '../engines/choose.js';
import { COMPLEX_SAMPLE_BYTES, isRecording, type IqDtype } from '../signal/iq.js';
import type { RenderMode } from '../signal/slice-image.js';
import {
  MAX_SAMPLES_PER_SLICE,
  checkStftPoint,
  resolveSlicing,
  samplesPerSlice,
  type Slicing,
} from '../signal/slicing.js';
import { existingPath, isImageFile } from '../util/files.js';
import { RecentMap } from '../util/recent.js';
import type { PathSandbox } from '../util/sandbox.js';
import type { WorkerPool } from '../workers/pool.js';
import type { FrameJob } from '../workers/slice-worker.js';

/** Which model: a trained model folder, or a model card and weights. */
export type ModelRef = { model: string } | { cfg_path: string; weight_path: string };

/** What to classify: encoded image bytes, an image or recording in the data root, or IQ samples. */
export type PredictInput =
  | { kind: 'image'; bytes: Uint8Array; field: string }
  | { kind: 'iq'; bytes: Uint8Array; field: string }
  | { kind: 'path'; path: string; offset?: number };

/** How an IQ chunk is drawn, as far as the request says (the rest comes from the model card). */
export type FrameOptions = Partial<
  Pick<Slicing, 'dtype' | 'stft_point' | 'width' | 'height' | 'render' | 'sample_rate' | 'duration_time'>
>;

export interface PredictAnswer {
  class: string;
  confidence: number;
  top_k: { class: string; confidence: number }[];
  latency_ms: number;
  /** How many requests ran through the model together with this one (itself included). */
  batch_size: number;
  /** Where the time went: decoding/rendering the input, waiting for the batch, running it. */
  timing_ms: { prepare: number; wait: number; model: number };
  model: string;
  input: 'image' | 'iq';
  /** For an IQ chunk: how it was drawn, and which of these the model card supplied. */
  frame?: {
    dtype: IqDtype;
    stft_point: number;
    width: number;
    height: number;
    render: RenderMode;
    /** A slice of a recording: where it starts (s), and how long it is. */
    offset?: number;
    sample_rate?: number;
    duration_time?: number;
    from_card: string[];
  };
}

/** A model ready to run: its ONNX file, its card and how requests name it. */
export interface Resolved {
  onnx: string;
  card: ModelCard;
  shown: string;
}

interface Ran {
  probs: Float32Array;
  batch: number;
  /** When its batch started and how long the model took. */
  started: number;
  modelMs: number;
}

interface Pending {
  tensor: Float32Array;
  enqueued: number;
  resolve(v: Ran): void;
  reject(err: unknown): void;
}

/** The requests waiting for one model, run in batches. */
class ModelBatcher {
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly owner: PredictService,
    readonly model: Resolved,
  ) {}

  submit(tensor: Float32Array): Promise<Ran> {
    return new Promise((resolve, reject) => {
      this.queue.push({ tensor, enqueued: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  get idle(): boolean {
    return this.queue.length === 0 && !this.running;
  }

  /** A full batch goes now; otherwise the oldest request's wait decides when. */
  schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const { maxBatch, maxWaitMs } = this.owner.settings;
    const oldest = this.queue[0] as Pending;
    const wait = oldest.enqueued + maxWaitMs - performance.now();
    if (this.queue.length >= maxBatch || wait <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.owner.enqueueRun(this);
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, wait);
    }
  }

  /** Runs one batch (called by the owner when the model-run gate is free). */
  async run(): Promise<void> {
    const { maxBatch } = this.owner.settings;
    const batch = this.queue.splice(0, maxBatch);
    if (batch.length === 0) return;
    this.running = true;
    const size = this.model.card.image_size;
    const lease = await this.owner.sessions.acquire(this.model.onnx).catch((err: unknown) => err as Error);
    try {
      if (lease instanceof Error) throw lease;
      const input = stackTensors(
        batch.map((p) => p.tensor),
        size,
      );
      const started = performance.now();
      const probs = await onnxProbabilities(lease.session, input, batch.length, size);
      const modelMs = performance.now() - started;
      if ((probs[0]?.length ?? 0) !== this.model.card.num_classes) {
        throw invalidField(
          'model',
          `the ONNX model has ${probs[0]?.length} outputs but its model card ${this.model.card.num_classes} classes`,
        );
      }
      batch.forEach((p, i) =>
        p.resolve({ probs: probs[i] as Float32Array, batch: batch.length, started, modelMs }),
      );
    } catch (err) {
      // A model that will not load or run (a corrupt file, an input size its card does not
      // match) is the request's problem, not the server's.
      const why =
        err instanceof AppError
          ? err
          : invalidField('model', `the ONNX model could not run: ${(err as Error).message.split('\n')[0]}`);
      for (const p of batch) p.reject(why);
    } finally {
      if (!(lease instanceof Error)) lease.release();
      this.running = false;
    }
  }
}

export class PredictService {
  private inflight = 0;
  private readonly batchers = new Map<string, ModelBatcher>();
  /** Batchers with a batch ready, waiting for the one model-run slot. */
  private readonly ready: ModelBatcher[] = [];
  private busy = false;
  private readonly cards = new RecentMap<string, { key: string; card: ModelCard }>(64);

  constructor(
    readonly settings: PredictSettings,
    readonly sessions: OnnxSessionCache,
    private readonly pool: WorkerPool,
    private readonly paths: PathSandbox,
  ) {}

  /** Refuses at once (429) when `maxInflight` requests are already in progress. */
  async predict(ref: ModelRef, input: PredictInput, frame: FrameOptions, k: number): Promise<PredictAnswer> {
    if (this.inflight >= this.settings.maxInflight) {
      throw new AppError(
        'rate_limited',
        `predict is busy: ${this.settings.maxInflight} requests are in progress (RFUAV_PREDICT_MAX_INFLIGHT); retry shortly`,
        { retry_after_s: 1 },
      );
    }
    this.inflight++;
    const t0 = performance.now();
    try {
      const model = await this.resolve(ref);
      const drawn = resolveSlicing(frame, model.card.signal);
      const { tensor, kind } = await this.tensor(input, drawn.values, model.card.image_size);
      const prepared = performance.now();
      const slice = input.kind === 'path' ? input.offset : undefined;
      let batcher = this.batchers.get(model.onnx);
      if (!batcher || batcher.model.card !== model.card) {
        batcher = new ModelBatcher(this, model);
        this.batchers.set(model.onnx, batcher);
      }
      const { probs, batch, started, modelMs } = await batcher.submit(tensor);
      const top = topK(probs, model.card.labels, Math.min(k, model.card.num_classes));
      const best = top[0] as { class: string; confidence: number };
      return {
        class: best.class,
        confidence: best.confidence,
        top_k: top,
        latency_ms: performance.now() - t0,
        batch_size: batch,
        timing_ms: { prepare: prepared - t0, wait: started - prepared, model: modelMs },
        model: model.shown,
        input: kind,
        ...(kind === 'iq'
          ? {
              frame: {
                dtype: drawn.values.dtype,
                stft_point: drawn.values.stft_point,
                width: drawn.values.width,
                height: drawn.values.height,
                render: drawn.values.render,
                ...(slice !== undefined
                  ? {
                      offset: slice,
                      sample_rate: drawn.values.sample_rate,
                      duration_time: drawn.values.duration_time,
                    }
                  : {}),
                from_card: drawn.fromCard.filter((k) =>
                  [
                    'dtype',
                    'stft_point',
                    'width',
                    'height',
                    'render',
                    ...(slice !== undefined ? ['sample_rate', 'duration_time'] : []),
                  ].includes(k),
                ),
              },
            }
          : {}),
      };
    } finally {
      this.inflight--;
      for (const [key, b] of this.batchers) if (b.idle && this.batchers.size > 16) this.batchers.delete(key);
    }
  }

  /** A batcher with work asks for the model-run slot; batches run one at a time, in order. */
  enqueueRun(b: ModelBatcher): void {
    if (!this.ready.includes(b)) this.ready.push(b);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let b = this.ready.shift(); b; b = this.ready.shift()) {
        await b.run();
        // Requests that arrived during the run have waited at least that long: go again now
        // if the batch is full or their wait is over, else on their timer.
        b.schedule();
      }
    } finally {
      this.busy = false;
    }
  }

  /** The ONNX file and model card behind a model folder or a cfg/weights pair. */
  async resolve(ref: ModelRef): Promise<Resolved> {
    let cfg: string;
    let weights: string;
    let shown: string;
    if ('model' in ref) {
      const { path: dir } = await existingPath(this.paths, ref.model, 'model', 'folder');
      cfg = path.join(ref.model, 'config.yaml');
      weights = path.join(ref.model, 'best_model.onnx');
      shown = this.paths.display(dir);
      const has = async (f: string) =>
        (await fs.stat(this.paths.resolve(f, 'model')).catch(() => null))?.isFile();
      if (!(await has(cfg)))
        throw invalidField('model', `'${ref.model}' has no config.yaml: it is not a trained model folder`);
      if (!(await has(weights))) weights = path.join(ref.model, 'best_model.pth');
      if (!(await has(weights)))
        throw invalidField('model', `'${ref.model}' has neither best_model.onnx nor best_model.pth`);
    } else {
      cfg = ref.cfg_path;
      weights = ref.weight_path;
      shown = ref.weight_path;
    }
    const chosen = await chooseEngine(this.paths, weights, 'auto');
    if (chosen.engine !== 'onnx') {
      throw invalidField(
        'model' in ref ? 'model' : 'weight_path',
        `predict runs ONNX models and there is no .onnx beside '${weights}' (training writes best_model.onnx; use /api/v2/inference/start for PyTorch weights)`,
      );
    }
    const cfgFile = this.paths.resolve(cfg, 'model' in ref ? 'model' : 'cfg_path');
    const st = await fs.stat(cfgFile).catch(() => null);
    const key = `${st?.size}:${st?.mtimeMs}`;
    let card = this.cards.get(cfgFile);
    if (!card || card.key !== key) {
      card = { key, card: await readModelCard(cfgFile, 'model' in ref ? 'model' : 'cfg_path', cfg) };
      this.cards.set(cfgFile, card);
    }
    return { onnx: this.paths.resolve(chosen.model, 'weight_path'), card: card.card, shown };
  }

  /** The model input for the request, made in a worker thread. */
  private async tensor(
    input: PredictInput,
    frame: Slicing,
    size: number,
  ): Promise<{ tensor: Float32Array; kind: 'image' | 'iq' }> {
    let bytes: Uint8Array | null = null;
    let file: string | null = null;
    let kind: 'image' | 'iq';
    const field = input.kind === 'path' ? 'path' : input.field;
    if (input.kind === 'path' && input.offset !== undefined) {
      return { tensor: await this.sliceTensor(input.path, input.offset, frame, size), kind: 'iq' };
    }
    if (input.kind === 'path') {
      const { path: p } = await existingPath(this.paths, input.path, 'path', 'file');
      const ext = path.extname(p).toLowerCase();
      if (ext === '.iq' || ext === '.dat') {
        const st = await fs.stat(p);
        // The same bound as an upload: a chunk from the data root may not take more memory.
        const limit = Math.min(
          MAX_SAMPLES_PER_SLICE * COMPLEX_SAMPLE_BYTES[frame.dtype],
          this.settings.bodyLimitBytes,
        );
        if (st.size > limit) {
          throw invalidField(
            'path',
            `'${input.path}' (${st.size} bytes) is longer than one chunk (at most ${limit} bytes here); classify whole recordings with /api/v2/inference/start`,
          );
        }
        bytes = await fs.readFile(p);
        kind = 'iq';
      } else if (isImageFile(path.basename(p))) {
        file = p;
        kind = 'image';
      } else {
        throw invalidField('path', `'${input.path}' is neither an image nor a raw IQ chunk (.iq .dat)`);
      }
    } else {
      bytes = input.bytes;
      kind = input.kind;
    }
    if (kind === 'image') {
      const r = await this.pool.imageInput({ input: file ?? (bytes as Uint8Array), size });
      if ('error' in r) throw invalidField(field, r.error);
      return { tensor: r.tensor, kind };
    }
    checkStftPoint(frame.stft_point);
    const samples = iqSamples(bytes as Uint8Array, frame, field);
    return { tensor: await this.frameTensor(samples, frame, size), kind };
  }

  /** IQ samples (in memory, or a region the worker reads) drawn as the model's training images were. */
  private async frameTensor(source: FrameJob['source'], frame: Slicing, size: number): Promise<Float32Array> {
    const r = await this.pool.frameInput({
      source,
      stftPoint: frame.stft_point,
      width: frame.width,
      height: frame.height,
      colormap: 'jet',
      render: frame.render,
      inputSize: size,
      pngPath: null,
      preview: { width: 0, height: 0 },
    });
    return r.tensor as Float32Array;
  }

  /**
   * The slice of a recording in the data root that starts `offset` seconds in and lasts
   * duration_time (the spectrogram explorer's "what is here"): the worker reads just that region.
   */
  private async sliceTensor(
    file: string,
    offset: number,
    frame: Slicing,
    size: number,
  ): Promise<Float32Array> {
    return this.frameTensor(await recordingRegion(this.paths, file, offset, frame), frame, size);
  }
}

/** Where a recording's slice at `offset` seconds lies, checked against the file (fields named). */
export async function recordingRegion(
  paths: PathSandbox,
  file: string,
  offset: number,
  frame: Pick<Slicing, 'dtype' | 'sample_rate' | 'duration_time' | 'stft_point'>,
): Promise<{ file: string; dtype: IqDtype; firstSample: number; samples: number }> {
  const rec = await recordingFile(paths, file, frame.dtype);
  const perSlice = samplesPerSlice(frame);
  const first = Math.round(offset * frame.sample_rate);
  if (first + perSlice > rec.samples) {
    const last = Math.max(0, (rec.samples - perSlice) / frame.sample_rate);
    throw invalidField(
      'offset',
      rec.samples < perSlice
        ? `'${file}' holds ${rec.samples} samples, fewer than one slice (${perSlice})`
        : `${offset} s is past the last whole slice of '${file}' (offsets 0 … ${last.toFixed(6)} s at ${frame.sample_rate} samples/s)`,
    );
  }
  return { file: rec.path, dtype: frame.dtype, firstSample: first, samples: perSlice };
}

/** A raw IQ recording (.iq, .dat) in the data root: its real path, size and whole samples. */
export async function recordingFile(
  paths: PathSandbox,
  file: string,
  dtype: IqDtype,
  field = 'path',
): Promise<{ path: string; bytes: number; samples: number; modified: Date }> {
  const { path: p } = await existingPath(paths, file, field, 'file');
  if (!isRecording(path.basename(p)))
    throw invalidField(field, `'${file}' is not a raw IQ recording (.iq or .dat)`);
  const st = await fs.stat(p);
  const per = COMPLEX_SAMPLE_BYTES[dtype];
  if (st.size % per !== 0) {
    throw invalidField(
      field,
      `'${file}' is ${st.size} bytes, not a whole number of ${dtype} I/Q samples (${per} bytes each); is dtype right?`,
    );
  }
  return { path: p, bytes: st.size, samples: st.size / per, modified: st.mtime };
}

/** Interleaved little-endian I, Q (float32 or int16) as float32, after the size checks. */
function iqSamples(bytes: Uint8Array, frame: Slicing, field: string): Float32Array {
  const per = COMPLEX_SAMPLE_BYTES[frame.dtype];
  if (bytes.length % per !== 0) {
    throw invalidField(
      field,
      `${bytes.length} bytes is not a whole number of ${frame.dtype} I/Q samples (${per} bytes each)`,
    );
  }
  const n = bytes.length / per;
  if (n < frame.stft_point) {
    throw invalidField(field, `${n} samples is shorter than stft_point ${frame.stft_point}`);
  }
  if (n > MAX_SAMPLES_PER_SLICE)
    throw invalidField(field, `${n} samples is over the limit of ${MAX_SAMPLES_PER_SLICE}`);
  // A copy of exactly these bytes: a small Buffer is a view into Node's shared 8 KiB pool, so
  // its `.buffer` holds other data around it (and may not be 4-byte aligned).
  if (frame.dtype === 'float32' && os.endianness() === 'LE')
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Float32Array(2 * n);
  if (frame.dtype === 'float32') for (let i = 0; i < 2 * n; i++) out[i] = view.readFloatLE(4 * i);
  else for (let i = 0; i < 2 * n; i++) out[i] = view.readInt16LE(2 * i);
  return out;
}
