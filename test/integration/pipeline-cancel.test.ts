import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { writeRecording, CLASS_PROFILES, type ClassProfile } from '../../src/signal/synth.js';
import { startService, tmpDir, waitFor } from '../helpers.js';

describe('cancelling data-pipeline tasks while their workers run', async () => {
  const svc = await startService(tmpDir());
  const data = svc.config.dataRoot;
  const status = async (id: string) =>
    JSON.parse((await svc.app.inject({ url: `/api/v2/tasks/${id}` })).body) as {
      status: string;
      progress: number;
      stats: Record<string, number> | null;
    };
  const cancelWhenRunning = async (id: string) => {
    await waitFor(async () => ((await status(id)).progress > 0 ? true : null), 20_000, `${id} progress`);
    const r = await svc.app.inject({ method: 'POST', url: `/api/v2/tasks/${id}/cancel` });
    assert.equal(r.statusCode, 200, r.body);
    return waitFor(
      async () => {
        const t = await status(id);
        return ['cancelled', 'completed', 'failed'].includes(t.status) ? t : null;
      },
      20_000,
      `${id} to stop`,
    );
  };

  it('stops a long spectrogram task, and the workers serve the next one', async () => {
    await writeRecording(path.join(data, 'long.iq'), CLASS_PROFILES[0] as ClassProfile, {
      sampleRate: 1e6,
      durationS: 4,
      snrDb: 10,
      seed: 1,
    });
    const r = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/spectrogram',
      payload: {
        input_path: 'long.iq',
        output_path: 'long',
        sample_rate: 1e6,
        duration_time: 0.05,
        task_id: 'spec-c',
      },
    });
    assert.equal(r.statusCode, 200, r.body);
    const t = await cancelWhenRunning('spec-c');
    assert.equal(t.status, 'cancelled');
    const written = fs.readdirSync(path.join(data, 'long')).length;
    assert.ok(written < 80, `all ${written} slices were written despite the cancel`);

    const again = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/spectrogram',
      payload: {
        input_path: 'long.iq',
        output_path: 'short',
        sample_rate: 1e6,
        duration_time: 1,
        width: 64,
        height: 48,
        task_id: 'spec-d',
      },
    });
    assert.equal(again.statusCode, 200, again.body);
    const done = await waitFor(
      async () => ((await status('spec-d')).status === 'completed' ? status('spec-d') : null),
      20_000,
      'spec-d',
    );
    assert.equal(done.stats?.images, 7, '1 s slices every 0.5 s (the default ratio 1) from 4 s');
  });

  it('stops a long augmentation task', async () => {
    for (const split of ['train', 'valid']) {
      fs.mkdirSync(path.join(data, 'ds', split, 'c0'), { recursive: true });
      for (let i = 0; i < (split === 'train' ? 40 : 2); i++) {
        await sharp({
          create: { width: 400, height: 300, channels: 3, background: { r: i * 5, g: 80, b: 160 } },
        })
          .png()
          .toFile(path.join(data, 'ds', split, 'c0', `${i}.png`));
      }
    }
    const r = await svc.app.inject({
      method: 'POST',
      url: '/api/v2/preprocessing/augment',
      payload: { dataset_path: 'ds', seed: 1, task_id: 'aug-c' },
    });
    assert.equal(r.statusCode, 200, r.body);
    const t = await cancelWhenRunning('aug-c');
    assert.equal(t.status, 'cancelled');
    assert.ok(fs.readdirSync(path.join(data, 'ds_aug/train/c0')).length < 40 * 7);
  });
});
