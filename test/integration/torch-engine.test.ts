/** Process control around the PyTorch runner: results, cancel, crash, hang, garbage. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  runTorch,
  RunnerError,
  type RunnerEvent,
  type RunnerOptions,
} from '../../src/engines/torch/runner.js';
import { processAlive as alive, tmpDir } from '../helpers.js';
import sharp from 'sharp';
import fs from 'node:fs';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';

function run(command: RunnerOptions['command'], request: object, extra: Partial<RunnerOptions> = {}) {
  const events: RunnerEvent[] = [];
  const stderr: string[] = [];
  const promise = runTorch({
    python: PYTHON,
    command,
    request,
    silenceTimeoutMs: 30_000,
    killGraceMs: 1000,
    onEvent: (e) => events.push(e),
    onStderr: (l) => stderr.push(l),
    ...extra,
  });
  return { promise, events, stderr };
}

async function rejection(p: Promise<unknown>): Promise<RunnerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RunnerError, String(err));
    return err;
  }
  throw new Error('expected a rejection');
}

describe('PyTorch runner process control', async () => {
  const dir = tmpDir();
  for (const split of ['train', 'val']) {
    for (const [cls, shade] of [
      ['dark', 30],
      ['light', 220],
    ] as const) {
      fs.mkdirSync(path.join(dir, split, cls), { recursive: true });
      for (let i = 0; i < 4; i++) {
        await sharp({
          create: { width: 32, height: 32, channels: 3, background: { r: shade, g: shade, b: i * 10 } },
        })
          .png()
          .toFile(path.join(dir, split, cls, `${i}.png`));
      }
    }
  }
  const train = {
    model: 'resnet18',
    num_classes: 2,
    train_path: path.join(dir, 'train'),
    val_path: path.join(dir, 'val'),
    batch_size: 4,
    image_size: 32,
    pretrained: false,
    seed: 1,
    threads: 1,
  };

  it('resolves with the result of a real training run and relays its events', async () => {
    const r = run('train', { ...train, num_epochs: 1, output_dir: path.join(dir, 'ok') });
    const result = await r.promise;
    assert.equal(result.epochs, 1);
    assert.ok(r.events.some((e) => e.event === 'metrics'));
  });

  it('cancels a real training run: the whole process group is gone before it settles', async () => {
    const controller = new AbortController();
    let pid = 0;
    const r = run(
      'train',
      { ...train, num_epochs: 500, output_dir: path.join(dir, 'cancel') },
      {
        signal: controller.signal,
        onSpawn: (p) => (pid = p),
        onEvent: (e) => {
          if (e.event === 'progress' && !controller.signal.aborted) controller.abort();
        },
      },
    );
    const err = await rejection(r.promise);
    assert.equal(err.reason, 'aborted');
    assert.ok(pid > 0 && !alive(pid), `runner ${pid} still alive after the run settled`);
  });

  it('fails on a crash, on garbage, on silence, and on an error event, with the reason', async () => {
    const crash = await rejection(
      run(
        [
          '-c',
          'import sys; print(\'{"event": "log", "message": "hi"}\'); sys.stderr.write("boom\\n"); sys.exit(7)',
        ],
        {},
      ).promise,
    );
    assert.equal(crash.reason, 'exit');
    assert.match(crash.message, /exited with code 7 without a result: boom/);

    const garbage = await rejection(run(['-c', 'import time; print("hello"); time.sleep(30)'], {}).promise);
    assert.equal(garbage.reason, 'garbage');
    assert.match(garbage.message, /not an event: hello/);

    const t0 = Date.now();
    const silent = await rejection(
      run(['-c', 'import time; time.sleep(30)'], {}, { silenceTimeoutMs: 400 }).promise,
    );
    assert.equal(silent.reason, 'silence');
    assert.ok(Date.now() - t0 < 5000);

    const bad = await rejection(
      run('train', { ...train, model: 'lenet', output_dir: path.join(dir, 'bad') }).promise,
    );
    assert.equal(bad.reason, 'error-event');
    assert.match(bad.message, /unsupported model 'lenet'/);
  });

  it('kills a runner that ignores SIGTERM after the grace period', async () => {
    const controller = new AbortController();
    const code =
      'import signal, time, os; signal.signal(signal.SIGTERM, signal.SIG_IGN); ' +
      'print(\'{"event": "log", "message": "%d"}\' % os.getpid(), flush=True); time.sleep(60)';
    let pid = 0;
    const r = run(
      ['-c', code],
      {},
      {
        signal: controller.signal,
        killGraceMs: 300,
        onEvent: (e) => {
          pid = Number(e.message);
          controller.abort();
        },
      },
    );
    const t0 = Date.now();
    const err = await rejection(r.promise);
    assert.equal(err.reason, 'aborted');
    assert.ok(Date.now() - t0 >= 250, 'waited for the grace period');
    assert.ok(pid > 0 && !alive(pid), `process ${pid} still alive`);
  });
});
