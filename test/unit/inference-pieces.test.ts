/**
 * The pieces the inference and spectrogram tasks are built from, on their own: what a source
 * yields (items, frames, skipped files), predictions.csv, the in-order task window and the
 * prepare-ahead/write-behind batch loop.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runBatches } from '../../src/engines/batches.js';
import { predictionsCsv } from '../../src/engines/inference/outputs.js';
import { planItems, sourceFiles, SourceLayout, amount } from '../../src/engines/inference/source.js';
import { stackTensors } from '../../src/engines/onnx/engine.js';
import { sliceRegion, sliceStart } from '../../src/signal/slicing.js';
import { InOrderTasks } from '../../src/workers/in-order.js';
import { tmpDir } from '../helpers.js';

/** A promise with its resolve and reject at hand. */
function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('inference source plan', () => {
  const root = tmpDir();
  const src = path.join(root, 'src');
  fs.mkdirSync(path.join(src, 'a'), { recursive: true });
  fs.writeFileSync(path.join(src, 'a', 'x.png'), 'not decoded here');
  // float32 I/Q: 8 bytes a sample. 250 samples, slices of 100, ratio 1 (steps of 50): 4 frames, tail 0.
  fs.writeFileSync(path.join(src, 'a', 'rec.iq'), Buffer.alloc(250 * 8));
  fs.writeFileSync(path.join(src, 'short.iq'), Buffer.alloc(50 * 8));
  fs.writeFileSync(path.join(src, 'odd.iq'), Buffer.alloc(13)); // not whole samples
  fs.writeFileSync(path.join(src, 'notes.txt'), 'hello');
  fs.writeFileSync(path.join(src, '.hidden.png'), '');
  const out = path.join(root, 'out');

  it('lists files recursively and sorted, without hidden ones; one file is ""', async () => {
    assert.deepEqual(await sourceFiles(src), ['a/rec.iq', 'a/x.png', 'notes.txt', 'odd.iq', 'short.iq']);
    assert.deepEqual(await sourceFiles(path.join(src, 'a', 'x.png')), ['']);
  });

  it('makes one item per image and per frame, and says why the rest is skipped', async () => {
    const layout = new SourceLayout(src, out, await sourceFiles(src));
    const logged: string[] = [];
    const plan = await planItems(layout, { dtype: 'float32', samplesPerSlice: 100, ratio: 1 }, (m) =>
      logged.push(m),
    );
    assert.deepEqual(
      plan.items.map((i) => [i.rel, i.frame, i.last]),
      [
        ['a/rec.iq', 1, false],
        ['a/rec.iq', 2, false],
        ['a/rec.iq', 3, false],
        ['a/rec.iq', 4, true],
        ['a/x.png', null, true],
      ],
    );
    assert.equal(plan.recordings, 1);
    assert.equal(plan.frames, 4);
    assert.deepEqual(
      plan.failed.map((f) => f.file),
      ['notes.txt', 'odd.iq', 'short.iq'],
    );
    assert.match(plan.failed[2]?.error ?? '', /50 samples: less than one slice of 100/);
    assert.doesNotMatch(plan.failed[1]?.error ?? '', new RegExp(src)); // "the file", not its path
    assert.deepEqual(logged, []);
    assert.equal(amount(1, 4, 1), '1 image(s) and 4 frame(s) of 1 recording(s)');
    assert.equal(amount(0, 0, 0), '0 image(s)');
  });

  it('names outputs by the mirrored layout, or by the one file', () => {
    const dir = new SourceLayout(src, out, ['a/x.png', 'b.png']);
    assert.equal(dir.isDir, true);
    assert.equal(dir.target('a/x.png'), path.join(out, 'a/x.png'));
    assert.equal(dir.shown('a/x.png'), 'a/x.png');
    const one = new SourceLayout(path.join(src, 'a', 'x.png'), out, ['']);
    assert.equal(one.isDir, false);
    assert.equal(one.abs(''), path.join(src, 'a', 'x.png'));
    assert.equal(one.shown(''), 'x.png');
    assert.equal(one.target(''), path.join(out, 'x.png'));
  });

  it('logs the samples a recording leaves over', async () => {
    fs.writeFileSync(path.join(root, 'tail.iq'), Buffer.alloc(130 * 8));
    const layout = new SourceLayout(path.join(root, 'tail.iq'), out, ['']);
    const logged: string[] = [];
    const plan = await planItems(layout, { dtype: 'float32', samplesPerSlice: 100, ratio: 0 }, (m) =>
      logged.push(m),
    );
    assert.equal(plan.items.length, 1);
    assert.deepEqual(logged, ['tail.iq: the last 30 samples do not fill a slice and are not classified']);
  });
});

