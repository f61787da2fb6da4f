"""LocalResponseNorm: a loop over channels, a hand-computed case, gradient checks (alone and in a CNN), PyTorch,
dtypes, memory layouts, refusals, repr and summary."""

from __future__ import annotations

import math
import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import LocalResponseNorm
from minidl.testing import assert_gradients_ok

# (alpha, beta, k): PyTorch's defaults, AlexNet's, and values large enough that the cross-channel term
# dominates (with alpha = 1e-4 the layer is nearly x / k**beta), beta negative, integer and above 1
OPTIONS = [(1e-4, 0.75, 1.0), (1e-4, 0.75, 2.0), (0.5, 0.75, 1.0), (2.0, 1.5, 0.5), (1.0, -0.5, 1.0),
           (3.0, 2.0, 1.0), (1.0, 1.0, 0.25)]
# (input shape, size): ranks 3 to 6, odd and even sizes, sizes of 1, of C, above C and far above it
SHAPES = [((2, 5, 3), 3), ((2, 5, 3), 2), ((3, 6, 4, 3), 5), ((3, 6, 4, 3), 4), ((2, 4, 2, 3, 2), 3),
          ((2, 4, 2, 3, 2), 6), ((2, 3, 2, 2, 2, 2), 2), ((2, 1, 4), 3), ((2, 3, 5), 1), ((1, 7, 2, 2), 7),
          ((2, 3, 4), 11)]


