/**
 * POST /api/v2/inference/start on images with both engines, on a model trained in this test:
 * annotated copies, predictions.json/csv, per-file failures in a folder, the same answers from
 * ONNX Runtime and PyTorch, and checks at submission.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import YAML from 'yaml';
import { startService, tmpDir, waitFor, tinyImageModel } from '../helpers.js';
import { http } from '../process.js';

type Task = Record<string, unknown> & { status: string; task_id: string; result: Record<string, unknown> };
interface Pred {
  file: string;
  class: string;
  confidence: number;
  top5: { class: string; confidence: number }[];
  path: string;
  annotated?: string;
}

describe('inference API (images)', async () => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  await tinyImageModel(data, 2);
  // A source folder: six images (one a 200×120 JPEG), a text file and a broken PNG.
  const src = path.join(data, 'inbox');
  fs.cpSync(path.join(data, 'set/val'), src, { recursive: true });
  await sharp(path.join(src, 'left/0.png'))
    .resize(200, 120, { fit: 'fill' })
    .jpeg()
    .toFile(path.join(src, 'wide.jpg'));
  fs.writeFileSync(path.join(src, 'notes.txt'), 'hello');
  fs.writeFileSync(path.join(src, 'broken.png'), 'not a png');
  const svc = await startService(dir, { listen: true, env: { RFUAV_TORCH_THREADS: '1' } });
  const { url } = svc;
  const body = {
    cfg_path: 'model/config.yaml',
    weight_path: 'model/best_model.pth',
    source_path: 'inbox',
    device: 'cpu',
  };

  async function run(extra: Record<string, unknown>): Promise<Task> {
    const r = await http<Task>(`${url}/api/v2/inference/start`, 'POST', { ...body, ...extra });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return waitFor(
      async () => {
        const t = (await http<Task>(`${url}/api/v2/inference/${r.body.task_id}`)).body;
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      60_000,
      'inference',
    );
  }

  it('classifies a folder on ONNX Runtime (auto) and on PyTorch, with the same answers', async () => {
    const onnx = await run({ save_path: 'out/onnx' });
    assert.equal(onnx.status, 'completed', String(onnx.error));
    assert.equal(onnx.result.engine, 'onnx', 'auto picks best_model.onnx beside the .pth');
    assert.equal(onnx.result.images, 7);
    assert.deepEqual((onnx.result.failed as { file: string; error: string }[]).map((f) => f.file).sort(), [
      'broken.png',
      'notes.txt',
    ]);
    const counts = onnx.result.counts as Record<string, number>;
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      7,
    );
    const outDir = path.join(data, 'out/onnx');
    const preds = JSON.parse(fs.readFileSync(path.join(outDir, 'predictions.json'), 'utf8')) as Pred[];
    assert.equal(preds.length, 7);
    for (const p of preds) {
      assert.equal(p.top5.length, 3);
      assert.equal(p.top5[0]?.class, p.class);
      assert.ok(p.confidence > 0 && p.confidence <= 1);
      // Both paths as requests name them: the source file, and its annotated copy.
      assert.ok(fs.existsSync(path.join(data, p.path)), p.path);
      assert.ok(
        p.annotated?.startsWith('out/onnx/') && fs.existsSync(path.join(data, p.annotated)),
        p.annotated,
      );
    }
    const csv = fs.readFileSync(path.join(outDir, 'predictions.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'file,frame,class,confidence,top5');
    assert.equal(csv.length, 8);

    // The annotated copy: same size, the label box changed the top-left corner only.
    const orig = await sharp(path.join(src, 'wide.jpg')).raw().toBuffer({ resolveWithObject: true });
    const ann = await sharp(path.join(outDir, 'wide.jpg')).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([ann.info.width, ann.info.height], [200, 120]);
    const px = (b: Buffer, x: number, y: number) => b[(y * 200 + x) * 3] as number;
    assert.ok(
      Math.abs(px(ann.data, 2, 2) - px(orig.data, 2, 2)) > 20,
      'top-left is covered by the label box',
    );
    assert.ok(
      Math.abs(px(ann.data, 190, 110) - px(orig.data, 190, 110)) <= 8,
      'bottom-right untouched (JPEG noise aside)',
    );
    assert.ok(fs.existsSync(path.join(outDir, 'left/0.png')), 'the folder layout is mirrored');

    const torch = await run({ save_path: 'out/torch', engine: 'torch' });
    assert.equal(torch.status, 'completed', String(torch.error));
    assert.equal(torch.result.engine, 'torch');
    const tp = JSON.parse(fs.readFileSync(path.join(data, 'out/torch/predictions.json'), 'utf8')) as Pred[];
    const byFile = new Map(tp.map((p) => [p.file, p]));
    for (const p of preds) {
      const q = byFile.get(p.file) as Pred;
      assert.equal(q.class, p.class, p.file);
      assert.ok(
        Math.abs(q.confidence - p.confidence) < 1e-4,
        `${p.file}: ${q.confidence} vs ${p.confidence}`,
      );
    }
  });

  it('keeps every output inside the data root when save_path holds symbolic links', async () => {
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'victim.json'), 'untouched');
    const links = path.join(data, 'out/links');
    fs.mkdirSync(links, { recursive: true });
    // A sub-folder of the outputs that leads out: its annotated copies are refused, the rest done.
    fs.symlinkSync(outside, path.join(links, 'left'));
    // One that leads back into the source folder, inside the data root: the originals would be
    // overwritten by their annotated copies.
    fs.symlinkSync(path.join(src, 'right'), path.join(links, 'right'));
    const originals = fs
      .readdirSync(path.join(src, 'right'))
      .map((f) => fs.readFileSync(path.join(src, 'right', f)));
    const t = await run({ save_path: 'out/links' });
    assert.equal(t.status, 'completed', String(t.error));
    assert.equal(t.result.images, 7, 'every image is still classified');
    assert.deepEqual(fs.readdirSync(outside), ['victim.json'], 'nothing written outside the data root');
    assert.deepEqual(
      fs.readdirSync(path.join(src, 'right')).map((f) => fs.readFileSync(path.join(src, 'right', f))),
      originals,
      'the source images are not overwritten',
    );
    assert.ok(fs.existsSync(path.join(links, 'wide.jpg')), 'copies elsewhere are written');
    const logs = await fetch(`${url}/api/v2/tasks/${t.task_id}/logs?follow=false`);
    const text = await logs.text();
    assert.match(text, /right\/0\.png: classified, but .*leads out of save_path through a symbolic link/);
    assert.ok(!text.includes(dir), 'no absolute server path in the log');
    assert.match(
      text,
      /left\/0\.png: classified, but the annotated output could not be written \(save_path: .*leads outside the data root/,
    );
    // A predictions file that leads out: the task fails rather than write through it.
    fs.rmSync(path.join(links, 'predictions.json'));
    fs.symlinkSync(path.join(outside, 'victim.json'), path.join(links, 'predictions.json'));
    const bad = await run({ save_path: 'out/links', annotate: false });
    assert.equal(bad.status, 'failed');
    assert.match(String(bad.error), /leads outside the data root/);
    assert.equal(fs.readFileSync(path.join(outside, 'victim.json'), 'utf8'), 'untouched');
  });

  it('classifies a single image', async () => {
    const t = await run({ source_path: 'inbox/wide.jpg', save_path: 'out/single' });
    assert.equal(t.status, 'completed', String(t.error));
    assert.equal(t.result.images, 1);
    assert.ok(fs.existsSync(path.join(data, 'out/single/wide.jpg')));
  });

  it('batch: one task per source under save_base_path/<index>; a bad source creates none', async () => {
    const before = (await http<{ total_inference: number }>(`${url}/api/v2/tasks`)).body.total_inference;
    const bad = await http<{ message: string }>(`${url}/api/v2/inference/batch`, 'POST', {
      cfg_path: body.cfg_path,
      weight_path: body.weight_path,
      source_paths: ['inbox/wide.jpg', 'inbox/missing.png'],
      save_base_path: 'batch-bad',
      device: 'cpu',
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^source_paths\[1\]: source_path: 'inbox\/missing.png' does not exist/);
    assert.equal(
      (await http<{ total_inference: number }>(`${url}/api/v2/tasks`)).body.total_inference,
      before,
    );

    const r = await http<{ status: string; task_ids: string[]; total: number }>(
      `${url}/api/v2/inference/batch`,
      'POST',
      {
        cfg_path: body.cfg_path,
        weight_path: body.weight_path,
        source_paths: ['inbox/wide.jpg', 'inbox/left/0.png', 'inbox/right'],
        save_base_path: 'batch',
        device: 'cpu',
      },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.total, 3);
    for (const [i, id] of r.body.task_ids.entries()) {
      const t = await waitFor(
        async () => {
          const v = (await http<Task>(`${url}/api/v2/inference/${id}`)).body;
          return ['completed', 'failed', 'cancelled'].includes(v.status) ? v : null;
        },
        60_000,
        'batch task',
      );
      if (t.status !== 'completed')
        console.log(await (await fetch(`${url}/api/v2/tasks/${id}/logs?follow=false`)).text());
      assert.equal(t.status, 'completed', String(t.error));
      assert.equal(t.result.images, i === 2 ? 2 : 1);
      assert.ok(fs.existsSync(path.join(data, 'batch', String(i), 'predictions.json')));
    }
    // name: each source's outputs in save_base_path/<index>/<name>, beside the first run's.
    const named = await http<{ task_ids: string[] }>(`${url}/api/v2/inference/batch`, 'POST', {
      cfg_path: body.cfg_path,
      weight_path: body.weight_path,
      source_paths: ['inbox/wide.jpg'],
      save_base_path: 'batch',
      name: 'second',
      device: 'cpu',
    });
    assert.equal(named.status, 200, JSON.stringify(named.body));
    const id = named.body.task_ids[0];
    await waitFor(
      async () => (await http<Task>(`${url}/api/v2/inference/${id}`)).body.status === 'completed',
      60_000,
    );
    assert.ok(fs.existsSync(path.join(data, 'batch/0/second/predictions.json')));
    assert.ok(fs.existsSync(path.join(data, 'batch/0/predictions.json')), 'the first run is kept');
    const climbing = await http(`${url}/api/v2/inference/batch`, 'POST', {
      cfg_path: body.cfg_path,
      weight_path: body.weight_path,
      source_paths: ['inbox/wide.jpg'],
      name: '../up',
    });
    assert.equal(climbing.status, 400);
  });

  it('checks requests at submission', async () => {
    fs.writeFileSync(path.join(data, 'rec.iq'), Buffer.alloc(64));
    fs.writeFileSync(path.join(data, 'odd.iq'), Buffer.alloc(63));
    // Model cards that do not fit the ONNX export (48 px, 3 classes), and a corrupt export.
    const card = fs.readFileSync(path.join(data, 'model/config.yaml'), 'utf8');
    fs.mkdirSync(path.join(data, 'misfit'), { recursive: true });
    fs.writeFileSync(path.join(data, 'misfit/big.yaml'), card.replace(/image_size: 48/, 'image_size: 96'));
    fs.writeFileSync(path.join(data, 'misfit/corrupt.onnx'), 'not onnx');
    const four = YAML.parse(card) as { num_classes: number; class_names: Record<string, number> };
    four.num_classes = 4;
    four.class_names.extra = 3;
    fs.writeFileSync(path.join(data, 'misfit/four.yaml'), YAML.stringify(four));
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [
        { source_path: 'rec.iq' },
        422,
        /^source_path: 'rec.iq' holds 8 samples, less than one slice of 10000000/,
      ],
      [{ source_path: 'odd.iq' }, 422, /^source_path: 'odd.iq' is 63 bytes, not a whole number of float32/],
      [{ source_path: 'rec.iq', stft_point: 1000 }, 422, /^stft_point: must be a power of two/],
      [
        { source_path: 'rec.iq', sample_rate: 1000, duration_time: 0.01 },
        422,
        /^duration_time: a slice of 10 samples/,
      ],
      [{ source_path: 'nope' }, 400, /^source_path: 'nope' does not exist/],
      [
        { source_path: 'inbox/notes.txt' },
        422,
        /^source_path: .* is neither an image .* nor a raw IQ recording/,
      ],
      [
        { weight_path: 'model/best_model.onnx', engine: 'torch' },
        422,
        /^engine: 'torch' needs PyTorch weights/,
      ],
      [{ weight_path: 'model/config.yaml' }, 422, /^weight_path: .* neither/],
      [{ cfg_path: 'model/missing.yaml' }, 400, /^cfg_path: .* does not exist/],
      [{ save_path: 'inbox' }, 400, /^save_path: must not be the source folder/],
      [{ engine: 'tensorrt' }, 422, /^engine: must be one of auto, onnx, torch/],
      [
        { cfg_path: 'misfit/big.yaml', weight_path: 'model/best_model.onnx' },
        422,
        /^weight_path: the ONNX model takes 48×48 images but the model card says image_size 96/,
      ],
      [
        { weight_path: 'misfit/corrupt.onnx' },
        422,
        /^weight_path: 'misfit\/corrupt.onnx' is not a loadable ONNX model/,
      ],
    ];
    for (const [patch, status, message] of cases) {
      const r = await http<{ message: string }>(`${url}/api/v2/inference/start`, 'POST', {
        ...body,
        save_path: 'out/x',
        ...patch,
      });
      assert.equal(r.status, status, `${JSON.stringify(patch)} → ${r.body.message}`);
      assert.match(r.body.message, message);
    }
  });
});
