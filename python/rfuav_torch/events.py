"""Newline-delimited JSON events on stdout: the runner's only channel back to the service.

Every event is one line ``{"event": <kind>, ...}``; kinds: ``log`` (message, level, stage),
``progress`` (percent, message), ``metrics`` (epoch, values), ``history`` (epochs_done: the
epochs a resumed run keeps), ``artifact`` (path, kind),
``result`` (the final outcome), ``error`` (message; the process then exits non-zero).
"""
from __future__ import annotations

import json
import sys
import threading
from typing import Any

_lock = threading.Lock()
_out = sys.stdout


def emit(event_type: str, /, **fields: Any) -> None:
    line = json.dumps({"event": event_type, **fields}, default=_default, allow_nan=False)
    with _lock:
        _out.write(line + "\n")
        _out.flush()


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def log(
    message: str,
    level: str = "info",
    stage: str | None = None,
    step: int | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    extra: dict[str, Any] = {}
    if stage:
        extra["stage"] = stage
    if step is not None:
        extra["step"] = step
    if metrics:
        extra["metrics"] = metrics
    emit("log", message=message, level=level, **extra)


def progress(percent: float, message: str = "") -> None:
    emit("progress", percent=round(max(0.0, min(100.0, percent)), 2), message=message)