def reference(x: np.ndarray, size: int, alpha: float, beta: float, k: float,
              g: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """y (and dx for ``g``) straight from the definition, by loops over channels: the window of c is the
    channels c - size//2 .. c + (size-1)//2 that exist; dx sums dy_c/dx_j over every pair (c, j)."""
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    window = [range(max(0, c - lo), min(C, c + hi + 1)) for c in range(C)]
    base = np.stack([k + alpha / size * sum(x[:, j] ** 2 for j in window[c]) for c in range(C)], axis=1)
    y = x / base**beta
    if g is None:
        return y, None
    dx = np.zeros_like(x)
    for c in range(C):
        for j in window[c]:  # dy_c/dx_j = [c == j] base_c^-beta - beta x_c base_c^(-beta-1) 2 alpha/size x_j
            dx[:, j] -= g[:, c] * beta * x[:, c] * base[:, c] ** (-beta - 1) * 2 * alpha / size * x[:, j]
        dx[:, c] += g[:, c] * base[:, c] ** -beta
    return y, dx


def channel_major(a: np.ndarray) -> np.ndarray:
    """``a`` (N, C, ...) laid out in memory as (C, N, ...): a Conv2D's output layout."""
    axes = (1, 0, *range(2, a.ndim))
    return np.ascontiguousarray(a.transpose(axes)).transpose(axes)


def is_channel_major(a: np.ndarray) -> bool:
    return a.transpose((1, 0, *range(2, a.ndim))).flags.c_contiguous


# ----------------------------------------------------------------------------- values


def test_a_hand_computed_case_with_an_even_size() -> None:
    """x = (1, 2, 3) over channels, size 2: the window of c is (c-1, c) (an even size reaches down, as
    PyTorch pads it), S = (1, 5, 13), base = 1 + 2/2 * S = (2, 6, 14), y = x / base."""
    layer = LocalResponseNorm(2, alpha=2.0, beta=1.0, k=1.0)
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    np.testing.assert_allclose(layer(x).ravel(), [1 / 2, 2 / 6, 3 / 14], rtol=1e-15)
    # dx_j = g_j / base_j - 2 x_j * sum over the c whose window holds j (c = j, j + 1) of g_c y_c / base_c
    dx = layer.backward(np.ones_like(x)).ravel()
    y, base = np.array([1 / 2, 2 / 6, 3 / 14]), np.array([2.0, 6.0, 14.0])
    t = y / base
    expected = [1 / 2 - 2 * 1 * (t[0] + t[1]), 1 / 6 - 2 * 2 * (t[1] + t[2]), 1 / 14 - 2 * 3 * t[2]]
    np.testing.assert_allclose(dx, expected, rtol=1e-14)


def test_alexnet_numbers_by_hand() -> None:
    """size 5, alpha 1e-4, beta 0.75, k 2 on one pixel of 5 channels: the middle channel sees all five."""
    x = np.arange(1.0, 6.0).reshape(1, 5, 1, 1)
    y = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(x)
    assert y[0, 2, 0, 0] == pytest.approx(3.0 / (2.0 + 1e-4 / 5 * 55) ** 0.75, rel=1e-15)
    assert y[0, 0, 0, 0] == pytest.approx(1.0 / (2.0 + 1e-4 / 5 * 14) ** 0.75, rel=1e-15)  # channels 0, 1, 2


@pytest.mark.parametrize("alpha, beta, k", OPTIONS)
@pytest.mark.parametrize("shape, size", SHAPES)
def test_matches_the_loop_over_channels(shape: tuple[int, ...], size: int, alpha: float, beta: float,
                                        k: float) -> None:
    rng = np.random.default_rng(size)
    x = rng.normal(scale=2.0, size=shape)
    g = rng.normal(size=shape)
    layer = LocalResponseNorm(size, alpha, beta, k)
    y_ref, dx_ref = reference(x, size, alpha, beta, k, g)
    np.testing.assert_allclose(layer(x), y_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12, atol=1e-13)


def test_special_settings() -> None:
    """alpha = 0 or beta = 0: no term across channels (x / k**beta, and the identity); a size far above C
    is the sum over every channel; k <= 0 is fine where the base stays positive, and k < 0 with an integer
    beta where it is negative but not 0 (PyTorch's numbers too, below)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 3))
    g = rng.normal(size=x.shape)
    layer = LocalResponseNorm(3, alpha=0.0, beta=0.75, k=2.0)
    np.testing.assert_allclose(layer(x), x / 2.0**0.75, rtol=1e-15)
    np.testing.assert_allclose(layer.backward(g), g / 2.0**0.75, rtol=1e-15)
    layer = LocalResponseNorm(3, alpha=1.0, beta=0.0, k=0.0)
    np.testing.assert_array_equal(layer(np.zeros((1, 3, 2))), np.zeros((1, 3, 2)))  # base 0, but 0**0 = 1
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(g), g)
    wide = LocalResponseNorm(1001, alpha=1001.0, beta=1.0, k=0.0)  # base = the sum of squares over all channels
    np.testing.assert_allclose(wide(x), x / (x**2).sum(axis=1, keepdims=True), rtol=1e-14)
    for layer in (LocalResponseNorm(2, alpha=1.0, beta=0.5, k=0.0), LocalResponseNorm(3, alpha=2.0, beta=1.0, k=-0.1)):
        y_ref, dx_ref = reference(x + 3.0, layer.size, layer.alpha, layer.beta, layer.k, g)
        np.testing.assert_allclose(layer(x + 3.0), y_ref, rtol=1e-13)
        np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12)
        assert_gradients_ok(layer, inputs=x + 3.0)
    negative = LocalResponseNorm(3, alpha=1e-4, beta=1.0, k=-1.0)  # base near -1: y near -x
    y_ref, dx_ref = reference(x, 3, 1e-4, 1.0, -1.0, g)
    np.testing.assert_allclose(negative(x), y_ref, rtol=1e-13)
    np.testing.assert_allclose(negative.backward(g), dx_ref, rtol=1e-12)


def test_beta_0_or_alpha_0_leave_the_base_out() -> None:
    """beta = 0: y = x (base**0 = 1, whatever the base); alpha = 0: y = x / k**beta (the base is k, whatever the
    input).  So inputs whose squares overflow, or a base of 0 or below, do not matter there."""
    big32 = np.full((2, 3, 2), 1e20, np.float32)  # squares beyond float32
    g = np.random.default_rng(1).normal(size=big32.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for layer, x in [(LocalResponseNorm(3, beta=0.0), big32), (LocalResponseNorm(2, alpha=-1.0, beta=0.0, k=0.0),
                                                                   np.full((1, 3, 2), 1e200)),
                         (LocalResponseNorm(1, alpha=1e40, beta=0.0, k=1e39), big32)]:  # (constants unused)
            gx = g if x.dtype == np.float32 else g.astype(np.float64)[:1]
            np.testing.assert_array_equal(layer(x), x)
            np.testing.assert_array_equal(layer.backward(gx), gx)
        for x, beta in [(big32, 0.75), (np.full((1, 3, 2), 1e200), -0.5), (np.full((1, 3, 2), 6e4, np.float16), 2.0)]:
            layer = LocalResponseNorm(3, alpha=0.0, beta=beta, k=2.0)
            gx = np.ones_like(x)
            denominator = x.dtype.type(2.0) ** beta
            y, dx = layer(x), layer.backward(gx)
            assert y.dtype == dx.dtype == x.dtype
            np.testing.assert_array_equal(y, x / denominator)
            np.testing.assert_array_equal(dx, gx / denominator)
    assert all(a.shape == () for a in layer._cache[1:3])  # (a constant base: no full array kept)
    x = np.random.default_rng(2).normal(size=(2, 4, 3))
    for layer in (LocalResponseNorm(3, alpha=0.0, beta=0.75, k=2.0), LocalResponseNorm(2, alpha=1.0, beta=0.0, k=0.0)):
        assert_gradients_ok(layer, inputs=x)
    with pytest.raises(md.NonFiniteError, match=r"base .* is 0 at 6 position\(s\), the first at index \(0, 0, 0\), "
                                                r".*k=0.0 with alpha=0.0 allows a base of 0"):
        LocalResponseNorm(3, alpha=0.0, k=0.0)(np.ones((1, 3, 2)))


def test_the_zero_base_guard_sees_the_computing_dtype() -> None:
    """k = 1e-300 is 0 in float32 and 1e-20**4 underflows float32: refused for what they are (no RuntimeWarning
    and no NaN gradient on the way); float64 holds them, and its outputs and gradients are the exact ones."""
    zeros = np.zeros((1, 3, 2))
    for beta in (-0.5, 0.75):
        layer = LocalResponseNorm(3, beta=beta, k=1e-300)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(md.NonFiniteError, match=r"base .* is 0 at 6 position\(s\), .*; k=1e-300 is 0 in "
                                                        r"float32, the dtype the input is computed in"):
                layer(zeros.astype(np.float32))
            assert layer._cache is None
            np.testing.assert_array_equal(layer(zeros), zeros)  # float64: base 1e-300
            np.testing.assert_allclose(layer.backward(np.ones_like(zeros)), 1e-300 ** -beta, rtol=1e-14)
    layer = LocalResponseNorm(3, beta=4.0, k=1e-20)  # ReLU zeros: the exact output is 0, x / 1e-80
    with pytest.raises(md.NonFiniteError, match=r"the denominator base\*\*beta underflows float32 to 0 at 6 "
                                                r"position\(s\), .*\(base 1e-20, beta=4.0\)"):
        layer(zeros.astype(np.float32))
    np.testing.assert_array_equal(layer(zeros), zeros)
    np.testing.assert_allclose(layer.backward(np.ones_like(zeros)), 1e80, rtol=1e-14)


def test_empty_inputs() -> None:
    layer = LocalResponseNorm(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape in [(0, 4, 3), (2, 0, 3), (2, 4, 0), (2, 4, 0, 3), (0, 2, 2, 2, 2)]:
            y = layer(np.zeros(shape))
            assert y.shape == shape and layer.backward(np.ones(shape)).shape == shape


# ----------------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha, beta, k", [(0.5, 0.75, 1.0), (2.0, 1.5, 0.5), (1.0, -0.5, 1.0)])
@pytest.mark.parametrize("shape, size", [((2, 5, 3), 3), ((2, 6, 3, 2), 4), ((2, 4, 2, 2, 2), 5), ((2, 3, 4), 6)])
def test_gradient_checker(shape: tuple[int, ...], size: int, alpha: float, beta: float, k: float, seed: int) -> None:
    x = np.random.default_rng(seed + 40).normal(scale=1.5, size=shape)
    report = assert_gradients_ok(LocalResponseNorm(size, alpha, beta, k), inputs=x, seed=seed)
    assert [r.name for r in report.results] == ["input"]


@pytest.mark.parametrize("seed, shape, size", [(0, (3, 1, 6, 6), 3), (1, (2, 2, 7, 5), 2), (2, (4, 1, 6, 6), 5),
                                               (3, (2, 2, 6, 7), 4)])
def test_gradient_checker_in_a_cnn(seed: int, shape: tuple[int, ...], size: int) -> None:
    """Conv2D -> ReLU -> LocalResponseNorm -> MaxPool2D -> Flatten -> Dense, AlexNet's order, with an alpha
    large enough for the window to matter; the Conv2D's channel-major output goes through the norm."""
    N, C, H, W = shape
    F = 4
    conv = md.Conv2D(C, F, 3, rng=seed)
    pooled = ((H - 2) // 2) * ((W - 2) // 2)
    model = md.Sequential(conv, md.ReLU(), LocalResponseNorm(size, alpha=1.0, beta=0.75, k=1.0), md.MaxPool2D(2),
                          md.Flatten(), md.Dense(F * pooled, 3, rng=seed + 1))
    rng = np.random.default_rng(seed + 50)
    x = rng.normal(size=shape)
    assert is_channel_major(model[2](model[1](conv(x))))  # the layout the norm sees and keeps
    targets = rng.integers(0, 3, size=N)
    report = assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=targets, seed=seed)
    assert {r.name for r in report.results} == {"input", "0.W", "5.W"}


# ----------------------------------------------------------------------------- PyTorch


def torch_step(torch: Any, x: np.ndarray, g: np.ndarray, size: int, alpha: float, beta: float,
               k: float) -> tuple[np.ndarray, np.ndarray]:
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(xt)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), xt.grad.numpy()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference relative to the tensor's scale (at least 1)."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(1.0, float(np.max(np.abs(b))))) if a.size else 0.0


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-13), ("float32", 1e-6)])
def test_against_pytorch(dtype: str, tol: float) -> None:
    """Every shape and size of SHAPES with every option of OPTIONS, forward and dx (77 cases per dtype;
    measured worst: 4.6e-16 in float64, 4.4e-7 in float32, relative to each tensor's scale)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(60)
    worst = 0.0
    for shape, size in SHAPES:
        for alpha, beta, k in OPTIONS:
            x = rng.normal(scale=2.0, size=shape).astype(dtype)
            g = rng.normal(size=shape).astype(dtype)
            layer = LocalResponseNorm(size, alpha, beta, k)
            y, dx = layer(x), layer.backward(g)
            y_t, dx_t = torch_step(torch, x, g, size, alpha, beta, k)
            assert y.dtype == dx.dtype == y_t.dtype == np.dtype(dtype)
            worst = max(worst, relative(y, y_t), relative(dx, dx_t))
    assert worst < tol, worst


def test_against_pytorch_where_k_is_not_positive() -> None:
    """Accepted settings PyTorch computes finite numbers for: k = 0 with no all-zero window, k < 0 with an
    integer beta (a negative base), and a large input whose base goes positive past a negative k."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(61)
    for size, alpha, beta, k, scale in [(3, 1.0, 0.75, 0.0, 1.0), (2, 0.5, 1.0, -1.0, 0.3), (4, 1.0, 2.0, -0.5, 0.1),
                                        (3, 3.0, 0.5, -0.5, 5.0)]:
        x = rng.normal(loc=2.0 * scale, scale=0.1 * scale, size=(2, 5, 3))
        g = rng.normal(size=x.shape)
        layer = LocalResponseNorm(size, alpha, beta, k)
        y_t, dx_t = torch_step(torch, x, g, size, alpha, beta, k)
        assert np.isfinite(y_t).all()
        np.testing.assert_allclose(layer(x), y_t, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.backward(g), dx_t, rtol=1e-10, atol=1e-12)


