"""GaussianNLLLoss, the loss of a model's two outputs (mean, var): its formula by loops (clamp, full,
reductions, every accepted var shape), PyTorch's clamp rule for the gradient, the gradient checker behind
two-output models, fit learning heteroscedastic noise, the metrics of the means, dtypes, refusals, and
PyTorch's values when it is installed."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok
from minidl.training import MeanSquaredError


def assert_refusals_keep_the_last_pass(loss: md.Loss, fresh: md.Loss, cases: list[tuple[Any, Any, type, str]],
                                       grads: tuple[np.ndarray, ...]) -> None:
    """Each case ``(y_pred, y_true, error, message)`` is refused by ``loss`` (whose last good forward gave
    the gradients ``grads``, still its backward's after the refusal) and by a ``fresh`` loss, which then has
    nothing cached.  (Shared with the other losses of several predictions.)"""
    for y_pred, y_true, error, message in cases:
        with pytest.raises(error, match=message):
            loss(y_pred, y_true)
        for g, kept in zip(loss.backward(), grads, strict=True):
            np.testing.assert_array_equal(g, kept)  # still the last good forward's gradients
        with pytest.raises(error, match=message):
            fresh(y_pred, y_true)
        with pytest.raises(md.BackwardBeforeForwardError):
            fresh.backward()  # nothing cached by a refused forward

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)

#: (mean's shape, var's shape): every kind PyTorch accepts
SHAPES = [((4, 3), (4, 3)),  # one variance per element
          ((4, 3), (4,)),  # the mean's shape without its last axis
          ((4, 3), (4, 1)),  # shared along the last axis
          ((4, 3), (1, 3)),  # shared along the batch: one per feature
          ((2, 3, 4), (2, 1, 4)),  # shared along a middle axis
          ((5,), ()),  # one variance for a vector of means
          ((5,), (1,)),
          ((5,), (5,)),
          ((), ())]  # a scalar


def by_loops(mean: np.ndarray, var: np.ndarray, t: np.ndarray, full: bool, eps: float,
             reduction: str) -> tuple[float, np.ndarray, np.ndarray]:
    """The loss and its gradients element by element, with PyTorch's straight-through clamp."""
    shaped = var.reshape((*var.shape, 1)) if var.shape == mean.shape[:-1] and var.shape != mean.shape else var
    terms, dmean, dvar = [], np.zeros(mean.shape), np.zeros(shaped.shape)
    for index in np.ndindex(*mean.shape):
        at = tuple(0 if s == 1 else i for i, s in zip(index, shaped.shape, strict=True))
        v = max(float(shaped[at]), eps)
        d = float(mean[index]) - float(t[index])
        terms.append(0.5 * (math.log(v) + d * d / v) + (HALF_LOG_TWO_PI if full else 0.0))
        dmean[index] = d / v
        dvar[at] += 0.5 * (1 / v - d * d / (v * v))
    scale = 1 / mean.size if reduction == "mean" else 1.0
    return math.fsum(terms) * scale, dmean * scale, dvar.reshape(var.shape) * scale


@pytest.mark.parametrize(("mean_shape", "var_shape"), SHAPES)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_its_formula_for_every_variance_shape(mean_shape: tuple[int, ...], var_shape: tuple[int, ...],
                                                      full: bool, reduction: str) -> None:
    rng = np.random.default_rng(len(mean_shape) + len(var_shape))
    mean, t = rng.normal(size=mean_shape), rng.normal(size=mean_shape)
    var = rng.uniform(0.05, 2.0, var_shape)
    if var.size > 1:
        var.flat[0] = 3e-7  # below eps: clamped
    loss = md.GaussianNLLLoss(full=full, reduction=reduction)
    value = loss((mean, var), t)
    dmean, dvar = loss.backward()
    expected, emean, evar = by_loops(mean, var, t, full, 1e-6, reduction)
    assert value == pytest.approx(expected, rel=1e-13)
    assert dmean.shape == mean.shape and dvar.shape == var.shape
    np.testing.assert_allclose(dmean, emean, rtol=1e-12)
    np.testing.assert_allclose(dvar, evar, rtol=1e-12)


def test_hand_computed_values() -> None:
    loss = md.GaussianNLLLoss()
    assert loss((np.zeros(1), np.ones(1)), np.ones(1)) == 0.5  # (log 1 + 1^2 / 1) / 2
    dmean, dvar = loss.backward()
    assert dmean.tolist() == [-1.0] and dvar.tolist() == [0.0]  # var = d^2 is the best variance
    e = math.e
    assert loss((np.array([2.0, 0.0]), np.array([e, 4.0])), np.array([1.0, 0.0])) == \
        pytest.approx(((1 + 1 / e) / 2 + math.log(4) / 2) / 2, rel=1e-15)
    full = md.GaussianNLLLoss(full=True, reduction="sum")
    assert full((np.zeros(3), np.ones(3)), np.zeros(3)) == pytest.approx(3 * 0.5 * math.log(2 * math.pi), rel=1e-15)
    # the standard normal's density at 1: exactly the negative log of the pdf
    assert md.GaussianNLLLoss(full=True)((np.zeros(1), np.ones(1)), np.ones(1)) == \
        pytest.approx(-math.log(math.exp(-0.5) / math.sqrt(2 * math.pi)), rel=1e-15)


def test_the_clamp_as_pytorch_flat_loss_but_the_gradient_at_eps() -> None:
    """Below eps the loss no longer depends on var, yet (PyTorch's rule: the clamp is not
    differentiated) var receives the gradient at eps, unchanged."""
    eps = 1e-3
    loss = md.GaussianNLLLoss(eps=eps, reduction="sum")
    mean, t = np.array([0.5, 0.0, 0.01]), np.zeros(3)
    at_eps = loss((mean, np.full(3, eps)), t)
    g_eps = loss.backward()
    for below in (0.0, 1e-9, 0.5 * eps):
        assert loss((mean, np.full(3, below)), t) == at_eps
        dmean, dvar = loss.backward()
        np.testing.assert_array_equal(dmean, g_eps[0])
        np.testing.assert_array_equal(dvar, g_eps[1])
    d = mean
    np.testing.assert_allclose(dvar, 0.5 * (1 / eps - d**2 / eps**2), rtol=1e-14)
    assert dvar[0] < 0 < dvar[1]  # pushed up where d^2 > eps, down (further below eps) where d^2 < eps
    np.testing.assert_allclose(dmean, d / eps, rtol=1e-14)
    # eps is taken in the dtype the loss is computed in: float32's 1e-6 for float32, not float64's, and
    # float32's for float16 too (PyTorch's float16 clamp takes float16's 1e-6, 1.0133e-6: 1.3% apart)
    floor = float(np.float32(1e-6))
    for dtype in (np.float32, np.float16):
        loss = md.GaussianNLLLoss()
        value = loss((np.ones(1, dtype), np.zeros(1, dtype)), np.zeros(1, dtype))
        assert value == pytest.approx(0.5 * (math.log(floor) + 1 / floor), rel=1e-6)
    assert float(np.float16(1e-6)) == pytest.approx(floor * 1.0133, rel=1e-4)


class MeanAndVariance(md.Model):
    """x (N, 2) -> (mean, var) through a shared Tanh trunk; var (a Softplus head) of the kind asked:
    ``"same"`` (N, d), ``"fewer"`` (N,), ``"last"`` (N, 1), ``"shared"`` (1, d), a Softplus of a
    parameter of its own (no input: one variance per output feature, broadcast along the batch)."""

    def __init__(self, d: int, kind: str, rng: int = 0) -> None:
        super().__init__()
        self.kind, self.d = kind, d
        self.trunk = md.Sequential(md.Dense(2, 5, rng=rng), md.Tanh())
        self.mean_head = md.Dense(5, d, rng=rng + 1)
        if kind == "shared":
            self.raw = md.Parameter(np.random.default_rng(rng + 2).normal(size=(1, d)))
        else:
            self.var_head = md.Sequential(md.Dense(5, d if kind == "same" else 1, rng=rng + 2), md.Softplus())

    def forward(self, x: Any) -> Any:
        h = self.trunk(x)
        mean = self.mean_head(h)
        if self.kind == "shared":
            self._sigmoid = 1 / (1 + np.exp(-self.raw.data))
            return mean, np.logaddexp(0, self.raw.data)  # softplus
        var = self.var_head(h)
        return mean, var[:, 0] if self.kind == "fewer" else var

    def backward(self, grad_output: Any) -> Any:
        dmean, dvar = grad_output
        dh = self.mean_head.backward(dmean)
        if self.kind == "shared":
            self.raw.grad += dvar * self._sigmoid
        else:
            dh = dh + self.var_head.backward(dvar[:, None] if self.kind == "fewer" else dvar)
        return self.trunk.backward(dh)


@pytest.mark.parametrize("kind", ["same", "fewer", "last", "shared"])
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_behind_a_two_output_model(kind: str, d: int, seed: int) -> None:
    options = [{}, {"full": True, "reduction": "sum"}][seed]
    loss = md.GaussianNLLLoss(**options)  # type: ignore[arg-type]
    x = np.random.default_rng(seed).normal(size=(6, 2))
    model = MeanAndVariance(d, kind, rng=seed)
    _, var = model(x)
    assert var.shape == {"same": (6, d), "fewer": (6,), "last": (6, 1), "shared": (1, d)}[kind]
    assert float(np.min(var)) > 0.05  # well above eps: the loss is smooth in var there
    report = assert_gradients_ok(model, inputs=x, loss=loss, seed=seed)  # targets drawn by the loss
    checked = {r.name for r in report.results if r.checked}
    assert {"input", "trunk.0.W", "mean_head.W"} <= checked
    assert ("raw" if kind == "shared" else "var_head.0.W") in checked


def test_gradient_checker_on_a_variance_held_below_eps_points_at_the_clamp() -> None:
    """A variance parameter below eps: the cost is flat in it, yet backward passes the gradient at eps
    (PyTorch's clamp), so the check fails; the diagnosis names a clamp as a cause, beside a stale copy."""

    class FixedVariance(md.Model):
        def __init__(self, v0: float) -> None:
            super().__init__()
            self.mean_head = md.Dense(2, 3, rng=1)
            self.v = md.Parameter(np.full((1, 3), v0))

        def forward(self, x: Any) -> Any:
            return self.mean_head(x), self.v.data

        def backward(self, grad_output: Any) -> Any:
            dmean, dvar = grad_output
            self.v.grad += dvar
            return self.mean_head.backward(dmean)

    x = np.random.default_rng(0).normal(size=(8, 2))
    loss = md.GaussianNLLLoss(eps=0.1)
    assert md.GradientChecker(FixedVariance(0.3), inputs=x, loss=loss, seed=1).run().passed
    report = md.GradientChecker(FixedVariance(0.05), inputs=x, loss=loss, seed=1).run()
    assert not report.passed and report["mean_head.W"].passed and report["input"].passed
    diagnosis = report["v"].diagnosis
    assert diagnosis is not None and diagnosis.startswith("the cost does not depend on this parameter")
    assert "a clamp whose backward still passes a gradient on" in diagnosis


def test_gradient_checker_with_given_targets_and_a_three_dimensional_mean() -> None:
    """mean (N, 2, 3) and var (N, 1, 3): a variance shared along the middle axis."""

    class Grid(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.mean_head = md.Dense(4, 6, rng=0)
            self.var_head = md.Sequential(md.Dense(4, 3, rng=1), md.Softplus())

        def forward(self, x: Any) -> Any:
            return self.mean_head(x).reshape(-1, 2, 3), self.var_head(x)[:, None, :]

        def backward(self, grad_output: Any) -> Any:
            dmean, dvar = grad_output
            return self.mean_head.backward(dmean.reshape(-1, 6)) + self.var_head.backward(dvar[:, 0, :])

    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 2, 3))
    report = assert_gradients_ok(Grid(), inputs=x, loss=md.GaussianNLLLoss(), targets=t, seed=0)
    assert {"input", "mean_head.W", "var_head.0.W"} <= {r.name for r in report.results if r.checked}


