import { formatMetric } from '../../domain/metrics.js';
import type { TaskView } from '../format.js';
import type { SubmitEntry } from './submit.js';

interface OnnxExport {
  path?: string;
  check?: { agrees?: boolean; max_abs_logit_difference?: number };
}

function report(t: TaskView): void {
  const r = (t.result ?? {}) as Record<string, unknown>;
  const onnx = r.onnx as OnnxExport | null | undefined;
  const diff = onnx?.check?.max_abs_logit_difference;
  const check =
    diff === undefined
      ? ''
      : `; ONNX ${onnx?.check?.agrees ? 'matches' : 'DIFFERS FROM'} PyTorch (max |Δ logit| ${diff.toExponential(1)})`;
  process.stdout.write(
    `best validation accuracy ${formatMetric('best_acc', r.best_acc)}; model folder ${String(r.output_path)} ` +
      `(config.yaml, best_model.pth${onnx?.path ? `, ${onnx.path}` : ''})${check}\n`,
  );
}

/** Steps and per-epoch phases are what the progress line shows; one line per epoch (epoch_end) stays. */
const STEP_STAGES = new Set(['training', 'epoch_start', 'validation']);

/** `rfuav train`: a classifier trained on an ImageFolder dataset, one line of metrics per epoch. */
export const trainEntry: SubmitEntry = {
  kind: 'training',
  name: 'train',
  summary: 'Train a classifier on an ImageFolder dataset (one line of metrics per epoch)',
  aliases: {
    train_path: ['train'],
    val_path: ['val'],
    save_path: ['save'],
    num_epochs: ['epochs'],
    learning_rate: ['lr'],
    weight_path: ['weights'],
    keep_epoch_weights: ['keep-epochs'],
  },
  show: (e) => !STEP_STAGES.has(e.stage ?? '') && e.level !== 'DEBUG',
  report,
};
