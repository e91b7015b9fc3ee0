"""What every command shares: CPU thread cap, device, and the image preprocessing."""
from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms

from .requests import RunnerRequest


def setup(req: RunnerRequest) -> torch.device:
    """Caps torch's CPU threads at req.threads (when > 0) and returns req.device; a CUDA device
    without a GPU visible to this PyTorch is an error, not a silent CPU run."""
    if req.threads > 0:
        torch.set_num_threads(req.threads)
    device = torch.device(req.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but this PyTorch sees no GPU")
    return device


def image_transform(size: int) -> transforms.Compose:
    """The reference trainer's preprocessing, the same for training, evaluation and inference:
    resize to size x size (PIL bilinear), tensor in [0, 1], no normalisation."""
    return transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])


def load_rgb(path: str) -> Image.Image:
    """An image file as RGB (what torchvision's ImageFolder loader does), file closed after."""
    with Image.open(path) as im:
        return im.convert("RGB")
