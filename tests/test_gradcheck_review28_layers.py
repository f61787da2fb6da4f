"""Review 28, second round: ``check_input`` and ``params=`` reach the layers ``check_layers=True`` checks alone,
``report.failed`` lists a layer's failures alone (``"<path>.<name> (alone)"``), the np.add.at hint only for a
parameter of a layer given the integer input (never for a bias row), and the bias-row words from
``Parameter.bias_rows`` (a layer of one's own that sets it gets them too)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker
from minidl.testing import assert_gradients_ok

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3))
MASK = (RNG.random((4, 3)) > 0.3).astype(float)
TOKENS = np.array([[0, 1, 0], [2, 0, 3]])  # 0 held 4 times, 1, 2, 3 once


class Masked(md.Layer):
    """y = x * m, m a float mask without gradient (backward returns None for it)."""

    def forward(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        x, m = inputs
        self._m = m
        return x * m

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
        return g * self._m, None


class Outer(md.Layer):
    """Masked then Dense; ``flip``: the inner layer is given 1 - mask (an array computed from the mask)."""

    def __init__(self, flip: bool = False) -> None:
        super().__init__()
        self.inner = Masked()
        self.lin = md.Dense(3, 2, rng=0)
        self.flip = flip

    def forward(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        x, m = inputs
        return self.lin(self.inner((x, 1.0 - m) if self.flip else (x, m)))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
        return self.inner.backward(self.lin.backward(g))


def test_check_layers_leaves_out_a_mask_the_model_leaves_out() -> None:
    report = GradientChecker(Outer(), inputs=(X, MASK), check_input=(True, False), check_layers=True).run()
    assert report.passed and report.failed == [], str(report)
    assert [r.name for r in report.layers["inner"].results] == ["input[0]"]
    assert [r.name for r in report.layers["lin"].results] == ["input", "W"]  # (an activation: checked)
    assert_gradients_ok(Outer(), (X, MASK), check_input=(True, False), check_layers=True)


def test_an_input_computed_from_a_left_out_mask_is_checked_and_failed_lists_it_alone() -> None:
    # the model is right (its mask is left out); alone, the inner layer is given 1 - mask, a new float array
    # its backward returns None for: checked, it fails, and report.failed says so (it was [] with passed False)
    report = GradientChecker(Outer(flip=True), inputs=(X, MASK), check_input=(True, False), check_layers=True).run()
    assert all(r.passed for r in report.results)
    assert not report.passed
    assert [r.name for r in report.failed] == ["inner.input[1] (alone)"]
    assert report["inner.input[1] (alone)"].problems[0].startswith("backward returned None instead of dCost/dinput[1]")
    assert report["inner.input[0] (alone)"].passed
    assert str(report).startswith("Gradient check FAILED; failing alone: inner;")


class HalfDx(md.Layer):
    """y = x * w (per feature); dx is half what it is."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([0.5, -1.5, 2.0]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(axis=0)
        return 0.5 * g * self.w.data


def test_failed_lists_the_models_tensors_then_the_layers_failing_alone() -> None:
    report = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), HalfDx(), md.Dense(3, 2, rng=1)), inputs=X,
                             check_layers=True).run()
    names = [r.name for r in report.failed]
    assert names == ["input", "0.W", "1.input (alone)"], str(report)
    assert report["1.input (alone)"].failed == 12 and report["1.w (alone)"].passed
    assert str(report).startswith("Gradient check FAILED (2 of 4 tensors); failing alone: 1;")
    with pytest.raises(KeyError, match=r"'1.input \(alone\)'"):
        report["nothing"]


class BiasMean(md.Layer):
    """y = [1, x] @ W; the bias row's gradient is a mean over the rows, not a sum (the bug)."""

    def __init__(self, i: int, o: int, bias_rows: slice | None = None) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).standard_normal((i + 1, o)) * 0.5, bias_rows=bias_rows)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data[1:] + self.W.data[0]

    def backward(self, g: np.ndarray) -> np.ndarray:
        x2, g2 = self._x.reshape(-1, self._x.shape[-1]), g.reshape(-1, g.shape[-1])
        self.W.grad[1:] += x2.T @ g2
        self.W.grad[0] += g2.mean(0)
        return g @ self.W.data[1:].T


def test_no_add_at_hint_for_a_layer_that_never_sees_the_tokens() -> None:
    # the tokens hold 0 four times, and the failing row of '1.W' is its row 0: but that layer is given the
    # embedding's output, never the tokens
    model = md.Sequential(md.Embedding(6, 5, rng=0), BiasMean(5, 2))
    report = GradientChecker(model, inputs=TOKENS).run()
    diagnosis = report["1.W"].diagnosis or ""
    assert not report["1.W"].passed and "share one factor" in diagnosis
    assert "np.add.at" not in diagnosis and "holds more than once" not in diagnosis, diagnosis


