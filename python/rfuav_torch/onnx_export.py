"""``export-onnx``: a trained model to ONNX, with probe outputs the service checks it against."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from .card import load_card, load_weights
from .models import build
from .requests import RunnerRequest
from .runtime import setup


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportRequest(RunnerRequest):
    """A trained model (card + weights) to ONNX at `output`; the graph is traced on the CPU
    whatever the device."""

    cfg_path: str
    weight_path: str
    #: The .onnx file to write.
    output: str


REQUEST = ExportRequest

PROBE_BATCH = 2


def probe_input(image_size: int) -> torch.Tensor:
    """A fixed input anyone can rebuild without sharing a file: element i (row-major over
    PROBE_BATCH x 3 x size x size) is ((i * 7919) mod 1000) / 1000 as float32."""
    n = PROBE_BATCH * 3 * image_size * image_size
    values = (torch.arange(n, dtype=torch.int64) * 7919 % 1000).to(torch.float32) / 1000
    return values.reshape(PROBE_BATCH, 3, image_size, image_size)


def export_onnx(model: nn.Module, image_size: int, path: str) -> dict[str, Any]:
    """Writes `path` atomically; returns its size and the PyTorch logits for `probe_input`, so the
    exported graph can be checked against the model it came from (ONNX Runtime runs in the
    service, not here)."""
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
    with torch.no_grad():
        probe_logits = model(probe_input(image_size)).tolist()
    return {
        "path": os.path.basename(path),
        "bytes": os.path.getsize(path),
        "image_size": image_size,
        "probe_logits": probe_logits,
    }


def run(req: ExportRequest) -> dict[str, Any]:
    setup(req)  # the thread cap and device check every command has; the export traces on the CPU
    card = load_card(req.cfg_path)
    model = build(card["model"], card["num_classes"], False, card["image_size"])
    load_weights(model, req.weight_path)
    return export_onnx(model, card["image_size"], req.output)