def true_sigma(x: np.ndarray) -> np.ndarray:
    """The noise's standard deviation: 0.1 at x = -1 up to 0.5 at x = 1."""
    return 0.1 + 0.2 * (x + 1)


class Heteroscedastic(md.Model):
    """x (N, 1) -> (mean (N, 1), var (N, 1)): a Tanh trunk, a linear mean head, a Softplus variance head."""

    def __init__(self, hidden: int = 16, dtype: Any = np.float64) -> None:
        super().__init__()
        self.trunk = md.Sequential(md.Dense(1, hidden, rng=0, dtype=dtype), md.Tanh())
        self.mean_head = md.Dense(hidden, 1, rng=1, dtype=dtype)
        self.var_head = md.Sequential(md.Dense(hidden, 1, rng=2, dtype=dtype), md.Softplus())

    def forward(self, x: Any) -> Any:
        h = self.trunk(x)
        return self.mean_head(h), self.var_head(h)

    def backward(self, grad_output: Any) -> Any:
        dmean, dvar = grad_output
        return self.trunk.backward(self.mean_head.backward(dmean) + self.var_head.backward(dvar))


def test_fit_learns_the_noise_of_heteroscedastic_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2000, 1))
    sigma = true_sigma(x)
    y = np.sin(2 * x) + sigma * rng.standard_normal(x.shape)
    model = Heteroscedastic()
    history = model.fit(x, y, loss=md.GaussianNLLLoss(), optimizer=md.Adam(model.parameters(), lr=0.01),
                        epochs=40, batch_size=64, metrics=["mse", "mae"], verbose=0, rng=0)
    model.eval()
    grid = np.linspace(-0.8, 0.8, 9)[:, None]
    mean, var = model(grid)
    # the learned standard deviation tracks the true one (0.14 to 0.46 on the grid) within 15%
    ratio = np.sqrt(var[:, 0]) / true_sigma(grid[:, 0])
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    assert var[-1, 0] / var[0, 0] > 7  # the true ratio: (0.46 / 0.14)^2 = 10.8
    assert np.all(np.diff(var[:, 0]) > 0)  # increasing with x, as the noise
    np.testing.assert_allclose(mean[:, 0], np.sin(2 * grid[:, 0]), atol=0.1)
    # the loss comes near its ideal, the entropy term E[log sigma] + 1/2 of the true noise
    ideal = float(np.mean(np.log(sigma))) + 0.5
    assert history.history["loss"][0] > ideal + 0.5
    assert abs(history.history["loss"][-1] - ideal) < 0.06
    # "mse" scored the means: near the noise's own variance, and what evaluate finds from the means
    assert history.history["mse"][-1] == pytest.approx(float(np.mean(sigma**2)), rel=0.1)
    scores = model.evaluate(x, y)  # the loss and metrics of the fit
    mean_all, _ = model(x)
    assert scores["mse"] == pytest.approx(float(np.mean((mean_all - y) ** 2)), rel=1e-12)
    assert scores["mae"] == pytest.approx(float(np.mean(np.abs(mean_all - y))), rel=1e-12)
    assert scores["loss"] == pytest.approx(md.GaussianNLLLoss()(model(x), y), rel=1e-12)