def test_pytorch_where_the_base_is_left_out_or_is_0() -> None:
    """beta = 0 on squares that overflow: PyTorch's x too (inf**0 = 1).  alpha = 0 there: PyTorch's NaN (0 * inf)
    is the deliberate difference (this gives x / k**beta).  A base of 0, refused here: PyTorch's forward is 0
    with beta < 0, NaN with beta > 0, and its gradient NaN (as the docs say)."""
    torch = pytest.importorskip("torch")
    big = np.full((2, 3, 2), 1e20, np.float32)
    g = np.random.default_rng(62).normal(size=big.shape).astype(np.float32)
    y_t, dx_t = torch_step(torch, big, g, 3, 1e-4, 0.0, 1.0)
    layer = LocalResponseNorm(3, beta=0.0)
    np.testing.assert_array_equal(layer(big), y_t)
    np.testing.assert_array_equal(layer.backward(g), dx_t)
    y_t, _ = torch_step(torch, big, g, 3, 0.0, 0.75, 2.0)
    assert np.isnan(y_t).all()
    np.testing.assert_allclose(LocalResponseNorm(3, alpha=0.0, k=2.0)(big), big / 2.0**0.75, rtol=1e-7)
    zeros = np.zeros((1, 3, 2))
    for beta, forward in [(-0.5, 0.0), (0.75, math.nan)]:
        y_t, dx_t = torch_step(torch, zeros, np.ones_like(zeros), 3, 1e-4, beta, 0.0)
        np.testing.assert_array_equal(y_t, np.full_like(zeros, forward))
        assert np.isnan(dx_t).all()
        with pytest.raises(md.NonFiniteError, match="is 0 at 6 position"):
            LocalResponseNorm(3, beta=beta, k=0.0)(zeros)


