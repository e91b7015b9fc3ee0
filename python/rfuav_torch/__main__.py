"""Entry point: ``python -m rfuav_torch <command>``, request JSON as the first line of stdin."""
from __future__ import annotations

import faulthandler
import importlib
import json
import os
import select
import signal
import sys
import threading
import time
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


#: Where faulthandler's watchdog writes its traceback dump: nowhere (a full stderr pipe must not
#: hold up the exit).
_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life


def command_module(name: str) -> ModuleType:
    if name not in COMMANDS:
        raise ValueError(f"unknown command '{name}' (known: {', '.join(COMMANDS)})")
    return importlib.import_module(COMMANDS[name], __package__)


def _exit_when_orphaned(keepalive_s: float | None) -> None:
    """The service keeps our stdin open; EOF means it is gone, so we go too (within moments).

    With ``RFUAV_KEEPALIVE_MS`` set, the service also sends, every few seconds while it holds the
    task (a cluster node: while its lease holds), a deadline on the monotonic clock to go on
    until. When it passes, the node is frozen or cut off and another node may take the task
    over, so this runner stops itself and every process it started, before anything of two runs
    can mix. faulthandler's watchdog, which needs no GIL, backs this thread up in case it cannot
    run in time (a long call holding the GIL).
    """
    fd = sys.stdin.fileno()
    deadline = time.monotonic() + keepalive_s if keepalive_s else None
    pending = b""
    try:
        while True:
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    _stop_group(keepalive_s)
                faulthandler.dump_traceback_later(wait + 1.0, exit=True, file=_DEVNULL)
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            if deadline is None:
                continue
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                deadline = max(deadline, _deadline_of(line, keepalive_s))
    finally:
        os._exit(3)


def _deadline_of(line: bytes, keepalive_s: float) -> float:
    """The deadline a keep-alive line gives (monotonic seconds); an empty or odd one: the timeout from now."""
    now = time.monotonic()
    try:
        given = float(line) / 1000
    except ValueError:
        return now + keepalive_s
    # A clock that is not ours (it never is, on one machine): the timeout from now, no more.
    return given if given <= now + keepalive_s + 1 else now + keepalive_s


def _stop_group(keepalive_s: float | None) -> None:
    """Kills this runner's process group (data-loader workers included) when it leads one.

    The reason goes to stderr without blocking (a frozen service drains no pipes) before the kill.
    """
    message = (
        f"rfuav_torch: no keep-alive from the service for {keepalive_s:g} s "
        "(its lease may have run out); stopping\n"
    ).encode()
    try:
        os.set_blocking(2, False)
        os.write(2, message)
    except OSError:
        pass
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
