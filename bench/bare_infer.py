"""The same model run directly in PyTorch eager, as a user's own script would: PIL decode,
torchvision Resize + ToTensor (the training transform), batches of 8, forward under no_grad.
Prints one JSON line: seconds for everything and for the forward passes alone.

    python bench/bare_infer.py REQUEST_JSON   ({cfg_path, weight_path, files, threads, batch_size})
"""
from __future__ import annotations

import json
import sys
import time

import torch

sys.path.insert(0, sys.path[0] + "/../python")
from rfuav_torch.card import load_card, load_weights  # noqa: E402
from rfuav_torch.models import build  # noqa: E402
from rfuav_torch.runtime import image_transform, load_rgb  # noqa: E402


def main() -> None:
    req = json.loads(sys.argv[1])
    torch.set_num_threads(int(req["threads"]))
    card = load_card(req["cfg_path"])
    model = build(card["model"], card["num_classes"], False, card["image_size"])
    load_weights(model, req["weight_path"])
    model.eval()
    transform = image_transform(card["image_size"])
    files = req["files"]
    batch = int(req["batch_size"])
    with torch.no_grad():  # warm-up, not timed
        model(torch.stack([transform(load_rgb(files[0]))]))
    forward = 0.0
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch):
            x = torch.stack([transform(load_rgb(f)) for f in files[i : i + batch]])
            f0 = time.perf_counter()
            model(x).softmax(dim=1)
            forward += time.perf_counter() - f0
    total = time.perf_counter() - t0
    print(json.dumps({"seconds": total, "forward_seconds": forward, "images": len(files)}))


if __name__ == "__main__":
    main()