def test_repr_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    for args in [(5,), (2, 1e-3, 0.5, 2.0), (3, 0.5, -0.25, 1.5)]:
        assert repr(LocalResponseNorm(*args)) == repr(torch.nn.LocalResponseNorm(*args))


# ----------------------------------------------------------------------------- dtypes, layouts, summary


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(70)
    x = rng.normal(size=(2, 6, 4, 3))
    g = rng.normal(size=x.shape)
    layer, layer64 = LocalResponseNorm(4, 1.0, 0.75, 1.0), LocalResponseNorm(4, 1.0, 0.75, 1.0)
    y = layer(x.astype(np.float32))
    dx = layer.backward(g.astype(np.float32))
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, layer64(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, layer64.backward(g), rtol=1e-5, atol=1e-6)
    assert all(a.dtype == np.float32 for a in layer._cache[:3])  # (no float64 constant crept in)


def test_float16_is_computed_in_float32_and_rounded_once() -> None:
    rng = np.random.default_rng(71)
    x = rng.normal(scale=30.0, size=(2, 5, 3, 3)).astype(np.float16)  # squares beyond float16's range are fine
    g = rng.normal(size=x.shape).astype(np.float16)
    layer, wide = LocalResponseNorm(3, 0.5, 0.75, 1.0), LocalResponseNorm(3, 0.5, 0.75, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer(x)
        dx = layer.backward(g)
    assert y.dtype == dx.dtype == np.float16
    np.testing.assert_array_equal(y, wide(x.astype(np.float32)).astype(np.float16))
    np.testing.assert_array_equal(dx, wide.backward(g.astype(np.float32)).astype(np.float16))
    y64, _ = reference(x.astype(np.float64), 3, 0.5, 0.75, 1.0)
    np.testing.assert_allclose(y, y64, rtol=1e-3)  # within float16's rounding of the exact value


@pytest.mark.parametrize("ndim", [3, 4, 5])
def test_channel_major_and_other_layouts_give_the_same_numbers(ndim: int) -> None:
    rng = np.random.default_rng(72)
    x = rng.normal(size=(3, 5, 4, 3, 2)[:ndim])
    g = rng.normal(size=x.shape)
    layer = LocalResponseNorm(4, 1.0, 0.75, 1.0)
    y, dx = layer(x), layer.backward(g)
    for xs in (channel_major(x), np.asfortranarray(x), x[:, ::-1][:, ::-1]):
        for gs in (g, channel_major(g), np.asfortranarray(g)):
            np.testing.assert_array_equal(layer(xs), y)
            np.testing.assert_allclose(layer.backward(gs), dx, rtol=1e-15, atol=1e-16)
    y_cm = layer(channel_major(x))
    assert is_channel_major(y_cm)  # kept for the next Conv2D
    assert is_channel_major(layer.backward(channel_major(g)))


def test_backward_holds_at_most_two_full_arrays_at_a_time() -> None:
    """Its peak, above what it is given and what it returns, is two arrays of x's size: the buffer of
    g * x / (base**beta * base) becomes dx once its window sum is taken."""
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already runs (PYTHONTRACEMALLOC or a plugin): the peak would not be this one's")
    rng = np.random.default_rng(74)
    x = rng.normal(size=(4, 16, 16, 16))
    g = rng.normal(size=x.shape)
    layer = LocalResponseNorm(5, alpha=1.0)
    layer(x)
    tracemalloc.start()
    try:
        dx = layer.backward(g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dx.shape == x.shape
    assert peak < 2.25 * x.nbytes, peak / x.nbytes  # (three before)


def test_input_and_gradient_are_not_modified_and_big_endian_is_read() -> None:
    rng = np.random.default_rng(73)
    x = rng.normal(size=(2, 4, 3))
    g = rng.normal(size=x.shape)
    x_copy, g_copy = x.copy(), g.copy()
    layer = LocalResponseNorm(3, 1.0, 0.75, 1.0)
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(g, g_copy)
    y[...] = 0.0  # the output is the caller's: the cache does not hold it
    np.testing.assert_array_equal(layer.backward(g), dx)
    big = x.astype(">f8")
    y_big = layer(big)
    assert y_big.dtype == np.float64 and y_big.dtype.isnative
    np.testing.assert_array_equal(y_big, layer(x))


def test_summary_repr_and_no_state() -> None:
    layer = LocalResponseNorm(5)
    assert repr(layer) == "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)"
    assert repr(LocalResponseNorm(2, alpha=1, beta=2, k=3)) == "LocalResponseNorm(2, alpha=1.0, beta=2.0, k=3.0)"
    assert list(layer.named_parameters()) == [] and list(layer.named_buffers()) == [] and layer.state_dict() == {}
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 1.0)
    model = md.Sequential(md.Conv2D(3, 8, 3, rng=0), md.ReLU(), LocalResponseNorm(5, k=2.0), md.MaxPool2D(2),
                          md.Flatten(), md.Dense(8 * 3 * 3, 10, rng=1))
    summary = md.summarize(model, (3, 8, 8))
    row = summary.rows[2]
    assert (row.type_name, row.output_shape, row.params) == ("LocalResponseNorm", "(None, 8, 6, 6)", 0)
    assert summary.trainable == (3 * 9 + 1) * 8 + (72 + 1) * 10
    assert "LocalResponseNorm" in str(summary)
    assert "(2): LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)" in repr(model)
    md.Sequential(LocalResponseNorm(3)).astype(np.float32)  # nothing to cast


def test_numpy_numbers_are_accepted() -> None:
    layer = LocalResponseNorm(np.int64(3), alpha=np.float32(0.5), beta=np.int32(1), k=np.float64(2.0))
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (3, 0.5, 1.0, 2.0)
    assert type(layer.size) is int and all(type(v) is float for v in (layer.alpha, layer.beta, layer.k))


# ----------------------------------------------------------------------------- refusals


BAD_ARGUMENTS = [
    ({"size": 0}, ValueError, r"LocalResponseNorm: size must be a positive int, got 0"),
    ({"size": -2}, ValueError, r"LocalResponseNorm: size must be a positive int, got -2"),
    ({"size": 2.0}, ValueError, r"LocalResponseNorm: size must be a positive int, got 2.0"),
    ({"size": True}, ValueError, r"LocalResponseNorm: size must be a positive int, got True"),
    ({"size": "3"}, ValueError, r"LocalResponseNorm: size must be a positive int, got '3'"),
    ({"size": None}, ValueError, r"LocalResponseNorm: size must be a positive int, got None"),
    ({"alpha": math.nan}, ValueError, r"LocalResponseNorm: alpha must be a finite number, got nan"),
    ({"alpha": math.inf}, ValueError, r"LocalResponseNorm: alpha must be a finite number, got inf"),
    ({"alpha": "1e-4"}, TypeError, r"LocalResponseNorm: alpha must be a finite number, got '1e-4'"),
    ({"alpha": None}, TypeError, r"LocalResponseNorm: alpha must be a finite number, got None"),
    ({"beta": -math.inf}, ValueError, r"LocalResponseNorm: beta must be a finite number, got -inf"),
    ({"beta": True}, TypeError, r"LocalResponseNorm: beta must be a finite number, got True"),
    ({"beta": np.ones(1)}, TypeError, r"LocalResponseNorm: beta must be a finite number"),
    ({"k": math.nan}, ValueError, r"LocalResponseNorm: k must be a finite number, got nan"),
    ({"k": 10**400}, ValueError, r"LocalResponseNorm: k must be a finite number"),
    ({"k": 1j}, TypeError, r"LocalResponseNorm: k must be a finite number, got 1j"),
]


@pytest.mark.parametrize("kwargs, error, pattern", BAD_ARGUMENTS)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        LocalResponseNorm(**{"size": 3, **kwargs})


@pytest.mark.parametrize("kwargs, error, pattern", BAD_ARGUMENTS)
def test_bad_settings_set_later_are_refused_and_change_nothing(kwargs: dict[str, Any], error: type[Exception],
                                                              pattern: str) -> None:
    """Set after construction, they were not checked: size = 0 was a bare ZeroDivisionError at the next forward,
    2.5 a TypeError, alpha = 'a' a TypeError, beta = nan a misleading "the output overflows"."""
    rng = np.random.default_rng(82)
    x, g = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    layer = LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0)
    y = layer(x)
    cache = layer._cache
    ((name, value),) = kwargs.items()
    with pytest.raises(error, match=pattern):
        setattr(layer, name, value)
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (3, 0.5, 0.75, 2.0) and layer._cache is cache
    _, expected_dx = reference(x, 3, 0.5, 0.75, 2.0, g)
    np.testing.assert_allclose(layer.backward(g), expected_dx, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(layer(x), y)


def test_a_backward_uses_its_forwards_settings_and_the_next_forward_the_new_ones() -> None:
    """size, alpha or beta set between a forward and its backward gave a wrong dx silently (beta 0.75 -> 0.5:
    0.23 off); the backward now uses its forward's (as PixelShuffle's factor), the next forward the new ones."""
    rng = np.random.default_rng(83)
    x, g = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    settings = {"size": 3, "alpha": 0.5, "beta": 0.75, "k": 2.0}
    _, expected = reference(x, 3, 0.5, 0.75, 2.0, g)
    for changed in ({"size": 2}, {"size": 5}, {"alpha": 2.0}, {"alpha": 0.0}, {"beta": 0.5}, {"beta": 0.0},
                    {"k": 1.0}, {"size": np.int64(4), "alpha": np.float32(1.5), "beta": 2, "k": 0.5}):
        layer = LocalResponseNorm(**settings)  # type: ignore[arg-type]
        layer(x)
        for name, value in changed.items():
            setattr(layer, name, value)
        for _ in range(2):  # (a backward again: the same)
            np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-12, atol=1e-14)
        with pytest.raises(md.ShapeError, match=r"^LocalResponseNorm\(3\)\.backward: expected grad_output"):
            layer.backward(g[:1])  # (named by its forward's size)
        new = {**settings, **changed}
        assert (layer.size, layer.alpha, layer.beta, layer.k) == tuple(new.values())
        assert type(layer.size) is int and all(type(v) is float for v in (layer.alpha, layer.beta, layer.k))
        y_new, dx_new = reference(x, int(new["size"]), float(new["alpha"]), float(new["beta"]), float(new["k"]), g)
        np.testing.assert_allclose(layer(x), y_new, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.backward(g), dx_new, rtol=1e-12, atol=1e-14)
        assert repr(layer) == (f"LocalResponseNorm({new['size']}, alpha={float(new['alpha'])}, "
                               f"beta={float(new['beta'])}, k={float(new['k'])})")


