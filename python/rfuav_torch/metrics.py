"""Per-epoch classification metrics from logits and labels (no scikit-learn needed).

The names and units are the reference service's (its TrainingMetrics schema), so its clients
read ours unchanged. src/domain/metrics.ts holds the same two lists for the TypeScript side;
test/integration/metric-names.test.ts fails when they differ.
"""
from __future__ import annotations

import torch

#: Every per-epoch metric the training task reports, in the reference's names and order.
EPOCH_METRICS = (
    "epoch",
    "total_epochs",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "macro_f1",
    "micro_f1",
    "mAP",
    "top1_acc",
    "top3_acc",
    "top5_acc",
    "macro_precision",
    "macro_recall",
    "micro_precision",
    "micro_recall",
    "precision",
    "recall",
    "learning_rate",
    "best_acc",
)

#: Accuracies are percentages (0-100), as the reference reports them; F1, precision, recall
#: and mAP are fractions (0-1).
PERCENT_METRICS = ("train_acc", "val_acc", "best_acc", "top1_acc", "top3_acc", "top5_acc")


def percent(fraction: float) -> float:
    return 100.0 * fraction


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1/3/5 accuracy (percent), macro/micro precision, recall and F1, mAP (macro average
    precision); `precision` and `recall` are the macro values, as in the reference."""
    n = labels.numel()
    pred = logits.argmax(dim=1)
    out: dict[str, float] = {}
    for k in (1, 3, 5):
        kk = min(k, num_classes)
        topk = logits.topk(kk, dim=1).indices
        out[f"top{k}_acc"] = percent(float((topk == labels[:, None]).any(dim=1).float().mean())) if n else 0.0
    tp = torch.zeros(num_classes)
    fp = torch.zeros(num_classes)
    fn = torch.zeros(num_classes)
    for c in range(num_classes):
        tp[c] = ((pred == c) & (labels == c)).sum()
        fp[c] = ((pred == c) & (labels != c)).sum()
        fn[c] = ((pred != c) & (labels == c)).sum()
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp))
    # Macro averages over the classes that occur among the labels or the predictions (as
    # scikit-learn does): outputs no image belongs to and none was given to, such as the unused
    # outputs of a head wider than its class folders, do not drag the averages down.
    present = (tp + fn + fp) > 0
    def macro(v: torch.Tensor) -> float:
        return float(v[present].mean()) if bool(present.any()) else 0.0
    out["macro_precision"] = macro(precision)
    out["macro_recall"] = macro(recall)
    out["macro_f1"] = macro(f1)
    # Micro averages over all classes equal accuracy for single-label classification.
    micro = float(tp.sum() / max(1, n))
    out["micro_precision"] = micro
    out["micro_recall"] = micro
    out["micro_f1"] = micro
    out["precision"] = out["macro_precision"]
    out["recall"] = out["macro_recall"]
    out["mAP"] = mean_average_precision(torch.softmax(logits, dim=1), labels, num_classes)
    return out


def mean_average_precision(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Macro mean of per-class average precision (one-vs-rest, ranked by score); classes absent
    from `labels` are skipped."""
    aps: list[float] = []
    for c in range(num_classes):
        positives = labels == c
        total = int(positives.sum())
        if total == 0:
            continue
        order = scores[:, c].argsort(descending=True)
        hits = positives[order].float()
        cumulative = hits.cumsum(0)
        ranks = torch.arange(1, hits.numel() + 1, dtype=torch.float32)
        aps.append(float((cumulative / ranks * hits).sum() / total))
    return sum(aps) / len(aps) if aps else 0.0
