"""Two promises of the losses that a mutation review found unguarded by the loss tests:

- float16 sums of squares are taken in float32 (``sum_of_squares``): MSELoss, HalfSquaredError and the
  ``"mse"`` metric on float16 give the exact value where a float16 sum overflows to inf (65504 is float16's
  largest), and the loss is a Python float while its gradient stays float16.
- "a backward returns the gradient of the forward that ran" (``Loss``): a loss that keeps (a view of) the
  caller's ``y_true`` copies it (``_kept``), so a caller refilling its target buffer before the backward
  does not change the gradient.  Every built-in loss, each target path of ``CrossEntropyLoss``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.training import MeanSquaredError

F16 = np.float16


# ---------------------------------------------------------------------------------------------- float16 sums
@pytest.mark.parametrize(("n", "value", "mean", "half_sum"), [
    (70000, 1.0, 1.0, 35000.0),  # 70000 unit errors: a float16 sum of squares is inf past 65504
    (1000, 10.0, 100.0, 50000.0),  # 1000 errors of 10: 1e5 as a float16 sum, inf
    (65536, 1.0, 1.0, 32768.0),  # one float16 dot product of exactly SQUARES_CHUNK elements: 65536, inf
])
def test_float16_squared_errors_are_summed_without_overflow(n: int, value: float, mean: float,
                                                            half_sum: float) -> None:
    y_pred, y_true = np.full(n, value, F16), np.zeros(n, F16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (an overflow warning would be an error too)
        mse, total = md.MSELoss(), md.MSELoss(reduction="sum")
        got = mse(y_pred, y_true)
        assert type(got) is float and got == mean  # (the loss is a Python float, as Loss documents)
        assert total(y_pred, y_true) == n * value ** 2
        assert md.HalfSquaredError()(y_pred, y_true) == half_sum
        assert MeanSquaredError()(y_pred, y_true) == mean  # the "mse" metric shares sum_of_squares
        assert md.MSELoss()(y_pred.reshape(-1, 10) if n % 10 == 0 else y_pred[:, None],
                            y_true.reshape(-1, 10) if n % 10 == 0 else y_true[:, None]) == mean
        grad = mse.backward()  # y_pred's shape and dtype: 2 * diff / size, in float16
    assert grad.dtype == F16 and grad.shape == (n,)
    np.testing.assert_array_equal(grad, np.full(n, np.float16(value) * np.float16(2.0 / n), F16))
    assert total.backward().dtype == F16 and total.backward()[0] == 2 * value


def test_float16_mse_metric_of_evaluate_is_finite() -> None:
    """``evaluate(metrics=["mse"])`` of a float16 model: 1000 outputs of 10 against 0 in one batch, an mse
    of 100, not inf."""
    model = md.Sequential(md.Dense(1, 1, rng=0)).astype(F16)
    (w,) = model.parameters()
    w.data[...] = [[10.0], [0.0]]  # the bias row 10, the weight 0: every output is 10
    x, y = np.zeros((1000, 1), F16), np.zeros((1000, 1), F16)
    assert model.evaluate(x, y, loss=md.MSELoss(), metrics=["mse"], batch_size=1000) == {"loss": 100.0,
                                                                                         "mse": 100.0}


# ------------------------------------------------------------------------------------ the kept targets
Case = Callable[[np.random.Generator], tuple[md.Loss, Any, np.ndarray, Any]]


def _probabilities(rng: np.random.Generator, shape: tuple[int, ...], axis: int = 1) -> np.ndarray:
    p = rng.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=axis, keepdims=True)


def _ce_probabilities(**kw: Any) -> Case:
    def case(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
        return md.CrossEntropyLoss(**kw), rng.standard_normal((4, 3)), np.full((4, 3), 1 / 3), [1.0, 0.0, 0.0]
    return case


def _ce_positions(shape: tuple[int, ...], dtype: Any = np.float64) -> Case:
    def case(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
        return (md.CrossEntropyLoss(), rng.standard_normal(shape).astype(dtype),
                _probabilities(rng, shape).astype(dtype), 0.0)
    return case


def _labels(make: Callable[[], md.Loss], log_probs: bool = False) -> Case:
    def case(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
        x = rng.standard_normal((5, 3))
        if log_probs:
            x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        return make(), x, np.array([0, 1, 2, 1, 0]), 2
    return case


def _elementwise(make: Callable[[], md.Loss], target: str = "uniform", pred: str = "normal") -> Case:
    def case(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
        x = rng.uniform(0.1, 0.9, (3, 4)) if pred == "uniform" else rng.standard_normal((3, 4))
        if target == "signs":
            return make(), x, rng.choice([-1.0, 1.0], (3, 4)), -1.0
        if target == "counts":
            return make(), x, rng.integers(0, 5, (3, 4)).astype(np.float64), 7.0
        if target == "probabilities":
            return make(), x, _probabilities(rng, (3, 4)), 0.25
        if target == "unit":
            return make(), x, rng.uniform(0.0, 1.0, (3, 4)), 0.0
        if target == "binary":
            return make(), x, rng.integers(0, 2, (3, 4)).astype(np.float64), 1.0
        return make(), x, rng.uniform(-1.0, 1.0, (3, 4)), 0.5
    return case


def _pairs(make: Callable[[], md.Loss]) -> Case:
    def case(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
        x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
        signs = np.array([1.0, -1.0, 1.0, -1.0])
        if isinstance(make(), md.MarginRankingLoss):
            signs = np.repeat(signs[:, None], 3, axis=1)
        return make(), (x1, x2), signs, -1.0
    return case


def _gaussian(rng: np.random.Generator) -> tuple[md.Loss, Any, np.ndarray, Any]:
    mean, var = rng.standard_normal((4, 3)), rng.uniform(0.5, 2.0, (4, 3))
    return md.GaussianNLLLoss(), (mean, var), rng.standard_normal((4, 3)), 3.0


CASES: dict[str, Case] = {
    "CrossEntropy-probabilities": _ce_probabilities(),
    "CrossEntropy-probabilities-smoothing": _ce_probabilities(label_smoothing=0.2),
    "CrossEntropy-probabilities-weight": _ce_probabilities(weight=[1.0, 2.0, 0.5]),
    "CrossEntropy-probabilities-smoothing-weight": _ce_probabilities(label_smoothing=0.1, weight=[1.0, 2.0, 0.5]),
    "CrossEntropy-probabilities-sum": _ce_probabilities(reduction="sum"),
    "CrossEntropy-probabilities-positions": _ce_positions((2, 3, 2, 2)),
    "CrossEntropy-probabilities-one-position": _ce_positions((4, 3, 1)),  # (rows: a view of y_true)
    "CrossEntropy-probabilities-float32": _ce_positions((4, 3), np.float32),
    "CrossEntropy-labels": _labels(md.CrossEntropyLoss),
    "CrossEntropy-labels-weight": _labels(lambda: md.CrossEntropyLoss(weight=[1.0, 2.0, 0.5])),
    "CrossEntropy-labels-smoothing": _labels(lambda: md.CrossEntropyLoss(label_smoothing=0.2)),
    "CrossEntropy-labels-ignore": _labels(lambda: md.CrossEntropyLoss(ignore_index=1)),
    "NLL-labels": _labels(md.NLLLoss, log_probs=True),
    "NLL-labels-weight": _labels(lambda: md.NLLLoss(weight=[1.0, 2.0, 0.5]), log_probs=True),
    "MultiMargin": _labels(md.MultiMarginLoss),
    "BCE": _elementwise(md.BCELoss, "unit", pred="uniform"),
    "BCEWithLogits": _elementwise(md.BCEWithLogitsLoss, "unit"),
    "BCEWithLogits-pos_weight": _elementwise(lambda: md.BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 0.5, 3.0]),
                                             "unit"),
    "KLDiv": _elementwise(lambda: md.KLDivLoss("batchmean"), "probabilities"),
    "KLDiv-log-target": _elementwise(lambda: md.KLDivLoss("batchmean", log_target=True), "uniform"),
    "PoissonNLL": _elementwise(md.PoissonNLLLoss, "counts"),
    "PoissonNLL-full": _elementwise(lambda: md.PoissonNLLLoss(full=True), "counts"),
    "MultiLabelSoftMargin": _elementwise(md.MultiLabelSoftMarginLoss, "binary"),
    "SoftMargin": _elementwise(md.SoftMarginLoss, "signs"),
    "HingeEmbedding": _elementwise(md.HingeEmbeddingLoss, "signs"),
    "MSE": _elementwise(md.MSELoss),
    "L1": _elementwise(md.L1Loss),
    "Huber": _elementwise(md.HuberLoss),
    "SmoothL1": _elementwise(md.SmoothL1Loss),
    "HalfSquared": _elementwise(md.HalfSquaredError),
    "GaussianNLL": _gaussian,
    "MarginRanking": _pairs(md.MarginRankingLoss),
    "CosineEmbedding": _pairs(md.CosineEmbeddingLoss),
}


def _gradients(grad: Any) -> list[np.ndarray]:
    return [np.array(g) for g in (grad if isinstance(grad, tuple) else (grad,))]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_refilling_the_target_buffer_before_backward_keeps_the_gradient(name: str, seed: int) -> None:
    """The reference gradient of (y_pred, y); a second forward on the same buffer y, which the caller then refills
    with the next batch's targets before the backward: the backward is still the reference."""
    loss, y_pred, y, refill = CASES[name](np.random.default_rng(seed))
    loss(y_pred, y)
    reference = _gradients(loss.backward())
    before = y.copy()
    loss(y_pred, y)
    y[...] = refill  # the next batch's targets, written into the same buffer
    assert not np.array_equal(y, before)  # (the refill changes the targets)
    for got, want in zip(_gradients(loss.backward()), reference, strict=True):
        np.testing.assert_array_equal(got, want)


def test_cross_entropy_probability_targets_after_a_refill_by_hand() -> None:
    """The brief's case in closed form: uniform targets 1/3, gradient (softmax - 1/3) / N, whatever y holds
    at the backward."""
    logits = np.random.default_rng(0).standard_normal((4, 3))
    y = np.full((4, 3), 1 / 3)
    loss = md.CrossEntropyLoss()
    loss(logits, y)
    y[:] = [1.0, 0.0, 0.0]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.backward(), (p - 1 / 3) / 4, rtol=1e-12, atol=1e-15)
