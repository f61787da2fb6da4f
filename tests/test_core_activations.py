"""ReLU, Sigmoid, Tanh: values, closed-form derivatives, dtype, bad input, and the checker."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md

CASES = [
    (md.ReLU, lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
    (md.Sigmoid, lambda x: 1 / (1 + math.exp(-x)), lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
    (md.Tanh, math.tanh, lambda x: 1 - math.tanh(x) ** 2),
]


@pytest.mark.parametrize("cls, f, df", CASES)
def test_values_and_derivatives_match_scalar_formulas(cls: type, f, df) -> None:  # type: ignore[no-untyped-def]
    x = np.array([[-3.0, -0.5, 0.25, 2.0], [0.75, -1.25, 4.0, -0.1]])
    g = np.random.default_rng(0).normal(size=x.shape)
    layer = cls()
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(y, np.vectorize(f)(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, g * np.vectorize(df)(x), rtol=1e-12, atol=1e-15)


def test_sigmoid_does_not_overflow_at_extremes() -> None:
    layer = md.Sigmoid()
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # exp(-1000) underflows to 0: exact
        y = layer(np.array([-np.inf, -1000.0, -0.0, 0.0, 1000.0, np.inf]))
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    assert np.isnan(layer(np.array([np.nan, 1.0])))[0]


@pytest.mark.parametrize("dtype, low, rtol", [(np.float32, -87.0, 1e-6), (np.float64, -708.0, 1e-15)])  # normal floats
def test_sigmoid_is_accurate_for_negative_inputs(dtype: type, low: float, rtol: float) -> None:
    """Far below 0 the sigmoid is about e^x: tiny but representable, and it must keep its digits
    (``(1 + tanh(x/2)) / 2`` returned 0 from about -18 in float32, 44% off at -17)."""
    x = np.linspace(low, 40, 4001).astype(dtype)
    y = md.Sigmoid()(x)
    assert y.dtype == dtype
    exact = np.array([math.exp(v) / (1 + math.exp(v)) if v < 0 else 1 / (1 + math.exp(-v)) for v in x.tolist()])
    np.testing.assert_allclose(y, exact, rtol=rtol, atol=0)
    assert md.Sigmoid()(np.float32(-17.0)) == pytest.approx(math.exp(-17.0) / (1 + math.exp(-17.0)), rel=1e-6)


@pytest.mark.parametrize("cls", [md.ReLU, md.Sigmoid, md.Tanh])
def test_float32_stays_float32_and_bad_input(cls: type) -> None:
    layer = cls()
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    assert layer(x).dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(3, 4\)"):
        layer.backward(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(md.DTypeError, match=f"{cls.__name__}: expected a floating-point input"):
        layer(np.ones(3, dtype=np.int32))
    with pytest.raises(md.BackwardBeforeForwardError):
        cls().backward(np.ones(3))


@pytest.mark.parametrize("cls", [md.ReLU, md.Sigmoid, md.Tanh])
@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 5, 3), 1), ((6,), 2)])
def test_gradient_checker_passes(cls: type, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = md.GradientChecker(cls(), inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input"]


@pytest.mark.parametrize("cls", [md.ReLU, md.Sigmoid, md.Tanh, md.Softmax])
def test_outputs_kept_for_backward_are_read_only(cls: type) -> None:
    """The output is the backward's cache: changing it in place must fail loudly, not corrupt dx."""
    x = np.array([[0.5, -1.0, 2.0]])
    layer = cls()
    y = layer(x)
    expected = cls()
    expected(x)
    with pytest.raises(ValueError, match="read-only"):
        y *= 2.0
    g = np.array([[0.3, -0.2, 0.9]])
    np.testing.assert_array_equal(layer.backward(g), expected.backward(g))
    z = y.copy()
    z *= 2.0  # a copy is the user's to change


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_relu_special_values_and_layouts(dtype: type, layout: str) -> None:
    values = np.array([-np.inf, -1.5, -0.0, 0.0, 2.5, np.inf, np.nan, -np.nan], dtype=dtype)
    x = np.tile(values, (3, 1))
    if layout == "transposed":
        x = np.ascontiguousarray(x.T).T  # same values, Fortran order
    relu = md.ReLU()
    y = relu(x)
    assert y.dtype == dtype and y.shape == x.shape
    expected = np.array([0, 0, 0, 0, 2.5, np.inf, np.nan, np.nan], dtype=dtype)
    np.testing.assert_array_equal(y, np.tile(expected, (3, 1)))  # NaN propagates, -inf gives 0
    g = relu.backward(np.ones_like(y))
    np.testing.assert_array_equal(g, np.tile((values > 0).astype(dtype), (3, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_a_channel_major_image_channel_major(dtype: type) -> None:
    # a Conv2D's output is channel-major: ReLU's output (and dx) stays so, for the pool and the next
    # convolution to read in order
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.normal(size=(3, 2, 4, 5)).astype(dtype)).transpose(1, 0, 2, 3)
    relu = md.ReLU()
    y = relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert y.transpose(1, 0, 2, 3).flags.c_contiguous
    g = np.ascontiguousarray(rng.normal(size=(3, 2, 4, 5)).astype(dtype)).transpose(1, 0, 2, 3)
    dx = relu.backward(g)
    np.testing.assert_array_equal(dx, g * (x > 0))
    assert dx.transpose(1, 0, 2, 3).flags.c_contiguous and dx.dtype == dtype
