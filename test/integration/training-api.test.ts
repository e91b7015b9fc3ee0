/**
 * Training and evaluation through the HTTP API, with the real PyTorch runner: a small ResNet-18
 * really trains on a generated set; its learning curve, log stages, artifacts and ONNX export are
 * checked, then it is evaluated on SNR folders. Also: validation at submission, stop mid-epoch,
 * and a runner that crashes or hangs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { readModelCard } from '../../src/engines/model-card.js';
import { writeImageFolder } from '../fixtures/images.js';
import {
  EPOCH_METRICS,
  fakeNvidiaSmi,
  processAlive as alive,
  replayedLog,
  startService,
  tmpDir,
  waitFor,
} from '../helpers.js';
import { http } from '../process.js';

const logEntries = (url: string, id: string) => replayedLog(url, `/api/v2/training/${id}/logs`);

type Task = Record<string, unknown> & { status: string; task_id: string };
type Metrics = Record<string, number> & { train_loss: number; best_acc: number };

/** train/<3 classes> × 16 and val/<3 classes> × 6 at 64 px: learnable in two epochs on CPU. */
async function trainingSet(data: string): Promise<void> {
  await writeImageFolder(path.join(data, 'set/train'), { classes: 3, perClass: 16, size: 64, seed: 3 });
  await writeImageFolder(path.join(data, 'set/val'), { classes: 3, perClass: 6, size: 64, seed: 11 });
}

async function waitForStatus(
  url: string,
  id: string,
  ms: number,
  statuses = ['completed', 'failed', 'cancelled'],
) {
  return waitFor(
    async () => {
      const t = (await http<Task>(`${url}/api/v2/tasks/${id}`)).body;
      return statuses.includes(t.status) ? t : null;
    },
    ms,
    `task ${id} to reach ${statuses.join('/')}`,
  );
}

function runnerPid(entries: Record<string, unknown>[]): number {
  const line = entries.find((e) => /Runner started/.test(String(e.message)));
  const m = /pid (\d+)/.exec(String(line?.message));
  assert.ok(m, 'the log names the runner pid');
  return Number(m[1]);
}

const base = {
  model: 'resnet18',
  num_classes: 3,
  train_path: 'set/train',
  val_path: 'set/val',
  save_path: 'runs',
  device: 'cpu',
  image_size: 64,
  batch_size: 4,
  learning_rate: 0.001,
  pretrained: false,
  seed: 1,
};

