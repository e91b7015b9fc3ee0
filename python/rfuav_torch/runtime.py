"""Per-run settings every command applies first: CPU thread cap and the device."""
from __future__ import annotations

from typing import Any

import torch


def setup(req: dict[str, Any]) -> torch.device:
    """Caps torch's CPU threads at req["threads"] (when > 0) and returns req["device"] (default
    cpu); a CUDA device without a GPU visible to this PyTorch is an error, not a silent CPU run."""
    threads = int(req.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    device = torch.device(req.get("device") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but this PyTorch sees no GPU")
    return device
