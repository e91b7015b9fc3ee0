"""``train``: the reference trainer's semantics (SPEC §2.2) with events, checkpoints and resume.

``run`` orchestrates: data and model, the model card, resume, then per epoch ``train_one_epoch``
and ``evaluate`` (the validation pass) and the epoch's files, and at the end the best weights
exported to ONNX."""
from __future__ import annotations

import dataclasses
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
from .requests import RunnerRequest


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainRequest(RunnerRequest):
    """Sent by src/jobs/training.ts; the defaults are TrainingBody's."""

    model: str
    num_classes: int
    train_path: str
    val_path: str
    #: The model folder: weights, checkpoint, card, metrics.jsonl, train.log; created.
    output_dir: str
    batch_size: int
    num_epochs: int
    learning_rate: float
    image_size: int
    #: Initial weights (.pth), or "" for none.
    weight_path: str
    pretrained: bool
    shuffle: bool
    seed: int | None = None
    #: Continue from output_dir's checkpoint_last.pt, if there is one.
    resume: bool
    #: Keep only the newest N <model>_epoch_<n>.pth files; None: keep all.
    keep_epoch_weights: int | None = None
    #: How the images were rendered from raw IQ (the dataset's signal.json), for the card.
    signal: dict[str, Any] | None = None


REQUEST = TrainRequest


class TrainLog:
    """Mirrors log events into <output>/train.log. A context manager: the file is closed however
    training ends."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int) -> tuple[float, dict[str, float]]:
    """The validation pass: (mean loss, the epoch's classification metrics), without gradients."""
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


@dataclasses.dataclass
class Fit:
    """What the epochs work on, made once by run."""

    model: nn.Module
    optimiser: torch.optim.Optimizer
    device: torch.device
    train_loader: DataLoader
    val_loader: DataLoader
    loss_fn: nn.Module = dataclasses.field(default_factory=nn.CrossEntropyLoss)


def run(req: TrainRequest) -> dict[str, Any]:
    os.makedirs(req.output_dir, exist_ok=True)
    with TrainLog(os.path.join(req.output_dir, "train.log")) as log:
        fit, classes, unused = _prepare(req, log)
        card = _write_card(req, classes, unused)
        start_epoch, best_acc = _resume(req, fit, log)
        log(
            f"Training {req.model} on {len(fit.train_loader.dataset)} images of {req.num_classes} classes "  # type: ignore[arg-type]
            f"({len(fit.val_loader.dataset)} for validation), {req.image_size} px, batch {req.batch_size}, "  # type: ignore[arg-type]
            f"epochs {start_epoch}-{req.num_epochs}, device {fit.device}, {torch.get_num_threads()} CPU threads"
        )
        last: dict[str, Any] = {}
        for epoch in range(start_epoch, req.num_epochs + 1):
            last = _epoch(req, fit, epoch, best_acc, log)
            best_acc = last["best_acc"]
        onnx = _export_best(req, log)
    return {"best_acc": best_acc, "epochs": req.num_epochs, "final_metrics": last, "class_names": card["class_names"], "onnx": onnx}


def _prepare(req: TrainRequest, log: TrainLog) -> tuple[Fit, list[str], list[int]]:
    """Seeds, device, data and model (with its initial weights); the class folders and the
    outputs none of them trains."""
    if req.seed is not None:
        random.seed(req.seed)
        torch.manual_seed(req.seed)
    device = setup(req)
    train_loader = _loader(req.train_path, req.image_size, req.batch_size, req.shuffle, req.seed)
    val_loader = _loader(req.val_path, req.image_size, req.batch_size, False, req.seed)
    classes, unused = _classes(req, train_loader, val_loader, log)
    model = build(req.model, req.num_classes, req.pretrained, req.image_size)
    if req.weight_path:
        load_weights(model, req.weight_path)
        log(f"Initial weights loaded from {req.weight_path}")
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=req.learning_rate)
    return Fit(model, optimiser, device, train_loader, val_loader), classes, unused


def _classes(req: TrainRequest, train_loader: DataLoader, val_loader: DataLoader, log: TrainLog) -> tuple[list[str], list[int]]:
    """The class folders, and the outputs no folder trains (a head wider than the folders)."""
    classes: list[str] = train_loader.dataset.classes  # type: ignore[attr-defined]
    if len(classes) > req.num_classes:
        raise ValueError(f"num_classes is {req.num_classes} but {req.train_path} has {len(classes)} class folders")
    if val_loader.dataset.classes != classes:  # type: ignore[attr-defined]
        raise ValueError("train_path and val_path have different class folders")
    unused = list(range(len(classes), req.num_classes))
    if unused:
        # As the reference allows (its examples train 37 outputs on subsets): the head keeps
        # num_classes outputs, the ones without a folder are never a training target.
        log(
            f"num_classes is {req.num_classes} but {req.train_path} has {len(classes)} class folders: "
            f"outputs {unused[0]}-{unused[-1]} are unused (listed in the model card)",
            "warning",
        )
    return classes, unused