describe('predictions.csv', () => {
  it('quotes cells with commas, quotes or newlines; an image has no frame', () => {
    const top5 = [
      { class: 'a,b', confidence: 0.75 },
      { class: 'c', confidence: 0.25 },
    ];
    const csv = predictionsCsv([
      { file: 'x "1".png', path: 'in/x "1".png', frame: null, class: 'a,b', confidence: 0.75, top5 },
      { file: 'r.iq', path: 'in/r.iq', frame: 2, class: 'c', confidence: 0.5, top5: [] },
    ]);
    assert.equal(
      csv,
      'file,frame,class,confidence,top5\n"x ""1"".png",,"a,b",0.750000,"a,b:0.7500 c:0.2500"\nr.iq,2,c,0.500000,\n',
    );
  });
});

describe('slice regions and batches of tensors', () => {
  it('a slice region starts where sliceStart says', () => {
    assert.deepEqual(sliceRegion('f.iq', 'int16', 3, 100, 1), {
      file: 'f.iq',
      dtype: 'int16',
      firstSample: sliceStart(3, 100, 1),
      samples: 100,
    });
  });

  it('stacks CHW tensors one after another', () => {
    const a = new Float32Array(3).fill(1);
    const b = new Float32Array(3).fill(2);
    assert.deepEqual([...stackTensors([a, b], 1)], [1, 1, 1, 2, 2, 2]);
    assert.equal(stackTensors([], 4).length, 0);
  });
});

describe('InOrderTasks', () => {
  it('waits for the oldest once more than limit are in flight, and hands results back in order', async () => {
    const seen: number[] = [];
    const q = new InOrderTasks<number>(2, (n) => seen.push(n));
    const d = [deferred<number>(), deferred<number>(), deferred<number>()];
    await q.add(d[0]!.promise);
    await q.add(d[1]!.promise); // two in flight: no wait
    let third = false;
    const adding = q.add(d[2]!.promise).then(() => (third = true));
    d[1]!.resolve(1); // the second finishing first does not let the caller on
    await tick();
    assert.equal(third, false);
    d[0]!.resolve(0);
    await adding;
    assert.deepEqual(seen, [0], 'one taken back, two in flight again');
    d[2]!.resolve(2);
    await q.drain();
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(q.size, 0);
  });

  it('fails at the failed task’s turn; settle waits for the rest', async () => {
    const q = new InOrderTasks<number>(4, () => undefined);
    const late = deferred<number>();
    await q.add(Promise.reject(new Error('slice 1 failed')));
    await q.add(late.promise);
    await assert.rejects(q.drain(), /slice 1 failed/);
    let settled = false;
    const settling = q.settle().then(() => (settled = true));
    await tick();
    assert.equal(settled, false);
    late.resolve(2);
    await settling;
  });
});

describe('runBatches', () => {
  it('prepares one batch ahead, finishes batches in order, and passes outputs per item', async () => {
    const events: string[] = [];
    const finished: [number, number | undefined][] = [];
    await runBatches<number, number>({
      items: [1, 2, 3, 4, 5],
      batchSize: 2,
      signal: new AbortController().signal,
      checkpoint: () => undefined,
      prepare: async (n) => {
        events.push(`prepare ${n}`);
        return n;
      },
      run: async (ready) => {
        events.push(`run ${ready.join(',')}`);
        return ready.map((n) => (n === 3 ? undefined : [n * 10]));
      },
      finish: async (ready, outs) => {
        for (const [j, n] of ready.entries()) finished.push([n, outs[j]?.[0]]);
      },
    });
    assert.deepEqual(finished, [
      [1, 10],
      [2, 20],
      [3, undefined],
      [4, 40],
      [5, 50],
    ]);
    // Batch 2 is being prepared before batch 1 runs.
    assert.ok(events.indexOf('prepare 3') < events.indexOf('run 1,2'));
  });

  it('on a failure, stops preparing and lets the batch in preparation settle first', async () => {
    let aborted = false;
    let prepared2 = false;
    await assert.rejects(
      runBatches<number, number>({
        items: [1, 2],
        batchSize: 1,
        signal: new AbortController().signal,
        checkpoint: () => undefined,
        prepare: async (n, signal) => {
          if (n === 2) {
            await new Promise((r) => setTimeout(r, 20));
            aborted = signal.aborted;
            prepared2 = true;
          }
          return n;
        },
        run: async () => {
          throw new Error('the model failed');
        },
        finish: async () => undefined,
      }),
      /the model failed/,
    );
    assert.equal(prepared2, true, 'settled before the run ended');
    assert.equal(aborted, true, 'its signal was aborted');
  });

  it('stops at the checkpoint before running a batch', async () => {
    let ran = 0;
    await assert.rejects(
      runBatches<number, number>({
        items: [1, 2, 3],
        batchSize: 1,
        signal: new AbortController().signal,
        checkpoint: () => {
          if (ran === 1) throw new Error('cancelled');
        },
        prepare: async (n) => n,
        run: async (ready) => {
          ran++;
          return ready.map(() => [1]);
        },
        finish: async () => undefined,
      }),
      /cancelled/,
    );
    assert.equal(ran, 1);
  });
});