def test_metrics_score_the_means_and_accuracy_is_refused() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 1)), rng.normal(size=(20, 1))
    model = Heteroscedastic(4)
    with pytest.raises(ValueError, match=r"fit: metrics=\['accuracy'\] with GaussianNLLLoss: its model predicts "
                                         r"real values \(means and variances\), not classes; use 'mse' or 'mae'"):
        model.fit(x, y, loss=md.GaussianNLLLoss(), optimizer=md.SGD(model.parameters(), lr=0.01),
                  metrics=["accuracy"], verbose=0)
    # a Metric object is taken as given, and still refuses the tuple by name; a callable gets the tuple
    with pytest.raises(md.ShapeError, match=r"mse: the model returns 2 outputs \(a tuple\)"):
        model.evaluate(x, y, loss=md.GaussianNLLLoss(), metrics=[MeanSquaredError()])

    def spread(pred: Any, t: np.ndarray) -> float:
        return float(np.mean(pred[1]))

    scores = model.evaluate(x, y, loss=md.GaussianNLLLoss(), metrics=["MSE", spread], batch_size=7)
    mean, var = model(x)
    assert scores["MSE"] == pytest.approx(float(np.mean((mean - y) ** 2)), rel=1e-12)
    assert scores["spread"] == pytest.approx(float(np.mean(var)), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtypes_are_kept(dtype: type) -> None:
    rng = np.random.default_rng(4)
    for mean_shape, var_shape in SHAPES[:4]:
        mean, t, var = rng.normal(size=mean_shape), rng.normal(size=mean_shape), rng.uniform(0.2, 2, var_shape)
        loss, ref = md.GaussianNLLLoss(), md.GaussianNLLLoss()
        value = loss((mean.astype(dtype), var.astype(dtype)), t)
        dmean, dvar = loss.backward()
        assert isinstance(value, float) and dmean.dtype == dtype and dvar.dtype == dtype
        expected = ref((mean.astype(dtype).astype(np.float64), var.astype(dtype).astype(np.float64)),
                       t.astype(dtype).astype(np.float64))
        # float16 is computed in float32: the loss as float32's (a version computing in float16 is 1e-3
        # off), the gradients rounded once to float16 (a relative 2^-11 = 4.9e-4 at most)
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-7)
        tolerance = 1e-3 if dtype == np.float16 else 1e-6
        for g, r in zip((dmean, dvar), ref.backward(), strict=True):
            np.testing.assert_allclose(g, r, rtol=tolerance, atol=1e-7)


