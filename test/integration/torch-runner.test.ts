/**
 * The PyTorch runner (python/rfuav_torch) run for real, as the service will run it: request on
 * stdin (kept open), NDJSON events on stdout. A small model really trains on a small set.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runTorch, RunnerError } from '../../src/engines/torch/runner.js';
import { writeImageFolder } from '../fixtures/images.js';
import { EPOCH_METRICS, PERCENT_METRICS, tmpDir, writePickleBomb } from '../helpers.js';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';
const PYTHON_ROOT = path.resolve(import.meta.dirname, '../../python');

interface RunnerEvent {
  event: string;
  [k: string]: unknown;
}

function runRunner(
  command: string,
  request: object,
): Promise<{ code: number | null; events: RunnerEvent[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'rfuav_torch', command], {
      cwd: PYTHON_ROOT,
      env: { ...process.env, PYTHONPATH: PYTHON_ROOT },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // The request is the first line; stdin stays open (EOF would tell the runner we are gone).
    child.stdin.write(`${JSON.stringify(request)}\n`);
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      child.stdin.destroy();
      const events = out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as RunnerEvent);
      resolve({ code, events, stderr });
    });
  });
}

async function dataset(root: string): Promise<void> {
  await writeImageFolder(path.join(root, 'train'), { classes: 2, perClass: 12, seed: 3 });
  await writeImageFolder(path.join(root, 'val'), { classes: 2, perClass: 4, seed: 5 });
}

describe('PyTorch runner', async () => {
  const dir = tmpDir();
  await dataset(dir);
  const base = {
    model: 'resnet18',
    num_classes: 2,
    train_path: path.join(dir, 'train'),
    val_path: path.join(dir, 'val'),
    output_dir: path.join(dir, 'out'),
    batch_size: 8,
    learning_rate: 0.001,
    image_size: 32,
    pretrained: true,
    seed: 1,
    threads: 1,
    resume: true,
  };

  it('trains, streams per-epoch metrics, writes every artifact, and resumes at the next epoch', async () => {
    const first = await runRunner('train', { ...base, num_epochs: 2 });
    assert.equal(first.code, 0, first.stderr + JSON.stringify(first.events.find((e) => e.event === 'error')));
    const metrics = first.events.filter((e) => e.event === 'metrics');
    assert.deepEqual(
      metrics.map((m) => m.epoch),
      [1, 2],
    );
    const values = metrics.map((m) => m.values as Record<string, number>);
    for (const k of EPOCH_METRICS) {
      assert.equal(typeof values[0]?.[k], 'number', k);
    }
    assert.ok((values[1]?.train_loss as number) < (values[0]?.train_loss as number), 'training loss falls');
    assert.ok((values[1]?.train_acc as number) > 50, 'above chance on the training set (percent)');
    for (const k of PERCENT_METRICS) {
      const v = values[1]?.[k] as number;
      assert.ok(v >= 0 && v <= 100, `${k} is a percentage: ${v}`);
    }
    assert.ok((values[1]?.macro_f1 as number) <= 1, 'F1 is a fraction');
    assert.equal(values[1]?.precision, values[1]?.macro_precision);
    assert.equal(values[1]?.recall, values[1]?.macro_recall);
    assert.equal(values[1]?.total_epochs, 2);
    assert.ok(first.events.some((e) => e.event === 'log' && /random initialisation/.test(String(e.message))));
    assert.ok(first.events.some((e) => e.event === 'progress'));
    assert.equal(first.events.at(-1)?.event, 'result');
    const out = base.output_dir;
    for (const f of [
      'resnet18_epoch_1.pth',
      'resnet18_epoch_2.pth',
      'best_model.pth',
      'checkpoint_last.pt',
      'config.yaml',
      'metrics.jsonl',
      'train.log',
      'best_model.onnx',
    ]) {
      assert.ok(fs.statSync(path.join(out, f)).size > 0, f);
    }
    const card = fs.readFileSync(path.join(out, 'config.yaml'), 'utf8');
    assert.match(card, /model: resnet18/);
    assert.match(card, /class_names:\n {2}left: 0\n {2}right: 1/);

    // Resume: two more epochs continue from the checkpoint; the history has each epoch once.
    const second = await runRunner('train', { ...base, num_epochs: 4 });
    assert.equal(second.code, 0, second.stderr);
    assert.ok(
      second.events.some((e) => e.event === 'log' && /continuing at epoch 3/.test(String(e.message))),
    );
    assert.deepEqual(
      second.events.filter((e) => e.event === 'metrics').map((m) => m.epoch),
      [3, 4],
    );
    // It first says which epochs count, with what the first run measured for them.
    const said = second.events.find((e) => e.event === 'history') as
      { epochs_done: number; epochs: { epoch: number; val_acc: number }[] } | undefined;
    const firstRun = first.events.filter((e) => e.event === 'metrics').map((m) => m.values);
    assert.equal(said?.epochs_done, 2);
    assert.deepEqual(said?.epochs, firstRun);
    const history = fs
      .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(history, [1, 2, 3, 4]);
  });

  it('reports bad requests as an error event and a non-zero exit', async () => {
    const wrongModel = await runRunner('train', { ...base, model: 'lenet', output_dir: path.join(dir, 'x') });
    assert.equal(wrongModel.code, 1);
    assert.match(String(wrongModel.events.at(-1)?.message), /unsupported model 'lenet'/);
    const wrongCount = await runRunner('train', { ...base, num_classes: 1, output_dir: path.join(dir, 'y') });
    assert.equal(wrongCount.code, 1);
    assert.match(String(wrongCount.events.at(-1)?.message), /num_classes is 1 but .* has 2 class folders/);
    const unknown = await runRunner('dance', {});
    assert.equal(unknown.code, 1);
    assert.match(String(unknown.events.at(-1)?.message), /unknown command 'dance'/);
    // The request is typed: a field it does not know, one left out without a default, or one of
    // the wrong type is named before anything runs.
    const typo = await runRunner('train', { ...base, epochs: 3, image_size: '32' });
    assert.equal(typo.code, 1);
    assert.equal(
      typo.events.at(-1)?.message,
      `RequestError: train: unknown field 'epochs'; field 'image_size' must be an integer, not a string "32"`,
    );
    const missing = await runRunner('evaluate', { batch_size: 4 });
    assert.equal(missing.code, 1);
    assert.match(
      String(missing.events.at(-1)?.message),
      /missing field 'cfg_path'; missing field 'weight_path'/,
    );
  });

  it('trains a head wider than the class folders, as the reference allows, and says which outputs are unused', async () => {
    const wide = await runRunner('train', {
      ...base,
      num_classes: 4,
      num_epochs: 1,
      resume: false,
      output_dir: path.join(dir, 'wide'),
    });
    assert.equal(wide.code, 0, wide.stderr + JSON.stringify(wide.events.find((e) => e.event === 'error')));
    assert.ok(
      wide.events.some(
        (e) =>
          e.event === 'log' &&
          e.level === 'warning' &&
          /num_classes is 4 .* 2 class folders: outputs 2-3 are unused/.test(String(e.message)),
      ),
    );
    const card = fs.readFileSync(path.join(dir, 'wide', 'config.yaml'), 'utf8');
    assert.match(card, /num_classes: 4/);
    assert.match(card, /unused_classes:\n- 2\n- 3/);
    const onnx = wide.events.find((e) => e.event === 'result') as { onnx?: { probe_logits?: number[][] } };
    assert.equal(onnx.onnx?.probe_logits?.[0]?.length, 4, 'the head has num_classes outputs');
  });

  it('refuses weight files that carry pickled code, and nothing in them runs', async () => {
    const marker = path.join(dir, 'pwned');
    const evil = path.join(dir, 'evil.pth');
    writePickleBomb(evil, marker);
    const asWeights = await runRunner('train', {
      ...base,
      num_epochs: 1,
      resume: false,
      weight_path: evil,
      output_dir: path.join(dir, 'evil-train'),
    });
    assert.equal(asWeights.code, 1);
    assert.match(
      String(asWeights.events.at(-1)?.message),
      /evil\.pth is not a plain weights file: it holds Python objects other than tensors \(Unsupported class posix\.system\); loading it could run code, so it was refused/,
    );
    // Planted as a resume checkpoint: refused too, and training starts over instead.
    fs.mkdirSync(path.join(dir, 'evil-resume'));
    fs.copyFileSync(evil, path.join(dir, 'evil-resume', 'checkpoint_last.pt'));
    const resumed = await runRunner('train', {
      ...base,
      num_epochs: 1,
      output_dir: path.join(dir, 'evil-resume'),
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(
      resumed.events.some(
        (e) =>
          e.event === 'log' &&
          /checkpoint_last\.pt cannot be resumed .*refused.*epoch 1/.test(String(e.message)),
      ),
    );
    assert.equal(fs.existsSync(marker), false, 'the pickled call never ran');
  });

  it('exits on its own when its parent goes away (stdin closes)', async () => {
    const child = spawn(PYTHON, ['-m', 'rfuav_torch', 'train'], {
      cwd: PYTHON_ROOT,
      env: { ...process.env, PYTHONPATH: PYTHON_ROOT },
    });
    child.stdin.write(
      `${JSON.stringify({ ...base, num_epochs: 500, resume: false, output_dir: path.join(dir, 'orphan') })}\n`,
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const started = Date.now();
    while (!out.includes('"progress"') && Date.now() - started < 60_000)
      await new Promise((r) => setTimeout(r, 100));
    const closedAt = Date.now();
    child.stdin.end();
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 3);
    assert.ok(Date.now() - closedAt < 5000, `took ${Date.now() - closedAt} ms to exit`);
  });

  it('keeps running while its keep-alive comes, and stops itself and its group once it stops coming', async () => {
    let progressAt = 0;
    let okUntil = Number.POSITIVE_INFINITY;
    let pid = 0;
    const stderr: string[] = [];
    const run = runTorch({
      python: PYTHON,
      command: 'train',
      request: { ...base, num_epochs: 500, resume: false, output_dir: path.join(dir, 'kept') },
      silenceTimeoutMs: 60_000,
      killGraceMs: 1000,
      keepAlive: { timeoutMs: 1000, ok: () => Date.now() < okUntil },
      onSpawn: (p) => (pid = p),
      onStderr: (line) => stderr.push(line),
      onEvent: (e) => {
        if (e.event === 'progress' && !progressAt) {
          progressAt = Date.now();
          // Three timeouts' worth of keep-alives first: the runner must not stop while they come.
          okUntil = progressAt + 3000;
        }
      },
    });
    const failure = await run.then(
      () => assert.fail('a 500-epoch run cannot finish here'),
      (err: unknown) => err,
    );
    const stoppedAt = Date.now();
    assert.ok(failure instanceof RunnerError && failure.reason === 'keepalive', String(failure));
    assert.ok(progressAt > 0, 'the run started');
    // The last keep-alive went out up to one interval (250 ms) before okUntil, with a deadline
    // 1 s after it was sent.
    assert.ok(stoppedAt >= okUntil + 700, `stopped ${stoppedAt - okUntil} ms after the keep-alive ended`);
    assert.ok(stoppedAt < okUntil + 5000, `stopped ${stoppedAt - okUntil} ms after the keep-alive ended`);
    assert.match(stderr.join('\n'), /no keep-alive from the service for 1 s/);
    assert.throws(() => process.kill(-pid, 0), 'the process group is gone');
  });
});
