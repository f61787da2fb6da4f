"""Hardshrink, Softshrink, Tanhshrink and Softmin: values and slopes by closed form (kinks included),
the gradient checker, dtypes, NaN/inf, refused arguments, and PyTorch's values when it is installed."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

POINTS = np.array([-2.0, -0.5, -0.2, 0.0, 0.3, 0.5, 0.7, 3.0])


@pytest.mark.parametrize("layer, y, slope", [
    (md.Hardshrink(), [-2.0, 0, 0, 0, 0, 0, 0.7, 3.0], [1, 0, 0, 0, 0, 0, 1, 1]),  # 0 at both kinks
    (md.Hardshrink(0.25), [-2.0, -0.5, 0, 0, 0.3, 0.5, 0.7, 3.0], [1, 1, 0, 0, 1, 1, 1, 1]),
    (md.Hardshrink(-1.0), POINTS, np.ones(8)),  # no dead zone: the identity
    (md.Softshrink(), [-1.5, 0, 0, 0, 0, 0, 0.2, 2.5], [1, 0, 0, 0, 0, 0, 1, 1]),
    (md.Softshrink(0.0), POINTS, np.ones(8)),  # the identity, slope 1 at 0 too (PyTorch's 0 is no slope of it)
    (md.Hardshrink(0.0), POINTS, np.ones(8)),
])
def test_shrinks_by_closed_form(layer: md.Layer, y: Any, slope: Any) -> None:
    np.testing.assert_allclose(layer(POINTS), y, rtol=1e-15, atol=1e-16)
    g = np.arange(1.0, 9.0)
    np.testing.assert_array_equal(layer.backward(g), g * np.asarray(slope))


def test_tanhshrink_and_softmin_by_closed_form() -> None:
    layer = md.Tanhshrink()
    np.testing.assert_allclose(layer(POINTS), POINTS - np.tanh(POINTS), rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(layer.backward(np.full(8, 2.0)), 2 * np.tanh(POINTS) ** 2, rtol=1e-15)
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -700.0]])
    softmin = md.Softmin()
    y = softmin(x)
    np.testing.assert_allclose(y, md.Softmax()(-x), rtol=1e-15)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-15)
    assert y[0].argmax() == 0 and y[1, 2] == 1.0  # the smallest input weighs most
    g = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, 2.0]])
    softmax = md.Softmax()
    softmax(-x)
    np.testing.assert_allclose(softmin.backward(g), -softmax.backward(g), rtol=1e-15)


@pytest.mark.parametrize("make", [lambda: md.Hardshrink(0.4), lambda: md.Softshrink(0.4), lambda: md.Tanhshrink(),
                                  lambda: md.Softmin(), lambda: md.Softmin(0)])
@pytest.mark.parametrize("shape, seed", [((5,), 0), ((3, 4), 1), ((2, 3, 4), 2)])
def test_gradient_checker(make: Any, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    x.flat[0] = 0.4  # on a kink of the shrinks: the checker leaves it out, with no false alarm
    report = assert_gradients_ok(make(), inputs=x, seed=seed)
    assert report["input"].checked >= x.size - 1


def test_in_a_model_with_the_gradient_checker() -> None:
    model = md.Sequential(md.Dense(4, 6, rng=0), md.Softshrink(0.1), md.Dense(6, 5, rng=1), md.Tanhshrink(),
                          md.Dense(5, 5, rng=2), md.Hardshrink(0.05), md.Dense(5, 3, rng=3), md.Softmin())
    x = np.random.default_rng(3).normal(size=(6, 4))
    assert_gradients_ok(model, inputs=x, loss=md.MSELoss(), seed=3)


@pytest.mark.parametrize("make", [lambda: md.Hardshrink(0.3), lambda: md.Softshrink(0.3), lambda: md.Tanhshrink(),
                                  lambda: md.Softmin()])
def test_dtypes_are_kept(make: Any) -> None:
    x = np.random.default_rng(4).normal(size=(3, 5))
    want = make()(x)
    for dtype, tol in ((np.float32, 1e-6), (np.float16, 2e-3)):
        layer = make()
        y = layer(x.astype(dtype))
        assert y.dtype == dtype
        np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
        assert layer.backward(np.ones_like(y)).dtype == dtype


def test_nan_and_inf_pass_as_pytorch_passes_them() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warning on the way
        for layer, y in ((md.Hardshrink(), [np.nan, np.inf, -np.inf, 0]),
                         (md.Softshrink(), [np.nan, np.inf, -np.inf, 0]),
                         (md.Tanhshrink(), [np.nan, np.inf, -np.inf, 0.1 - np.tanh(0.1)])):
            np.testing.assert_array_equal(layer(x), y)
            slope = layer.backward(np.ones(4))
            if isinstance(layer, md.Tanhshrink):
                np.testing.assert_array_equal(slope[1:3], [1.0, 1.0])
                assert np.isnan(slope[0])
            else:  # NaN outside the dead zone: slope 1, as the identity it passes through
                np.testing.assert_array_equal(slope, [1, 1, 1, 0])
    y16 = md.Softshrink(1e6)(np.array([60000.0, np.inf], np.float16))  # lambd beyond float16: in float32
    np.testing.assert_array_equal(y16, [0, np.inf])
    assert md.Hardshrink(1e300)(np.array([3e38, np.inf], np.float32)).tolist() == [0.0, np.inf]


def test_float16_rounds_lambd_as_pytorch_does() -> None:
    """PyTorch's Hardshrink compares a float16 input with lambd rounded to float16 (0.30005 is inside
    for lambd = 0.3), its Softshrink with lambd in float32 (outside: 0.30005 - 0.3)."""
    x = np.array([0.3, -0.3], np.float16)
    assert float(x[0]) > 0.3
    np.testing.assert_array_equal(md.Hardshrink(0.3)(x), [0, 0])
    np.testing.assert_allclose(md.Softshrink(0.3)(x), [4.88e-5, -4.88e-5], rtol=1e-3)


@pytest.mark.parametrize("make, error, match", [
    (lambda: md.Hardshrink(float("nan")), ValueError, "Hardshrink: lambd must be a finite number, got nan"),
    (lambda: md.Hardshrink("0.5"), TypeError, "Hardshrink: lambd must be a finite number, got '0.5'"),
    (lambda: md.Softshrink(-0.1), ValueError, "Softshrink: lambd must be >= 0, got -0.1"),
    (lambda: md.Softshrink(float("inf")), ValueError, "Softshrink: lambd must be a finite number, got inf"),
    (lambda: md.Softmin(1.5), TypeError, "Softmin: axis must be an int, got 1.5"),
])
def test_bad_arguments_are_refused(make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused_and_reprs() -> None:
    layer = md.Softshrink(0.2)
    x = np.array([0.5, -1.0])
    layer(x)
    with pytest.raises(md.DTypeError, match="Softshrink"):
        layer(np.array([1, 2]))
    np.testing.assert_array_equal(layer.backward(np.ones(2)), [1.0, 1.0])  # the last accepted pass
    with pytest.raises(md.ShapeError, match=r"Softshrink.backward: expected grad_output of shape \(2,\)"):
        layer.backward(np.ones(3))
    with pytest.raises(md.ShapeError, match=r"Softmin\(axis=2\): the input has 2 dimension"):
        md.Softmin(2)(np.ones((2, 3)))
    assert [repr(layer) for layer in (md.Hardshrink(), md.Softshrink(0.25), md.Tanhshrink(), md.Softmin(0))] == [
        "Hardshrink(lambd=0.5)", "Softshrink(lambd=0.25)", "Tanhshrink()", "Softmin(axis=0)"]


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    special = np.array([np.inf, -np.inf, 0.5, -0.5, 0.3, -0.3, 0.0, -0.0, 1e-3, 3.0])
    for dtype in (np.float64, np.float32, np.float16):
        x = np.concatenate([special, rng.normal(size=300) * 2]).astype(dtype)
        g = rng.normal(size=x.shape).astype(dtype)
        for lambd in (0.5, 0.3, 0.0, 2.0, -1.0):
            pairs = [(md.Hardshrink(lambd), torch.nn.Hardshrink(lambd))]
            if lambd >= 0:
                pairs.append((md.Softshrink(lambd), torch.nn.Softshrink(lambd)))
            for ours, theirs in pairs:
                xt = torch.tensor(x, requires_grad=True)
                yt = theirs(xt)
                yt.backward(torch.tensor(g))
                np.testing.assert_array_equal(ours(x), yt.detach().numpy())
                dx, theirs_dx = ours.backward(g), xt.grad.numpy()
                if lambd == 0:  # the identity: slope 1 at 0 too, where PyTorch gives 0
                    np.testing.assert_array_equal(dx[x == 0], g[x == 0])
                    dx, theirs_dx = dx[x != 0], theirs_dx[x != 0]
                if not (dtype == np.float16 and isinstance(ours, md.Softshrink)):  # (PyTorch's backward
                    # compares in float16 there, its forward in float32: they disagree just above lambd)
                    np.testing.assert_array_equal(dx, theirs_dx)
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.Tanhshrink()(xt).backward(torch.tensor(g))
        tanhshrink = md.Tanhshrink()
        tol = {np.float64: 1e-15, np.float32: 1e-6, np.float16: 1e-3}[dtype]
        y = tanhshrink(x)  # (both compute x - tanh(x); their tanh differ in the last bits)
        np.testing.assert_allclose(y, torch.nn.Tanhshrink()(torch.tensor(x)).numpy(), rtol=tol * 10, atol=tol)
        np.testing.assert_allclose(tanhshrink.backward(g), xt.grad.numpy(), rtol=tol * 10, atol=tol)
    for axis in (-1, 0, 1):
        x = rng.normal(size=(3, 4, 5))
        g = rng.normal(size=x.shape)
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.Softmin(dim=axis)(xt).backward(torch.tensor(g))
        softmin = md.Softmin(axis)
        np.testing.assert_allclose(softmin(x), torch.nn.Softmin(dim=axis)(torch.tensor(x)).numpy(), rtol=1e-14)
        np.testing.assert_allclose(softmin.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_what_the_review_found() -> None:
    """lambd set after construction was not checked (Softshrink's -1 gave [-0.8, 3, -3], NaN gave
    -1.8e308); an int beyond a float raised a bare OverflowError; PyTorch's dim= a TypeError naming
    ``_AlongAxis``; float16 lambd was rounded once where PyTorch rounds twice (double, float32,
    float16); Softmax/Softmin/LogSoftmax summed float16 in float16."""
    layer = md.Softshrink(0.5)
    for bad, error in ((-1.0, ValueError), (float("nan"), ValueError), ("0.5", TypeError), (10**400, ValueError)):
        with pytest.raises(error, match="Softshrink: lambd must be"):
            layer.lambd = bad  # type: ignore[assignment]
        assert layer.lambd == 0.5
    hard = md.Hardshrink()
    hard.lambd = 2
    assert hard.lambd == 2.0 and hard(np.array([1.5, 2.5])).tolist() == [0.0, 2.5]
    with pytest.raises(ValueError, match="Hardshrink: lambd must be a finite number"):
        md.Hardshrink(10**400)
    with pytest.raises(TypeError, match=r"Softmin: the axis is given as axis= here \(PyTorch's dim=\), got dim=1"):
        md.Softmin(dim=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"GLU: the axis is given as axis= here \(PyTorch's dim=\), got dim=0"):
        md.GLU(dim=0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"Softmax: the axis is given as axis= here \(PyTorch's dim=\), got dim=None"):
        md.Softmax(dim=None)  # type: ignore[call-arg]  # (PyTorch's implicit dim is not the last axis)
    x = np.array([1.0009765625, -1.0009765625], np.float16)  # lambd rounds to 1.0 in float32, then stays
    np.testing.assert_array_equal(md.Hardshrink(1.00048828125 + 1e-12)(x), x)
    rows = np.random.default_rng(6).normal(size=(4, 1000)).astype(np.float16).astype(np.float64)
    for make in (md.Softmax, md.Softmin, md.LogSoftmax):  # float16 is rounded once (summed in float16: 2.9e-3)
        want = make()(rows)
        layer = make()
        got = layer(rows.astype(np.float16))
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, want, rtol=2**-10, atol=2**-24 if make is not md.LogSoftmax else 2**-9)
        g = np.random.default_rng(7).normal(size=rows.shape).astype(np.float16)
        reference = make()
        reference(rows)
        want_dx = reference.backward(g.astype(np.float64))
        dx = layer.backward(g)
        assert dx.dtype == np.float16
        np.testing.assert_allclose(dx, want_dx, rtol=4e-3, atol=4e-3 * np.abs(want_dx).max())


def test_what_the_second_review_found() -> None:
    """With lambd = 0 the identity passed -0.0 on (PyTorch and the formula give 0.0); an empty
    big-endian input to Softmax/LogSoftmax came back big-endian, and its own dtype was then refused as
    the gradient's."""
    for layer in (md.Hardshrink(0.0), md.Softshrink(0.0)):
        y = layer(np.array([-0.0, 1.0, -2.0]))
        assert y.tolist() == [0.0, 1.0, -2.0] and not np.signbit(y[0])
        np.testing.assert_array_equal(layer.backward(np.ones(3)), [1.0, 1.0, 1.0])
    for make in (md.Softmax, md.LogSoftmax, md.Softmin):
        layer = make()
        y = layer(np.zeros((2, 0), ">f4"))
        assert y.dtype == np.float32 and y.dtype.isnative and y.shape == (2, 0) and not y.flags.writeable
        assert layer.backward(np.zeros_like(y)).shape == (2, 0)
