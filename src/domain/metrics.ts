/**
 * Training and evaluation metrics, in the reference service's names and units (its
 * TrainingMetrics schema), so its clients read ours unchanged. The PyTorch runner defines the
 * same two lists (python/rfuav_torch/metrics.py); test/integration/metric-names.test.ts fails when
 * the two sides differ.
 */

/** Every per-epoch metric of a training task, in the reference's order. */
export const EPOCH_METRICS = [
  'epoch',
  'total_epochs',
  'train_loss',
  'train_acc',
  'val_loss',
  'val_acc',
  'macro_f1',
  'micro_f1',
  'mAP',
  'top1_acc',
  'top3_acc',
  'top5_acc',
  'macro_precision',
  'macro_recall',
  'micro_precision',
  'micro_recall',
  'precision',
  'recall',
  'learning_rate',
  'best_acc',
] as const;
export type EpochMetricName = (typeof EPOCH_METRICS)[number];

/**
 * Accuracies are percentages (0–100), as the reference reports them; F1, precision, recall and
 * mAP are fractions (0–1).
 */
export const PERCENT_METRICS = [
  'train_acc',
  'val_acc',
  'best_acc',
  'top1_acc',
  'top3_acc',
  'top5_acc',
] as const;

/** The scores an evaluation reports (the epoch metrics that describe a model, plus `accuracy` = top-1). */
export const EVALUATION_METRICS = [
  'accuracy',
  'top1_acc',
  'top3_acc',
  'top5_acc',
  'macro_precision',
  'macro_recall',
  'macro_f1',
  'micro_precision',
  'micro_recall',
  'micro_f1',
  'mAP',
] as const;

/** "87.50%" for an accuracy, "0.8123" for a fraction, "?" when absent. */
export function formatMetric(name: string, value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '?';
  return name === 'accuracy' || (PERCENT_METRICS as readonly string[]).includes(name)
    ? `${value.toFixed(2)}%`
    : value.toFixed(4);
}