def _write_card(req: TrainRequest, classes: list[str], unused: list[int]) -> dict[str, Any]:
    """config.yaml: what inference and evaluation need to rebuild and feed the model."""
    card = {
        "model": req.model,
        "num_classes": req.num_classes,
        "image_size": req.image_size,
        "class_names": {c: i for i, c in enumerate(classes)},
        **({"unused_classes": unused} if unused else {}),
        "training": {
            "batch_size": req.batch_size,
            "num_epochs": req.num_epochs,
            "learning_rate": req.learning_rate,
            "pretrained": req.pretrained,
            "seed": req.seed,
            "shuffle": req.shuffle,
            "train_path": req.train_path,
            "val_path": req.val_path,
        },
        # How the training images were rendered from raw IQ (the spectrogram task's parameters),
        # so inference on raw recordings slices them the same way.
        **({"signal": req.signal} if req.signal is not None else {}),
    }
    with open(os.path.join(req.output_dir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(card, f, sort_keys=False)
    events.emit("artifact", path="config.yaml", kind="model_card")
    return card


def _resume(req: TrainRequest, fit: Fit, log: TrainLog) -> tuple[int, float]:
    """(first epoch to run, best accuracy so far); metrics.jsonl keeps exactly the epochs done."""
    start_epoch, best_acc = 1, 0.0
    ckpt_path = os.path.join(req.output_dir, "checkpoint_last.pt")
    metrics_path = os.path.join(req.output_dir, "metrics.jsonl")
    if req.resume and os.path.isfile(ckpt_path):
        try:
            done, best_acc = _load_checkpoint(ckpt_path, fit.model, fit.optimiser)
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
    # Tells the service which epochs count, and what they measured, so its stored history matches
    # this run exactly, even for an epoch whose metrics event never reached it (the run before
    # was cut off between the checkpoint and the event, or its node froze).
    events.emit("history", epochs_done=start_epoch - 1, epochs=[json.loads(line) for line in kept])
    return start_epoch, best_acc


def _epoch(req: TrainRequest, fit: Fit, epoch: int, best_acc: float, log: TrainLog) -> dict[str, Any]:
    """One epoch: training, validation, its files, its metrics event; returns its values."""
    epochs = req.num_epochs
    t0 = time.perf_counter()
    events.log(f"Epoch {epoch}/{epochs} started", stage="epoch_start", step=epoch)
    train_loss, train_acc = train_one_epoch(fit.model, fit.train_loader, fit.optimiser, fit.loss_fn, fit.device, epoch, epochs)
    events.log(f"Epoch {epoch}: validating on {len(fit.val_loader.dataset)} images", stage="validation", step=epoch)  # type: ignore[arg-type]
    t_val = time.perf_counter()
    val_loss, m = evaluate(fit.model, fit.val_loader, fit.device, req.num_classes)
    t_saved = time.perf_counter()
    val_acc = m["top1_acc"]
    improved = val_acc > best_acc or not os.path.isfile(os.path.join(req.output_dir, "best_model.pth"))
    best_acc = max(best_acc, val_acc)
    values = {
        "epoch": epoch,
        "total_epochs": epochs,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        **m,
        "learning_rate": fit.optimiser.param_groups[0]["lr"],
        "best_acc": best_acc,
        # Wall time of the epoch so far (training + validation), and its parts; writing
        # weights and the checkpoint comes after and is reported in the log line.
        "epoch_seconds": t_saved - t0,
        "train_seconds": t_val - t0,
        "val_seconds": t_saved - t_val,
    }
    _save_epoch(req, fit, values, improved)
    # The service stores the metrics and logs the epoch_end line (with them) on this event.
    events.emit("metrics", epoch=epoch, total_epochs=epochs, values=values)
    log.file_only(
        f"Epoch {epoch}/{epochs}: train loss {train_loss:.4f} acc {train_acc:.2f}%, "
        f"val loss {val_loss:.4f} acc {val_acc:.2f}%, best {best_acc:.2f}% ({values['epoch_seconds']:.1f} s)"
    )
    return values


def _save_epoch(req: TrainRequest, fit: Fit, values: dict[str, Any], improved: bool) -> None:
    """Everything an epoch leaves on disk, the checkpoint last: an epoch counts as done once the
    rest is written."""
    out_dir, name, epoch = req.output_dir, req.model, values["epoch"]
    torch.save(fit.model.state_dict(), os.path.join(out_dir, f"{name}_epoch_{epoch}.pth"))
    keep = req.keep_epoch_weights  # None: keep all; N: the newest N
    if keep is not None and keep >= 0:
        old = os.path.join(out_dir, f"{name}_epoch_{epoch - keep}.pth")
        if epoch - keep >= 1 and os.path.isfile(old):
            os.remove(old)
    if improved:
        _atomic_save(fit.model.state_dict(), os.path.join(out_dir, "best_model.pth"))
    with open(os.path.join(out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(values) + "\n")
    _save_checkpoint(os.path.join(out_dir, "checkpoint_last.pt"), fit.model, fit.optimiser, epoch, values["best_acc"])


def _export_best(req: TrainRequest, log: TrainLog) -> dict[str, Any]:
    """best_model.pth, rebuilt and exported to best_model.onnx (with the probe logits)."""
    best = build(req.model, req.num_classes, False, req.image_size)
    best.load_state_dict(safe_load(os.path.join(req.output_dir, "best_model.pth")))
    onnx = export_onnx(best, req.image_size, os.path.join(req.output_dir, "best_model.onnx"))
    events.emit("artifact", path="best_model.onnx", kind="onnx")
    log(f"Exported best_model.onnx ({onnx['bytes']} bytes)")
    return onnx
