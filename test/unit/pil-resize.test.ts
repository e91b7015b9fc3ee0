/**
 * The TypeScript port of Pillow's bilinear resize against Pillow itself (the interpreter the
 * runner uses): byte-for-byte equal on random images for reductions, enlargements, odd factors,
 * one-axis changes, and on a real RFUAV spectrogram.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { pilBilinearResize, pilBilinearResizeJs } from '../../src/engines/preprocess/pil-resize.js';
import { mulberry32 } from '../../src/util/random.js';
import { tmpDir } from '../helpers.js';

const PYTHON = process.env.RFUAV_PYTHON ?? '/usr/bin/python3';
/** A 600×400 crop of the RFUAV sample ../shared/data/spectrograms/avata-2.4ghz-flight.jpg, JPEG 4:2:0. */
const REAL = path.resolve(import.meta.dirname, '../fixtures/avata-crop.jpg');

/** Pillow's resize of raw RGB bytes. */
function pillow(raw: Uint8Array, w: number, h: number, ow: number, oh: number, dir: string): Uint8Array {
  const input = path.join(dir, `in-${w}x${h}.rgb`);
  const output = path.join(dir, `out-${ow}x${oh}.rgb`);
  fs.writeFileSync(input, raw);
  execFileSync(PYTHON, [
    '-c',
    `from PIL import Image
im = Image.frombytes('RGB', (${w}, ${h}), open('${input}', 'rb').read())
open('${output}', 'wb').write(im.resize((${ow}, ${oh}), Image.BILINEAR).tobytes())`,
  ]);
  return new Uint8Array(fs.readFileSync(output));
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe('Pillow bilinear resize', () => {
  const dir = tmpDir();

  it('equals Pillow byte for byte on random images of many shapes', () => {
    const rand = mulberry32(7);
    const cases: [number, number, number, number][] = [
      [640, 480, 224, 224],
      [1920, 1440, 224, 224],
      [100, 37, 33, 77],
      [20, 13, 64, 50],
      [224, 224, 224, 224],
      [300, 200, 300, 64],
      [301, 7, 64, 7],
      [1, 1, 5, 3],
      [97, 61, 32, 32],
    ];
    for (const [w, h, ow, oh] of cases) {
      const raw = new Uint8Array(w * h * 3);
      // Smooth gradients plus noise: both the filter weights and the rounding matter.
      for (let i = 0; i < raw.length; i++) raw[i] = Math.floor((((i * 37) % 256) + rand() * 255) / 2);
      const theirs = pillow(raw, w, h, ow, oh, dir);
      // The WebAssembly path (RGB) and the JavaScript one both.
      assert.equal(maxDiff(pilBilinearResize(raw, w, h, 3, ow, oh), theirs), 0, `${w}x${h} → ${ow}x${oh}`);
      assert.equal(
        maxDiff(pilBilinearResizeJs(raw, w, h, 3, ow, oh), theirs),
        0,
        `JS ${w}x${h} → ${ow}x${oh}`,
      );
    }
  });

  it('equals Pillow on a real spectrogram JPEG decoded by sharp (sharp decodes it as Pillow does)', async () => {
    const { data, info } = await sharp(REAL).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.length);
    const ours = pilBilinearResize(raw, info.width, info.height, 3, 224, 224);
    const theirs = execFileSync(PYTHON, [
      '-c',
      `import sys
from PIL import Image
sys.stdout.buffer.write(Image.open('${REAL}').convert('RGB').resize((224, 224), Image.BILINEAR).tobytes())`,
    ]);
    assert.equal(maxDiff(ours, new Uint8Array(theirs)), 0);
    // libvips' own linear kernel is not the same resize (why this port exists).
    const vips = await sharp(REAL)
      .removeAlpha()
      .resize(224, 224, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    assert.ok(maxDiff(new Uint8Array(vips), new Uint8Array(theirs)) > 5);
  });

  it('refuses a buffer that does not match its size', () => {
    assert.throws(() => pilBilinearResize(new Uint8Array(10), 2, 2, 3, 1, 1), /does not match/);
  });
});
