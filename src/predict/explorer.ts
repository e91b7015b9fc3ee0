/**
 * The spectrogram explorer's server side (the dashboard's /ui/explorer): what a raw recording in
 * the data root holds and how it would be cut for a model (`describe`), and one slice of it drawn
 * by the service's own STFT kernel at the size of the user's screen (`slicePng`). The slice's
 * class comes from PredictService (POST /api/v2/inference/predict with `path` and `offset`), so
 * the explorer shows what the predict path answers, not a second classifier.
 */
import {
  resolveSlicing,
  samplesPerSlice,
  sliceGrid,
  type Slicing,
  type SlicingKey,
} from '../signal/slicing.js';
import type { PathSandbox } from '../util/sandbox.js';
import type { WorkerPool } from '../workers/pool.js';
import { recordingFile, recordingRegion, type PredictService, type Resolved } from './predict-service.js';

/** What the explorer asks about: a recording, optionally a model, and any slicing field to override. */
export interface ExplorerQuery extends Partial<Slicing> {
  path: string;
  model?: string;
}

export interface RecordingView {
  path: string;
  bytes: number;
  modified: string;
  samples: number;
  duration_s: number;
  /** Complex samples per slice (sample_rate × duration_time) and the slices a task would cut. */
  slice_samples: number;
  slices: number;
  /** How slices are cut and drawn: the query's fields, else the model card's, else the defaults. */
  signal: Slicing;
  from_card: SlicingKey[];
  model: { path: string; model: string; labels: string[]; image_size: number } | null;
}

export class SignalExplorer {
  constructor(
    private readonly predict: PredictService,
    private readonly pool: WorkerPool,
    private readonly paths: PathSandbox,
  ) {}

  private async settings(
    q: ExplorerQuery,
  ): Promise<{ model: Resolved | null; values: Slicing; fromCard: SlicingKey[] }> {
    const model = q.model ? await this.predict.resolve({ model: q.model }) : null;
    const { values, fromCard } = resolveSlicing(q, model?.card.signal ?? null);
    return { model, values, fromCard };
  }

  async describe(q: ExplorerQuery): Promise<RecordingView> {
    const { model, values, fromCard } = await this.settings(q);
    const rec = await recordingFile(this.paths, q.path, values.dtype);
    const perSlice = samplesPerSlice(values);
    return {
      path: this.paths.display(rec.path),
      bytes: rec.bytes,
      modified: rec.modified.toISOString(),
      samples: rec.samples,
      duration_s: rec.samples / values.sample_rate,
      slice_samples: perSlice,
      slices: sliceGrid(rec.samples, perSlice, values.ratio).count,
      signal: values,
      from_card: fromCard,
      model: model && {
        path: model.shown,
        model: model.card.model,
        labels: model.card.labels,
        image_size: model.card.image_size,
      },
    };
  }

  /**
   * The slice starting `offset` seconds in, drawn at `screen` size (not the training images'
   * size: the explorer shows it on a screen), as a PNG. Only that region of the file is read.
   */
  async slicePng(
    q: ExplorerQuery,
    offset: number,
    screen: { width: number; height: number },
  ): Promise<Buffer> {
    const { values } = await this.settings(q);
    const source = await recordingRegion(this.paths, q.path, offset, values);
    return this.pool.slicePreview({
      source,
      stftPoint: values.stft_point,
      width: screen.width,
      height: screen.height,
      colormap: 'jet',
      render: values.render,
    });
  }
}
