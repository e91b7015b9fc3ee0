/**
 * Inference on raw IQ recordings, as a user runs it: synthetic recordings → spectrogram task →
 * a model trained on those images → unseen recordings classified frame by frame with both
 * engines. Frames must be the very images the spectrogram task makes (same probabilities as
 * classifying its PNGs), the engines must agree, each recording gets an annotated animation, and
 * a long recording can be cancelled mid-way.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { writeDataset } from '../../src/signal/synth.js';
import { startService, tmpDir, waitFor, trainTinyModel } from '../helpers.js';
import { http } from '../process.js';

type Task = Record<string, unknown> & { status: string; task_id: string; result: Record<string, unknown> };
interface Pred {
  file: string;
  frame: number | null;
  class: string;
  confidence: number;
  top5: { class: string; confidence: number }[];
}

const SLICING = { sample_rate: 1e6, duration_time: 0.05, stft_point: 256, width: 96, height: 96 };

describe('inference API (raw IQ)', async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  // 5 frames per recording (0.05 s slices every 0.025 s, the default ratio 1): batches (of 4
  // and 8) straddle recordings.
  const common = { classes: 3, sampleRate: 1e6, durationS: 0.15, snrsDb: [10, 20] };
  await writeDataset({ ...common, out: path.join(data, 'rf/train'), perClass: 5, seed: 7 });
  await writeDataset({ ...common, out: path.join(data, 'rf/unseen'), perClass: 2, seed: 99 });
  fs.rmSync(path.join(data, 'rf/unseen/manifest.json'));
  fs.writeFileSync(path.join(data, 'rf/unseen/readme.txt'), 'not a recording');
  fs.writeFileSync(path.join(data, 'rf/unseen/short.iq'), Buffer.alloc(8 * 100)); // < one slice
  const svc = await startService(dir, { listen: true, env: { RFUAV_TORCH_THREADS: '1' } });
  const { url } = svc;

  async function finished(id: string, ms = 120_000): Promise<Task> {
    return waitFor(
      async () => {
        const t = (await http<Task>(`${url}/api/v2/tasks/${id}`)).body;
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      ms,
      `task ${id}`,
    );
  }
  async function submit(route: string, body: Record<string, unknown>): Promise<Task> {
    const r = await http<Task>(`${url}${route}`, 'POST', body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await finished(r.body.task_id);
    assert.equal(t.status, 'completed', String(t.error));
    return t;
  }

  // Training images from the spectrogram task itself: 5 slices per recording.
  await submit('/api/v2/preprocessing/spectrogram', {
    input_path: 'rf/train',
    output_path: 'spec/train',
    ...SLICING,
  });
  const classes = fs.readdirSync(path.join(data, 'spec/train')).sort();
  await trainTinyModel({
    train: path.join(data, 'spec/train'),
    val: path.join(data, 'spec/train'),
    out: path.join(data, 'model'),
    classes: 3,
    imageSize: 64,
    epochs: 6,
    batchSize: 8,
  });
  const model = { cfg_path: 'model/config.yaml', weight_path: 'model/best_model.pth', device: 'cpu' };
  const runs: Record<string, { task: Task; preds: Pred[] }> = {};

  for (const engine of ['onnx', 'torch'] as const) {
    it(`classifies unseen recordings frame by frame (${engine})`, async () => {
      // A folder of the user's own named like the scratch frames once were: it must survive.
      const out = path.join(data, 'out', engine);
      fs.mkdirSync(path.join(out, '.frames'), { recursive: true });
      fs.writeFileSync(path.join(out, '.frames/mine.txt'), 'keep');
      const task = await submit('/api/v2/inference/start', {
        ...model,
        ...SLICING,
        engine,
        source_path: 'rf/unseen',
        save_path: `out/${engine}`,
      });
      const r = task.result;
      assert.equal(r.engine, engine);
      assert.equal(r.recordings, 6);
      assert.equal(r.frames, 30, 'six 0.15 s recordings in 0.05 s slices, half-overlapping');
      assert.equal(r.images, 0);
      assert.equal(r.files, 8);
      const failed = r.failed as { file: string; error: string }[];
      assert.deepEqual(
        failed.map((f) => f.file),
        ['readme.txt', 'short.iq'],
      );
      assert.match(failed[1]?.error as string, /100 samples: less than one slice of 50000/);
      const preds = JSON.parse(fs.readFileSync(path.join(out, 'predictions.json'), 'utf8')) as Pred[];
      assert.equal(preds.length, 30);
      const first = preds.filter((p) => p.file === `${classes[0]}/${classes[0]}_snr10dB_0001.iq`);
      assert.deepEqual(
        first.map((p) => p.frame),
        [1, 2, 3, 4, 5],
      );
      // The synthetic classes differ plainly: unseen recordings are mostly classified right by
      // this tiny model (chance is 1/3).
      const right = preds.filter((p) => p.file.split('/')[0] === p.class).length;
      assert.ok(right / preds.length >= 2 / 3, `${right}/30 frames right`);
      const counts = r.counts as Record<string, number>;
      assert.equal(
        Object.values(counts).reduce((a, b) => a + b, 0),
        30,
      );
      const csv = fs.readFileSync(path.join(out, 'predictions.csv'), 'utf8').trim().split('\n');
      assert.equal(csv[0], 'file,frame,class,confidence,top5');
      assert.match(csv[1] as string, /^[^,]+\.iq,1,[^,]+,0\.\d{6},/);
      // One annotated animation per recording, one page per frame.
      const animations = r.animations as string[];
      assert.equal(animations.length, 6);
      for (const a of animations) {
        assert.match(a, /\.iq\.webp$/);
        const meta = await sharp(path.join(out, a), { animated: true }).metadata();
        assert.equal(meta.pages, 5, a);
        assert.equal(meta.width, 96);
      }
      assert.deepEqual(
        fs.readdirSync(out).filter((f) => f.startsWith('.')),
        ['.frames'],
        'no scratch frames left behind',
      );
      assert.equal(fs.readFileSync(path.join(out, '.frames/mine.txt'), 'utf8'), 'keep');
      runs[engine] = { task, preds };
    });
  }

  it('ONNX Runtime and PyTorch agree on every frame', () => {
    const a = runs.onnx?.preds as Pred[];
    const b = runs.torch?.preds as Pred[];
    assert.ok(a && b, 'both engines ran');
    let worst = 0;
    a.forEach((p, i) => {
      const q = b[i] as Pred;
      assert.equal(q.file, p.file);
      assert.equal(q.frame, p.frame);
      assert.equal(q.class, p.class);
      for (const t of p.top5) {
        const u = q.top5.find((x) => x.class === t.class) as { confidence: number };
        worst = Math.max(worst, Math.abs(u.confidence - t.confidence));
      }
    });
    assert.ok(worst < 1e-4, `max |Δp| = ${worst}`);
  });

  it("a frame is exactly the spectrogram task's image of that slice", async () => {
    const rec = `${classes[1]}/${classes[1]}_snr20dB_0002.iq`;
    await submit('/api/v2/preprocessing/spectrogram', {
      input_path: `rf/unseen/${rec}`,
      output_path: 'spec/one',
      ...SLICING,
    });
    const images = await submit('/api/v2/inference/start', {
      ...model,
      engine: 'onnx',
      source_path: 'spec/one',
      save_path: 'out/one',
    });
    assert.equal(images.result.images, 5);
    const fromImages = JSON.parse(
      fs.readFileSync(path.join(data, 'out/one/predictions.json'), 'utf8'),
    ) as Pred[];
    const fromFrames = (runs.onnx?.preds as Pred[]).filter((p) => p.file === rec);
    assert.equal(fromFrames.length, 5);
    for (const f of fromFrames) {
      const img = fromImages.find((p) => p.file === `${path.basename(rec, '.iq')} (${f.frame}).png`) as Pred;
      assert.ok(img, `image of frame ${f.frame}`);
      assert.equal(img.class, f.class);
      assert.ok(Math.abs(img.confidence - f.confidence) < 1e-6, `${img.confidence} vs ${f.confidence}`);
    }
  });

  it('one recording: cancelled mid-way, the task stops promptly', async () => {
    // 3 s at 1 MS/s in 0.02 s slices, one every 0.01 s: 299 frames at 1920×1440, well over a
    // second of work.
    fs.mkdirSync(path.join(data, 'long'), { recursive: true });
    const src = fs.readFileSync(
      path.join(data, 'rf/train', classes[0] as string, `${classes[0]}_snr10dB_0001.iq`),
    );
    fs.writeFileSync(path.join(data, 'long/rec.iq'), Buffer.concat(Array.from({ length: 20 }, () => src)));
    const r = await http<Task>(`${url}/api/v2/inference/start`, 'POST', {
      ...model,
      engine: 'onnx',
      sample_rate: 1e6,
      duration_time: 0.02,
      stft_point: 256,
      source_path: 'long/rec.iq',
      save_path: 'out/long',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const id = r.body.task_id;
    await waitFor(
      async () => ((await http<Task>(`${url}/api/v2/tasks/${id}`)).body.progress as number) > 0,
      60_000,
      'progress',
    );
    const t0 = performance.now();
    assert.equal((await http(`${url}/api/v2/tasks/${id}/cancel`, 'POST')).status, 200);
    const t = await finished(id, 30_000);
    const ms = performance.now() - t0;
    assert.equal(t.status, 'cancelled');
    const progress = t.progress as number;
    assert.ok(progress > 0 && progress < 95, `stopped part-way (progress ${progress})`);
    console.log(`# cancel → cancelled in ${ms.toFixed(0)} ms at progress ${progress.toFixed(1)}`);
  });
});
