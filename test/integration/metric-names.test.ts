/**
 * The metric names and units are defined once per language (src/domain/metrics.ts and
 * python/rfuav_torch/metrics.py): this fails when the two differ, when either differs from the
 * reference's TrainingMetrics (written down in test/helpers.ts), or when the runner's metric code
 * reports a name the lists do not have.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EPOCH_METRICS, EVALUATION_METRICS, PERCENT_METRICS } from '../../src/domain/metrics.js';
import {
  EPOCH_METRICS as REFERENCE_EPOCH,
  PERCENT_METRICS as REFERENCE_PERCENT,
  runnerJson,
} from '../helpers.js';

const SCRIPT = `
import json, torch
from rfuav_torch import metrics
torch.manual_seed(0)
logits = torch.randn(40, 6)
labels = torch.randint(0, 6, (40,))
computed = metrics.classification_metrics(logits, labels, 6)
print(json.dumps({
    "epoch": list(metrics.EPOCH_METRICS),
    "percent": list(metrics.PERCENT_METRICS),
    "computed": computed,
    "top1": float((logits.argmax(1) == labels).float().mean()),
}))
`;

describe('metric names: TypeScript, Python and the reference agree', () => {
  const py = runnerJson<{
    epoch: string[];
    percent: string[];
    computed: Record<string, number>;
    top1: number;
  }>(SCRIPT);

  it('the same epoch metrics in the same order, on both sides and as the reference names them', () => {
    assert.deepEqual(py.epoch, [...EPOCH_METRICS]);
    assert.deepEqual([...EPOCH_METRICS], [...REFERENCE_EPOCH]);
  });

  it('the same accuracies in percent', () => {
    assert.deepEqual(py.percent, [...PERCENT_METRICS]);
    assert.deepEqual([...PERCENT_METRICS], [...REFERENCE_PERCENT]);
  });

  it("the runner's per-epoch scores use only those names, accuracies in percent", () => {
    const names = new Set<string>(EPOCH_METRICS);
    for (const k of Object.keys(py.computed)) assert.ok(names.has(k), `runner reports '${k}'`);
    for (const k of EVALUATION_METRICS.filter((m) => m !== 'accuracy'))
      assert.equal(typeof py.computed[k], 'number', k);
    assert.ok(Math.abs((py.computed.top1_acc as number) - 100 * py.top1) < 1e-9, 'top1_acc = 100 × accuracy');
    assert.equal(py.computed.precision, py.computed.macro_precision);
    assert.equal(py.computed.recall, py.computed.macro_recall);
    for (const k of ['macro_f1', 'micro_f1', 'mAP', 'macro_precision'])
      assert.ok((py.computed[k] as number) >= 0 && (py.computed[k] as number) <= 1, `${k} is a fraction`);
  });
});