class ScatterLookup(md.Layer):
    """An embedding whose backward scatters with grad[idx] += v (one contribution per repeated index)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.E = md.Parameter(np.random.default_rng(2).standard_normal((rows, dim)))

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        self._t = tokens
        return self.E.data[tokens]

    def backward(self, g: np.ndarray) -> None:
        self.E.grad[self._t.reshape(-1)] += g.reshape(-1, g.shape[-1])  # the bug
        return None


def test_the_add_at_hint_for_a_layer_given_the_tokens_inside_a_sequential() -> None:
    report = GradientChecker(md.Sequential(ScatterLookup(6, 4), md.Dense(4, 2, rng=0)), inputs=TOKENS).run()
    diagnosis = report["0.E"].diagnosis or ""
    assert ("the failing elements lie only in rows [0] of '0.E', which the input holds more than once, and rows it "
            "holds once ([1, 2, 3]) are right") in diagnosis, diagnosis
    assert report["1.W"].passed


class BiasLookup(md.Layer):
    """y = W[0] + W[1 + tokens], row 0 a bias (``bias_rows=slice(0, 1)``); its gradient a mean, not a sum."""

    def __init__(self, rows: int, dim: int, bias_rows: slice | None) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(3).standard_normal((rows + 1, dim)), bias_rows=bias_rows)

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        self._t = tokens
        return self.W.data[0] + self.W.data[1 + tokens]

    def backward(self, g: np.ndarray) -> None:
        g2 = g.reshape(-1, g.shape[-1])
        self.W.grad[0] += g2.mean(0)  # the bug
        np.add.at(self.W.grad, 1 + self._t.reshape(-1), g2)
        return None


def test_a_bias_row_of_ones_own_gets_the_bias_words_and_no_add_at_hint() -> None:
    # row 0 is the bias, not an index (token 0 is row 1), though the tokens hold 0 four times
    report = GradientChecker(BiasLookup(6, 4, slice(0, 1)), inputs=TOKENS).run()
    diagnosis = report["W"].diagnosis or ""
    assert diagnosis.startswith("only row 0 (the absorbed bias row) is wrong; there analytic = 1/6 x numerical"), \
        diagnosis
    assert "np.add.at" not in diagnosis


def test_without_bias_rows_a_layer_of_ones_own_gets_no_bias_words() -> None:
    diagnosis = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), BiasMean(3, 2)), inputs=X).run()["1.W"].diagnosis
    assert diagnosis is not None and "bias row" not in diagnosis
    diagnosis = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), BiasMean(3, 2, slice(0, 1))),
                                inputs=X).run()["1.W"].diagnosis
    assert diagnosis is not None and diagnosis.startswith("only row 0 (the absorbed bias row) is wrong")


class WrongWGrad(md.Layer):
    """y = x @ W; W's gradient doubled (dx right)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(4).standard_normal((3, 3)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.W.grad += 2 * self._x.T @ g
        return g @ self.W.data.T


def test_params_reaches_the_layers_checked_alone() -> None:
    model = md.Sequential(WrongWGrad(), md.Tanh(), md.Dense(3, 2, rng=0))
    report = GradientChecker(model, inputs=X, params=["2.W"], check_layers=True).run()
    assert "params= chose '2.W': the parameter(s) '0.W' were not checked" in report.notes
    # the note holds for the layers too: layer '0' checks its input only, and its wrong W fails nothing
    assert {path: [r.name for r in sub.results] for path, sub in report.layers.items()} == \
        {"0": ["input"], "1": ["input"], "2": ["input", "W"]}
    assert report.passed, str(report)
    chosen = GradientChecker(model, inputs=X, params=["0.W"], check_layers=True).run()
    assert [r.name for r in chosen.failed] == ["0.W", "0.W (alone)"]


def test_params_of_a_shared_parameter_reaches_each_layer_holding_it() -> None:
    first, second = md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1)
    second.W = first.W  # (named '0.W' only)
    report = GradientChecker(md.Sequential(first, md.Tanh(), second), inputs=X, params=["0.W"],
                             check_layers=True, check_input=False).run()
    assert [r.name for r in report.layers["2"].results] == ["input", "W"]
    assert [r.name for r in report.layers["0"].results] == ["W"]  # (its input is the model's, left out)
