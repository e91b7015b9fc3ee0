"""``infer``: class probabilities for image files with PyTorch weights, preprocessed exactly as in
training (PIL RGB, bilinear resize to the card's image_size, [0, 1], no normalisation)."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import events
from .runtime import image_transform, load_rgb, setup
from .card import labels as card_labels, load_card, load_weights
from .models import build
from .requests import RunnerRequest


@dataclasses.dataclass(frozen=True, kw_only=True)
class InferRequest(RunnerRequest):
    """Sent by src/jobs/inference.ts (PyTorch engine); batch_size's default is InferenceBody's."""

    cfg_path: str
    weight_path: str
    #: Image paths, classified in this order.
    files: list[str]
    batch_size: int


REQUEST = InferRequest


def run(req: InferRequest) -> dict[str, Any]:
    """The card's labels and, per file, its softmax probabilities (or the error that kept it
    from being read)."""
    card = load_card(req.cfg_path)
    device = setup(req)
    model = build(card["model"], card["num_classes"], False, card["image_size"])
    load_weights(model, req.weight_path)
    model.to(device).eval()
    size = card["image_size"]
    tf = image_transform(size)
    files = req.files
    batch = max(1, req.batch_size)
    out: list[dict[str, Any]] = []
    with torch.no_grad():
        for i in range(0, len(files), batch):
            chunk = files[i : i + batch]
            tensors: list[torch.Tensor] = []
            readable: list[str] = []
            for f in chunk:
                try:
                    tensors.append(tf(load_rgb(f)))
                    readable.append(f)
                except Exception as exc:  # reported per file; the others still run
                    out.append({"file": f, "error": f"{type(exc).__name__}: {exc}"})
            if tensors:
                probs = torch.softmax(model(torch.stack(tensors).to(device)), dim=1).cpu()
                for f, p in zip(readable, probs):
                    out.append({"file": f, "probs": p.tolist()})
            events.progress(100 * min(len(files), i + batch) / max(1, len(files)), f"{min(len(files), i + batch)}/{len(files)} files")
    return {"labels": card_labels(card), "predictions": out}
