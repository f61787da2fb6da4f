"""MSELoss and HalfSquaredError: values, exact gradients, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md


@pytest.mark.parametrize("shape, seed", [((4, 1), 0), ((3, 5), 1), ((2, 3, 4), 2)])
def test_mse_mean_and_sum(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, t = rng.normal(size=shape), rng.normal(size=shape)
    mean, total = md.MSELoss(), md.MSELoss(reduction="sum")
    assert mean(y, t) == pytest.approx(np.mean((y - t) ** 2), rel=1e-14)
    assert total(y, t) == pytest.approx(np.sum((y - t) ** 2), rel=1e-14)
    np.testing.assert_allclose(mean.backward(), 2 * (y - t) / y.size, rtol=1e-14)
    np.testing.assert_allclose(total.backward(), 2 * (y - t), rtol=1e-14)


def test_half_squared_error_gradient_is_exactly_the_residual() -> None:
    rng = np.random.default_rng(0)
    y, t = rng.normal(size=(6, 1)), rng.normal(size=(6, 1))
    cost = md.HalfSquaredError()
    assert cost(y, t) == pytest.approx(0.5 * np.sum((y - t) ** 2), rel=1e-14)
    np.testing.assert_array_equal(cost.backward(), y - t)


def test_targets_are_cast_to_the_prediction_dtype() -> None:
    y = np.ones((3, 2), dtype=np.float32)
    loss = md.MSELoss()
    loss(y, np.zeros((3, 2), dtype=np.float64))
    assert loss.backward().dtype == np.float32


def test_bad_input() -> None:
    loss = md.MSELoss()
    with pytest.raises(md.ShapeError, match=r"MSELoss: y_pred has shape \(3, 1\) but y_true has shape \(3,\)"):
        loss(np.ones((3, 1)), np.ones(3))
    with pytest.raises(md.BackwardBeforeForwardError, match=r"MSELoss\.backward called before forward"):
        md.MSELoss().backward()
    with pytest.raises(md.NonFiniteError, match="y_true"):
        loss(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(md.DTypeError, match="y_pred"):
        loss(np.ones(2, dtype=int), np.ones(2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        md.MSELoss(reduction="none")


@pytest.mark.parametrize("loss", [md.MSELoss(), md.MSELoss(reduction="sum"), md.HalfSquaredError()])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_checker_through_a_dense_layer(loss: md.Loss, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    report = md.GradientChecker(md.Dense(3, 2, rng=seed), loss=loss, inputs=x, targets=t).run()
    assert report.passed, str(report)