def test_refusals_change_nothing() -> None:
    loss = md.GaussianNLLLoss()
    mean, var, t = np.zeros((4, 3)), np.ones((4, 3)), np.ones((4, 3))
    before = loss((mean, var), t)
    grads = loss.backward()
    cases: list[tuple[Any, Any, type, str]] = [
        (mean, t, md.ShapeError, r"GaussianNLLLoss: y_pred is the pair \(mean, var\) of two arrays \(a model's two "
                                 r"outputs: the means and the variances\), got ndarray"),
        ((mean, var, var), t, md.ShapeError, r"got a tuple of 3"),
        ((mean, 1.0), t, md.DTypeError, r"var \(y_pred\[1\]\) must be an array of variances \(a model's output\), got "
                                        r"the number 1\.0; for one fixed variance pass np\.full_like\(mean, var\)"),
        ((mean, var.astype(np.float32)), t, md.DTypeError, "mean and var must have the same dtype, got float64 and "
                                                           "float32"),
        ((mean.astype(int), var), t, md.DTypeError, r"expected a floating-point y_pred\[0\] \(mean\), got dtype int"),
        ((mean, np.ones(3)), t, md.ShapeError, r"GaussianNLLLoss: var \(y_pred\[1\]\) of shape \(3,\) does not fit the "
                                               r"mean \(y_pred\[0\]\) of shape \(4, 3\): it must have the mean's "
                                               r"shape .* without the last axis \(4,\), .* e\.g\. \(4, 1\)"),
        ((mean, np.ones((1, 1))), t, md.ShapeError, r"of shape \(1, 1\) does not fit"),  # two broadcast axes
        ((mean, np.ones((4, 3, 1))), t, md.ShapeError, r"of shape \(4, 3, 1\) does not fit"),
        ((mean, var), np.ones((4, 1)), md.ShapeError, r"y_true must have the shape of the mean \(y_pred\[0\]\) "
                                                      r"\(4, 3\), got \(4, 1\)"),
        ((mean, var), np.array([["a"] * 3] * 4), md.DTypeError, "expected numeric y_true"),
        ((np.zeros((0, 3)), np.ones((0, 3))), np.ones((0, 3)), md.ShapeError,
         r"GaussianNLLLoss: empty prediction: mean \(y_pred\[0\]\) of shape \(0, 3\) has no elements"),
        # an empty var is named by the shape it does not fit; an empty mean with a var that fits it, by name
        ((mean, np.ones((4, 0))), t, md.ShapeError, r"GaussianNLLLoss: var \(y_pred\[1\]\) of shape \(4, 0\) does "
                                                    r"not fit the mean \(y_pred\[0\]\) of shape \(4, 3\)"),
        ((np.zeros((4, 0)), np.ones(4)), np.ones((4, 0)), md.ShapeError,
         r"GaussianNLLLoss: empty prediction: mean \(y_pred\[0\]\) of shape \(4, 0\) has no elements"),
    ]
    negative = var.copy()
    negative[2, 1] = -1e-9
    cases.append(((mean, negative), t, md.TargetError, r"GaussianNLLLoss: var \(y_pred\[1\]\) must be >= 0 "
                                                       r"\(variances\), got -1e-09 at index \(2, 1\); end the model's "
                                                       "variance head with Softplus"))
    for where in range(3):
        arrays = [mean.copy(), var.copy(), t.copy()]
        arrays[where][1, 2] = [np.nan, np.inf, -np.inf][where]
        what = ["y_pred\\[0\\] \\(mean\\)", "y_pred\\[1\\] \\(var\\)", "y_true"][where]
        cases.append(((arrays[0], arrays[1]), arrays[2], md.NonFiniteError,
                      rf"GaussianNLLLoss: {what} holds 1 NaN/inf value\(s\), the first at index \(1, 2\)"))
    assert_refusals_keep_the_last_pass(loss, md.GaussianNLLLoss(), cases, grads)
    assert loss((mean, var), t) == before
    # eps is a float in the predictions' dtype: one below float32's normal range is refused there only
    tiny = md.GaussianNLLLoss(eps=1e-40)
    with pytest.raises(ValueError, match=r"GaussianNLLLoss: eps 1e-40 is below float32's smallest normal number"):
        tiny((np.zeros(2, np.float32), np.zeros(2, np.float32)), np.ones(2, np.float32))
    assert tiny((np.zeros(2), np.full(2, 1e-40)), np.zeros(2)) == pytest.approx(math.log(1e-40) / 2, rel=1e-15)


