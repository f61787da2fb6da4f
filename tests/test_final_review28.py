"""Final review 28: the "isolated element(s)" diagnosis kept from failing elements that share a column or one
factor, ``bias_rows`` restored on layers pickled before it existed, a ``Parameter`` subclass's attributes through
pickle and deepcopy, an assignable ``param_groups`` in an optimizer subclass, and an empty ``bias_rows`` refused."""

from __future__ import annotations

import numpy as np

import minidl as md
from minidl import GradientChecker

X = np.random.default_rng(0).normal(size=(5, 4))


class Lin(md.Layer):
    """y = x @ W, W (3, 4); ``scale``: the factors backward puts on dW's elements (row, column) -> factor."""

    def __init__(self, scale: dict[tuple[int, int], float]) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).normal(size=(3, 4)))
        self.scale = scale

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = self._x.T @ g
        for (i, j), f in self.scale.items():
            d[i, j] *= f
        self.W.grad += d
        return g @ self.W.data.T


def _w_diagnosis(scale: dict[tuple[int, int], float]) -> str | None:
    inputs = np.random.default_rng(0).normal(size=(6, 3))
    return GradientChecker(Lin(scale), inputs=inputs, check_input=False).run()["W"].diagnosis


def test_a_doubled_column_is_one_factor_not_isolated_elements() -> None:
    assert _w_diagnosis({(0, 1): 2, (1, 1): 2, (2, 1): 2}) == (
        "the 3 failing elements share one factor; there analytic = 2 x numerical (a dropped or extra factor (e.g. "
        "the 2 of a square))")


def test_elements_apart_sharing_one_factor_are_one_factor_not_isolated() -> None:
    # each in a row and a column of its own, all doubled
    assert _w_diagnosis({(0, 1): 2, (1, 2): 2, (2, 3): 2}) == (
        "the 3 failing elements share one factor; there analytic = 2 x numerical (a dropped or extra factor (e.g. "
        "the 2 of a square))")


class ColumnWrong(md.Layer):
    """y = x * w; backward scales dx[0:3, 1] by three different factors (one feature's gradient wrong)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([0.5, -1.5, 2.0, 0.7]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(axis=0)
        dx = g * self.w.data
        dx[0:3, 1] *= np.array([2.0, -3.0, 5.0])
        return dx


def test_failing_elements_sharing_a_column_are_not_isolated() -> None:
    diagnosis = GradientChecker(ColumnWrong(), inputs=X).run()["input"].diagnosis
    assert diagnosis is not None and "isolated" not in diagnosis
    assert diagnosis.startswith("only samples [0, 1, 2] of the batch are wrong, samples [3, 4] are right")


class ApartWrong(ColumnWrong):
    """backward scales dx at (0, 1), (2, 3), (4, 0) by three different factors: elements apart."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(axis=0)
        dx = g * self.w.data
        dx[[0, 2, 4], [1, 3, 0]] *= np.array([2.0, -3.0, 5.0])
        return dx


def test_elements_apart_with_no_common_factor_are_still_isolated() -> None:
    assert GradientChecker(ApartWrong(), inputs=X).run()["input"].diagnosis == (
        "only 3 isolated element(s) wrong, at [(0, 1), (2, 3), (4, 0)]: an indexing bug or a special case in "
        "backward?")
