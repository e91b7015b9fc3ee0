import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentMap } from '../../src/util/recent.js';

describe('RecentMap', () => {
  it('keeps at least the last max entries used and at most 2 × max', () => {
    const m = new RecentMap<number, string>(100);
    for (let i = 0; i < 1000; i++) {
      m.set(i, `v${i}`);
      assert.ok(m.size <= 200);
    }
    for (let i = 900; i < 1000; i++) assert.equal(m.get(i), `v${i}`);
    assert.equal(m.get(0), undefined);
    assert.equal(m.has(5), false);
  });

  it('a read keeps an entry: it survives the generation that held it', () => {
    const m = new RecentMap<string, number>(3);
    m.set('keep', 1);
    for (let i = 0; i < 10; i++) {
      m.set(`x${i}`, i);
      assert.equal(m.get('keep'), 1, `after ${i + 1} more`);
    }
  });

  it('set replaces, delete and clear remove, falsy values are kept', () => {
    const m = new RecentMap<string, number | null>(2);
    m.set('a', 0).set('b', null).set('c', 3);
    assert.equal(m.get('a'), 0);
    assert.equal(m.get('b'), null);
    assert.equal(m.has('b'), true);
    m.set('a', 5);
    assert.equal(m.get('a'), 5);
    assert.equal(m.delete('a'), true);
    assert.equal(m.delete('a'), false);
    m.clear();
    assert.equal(m.size, 0);
    assert.throws(() => new RecentMap(0), RangeError);
  });
});
