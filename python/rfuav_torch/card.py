"""The model card (config.yaml) that training writes and evaluation/inference read."""
from __future__ import annotations

import pickle
from typing import Any

import torch
import yaml
from torch import nn


def load_card(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        card = yaml.safe_load(f)
    if not isinstance(card, dict):
        raise ValueError(f"{path} is not a model card (expected a mapping)")
    for key in ("model", "num_classes", "class_names"):
        if key not in card:
            raise ValueError(f"{path} has no '{key}'")
    names = card["class_names"]
    if isinstance(names, list):  # also accept a plain list, index = position
        names = {str(n): i for i, n in enumerate(names)}
    card["class_names"] = {str(k): int(v) for k, v in names.items()}
    card["num_classes"] = int(card["num_classes"])
    card["image_size"] = int(card.get("image_size") or 224)
    # Fewer names than outputs: a head trained wider than its class folders (the reference's
    # examples train 37 outputs on subsets); the indices without a name are unused.
    if len(card["class_names"]) > card["num_classes"]:
        raise ValueError(f"{path}: num_classes is {card['num_classes']} but class_names has {len(card['class_names'])}")
    return card


def labels(card: dict[str, Any]) -> list[str]:
    """One label per model output, by index; outputs no class folder trained are 'unused_<i>'."""
    out = [f"unused_{i}" for i in range(card["num_classes"])]
    for name, i in card["class_names"].items():
        if not 0 <= i < card["num_classes"]:
            raise ValueError(f"class '{name}' has index {i}, outside 0-{card['num_classes'] - 1}")
        out[i] = name
    return out


def safe_load(path: str) -> Any:
    """torch.load of a file a request named, with weights_only=True: tensors, numbers, strings and
    containers only. A pickle that would construct anything else (a callable, an arbitrary
    class) is refused before any of it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch says which global it refused after "WeightsUnpickler error:"; the advice before
        # it (load with weights_only=False) is exactly what must not be done with such a file.
        text = str(err)
        reason = text.split("WeightsUnpickler error:")[-1].strip() or "not a weights-only pickle"
        raise ValueError(
            f"{path} is not a plain weights file: it holds Python objects other than tensors ({reason}); "
            "loading it could run code, so it was refused"
        ) from None


def load_weights(model: nn.Module, path: str) -> None:
    """A state dict, or a checkpoint holding one under 'model' (never unpickles code)."""
    state = safe_load(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of weights")
    model.load_state_dict(state)
