"""Session 31's review: the gradient checker takes several outputs (a tuple of arrays) without a loss, as
check_layers does for a layer alone; a backward that takes one array gets a clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import minidl as md

# ------------------------------------------------------------------ the checker on several outputs, no loss


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape, kernel, stride", [((2, 3, 10), 3, None), ((1, 2, 9), 2, 1), ((3, 1, 7), 3, 2)])
def test_max_pool_1d_with_indices_passes_without_a_loss(seed: int, shape: tuple[int, ...], kernel: int,
                                                        stride: int | None) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    report = md.GradientChecker(md.MaxPool1D(kernel, stride=stride, return_indices=True), inputs=x,
                                seed=seed).run()
    assert report.passed, report
    assert report.cost == "sum_i R_i . y_i over the floating outputs (1 of 2), R_i ~ N(0, 1)"
    assert report.results[0].checked > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape, kernel", [((2, 3, 6, 7), 2), ((1, 2, 5, 5), 3), ((2, 1, 8, 4), 2)])
def test_max_pool_2d_with_indices_passes_without_a_loss(seed: int, shape: tuple[int, ...], kernel: int) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    report = md.GradientChecker(md.MaxPool2D(kernel, return_indices=True), inputs=x, seed=seed).run()
    assert report.passed, report
    assert report.results[0].checked > 0


class TwoOut(md.Layer):
    """(a * x, tanh(b * x)), a and b parameters; ``bug``: the second output's gradient leaves out tanh'."""

    def __init__(self, bug: bool = False, one_array: bool = False) -> None:
        super().__init__()
        self.a = md.Parameter(np.array([1.5, -0.5, 2.0]))
        self.b = md.Parameter(np.array([0.7, 1.2, -0.9]))
        self.bug, self.one_array = bug, one_array

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        self._x = x
        self._t = np.tanh(self.b.data * x)
        return self.a.data * x, self._t

    def backward(self, grad_output: tuple[np.ndarray, np.ndarray]) -> np.ndarray:  # type: ignore[override]
        if self.one_array:  # (written for one output: the gradient of a * x only)
            g: np.ndarray = grad_output.reshape(self._x.shape) * self.a.data  # type: ignore[attr-defined]
            return g
        ga, gb = grad_output
        gt = gb if self.bug else gb * (1 - self._t ** 2)
        self.a.grad += (ga * self._x).sum(0)
        self.b.grad += (gt * self._x).sum(0)
        out: np.ndarray = ga * self.a.data + gt * self.b.data
        return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_layer_with_two_outputs_passes_and_a_bug_in_the_second_gradient_is_named(seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((4, 3))
    good = md.GradientChecker(TwoOut(), inputs=x, seed=seed).run()
    assert good.passed, good
    assert {r.name for r in good.results} == {"input", "a", "b"}
    bad = md.GradientChecker(TwoOut(bug=True), inputs=x, seed=seed).run()
    assert not bad.passed
    failed = {r.name for r in bad.results if r.failed}
    assert "b" in failed and "a" not in failed


def test_a_layer_with_two_outputs_whose_backward_takes_one_array_gets_a_clear_note() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(AttributeError, match="'tuple' object has no attribute 'reshape'") as info:
        md.GradientChecker(TwoOut(one_array=True), inputs=x).run()  # (its own error, as it raised it)
    notes = getattr(info.value, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert notes[0] == (
            "(GradientChecker: TwoOut.forward returned 2 outputs (a tuple: float64 (4, 3), float64 (4, 3)), so without "
            "a loss the cost is sum_i R_i . y_i over the floating ones, and TwoOut.backward was given the tuple of "
            "their gradients (float64 (4, 3), float64 (4, 3)).  A model with several outputs takes a tuple of "
            "gradients, one per output, in a backward as in training; if its backward takes one array (of one of the "
            "outputs), check it with a loss that takes the tuple of outputs and gives the gradient its backward "
            "takes (loss=...), or return one array)")


class IndexBug(md.Layer):
    """Takes the tuple of its two outputs' gradients, then indexes out of range: a bug of its own."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        return 2 * x, 3 * x

    def backward(self, grad_output: tuple[np.ndarray, np.ndarray]) -> np.ndarray:  # type: ignore[override]
        g1, _ = grad_output
        out: np.ndarray = g1[5]
        return out


def test_a_bug_in_a_backward_that_takes_the_tuple_keeps_its_type() -> None:
    """The backward's own error is raised as it is (an IndexError stays one), with the note beside it."""
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.raises(IndexError, match="index 5 is out of bounds"):
        md.GradientChecker(IndexBug(), inputs=x).run()


class WithCache(md.Layer):
    """Bug: returns its output together with its cache (a mask), and a backward taking one array."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        self._m = (x > 0).astype(x.dtype)
        return x * self._m, self._m

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = grad_output * self._m  # (given the tuple: an array (2, N, D) by broadcasting)
        return out


def test_an_output_returned_with_its_cache_by_mistake_fails_and_the_report_says_why() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    report = md.GradientChecker(WithCache(), inputs=x).run()
    assert not report.passed
    assert report.cost == "sum_i R_i . y_i over the floating outputs (2 of 2), R_i ~ N(0, 1)"
    assert report.results[0].problems == ["backward returned dCost/dinput of shape (2, 2, 3), expected (2, 3)"]
    assert ("WithCache.forward returned a tuple of 2 outputs, so backward was given a tuple of their gradients: a "
            "backward that takes one array makes an array of the tuple (an output returned with its cache by "
            "mistake?)") in report.notes
    assert "cost: sum_i R_i . y_i over the floating outputs (2 of 2)" in str(report)


def test_a_tuple_without_a_floating_output_is_still_refused() -> None:
    class Ints(md.Layer):
        def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
            return np.zeros(x.shape, dtype=np.int64), np.ones(x.shape, dtype=np.int64)

        def backward(self, grad_output: object) -> None:  # type: ignore[override]
            return None

    with pytest.raises(TypeError, match=r"Ints\.forward returned a tuple holding no floating array, not an array: "
                                        r"without a loss the cost is sum\(R \* output\)"):
        md.GradientChecker(Ints(), inputs=np.ones((2, 3))).run()
