"""``evaluate``: scores a trained model on a labelled ImageFolder root, or on a root of SNR
folders each holding one (SPEC §2.4). Plots are drawn by the service; this writes the numbers."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import torch

from . import events
from .runtime import image_transform, load_rgb, setup
from .card import labels as card_labels, load_card, load_weights
from .metrics import classification_metrics, percent
from .models import build
from .requests import RunnerRequest

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tiff", ".tif", ".webp")
_SNR = re.compile(r"-?\d+(?:\.\d+)?")


def snr_value(folder: str) -> float | None:
    """The SNR a folder name states ("10dB", "snr_-5", "-10"), or None."""
    m = _SNR.search(folder)
    return float(m.group()) if m else None


def _subdirs(path: str) -> list[str]:
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))


def discover(root: str, class_names: dict[str, int]) -> list[tuple[str | None, list[tuple[str, int]]]]:
    """[(snr folder or None, [(image, label), ...]), ...]. A root whose sub-folders are class names
    is one ImageFolder; otherwise each sub-folder is an SNR group holding class folders."""
    subdirs = _subdirs(root)
    if not subdirs:
        raise ValueError(f"{root} has no sub-folders")
    if any(d in class_names for d in subdirs):
        groups: list[tuple[str | None, str]] = [(None, root)]
    else:
        groups = [(d, os.path.join(root, d)) for d in subdirs]
        groups.sort(key=lambda g: (snr_value(g[0] or "") is None, snr_value(g[0] or "") or 0.0, g[0]))
    out: list[tuple[str | None, list[tuple[str, int]]]] = []
    for snr, folder in groups:
        unknown = [d for d in _subdirs(folder) if d not in class_names]
        if unknown:
            raise ValueError(f"{folder} has class folders the model does not know: {', '.join(unknown)}")
        items: list[tuple[str, int]] = []
        for cls in _subdirs(folder):
            cdir = os.path.join(folder, cls)
            for f in sorted(os.listdir(cdir)):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((os.path.join(cdir, f), class_names[cls]))
        out.append((snr, items))
    if sum(len(items) for _, items in out) == 0:
        raise ValueError(f"{root} holds no images")
    return out


def confusion(pred: torch.Tensor, labels: torch.Tensor, n: int) -> list[list[int]]:
    """Rows: true class, columns: predicted class."""
    m = torch.zeros(n, n, dtype=torch.int64)
    m.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    return m.tolist()


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateRequest(RunnerRequest):
    """Sent by src/jobs/evaluation.ts; batch_size's default is EvaluationBody's."""

    cfg_path: str
    weight_path: str
    #: An ImageFolder root, or a root of SNR folders each holding one.
    data_path: str
    #: Where metrics.json, confusion_matrix.json (and accuracy_vs_snr.json) go; created.
    output_dir: str
    batch_size: int


REQUEST = EvaluateRequest


def run(req: EvaluateRequest) -> dict[str, Any]:
    card = load_card(req.cfg_path)
    os.makedirs(req.output_dir, exist_ok=True)
    device = setup(req)
    n_classes = card["num_classes"]
    labels_by_index = card_labels(card)
    groups = discover(req.data_path, card["class_names"])
    total = sum(len(items) for _, items in groups)
    layout = "snr" if groups[0][0] is not None else "imagefolder"
    events.log(
        f"Evaluating {card['model']} on {total} images"
        + (f" in {len(groups)} SNR folders" if layout == "snr" else "")
    )
    model = build(card["model"], n_classes, False, card["image_size"])
    load_weights(model, req.weight_path)
    model.to(device).eval()
    logits, labels, per_snr = _predict(model, groups, image_transform(card["image_size"]), req.batch_size, device, n_classes)
    metrics = classification_metrics(logits, labels, n_classes)
    metrics["accuracy"] = metrics["top1_acc"]  # percent, like every accuracy
    result: dict[str, Any] = {
        "layout": layout,
        "samples": total,
        "metrics": metrics,
        "confusion_matrix": {"labels": labels_by_index, "matrix": confusion(logits.argmax(1), labels, n_classes)},
    }
    if per_snr:
        result["accuracy_vs_snr"] = per_snr
    _write_files(req.output_dir, result)
    events.log(f"Accuracy {metrics['accuracy']:.2f}%, macro F1 {metrics['macro_f1']:.4f}, mAP {metrics['mAP']:.4f}")
    return result


def _predict(
    model: torch.nn.Module,
    groups: list[tuple[str | None, list[tuple[str, int]]]],
    tf: Any,
    batch: int,
    device: torch.device,
    n_classes: int,
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """(logits, labels) over every group, and per SNR folder its accuracy (empty without them)."""
    total = sum(len(items) for _, items in groups)
    all_logits: list[torch.Tensor] = []
    all_labels: list[torch.Tensor] = []
    per_snr: list[dict[str, Any]] = []
    done = 0
    with torch.no_grad():
        for snr, items in groups:
            g_logits: list[torch.Tensor] = []
            for i in range(0, len(items), batch):
                chunk = items[i : i + batch]
                x = torch.stack([tf(load_rgb(p)) for p, _ in chunk]).to(device)
                g_logits.append(model(x).cpu())
                done += len(chunk)
                events.progress(100 * done / total, f"{done}/{total} images")
            labels = torch.tensor([label for _, label in items], dtype=torch.int64)
            logits = torch.cat(g_logits) if g_logits else torch.zeros(0, n_classes)
            all_logits.append(logits)
            all_labels.append(labels)
            if snr is not None:
                acc = percent(float((logits.argmax(1) == labels).float().mean())) if len(items) else 0.0
                per_snr.append({"snr_folder": snr, "snr_db": snr_value(snr), "samples": len(items), "accuracy": acc})
                events.log(f"{snr}: accuracy {acc:.2f}% on {len(items)} images")
    return torch.cat(all_logits), torch.cat(all_labels), per_snr


def _write_files(out_dir: str, result: dict[str, Any]) -> None:
    """metrics.json, confusion_matrix.json and, with SNR folders, accuracy_vs_snr.json."""
    files: dict[str, Any] = {
        "metrics.json": {"samples": result["samples"], "layout": result["layout"], **result["metrics"]},
        "confusion_matrix.json": result["confusion_matrix"],
    }
    if "accuracy_vs_snr" in result:
        files["accuracy_vs_snr.json"] = result["accuracy_vs_snr"]
    for name, value in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
