"""Entry point: ``python -m rfuav_torch <command>``, request JSON as the first line of stdin."""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
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


def _exit_when_orphaned(keepalive_s: float | None) -> None:
    """The service keeps our stdin open; EOF means it is gone, so we go too (within moments).

    With ``RFUAV_KEEPALIVE_MS`` set, the service also sends a newline every few seconds while it
    holds the task (a cluster node: while its lease holds). Hearing nothing for that long means
    the node is frozen or cut off and another node may take the task over, so this runner stops
    itself and every process it started, before anything of two runs can mix.
    """
    fd = sys.stdin.fileno()
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], keepalive_s)
            if not ready:
                print(
                    f"rfuav_torch: nothing heard from the service for {keepalive_s:g} s "
                    "(its lease may have run out); stopping",
                    file=sys.stderr,
                    flush=True,
                )
                _stop_group()
            if not os.read(fd, 65536):
                break
    finally:
        os._exit(3)


def _stop_group() -> None:
    """Kills this runner's process group (data-loader workers included) when it leads one."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(4)


def _keepalive_seconds() -> float | None:
    raw = os.environ.get("RFUAV_KEEPALIVE_MS", "")
    try:
        ms = float(raw)
    except ValueError:
        return None
    return ms / 1000 if ms > 0 else None


def _read_request_line() -> str:
    """The first line of stdin, read past Python's buffer, so the watcher's own reads of the same
    descriptor see every keep-alive and the EOF. What follows the line is only keep-alives."""
    fd = sys.stdin.fileno()
    chunks = bytearray()
    while b"\n" not in chunks:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks += b
    return chunks.split(b"\n", 1)[0].decode("utf-8")


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    line = _read_request_line()
    threading.Thread(target=_exit_when_orphaned, args=(_keepalive_seconds(),), daemon=True).start()
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
