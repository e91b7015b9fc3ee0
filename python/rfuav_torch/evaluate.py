"""``evaluate``: scores a trained model on a labelled ImageFolder root, or on a root of SNR
folders each holding one (SPEC §2.4). Plots are drawn by the service; this writes the numbers."""
from __future__ import annotations

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


def run(req: dict[str, Any]) -> dict[str, Any]:
    card = load_card(req["cfg_path"])
    out_dir: str = req["output_dir"]
    os.makedirs(out_dir, exist_ok=True)
    device = setup(req)
    names = card["class_names"]
    n_classes = card["num_classes"]
    labels_by_index = card_labels(card)
    groups = discover(req["data_path"], names)
    total = sum(len(items) for _, items in groups)
    layout = "snr" if groups[0][0] is not None else "imagefolder"
    events.log(
        f"Evaluating {card['model']} on {total} images"
        + (f" in {len(groups)} SNR folders" if layout == "snr" else "")
    )

    model = build(card["model"], n_classes, False, card["image_size"])
    load_weights(model, req["weight_path"])
    model.to(device).eval()
    tf = image_transform(card["image_size"])
    batch = int(req.get("batch_size") or 16)

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
    logits = torch.cat(all_logits)
    labels = torch.cat(all_labels)
    metrics = classification_metrics(logits, labels, n_classes)
    metrics["accuracy"] = metrics["top1_acc"]  # percent, like every accuracy
    cm = confusion(logits.argmax(1), labels, n_classes)
    result: dict[str, Any] = {
        "layout": layout,
        "samples": total,
        "metrics": metrics,
        "confusion_matrix": {"labels": labels_by_index, "matrix": cm},
    }
    if per_snr:
        result["accuracy_vs_snr"] = per_snr
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"samples": total, "layout": layout, **metrics}, f, indent=2)
    with open(os.path.join(out_dir, "confusion_matrix.json"), "w", encoding="utf-8") as f:
        json.dump(result["confusion_matrix"], f, indent=2)
    if per_snr:
        with open(os.path.join(out_dir, "accuracy_vs_snr.json"), "w", encoding="utf-8") as f:
            json.dump(per_snr, f, indent=2)
    events.log(f"Accuracy {metrics['accuracy']:.2f}%, macro F1 {metrics['macro_f1']:.4f}, mAP {metrics['mAP']:.4f}")
    return result
