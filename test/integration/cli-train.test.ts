/**
 * `rfuav train` and `rfuav evaluate` from dist/ against a real server, as a user runs them: the
 * training follows with one line per epoch (steps go to the progress bar), evaluation prints
 * its metric and per-SNR tables.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeImageFolder } from '../fixtures/images.js';
import { tmpDir } from '../helpers.js';
import { ensureBuilt, rfuav, spawnCliServer } from '../process.js';

describe('rfuav train / evaluate / infer', async () => {
  ensureBuilt();
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await writeImageFolder(path.join(data, 'set/train'), { classes: 2, perClass: 12, size: 64, seed: 3 });
  await writeImageFolder(path.join(data, 'set/val'), { classes: 2, perClass: 4, size: 64, seed: 7 });
  for (const snr of ['-5dB', '5dB'])
    fs.cpSync(path.join(data, 'set/val'), path.join(data, 'snr', snr), { recursive: true });
  const server = await spawnCliServer(path.join(dir, 'home'), data, { RFUAV_TORCH_THREADS: '1' });
  const env = { RFUAV_SERVER: server.url };

  it('trains with one metrics line per epoch, evaluates per SNR, classifies a folder', async () => {
    const t = await rfuav(
      [
        'train',
        '--model',
        'resnet18',
        '--num-classes',
        '2',
        '--train',
        'set/train',
        '--val',
        'set/val',
        '--save',
        'models',
        '--name',
        'm1',
        '--epochs',
        '2',
        '--batch-size',
        '4',
        '--lr',
        '0.001',
        '--image-size',
        '64',
        '--no-pretrained',
        '--device',
        'cpu',
        '--seed',
        '1',
      ],
      env,
    );
    assert.equal(t.code, 0, t.out + t.err);
    const epochLines = t.out.split('\n').filter((l) => / Epoch \d+\/2: train loss/.test(l));
    assert.equal(epochLines.length, 2, t.out);
    assert.ok(!/step \d+\/\d+: loss/.test(t.out), 'step lines stay out of the output');
    assert.match(
      t.out,
      /best validation accuracy \d+\.\d{2}%; model folder models\/m1 .*ONNX matches PyTorch/,
    );
    assert.match(t.err, /progress \d+% epoch 1\/2 step/);

    const e = await rfuav(
      [
        'evaluate',
        '--cfg',
        'models/m1/config.yaml',
        '--weights',
        'models/m1/best_model.pth',
        '--data',
        'snr',
        '--save',
        'evals',
        '--device',
        'cpu',
      ],
      env,
    );
    assert.equal(e.code, 0, e.out + e.err);
    assert.match(e.out, /^accuracy\s+\d+\.\d{2}%$/m);
    assert.match(e.out, /^macro_f1\s+\d\.\d{4}$/m);
    assert.match(e.out, /^-5dB\s+\d+\.\d{2}%\s+8$/m);
    assert.match(e.out, /^5dB\s+\d+\.\d{2}%\s+8$/m);
    assert.ok(fs.existsSync(path.join(data, 'evals/accuracy_vs_snr.png')));

    const inf = await rfuav(
      [
        'infer',
        '--cfg',
        'models/m1/config.yaml',
        '--weights',
        'models/m1/best_model.pth',
        '--source',
        'set/val',
        '--save',
        'inferred',
      ],
      env,
    );
    assert.equal(inf.code, 0, inf.out + inf.err);
    assert.match(inf.out, /^CLASS\s+IMAGES\/FRAMES$/m);
    assert.match(inf.out, /^8 image\(s\) on onnx, [\d.]+ images\/s; written to inferred /m);
    assert.ok(fs.existsSync(path.join(data, 'inferred/predictions.csv')));

    // predict uploads a local file and answers at once, as the inference task did.
    const preds = JSON.parse(fs.readFileSync(path.join(data, 'inferred/predictions.json'), 'utf8')) as {
      file: string;
      class: string;
      confidence: number;
    }[];
    const first = preds[0] as { file: string; class: string; confidence: number };
    const local = path.join(dir, 'upload.png');
    fs.copyFileSync(path.join(data, 'set/val', first.file), local);
    const pr = await rfuav(['predict', local, '--model', 'models/m1', '--top-k', '2'], env);
    assert.equal(pr.code, 0, pr.out + pr.err);
    const pct = (first.confidence * 100).toFixed(1);
    assert.match(pr.out, new RegExp(`^upload\\.png: ${first.class} \\(${pct.replace('.', '\\.')}%\\)$`, 'm'));
    assert.match(pr.out, /^CLASS\s+CONFIDENCE$/m);
    assert.match(pr.out, /^answered in [\d.]+ ms on the server/m);
    const json = await rfuav(
      [
        'predict',
        local,
        '--cfg',
        'models/m1/config.yaml',
        '--weights',
        'models/m1/best_model.onnx',
        '--json',
      ],
      env,
    );
    assert.equal(json.code, 0, json.err);
    assert.equal((JSON.parse(json.out) as { class: string }).class, first.class);
    const none = await rfuav(['predict', local], env);
    assert.equal(none.code, 2);
    assert.match(none.err, /--model DIR, or --cfg with --weights, is required/);
    const missing = await rfuav(['predict', path.join(dir, 'nope.png'), '--model', 'models/m1'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /ENOENT/);

    const bad = await rfuav(
      [
        'train',
        '--model',
        'resnet18',
        '--num-classes',
        '1',
        '--train',
        'set/train',
        '--val',
        'set/val',
        '--save',
        'x',
      ],
      env,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.err, /num_classes: must be >= 2/);
  });

  it('takes negative option values (--snr -5)', async () => {
    const r = await rfuav([
      'synth',
      '--out',
      path.join(dir, 'rf'),
      '--classes',
      '2',
      '--per-class',
      '1',
      '--sample-rate',
      '1e6',
      '--duration',
      '0.01',
      '--snr',
      '-5',
      '--seed',
      '1',
    ]);
    assert.equal(r.code, 0, r.out + r.err);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'rf/manifest.json'), 'utf8')) as {
      recordings: { snr_db: number }[];
    };
    assert.ok(manifest.recordings.every((x) => x.snr_db === -5));
  });
});
