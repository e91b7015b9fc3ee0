import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { iqSampleCount, readIqSlices, readSamplesSync } from '../../src/signal/iq.js';
import { tmpDir } from '../helpers.js';

const dir = tmpDir();

function write(name: string, data: ArrayBufferView): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return file;
}

async function collect(file: string, opts: Parameters<typeof readIqSlices>[1]) {
  const out: Float32Array[] = [];
  for await (const s of readIqSlices(file, opts)) {
    assert.equal(s.index, out.length);
    out.push(s.iq);
  }
  return out;
}

describe('IQ recordings', () => {
  const samples = 2500; // 2.5 slices of 1000
  const values = new Float32Array(2 * samples).map((_, i) => Math.sin(i * 0.01) * 3 + i * 1e-4);
  const f32 = write('rec.iq', values);

  for (const chunkBytes of [7, 4096, undefined]) {
    it(`reads float32 slices across chunk boundaries (chunk ${chunkBytes ?? 'default'}) and drops a partial tail`, async () => {
      let dropped = -1;
      const slices = await collect(f32, {
        dtype: 'float32',
        samplesPerSlice: 1000,
        chunkBytes,
        onTruncated: (n) => (dropped = n),
      });
      assert.equal(slices.length, 2);
      assert.equal(dropped, 500);
      assert.deepEqual(slices[1], values.subarray(2000, 4000));
      assert.deepEqual(slices[0], values.subarray(0, 2000));
    });
  }

  it('reads a region of samples directly (what a worker does for its slice)', () => {
    const fd = fs.openSync(f32, 'r');
    try {
      const target = new Float32Array(2 * 700);
      readSamplesSync(fd, 'float32', 1300, target);
      assert.deepEqual(target, values.subarray(2600, 4000));
      assert.throws(
        () => readSamplesSync(fd, 'float32', 2000, new Float32Array(2 * 600)),
        /shorter than expected/,
      );
    } finally {
      fs.closeSync(fd);
    }
    const raw = new Int16Array([1, -2, 32767, -32768, 100, 0, -5, 7]);
    const fd16 = fs.openSync(write('region16.dat', raw), 'r');
    try {
      const target = new Float32Array(4);
      readSamplesSync(fd16, 'int16', 1, target);
      assert.deepEqual([...target], [32767, -32768, 100, 0]);
    } finally {
      fs.closeSync(fd16);
    }
  });

  it('converts int16 value for value', async () => {
    const raw = new Int16Array([1, -2, 32767, -32768, 100, 0, -5, 7]);
    const slices = await collect(write('rec16.dat', raw), {
      dtype: 'int16',
      samplesPerSlice: 2,
      chunkBytes: 3,
    });
    assert.deepEqual(
      slices.map((s) => [...s]),
      [
        [1, -2, 32767, -32768],
        [100, 0, -5, 7],
      ],
    );
  });

  it('refuses a file that is not a whole number of samples, naming the sizes', async () => {
    const bad = write('bad.iq', new Uint8Array(8 * 10 + 3));
    await assert.rejects(
      iqSampleCount(bad, 'float32'),
      /83 bytes, not a whole number of float32 complex samples \(8 bytes each/,
    );
    await assert.rejects(collect(bad, { dtype: 'float32', samplesPerSlice: 4 }), /not a whole number/);
    assert.equal(await iqSampleCount(f32, 'float32'), samples);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const s of readIqSlices(f32, {
          dtype: 'float32',
          samplesPerSlice: 100,
          chunkBytes: 800,
          signal: ac.signal,
        })) {
          seen.push(s.index);
          if (s.index === 3) ac.abort(new Error('stop here'));
        }
      })(),
      /stop here/,
    );
    assert.ok(seen.length <= 5, `read ${seen.length} slices after the abort`);
  });
});
