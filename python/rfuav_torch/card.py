"""The model card (config.yaml) that training writes and evaluation/inference read."""
from __future__ import annotations

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
    if len(card["class_names"]) != card["num_classes"]:
        raise ValueError(f"{path}: num_classes is {card['num_classes']} but class_names has {len(card['class_names'])}")
    return card


def load_weights(model: nn.Module, path: str) -> None:
    """A state dict, or a checkpoint holding one under 'model'."""
    state = torch.load(path, map_location="cpu")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model.load_state_dict(state)
