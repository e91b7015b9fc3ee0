"""Unit tests of the PyTorch runner's parts (run by `npm test` through scripts/run-tests.mjs, with
the standard library's unittest): metric names and units, model-card labels, weights-only loading,
and the checkpoint that resumes under it."""
from __future__ import annotations

import os
import sys
import tempfile
import unittest

import torch

from rfuav_torch import card, metrics, train


class Evil:
    """Unpickling this would run a shell command: what a hostile weight file carries."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class MetricsTest(unittest.TestCase):
    def test_perfect_predictions_in_the_reference_units(self) -> None:
        labels = torch.tensor([0, 1, 2, 0, 1, 2])
        logits = torch.nn.functional.one_hot(labels, 3).float() * 5
        m = metrics.classification_metrics(logits, labels, 3)
        self.assertLessEqual(set(m), set(metrics.EPOCH_METRICS))
        self.assertEqual(m["top1_acc"], 100.0)
        self.assertEqual(m["macro_f1"], 1.0)
        self.assertEqual(m["precision"], m["macro_precision"])
        self.assertEqual(m["recall"], m["macro_recall"])
        self.assertAlmostEqual(m["mAP"], 1.0)

    def test_unused_outputs_do_not_lower_macro_averages(self) -> None:
        labels = torch.tensor([0, 1, 0, 1])
        logits = torch.zeros(4, 5)
        logits[torch.arange(4), labels] = 3.0
        m = metrics.classification_metrics(logits, labels, 5)
        self.assertEqual(m["macro_recall"], 1.0, "outputs 2-4 are never a label nor a prediction")

    def test_percent(self) -> None:
        self.assertEqual(metrics.percent(0.25), 25.0)


class CardTest(unittest.TestCase):
    def test_labels_name_unused_outputs(self) -> None:
        c = {"num_classes": 4, "class_names": {"a": 0, "b": 1}}
        self.assertEqual(card.labels(c), ["a", "b", "unused_2", "unused_3"])

    def test_load_card_takes_fewer_names_not_more(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write("model: resnet18\nnum_classes: 3\nclass_names: {a: 0, b: 1}\n")
            self.assertEqual(card.load_card(path)["num_classes"], 3)
            with open(path, "w", encoding="utf-8") as f:
                f.write("model: resnet18\nnum_classes: 1\nclass_names: {a: 0, b: 1}\n")
            with self.assertRaisesRegex(ValueError, "num_classes is 1 but class_names has 2"):
                card.load_card(path)


class WeightsOnlyTest(unittest.TestCase):
    def test_a_pickled_callable_is_refused_and_never_runs(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            marker = os.path.join(d, "pwned")
            path = os.path.join(d, "evil.pth")
            torch.save({"fc.weight": Evil(marker)}, path)
            with self.assertRaisesRegex(ValueError, "not a plain weights file.*could run code"):
                card.safe_load(path)
            self.assertFalse(os.path.exists(marker))

    def test_a_state_dict_loads(self) -> None:
        model = torch.nn.Linear(3, 2)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "w.pth")
            torch.save(model.state_dict(), path)
            other = torch.nn.Linear(3, 2)
            card.load_weights(other, path)
            self.assertTrue(torch.equal(other.weight, model.weight))

    def test_the_checkpoint_resumes_weights_only(self) -> None:
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "checkpoint_last.pt")
            train._save_checkpoint(path, model, opt, 3, 87.5)
            model2 = torch.nn.Linear(3, 2)
            opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
            self.assertEqual(train._load_checkpoint(path, model2, opt2), (3, 87.5))
            self.assertTrue(torch.equal(model2.weight, model.weight))
            self.assertEqual(opt2.param_groups[0]["lr"], 0.01)
            state = next(iter(opt2.state.values()))
            self.assertTrue(torch.equal(state["exp_avg"], next(iter(opt.state.values()))["exp_avg"]))


if __name__ == "__main__":
    sys.exit(unittest.main())


class KeepAliveTest(unittest.TestCase):
    """The deadlines the service's keep-alive lines give (python/rfuav_torch/__main__.py)."""

    def setUp(self) -> None:
        from rfuav_torch import __main__ as entry

        self.deadline_of = entry._deadline_of

    def test_a_line_is_a_deadline_on_the_monotonic_clock(self) -> None:
        import time

        soon = time.monotonic() + 0.5
        self.assertAlmostEqual(self.deadline_of(f"{soon * 1000:.0f}".encode(), 10.0), soon, delta=0.01)

    def test_a_stale_line_stretches_nothing(self) -> None:
        import time

        past = time.monotonic() - 5
        self.assertLess(self.deadline_of(f"{past * 1000:.0f}".encode(), 10.0), time.monotonic())

    def test_an_empty_or_far_line_gives_the_timeout_from_now(self) -> None:
        import time

        now = time.monotonic()
        for line in (b"", b"garbage", f"{(now + 3600) * 1000:.0f}".encode()):
            self.assertAlmostEqual(self.deadline_of(line, 10.0), now + 10.0, delta=0.05)
