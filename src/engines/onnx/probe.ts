/**
 * Checks an exported ONNX graph against the PyTorch model it came from: the runner reports the
 * PyTorch logits for a fixed probe input (python/rfuav_torch/onnx_export.py, probe_input), and
 * ONNX Runtime runs the same input here.
 */
import ort from 'onnxruntime-node';
import { onnxLogits } from './engine.js';

export const PROBE_BATCH = 2;

/** Element i of the (PROBE_BATCH, 3, size, size) probe is ((i·7919) mod 1000) / 1000. */
export function probeInput(imageSize: number): Float32Array {
  const n = PROBE_BATCH * 3 * imageSize * imageSize;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((i * 7919) % 1000) / 1000;
  return out;
}

/** The largest |ONNX − PyTorch| over the probe's logits. */
export async function onnxProbeDifference(
  file: string,
  imageSize: number,
  torchLogits: number[][],
  threads = 1,
): Promise<number> {
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  try {
    const logits = await onnxLogits(session, probeInput(imageSize), PROBE_BATCH, imageSize);
    const classes = torchLogits[0]?.length ?? 0;
    if (torchLogits.length !== PROBE_BATCH || logits.length !== PROBE_BATCH * classes) {
      throw new Error(`ONNX output has ${logits.length} values, PyTorch ${PROBE_BATCH}×${classes}`);
    }
    let max = 0;
    for (let b = 0; b < PROBE_BATCH; b++) {
      for (let c = 0; c < classes; c++) {
        max = Math.max(max, Math.abs((logits[b * classes + c] as number) - (torchLogits[b]?.[c] as number)));
      }
    }
    return max;
  } finally {
    await session.release();
  }
}
