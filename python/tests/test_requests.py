"""The typed requests (requests.py) and the COMMANDS table (__main__.py): defaults from the
generated file, and an error naming each unknown, missing or badly typed field."""
from __future__ import annotations

import dataclasses
import json
import sys
import typing
import unittest

from rfuav_torch import __main__ as entry
from rfuav_torch import requests
from rfuav_torch.evaluate import EvaluateRequest
from rfuav_torch.infer import InferRequest
from rfuav_torch.requests import RequestError, RunnerRequest, parse
from rfuav_torch.train import TrainRequest

TRAIN = {
    "model": "resnet18",
    "num_classes": 2,
    "train_path": "/data/train",
    "val_path": "/data/val",
    "output_dir": "/data/out",
}


class DefaultsTest(unittest.TestCase):
    def test_left_out_fields_take_the_generated_defaults(self) -> None:
        req = parse(TrainRequest, TRAIN, "train")
        want = requests.defaults("train")
        for name in ("batch_size", "num_epochs", "learning_rate", "image_size", "pretrained", "shuffle", "resume"):
            self.assertEqual(getattr(req, name), want[name], name)
        self.assertEqual((req.device, req.threads), ("cpu", 0), "the section every command gets")
        self.assertEqual(req.weight_path, "")

    def test_not_given_is_none(self) -> None:
        req = parse(TrainRequest, TRAIN, "train")
        self.assertIsNone(req.seed)
        self.assertIsNone(req.keep_epoch_weights)
        self.assertIsNone(req.signal)

    def test_given_fields_win_and_integers_pass_as_numbers(self) -> None:
        req = parse(TrainRequest, {**TRAIN, "batch_size": 3, "learning_rate": 1, "seed": 7, "device": "cuda:0"}, "train")
        self.assertEqual((req.batch_size, req.seed, req.device), (3, 7, "cuda:0"))
        self.assertIsInstance(req.learning_rate, float)

    def test_each_command_has_its_own_section(self) -> None:
        self.assertEqual(parse(EvaluateRequest, {"cfg_path": "c", "weight_path": "w", "data_path": "d", "output_dir": "o"}, "evaluate").batch_size, requests.defaults("evaluate")["batch_size"])
        self.assertEqual(parse(InferRequest, {"cfg_path": "c", "weight_path": "w", "files": []}, "infer").batch_size, requests.defaults("infer")["batch_size"])

    def test_the_file_names_only_commands_and_their_fields(self) -> None:
        with open(requests.DEFAULTS_FILE, encoding="utf-8") as f:
            data = json.load(f)
        sections = {k: v for k, v in data.items() if k != "$comment"}
        self.assertIn(requests.EVERY_COMMAND, sections)
        for section, values in sections.items():
            if section == requests.EVERY_COMMAND:
                cls: type = RunnerRequest
            else:
                self.assertIn(section, entry.COMMANDS, f"section '{section}' is not a command")
                cls = entry.command_module(section).REQUEST
            names = {f.name for f in dataclasses.fields(cls)}
            self.assertLessEqual(set(values), names, f"{section}: defaults for fields it does not have")
            # A default is a valid value of its field.
            hints = typing.get_type_hints(cls)
            for name, value in values.items():
                self.assertTrue(requests._conforms(value, hints[name]), f"{section}.{name} = {value!r}")


class ErrorsTest(unittest.TestCase):
    def message(self, cls: type, raw: object, command: str) -> str:
        with self.assertRaises(RequestError) as caught:
            parse(cls, raw, command)
        return str(caught.exception)

    def test_missing_fields_are_named(self) -> None:
        msg = self.message(TrainRequest, {}, "train")
        self.assertTrue(msg.startswith("train: "), msg)
        for name in ("model", "num_classes", "train_path", "val_path", "output_dir"):
            self.assertIn(f"missing field '{name}'", msg)
        self.assertNotIn("batch_size", msg, "it has a default")

    def test_unknown_fields_are_named(self) -> None:
        msg = self.message(TrainRequest, {**TRAIN, "epochs": 3, "lr": 0.1}, "train")
        self.assertEqual(msg, "train: unknown field 'epochs'; unknown field 'lr'")

    def test_badly_typed_fields_are_named_with_what_they_must_be(self) -> None:
        msg = self.message(TrainRequest, {**TRAIN, "num_classes": "2"}, "train")
        self.assertEqual(msg, "train: field 'num_classes' must be an integer, not a string \"2\"")
        msg = self.message(TrainRequest, {**TRAIN, "num_classes": True, "seed": 1.5, "pretrained": 1}, "train")
        self.assertIn("field 'num_classes' must be an integer, not a boolean true", msg)
        self.assertIn("field 'seed' must be an integer or null, not a number 1.5", msg)
        self.assertIn("field 'pretrained' must be true or false, not a number 1", msg)
        msg = self.message(InferRequest, {"cfg_path": "c", "weight_path": "w", "files": ["a.png", 3]}, "infer")
        self.assertIn("field 'files' must be a list of strings", msg)
        msg = self.message(TrainRequest, {**TRAIN, "signal": [1]}, "train")
        self.assertIn("field 'signal' must be an object or null, not a list", msg)

    def test_every_problem_at_once(self) -> None:
        msg = self.message(EvaluateRequest, {"cfg_path": 1, "colour": "red"}, "evaluate")
        self.assertEqual(msg.count(";"), 4, msg)  # unknown colour, cfg_path's type, three missing

    def test_a_request_that_is_not_an_object(self) -> None:
        self.assertEqual(self.message(InferRequest, [1], "infer"), "infer: the request must be a JSON object, not a list")

    def test_a_request_error_is_a_value_error(self) -> None:
        self.assertTrue(issubclass(RequestError, ValueError))


class CommandsTest(unittest.TestCase):
    def test_every_command_has_a_request_type_and_a_run(self) -> None:
        self.assertEqual(set(entry.COMMANDS), {"train", "evaluate", "export-onnx", "infer"})
        for name in entry.COMMANDS:
            module = entry.command_module(name)
            self.assertTrue(callable(module.run), name)
            self.assertTrue(dataclasses.is_dataclass(module.REQUEST), name)
            self.assertTrue(issubclass(module.REQUEST, RunnerRequest), f"{name}: device and threads")
            # Every field's type is one parse can check.
            for hint in typing.get_type_hints(module.REQUEST).values():
                requests._conforms(None, hint)

    def test_an_unknown_command_names_the_known_ones(self) -> None:
        with self.assertRaisesRegex(ValueError, r"unknown command 'dance' \(known: train, evaluate, export-onnx, infer\)"):
            entry.command_module("dance")


if __name__ == "__main__":
    sys.exit(unittest.main())