def test_an_eps_the_dtype_cannot_hold_is_refused_by_name() -> None:
    """Above the dtype's largest finite value eps would be inf (an infinite loss, zero gradients, and fit
    blaming the learning rate): refused as the one below the smallest normal number, both worded for
    float16, whose eps is float32's, and neither warning nor caching anything."""
    args = (np.zeros(2), np.ones(2)), np.ones(2)
    huge = md.GaussianNLLLoss(eps=1e39)
    value = huge(*args)  # fine in float64
    grads = huge.backward()
    assert value == pytest.approx(0.5 * (math.log(1e39) + 1e-39), rel=1e-15)
    cases = [(np.float32, 1e39, r"GaussianNLLLoss: eps 1e\+39 is above float32's largest finite number 3\.403e\+38, "
                                r"where it would be inf; use a smaller eps"),
             (np.float16, 1e39, r"GaussianNLLLoss: eps 1e\+39 is above float32's largest finite number 3\.403e\+38 "
                                r"\(float16 predictions are computed in float32, eps included\), where it would be "
                                "inf"),
             (np.float16, 1e-40, r"GaussianNLLLoss: eps 1e-40 is below float32's smallest normal number 1\.175e-38 "
                                 r"\(float16 predictions are computed in float32, eps included\), where 1 / var "
                                 "overflows")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overflow encountered in cast" on the way
        for dtype, eps, message in cases:
            y_pred, y_true = (np.zeros(2, dtype), np.ones(2, dtype)), np.ones(2, dtype)
            fresh = md.GaussianNLLLoss(eps=eps)
            for loss in (fresh, huge) if eps == huge.eps else (fresh,):
                with pytest.raises(ValueError, match=message):
                    loss(y_pred, y_true)
            with pytest.raises(md.BackwardBeforeForwardError):
                fresh.backward()  # nothing cached
    for g, kept in zip(huge.backward(), grads, strict=True):
        np.testing.assert_array_equal(g, kept)  # still the last good forward's
    # float16 is computed in float32: an eps above float16's largest value 65504 works (PyTorch raises)
    loss = md.GaussianNLLLoss(eps=1e5)
    assert loss((np.zeros(1, np.float16), np.ones(1, np.float16)), np.ones(1, np.float16)) == \
        pytest.approx(0.5 * (math.log(1e5) + 1e-5), rel=1e-7)
    # fit says what is wrong, not "the loss is inf ... try a smaller learning rate"
    model = Heteroscedastic(4, dtype=np.float32)
    x = np.linspace(-1, 1, 10, dtype=np.float32)[:, None]
    with pytest.raises(ValueError, match=r"GaussianNLLLoss: eps 1e\+39 is above float32's largest finite number"):
        model.fit(x, np.zeros_like(x), loss=md.GaussianNLLLoss(eps=1e39), optimizer=md.SGD(model.parameters(), lr=0.1),
                  verbose=0)


def test_constructor_arguments() -> None:
    assert repr(md.GaussianNLLLoss()) == "GaussianNLLLoss(full=False, eps=1e-06, reduction='mean')"
    assert repr(md.GaussianNLLLoss(full=True, eps=0.01, reduction="sum")) == \
        "GaussianNLLLoss(full=True, eps=0.01, reduction='sum')"
    with pytest.raises(TypeError):
        md.GaussianNLLLoss(True)  # type: ignore[misc]  # keyword-only, as PyTorch's
    with pytest.raises(TypeError, match="GaussianNLLLoss: full must be a bool, got 'yes'"):
        md.GaussianNLLLoss(full="yes")  # type: ignore[arg-type]
    for eps in (0.0, -1e-6, float("nan"), float("inf"), "1e-6", True):
        with pytest.raises(ValueError, match="GaussianNLLLoss: eps must be a finite number > 0"):
            md.GaussianNLLLoss(eps=eps)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"GaussianNLLLoss: reduction must be one of \('mean', 'sum'\), got 'none'"):
        md.GaussianNLLLoss(reduction="none")
    with pytest.raises(md.BackwardBeforeForwardError, match=r"GaussianNLLLoss\.backward called before forward"):
        md.GaussianNLLLoss().backward()
    assert md.GaussianNLLLoss.several_predictions


