"""The bare PyTorch loop the training benchmark compares against: the runner's data pipeline,
model, optimiser and validation pass, with no events, metrics, checkpoints or artifacts.

    /usr/bin/python3 bench/bare_train.py TRAIN VAL MODEL IMAGE_SIZE BATCH EPOCHS THREADS SEED
Prints one JSON line per epoch: {"epoch": n, "epoch_seconds": s}.
"""
from __future__ import annotations

import json
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, "python")
from rfuav_torch.models import build  # noqa: E402  (the same model factory as the runner)


def main() -> None:
    train, val, model_name, size, batch, epochs, threads, seed = sys.argv[1:9]
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    tf = transforms.Compose([transforms.Resize((int(size), int(size))), transforms.ToTensor()])
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    train_ds = datasets.ImageFolder(train, transform=tf)
    train_loader = DataLoader(train_ds, batch_size=int(batch), shuffle=True, generator=gen)
    val_loader = DataLoader(datasets.ImageFolder(val, transform=tf), batch_size=int(batch))
    model = build(model_name, len(train_ds.classes), False, int(size))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, int(epochs) + 1):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            for x, _ in val_loader:
                model(x)
        print(json.dumps({"epoch": epoch, "epoch_seconds": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
