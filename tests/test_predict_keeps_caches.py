"""``predict`` and ``evaluate`` between a training forward and its backward leave that backward
differentiating the training forward (as PyTorch's eval-mode predictions leave its graph): they put back
every layer's (and the loss's) forward caches, and keep what a lazy layer found at its first forward
(and what a layer's forward appends to a list: a log)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md


class Lazy(md.Layer):
    """y = x * w, with ``w``'s width found at the first forward (None before)."""

    def __init__(self) -> None:
        super().__init__()
        self._width: int | None = None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._width is None:
            self._width = x.shape[1]
        self._x = x
        return x * 2.0

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * 2.0


def mlp(seed: int) -> md.Sequential:
    return md.Sequential(md.Dense(6, 8, rng=seed), md.BatchNorm1d(8), md.ReLU(), md.Dropout(0.3, rng=seed),
                         md.Dense(8, 3, rng=seed + 1))


def cnn(seed: int) -> md.Sequential:
    return md.Sequential(md.Conv2D(2, 4, 3, padding=1, rng=seed), md.ReLU(), md.MaxPool2D(2), md.Flatten(),
                         md.Dense(4 * 3 * 3, 3, rng=seed + 1))


def gradients(build: Callable[[int], md.Layer], x: np.ndarray, y: np.ndarray, seed: int,
              between: Callable[[md.Layer, md.Loss], Any]) -> list[np.ndarray]:
    model, loss = build(seed), md.CrossEntropyLoss()
    loss(model(x), y)
    between(model, loss)
    model.backward(loss.backward())
    return [p.grad.copy() for p in model.parameters()]


def data(build: Callable[[int], md.Layer], seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n, 6) if build is mlp else (n, 2, 6, 6)
    return rng.normal(size=shape), rng.integers(0, 3, n)


@pytest.mark.parametrize("build", [mlp, cnn])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("between", ["predict", "predict in batches", "evaluate", "evaluate with the loss"])
def test_predict_or_evaluate_between_forward_and_backward_changes_no_gradient(
        build: Callable[[int], md.Layer], seed: int, between: str) -> None:
    x, y = data(build, seed, 8)
    xv, yv = data(build, seed + 10, 13)  # (another batch size: a stale cache would not even fit)
    calls: dict[str, Callable[[md.Layer, md.Loss], Any]] = {
        "predict": lambda m, loss: m.predict(xv),
        "predict in batches": lambda m, loss: m.predict(xv, batch_size=5),
        "evaluate": lambda m, loss: m.evaluate(xv, yv, loss=md.CrossEntropyLoss()),
        "evaluate with the loss": lambda m, loss: m.evaluate(xv, yv, loss=loss),  # the same loss object
    }
    expected = gradients(build, x, y, seed, lambda m, loss: None)
    got = gradients(build, x, y, seed, calls[between])
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert any(np.abs(g).max() > 0 for g in got)


def test_the_predictions_are_those_of_the_eval_mode_model() -> None:
    model, x = mlp(0), data(mlp, 0, 9)[0]
    model(x)  # a training forward pending (it moved the batch norm's running statistics)
    twin = copy.deepcopy(model).eval()
    assert np.array_equal(model.predict(x), twin(x)) and model.training


def test_a_predict_that_fails_midway_leaves_the_pending_backward_intact() -> None:
    x, y = data(mlp, 3, 8)
    expected = gradients(mlp, x, y, 3, lambda m, loss: None)
    bad = np.vstack([data(mlp, 4, 5)[0], np.full((1, 6), np.nan)])

    def failing(m: md.Layer, loss: md.Loss) -> None:
        with pytest.raises(md.NonFiniteError):
            m.predict(bad, batch_size=3)  # (the second batch fails in the first layer)

    got = gradients(mlp, x, y, 3, failing)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_lazy_layer_keeps_what_its_first_forward_found_in_predict() -> None:
    lazy = Lazy()
    model = md.Sequential(lazy, md.Dense(4, 2, rng=0))
    model.predict(np.ones((3, 4)))
    assert lazy._width == 4  # (None before: not put back)
    assert lazy._x is not None and lazy._x.shape == (3, 4)  # (None before: kept, as a cache of a forward)


def test_what_a_forward_appends_to_a_list_is_kept() -> None:
    class Log(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.seen.append(len(x))
            return x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output

    log = Log()
    md.Sequential(md.Dense(4, 2, rng=0), log).predict(np.ones((7, 4)), batch_size=3)
    assert log.seen == [3, 3, 1]


# ------------------------------------------------------------------ after review
def test_a_predict_failing_after_its_first_layer_leaves_the_backward_allowed() -> None:
    x, y = data(mlp, 5, 8)
    expected = gradients(mlp, x, y, 5, lambda m, loss: None)

    def failing(m: md.Layer, loss: md.Loss) -> None:
        with pytest.raises(md.ShapeError):
            m.predict(np.ones((4, 2, 6)))  # (the first Dense takes it as rows; the batch norm refuses it)

    got = gradients(mlp, x, y, 5, failing)  # (not refused as "the last forward failed at layer '1'")
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


class Observer(md.Layer):
    """Identity recording the largest |x| seen (a calibration pass): in a buffer, or a plain attribute."""

    def __init__(self, buffer: bool) -> None:
        super().__init__()
        if buffer:
            self.register_buffer("max_abs", np.zeros(()))
        else:
            self.max_abs = np.zeros(())

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.max_abs = np.asarray(np.maximum(self.max_abs, np.abs(x).max()))
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


@pytest.mark.parametrize("buffer", [True, False])
def test_state_a_forward_keeps_in_a_buffer_survives_predict_a_plain_attribute_does_not(buffer: bool) -> None:
    observer = Observer(buffer)
    model = md.Sequential(md.Dense(4, 3, rng=0), observer)
    x = np.random.default_rng(1).normal(size=(16, 4)) * 10
    largest = float(np.abs(model[0](x)).max())
    model.predict(x)
    assert float(observer.max_abs) == (largest if buffer else 0.0)
    if buffer:
        assert float(model.state_dict()["1.max_abs"]) == largest  # (the attribute and the registry agree)


class Both(md.Loss):
    """MSE plus L1 through two losses it holds (a composite loss)."""

    def __init__(self) -> None:
        self.parts = [md.MSELoss(), md.L1Loss()]

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return sum(part(y_pred, y_true) for part in self.parts)

    def backward(self) -> np.ndarray:
        out: np.ndarray = self.parts[0].backward() + self.parts[1].backward()
        return out


def test_evaluate_puts_back_the_caches_of_the_losses_a_loss_holds() -> None:
    rng = np.random.default_rng(0)
    x, y, xv, yv = rng.normal(size=(8, 6)), rng.normal(size=(8, 3)), rng.normal(size=(5, 6)), rng.normal(size=(5, 3))

    def run(between: bool) -> list[np.ndarray]:
        model, loss = md.Sequential(md.Dense(6, 3, rng=0)), Both()
        loss(model(x), y)
        if between:
            model.evaluate(xv, yv, loss=loss)
        model.backward(loss.backward())
        return [p.grad.copy() for p in model.parameters()]

    assert all(np.array_equal(a, b) for a, b in zip(run(True), run(False), strict=True))
