/**
 * The data pipeline end to end, as a new user would run it: the real CLI, a real server process
 * from dist/, real files. synth (4 classes) → spectrogram → split → augment.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { tmpDir } from '../helpers.js';
import { ensureBuilt, rfuav, spawnCliServer } from '../process.js';

/** A 24 × 18 grey thumbnail as a vector, for comparing images of classes. */
async function thumbnail(file: string): Promise<Float64Array> {
  const raw = await sharp(file).greyscale().resize(24, 18, { fit: 'fill' }).raw().toBuffer();
  return Float64Array.from(raw, (v) => v / 255);
}

function distance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += ((a[i] as number) - (b[i] as number)) ** 2;
  return Math.sqrt(d);
}

function centroid(vectors: Float64Array[]): Float64Array {
  const c = new Float64Array((vectors[0] as Float64Array).length);
  for (const v of vectors)
    for (let i = 0; i < c.length; i++) c[i] = (c[i] as number) + (v[i] as number) / vectors.length;
  return c;
}

describe('data pipeline end to end through the CLI', () => {
  before(ensureBuilt);

  it('synth → spectrogram → split → augment gives the right counts, layout and sizes, and classes that differ', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const classes = ['alpha', 'bravo', 'charlie', 'delta'];

    const synth = await rfuav([
      'synth',
      '--out',
      path.join(data, 'rf'),
      '--classes',
      '4',
      '--per-class',
      '5',
      '--sample-rate',
      '1e6',
      '--duration',
      '0.1',
      '--snr',
      '10,20',
      '--seed',
      '7',
    ]);
    assert.equal(synth.code, 0, synth.err);
    assert.match(synth.out, /20 recordings written; measured SNR within 0\.\d\d dB of the target/);
    for (const c of classes) assert.equal(fs.readdirSync(path.join(data, 'rf', c)).length, 5);

    const server = await spawnCliServer(path.join(dir, 'home'), data);
    const s = ['--server', server.url];

    // 0.1 s recordings cut into 0.05 s slices, one every 0.025 s (the default ratio 1): 3 images
    // per recording, 60 in all.
    const spec = await rfuav([
      'spectrogram',
      ...s,
      '--input',
      'rf',
      '--output',
      'spec',
      '--sample-rate',
      '1e6',
      '--duration',
      '0.05',
      '--stft-point',
      '256',
      '--width',
      '160',
      '--height',
      '120',
    ]);
    assert.equal(spec.code, 0, spec.err + spec.out);
    assert.match(spec.out, /"files":20,"slices":60,"images":60/);
    for (const c of classes) {
      const files = fs.readdirSync(path.join(data, 'spec', c)).sort();
      assert.equal(files.length, 15);
      assert.ok(files.includes(`${c}_snr10dB_0001 (1).png`), files.join());
      assert.ok(files.includes(`${c}_snr20dB_0002 (2).png`), files.join());
    }
    const meta = await sharp(path.join(data, 'spec/alpha/alpha_snr10dB_0001 (1).png')).metadata();
    assert.equal(meta.width, 160);
    assert.equal(meta.height, 120);

    // Classes are told apart by their pictures: nearest class-mean (leave one out) on thumbnails.
    const vectors = new Map<string, Float64Array[]>();
    for (const c of classes) {
      const files = fs.readdirSync(path.join(data, 'spec', c)).sort();
      vectors.set(c, await Promise.all(files.map((f) => thumbnail(path.join(data, 'spec', c, f)))));
    }
    let correct = 0;
    let total = 0;
    for (const c of classes) {
      for (const [i, v] of (vectors.get(c) as Float64Array[]).entries()) {
        let best = '';
        let bestD = Infinity;
        for (const other of classes) {
          const pool = (vectors.get(other) as Float64Array[]).filter((_, j) => other !== c || j !== i);
          const d = distance(v, centroid(pool));
          if (d < bestD) [best, bestD] = [other, d];
        }
        if (best === c) correct++;
        total++;
      }
    }
    assert.ok(correct / total >= 0.9, `only ${correct}/${total} images nearest their own class`);
    const means = classes.map((c) => centroid(vectors.get(c) as Float64Array[]));
    for (let a = 0; a < means.length; a++) {
      for (let b = a + 1; b < means.length; b++) {
        assert.ok(
          distance(means[a] as Float64Array, means[b] as Float64Array) > 1,
          `${classes[a]} ~ ${classes[b]}`,
        );
      }
    }

    const split = await rfuav(['split', ...s, '--input', 'spec', '--output', 'split', '--seed', '3']);
    assert.equal(split.code, 0, split.err + split.out);
    assert.match(split.out, /"total_images":60,"train_images":48,"val_images":12/);
    for (const c of classes) {
      assert.equal(fs.readdirSync(path.join(data, 'split/train', c)).length, 12);
      assert.equal(fs.readdirSync(path.join(data, 'split/valid', c)).length, 3);
    }

    const aug = await rfuav(['augment', ...s, '--input', 'split', '--seed', '4']);
    assert.equal(aug.code, 0, aug.err + aug.out);
    assert.match(aug.out, /"original_images":60,"augmented_images":360,/);
    for (const c of classes) {
      const train = fs.readdirSync(path.join(data, 'split_aug/train', c));
      assert.equal(train.length, 12 * 7);
      assert.equal(fs.readdirSync(path.join(data, 'split_aug/valid', c)).length, 3 * 7);
      const one = train.find((f) => f.endsWith('_ISONoise.png')) as string;
      const m = await sharp(path.join(data, 'split_aug/train', c, one)).metadata();
      assert.equal(m.width, 160);
      assert.equal(m.height, 120);
    }
    const bad = await rfuav(['augment', ...s, '--input', 'split', '--methods', 'Sharpen,Mosaic']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /422: methods: unknown augmentation method 'Mosaic'/);
  });
});