describe('training API', async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await trainingSet(data);
  const svc = await startService(dir, { listen: true, env: { RFUAV_TORCH_THREADS: '1' } });
  const { url } = svc;

  it('validates every field at submission, naming it', async () => {
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{ model: 'resnet19' }, 422, /^model: must be one of resnet18/],
      [{ num_classes: 2 }, 422, /^num_classes: is 2 but train_path has 3 class folders \(left, right, top\)/],
      [{ num_classes: 1 }, 422, /^num_classes/],
      [{ train_path: 'nope' }, 400, /^train_path: 'nope' does not exist/],
      [{ train_path: '../etc' }, 400, /^train_path: '\.\.' is not allowed/],
      [{ val_path: '/etc' }, 400, /^val_path: '\/etc' is outside the data root/],
      [{ val_path: 'set/train/left' }, 400, /^val_path: .*no class sub-folders/],
      [{ save_path: 'set/train/runs' }, 400, /^save_path: the output folder must not be inside train_path/],
      [{ name: '../up' }, 400, /^name: /],
      [{ device: 'cuda:2' }, 422, /^device: cuda:2 is out of range: this node has 0 GPUs/],
      [{ device: 'tpu' }, 422, /^device/],
      [{ weight_path: 'set/train/left/0.png' }, 422, /^weight_path: .* is not PyTorch weights/],
      [{ weight_path: 'missing.pth' }, 400, /^weight_path: 'missing.pth' does not exist/],
      [{ learning_rate: 0 }, 422, /^learning_rate/],
      [{ image_size: 16 }, 422, /^image_size/],
      [{ batch_size: 0 }, 422, /^batch_size/],
      [{ num_epochs: 0 }, 422, /^num_epochs/],
      [{ priority: 11 }, 422, /^priority/],
      [{ task_id: 'bad id!' }, 422, /^task_id/],
    ];
    for (const [patch, status, message] of cases) {
      const r = await http<{ message: string }>(`${url}/api/v2/training/start`, 'POST', {
        ...base,
        ...patch,
      });
      assert.equal(r.status, status, `${JSON.stringify(patch)} → ${r.status} ${r.body.message}`);
      assert.match(r.body.message, message, JSON.stringify(patch));
    }
    for (const field of ['model', 'num_classes', 'train_path', 'val_path', 'save_path']) {
      const body: Record<string, unknown> = { ...base };
      delete body[field];
      const r = await http<{ message: string }>(`${url}/api/v2/training/start`, 'POST', body);
      assert.equal(r.status, 422, field);
      assert.match(r.body.message, new RegExp(`^${field}: is required`));
    }
    const list = await http<{ total_training: number }>(`${url}/api/v2/tasks?task_type=training`);
    assert.equal(list.body.total_training, 0, 'no rejected request left a task');
  });

  it('trains: live metrics and stages, learning curve, every artifact, ONNX checked; then evaluates per SNR', async () => {
    const r = await http<Task>(`${url}/api/v2/training/start`, 'POST', {
      ...base,
      task_id: 'train-1',
      name: 'r1',
      num_epochs: 3,
      keep_epoch_weights: 2,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.total_epochs, 3);
    assert.equal(r.body.output_path, 'runs/r1');
    const done = await waitForStatus(url, 'train-1', 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.equal(done.current_epoch, 3);
    assert.equal((done.latest_metrics as { epoch: number }).epoch, 3);
    assert.equal(done.progress, 100);

    const curve = await http<{ epochs: Record<string, number>[]; total_epochs: number }>(
      `${url}/api/v2/training/train-1/metrics`,
    );
    assert.deepEqual(
      curve.body.epochs.map((e) => e.epoch),
      [1, 2, 3],
    );
    const [first, , last] = curve.body.epochs as [Metrics, unknown, Metrics];
    for (const k of EPOCH_METRICS) {
      assert.equal(typeof last[k], 'number', k);
    }
    assert.ok(last.train_loss < first.train_loss, `loss falls: ${first.train_loss} → ${last.train_loss}`);
    assert.ok(last.best_acc >= 70, `validation accuracy (percent) well above chance (1/3): ${last.best_acc}`);

    const entries = await logEntries(url, 'train-1');
    const stages = new Set(entries.map((e) => e.stage).filter(Boolean));
    for (const s of ['epoch_start', 'training', 'validation', 'epoch_end', 'completed'])
      assert.ok(stages.has(s), s);
    const ends = entries.filter((e) => e.stage === 'epoch_end');
    assert.deepEqual(
      ends.map((e) => (e.metrics as { epoch: number }).epoch),
      [1, 2, 3],
    );
    assert.ok(!alive(runnerPid(entries)), 'the runner has exited');

    const out = path.join(data, 'runs/r1');
    assert.ok(!fs.existsSync(path.join(out, 'resnet18_epoch_1.pth')), 'retention: keep the newest 2');
    for (const f of [
      'resnet18_epoch_2.pth',
      'resnet18_epoch_3.pth',
      'best_model.pth',
      'checkpoint_last.pt',
      'train.log',
    ]) {
      assert.ok(fs.statSync(path.join(out, f)).size > 0, f);
    }
    const jsonl = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(
      jsonl.map((l) => (JSON.parse(l) as { epoch: number }).epoch),
      [1, 2, 3],
    );
    const card = await readModelCard(path.join(out, 'config.yaml'), 'cfg_path', 'config.yaml');
    assert.equal(card.model, 'resnet18');
    assert.equal(card.image_size, 64);
    assert.deepEqual(card.labels, ['left', 'right', 'top']);
    const result = done.result as { onnx: { check: { agrees: boolean; max_abs_logit_difference: number } } };
    assert.equal(result.onnx.check.agrees, true, JSON.stringify(result.onnx));
    const session = await ort.InferenceSession.create(path.join(out, 'best_model.onnx'));
    const logits = await session.run({
      input: new ort.Tensor('float32', new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]),
    });
    assert.equal(logits.logits?.dims.at(-1), 3);
    await session.release();

    // Evaluation on the validation images laid out as SNR folders (same images: accuracy ≥ best).
    for (const snr of ['-10dB', '0dB', '10dB']) {
      fs.cpSync(path.join(data, 'set/val'), path.join(data, 'snr', snr), { recursive: true });
    }
    const ev = await http<Task>(`${url}/api/v2/evaluation/start`, 'POST', {
      task_id: 'eval-1',
      cfg_path: 'runs/r1/config.yaml',
      weight_path: 'runs/r1/best_model.pth',
      data_path: 'snr',
      save_path: 'evals/e1',
      device: 'cpu',
    });
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    const evDone = await waitForStatus(url, 'eval-1', 60_000);
    assert.equal(evDone.status, 'completed', JSON.stringify(evDone.error));
    const er = evDone.result as {
      accuracy: number;
      samples: number;
      confusion_matrix: { labels: string[]; matrix: number[][] };
      accuracy_vs_snr: { snr_db: number; accuracy: number; samples: number }[];
    };
    assert.equal(er.samples, 54);
    assert.ok(
      Math.abs(er.accuracy - last.best_acc) < 1e-6,
      `same images, same accuracy: ${er.accuracy} vs ${last.best_acc}`,
    );
    assert.deepEqual(er.confusion_matrix.labels, card.labels);
    assert.equal(
      er.confusion_matrix.matrix.flat().reduce((a, b) => a + b, 0),
      54,
    );
    assert.deepEqual(
      er.accuracy_vs_snr.map((s) => [s.snr_db, s.samples]),
      [
        [-10, 18],
        [0, 18],
        [10, 18],
      ],
    );
    const evOut = path.join(data, 'evals/e1');
    for (const f of ['confusion_matrix.png', 'accuracy_vs_snr.png']) {
      const meta = await sharp(path.join(evOut, f)).metadata();
      assert.equal(meta.format, 'png', f);
      assert.ok((meta.width ?? 0) >= 300, f);
    }
    for (const f of ['metrics.json', 'confusion_matrix.json', 'accuracy_vs_snr.json']) {
      assert.ok(JSON.parse(fs.readFileSync(path.join(evOut, f), 'utf8')), f);
    }

    // Evaluation inputs are checked at submission too.
    const bad = await http<{ message: string }>(`${url}/api/v2/evaluation/start`, 'POST', {
      cfg_path: 'runs/r1/train.log',
      weight_path: 'runs/r1/best_model.pth',
      data_path: 'snr',
      save_path: 'evals/x',
    });
    assert.equal(bad.status, 422);
    assert.match(bad.body.message, /^cfg_path: .* (not valid YAML|not a model card)/);
    const wrongClasses = await http<{ message: string }>(`${url}/api/v2/evaluation/start`, 'POST', {
      cfg_path: 'runs/r1/config.yaml',
      weight_path: 'runs/r1/best_model.pth',
      data_path: 'runs',
      save_path: 'evals/x',
    });
    assert.equal(wrongClasses.status, 400);
    assert.match(wrongClasses.body.message, /^data_path: /);
    // A folder named like an Object.prototype member is not a class the model knows.
    fs.mkdirSync(path.join(data, 'proto/0dB/constructor'), { recursive: true });
    const proto = await http<{ message: string }>(`${url}/api/v2/evaluation/start`, 'POST', {
      cfg_path: 'runs/r1/config.yaml',
      weight_path: 'runs/r1/best_model.pth',
      data_path: 'proto',
      save_path: 'evals/x',
    });
    assert.equal(proto.status, 400);
    assert.match(proto.body.message, /class folders the model does not know: constructor/);
  });

  it('stop during an epoch terminates the runner and frees the slot', async () => {
    const r = await http<Task>(`${url}/api/v2/training/start`, 'POST', {
      ...base,
      task_id: 'train-stop',
      name: 'stop',
      num_epochs: 50,
    });
    assert.equal(r.status, 200);
    await waitFor(
      async () => (await logEntries(url, 'train-stop')).some((e) => e.stage === 'training'),
      60_000,
      'training steps',
    );
    const pid = runnerPid(await logEntries(url, 'train-stop'));
    assert.ok(alive(pid));
    const stop = await http<{ status: string }>(`${url}/api/v2/training/train-stop/stop`, 'POST');
    assert.equal(stop.status, 200);
    const t = await waitForStatus(url, 'train-stop', 20_000);
    assert.equal(t.status, 'cancelled');
    assert.ok(!alive(pid), 'runner process gone');
    const res = await http<{ device_usage: Record<string, { training: number }> }>(`${url}/api/v2/resources`);
    assert.equal(res.body.device_usage.cpu?.training, 0);
    const again = await http(`${url}/api/v2/training/train-stop/stop`, 'POST');
    assert.equal(again.status, 409);
    const notTraining = await http(`${url}/api/v2/training/eval-1/metrics`);
    assert.equal(notTraining.status, 404);
  });
});

