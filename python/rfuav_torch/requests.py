"""Typed requests: each command's request is a frozen dataclass (``REQUEST`` in the command's
module) built from the request JSON by ``parse``, which names every unknown, missing or badly
typed field at once instead of failing later on a ``KeyError`` or a wrong type deep in a run.

Where the defaults come from: the TypeScript job schemas, and nowhere else. The service always
sends every field (Ajv fills in the schema defaults before a job's ``run`` sees its body, and the
jobs pass them all on), so on the service's path no default here is ever used. A runner started
by hand or by a test with part of a request gets the missing fields from
``request_defaults.json``, which ``scripts/runner-defaults.ts`` writes from those same schemas
(TrainingBody, EvaluationBody, InferenceBody and RunnerFields, the fields every request gets in
src/jobs/torch-run.ts); its ``--check`` mode and test/integration/shared-lists.test.ts fail when
the file is stale. Missing fields are not simply an error (the stricter design) because tests
outside the runner start it with partial requests.

The one default written here is ``None``, for a field that may be not given at all (a seed, a
limit, the dataset's signal parameters): absence means the same on both sides, so there is no
value to keep in step.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from typing import Any, TypeVar

DEFAULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "request_defaults.json")
#: The section of DEFAULTS_FILE that applies to every command (device, threads).
EVERY_COMMAND = "runner"

T = TypeVar("T")


class RequestError(ValueError):
    """A request the runner cannot run: the message names each field that is wrong."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerRequest:
    """What the service adds to every request (src/jobs/torch-run.ts): the device as the runner
    sees it ('cpu' or 'cuda:0', the one GPU it is shown) and the CPU threads torch may use (0:
    torch decides)."""

    device: str
    threads: int


@functools.cache
def _all_defaults() -> dict[str, dict[str, Any]]:
    with open(DEFAULTS_FILE, encoding="utf-8") as f:
        data = json.load(f)
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def defaults(command: str) -> dict[str, Any]:
    """The defaults a request for `command` gets: those of every command, then its own."""
    sections = _all_defaults()
    return {**sections.get(EVERY_COMMAND, {}), **sections.get(command, {})}


def parse(cls: type[T], raw: object, command: str) -> T:
    """`raw` (the decoded request JSON) as a `cls`, a field left out taking its default. Raises a
    RequestError listing every unknown, missing and badly typed field."""
    if not isinstance(raw, dict):
        raise RequestError(f"{command}: the request must be a JSON object, not {_json_kind(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    given = defaults(command)
    problems = [f"unknown field '{name}'" for name in raw if name not in fields]
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in raw:
            value = raw[name]
        elif name in given:
            value = given[name]
        elif field.default is not dataclasses.MISSING:
            value = field.default
        else:
            problems.append(f"missing field '{name}'")
            continue
        if not _conforms(value, hints[name]):
            problems.append(f"field '{name}' must be {_describe(hints[name])}, not {_json_kind(value)} {json.dumps(value)[:60]}")
            continue
        values[name] = float(value) if hints[name] is float else value
    if problems:
        raise RequestError(f"{command}: " + "; ".join(problems))
    return cls(**values)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (the few kinds requests use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0] if args else Any) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    raise TypeError(f"requests.py cannot check a field of type {hint}")


_NAMES: dict[Any, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS: dict[Any, str] = {int: "integers", float: "numbers", str: "strings"}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_PLURALS[args[0]]}" if args and args[0] in _PLURALS else "a list"
    if origin is dict:
        return "an object"
    return _NAMES.get(hint, str(hint))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
