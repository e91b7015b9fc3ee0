/**
 * POST /api/v2/inference/predict on a model trained in this test: the same answer as the
 * inference task for an image sent as base64, multipart upload or path, and for an IQ chunk as
 * for the spectrogram task's image of it; concurrent requests batched (and still right); a full
 * service refuses with 429 + Retry-After instead of queueing; bad requests named.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeRecording, CLASS_PROFILES } from '../../src/signal/synth.js';
import { startService, tmpDir, waitFor, tinyImageModel } from '../helpers.js';
import { http } from '../process.js';

type Task = Record<string, unknown> & { status: string; task_id: string; result: Record<string, unknown> };
interface Answer {
  class: string;
  confidence: number;
  top_k: { class: string; confidence: number }[];
  latency_ms: number;
  batch_size: number;
  input: string;
  message?: string;
}
interface Pred {
  file: string;
  class: string;
  confidence: number;
}

describe('predict endpoint', async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await tinyImageModel(data, 4);
  fs.mkdirSync(path.join(data, 'pth-only'));
  fs.copyFileSync(path.join(data, 'model/best_model.pth'), path.join(data, 'pth-only/w.pth'));
  // A 0.01 s IQ chunk at 1 MS/s.
  await writeRecording(path.join(data, 'chunk.iq'), CLASS_PROFILES[0] as (typeof CLASS_PROFILES)[number], {
    sampleRate: 1e6,
    durationS: 0.01,
    snrDb: 10,
    seed: 5,
  });
  const images = fs
    .readdirSync(path.join(data, 'set/val'))
    .flatMap((c) => fs.readdirSync(path.join(data, 'set/val', c)).map((f) => `${c}/${f}`))
    .sort();
  // A long wait, so concurrent requests surely meet in a batch on a busy test machine.
  const svc = await startService(dir, {
    listen: true,
    env: { RFUAV_TORCH_THREADS: '1', RFUAV_PREDICT_MAX_WAIT_MS: '150' },
  });
  const { url } = svc;
  const predict = (body: Record<string, unknown>) =>
    http<Answer>(`${url}/api/v2/inference/predict`, 'POST', body);
  const b64 = (rel: string) => fs.readFileSync(path.join(data, rel)).toString('base64');

  async function task(route: string, body: Record<string, unknown>): Promise<Task> {
    const r = await http<Task>(`${url}${route}`, 'POST', body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await waitFor(
      async () => {
        const x = (await http<Task>(`${url}/api/v2/tasks/${r.body.task_id}`)).body;
        return ['completed', 'failed', 'cancelled'].includes(x.status) ? x : null;
      },
      60_000,
      route,
    );
    assert.equal(t.status, 'completed', String(t.error));
    return t;
  }

  // What the inference task says about every validation image (ONNX engine).
  await task('/api/v2/inference/start', {
    cfg_path: 'model/config.yaml',
    weight_path: 'model/best_model.onnx',
    source_path: 'set/val',
    save_path: 'out/val',
    device: 'cpu',
  });
  const expected = new Map(
    (JSON.parse(fs.readFileSync(path.join(data, 'out/val/predictions.json'), 'utf8')) as Pred[]).map((p) => [
      p.file,
      p,
    ]),
  );
  const same = (a: Answer, rel: string) => {
    const e = expected.get(rel) as Pred;
    assert.equal(a.class, e.class, rel);
    assert.ok(Math.abs(a.confidence - e.confidence) < 1e-6, `${rel}: ${a.confidence} vs ${e.confidence}`);
  };

  it('answers like the inference task for base64, upload and path, by model folder or cfg/weights', async () => {
    const rel = images[0] as string;
    const byB64 = await predict({ model: 'model', image_base64: b64(`set/val/${rel}`) });
    assert.equal(byB64.status, 200, JSON.stringify(byB64.body));
    same(byB64.body, rel);
    assert.equal(byB64.body.input, 'image');
    assert.equal(byB64.body.top_k.length, 3, 'top_k is capped at the number of classes');
    assert.equal(byB64.body.top_k[0]?.class, byB64.body.class);
    assert.ok(byB64.body.latency_ms > 0);

    const form = new FormData();
    form.set('model', 'model');
    form.set('top_k', '2');
    form.set('image', new Blob([fs.readFileSync(path.join(data, 'set/val', rel))]), 'x.png');
    const res = await fetch(`${url}/api/v2/inference/predict`, { method: 'POST', body: form });
    const byUpload = (await res.json()) as Answer;
    assert.equal(res.status, 200, JSON.stringify(byUpload));
    same(byUpload, rel);
    assert.equal(byUpload.top_k.length, 2);

    const byPath = await predict({ model: 'model', path: `set/val/${rel}` });
    same(byPath.body, rel);
    const byPair = await predict({
      cfg_path: 'model/config.yaml',
      weight_path: 'model/best_model.pth', // the .onnx beside it runs
      path: `set/val/${rel}`,
    });
    assert.equal(byPair.status, 200, JSON.stringify(byPair.body));
    same(byPair.body, rel);
  });

  it("an IQ chunk is classified as the spectrogram task's image of it", async () => {
    const spec = { sample_rate: 1e6, duration_time: 0.01, stft_point: 256, width: 120, height: 90 };
    await task('/api/v2/preprocessing/spectrogram', { input_path: 'chunk.iq', output_path: 'spec', ...spec });
    const image = await predict({ model: 'model', path: 'spec/chunk (1).png' });
    assert.equal(image.status, 200, JSON.stringify(image.body));
    const frame = { stft_point: 256, width: 120, height: 90 };
    const byB64 = await predict({ model: 'model', iq_base64: b64('chunk.iq'), ...frame });
    assert.equal(byB64.status, 200, JSON.stringify(byB64.body));
    assert.equal(byB64.body.input, 'iq');
    const form = new FormData();
    form.set('model', 'model');
    for (const [k, v] of Object.entries(frame)) form.set(k, String(v));
    form.set('file', new Blob([fs.readFileSync(path.join(data, 'chunk.iq'))]), 'chunk.iq');
    const res = await fetch(`${url}/api/v2/inference/predict`, { method: 'POST', body: form });
    const byUpload = (await res.json()) as Answer;
    assert.equal(res.status, 200, JSON.stringify(byUpload));
    const byPath = await predict({ model: 'model', path: 'chunk.iq', ...frame });
    for (const a of [byB64.body, byUpload, byPath.body]) {
      assert.equal(a.class, image.body.class);
      assert.ok(
        Math.abs(a.confidence - image.body.confidence) < 1e-6,
        `${a.confidence} vs ${image.body.confidence}`,
      );
    }
  });

  it('reads a chunk smaller than 4 KiB as exactly its own samples', async () => {
    // Small decoded bodies live in Node's shared buffer pool; the samples must be these bytes,
    // not the pool around them. 256 samples = 2 KiB, by base64, upload and path alike.
    const bytes = fs.readFileSync(path.join(data, 'chunk.iq')).subarray(0, 256 * 8);
    fs.writeFileSync(path.join(data, 'small.iq'), bytes);
    const frame = { stft_point: 16, width: 64, height: 48 };
    const byPath = await predict({ model: 'model', path: 'small.iq', ...frame });
    assert.equal(byPath.status, 200, JSON.stringify(byPath.body));
    const form = new FormData();
    form.set('model', 'model');
    for (const [k, v] of Object.entries(frame)) form.set(k, String(v));
    form.set('iq', new Blob([bytes]), 'small.iq');
    const res = await fetch(`${url}/api/v2/inference/predict`, { method: 'POST', body: form });
    const byUpload = (await res.json()) as Answer;
    assert.equal(res.status, 200, JSON.stringify(byUpload));
    for (let i = 0; i < 3; i++) {
      const byB64 = await predict({ model: 'model', iq_base64: bytes.toString('base64'), ...frame });
      assert.equal(byB64.status, 200, JSON.stringify(byB64.body));
      for (const a of [byB64.body, byUpload]) {
        assert.deepEqual(
          a.top_k.map((t) => t.confidence.toFixed(6)),
          byPath.body.top_k.map((t) => t.confidence.toFixed(6)),
        );
      }
    }
  });

  it('batches concurrent requests, each still getting its own answer', async () => {
    const requests = [...images, ...images].map((rel) =>
      predict({ model: 'model', image_base64: b64(`set/val/${rel}`) }).then((r) => ({ rel, r })),
    );
    const done = await Promise.all(requests);
    const sizes = done.map(({ rel, r }) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      same(r.body, rel);
      return r.body.batch_size;
    });
    assert.ok(Math.max(...sizes) > 1, `batch sizes ${sizes.join(',')}`);
    assert.ok(Math.max(...sizes) <= 8, 'no batch over RFUAV_PREDICT_MAX_BATCH');
  });

  it('names what is wrong with a request', async () => {
    const img = b64(`set/val/${images[0]}`);
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{ image_base64: img }, 422, /^model: is required/],
      [{ model: 'model', cfg_path: 'model/config.yaml', image_base64: img }, 422, /^model: give either/],
      [{ model: 'model' }, 422, /^image: is required/],
      [{ model: 'model', image_base64: img, path: 'chunk.iq' }, 422, /^image: give exactly one input/],
      [{ model: 'model', image_base64: 'not base64!' }, 422, /^image_base64: is not base64/],
      [
        { model: 'model', image_base64: Buffer.from('hello').toString('base64') },
        422,
        /^image_base64: unreadable image/,
      ],
      [
        { model: 'model', iq_base64: Buffer.alloc(7).toString('base64') },
        422,
        /^iq_base64: 7 bytes is not a whole number/,
      ],
      [
        { model: 'model', iq_base64: Buffer.alloc(80).toString('base64') },
        422,
        /^iq_base64: 10 samples is shorter than stft_point 1024/,
      ],
      [
        { model: 'model', iq_base64: Buffer.alloc(8000).toString('base64'), stft_point: 100 },
        422,
        /^stft_point: must be a power of two \(got 100\)/,
      ],
      [{ model: 'nowhere', image_base64: img }, 400, /^model: 'nowhere' does not exist/],
      [{ model: '../..', image_base64: img }, 400, /^model: /],
      [{ model: 'set', image_base64: img }, 422, /^model: 'set' has no config.yaml/],
      [
        { cfg_path: 'model/config.yaml', weight_path: 'pth-only/w.pth', image_base64: img },
        422,
        /^weight_path: predict runs ONNX models/,
      ],
      [{ model: 'model', path: 'set/val' }, 400, /^path: 'set\/val' is not a file/],
      [{ model: 'model', path: 'model/config.yaml' }, 422, /^path: .* neither an image nor a raw IQ chunk/],
      [{ model: 'model', image_base64: img, top_k: 0 }, 422, /^top_k: must be >= 1/],
      [{ model: 'model', image_base64: img, stft_point: '256' }, 422, /^stft_point: must be integer/],
    ];
    for (const [body, status, message] of cases) {
      const r = await predict(body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 120)} → ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.message), message);
    }
    // A card that does not fit its model (96 px card, 48 px ONNX): named, not a server error.
    fs.mkdirSync(path.join(data, 'misfit'), { recursive: true });
    fs.copyFileSync(path.join(data, 'model/best_model.onnx'), path.join(data, 'misfit/best_model.onnx'));
    fs.writeFileSync(
      path.join(data, 'misfit/config.yaml'),
      fs
        .readFileSync(path.join(data, 'model/config.yaml'), 'utf8')
        .replace(/image_size: 48/, 'image_size: 96'),
    );
    const misfit = await predict({ model: 'misfit', image_base64: img });
    assert.equal(misfit.status, 422, JSON.stringify(misfit.body));
    assert.match(String(misfit.body.message), /^model: the ONNX model could not run/);
    fs.writeFileSync(path.join(data, 'misfit/best_model.onnx'), 'not onnx');
    const corrupt = await predict({ model: 'misfit', image_base64: img });
    assert.equal(corrupt.status, 422, JSON.stringify(corrupt.body));
    const notJson = await fetch(`${url}/api/v2/inference/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[1,2]',
    });
    assert.equal(notJson.status, 422);
    const broken = await fetch(`${url}/api/v2/inference/predict`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: '--x\r\nContent-Disposition: form-data; name="model"\r\n\r\nmod',
    });
    assert.equal(broken.status, 400);
    assert.match(
      ((await broken.json()) as { message: string }).message,
      /^the multipart body could not be read/,
    );
    const two = new FormData();
    two.set('model', 'model');
    two.append(
      'image',
      new Blob([fs.readFileSync(path.join(data, 'set/val', images[0] as string))]),
      'a.png',
    );
    two.append(
      'image',
      new Blob([fs.readFileSync(path.join(data, 'set/val', images[1] as string))]),
      'b.png',
    );
    const twoFiles = await fetch(`${url}/api/v2/inference/predict`, { method: 'POST', body: two });
    assert.equal(twoFiles.status, 413);
    assert.match(((await twoFiles.json()) as { message: string }).message, /^send one file per request/);
  });

  it('refuses with 429 and Retry-After beyond its in-flight limit, and 413 for a too large body', async () => {
    const small = await startService(tmpDir(), {
      listen: true,
      env: {
        RFUAV_DATA_ROOT: data,
        RFUAV_TORCH_THREADS: '1',
        RFUAV_PREDICT_MAX_INFLIGHT: '2',
        RFUAV_PREDICT_MAX_WAIT_MS: '1500',
        RFUAV_PREDICT_BODY_LIMIT_BYTES: '4096',
      },
    });
    const call = (rel: string) =>
      http<Answer>(`${small.url}/api/v2/inference/predict`, 'POST', {
        model: 'model',
        path: `set/val/${rel}`,
      });
    const rs = await Promise.all(images.slice(0, 6).map(call));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 429, 429, 429, 429], JSON.stringify(rs.map((r) => r.body)));
    const refused = rs.find((r) => r.status === 429);
    assert.equal(refused?.headers.get('retry-after'), '1');
    assert.match(String(refused?.body.message), /predict is busy: 2 requests are in progress/);
    const big = await http<Answer>(`${small.url}/api/v2/inference/predict`, 'POST', {
      model: 'model',
      image_base64: 'A'.repeat(8000),
    });
    assert.equal(big.status, 413);
    // A chunk named by path is held to the same limit as an upload.
    const long = await http<Answer>(`${small.url}/api/v2/inference/predict`, 'POST', {
      model: 'model',
      path: 'chunk.iq',
    });
    assert.equal(long.status, 422, JSON.stringify(long.body));
    assert.match(
      String(long.body.message),
      /^path: 'chunk.iq' \(80000 bytes\) is longer than one chunk \(at most 4096 bytes/,
    );
    // The service is fine afterwards.
    assert.equal((await call(images[0] as string)).status, 200);
  });
});
