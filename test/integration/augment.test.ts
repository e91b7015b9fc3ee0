import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { startService, tmpDir, waitFor } from '../helpers.js';

describe('augmentation task', async () => {
  const dir = tmpDir();
  const svc = await startService(dir);
  const data = svc.config.dataRoot;
  // A split dataset: 2 classes; train 3+2 images, valid 1+1, test 1 (copied, not augmented).
  const layout: Record<string, Record<string, number>> = {
    train: { c0: 3, c1: 2 },
    valid: { c0: 1, c1: 1 },
    test: { c0: 1 },
  };
  for (const [split, classes] of Object.entries(layout)) {
    for (const [cls, n] of Object.entries(classes)) {
      fs.mkdirSync(path.join(data, 'ds', split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        await sharp({
          create: {
            width: 48,
            height: 32,
            channels: 3,
            background: { r: 40 * i, g: cls === 'c0' ? 200 : 30, b: 90 },
          },
        })
          .composite([{ input: { text: { text: `${cls}${i}`, dpi: 100 } }, left: 2, top: 2 }])
          .png()
          .toFile(path.join(data, 'ds', split, cls, `img${i}.png`));
      }
    }
  }
  // One JPEG, to check copies keep their format.
  await sharp({ create: { width: 40, height: 30, channels: 3, background: '#3366cc' } })
    .jpeg()
    .toFile(path.join(data, 'ds/train/c1/photo.jpg'));

  const post = (payload: object) =>
    svc.app.inject({ method: 'POST', url: '/api/v2/preprocessing/augment', payload });
  const finished = (id: string) =>
    waitFor(
      async () => {
        const t = JSON.parse((await svc.app.inject({ url: `/api/v2/preprocessing/${id}` })).body);
        return ['completed', 'failed', 'cancelled'].includes(t.status) ? t : null;
      },
      30_000,
      `augment ${id}`,
    );

  it('writes originals plus one copy per method for train and valid, into <dataset>_aug by default', async () => {
    const r = await post({ dataset_path: 'ds', seed: 11, task_id: 'aug-1' });
    assert.equal(r.statusCode, 200, r.body);
    const created = JSON.parse(r.body);
    assert.equal(created.task_type, 'data_augmentation');
    assert.equal(created.output_path, 'ds_aug');
    const t = await finished('aug-1');
    assert.equal(t.status, 'completed', t.error);
    const augmentedSources = 3 + 3 + 2; // train (3 + 2 + the jpg) and valid
    assert.equal(t.stats.original_images, augmentedSources + 1);
    assert.equal(t.stats.augmented_images, augmentedSources * 6);
    assert.equal(t.stats.methods_used, 6);
    assert.deepEqual(t.stats.methods, [
      'AdvancedBlur',
      'CLAHE',
      'ColorJitter',
      'GaussNoise',
      'ISONoise',
      'Sharpen',
    ]);
    assert.deepEqual(t.stats.classes, ['c0', 'c1']);
    assert.equal(t.progress, 100);

    const out = path.join(data, 'ds_aug');
    const c1 = fs.readdirSync(path.join(out, 'train/c1')).sort();
    assert.equal(c1.length, 3 * 7);
    assert.ok(c1.includes('photo_ISONoise.jpg'));
    assert.ok(c1.includes('img1_Sharpen.png'));
    assert.deepEqual(fs.readdirSync(path.join(out, 'test/c0')), ['img0.png'], 'test split copied as is');
    assert.equal(fs.readdirSync(path.join(out, 'valid/c0')).length, 7);
    const meta = await sharp(path.join(out, 'train/c1/photo_CLAHE.jpg')).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.equal(meta.width, 40);
    assert.equal(meta.height, 30);
    // Originals are byte-for-byte copies; augmented copies differ from them.
    const orig = fs.readFileSync(path.join(data, 'ds/train/c0/img2.png'));
    assert.ok(orig.equals(fs.readFileSync(path.join(out, 'train/c0/img2.png'))));
    const [a, b] = await Promise.all(
      ['img2.png', 'img2_GaussNoise.png'].map((f) =>
        sharp(path.join(out, 'train/c0', f))
          .raw()
          .toBuffer(),
      ),
    );
    assert.ok(!(a as Buffer).equals(b as Buffer));
  });

  it('repeats exactly for a seed and uses only the methods asked for', async () => {
    const r = await post({
      dataset_path: 'ds',
      output_path: 'again',
      methods: ['GaussNoise', 'Sharpen'],
      seed: 11,
    });
    assert.equal(r.statusCode, 200, r.body);
    const t = await finished(JSON.parse(r.body).task_id);
    assert.equal(t.status, 'completed', t.error);
    assert.equal(t.stats.augmented_images, 8 * 2);
    assert.equal(t.stats.methods_used, 2);
    assert.deepEqual(t.stats.methods, ['GaussNoise', 'Sharpen']);
    assert.deepEqual(fs.readdirSync(path.join(data, 'again/valid/c1')).sort(), [
      'img0.png',
      'img0_GaussNoise.png',
      'img0_Sharpen.png',
    ]);
    for (const f of ['train/c0/img1_GaussNoise.png', 'valid/c1/img0_Sharpen.png']) {
      assert.ok(
        fs.readFileSync(path.join(data, 'again', f)).equals(fs.readFileSync(path.join(data, 'ds_aug', f))),
        f,
      );
    }
  });

  it('keeps going past an unreadable image and reports it', async () => {
    fs.mkdirSync(path.join(data, 'bad/train/c0'), { recursive: true });
    fs.mkdirSync(path.join(data, 'bad/valid/c0'), { recursive: true });
    fs.cpSync(path.join(data, 'ds/train/c0/img0.png'), path.join(data, 'bad/train/c0/ok.png'));
    fs.writeFileSync(path.join(data, 'bad/valid/c0/broken.png'), 'not a png');
    const r = await post({ dataset_path: 'bad', methods: ['CLAHE'], seed: 1 });
    const t = await finished(JSON.parse(r.body).task_id);
    assert.equal(t.status, 'completed', t.error);
    assert.equal(t.stats.failed_images, 1);
    assert.equal(t.stats.augmented_images, 1);
    const logs = await svc.app.inject({ url: `/api/v2/tasks/${t.task_id}/logs?follow=false` });
    assert.match(logs.body, /valid\/c0\/broken\.png: .*WARNING|WARNING.*broken\.png/s);
  });

  it('rejects unknown methods (422, naming them) and datasets that are not split (400)', async () => {
    const bad = await post({ dataset_path: 'ds', methods: ['Sharpen', 'Foo', 'Blur'] });
    assert.equal(bad.statusCode, 422);
    assert.match(
      JSON.parse(bad.body).message,
      /unknown augmentation methods 'Foo', 'Blur'.*known: AdvancedBlur/,
    );
    const twice = await post({ dataset_path: 'ds', methods: ['Sharpen', 'Sharpen'] });
    assert.equal(twice.statusCode, 422);
    // The reference's [] and null both mean every method.
    for (const methods of [[], null]) {
      const all = await post({ dataset_path: 'ds', output_path: `all_${methods === null}`, methods });
      assert.equal(all.statusCode, 200, all.body);
      const t = await finished(JSON.parse(all.body).task_id);
      assert.equal(t.status, 'completed', t.error);
      assert.equal(t.stats.methods_used, 6);
    }
    fs.mkdirSync(path.join(data, 'unsplit/c0'), { recursive: true });
    const unsplit = await post({ dataset_path: 'unsplit' });
    assert.equal(unsplit.statusCode, 400);
    assert.match(JSON.parse(unsplit.body).message, /no 'train' folder/);
    const inside = await post({ dataset_path: 'ds', output_path: 'ds/train/x' });
    assert.equal(inside.statusCode, 400);
    const escape = await post({ dataset_path: 'ds', output_path: '../elsewhere' });
    assert.equal(escape.statusCode, 400);
    const missing = await post({ dataset_path: 'nope' });
    assert.equal(missing.statusCode, 400);
  });
});
