import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { COLORMAPS, lutIndex } from '../../src/signal/colormap.js';

const fixture = JSON.parse(
  fs.readFileSync(path.resolve(import.meta.dirname, '../fixtures/colormap-jet.json'), 'utf8'),
) as { lut: number[][]; values: number[]; mapped: number[][] };

describe('jet colormap', () => {
  it("equals matplotlib's table entry by entry", () => {
    const lut = COLORMAPS.jet;
    for (let i = 0; i < 256; i++) {
      assert.deepEqual([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]], fixture.lut[i], `entry ${i}`);
    }
  });

  it('maps values in [0, 1] to the same colours as matplotlib', () => {
    const lut = COLORMAPS.jet;
    fixture.values.forEach((v, k) => {
      const i = lutIndex(v, 0, 256);
      assert.deepEqual([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]], fixture.mapped[k], `value ${v}`);
    });
  });
});
