/**
 * Lists both languages keep (issue 13, point 7): the supported models and the image extensions
 * of the TypeScript side must be the PyTorch runner's, or a request checked here fails there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUPPORTED_MODELS } from '../../src/domain/models.js';
import { IMAGE_EXTENSIONS } from '../../src/util/files.js';
import { runnerJson } from '../helpers.js';

const SCRIPT = `
import json
from rfuav_torch import evaluate, models
print(json.dumps({"models": list(models.SUPPORTED), "images": list(evaluate.IMAGE_EXTENSIONS)}))
`;

describe('lists TypeScript and the PyTorch runner both keep', () => {
  const py = runnerJson<{ models: string[]; images: string[] }>(SCRIPT);

  it('the same supported models, in the same order', () => {
    assert.deepEqual(py.models, [...SUPPORTED_MODELS]);
  });

  it('the same image extensions', () => {
    assert.deepEqual([...py.images].sort(), [...IMAGE_EXTENSIONS].sort());
  });
});
