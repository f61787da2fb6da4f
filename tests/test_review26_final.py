"""From the final review of the 26th session's changes: a layer with several outputs whose backward takes
one gradient is not checked alone (no crash of ``check_layers``); a backward caveat is given only for a layer
a failure may owe to; the one-sample hint not given to a batch short of its channel axis; a direction set on a
plain metric function; ``Embedding(norm_type=...)`` without ``max_norm`` accepted (PyTorch ignores it);
``machine_state.py --seconds 0`` takes one sample."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl as md

ROOT = Path(__file__).resolve().parent.parent


class Two(md.Layer):
    """(y, y.sum(1)) of an inner Dense; its backward takes the gradient of y alone (the model uses only y)."""

    def __init__(self) -> None:
        super().__init__()
        self.d = md.Dense(3, 3, rng=0)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = self.d(x)
        return y, y.sum(axis=1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.d.backward(grad_output)
        return out


class UsesFirst(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.two = Two()
        self.out = md.Dense(3, 2, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, _ = self.two(x)
        out: np.ndarray = self.out(y)
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.two.backward(self.out.backward(grad_output))
        return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_layer_whose_backward_takes_one_of_its_outputs_gradients_is_not_checked_alone(seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((4, 3))
    report = md.GradientChecker(UsesFirst(), inputs=x, check_layers=True).run()  # (raised a DTypeError)
    assert report.passed
    assert "two" not in report.layers and report.layers["two.d"].passed and report.layers["out"].passed
    assert any(note.startswith("layer 'two' (Two): returns several outputs (a tuple), and its backward did not "
                               "take a tuple of their gradients (DTypeError): not checked alone")
               for note in report.notes)


class BadScale(md.Layer):
    """x * s with dS doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.s = md.Parameter(np.full(3, 0.7))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        out: np.ndarray = x * self.s.data
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.s.grad += 2 * (grad_output * self._x).sum(axis=(0, 1))
        out: np.ndarray = grad_output * self.s.data
        return out


def test_a_caveat_is_not_given_for_a_layer_before_the_failing_one_whose_tensors_pass() -> None:
    model = md.Sequential(md.Embedding(10, 3, scale_grad_by_freq=True, rng=0), BadScale())
    report = md.GradientChecker(model, inputs=np.array([[0, 1, 2], [3, 4, 5]])).run()
    assert [(r.name, r.passed) for r in report.results] == [("0.W", True), ("1.s", False)]
    assert not any("scale_grad_by_freq" in note for note in report.notes)


def test_a_caveat_is_given_for_the_layer_that_fails_and_for_one_whose_dx_may_fail_those_before() -> None:
    model = md.Sequential(md.Embedding(4, 3, scale_grad_by_freq=True, rng=0), BadScale())
    report = md.GradientChecker(model, inputs=np.array([[0, 0, 1], [1, 2, 2]])).run()  # (indices repeat)
    assert not report.passed
    assert report.notes[0].startswith("layer '0' (Embedding): scale_grad_by_freq=True")


def grey_model() -> md.Sequential:
    return md.Sequential(md.Conv2D(1, 4, 3, rng=0), md.Flatten(), md.Dense(4 * 26 * 26, 10, rng=1))


def test_a_batch_short_of_its_channel_axis_gets_no_one_sample_hint() -> None:
    x = np.random.default_rng(0).standard_normal((8, 28, 28))  # grey images without the channel axis
    for call in (lambda: grey_model().predict(x),
                 lambda: grey_model().evaluate(x, np.zeros(8, dtype=int), loss=md.CrossEntropyLoss())):
        with pytest.raises(md.ShapeError) as caught:
            call()
        assert "x[:, None]" in str(caught.value) and "one sample" not in str(caught.value)
    with pytest.raises(md.ShapeError) as caught:  # (one grey image with its channel: the hint)
        grey_model().predict(np.zeros((1, 28, 28)))
    assert "for one sample pass x[None]" in str(caught.value)


def test_a_direction_set_on_a_metric_function_is_taken() -> None:
    def f1(y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return float(np.mean(y_pred.argmax(1) == y_true))

    f1.direction = "max"  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
    model = md.Sequential(md.Dense(4, 3, rng=0))
    es = md.EarlyStopping("val_f1", patience=50)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), metrics=[f1],
              validation_split=0.25, early_stopping=es, epochs=2, verbose=0)
    assert es.mode == "max"


def test_norm_type_without_max_norm_is_accepted_as_pytorch_ignores_it() -> None:
    assert md.Embedding(5, 3, norm_type=1.0, rng=0).backward_caveat() is None
    with pytest.raises(ValueError, match="max_norm is not supported"):
        md.Embedding(5, 3, max_norm=1.0, norm_type=1.0)


def test_machine_state_takes_one_sample_at_least() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "machine_state.py"), "--seconds", "0",
                             "--steps", "1", "--quiet"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "1 samples of 1 steps" in result.stdout


def test_mode_auto_set_again_before_any_run_is_undecided_in_both_watchers() -> None:
    optimizer = md.SGD(md.Sequential(md.Dense(4, 3, rng=0)).parameters(), lr=0.1)
    es = md.EarlyStopping("val_f1", mode="min")
    plateau = md.ReduceLROnPlateau(optimizer, mode="min", monitor="val_f1")
    es.mode = "auto"
    plateau.mode = "auto"  # (it kept "min")
    assert (es.mode, plateau.mode) == ("auto", "auto")
