"""``export-onnx``: a trained model to ONNX (opset 17 where the installed PyTorch has it)."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn


def export_onnx(model: nn.Module, image_size: int, path: str) -> dict[str, Any]:
    model.eval()
    dummy = torch.rand(1, 3, image_size, image_size)
    tmp = path + ".tmp"
    torch.onnx.export(
        model,
        dummy,
        tmp,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17 if hasattr(torch.onnx, "_constants") and getattr(torch.onnx._constants, "ONNX_MAX_OPSET", 16) >= 17 else 16,
    )
    os.replace(tmp, path)
    return {"path": os.path.basename(path), "bytes": os.path.getsize(path), "image_size": image_size}
