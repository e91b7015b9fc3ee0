"""Entry point: ``python -m rfuav_torch <command>``, request JSON as the first line of stdin."""
from __future__ import annotations

import json
import os
import sys
import threading
import traceback

from . import events


def _exit_when_orphaned() -> None:
    """The service keeps our stdin open; EOF means it is gone, so we go too (within moments)."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        os._exit(3)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    line = sys.stdin.readline()
    threading.Thread(target=_exit_when_orphaned, daemon=True).start()
    try:
        request = json.loads(line) if line.strip() else {}
        if command == "train":
            from .train import run
        elif command == "evaluate":
            from .evaluate import run
        elif command == "export-onnx":
            from .onnx_export import run
        elif command == "infer":
            from .infer import run
        else:
            raise ValueError(f"unknown command '{command}' (known: train, evaluate, export-onnx, infer)")
        result = run(request)
        events.emit("result", **result)
        return 0
    except Exception as exc:  # every failure becomes an error event and a non-zero exit
        events.emit("error", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # os._exit, not sys.exit: the stdin watcher thread holds stdin's lock, which a normal
    # interpreter shutdown would wait for.
    os._exit(code)
