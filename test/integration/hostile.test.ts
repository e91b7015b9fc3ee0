import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../../src/util/random.js';
import { startService, tmpDir } from '../helpers.js';

/** Values a careless or hostile client might send in any field. */
const NASTY: unknown[] = [
  null,
  true,
  0,
  -1,
  1e308,
  -0.5,
  Number.MAX_SAFE_INTEGER,
  '',
  ' ',
  '..',
  '../../../../etc/passwd',
  '/etc/shadow',
  'a\u0000b',
  '%2e%2e/%2e%2e',
  '\\..\\..\\windows',
  'x'.repeat(5000),
  '😀/日本語',
  [],
  [1, 'a', null],
  {},
  { $gt: '' },
  { __proto__: { polluted: true } },
  'cuda:999',
  'cuda:-1',
  'CPU',
];

describe('hostile input sweep', () => {
  it('answers every malformed request with a 4xx JSON error and keeps serving', async () => {
    const svc = await startService(tmpDir(), { env: { RFUAV_RATE_LIMIT: '0' } });
    const rand = mulberry32(2024);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const routes = [
      '/api/v2/preprocessing/split',
      '/api/v2/preprocessing/crop',
      '/api/v2/preprocessing/spectrogram',
      '/api/v2/preprocessing/augment',
      '/api/v2/training/start',
      '/api/v2/training/x/stop',
      '/api/v2/training/x/metrics',
      '/api/v2/evaluation/start',
      '/api/v2/inference/start',
      '/api/v2/inference/batch',
      '/api/v2/inference/predict',
      '/api/v2/resources/config',
      '/api/v2/tasks/x/cancel',
    ];
    const fields = [
      'input_path',
      'output_path',
      'train_ratio',
      'val_ratio',
      'seed',
      'task_id',
      'priority',
      'x',
      'y',
      'width',
      'height',
      'max_concurrent',
      'description',
      'name',
      'device',
      'dataset_path',
      'methods',
      'sample_rate',
      'stft_point',
      'duration_time',
      'dtype',
      'format',
      'save_matrix',
      'animation',
      'model',
      'num_classes',
      'train_path',
      'val_path',
      'save_path',
      'batch_size',
      'num_epochs',
      'learning_rate',
      'image_size',
      'weight_path',
      'pretrained',
      'keep_epoch_weights',
      'cfg_path',
      'data_path',
      'source_path',
      'engine',
      'source_paths',
      'save_base_path',
      'annotate',
      'image_base64',
      'iq_base64',
      'path',
      'top_k',
    ];
    const counts: Record<number, number> = {};
    for (let i = 0; i < 900; i++) {
      const body: Record<string, unknown> = {};
      for (let f = 0; f < 1 + Math.floor(rand() * 6); f++) body[pick(fields)] = pick(NASTY);
      const raw =
        rand() < 0.15
          ? pick(['{', '[]', 'null', '"x"', '{"a":', '\u0000', '{"input_path":"a","input_path":"b"}'])
          : JSON.stringify(body);
      const r = await svc.app.inject({
        method: pick(['POST', 'POST', 'POST', 'PUT', 'DELETE', 'GET']),
        url: pick(routes),
        headers: {
          'content-type': pick([
            'application/json',
            'application/json',
            'text/plain',
            'application/json; charset=latin1',
            'multipart/form-data; boundary=x',
          ]),
        },
        payload: raw,
      });
      counts[r.statusCode] = (counts[r.statusCode] ?? 0) + 1;
      assert.ok(r.statusCode < 500, `${r.statusCode} for ${raw.slice(0, 200)}: ${r.body.slice(0, 300)}`);
      assert.ok(r.statusCode >= 400 || r.statusCode === 200, `unexpected ${r.statusCode}`);
      if (r.statusCode >= 400) {
        const b = JSON.parse(r.body);
        assert.equal(b.status, 'error');
        assert.equal(typeof b.message, 'string');
      }
    }
    for (const url of [
      '/api/v2/tasks/%00',
      '/api/v2/tasks/' + 'a'.repeat(300),
      '/api/v2/tasks/..%2f..%2fetc',
      '/api/v2/tasks?limit=-1',
      '/api/v2/tasks?limit=abc',
      '/api/v2/tasks?limit=100000',
      '/api/v2/tasks/x/logs?since=abc',
      '/api/v2/preprocessing/%ff',
    ]) {
      const r = await svc.app.inject({ url });
      assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${url} → ${r.statusCode} ${r.body}`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'prototype pollution');
    assert.equal((await svc.app.inject({ url: '/api/v1/health' })).statusCode, 200);
    assert.ok(Object.keys(counts).length > 2, JSON.stringify(counts));
  });
});
