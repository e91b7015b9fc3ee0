"""The supported torchvision models, with their heads replaced for ``num_classes``."""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn
import torchvision.models as tvm

from . import events

SUPPORTED: dict[str, tuple[Callable[..., nn.Module], object]] = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.DEFAULT),
    "resnet34": (tvm.resnet34, tvm.ResNet34_Weights.DEFAULT),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.DEFAULT),
    "resnet101": (tvm.resnet101, tvm.ResNet101_Weights.DEFAULT),
    "resnet152": (tvm.resnet152, tvm.ResNet152_Weights.DEFAULT),
    "vit_b_16": (tvm.vit_b_16, tvm.ViT_B_16_Weights.DEFAULT),
    "vit_b_32": (tvm.vit_b_32, tvm.ViT_B_32_Weights.DEFAULT),
    "vit_l_16": (tvm.vit_l_16, tvm.ViT_L_16_Weights.DEFAULT),
    "vit_l_32": (tvm.vit_l_32, tvm.ViT_L_32_Weights.DEFAULT),
    "swin_v2_t": (tvm.swin_v2_t, tvm.Swin_V2_T_Weights.DEFAULT),
    "swin_v2_s": (tvm.swin_v2_s, tvm.Swin_V2_S_Weights.DEFAULT),
    "swin_v2_b": (tvm.swin_v2_b, tvm.Swin_V2_B_Weights.DEFAULT),
    "mobilenet_v3_large": (tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.DEFAULT),
    "mobilenet_v3_small": (tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.DEFAULT),
}


def _cached_weights(weights: object) -> str | None:
    """The local file of torchvision weights, if the torch hub cache has it (never downloads)."""
    url = getattr(weights, "url", None)
    if not url:
        return None
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return path if os.path.isfile(path) else None


def replace_head(name: str, model: nn.Module, num_classes: int) -> nn.Module:
    if name.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    elif name.startswith("vit"):
        model.heads.head = nn.Linear(model.heads.head.in_features, num_classes)
    elif name.startswith("swin"):
        model.head = nn.Linear(model.head.in_features, num_classes)
    elif name.startswith("mobilenet_v3"):
        in_features = model.classifier[0].in_features
        model.classifier = nn.Sequential(
            nn.Linear(in_features, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, num_classes)
        )
    else:  # pragma: no cover - guarded by SUPPORTED
        raise ValueError(f"unsupported model {name}")
    return model


def build(name: str, num_classes: int, pretrained: bool, image_size: int) -> nn.Module:
    if name not in SUPPORTED:
        raise ValueError(f"unsupported model '{name}' (supported: {', '.join(SUPPORTED)})")
    factory, weights = SUPPORTED[name]
    kwargs: dict[str, object] = {}
    if name.startswith("vit"):
        kwargs["image_size"] = image_size  # ViTs fix their input size at construction
    model = factory(weights=None, **kwargs)
    if pretrained:
        cached = _cached_weights(weights)
        # A ViT's position embeddings fit 224 px only.
        if cached and (not name.startswith("vit") or image_size == 224):
            state = torch.load(cached, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            events.log(f"Pretrained ImageNet weights loaded from {cached}")
        else:
            events.log(
                f"No local pretrained weights for {name} (torch hub cache {torch.hub.get_dir()}); "
                "starting from random initialisation (no network access at run time)",
                level="warning",
            )
    return replace_head(name, model, num_classes)
