"""Entry point: ``python -m rfuav_torch <command>``, request JSON as the first line of stdin."""
from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import traceback
from types import ModuleType

from . import events
from .requests import parse

#: Every command, by name: the module (in this package) holding its request type, ``REQUEST`` (a
#: dataclass of requests.py's kind), and ``run(request) -> result``. A new command is a module
#: and one line here; the service's side names it as a string (src/jobs/torch-run.ts).
COMMANDS: dict[str, str] = {
    "train": ".train",
    "evaluate": ".evaluate",
    "export-onnx": ".onnx_export",
    "infer": ".infer",
}


def command_module(name: str) -> ModuleType:
    if name not in COMMANDS:
        raise ValueError(f"unknown command '{name}' (known: {', '.join(COMMANDS)})")
    return importlib.import_module(COMMANDS[name], __package__)


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
        raw = json.loads(line) if line.strip() else {}
        module = command_module(command)
        result = module.run(parse(module.REQUEST, raw, command))
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