def test_huge_values_overflow_quietly_and_backward_returns_new_arrays() -> None:
    loss = md.GaussianNLLLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss((np.array([3e38], np.float32), np.array([0.0], np.float32)), np.zeros(1)) == np.inf
        dmean, dvar = loss.backward()
        assert dmean[0] == np.inf and dvar[0] == -np.inf
    loss((np.ones(3), np.ones(3)), np.zeros(3))
    first, second = loss.backward(), loss.backward()
    first[0][:] = 7
    first[1][:] = 7
    np.testing.assert_array_equal(second[0], np.full(3, 1 / 3))
    np.testing.assert_array_equal(loss.backward()[1], second[1])
    # backward computes in place in arrays of its own, never in the cache: every var shape, every dtype
    rng = np.random.default_rng(9)
    for (mean_shape, var_shape), dtype in zip(SHAPES, [np.float64, np.float32, np.float16] * 3, strict=True):
        mean, var, t = (rng.uniform(0.2, 2, s).astype(dtype) for s in (mean_shape, var_shape, mean_shape))
        loss((mean, var), t)
        first = loss.backward()
        for again in (loss.backward(), loss.backward()):
            for g, f, p in zip(again, first, (mean, var), strict=True):
                assert type(g) is np.ndarray and g.shape == p.shape and g.dtype == dtype
                np.testing.assert_array_equal(g, f)
                assert not np.may_share_memory(g, f)


