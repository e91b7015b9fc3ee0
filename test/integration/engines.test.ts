/**
 * The two inference engines on a model trained in this test (tiny, CPU): ONNX Runtime in process
 * with the TypeScript preprocessing, and PyTorch through the runner's `infer` with torchvision's.
 * They must agree on every image (max |Δ probability| < 1e-4): PNG, JPEG, RGBA, grey, and sizes
 * that need enlarging or reducing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { OnnxSessionCache, fixedBatch, onnxProbabilities } from '../../src/engines/onnx/engine.js';
import { imageTensorInto } from '../../src/engines/preprocess/image.js';
import { PYTHON_ROOT, runTorch } from '../../src/engines/torch/runner.js';
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
    const { session, release } = await cache.acquire(path.join(out, 'best_model.onnx'));
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
    release();
    await cache.close();
  });

  it('caches sessions per file, evicts the least recently used, and renews a changed file', async () => {
    const onnx = path.join(out, 'best_model.onnx');
    const copy = path.join(dir, 'copy.onnx');
    fs.copyFileSync(onnx, copy);
    const cache = new OnnxSessionCache(1, 1);
    const get = async (f: string) => {
      const lease = await cache.acquire(f);
      lease.release();
      return lease.session;
    };
    const a = await get(onnx);
    assert.equal(await get(onnx), a, 'same session for the same file');
    await get(copy);
    assert.equal(cache.size, 1);
    assert.notEqual(await get(onnx), a, 'evicted, then created again');
    const before = await get(copy);
    fs.utimesSync(copy, new Date(), new Date(Date.now() + 5000));
    assert.notEqual(await get(copy), before, 'a changed file gets a new session');
    await assert.rejects(cache.acquire(path.join(dir, 'missing.onnx')), /ENOENT/);
    await cache.close();
  });

  it('runs a model exported with a fixed batch size in runs of that size', async () => {
    // A user's own export without a dynamic batch axis (here fixed at 2): a batch of 7 becomes
    // runs of 2, the last padded, and each image still gets its own answer.
    const fixed = path.join(dir, 'fixed2.onnx');
    const script = [
      'import sys, torch',
      'from rfuav_torch.card import load_card, load_weights',
      'from rfuav_torch.models import build',
      'c = load_card(sys.argv[1])',
      "m = build(c['model'], c['num_classes'], False, c['image_size'])",
      'load_weights(m, sys.argv[2]); m.eval()',
      "torch.onnx.export(m, torch.rand(2, 3, c['image_size'], c['image_size']), sys.argv[3], input_names=['input'], output_names=['logits'])",
    ].join('\n');
    execFileSync(
      PYTHON,
      ['-c', script, path.join(out, 'config.yaml'), path.join(out, 'best_model.pth'), fixed],
      { env: { ...process.env, PYTHONPATH: PYTHON_ROOT }, stdio: 'pipe' },
    );
    const cache = new OnnxSessionCache(2, 1);
    const dynamic = await cache.acquire(path.join(out, 'best_model.onnx'));
    const two = await cache.acquire(fixed);
    assert.equal(fixedBatch(dynamic.session), null);
    assert.equal(fixedBatch(two.session), 2);
    const per = 3 * SIZE * SIZE;
    const input = new Float32Array(files.length * per);
    for (let i = 0; i < files.length; i++) await imageTensorInto(files[i] as string, SIZE, input, i * per);
    assert.equal(files.length % 2, 1, 'an odd count, so the last run is padded');
    const want = await onnxProbabilities(dynamic.session, input, files.length, SIZE);
    const got = await onnxProbabilities(two.session, input, files.length, SIZE);
    assert.equal(got.length, files.length);
    got.forEach((g, i) =>
      g.forEach((v, c) => assert.ok(Math.abs(v - (want[i]?.[c] as number)) < 1e-5, `image ${i} class ${c}`)),
    );
    dynamic.release();
    two.release();
    await cache.close();
  });

  it('never releases a session while it is lent out, and falls back to the CPU without CUDA', async () => {
    const onnx = path.join(out, 'best_model.onnx');
    const copy = path.join(dir, 'copy2.onnx');
    fs.copyFileSync(onnx, copy);
    const cache = new OnnxSessionCache(1, 1);
    const held = await cache.acquire(onnx);
    const other = await cache.acquire(copy); // evicts `onnx` from the cache, but it is held
    assert.equal(cache.size, 1);
    const input = new Float32Array(3 * SIZE * SIZE).fill(0.5);
    const p = await onnxProbabilities(held.session, input, 1, SIZE);
    assert.equal(p[0]?.length, 3, 'the evicted session still runs for its holder');
    held.release();
    held.release(); // a second release is harmless
    await assert.rejects(onnxProbabilities(held.session, input, 1, SIZE), 'released once its holder let go');
    other.release();
    // A task placed on a GPU: this ONNX Runtime build has no CUDA provider, so the CPU runs it.
    const gpu = await cache.acquire(onnx, 0);
    assert.equal(gpu.provider, 'cpu');
    assert.ok(gpu.fallback, 'says why the GPU is not used');
    assert.equal((await onnxProbabilities(gpu.session, input, 1, SIZE))[0]?.length, 3);
    gpu.release();
    await cache.close();
  });
});