def bad_forwards() -> list[tuple[Any, Any, type[Exception], str]]:
    """(layer, input, exception, message pattern)."""
    rng = np.random.default_rng(80)
    ok = rng.normal(size=(2, 4, 3, 3))
    nan, inf, huge32, zeros = ok.copy(), ok.copy(), ok.astype(np.float32), ok.copy()
    nan[1, 2, 0, 1] = np.nan
    inf[0, 3, 2, 2] = -np.inf
    huge32[1, 2, 1, 0] = 1e20  # finite, but its square overflows float32
    zeros[1, :, 2, 1] = 0.0  # every window at that pixel is zero
    default, who = LocalResponseNorm(3), r"LocalResponseNorm\(3\)"
    return [
        (default, np.zeros((2, 4)), md.ShapeError,
         rf"{who}: expected a 3-D \(or higher\) input of shape \(N, C, \*\), got shape \(2, 4\)"),
        (default, np.zeros(4), md.ShapeError, rf"{who}: expected a 3-D \(or higher\) input"),
        (default, ok.astype(np.int64), md.DTypeError, rf"{who}: expected a floating-point input, got dtype int64"),
        (default, ok > 0, md.DTypeError, rf"{who}: expected a floating-point input, got dtype bool"),
        (default, ok.astype(np.complex128), md.DTypeError, rf"{who}: expected a floating-point input"),
        (default, "x", md.DTypeError, rf"{who}: expected input as a numpy array, got str"),
        (default, [[[1.0, 2.0]], [[3.0]]], md.DTypeError, rf"{who}: could not make a numpy array of input"),
        (default, nan, md.NonFiniteError, rf"{who}: input holds 1 NaN/inf value\(s\), the first at index "
                                          r"\(1, 2, 0, 1\)"),
        (default, inf, md.NonFiniteError, rf"{who}: input holds 1 NaN/inf value\(s\), the first at index "
                                          r"\(0, 3, 2, 2\)"),
        (default, huge32, md.NonFiniteError,
         rf"{who}: the denominator's base .* is inf at 3 position\(s\), the first at index \(1, 1, 1, 0\): the squares "
         r"of the input overflow float32 \(magnitudes up to 1e\+20\); scale the input down"),
        (LocalResponseNorm(3, k=0.0), zeros, md.NonFiniteError,
         r"LocalResponseNorm\(3\): the denominator's base .* is 0 at 4 position\(s\), the first at index "
         r"\(1, 0, 2, 1\), .*k=0.0 with alpha=0.0001 allows a base of 0"),
        (LocalResponseNorm(3, beta=-0.5, k=0.0), zeros, md.NonFiniteError, r"is 0 at 4 position\(s\)"),
        (LocalResponseNorm(1, alpha=-1.0, beta=1.0), np.where(ok > 0, 1.0, 0.5), md.NonFiniteError,  # 1 - x**2
         r"LocalResponseNorm\(1\): the denominator's base .* is 0 at \d+ position\(s\), .*k=1.0 with alpha=-1.0"),
        (LocalResponseNorm(3, k=-1.0), ok, md.NonFiniteError,
         r"LocalResponseNorm\(3\): the output is NaN at 72 position\(s\), the first at index \(0, 0, 0, 0\): the "
         r"base there, -0.99\d+, is negative, and its power beta=0.75 \(fractional\) is not a real number; k=-1.0"),
        (LocalResponseNorm(3, alpha=0.0, k=1e-3), (ok * 300).astype(np.float16), md.NonFiniteError,  # x / 0.0056
         r"LocalResponseNorm\(3\): the output overflows float16 at \d+ position\(s\)"),
        # the overflow named by its cause: a window's sum of finite squares, alpha/size times it, k added to it
        (LocalResponseNorm(5), np.full((1, 5, 1), 1e19, np.float32), md.NonFiniteError,
         r"LocalResponseNorm\(5\): the denominator's base .* is inf at 3 position\(s\), the first at index "
         r"\(0, 1, 0\): the sum of the squares over the window overflows float32 \(each square is finite, the "
         r"largest 1e\+38\); scale the input down"),
        (LocalResponseNorm(1, alpha=1e308), np.full((1, 3, 2), 2.0), md.NonFiniteError,
         r"LocalResponseNorm\(1\): the denominator's base .* is inf at 6 position\(s\), the first at index "
         r"\(0, 0, 0\): alpha/size \* sum\(x\*\*2\) overflows float64 \(alpha/size=1e\+308, sum\(x\*\*2\)=4\); "
         r"use a smaller alpha"),
        (LocalResponseNorm(1, alpha=1.0, k=3e38), np.full((1, 2, 1), 1e19, np.float32), md.NonFiniteError,
         r"the first at index \(0, 0, 0\): k \+ alpha/size \* sum\(x\*\*2\) overflows float32 \(k=3e\+38, "
         r"alpha/size \* sum\(x\*\*2\)=1e\+38\)"),
        # constants float32 cannot hold (float16 is computed in float32): named, not blamed on the input
        (LocalResponseNorm(1, alpha=1e40), np.zeros((1, 3, 2), np.float32), ValueError,
         r"LocalResponseNorm\(1\): alpha/size=1e\+40 overflows float32 \(largest 3.40\d*e\+38\), the dtype the "
         r"input is computed in; use float64 or a smaller alpha"),
        (LocalResponseNorm(2, k=1e39), np.zeros((1, 3, 2), np.float16), ValueError,
         r"LocalResponseNorm\(2\): k=1e\+39 overflows float32 .*; use float64 or a smaller k"),
        (LocalResponseNorm(2, alpha=0.0, beta=1.0, k=-1e39), np.zeros((1, 3, 2), np.float32), ValueError,
         r"k=-1e\+39 overflows"),
        # a base or base**beta that only the computing dtype makes 0
        (LocalResponseNorm(3, beta=-0.5, k=1e-300), np.zeros((1, 3, 2), np.float32), md.NonFiniteError,
         r"base .* is 0 at 6 position\(s\), .*k=1e-300 is 0 in float32"),
        (LocalResponseNorm(3, beta=4.0, k=1e-20), np.zeros((1, 3, 2), np.float32), md.NonFiniteError,
         r"the denominator base\*\*beta underflows float32 to 0 at 6 position\(s\)"),
    ]


