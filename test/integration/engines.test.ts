/**
 * The two inference engines on a model trained in this test (tiny, CPU): ONNX Runtime in process
 * with the TypeScript preprocessing, and PyTorch through the runner's `infer` with torchvision's.
 * They must agree on every image (max |Δ probability| < 1e-4): PNG, JPEG, RGBA, grey, and sizes
 * that need enlarging or reducing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { OnnxSessionCache, onnxProbabilities } from '../../src/engines/onnx/engine.js';
import { imageTensorInto } from '../../src/engines/preprocess/image.js';
import { runTorch } from '../../src/engines/torch/runner.js';
import { writeImageFolder } from '../fixtures/images.js';
import { tmpDir } from '../helpers.js';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';
const SIZE = 48;

function runner(command: string, request: object) {
  return runTorch({
    python: PYTHON,
    command,
    request: { threads: 1, device: 'cpu', ...request },
    silenceTimeoutMs: 120_000,
    killGraceMs: 1000,
    onEvent: () => undefined,
  });
}

describe('inference engines agree', async () => {
  const dir = tmpDir();
  await writeImageFolder(path.join(dir, 'train'), { classes: 3, perClass: 8, size: SIZE, seed: 3 });
  await writeImageFolder(path.join(dir, 'val'), { classes: 3, perClass: 2, size: SIZE, seed: 5 });
  const out = path.join(dir, 'model');
  await runner('train', {
    model: 'resnet18',
    num_classes: 3,
    train_path: path.join(dir, 'train'),
    val_path: path.join(dir, 'val'),
    output_dir: out,
    image_size: SIZE,
    num_epochs: 1,
    batch_size: 4,
    learning_rate: 0.001,
    pretrained: false,
    seed: 1,
  });
  // Inputs of several kinds, made from one validation image each.
  const src = path.join(dir, 'val/left/0.png');
  const files = [src, path.join(dir, 'val/right/1.png'), path.join(dir, 'val/top/0.png')];
  const extra = path.join(dir, 'extra');
  fs.mkdirSync(extra);
  const add = async (name: string, img: sharp.Sharp) => {
    await img.toFile(path.join(extra, name));
    files.push(path.join(extra, name));
  };
  await add('big.jpg', sharp(src).resize(301, 187, { fit: 'fill' }).jpeg({ quality: 85 }));
  await add('small.png', sharp(src).resize(20, 31, { fit: 'fill' }).png());
  await add('alpha.png', sharp(src).ensureAlpha(0.5).png());
  await add('grey.png', sharp(src).greyscale().png());

  it('ONNX Runtime (TypeScript preprocessing) equals PyTorch (torchvision preprocessing)', async () => {
    const cache = new OnnxSessionCache(2, 1);
    const session = await cache.get(path.join(out, 'best_model.onnx'));
    const input = new Float32Array(files.length * 3 * SIZE * SIZE);
    for (let i = 0; i < files.length; i++)
      await imageTensorInto(files[i] as string, SIZE, input, i * 3 * SIZE * SIZE);
    const ours = await onnxProbabilities(session, input, files.length, SIZE);

    const broken = path.join(extra, 'broken.png');
    fs.writeFileSync(broken, 'not an image');
    const torch = (await runner('infer', {
      cfg_path: path.join(out, 'config.yaml'),
      weight_path: path.join(out, 'best_model.pth'),
      files: [...files, broken],
    })) as { labels: string[]; predictions: { file: string; probs?: number[]; error?: string }[] };
    assert.deepEqual(torch.labels, ['left', 'right', 'top']);
    const byFile = new Map(torch.predictions.map((p) => [p.file, p]));
    assert.match(String(byFile.get(broken)?.error), /UnidentifiedImageError|cannot identify/);
    let worst = 0;
    files.forEach((f, i) => {
      const probs = byFile.get(f)?.probs as number[];
      assert.equal(probs.length, 3, f);
      for (let c = 0; c < 3; c++)
        worst = Math.max(worst, Math.abs((ours[i]?.[c] as number) - (probs[c] as number)));
    });
    assert.ok(worst < 1e-4, `max |Δp| = ${worst}`);
    await cache.close();
  });

  it('caches sessions per file, evicts the least recently used, and renews a changed file', async () => {
    const onnx = path.join(out, 'best_model.onnx');
    const copy = path.join(dir, 'copy.onnx');
    fs.copyFileSync(onnx, copy);
    const cache = new OnnxSessionCache(1, 1);
    const a = await cache.get(onnx);
    assert.equal(await cache.get(onnx), a, 'same session for the same file');
    await cache.get(copy);
    assert.equal(cache.size, 1);
    assert.notEqual(await cache.get(onnx), a, 'evicted, then created again');
    const before = await cache.get(copy);
    fs.utimesSync(copy, new Date(), new Date(Date.now() + 5000));
    assert.notEqual(await cache.get(copy), before, 'a changed file gets a new session');
    await assert.rejects(cache.get(path.join(dir, 'missing.onnx')), /ENOENT/);
    await cache.close();
  });
});
