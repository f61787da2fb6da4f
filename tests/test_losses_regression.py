"""HuberLoss and L1Loss: values against direct formulas, gradients, checks."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md


class Identity(md.Layer):
    """y = x, so that the checker's "input" gradient is exactly the loss's backward."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._shape)
        return grad_output


@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("shape, seed", [((6,), 0), ((4, 3), 1), ((2, 3, 4), 2)])
def test_huber_matches_the_piecewise_formula(delta: float, shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, t = rng.normal(scale=2.0, size=shape), rng.normal(size=shape)
    d = y - t
    per = np.array([0.5 * v * v if abs(v) <= delta else delta * (abs(v) - 0.5 * delta) for v in d.ravel()])
    mean, total = md.HuberLoss(delta=delta), md.HuberLoss(reduction="sum", delta=delta)
    assert mean(y, t) == pytest.approx(per.mean(), rel=1e-13)
    assert total(y, t) == pytest.approx(per.sum(), rel=1e-13)
    expected = np.array([v if abs(v) <= delta else delta * np.sign(v) for v in d.ravel()]).reshape(shape)
    np.testing.assert_allclose(mean.backward(), expected / d.size, rtol=1e-13)
    np.testing.assert_allclose(total.backward(), expected, rtol=1e-13)


def test_huber_is_mse_like_inside_and_l1_like_outside() -> None:
    loss = md.HuberLoss(reduction="sum")
    assert loss(np.array([0.5]), np.array([0.0])) == pytest.approx(0.125)
    assert loss(np.array([3.0]), np.array([0.0])) == pytest.approx(2.5)
    np.testing.assert_array_equal(loss.backward(), [1.0])
    assert repr(md.HuberLoss()) == "HuberLoss(reduction='mean', delta=1.0)"


@pytest.mark.parametrize("shape, seed", [((6,), 0), ((4, 3), 1), ((2, 3, 4), 2)])
def test_l1_matches_the_formula(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, t = rng.normal(size=shape), rng.normal(size=shape)
    mean, total = md.L1Loss(), md.L1Loss(reduction="sum")
    assert mean(y, t) == pytest.approx(np.abs(y - t).mean(), rel=1e-14)
    assert total(y, t) == pytest.approx(np.abs(y - t).sum(), rel=1e-14)
    np.testing.assert_array_equal(total.backward(), np.sign(y - t))
    np.testing.assert_allclose(mean.backward(), np.sign(y - t) / y.size, rtol=1e-15)


def test_l1_gradient_is_zero_where_prediction_equals_target() -> None:
    loss = md.L1Loss(reduction="sum")
    loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0]))
    np.testing.assert_array_equal(loss.backward(), [0.0, 1.0, -1.0])


@pytest.mark.parametrize("loss", [md.HuberLoss(), md.L1Loss()])
def test_float32_stays_float32(loss: md.Loss) -> None:
    y = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    loss(y, np.zeros((3, 4)))
    assert loss.backward().dtype == np.float32


def test_errors() -> None:
    with pytest.raises(md.ShapeError, match=r"HuberLoss: y_pred has shape \(3,\) but y_true has shape \(2,"):
        md.HuberLoss()(np.zeros(3), np.zeros(2))
    with pytest.raises(md.ShapeError, match="L1Loss"):
        md.L1Loss()(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        md.HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match="reduction"):
        md.L1Loss(reduction="avg")
    for loss in (md.HuberLoss(), md.L1Loss()):
        with pytest.raises(md.BackwardBeforeForwardError):
            loss.backward()