def test_the_callers_arrays_are_left_alone() -> None:
    rng = np.random.default_rng(8)
    mean, var, t = rng.normal(size=(3, 2)), np.array([[1e-9], [0.5], [2.0]]), rng.normal(size=(3, 2))
    copies = [a.copy() for a in (mean, var, t)]
    loss = md.GaussianNLLLoss()
    loss((mean, var), t)
    t[:] = 0  # a caller refilling its target buffer before the backward
    expected = by_loops(copies[0], copies[1], copies[2], False, 1e-6, "mean")
    for g, e in zip(loss.backward(), expected[1:], strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    for a, c in zip((mean, var), copies[:2], strict=True):
        np.testing.assert_array_equal(a, c)


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    cases = 0
    for t_index in range(60):
        mean_shape, var_shape = SHAPES[t_index % len(SHAPES)]
        full, reduction = bool(t_index % 3 == 0), ["mean", "sum"][t_index % 2]
        eps = float(rng.choice([1e-6, 1e-3, 0.5]))
        mean, t = rng.normal(size=mean_shape), rng.normal(size=mean_shape)
        var = rng.uniform(0.0, 2.0, var_shape)
        if var.size > 2:  # the clamp: zero, below eps, exactly eps
            var.flat[:3] = [0.0, eps / 3, eps]
        for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-6)):
            m, v, y = (a.astype(dtype) for a in (mean, var, t))
            ours = md.GaussianNLLLoss(full=full, eps=eps, reduction=reduction)
            value = ours((m, v), y)
            dmean, dvar = ours.backward()
            tm, tv = torch.tensor(m, requires_grad=True), torch.tensor(v, requires_grad=True)
            theirs = torch.nn.GaussianNLLLoss(full=full, eps=eps, reduction=reduction)(tm, torch.tensor(y), tv)
            theirs.backward()
            assert value == pytest.approx(theirs.item(), rel=rtol, abs=1e-12)
            np.testing.assert_allclose(dmean, tm.grad.numpy(), rtol=rtol, atol=1e-12)
            np.testing.assert_allclose(dvar, tv.grad.numpy(), rtol=rtol, atol=1e-12 if dtype == np.float64 else 1e-4)
            cases += 1
    assert cases == 120
    # the shapes PyTorch refuses, refused here too
    for mean_shape, var_shape in [((4, 3), (3,)), ((4, 3), (1, 1)), ((4, 3, 2), (4, 1, 1)), ((5,), (5, 1)),
                                  ((4, 3), (2, 3))]:
        with pytest.raises(ValueError, match="var is of incorrect size"):
            torch.nn.GaussianNLLLoss()(torch.zeros(mean_shape), torch.zeros(mean_shape), torch.ones(var_shape))
        with pytest.raises(md.ShapeError, match="does not fit the mean"):
            md.GaussianNLLLoss()((np.zeros(mean_shape), np.ones(var_shape)), np.zeros(mean_shape))
    with pytest.raises(ValueError, match="var has negative entry"):
        torch.nn.GaussianNLLLoss()(torch.zeros(2), torch.zeros(2), torch.tensor([1.0, -1.0]))
