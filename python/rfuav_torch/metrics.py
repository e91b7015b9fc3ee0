"""Per-epoch classification metrics from logits and labels (no scikit-learn needed)."""
from __future__ import annotations

import torch


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy, macro/micro precision, recall and F1, mAP (macro average precision) and top-1/3/5."""
    n = labels.numel()
    pred = logits.argmax(dim=1)
    out: dict[str, float] = {}
    for k in (1, 3, 5):
        kk = min(k, num_classes)
        topk = logits.topk(kk, dim=1).indices
        out[f"top{k}_acc"] = float((topk == labels[:, None]).any(dim=1).float().mean()) if n else 0.0
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
    out["precision_macro"] = float(precision.mean())
    out["recall_macro"] = float(recall.mean())
    out["f1_macro"] = float(f1.mean())
    # Micro averages over all classes equal accuracy for single-label classification.
    micro = float(tp.sum() / max(1, n))
    out["precision_micro"] = micro
    out["recall_micro"] = micro
    out["f1_micro"] = micro
    out["map"] = mean_average_precision(torch.softmax(logits, dim=1), labels, num_classes)
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