@pytest.mark.parametrize("make", [
    lambda: md.HuberLoss(), lambda: md.HuberLoss(reduction="sum", delta=0.5), lambda: md.L1Loss(),
    lambda: md.L1Loss(reduction="sum"),
])
@pytest.mark.parametrize("shape, seed", [((5, 1), 0), ((4, 3), 1), ((3, 2), 2)])
def test_gradient_checker(make: object, shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    loss = make()  # type: ignore[operator]
    # predictions and targets kept away from each other's kinks (|d| = 0 or |d| = delta)
    t = rng.normal(size=shape)
    y = t + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)
    y[np.isclose(np.abs(y - t), getattr(loss, "delta", -1.0), atol=0.05)] += 0.2
    report = md.GradientChecker(Identity(), loss=loss, inputs=y, targets=t, seed=seed).run()
    assert report.passed, str(report)
    report = md.GradientChecker(md.Dense(2, shape[1], rng=seed), loss=loss,
                                inputs=rng.normal(size=(shape[0], 2)), targets=t, seed=seed).run()
    assert report.passed, str(report)


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    y, t = rng.normal(scale=2, size=(4, 3)), rng.normal(size=(4, 3))
    for ours, theirs in ((md.HuberLoss(delta=0.7), torch.nn.HuberLoss(delta=0.7)),
                         (md.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"))):
        yt = torch.tensor(y, requires_grad=True)
        ref = theirs(yt, torch.tensor(t))
        ref.backward()
        assert ours(y, t) == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(ours.backward(), yt.grad.numpy(), rtol=1e-12)


def test_huber_of_huge_finite_errors_is_linear_without_overflow() -> None:
    """0.5 * d * d was computed for every element, and overflowed (a warning) where np.where then
    took the linear branch."""
    loss = md.HuberLoss(delta=1.0, reduction="sum")
    with np.errstate(over="raise"):
        value = loss(np.array([1e200, -1e200, 0.5]), np.zeros(3))
    assert value == pytest.approx(2e200 - 1.0 + 0.125, rel=1e-15)


@pytest.mark.parametrize("loss_type", [md.MSELoss, md.L1Loss, md.HuberLoss, md.HalfSquaredError])
def test_a_finite_target_beyond_float32_is_named_not_called_inf(loss_type: type) -> None:
    """A float64 target of 1e39 for a float32 prediction became inf in the cast (with a RuntimeWarning)
    and was reported as "NaN/inf"."""
    y = np.full((4, 3), 1.0)
    y[2, 1] = -1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning first
        with pytest.raises(md.TargetError, match=r"1 value\(s\) beyond float32's range .* at index \(2, 1\) "
                                                 r"\(-1e\+39\)"):
            loss_type()(np.zeros((4, 3), np.float32), y)
    y[2, 1] = np.inf  # a real inf is still named as one
    with pytest.raises(md.NonFiniteError, match=r"y_true holds 1 NaN/inf"):
        loss_type()(np.zeros((4, 3), np.float32), y)
    y[2, 1] = 3e38  # in range: cast, and computed in float32
    assert loss_type()(np.zeros((4, 3), np.float32), y) > 0


@pytest.mark.parametrize("delta", [True, "2", None, float("inf"), float("nan"), 0.0, -1.0])
def test_huber_delta_must_be_a_positive_finite_number(delta: Any) -> None:
    with pytest.raises(ValueError, match="HuberLoss: delta must be a finite number > 0"):
        md.HuberLoss(delta=delta)


def test_integer_targets_beyond_float16_are_named_and_in_range_ones_cast_quietly() -> None:
    """uint16 into float16 (the same size) skipped the range check (inf, "NaN/inf"); int64 targets for a
    float16 prediction warned "overflow encountered in cast" from the range test itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(md.TargetError, match=r"1 value\(s\) beyond float16's range .* \(65535\)"):
            md.MSELoss()(np.zeros(2, np.float16), np.array([1, 65535], np.uint16))
        assert md.MSELoss()(np.zeros(2, np.float16), np.array([1, 5], np.int64)) == 13.0
        assert md.MSELoss()(np.zeros(2, np.float16), np.array([1, 5], np.uint8)) == 13.0
        with pytest.raises(md.TargetError, match="beyond float32's range"):  # probability targets too
            md.CrossEntropyLoss()(np.zeros((2, 2), np.float32), np.array([[1.0, 1e39], [0.0, 1.0]]))


def test_a_target_that_rounds_to_float16_s_largest_is_cast_not_refused() -> None:
    """65519 rounds to 65504 in float16 (NumPy's and PyTorch's cast); only what the cast makes inf is refused."""
    loss = md.L1Loss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(np.zeros(1, np.float16), np.array([65519.0]))
        with pytest.raises(md.TargetError, match="beyond float16's range"):
            loss(np.zeros(1, np.float16), np.array([65520.0]))


@pytest.mark.parametrize(("beta", "seed"), [(1.0, 0), (0.3, 1), (2.5, 2), (0.0, 3)])
def test_smooth_l1_closed_form_gradient_checker_and_huber(beta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    d = p - t
    loss = md.SmoothL1Loss(beta=beta)
    expected = np.abs(d) if beta == 0 else np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)
    assert loss(p, t) == pytest.approx(expected.mean(), rel=1e-14)
    grad = np.sign(d) if beta == 0 else np.clip(d / beta, -1, 1)
    np.testing.assert_allclose(loss.backward(), grad / d.size, rtol=1e-14)
    if beta:  # SmoothL1(beta) = Huber(delta=beta) / beta
        assert loss(p, t) == pytest.approx(md.HuberLoss(delta=beta)(p, t) / beta, rel=1e-14)
    else:
        assert loss(p, t) == pytest.approx(md.L1Loss()(p, t), rel=1e-14)
    summed = md.SmoothL1Loss(reduction="sum", beta=beta)
    assert summed(p, t) == pytest.approx(expected.sum(), rel=1e-14)
    report = md.GradientChecker(Identity(), inputs=p, loss=md.SmoothL1Loss(beta=max(beta, 0.5)), targets=t).run()
    assert report.passed, report


def test_smooth_l1_checks() -> None:
    with pytest.raises(ValueError, match="SmoothL1Loss: beta must be a finite number >= 0"):
        md.SmoothL1Loss(beta=-1)
    with pytest.raises(md.ShapeError, match="SmoothL1Loss: y_pred has shape"):
        md.SmoothL1Loss()(np.zeros(3), np.zeros(2))
    assert md.SmoothL1Loss()(np.zeros(2, np.float32), np.ones(2, np.float32)) == pytest.approx(0.5)


def test_smooth_l1_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p, t = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4))
    for beta in (1.0, 0.2, 0.0):
        pt = torch.tensor(p, requires_grad=True)
        value = torch.nn.SmoothL1Loss(beta=beta)(pt, torch.from_numpy(t))
        value.backward()
        ours = md.SmoothL1Loss(beta=beta)
        assert ours(p, t) == pytest.approx(value.item(), rel=1e-13)
        np.testing.assert_allclose(ours.backward(), pt.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize(("beta", "dtype", "d"), [(1e-5, np.float16, 2e-6), (1e-310, np.float64, 1e-320),
                                                  (2e-39, np.float32, 1e-40)])
def test_smooth_l1_with_a_beta_whose_reciprocal_overflows(beta: float, dtype: type, d: float) -> None:
    """0.5 / beta and 1 / beta overflowed to inf: NaN at d = 0 and d / beta clipped to 1."""
    loss = md.SmoothL1Loss(beta=beta)
    p = np.array([0.0, d], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (float16's and subnormals' own underflow warnings, if any)
        value = loss(p, np.zeros(2, dtype))
        grad = loss.backward()
    assert np.isfinite(value) and np.isfinite(grad).all() and grad[0] == 0
    expected = float(np.asarray(d, dtype)) / beta / 2  # d / beta, divided by the element count
    assert grad[1] == pytest.approx(min(expected, 0.5), rel=2e-3)


def test_smooth_l1_with_a_beta_that_is_zero_in_the_dtype_is_l1_and_a_big_ratio_is_quiet() -> None:
    """1e-8 is 0 in float16: d / beta was 0/0 (NaN) at d = 0; d / beta overflowing float16 warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = md.SmoothL1Loss(beta=1e-8)
        assert loss(np.array([0.0, 1.0], np.float16), np.zeros(2, np.float16)) == 0.5  # the L1 loss
        np.testing.assert_array_equal(loss.backward(), np.array([0.0, 0.5], np.float16))
        loss = md.SmoothL1Loss(beta=1e-3)
        loss(np.array([100.0], np.float16), np.zeros(1, np.float16))
        np.testing.assert_array_equal(loss.backward(), np.array([1.0], np.float16))


@pytest.mark.parametrize("n", [4_000_000, 200_003])
def test_float32_squared_errors_of_a_large_batch_are_summed_in_float64(n: int) -> None:
    """A float32 BLAS dot product accumulates in float32: the loss of a 4e6-element batch (a segmentation
    batch) was 8e-6 relative off the float64 sum of the same float32 differences; the chunks of
    SQUARES_CHUNK elements, summed in float64, keep it near float32's own rounding of the differences."""
    from minidl.training import MeanSquaredError

    rng = np.random.default_rng(n)
    a = rng.normal(size=n).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    d = (a - b).astype(np.float64)
    exact = float(np.dot(d, d))
    assert md.MSELoss()(a, b) == pytest.approx(exact / n, rel=5e-7)
    assert md.MSELoss(reduction="sum")(a, b) == pytest.approx(exact, rel=5e-7)
    assert md.HalfSquaredError()(a, b) == pytest.approx(0.5 * exact, rel=5e-7)
    assert MeanSquaredError()(a, b) == pytest.approx(exact / n, rel=5e-7)
