"""``train``: the reference trainer's semantics (SPEC §2.2) with events, checkpoints and resume."""
from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets

from . import events
from .runtime import image_transform, setup
from .card import load_weights, safe_load
from .metrics import classification_metrics, percent
from .models import build
from .onnx_export import export_onnx


class TrainLog:
    """Mirrors log events into <output>/train.log."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def __call__(self, message: str, level: str = "info", stage: str | None = None) -> None:
        self.file_only(message, level)
        events.log(message, level, stage)

    def file_only(self, message: str, level: str = "info") -> None:
        self.file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {level.upper():7} {message}\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _atomic_save(obj: Any, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_checkpoint(path: str, model: nn.Module, optimiser: torch.optim.Optimizer, epoch: int, best_acc: float) -> None:
    """checkpoint_last.pt, loadable with weights_only=True on every torch this runs on: tensors go
    in as tensors, and everything else (epoch, best accuracy, the optimiser's hyper-parameters) as
    one JSON string, since torch 1.13's weights-only unpickler has no opcode for a Python float."""
    opt = optimiser.state_dict()
    meta = {"epoch": epoch, "best_acc": best_acc, "acc_unit": "percent", "param_groups": opt["param_groups"]}
    _atomic_save({"model": model.state_dict(), "optimizer_state": opt["state"], "meta": json.dumps(meta)}, path)


def _load_checkpoint(path: str, model: nn.Module, optimiser: torch.optim.Optimizer) -> tuple[int, float]:
    """Restores a checkpoint_last.pt (weights only: it sits in a folder a request named, so a
    planted pickle must not run); returns (epochs done, best accuracy in percent)."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("meta"), str):
        raise ValueError(f"{os.path.basename(path)} is not a checkpoint this runner wrote")
    meta = json.loads(ckpt["meta"])
    model.load_state_dict(ckpt["model"])
    optimiser.load_state_dict({"state": ckpt["optimizer_state"], "param_groups": meta["param_groups"]})
    return int(meta["epoch"]), float(meta.get("best_acc", 0.0))


def _loader(root: str, image_size: int, batch: int, shuffle: bool, seed: int | None) -> DataLoader:
    ds = datasets.ImageFolder(root, transform=image_transform(image_size))
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(seed)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, num_workers=0, generator=gen)


def _evaluate(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int) -> tuple[float, dict[str, float]]:
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total = 0.0
    all_logits: list[torch.Tensor] = []
    all_labels: list[torch.Tensor] = []
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            total += float(loss_fn(logits, y))
            all_logits.append(logits.cpu())
            all_labels.append(y.cpu())
    logits = torch.cat(all_logits) if all_logits else torch.zeros(0, num_classes)
    labels = torch.cat(all_labels) if all_labels else torch.zeros(0, dtype=torch.long)
    n = max(1, labels.numel())
    return total / n, classification_metrics(logits, labels, num_classes)


def run(req: dict[str, Any]) -> dict[str, Any]:
    out_dir: str = req["output_dir"]
    os.makedirs(out_dir, exist_ok=True)
    log = TrainLog(os.path.join(out_dir, "train.log"))
    try:
        return _run(req, out_dir, log)
    finally:
        log.close()


def _classes(req: dict[str, Any], train_loader: DataLoader, val_loader: DataLoader, num_classes: int, log: TrainLog) -> tuple[list[str], list[int]]:
    """The class folders, and the outputs no folder trains (a head wider than the folders)."""
    classes: list[str] = train_loader.dataset.classes  # type: ignore[attr-defined]
    if len(classes) > num_classes:
        raise ValueError(f"num_classes is {num_classes} but {req['train_path']} has {len(classes)} class folders")
    if val_loader.dataset.classes != classes:  # type: ignore[attr-defined]
        raise ValueError("train_path and val_path have different class folders")
    unused = list(range(len(classes), num_classes))
    if unused:
        # As the reference allows (its examples train 37 outputs on subsets): the head keeps
        # num_classes outputs, the ones without a folder are never a training target.
        log(
            f"num_classes is {num_classes} but {req['train_path']} has {len(classes)} class folders: "
            f"outputs {unused[0]}-{unused[-1]} are unused (listed in the model card)",
            "warning",
        )
    return classes, unused


def _write_card(req: dict[str, Any], out_dir: str, classes: list[str], unused: list[int], learning_rate: float) -> dict[str, Any]:
    """config.yaml: what inference and evaluation need to rebuild and feed the model."""
    card = {
        "model": req["model"],
        "num_classes": int(req["num_classes"]),
        "image_size": int(req.get("image_size") or 224),
        "class_names": {c: i for i, c in enumerate(classes)},
        **({"unused_classes": unused} if unused else {}),
        "training": {
            "batch_size": int(req.get("batch_size") or 8),
            "num_epochs": int(req.get("num_epochs") or 100),
            "learning_rate": learning_rate,
            "pretrained": bool(req.get("pretrained", True)),
            "seed": req.get("seed"),
            "shuffle": bool(req.get("shuffle", True)),
            "train_path": req["train_path"],
            "val_path": req["val_path"],
        },
        # How the training images were rendered from raw IQ (the spectrogram task's parameters),
        # so inference on raw recordings slices them the same way.
        **({"signal": req["signal"]} if isinstance(req.get("signal"), dict) else {}),
    }
    with open(os.path.join(out_dir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(card, f, sort_keys=False)
    events.emit("artifact", path="config.yaml", kind="model_card")
    return card


def _resume(req: dict[str, Any], out_dir: str, model: nn.Module, optimiser: torch.optim.Optimizer, log: TrainLog) -> tuple[int, float]:
    """(first epoch to run, best accuracy so far); metrics.jsonl keeps exactly the epochs done."""
    start_epoch, best_acc = 1, 0.0
    ckpt_path = os.path.join(out_dir, "checkpoint_last.pt")
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    if req.get("resume") and os.path.isfile(ckpt_path):
        try:
            done, best_acc = _load_checkpoint(ckpt_path, model, optimiser)
            start_epoch = done + 1
        except ValueError as err:
            # Written by an older runner (plain floats) or not ours: start over rather than fail.
            log(f"checkpoint_last.pt cannot be resumed ({err}); training starts at epoch 1", "warning")
        if start_epoch > 1:
            log(f"Resuming from checkpoint_last.pt: epoch {start_epoch - 1} done, continuing at epoch {start_epoch}")
    kept: list[str] = []
    if os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            kept = [line for line in f if line.strip() and json.loads(line)["epoch"] < start_epoch]
    with open(metrics_path, "w", encoding="utf-8") as f:
        f.writelines(kept)
    # Tells the service which epochs count, so its stored history matches this run exactly.
    events.emit("history", epochs_done=start_epoch - 1)
    return start_epoch, best_acc


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    epoch: int,
    epochs: int,
) -> tuple[float, float]:
    """One pass over the training set; (mean loss, accuracy in percent). Progress goes out with
    every step, a training-stage log line about ten times per epoch."""
    model.train()
    seen = correct = 0
    loss_sum = 0.0
    steps = max(1, len(loader))
    log_every = max(1, steps // 10)
    for step, (x, y) in enumerate(loader, 1):
        x, y = x.to(device), y.to(device)
        optimiser.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimiser.step()
        loss_sum += float(loss) * y.numel()
        correct += int((logits.argmax(1) == y).sum())
        seen += y.numel()
        events.progress(100 * (epoch - 1 + step / steps) / epochs, f"epoch {epoch}/{epochs} step {step}/{steps}")
        if step % log_every == 0 or step == steps:
            events.log(
                f"Epoch {epoch} step {step}/{steps}: loss {loss_sum / seen:.4f} acc {percent(correct / seen):.2f}%",
                stage="training",
                step=step,
                metrics={"train_loss": loss_sum / seen, "train_acc": percent(correct / seen)},
            )
    return loss_sum / max(1, seen), percent(correct / max(1, seen))


def _save_epoch(out_dir: str, req: dict[str, Any], model: nn.Module, optimiser: torch.optim.Optimizer, values: dict[str, Any], improved: bool) -> None:
    """Everything an epoch leaves on disk, the checkpoint last: an epoch counts as done once the
    rest is written."""
    name, epoch = req["model"], values["epoch"]
    torch.save(model.state_dict(), os.path.join(out_dir, f"{name}_epoch_{epoch}.pth"))
    keep = req.get("keep_epoch_weights")  # None: keep all; N: the newest N
    if isinstance(keep, int) and keep >= 0:
        old = os.path.join(out_dir, f"{name}_epoch_{epoch - keep}.pth")
        if epoch - keep >= 1 and os.path.isfile(old):
            os.remove(old)
    if improved:
        _atomic_save(model.state_dict(), os.path.join(out_dir, "best_model.pth"))
    with open(os.path.join(out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(values) + "\n")
    _save_checkpoint(os.path.join(out_dir, "checkpoint_last.pt"), model, optimiser, epoch, values["best_acc"])


def _run(req: dict[str, Any], out_dir: str, log: TrainLog) -> dict[str, Any]:
    seed = req.get("seed")
    if seed is not None:
        random.seed(seed)
        torch.manual_seed(seed)
    device = setup(req)
    name: str = req["model"]
    num_classes = int(req["num_classes"])
    image_size = int(req.get("image_size") or 224)
    epochs = int(req.get("num_epochs") or 100)
    batch = int(req.get("batch_size") or 8)
    train_loader = _loader(req["train_path"], image_size, batch, bool(req.get("shuffle", True)), seed)
    val_loader = _loader(req["val_path"], image_size, batch, False, seed)
    classes, unused = _classes(req, train_loader, val_loader, num_classes, log)

    model = build(name, num_classes, bool(req.get("pretrained", True)), image_size)
    if req.get("weight_path"):
        load_weights(model, req["weight_path"])
        log(f"Initial weights loaded from {req['weight_path']}")
    model.to(device)
    learning_rate = float(req.get("learning_rate") or 1e-4)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    card = _write_card(req, out_dir, classes, unused, learning_rate)
    start_epoch, best_acc = _resume(req, out_dir, model, optimiser, log)
    log(
        f"Training {name} on {len(train_loader.dataset)} images of {num_classes} classes "  # type: ignore[arg-type]
        f"({len(val_loader.dataset)} for validation), {image_size} px, batch {batch}, "  # type: ignore[arg-type]
        f"epochs {start_epoch}-{epochs}, device {device}, {torch.get_num_threads()} CPU threads"
    )
    last: dict[str, Any] = {}
    for epoch in range(start_epoch, epochs + 1):
        t0 = time.perf_counter()
        events.log(f"Epoch {epoch}/{epochs} started", stage="epoch_start", step=epoch)
        train_loss, train_acc = train_one_epoch(model, train_loader, optimiser, loss_fn, device, epoch, epochs)
        events.log(f"Epoch {epoch}: validating on {len(val_loader.dataset)} images", stage="validation", step=epoch)  # type: ignore[arg-type]
        t_val = time.perf_counter()
        val_loss, m = _evaluate(model, val_loader, device, num_classes)
        t_saved = time.perf_counter()
        val_acc = m["top1_acc"]
        improved = val_acc > best_acc or not os.path.isfile(os.path.join(out_dir, "best_model.pth"))
        best_acc = max(best_acc, val_acc)
        last = {
            "epoch": epoch,
            "total_epochs": epochs,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            **m,
            "learning_rate": optimiser.param_groups[0]["lr"],
            "best_acc": best_acc,
            # Wall time of the epoch so far (training + validation), and its parts; writing
            # weights and the checkpoint comes after and is reported in the log line.
            "epoch_seconds": t_saved - t0,
            "train_seconds": t_val - t0,
            "val_seconds": t_saved - t_val,
        }
        _save_epoch(out_dir, req, model, optimiser, last, improved)
        # The service stores the metrics and logs the epoch_end line (with them) on this event.
        events.emit("metrics", epoch=epoch, total_epochs=epochs, values=last)
        log.file_only(
            f"Epoch {epoch}/{epochs}: train loss {train_loss:.4f} acc {train_acc:.2f}%, "
            f"val loss {val_loss:.4f} acc {val_acc:.2f}%, best {best_acc:.2f}% ({last['epoch_seconds']:.1f} s)"
        )

    best = build(name, num_classes, False, image_size)
    best.load_state_dict(safe_load(os.path.join(out_dir, "best_model.pth")))
    onnx = export_onnx(best, image_size, os.path.join(out_dir, "best_model.onnx"))
    events.emit("artifact", path="best_model.onnx", kind="onnx")
    log(f"Exported best_model.onnx ({onnx['bytes']} bytes)")
    return {"best_acc": best_acc, "epochs": epochs, "final_metrics": last, "class_names": card["class_names"], "onnx": onnx}
