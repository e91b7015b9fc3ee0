/**
 * kill -9 of the service in the middle of a training epoch, then a restart: the runner exits by
 * itself (its stdin closed), the task is re-queued, resumes from checkpoint_last.pt at the next
 * epoch, and its metric history has every epoch exactly once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeImageFolder } from '../fixtures/images.js';
import { processAlive as alive, replayedLog, tmpDir, waitFor } from '../helpers.js';

import { ensureBuilt, http, spawnCliServer } from '../process.js';

const entries = (url: string, id: string) => replayedLog(url, `/api/v2/tasks/${id}/logs`);

type Task = Record<string, unknown> & { status: string; attempts: number };

describe('training survives kill -9 of the service', async () => {
  ensureBuilt();
  const dir = tmpDir();
  const home = path.join(dir, 'home');
  const data = path.join(dir, 'data');
  await writeImageFolder(path.join(data, 'set/train'), { classes: 2, perClass: 16, size: 64, seed: 3 });
  await writeImageFolder(path.join(data, 'set/val'), { classes: 2, perClass: 4, size: 64, seed: 7 });
  const env = { RFUAV_TORCH_THREADS: '1' };

  it('resumes at the next epoch after a restart, with no duplicated or missing epochs', async () => {
    const first = await spawnCliServer(home, data, env);
    const r = await http(`${first.url}/api/v2/training/start`, 'POST', {
      task_id: 'resume-1',
      model: 'resnet18',
      num_classes: 2,
      train_path: 'set/train',
      val_path: 'set/val',
      save_path: 'runs/resume',
      device: 'cpu',
      image_size: 64,
      batch_size: 4,
      num_epochs: 4,
      learning_rate: 0.001,
      pretrained: false,
      seed: 1,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // Into epoch 3: two epochs are checkpointed, the third is under way.
    await waitFor(
      async () =>
        (await entries(first.url, 'resume-1')).some(
          (e) => e.stage === 'training' && /^Epoch 3 /.test(String(e.message)),
        ),
      120_000,
      'epoch 3 steps',
    );
    const before = await entries(first.url, 'resume-1');
    const pid = Number(
      /pid (\d+)/.exec(String(before.find((e) => /Runner started/.test(String(e.message)))?.message))?.[1],
    );
    assert.ok(alive(pid));
    first.child.kill('SIGKILL');
    await first.exited;
    await waitFor(() => !alive(pid), 10_000, 'the orphaned runner to exit on its own');

    const second = await spawnCliServer(home, data, env);
    const done = await waitFor(
      async () => {
        const t = (await http<Task>(`${second.url}/api/v2/training/resume-1`)).body;
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      120_000,
      'the resumed task to finish',
    );
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.equal(done.attempts, 2);
    const log = await entries(second.url, 'resume-1');
    assert.ok(log.some((e) => /re-queued to run again/.test(String(e.message))));
    assert.ok(
      log.some((e) =>
        /Resuming from checkpoint_last\.pt: epoch 2 done, continuing at epoch 3/.test(String(e.message)),
      ),
      'log says where it resumed',
    );
    const starts = log.filter((e) => e.stage === 'epoch_start').map((e) => e.step);
    assert.deepEqual(starts, [1, 2, 3, 3, 4], 'epoch 3 ran again; epochs 1 and 2 did not');
    const curve = await http<{ epochs: { epoch: number }[] }>(
      `${second.url}/api/v2/training/resume-1/metrics`,
    );
    assert.deepEqual(
      curve.body.epochs.map((e) => e.epoch),
      [1, 2, 3, 4],
    );
    const jsonl = fs.readFileSync(path.join(data, 'runs/resume/metrics.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(
      jsonl.map((l) => (JSON.parse(l) as { epoch: number }).epoch),
      [1, 2, 3, 4],
    );
    // Sequence numbers of the log stay contiguous across the crash.
    const seqText = await (await fetch(`${second.url}/api/v2/tasks/resume-1/logs?follow=false`)).text();
    const ids = [...seqText.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      ids,
      ids.map((_, i) => i + 1),
    );
  });
});
