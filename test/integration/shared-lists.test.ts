/**
 * Lists both languages keep (issue 13, point 7): the supported models and the image extensions
 * of the TypeScript side must be the PyTorch runner's, or a request checked here fails there;
 * and the runner's request fields and their defaults come from the job schemas.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { DEFAULTS_FILE, runnerDefaultsText } from '../../scripts/runner-defaults.js';
import { SUPPORTED_MODELS } from '../../src/domain/models.js';
import { EvaluationBody } from '../../src/jobs/evaluation.js';
import { RunnerFields } from '../../src/jobs/torch-run.js';
import { TrainingBody } from '../../src/jobs/training.js';
import { IMAGE_EXTENSIONS } from '../../src/util/files.js';
import { runnerJson } from '../helpers.js';

const SCRIPT = `
import dataclasses, json
from rfuav_torch import evaluate, models, requests, train
fields = lambda cls: [f.name for f in dataclasses.fields(cls)]
print(json.dumps({
    "models": list(models.SUPPORTED),
    "images": list(evaluate.IMAGE_EXTENSIONS),
    "requests": {"runner": fields(requests.RunnerRequest), "train": fields(train.REQUEST), "evaluate": fields(evaluate.REQUEST)},
}))
`;

describe('lists TypeScript and the PyTorch runner both keep', () => {
  const py = runnerJson<{ models: string[]; images: string[]; requests: Record<string, string[]> }>(SCRIPT);

  it('the same supported models, in the same order', () => {
    assert.deepEqual(py.models, [...SUPPORTED_MODELS]);
  });

  it('the same image extensions', () => {
    assert.deepEqual([...py.images].sort(), [...IMAGE_EXTENSIONS].sort());
  });

  it("the body fields a job passes on under the runner request's names", () => {
    // save_path (and training's name) become output_dir, which the job works out.
    const passed = (schema: { properties: object }, own: string[]) =>
      Object.keys(schema.properties).filter((k) => !own.includes(k));
    const has = (command: string, names: string[]) =>
      assert.deepEqual(
        names.filter((n) => !py.requests[command]?.includes(n)),
        [],
        `${command}: not in the runner's request`,
      );
    has('runner', Object.keys(RunnerFields.properties));
    has('train', passed(TrainingBody, ['save_path', 'name']));
    has('evaluate', passed(EvaluationBody, ['save_path']));
  });

  it('the runner request defaults, as the job schemas have them (python/rfuav_torch/request_defaults.json)', () => {
    assert.equal(
      fs.readFileSync(DEFAULTS_FILE, 'utf8'),
      runnerDefaultsText(),
      'stale: run node --import tsx scripts/runner-defaults.ts',
    );
  });
});