def a_good_input(layer: Any) -> np.ndarray:
    """An input the layer accepts, to fill its cache: positive bases for k = -1, below 1 for alpha = -1."""
    return np.full((2, 4, 3, 3), 1000.0 if layer.k < 0 else 0.5)


def snapshot(layer: Any) -> tuple[Any, Any]:
    return layer._cache, layer._dtype


def test_bad_inputs_are_refused_and_change_nothing() -> None:
    cases = bad_forwards()
    for with_cache in (False, True):
        for layer, bad, error, pattern in cases:
            if with_cache:  # a pass that worked: its cache must survive the refusal
                layer(a_good_input(layer))
                assert layer._cache is not None
            before = snapshot(layer)
            copy = bad.copy() if isinstance(bad, np.ndarray) else bad
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
                with pytest.raises(error, match=pattern) as info:
                    layer(bad)
            after = snapshot(layer)
            assert after[0] is before[0] and after[1] == before[1]
            if isinstance(bad, np.ndarray):
                np.testing.assert_array_equal(bad, copy)
            if error is md.NonFiniteError:  # located, for fit to name the sample
                assert info.value.shape == np.shape(bad) and len(info.value.index) == np.ndim(bad)


def test_bad_gradients_are_refused_and_change_nothing() -> None:
    layer = LocalResponseNorm(3)
    who = r"LocalResponseNorm\(3\)"
    with pytest.raises(md.BackwardBeforeForwardError, match="backward called before forward"):
        layer.backward(np.ones((2, 4, 3)))
    y = layer(np.random.default_rng(81).normal(size=(2, 4, 3)))
    for bad, error, pattern in [
        (np.ones((2, 4, 2)), md.ShapeError, rf"{who}.backward: expected grad_output of shape \(2, 4, 3\), "
                                             r"got \(2, 4, 2\)"),
        (np.ones_like(y, dtype=np.float32), md.DTypeError, rf"{who}.backward: expected grad_output of dtype float64, "
                                                            "got float32"),
        (y.tolist(), md.DTypeError, rf"{who}.backward: expected grad_output as a numpy array, got list"),
    ]:
        before = snapshot(layer)
        with pytest.raises(error, match=pattern):
            layer.backward(bad)
        assert snapshot(layer)[0] is before[0]
    assert layer.backward(np.ones_like(y)).shape == y.shape  # and the cache still works
