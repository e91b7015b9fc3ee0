import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { magnitudeDb, stftPlan } from '../../src/signal/stft.js';
import { startService, tmpDir, waitFor } from '../helpers.js';

function recording(samples: number, freq: number): Float32Array {
  const iq = new Float32Array(2 * samples);
  for (let k = 0; k < samples; k++) {
    iq[2 * k] = Math.cos(2 * Math.PI * freq * k) + 0.01 * Math.sin(k * 7.3);
    iq[2 * k + 1] = Math.sin(2 * Math.PI * freq * k) + 0.01 * Math.cos(k * 3.1);
  }
  return iq;
}

function npyMatrix(file: string): { shape: number[]; data: Float32Array } {
  const buf = fs.readFileSync(file);
  assert.equal(buf.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const len = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + len).toString('latin1');
  assert.match(header, /'descr': '<f4', 'fortran_order': False/);
  assert.equal((10 + len) % 64, 0);
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header)?.slice(1).map(Number) as number[];
  const body = buf.subarray(10 + len);
  return {
    shape,
    data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)),
  };
}

describe('spectrogram task', async () => {
  const dir = tmpDir();
  const svc = await startService(dir);
  const data = svc.config.dataRoot;
  fs.mkdirSync(path.join(data, 'rf/alpha'), { recursive: true });
  fs.mkdirSync(path.join(data, 'rf/beta'), { recursive: true });
  // Slices of 2000 samples; by default (ratio 1) one starts every 1000: 3 slices and a tail of
  // 700 from a, 5 from b.
  const a = recording(2000 * 2 + 700, 0.1);
  const b = recording(2000 * 3, -0.2);
  fs.writeFileSync(path.join(data, 'rf/alpha/pack1.iq'), new Uint8Array(a.buffer));
  fs.writeFileSync(path.join(data, 'rf/beta/pack2.dat'), new Uint8Array(b.buffer));
  fs.writeFileSync(path.join(data, 'rf/beta/notes.txt'), 'not a recording');
  const post = (payload: object) =>
    svc.app.inject({ method: 'POST', url: '/api/v2/preprocessing/spectrogram', payload });

  it('converts a root of class folders into mirrored, half-overlapping slice images and dB matrices', async () => {
    const r = await post({
      input_path: 'rf',
      output_path: 'spec',
      sample_rate: 100_000,
      duration_time: 0.02,
      stft_point: 256,
      width: 160,
      height: 120,
      format: 'png',
      save_matrix: true,
      task_id: 'spec-1',
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(JSON.parse(r.body).parameters.task_id, undefined, 'common fields stay out of parameters');
    const parameters = JSON.parse(r.body).parameters;
    assert.equal(parameters.samples_per_slice, 2000);
    assert.equal(parameters.ratio, 1, 'the reference’s default step: half a slice');
    assert.equal(parameters.render, 'matplotlib');
    const done = await waitFor(
      async () => {
        const t = JSON.parse((await svc.app.inject({ url: '/api/v2/preprocessing/spec-1' })).body);
        return ['completed', 'failed'].includes(t.status) ? t : null;
      },
      20_000,
      'spectrogram task',
    );
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.stats.files, 2);
    assert.equal(done.stats.slices, 8);
    assert.equal(done.stats.matrices, 8);
    assert.equal(done.stats.truncated_samples, 700);
    assert.deepEqual(fs.readdirSync(path.join(data, 'spec/alpha')).sort(), [
      'pack1 (1).npy',
      'pack1 (1).png',
      'pack1 (2).npy',
      'pack1 (2).png',
      'pack1 (3).npy',
      'pack1 (3).png',
    ]);
    assert.equal(fs.readdirSync(path.join(data, 'spec/beta')).filter((f) => f.endsWith('.png')).length, 5);
    const meta = await sharp(path.join(data, 'spec/alpha/pack1 (2).png')).metadata();
    assert.deepEqual([meta.width, meta.height], [160, 120]);
    // the matrix of slice 2 is exactly the STFT of samples 1000–2999
    const m = npyMatrix(path.join(data, 'spec/alpha/pack1 (2).npy'));
    const expected = magnitudeDb(a.slice(2000, 6000), stftPlan(256));
    assert.deepEqual(m.shape, [expected.freqs, expected.frames]);
    assert.deepEqual(m.data, expected.db);
    // different signals give different images
    const img = (f: string) => fs.readFileSync(path.join(data, 'spec', f));
    assert.notDeepEqual(img('alpha/pack1 (1).png'), img('beta/pack2 (1).png'));
    const logs = await svc.store.readLogs('spec-1', 0, 100);
    assert.ok(logs.some((l) => /last 700 samples do not fill a slice/.test(l.message)));
  });

  it('writes one animated image per recording when asked (WebP or GIF)', async () => {
    for (const animation_format of ['webp', 'gif'] as const) {
      const id = `anim-${animation_format}`;
      const r = await post({
        input_path: 'rf',
        output_path: `anim-${animation_format}`,
        sample_rate: 100_000,
        duration_time: 0.02,
        stft_point: 256,
        width: 200,
        height: 100,
        animation: true,
        animation_format,
        task_id: id,
      });
      assert.equal(r.statusCode, 200, r.body);
      const done = await waitFor(
        async () => {
          const t = JSON.parse((await svc.app.inject({ url: `/api/v2/tasks/${id}` })).body);
          return ['completed', 'failed'].includes(t.status) ? t : null;
        },
        20_000,
        id,
      );
      assert.equal(done.status, 'completed', done.error);
      assert.equal(done.stats.animations, 2);
      const meta = await sharp(path.join(data, `anim-${animation_format}/beta/pack2.${animation_format}`), {
        animated: true,
      }).metadata();
      assert.equal(meta.format, animation_format);
      assert.equal(meta.pages, 5, 'one frame per slice');
      assert.deepEqual([meta.width, meta.pageHeight], [200, 100]);
    }
  });

  it('steps slices by duration_time × 2^−ratio (0: one after another, −1: every other) and draws them either way', async () => {
    const run = async (id: string, extra: object) => {
      const r = await post({
        input_path: 'rf',
        output_path: id,
        sample_rate: 100_000,
        duration_time: 0.02,
        stft_point: 256,
        width: 64,
        height: 48,
        task_id: id,
        ...extra,
      });
      assert.equal(r.statusCode, 200, r.body);
      const done = await waitFor(
        async () => {
          const t = JSON.parse((await svc.app.inject({ url: `/api/v2/tasks/${id}` })).body);
          return ['completed', 'failed'].includes(t.status) ? t : null;
        },
        20_000,
        id,
      );
      assert.equal(done.status, 'completed', done.error);
      return done;
    };
    const consecutive = await run('ratio-0', { ratio: 0 });
    assert.equal(consecutive.stats.slices, 2 + 3);
    assert.equal(consecutive.stats.truncated_samples, 700);
    const skipping = await run('ratio-minus-1', { ratio: -1 });
    // a: one slice (0–1999), 2700 samples in none; b: slices at 0 and 4000, 2000 in between in none
    assert.equal(skipping.stats.slices, 1 + 2);
    assert.equal(skipping.stats.truncated_samples, 2700 + 2000);
    const logs = await svc.store.readLogs('ratio-minus-1', 0, 100);
    assert.ok(logs.some((l) => /ratio -1 skips 2000 samples between slices/.test(l.message)));
    // Slice 2 of ratio 0 is slice 3 of the default ratio 1 (both start at sample 2000).
    const power = await run('power', { ratio: 0, render: 'power' });
    assert.equal(power.stats.slices, 5);
    await run('ratio-1', {});
    const px = async (f: string) => (await sharp(path.join(data, f)).raw().toBuffer()).toString('base64');
    assert.equal(await px('ratio-0/alpha/pack1 (2).png'), await px('ratio-1/alpha/pack1 (3).png'));
    assert.notEqual(await px('ratio-0/alpha/pack1 (2).png'), await px('power/alpha/pack1 (2).png'));
  });

  it('rejects bad parameters and inputs with errors naming the field', async () => {
    const base = { input_path: 'rf', output_path: 'x', sample_rate: 100_000, duration_time: 0.02 };
    const cases: [object, number, RegExp][] = [
      [{ ...base, stft_point: 1000 }, 422, /stft_point: must be a power of two/],
      [
        { ...base, duration_time: 0.001, stft_point: 256 },
        422,
        /duration_time: a slice of 100 samples .* shorter than stft_point 256/,
      ],
      [{ ...base, format: 'bmp' }, 422, /format/],
      [{ ...base, dtype: 'float64' }, 422, /dtype/],
      [{ ...base, ratio: 9 }, 422, /ratio/],
      [{ ...base, ratio: 0.5 }, 422, /ratio/],
      [{ ...base, render: 'bilinear' }, 422, /render/],
      [{ ...base, input_path: 'rf/beta/notes.txt' }, 400, /is not a .iq or .dat recording/],
      [{ ...base, output_path: 'rf/inside' }, 400, /must not be inside input_path/],
      [
        { ...base, output_path: 'rf/beta/notes.txt' },
        400,
        /output_path: 'rf\/beta\/notes.txt' exists and is not a folder/,
      ],
    ];
    for (const [payload, code, re] of cases) {
      const r = await post(payload);
      assert.equal(r.statusCode, code, r.body);
      assert.match(JSON.parse(r.body).message, re);
    }
    fs.writeFileSync(path.join(data, 'odd.iq'), new Uint8Array(8 * 3000 + 5));
    const odd = await post({ ...base, input_path: 'odd.iq', stft_point: 256 });
    assert.equal(odd.statusCode, 400);
    assert.match(JSON.parse(odd.body).message, /not a whole number of float32 complex samples/);
  });
});