describe('training API: the runner seam (fake interpreters, fake GPUs)', async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await trainingSet(data);
  const crash = path.join(dir, 'crash.sh');
  fs.writeFileSync(
    crash,
    '#!/bin/sh\necho \'{"event":"log","message":"starting","level":"info"}\'\necho "Segmentation fault (simulated)" >&2\nexit 139\n',
    { mode: 0o755 },
  );
  const hang = path.join(dir, 'hang.sh');
  fs.writeFileSync(hang, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });

  it('a task placed on cuda:1 runs its runner with only that GPU visible, as cuda:0', async () => {
    const env = path.join(dir, 'env.sh');
    // Reports what it was given: the environment's GPU list and the device in its request.
    fs.writeFileSync(
      env,
      '#!/bin/sh\nread -r req\ncase "$req" in *\'"device":"cuda:0"\'*) dev=cuda:0 ;; *) dev=other ;; esac\n' +
        'echo "{\\"event\\":\\"log\\",\\"message\\":\\"visible=$CUDA_VISIBLE_DEVICES device=$dev\\",\\"level\\":\\"info\\"}"\n' +
        'echo \'{"event":"result","best_acc":0,"epochs":1}\'\n',
      { mode: 0o755 },
    );
    const smi = fakeNvidiaSmi(dir, [{ totalMiB: 16000 }, { totalMiB: 24000 }]);
    const svc = await startService(path.join(dir, 'g'), {
      listen: true,
      env: { RFUAV_DATA_ROOT: data, RFUAV_PYTHON: env, RFUAV_NVIDIA_SMI: smi.path },
    });
    const r = await http<Task>(`${svc.url}/api/v2/training/start`, 'POST', {
      ...base,
      task_id: 'g1',
      device: 'cuda:1',
      num_epochs: 1,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await waitForStatus(svc.url, 'g1', 20_000);
    assert.equal(t.status, 'completed', String(t.error));
    assert.equal(t.device, 'cuda:1');
    const entries = await logEntries(svc.url, 'g1');
    assert.ok(
      entries.some((e) => e.message === 'visible=1 device=cuda:0'),
      JSON.stringify(entries.map((e) => e.message)),
    );
  });

  it('a crash fails the task with the exit code and stderr in error and log', async () => {
    const svc = await startService(path.join(dir, 'a'), {
      listen: true,
      env: { RFUAV_DATA_ROOT: data, RFUAV_PYTHON: crash },
    });
    await http(`${svc.url}/api/v2/training/start`, 'POST', { ...base, task_id: 'c1', num_epochs: 1 });
    const t = await waitForStatus(svc.url, 'c1', 20_000);
    assert.equal(t.status, 'failed');
    assert.match(String(t.error), /exited with code 139 .*Segmentation fault \(simulated\)/);
    const entries = await logEntries(svc.url, 'c1');
    assert.ok(entries.some((e) => e.message === 'runner stderr: Segmentation fault (simulated)'));
    assert.equal((await http(`${svc.url}/api/v1/health`)).status, 200);
  });

  it('a silent runner is stopped after the silence timeout', async () => {
    const svc = await startService(path.join(dir, 'b'), {
      listen: true,
      env: {
        RFUAV_DATA_ROOT: data,
        RFUAV_PYTHON: hang,
        RFUAV_RUNNER_SILENCE_S: '1',
        RFUAV_RUNNER_KILL_GRACE_S: '1',
      },
    });
    await http(`${svc.url}/api/v2/training/start`, 'POST', { ...base, task_id: 'h1', num_epochs: 1 });
    const t = await waitForStatus(svc.url, 'h1', 20_000);
    assert.equal(t.status, 'failed');
    assert.match(String(t.error), /said nothing for 1 s/);
    assert.ok(!alive(runnerPid(await logEntries(svc.url, 'h1'))));
    assert.equal((await http(`${svc.url}/api/v1/health`)).status, 200);
  });
});
