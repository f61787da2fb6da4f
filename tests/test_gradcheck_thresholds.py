"""The gradient checker's thresholds, each pinned by a case just past it (a mutation review found them free to
move): the batch-permutation (stale cache) check on a batch of 2, on an output of shape (N,) and on a cache off
by 1e-4 of the gradient; the "ignores its grad_output" diagnosis beside a failing loss parameter, and not for a
backward affine in grad_output; and the finer-step confirmation of failures at |w| > 1 (``Steep``: a cost that changes
on a scale far below the default step eps |w|): the tolerance and curvature a verdict there may have, the round-off
it allows (the element's own, 4 deviations, never above the tensor's), and the finer steps' spacing (``NoisySteep``:
round-off of a fixed size next to a cost's curvature leaves a narrow window of steps).  Each test fails when that one
threshold moves (checked by applying each mutant of the review); none changes on main's code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md

R = np.random.default_rng
REVERSED = "the backward after a forward on the batch reversed gave another dCost/d"
IGNORED = "the backward ignores its grad_output"


def _failing(report: md.GradientReport) -> dict[str, list[str]]:
    return {r.name: r.problems for r in report.results if not r.passed}


# ------------------------------------------------------------------------------------- the stale cache check
class CacheOnce(md.Layer):
    """Bug: y = x W with x cached only at the first forward ever."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None
        self.W = md.Parameter(np.linspace(0.5, 1.5, 9).reshape(3, 3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._x is None:
            self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += self._x.T @ grad_output
        return grad_output @ self.W.data.T


class CacheOnceSum(md.Layer):
    """Bug: y = x w, (N, 3) -> (N,), with x cached only at the first forward ever."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None
        self.w = md.Parameter(np.array([0.5, -1.0, 1.5]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._x is None:
            self._x = x
        return x @ self.w.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.w.grad += self._x.T @ grad_output
        return np.outer(grad_output, self.w.data)


def test_a_stale_cache_fails_on_a_batch_of_two() -> None:
    """Two samples are the fewest the reversal can tell apart (one is skipped: test_gradcheck_stale_cache.py)."""
    x = R(0).normal(size=(2, 3))
    layer = CacheOnce()
    layer(x)
    report = md.GradientChecker(layer, inputs=x).run()
    assert list(_failing(report)) == ["W"], str(report)
    assert report["W"].failed == 0 and report["W"].problems[0].startswith(REVERSED + "W than")


def test_a_stale_cache_fails_for_an_output_of_one_value_per_sample() -> None:
    """The output (N,) is reversed with the batch like one of (N, D)."""
    x = R(1).normal(size=(4, 3))
    layer = CacheOnceSum()
    layer(x)
    report = md.GradientChecker(layer, inputs=x).run()
    assert list(_failing(report)) == ["w"], str(report)
    assert report["w"].failed == 0 and report["w"].problems[0].startswith(REVERSED + "w than")


def test_a_stale_cache_off_by_1e_4_of_the_gradient_fails() -> None:
    """The batch is a palindrome up to 1e-4: the cache made at the first forward holds the reversed batch but for
    that noise, so the gradient after the reversed forward is off by ~1e-4 of the largest (float64 round-off of
    the reversal is ~1e-16; the comparison allows 1e-5)."""
    rng = R(2)
    a, b = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    x = np.concatenate([a, b, a]) + 1e-4 * rng.normal(size=(3, 3))
    layer = CacheOnce()
    layer(x)
    report = md.GradientChecker(layer, inputs=x).run()
    assert list(_failing(report)) == ["W"], str(report)
    (problem,) = report["W"].problems
    assert problem.startswith(REVERSED + "W than") and report["W"].failed == 0
    difference = float(problem.split("max |difference| ")[1].split(",")[0])
    largest = float(problem.split("largest gradient ")[1].split(")")[0])
    assert 3e-5 < difference / largest < 3e-4, problem


# ---------------------------------------------------------------------------- "ignores its grad_output"
class OnesDx(md.Layer):
    """Bug: y = x W, its dx computed from ones in place of grad_output."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(R(3).normal(size=(3, 2)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += self._x.T @ grad_output
        return np.ones_like(grad_output) @ self.W.data.T


class ScaledSquares(md.Loss):
    """mean((y_pred - y_true)**2) * exp(log_s) with a learnable log-scale; its gradient is wrong (off by 1.5)."""

    def __init__(self) -> None:
        self.log_s = md.Parameter(np.array([0.2]))
        self._c: Any = None

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        d = y_pred - y_true
        self._c = d
        return float(np.mean(d * d) * np.exp(self.log_s.data[0]))

    def backward(self) -> np.ndarray:
        d = self._c
        s = np.exp(self.log_s.data[0])
        self.log_s.grad += np.array([1.5 * np.mean(d * d) * s])
        result: np.ndarray = 2 * d / d.size * s
        return result


def test_a_failing_loss_parameter_leaves_the_diagnosis_of_the_models_tensors() -> None:
    """The loss's parameter is no model tensor: the doubled grad_output's passes look only at the model's."""
    rng = R(4)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    report = md.GradientChecker(OnesDx(), loss=ScaledSquares(), inputs=x, targets=t).run()
    assert sorted(_failing(report)) == ["input", "loss.log_s"], str(report)
    diagnosis = report["input"].diagnosis
    assert diagnosis is not None and diagnosis.startswith(IGNORED), str(report)
    assert IGNORED not in (report["loss.log_s"].diagnosis or "")


class TanhPlusOne(md.Layer):
    """Bug: y = tanh(x), its dx = grad_output (1 - y**2) + 1: affine in grad_output, not linear -- it follows
    grad_output, if by little (grad_output ~ 1e-2 here, next to the 1 added)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._y is not None
        return grad_output * (1 - self._y ** 2) + 1.0


def test_a_backward_affine_in_grad_output_is_not_said_to_ignore_it() -> None:
    rng = R(5)
    x, t = rng.normal(size=(8, 10)), rng.normal(size=(8, 10))
    report = md.GradientChecker(TanhPlusOne(), loss=md.MSELoss(), inputs=x, targets=t).run()
    assert list(_failing(report)) == ["input"], str(report)
    # (its doubled grad_output moves the gradient by ~1% of it: followed, not ignored)
    assert IGNORED not in str(report)


# ------------------------------------------------------------------- the finer steps for |w| > 1
class Steep(md.Layer):
    """y = tanh(k (x - c)) elementwise at k (x - c) = 0.5, x ~ 1000: the cost changes on a scale 1/k far below the
    default step eps |x| = 0.1 (saturated there), so a failure at that step is judged again on finer steps;
    ``d``: dx off by the factor 1 + d (a bug for d != 0)."""

    def __init__(self, x: np.ndarray, k: float, d: float = 0.0) -> None:
        super().__init__()
        self.k, self.d = k, d
        self._c = x - 0.5 / k
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(self.k * (x - self._c))
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._y is not None
        return (1 + self.d) * grad_output * self.k * (1 - self._y ** 2)


STEEP_X = 1000.0 + np.array([[0.0, 0.25, 0.5, 0.75]])


def _steep(k: float, d: float, safety: float = 10.0) -> md.GradientReport:
    return md.GradientChecker(Steep(STEEP_X, k, d), inputs=STEEP_X, safety=safety).run()


@pytest.mark.parametrize("k", [1.4e4, 1.8e4])
def test_a_finer_step_verdict_needs_a_cost_linear_within_1e_4_of_the_slope(k: float) -> None:
    """safety=2: a verdict whose tolerance, 2 x its bound, is within 1e-3 of the slope may still come from a step
    the cost curves on by up to 5e-4 of the slope; one finer (truncation 16-fold smaller) judges dx 3e-4 off
    wrong.  (At the default safety 10, the tolerance's 1e-3 alone keeps the truncation below 1e-4.)"""
    assert _steep(k, 0.0, safety=2.0).passed
    report = _steep(k, 3e-4, safety=2.0)
    assert not report.passed and report["input"].failed == 4, str(report)
    assert "0 agree and 4 fail on the largest step where the cost is linear" in str(report)


@pytest.mark.parametrize("k", [2.5e4, 3.2e4])
def test_a_finer_step_verdict_proves_within_1e_3_of_the_slope_whatever_the_safety(k: float) -> None:
    """safety=100 (a loose check): on the finer steps a verdict counts only if its tolerance, 100 x its bound,
    is within 1e-3 of the slope, so dx 0.3% off still fails there (a bound of 1e-4 of the slope would let 1% by)."""
    assert _steep(k, 0.0, safety=100.0).passed
    report = _steep(k, 3e-3, safety=100.0)
    assert not report.passed and report["input"].failed == 4, str(report)


@pytest.mark.parametrize("k", [1.6e4, 2.8e4, 1e5])
def test_a_gradient_1e_3_off_fails_on_the_finer_steps(k: float) -> None:
    assert _steep(k, 0.0).passed
    report = _steep(k, 1e-3)
    assert not report.passed and report["input"].failed == 4, str(report)
    assert report["input"].diagnosis is not None and "(1 + 1.00e-03) x numerical" in report["input"].diagnosis


class _BatchNorm(md.Layer):
    """Batch normalisation of (N, D) without parameters, its dx scaled by ``factor`` (a bug for factor != 1); as
    in test_gradcheck_large_offset.py."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        mu = x.mean(axis=0)
        inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=0) + 1e-5)
        xhat = (x - mu) * inv
        self._cache = (xhat, inv)
        return xhat

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._cache is not None
        xhat, inv = self._cache
        g = grad_output
        return self.factor * inv * (g - xhat * (g * xhat).mean(axis=0) - g.mean(axis=0))


@pytest.mark.parametrize("factor", [1.001, 1.05])
@pytest.mark.parametrize("offset", [3e5, 1e6])
def test_batch_norm_on_large_offset_with_dx_off_fails(offset: float, factor: float) -> None:
    """Offset 1e6, spread 1e-3: the default step saturates the cost, the finer steps judge dx; 0.1% off fails."""
    x = offset + 1e-3 * R(0).normal(size=(7, 4))
    model = md.Sequential(_BatchNorm(factor), md.Dense(4, 2, rng=0))
    report = md.GradientChecker(model, inputs=x).run()
    assert [r.name for r in report.results if not r.passed] == ["input"], str(report)
    assert report["input"].failed > 0


def _hashed_noise(x: np.ndarray) -> np.ndarray:
    """Uniform in [-0.5, 0.5), a fixed pseudo-random function of each value's bits (splitmix64's finalizer): round-off
    that is white along any line, however finely spaced, and the same at every evaluation."""
    z = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = (z ^ (z >> np.uint64(31))) >> np.uint64(11)
    result: np.ndarray = z.astype(np.float64) / 2.0 ** 53 - 0.5
    return result


class NoisySteep(Steep):
    """:class:`Steep` whose output holds round-off of ``sigma`` (as a computation in a lower precision would): the
    finer steps are bounded above by the cost's curvature and below by that round-off."""

    def __init__(self, x: np.ndarray, k: float, sigma: float, d: float = 0.0) -> None:
        super().__init__(x, k, d)
        self.sigma = sigma

    def forward(self, x: np.ndarray) -> np.ndarray:
        return super().forward(x) + self.sigma * _hashed_noise(x)


def _noisy(seed: int, k: float, sigma: float, d: float = 0.0, safety: float = 10.0) -> md.GradientReport:
    x = STEEP_X + 0.01 * seed
    return md.GradientChecker(NoisySteep(x, k, sigma, d), inputs=x, safety=safety).run()


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_a_noisy_right_layer_passes_with_its_round_off_allowed_in_full(seed: int) -> None:
    """The element's round-off is 4 deviations of its measured noise: with safety=2, a tighter allowance fails a
    right gradient on the noise alone."""
    report = _noisy(seed, 1.4e4, 1e-6, safety=2.0)
    assert report.passed, str(report)


def test_a_noisy_layer_no_finer_step_resolves_is_skipped_not_judged() -> None:
    """Noise of 1e-6 next to a slope curved on 1e-4: on no finer step is the verdict both linear and within 1e-3 of
    the slope, with the round-off allowed in full; the elements are skipped as at a kink."""
    report = _noisy(0, 1.4e4, 1e-6)
    assert report.passed and report["input"].skipped == 4, str(report)


def test_a_narrow_window_of_finer_steps_is_not_stepped_over() -> None:
    """Noise of 1e-7 next to a slope curved on 2e-5: the steps where the cost is linear and the round-off small are
    few (h / 4**k finds them; h / 64**k would step over them and skip every element); dx 0.3% off fails there."""
    right = _noisy(0, 5e4, 1e-7)
    assert right.passed and right["input"].skipped == 0 and right["input"].zoomed == 4, str(right)
    wrong = _noisy(0, 5e4, 1e-7, d=3e-3)
    assert not wrong.passed and wrong["input"].failed == 4, str(wrong)


def test_an_element_noisier_on_its_own_line_is_judged_with_the_tensors_round_off() -> None:
    """The element's own round-off (8 costs on a line 16 ulps apart) is used only where it is below the tensor's:
    here one element's measures 4.7e-7 against the tensor's 2.6e-7 (the same noise, measured on fewer costs), and
    with its own no finer step would prove within 1e-3 of the slope -- it would be skipped, and dx 0.4% off pass."""
    assert _noisy(1, 3e3, 3e-7).passed
    report = _noisy(1, 3e3, 3e-7, d=4e-3)
    assert not report.passed and report["input"].failed == 1 and report["input"].skipped == 3, str(report)


# ------------------------------------------------------------------------ the cliff search at a low safety
class Tanh(md.Layer):
    """Right: y = tanh(k (x - c)), saturated within a step far below the default eps |x| at x ~ 1000."""

    def __init__(self, k: float, c: np.ndarray, factor: float = 1.0) -> None:
        super().__init__()
        self.k, self.factor = k, factor
        self.register_buffer("c", c)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(self.k * (x - self.c))
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self.k * (1 - self._y ** 2) * self.factor


STEEP_K = [223872.11385683378, 2.5e5, 3e5, 1e5]


@pytest.mark.parametrize("k", STEEP_K)
@pytest.mark.parametrize("safety", [2.0, 3.0, 10.0])
def test_a_saturated_step_is_not_taken_for_linear_at_a_low_safety(k: float, safety: float) -> None:
    """A step whose cost change is below ~16 round-offs cannot show a saturated cost as curved: the cliff search
    took such a step (between 4 * safety and 16 round-offs, a gap below safety 4.1) for linear and judged a
    right gradient there (analytic 1.85e4, numerical 78: FAIL at safety 2 and 3).  Now no element fails, and a
    gradient 1% off still does."""
    x = 1000.0 + np.array([[0.0, 0.25, 0.5, 0.75]])
    report = md.GradientChecker(Tanh(k, x - 0.5 / k), inputs=x, safety=safety).run()
    assert report.passed, report
    (result,) = report.results
    assert result.checked == 4 and result.failed == 0
    wrong = md.GradientChecker(Tanh(k, x - 0.5 / k, factor=1.01), inputs=x, safety=safety).run()
    assert not wrong.passed and wrong.results[0].failed >= 1, wrong
