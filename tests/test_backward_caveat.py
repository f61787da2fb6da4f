"""``Layer.backward_caveat()``: a layer whose backward is not its forward's derivative by design (a
straight-through estimator, ``Embedding(scale_grad_by_freq=True)``) says so, and a failed gradient check
names it first among its notes; a passing check, or a layer without a caveat, adds nothing."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md


class RoundSTE(md.Layer):
    """y = round(x * 4) / 4 + x ** 3 (a cubic term, so that the cost moves); backward passes
    grad_output straight through the rounding: the straight-through estimator, not the derivative."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        out: np.ndarray = np.round(x * 4) / 4 + x ** 3
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = grad_output * (1 + 3 * self._x ** 2)
        return out

    def backward_caveat(self) -> str | None:
        return "the rounding's gradient is passed straight through (an estimator, not the derivative)"


def test_a_layer_has_no_caveat_by_default() -> None:
    assert md.Dense(2, 3, rng=0).backward_caveat() is None
    assert md.Embedding(4, 2, rng=0).backward_caveat() is None
    assert "not the derivative" in str(md.Embedding(4, 2, rng=0, scale_grad_by_freq=True).backward_caveat())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_failed_check_names_the_layer_and_its_caveat_first(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = md.Sequential(md.Dense(3, 4, rng=seed), RoundSTE(), md.Dense(4, 2, rng=seed + 1))
    x = rng.normal(size=(5, 3)) * 0.1  # (round(4 x) is flat almost everywhere here: the STE's slope is wrong)
    report = md.GradientChecker(model, md.MSELoss(), inputs=x, targets=rng.normal(size=(5, 2))).run()
    assert not report.passed
    assert report.notes[0] == "layer '1' (RoundSTE): the rounding's gradient is passed straight through " \
                              "(an estimator, not the derivative)"
    assert "note: layer '1' (RoundSTE): the rounding's gradient" in str(report)


@pytest.mark.parametrize(("shape", "seed"), [((4, 3), 0), ((2, 6), 1), ((8, 2), 2)])
def test_an_embedding_scaled_by_frequency_fails_with_its_caveat(shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 3, size=shape)  # 3 rows for >= 8 positions: indices repeat
    model = md.Sequential(md.Embedding(5, 2, rng=seed, scale_grad_by_freq=True), md.Flatten(),
                          md.Dense(2 * shape[1], 2, rng=seed))
    report = md.GradientChecker(model, md.MSELoss(), inputs=idx, targets=rng.normal(size=(shape[0], 2))).run()
    assert not report.passed
    assert report.notes[0].startswith("layer '0' (Embedding): scale_grad_by_freq=True divides each row's gradient")


def test_a_passing_check_adds_no_caveat() -> None:
    rng = np.random.default_rng(3)
    idx = np.array([[0, 1, 2], [3, 4, 5]])  # every index distinct: scaled == plain, the check passes
    model = md.Sequential(md.Embedding(6, 2, rng=3, scale_grad_by_freq=True), md.Flatten(), md.Dense(6, 2, rng=3))
    report = md.GradientChecker(model, md.MSELoss(), inputs=idx, targets=rng.normal(size=(2, 2))).run()
    assert report.passed
    assert not any("scale_grad_by_freq" in note for note in report.notes)
