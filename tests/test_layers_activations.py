"""Softmax, LeakyReLU and GELU: values against direct formulas, Jacobians, dtype, gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md

# ----------------------------------------------------------------------------- Softmax


@pytest.mark.parametrize("shape, axis, seed", [((3, 4), -1, 0), ((5, 2), 0, 1), ((2, 3, 4), 1, 2)])
def test_softmax_values_and_rows_sum_to_one(shape: tuple[int, ...], axis: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    y = md.Softmax(axis=axis)(x)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-14)
    expected = np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=1e-13)


def test_softmax_is_stable_and_shift_invariant() -> None:
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e300, 0.0, 1e300]])
    y = md.Softmax()(x)
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    z = np.random.default_rng(0).normal(size=(2, 5))
    np.testing.assert_allclose(md.Softmax()(z + 50.0), md.Softmax()(z), rtol=1e-13)


def test_softmax_backward_is_the_jacobian_vector_product() -> None:
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    layer = md.Softmax()
    y = layer(x)
    dx = layer.backward(g)
    for n in range(4):
        jacobian = np.diag(y[n]) - np.outer(y[n], y[n])  # dy_i/dx_j, symmetric
        np.testing.assert_allclose(dx[n], jacobian @ g[n], rtol=1e-12, atol=1e-15)
    # adding a constant to g along the axis changes nothing (softmax is shift invariant)
    np.testing.assert_allclose(layer.backward(g + 7.0), dx, atol=1e-14)


def test_softmax_errors_and_dtype() -> None:
    layer = md.Softmax(axis=2)
    with pytest.raises(md.ShapeError, match=r"Softmax\(axis=2\).*2 dimension\(s\).*\(3, 4\)"):
        layer(np.zeros((3, 4)))
    layer = md.Softmax()
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.zeros((2, 2)))
    y = layer(np.ones((2, 3), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones((2, 3), dtype=np.float32)).dtype == np.float32
    with pytest.raises(md.ShapeError, match=r"Softmax.backward: expected grad_output of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2), dtype=np.float32))
    assert not md.Softmax.elementwise


@pytest.mark.parametrize("shape, axis, seed", [((3, 4), -1, 0), ((4, 2), 0, 1), ((2, 3, 4), 1, 2)])
def test_softmax_gradient_checker(shape: tuple[int, ...], axis: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = md.GradientChecker(md.Softmax(axis=axis), inputs=x, seed=seed).run()
    assert report.passed, str(report)


# ----------------------------------------------------------------------------- LeakyReLU


def test_leaky_relu_values_and_gradient() -> None:
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    layer = md.LeakyReLU()
    np.testing.assert_array_equal(layer(x), [-0.02, -0.005, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(layer.backward(np.full(5, 2.0)), [0.02, 0.02, 0.02, 2.0, 2.0])
    layer = md.LeakyReLU(negative_slope=0.2)
    np.testing.assert_allclose(layer(x), np.where(x > 0, x, 0.2 * x))
    assert repr(layer) == "LeakyReLU(negative_slope=0.2)"
    y32 = layer(x.astype(np.float32))
    assert y32.dtype == np.float32
    assert layer.backward(np.ones(5, dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize("slope", [0.01, 0.3])
@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 3, 2), 1)])
def test_leaky_relu_gradient_checker(slope: float, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    x[np.abs(x) < 0.05] = 0.5  # away from the kink
    report = md.GradientChecker(md.LeakyReLU(slope), inputs=x, seed=seed).run()
    assert report.passed, str(report)


# ----------------------------------------------------------------------------- against PyTorch


def test_softmax_and_leaky_relu_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, g = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    pairs = ((md.Softmax(axis=0), torch.nn.Softmax(dim=0)), (md.LeakyReLU(), torch.nn.LeakyReLU()))
    for ours, theirs in pairs:
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


_ = math  # used by the GELU tests below
