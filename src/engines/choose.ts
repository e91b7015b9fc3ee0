/**
 * What the model task kinds and predict share about the files they run: PyTorch weight files,
 * which engine runs which file (SPEC §2.3's rule for `auto`), and the top-k classes of an output.
 */
import path from 'node:path';
import { invalidField } from '../domain/errors.js';
import { existingPath, statOrNull } from '../util/files.js';
import type { PathSandbox } from '../util/sandbox.js';

/** A weights file named in a request: inside the data root, exists, .pth/.pt. */
export async function weightsFile(paths: PathSandbox, value: string, field: string): Promise<string> {
  const { path: file } = await existingPath(paths, value, field, 'file');
  if (!/\.(pth|pt)$/i.test(file))
    throw invalidField(field, `'${value}' is not PyTorch weights (.pth or .pt)`);
  return file;
}

/** Which engine runs and on which file, by SPEC §2.3's rule for `auto`. */
export async function chooseEngine(
  paths: PathSandbox,
  weightPath: string,
  engine: 'auto' | 'onnx' | 'torch',
): Promise<{ engine: 'onnx' | 'torch'; model: string; note?: string }> {
  const { path: file } = await existingPath(paths, weightPath, 'weight_path', 'file');
  const ext = path.extname(file).toLowerCase();
  if (ext === '.onnx') {
    if (engine === 'torch')
      throw invalidField('engine', "'torch' needs PyTorch weights (.pth), not an .onnx file");
    return { engine: 'onnx', model: weightPath };
  }
  if (ext !== '.pth' && ext !== '.pt')
    throw invalidField('weight_path', `'${weightPath}' is neither .pth/.pt nor .onnx`);
  if (engine === 'torch') return { engine: 'torch', model: weightPath };
  // An .onnx beside the .pth: same stem, or best_model.onnx from the same training run.
  const stem = weightPath.slice(0, weightPath.length - ext.length);
  for (const candidate of [`${stem}.onnx`, path.join(path.dirname(weightPath), 'best_model.onnx')]) {
    const c = paths.resolve(candidate, 'weight_path');
    if ((await statOrNull(c))?.isFile()) {
      return {
        engine: 'onnx',
        model: candidate,
        note: `Using ${candidate} (beside the .pth) on ONNX Runtime`,
      };
    }
  }
  if (engine === 'onnx') {
    throw invalidField('engine', `'onnx' was asked for but no .onnx file sits beside '${weightPath}'`);
  }
  return { engine: 'torch', model: weightPath };
}

/** The `k` most probable classes, most probable first. */
export function topK(
  probs: ArrayLike<number>,
  labels: string[],
  k: number,
): { class: string; confidence: number }[] {
  return Array.from(probs, (p, i) => ({ class: labels[i] as string, confidence: p }))
    .sort((a, b) => b.confidence - a.confidence)
    .slice(0, k);
}
