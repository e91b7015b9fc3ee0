import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newTaskId } from '../../src/util/ids.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('task ids', () => {
  it('are version-7 UUIDs carrying the time, unique, and in the order they were made', () => {
    const t = Date.parse('2026-12-02T00:00:00Z');
    const ids = Array.from({ length: 20_000 }, (_, i) => newTaskId(t + Math.floor(i / 7000)));
    for (const id of ids.slice(0, 50)) assert.match(id, V7);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids, 'sorted as made');
    assert.equal(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16), t);
  });

  it('keep their order past 4 096 ids in one millisecond and when the clock steps back', () => {
    const t = Date.parse('2030-01-01T00:00:00Z');
    const burst = Array.from({ length: 10_000 }, () => newTaskId(t));
    const back = newTaskId(t - 5000);
    const all = [...burst, back];
    assert.deepEqual([...all].sort(), all);
    assert.equal(new Set(all).size, all.length);
  });
});
