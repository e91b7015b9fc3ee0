"""train_one_epoch and evaluate (the validation pass) on a tiny model and a tiny synthetic data
set on the CPU, and TrainLog, which must close its file however training ends."""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import unittest
from unittest import mock

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rfuav_torch import events, train


def separable(n: int, seed: int) -> TensorDataset:
    """Two classes a linear model can tell apart: class 1 has a positive first feature."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    x[:, 0] += torch.where(y == 1, 1.0, -1.0)
    return TensorDataset(x, y)


def captured_events(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


class LoopTest(unittest.TestCase):
    def setUp(self) -> None:
        torch.manual_seed(0)
        self.out = io.StringIO()
        patcher = mock.patch.object(events, "_out", self.out)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.model = nn.Linear(4, 2)
        self.train = DataLoader(separable(64, 1), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(2))
        self.val = DataLoader(separable(32, 3), batch_size=8)
        self.cpu = torch.device("cpu")

    def test_training_lowers_the_loss_and_validation_scores_it(self) -> None:
        opt = torch.optim.Adam(self.model.parameters(), lr=0.05)
        loss_fn = nn.CrossEntropyLoss()
        before, _ = train.evaluate(self.model, self.val, self.cpu, 2)
        losses = [train.train_one_epoch(self.model, self.train, opt, loss_fn, self.cpu, e, 5)[0] for e in range(1, 6)]
        after, metrics = train.evaluate(self.model, self.val, self.cpu, 2)
        self.assertLess(losses[-1], losses[0])
        self.assertLess(after, before)
        self.assertGreater(metrics["top1_acc"], 90.0, "percent, like the reference")
        self.assertLessEqual(metrics["macro_f1"], 1.0)
        self.assertFalse(self.model.training, "evaluate leaves the model in eval mode")

    def test_an_epoch_reports_progress_and_training_lines(self) -> None:
        opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        loss, acc = train.train_one_epoch(self.model, self.train, opt, nn.CrossEntropyLoss(), self.cpu, 2, 4)
        self.assertTrue(0.0 <= acc <= 100.0)
        self.assertGreater(loss, 0.0)
        evs = captured_events(self.out)
        progress = [e["percent"] for e in evs if e["event"] == "progress"]
        self.assertEqual(len(progress), len(self.train), "one per step")
        self.assertEqual(progress[0], 28.12, "epoch 2 of 4, step 1 of 8")
        self.assertEqual(progress[-1], 50.0, "epoch 2 of 4 done")
        lines = [e for e in evs if e["event"] == "log" and e.get("stage") == "training"]
        self.assertEqual([e["step"] for e in lines], list(range(1, 9)), "every step when an epoch has under ten")
        self.assertEqual(set(lines[-1]["metrics"]), {"train_loss", "train_acc"})

    def test_evaluate_leaves_the_weights_alone(self) -> None:
        before = self.model.weight.detach().clone()
        train.evaluate(self.model, self.val, self.cpu, 2)
        self.assertTrue(torch.equal(before, self.model.weight))

    def test_an_empty_validation_set_scores_without_dividing_by_zero(self) -> None:
        empty = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=4)
        loss, _ = train.evaluate(self.model, empty, self.cpu, 2)
        self.assertEqual(loss, 0.0)


class TrainLogTest(unittest.TestCase):
    def test_the_file_is_closed_when_training_fails(self) -> None:
        with tempfile.TemporaryDirectory() as d, mock.patch.object(events, "_out", io.StringIO()) as out:
            path = os.path.join(d, "train.log")
            with self.assertRaises(RuntimeError):
                with train.TrainLog(path) as log:
                    log("hello", "warning")
                    log.file_only("only here")
                    raise RuntimeError("epoch 3 failed")
            self.assertTrue(log.file.closed)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            self.assertRegex(text, r"WARNING +hello\n.*INFO +only here\n")
            self.assertEqual([e["message"] for e in captured_events(out)], ["hello"], "file_only stays in the file")

    def test_close_twice_is_harmless(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            log = train.TrainLog(os.path.join(d, "train.log"))
            log.close()
            log.close()
            self.assertTrue(log.file.closed)


if __name__ == "__main__":
    sys.exit(unittest.main())
