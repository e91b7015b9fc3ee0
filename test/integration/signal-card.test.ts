/**
 * Models remember their signal (issue 12, point 5), as a new user meets it: raw IQ at 2 MS/s
 * rendered as 512-point, 96×96 spectrograms, split, augmented, trained; then the raw recordings
 * are classified without restating how the images were made. Before, every recording was "too
 * short" for the 100 MS/s × 0.1 s default and nothing was classified.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { writeDataset } from '../../src/signal/synth.js';
import { replayedLog, startService, tmpDir, waitFor } from '../helpers.js';

const SIGNAL = { sample_rate: 2e6, stft_point: 512, duration_time: 0.05, width: 96, height: 96 };

describe('model cards remember how their spectrograms were rendered', async () => {
  const dir = tmpDir();
  const svc = await startService(dir, { listen: true });
  const data = svc.config.dataRoot;
  await writeDataset({
    out: path.join(data, 'rf'),
    classes: 2,
    perClass: 4,
    sampleRate: SIGNAL.sample_rate,
    durationS: 0.2,
    snrsDb: [20],
    seed: 5,
  });
  const post = async (route: string, body: unknown) => {
    const r = await fetch(`${svc.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await r.json()) as Record<string, unknown>;
    assert.equal(r.status, 200, JSON.stringify(json));
    return json;
  };
  const done = (id: unknown) =>
    waitFor(
      async () => {
        const t = (await (await fetch(`${svc.url}/api/v2/tasks/${String(id)}`)).json()) as Record<
          string,
          unknown
        >;
        return ['completed', 'failed', 'cancelled'].includes(t.status as string) ? t : null;
      },
      120_000,
      `task ${String(id)}`,
    );
  const completed = async (route: string, body: unknown) => {
    const t = await done((await post(route, body)).task_id);
    assert.equal(t.status, 'completed', String(t.error));
    return t;
  };
  const signalOf = (rel: string) => JSON.parse(fs.readFileSync(path.join(data, rel, 'signal.json'), 'utf8'));

  it('spectrogram writes signal.json; split and augment carry it; training puts it in the card', async () => {
    await completed('/api/v2/preprocessing/spectrogram', {
      input_path: 'rf',
      output_path: 'rf_spec',
      ...SIGNAL,
    });
    const written = signalOf('rf_spec');
    assert.deepEqual(
      { ...written, source: undefined },
      {
        ...SIGNAL,
        ratio: 1,
        noverlap: 256,
        dtype: 'float32',
        colormap: 'jet',
        render: 'matplotlib',
        format: 'png',
        source: undefined,
      },
    );
    assert.equal(written.source, 'rf');
    await completed('/api/v2/preprocessing/split', {
      input_path: 'rf_spec',
      output_path: 'rf_split',
      seed: 1,
    });
    assert.deepEqual(signalOf('rf_split'), written);
    await completed('/api/v2/preprocessing/augment', {
      dataset_path: 'rf_split',
      output_path: 'rf_aug',
      methods: ['Sharpen'],
      seed: 1,
    });
    assert.deepEqual(signalOf('rf_aug'), written);

    const train = await completed('/api/v2/training/start', {
      model: 'resnet18',
      num_classes: 2,
      train_path: 'rf_aug/train',
      val_path: 'rf_aug/valid',
      save_path: 'models',
      name: 'rf',
      num_epochs: 1,
      batch_size: 8,
      image_size: 32,
      learning_rate: 0.001,
      pretrained: false,
      device: 'cpu',
      seed: 1,
    });
    const card = YAML.parse(fs.readFileSync(path.join(data, 'models/rf/config.yaml'), 'utf8'));
    assert.deepEqual(card.signal, written);
    const log = await replayedLog(svc.url, `/api/v2/tasks/${String(train.task_id)}/logs`);
    assert.ok(
      log.some((e) => /rendered from raw IQ at 2000000 S\/s, 512-point STFT/.test(String(e.message))),
    );
  });

  it('inference on raw recordings slices them as the card says unless the request says otherwise', async () => {
    const model = { cfg_path: 'models/rf/config.yaml', weight_path: 'models/rf/best_model.onnx' };
    const recording = fs
      .readdirSync(path.join(data, 'rf'))
      .find((d) => fs.statSync(path.join(data, 'rf', d)).isDirectory());
    const t = await completed('/api/v2/inference/start', {
      ...model,
      source_path: `rf/${String(recording)}`,
      save_path: 'results',
      name: 'from-card',
      device: 'cpu',
    });
    const result = t.result as { frames: number; recordings: number };
    // 4 recordings of 0.2 s in 0.05 s slices every 0.025 s (ratio 1): 7 frames each.
    assert.equal(result.recordings, 4);
    assert.equal(result.frames, 28);
    const log = await replayedLog(svc.url, `/api/v2/tasks/${String(t.task_id)}/logs`);
    assert.ok(
      log.some((e) =>
        /as the model card says: sample_rate 2000000, stft_point 512, duration_time 0.05/.test(
          String(e.message),
        ),
      ),
      JSON.stringify(log.map((e) => e.message)),
    );
    assert.ok(fs.existsSync(path.join(data, 'results/from-card/predictions.json')), 'name is a sub-folder');

    // A request value wins over the card, and the difference is logged.
    const over = await completed('/api/v2/inference/start', {
      ...model,
      source_path: `rf/${String(recording)}`,
      save_path: 'results',
      name: 'override',
      ratio: 0,
      device: 'cpu',
    });
    assert.equal((over.result as { frames: number }).frames, 16);
    const overLog = await replayedLog(svc.url, `/api/v2/tasks/${String(over.task_id)}/logs`);
    assert.ok(
      overLog.some(
        (e) => e.level === 'WARNING' && /ratio 0 \(the model was trained on 1\)/.test(String(e.message)),
      ),
      JSON.stringify(overLog.map((e) => e.message)),
    );
    assert.ok(fs.existsSync(path.join(data, 'results/from-card/predictions.json')), 'the first run is kept');
  });

  it('predict on an IQ chunk renders it as the card says', async () => {
    const dirName = fs
      .readdirSync(path.join(data, 'rf'))
      .find((d) => fs.statSync(path.join(data, 'rf', d)).isDirectory());
    const file = fs.readdirSync(path.join(data, 'rf', String(dirName))).find((f) => f.endsWith('.iq'));
    // One 0.05 s slice (100 000 complex samples) from a recording, as a client would send it.
    const chunk = fs
      .readFileSync(path.join(data, 'rf', String(dirName), String(file)))
      .subarray(0, 100_000 * 8);
    fs.writeFileSync(path.join(data, 'chunk.iq'), chunk);
    const r = await fetch(`${svc.url}/api/v2/inference/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'models/rf', path: 'chunk.iq' }),
    });
    const answer = (await r.json()) as { class: string; frame?: Record<string, unknown> };
    assert.equal(r.status, 200, JSON.stringify(answer));
    assert.ok(fs.readdirSync(path.join(data, 'rf')).includes(answer.class), answer.class);
    assert.deepEqual(answer.frame, {
      dtype: 'float32',
      stft_point: 512,
      width: 96,
      height: 96,
      render: 'matplotlib',
      from_card: ['stft_point', 'dtype', 'width', 'height', 'render'],
    });
  });

  it("the explorer: a recording's info and a slice as a PNG, with the card's fields; predict at an offset classifies that slice", async () => {
    const dirName = fs
      .readdirSync(path.join(data, 'rf'))
      .find((d) => fs.statSync(path.join(data, 'rf', d)).isDirectory());
    const file = fs.readdirSync(path.join(data, 'rf', String(dirName))).find((f) => f.endsWith('.iq'));
    const rec = `rf/${String(dirName)}/${String(file)}`;
    const get = async (route: string) => {
      const r = await fetch(`${svc.url}${route}`);
      return {
        status: r.status,
        type: r.headers.get('content-type'),
        bytes: Buffer.from(await r.arrayBuffer()),
      };
    };
    const info = await get(`/api/v2/signal/info?path=${encodeURIComponent(rec)}&model=models/rf`);
    assert.equal(info.status, 200, info.bytes.toString());
    const view = JSON.parse(info.bytes.toString());
    // 0.2 s at 2 MS/s; slices of 0.05 s every 0.025 s, as the card says.
    assert.equal(view.samples, 400_000);
    assert.equal(view.duration_s, 0.2);
    assert.equal(view.slice_samples, 100_000);
    assert.equal(view.slices, 7);
    assert.equal(view.signal.stft_point, 512);
    assert.ok(view.from_card.includes('sample_rate') && view.from_card.includes('duration_time'));
    assert.deepEqual(
      view.model.labels.slice().sort(),
      fs
        .readdirSync(path.join(data, 'rf'))
        .filter((d) => fs.statSync(path.join(data, 'rf', d)).isDirectory())
        .sort(),
    );

    const png = await get(
      `/api/v2/signal/slice?path=${encodeURIComponent(rec)}&model=models/rf&offset=0.1&width=320&height=200`,
    );
    assert.equal(png.status, 200, png.bytes.toString());
    assert.equal(png.type, 'image/png');
    assert.equal(png.bytes.readUInt32BE(16), 320, 'PNG width');
    assert.equal(png.bytes.readUInt32BE(20), 200, 'PNG height');
    // Another offset is another picture.
    const other = await get(
      `/api/v2/signal/slice?path=${encodeURIComponent(rec)}&model=models/rf&offset=0&width=320&height=200`,
    );
    assert.notDeepEqual(other.bytes, png.bytes);

    // The slice at 0.1 s classified in place answers as the same samples sent as a chunk.
    const bytes = fs.readFileSync(path.join(data, rec)).subarray(200_000 * 8, 300_000 * 8);
    fs.writeFileSync(path.join(data, 'at-0.1.iq'), bytes);
    const predict = async (body: unknown) => {
      const r = await fetch(`${svc.url}/api/v2/inference/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: r.status,
        json: (await r.json()) as {
          class: string;
          confidence: number;
          frame: { offset: number; duration_time: number };
        },
      };
    };
    const inPlace = await predict({ model: 'models/rf', path: rec, offset: 0.1 });
    const asChunk = await predict({ model: 'models/rf', path: 'at-0.1.iq' });
    assert.equal(inPlace.status, 200, JSON.stringify(inPlace.json));
    assert.equal(inPlace.json.class, asChunk.json.class);
    assert.ok(Math.abs(inPlace.json.confidence - asChunk.json.confidence) < 1e-6);
    assert.equal(inPlace.json.frame.offset, 0.1);
    assert.equal(inPlace.json.frame.duration_time, 0.05);

    // What is wrong is named.
    const bad = async (route: string, field: RegExp) => {
      const r = await get(route);
      assert.ok(r.status >= 400 && r.status < 500, `${route}: ${r.status}`);
      assert.match(r.bytes.toString(), field, route);
    };
    const q = `path=${encodeURIComponent(rec)}&model=models/rf`;
    await bad(`/api/v2/signal/slice?${q}&offset=0.19`, /offset.*past the last whole slice/);
    await bad(`/api/v2/signal/slice?${q}&width=5000`, /width/);
    await bad(`/api/v2/signal/slice?path=models/rf/config.yaml`, /not a raw IQ recording/);
    await bad(`/api/v2/signal/info?path=../../etc/passwd`, /path/);
    await bad(`/api/v2/signal/info?path=${encodeURIComponent(rec)}&dtype=int32`, /dtype/);
    await bad(`/api/v2/signal/info?path=${encodeURIComponent(rec)}&model=rf`, /model/);
    const noPath = await predict({ model: 'models/rf', image_base64: 'AAAA', offset: 1 });
    assert.equal(noPath.status, 422);
    assert.match(JSON.stringify(noPath.json), /offset/);
    const past = await predict({ model: 'models/rf', path: rec, offset: 5 });
    assert.equal(past.status, 422);
    assert.match(JSON.stringify(past.json), /offset/);
  });
});
