"""MaxPool2D, AvgPool2D and Flatten: against naive loops, tie routing, dtype, errors, gradient checks."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


def naive_pool(
    x: np.ndarray, k: tuple[int, int], s: tuple[int, int], reduce: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pool output and the input gradient for upstream gradient 1 per output (first max on ties)."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1
    y = np.zeros((N, C, Ho, Wo))
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    r, q = i * s[0], j * s[1]
                    window = x[n, c, r:r + k[0], q:q + k[1]]
                    if reduce == "max":
                        y[n, c, i, j] = window.max()
                        a, b = np.unravel_index(np.argmax(window), window.shape)  # first max, row-major
                        dx[n, c, r + a, q + b] += 1.0
                    else:
                        y[n, c, i, j] = window.mean()
                        dx[n, c, r:r + k[0], q:q + k[1]] += 1.0 / window.size
    return y, dx


# kernel, stride, input shape
POOLS = [
    (2, None, (2, 3, 4, 4)),
    (2, None, (2, 2, 5, 7)),          # odd sizes: the last row/column is dropped (floor mode)
    (3, 1, (1, 2, 5, 5)),             # overlapping windows
    ((2, 3), (1, 2), (2, 2, 5, 7)),
    (2, 3, (1, 2, 7, 8)),             # stride > kernel
    (3, 2, (2, 1, 7, 7)),
]


@pytest.mark.parametrize("cls, reduce", [(md.MaxPool2D, "max"), (md.AvgPool2D, "mean")])
@pytest.mark.parametrize("k, s, shape", POOLS)
def test_matches_naive_loops(cls: type, reduce: str, k: object, s: object, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(sum(shape)).normal(size=shape)
    pool = cls(k, s)
    y = pool(x)
    expected_y, expected_dx = naive_pool(x, pool.kernel_size, pool.stride, reduce)
    np.testing.assert_allclose(y, expected_y, rtol=1e-14)
    np.testing.assert_allclose(pool.backward(np.ones_like(y)), expected_dx, rtol=1e-14)
    g = np.random.default_rng(1).normal(size=y.shape)
    dx = pool.backward(g)
    assert dx.shape == x.shape
    assert np.sum(dx) == pytest.approx(np.sum(g))  # every output's gradient lands somewhere, once


def test_max_pool_routes_ties_to_the_first_element() -> None:
    x = np.array([[[[1.0, 1.0, 0.0, 2.0],
                    [1.0, 0.0, 2.0, 2.0],
                    [3.0, 3.0, 5.0, 4.0],
                    [3.0, 3.0, 4.0, 5.0]]]])
    pool = md.MaxPool2D(2)
    np.testing.assert_array_equal(pool(x), [[[[1.0, 2.0], [3.0, 5.0]]]])
    dx = pool.backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    np.testing.assert_array_equal(dx, [[[[10.0, 0.0, 0.0, 20.0],
                                         [0.0, 0.0, 0.0, 0.0],
                                         [30.0, 0.0, 40.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0]]]])
    flat = np.zeros((1, 1, 3, 3))  # overlapping windows on a constant image: each goes to its own corner
    pool = md.MaxPool2D(2, stride=1)
    pool(flat)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dx, [[[[1, 1, 0], [1, 1, 0], [0, 0, 0]]]])


def test_stride_defaults_to_kernel_and_repr() -> None:
    pool = md.MaxPool2D(3)
    assert pool.stride == (3, 3) and pool(np.zeros((1, 1, 7, 7))).shape == (1, 1, 2, 2)
    assert repr(md.MaxPool2D(2)) == "MaxPool2D(kernel_size=(2, 2))"
    assert repr(md.AvgPool2D(2, 1)) == "AvgPool2D(kernel_size=(2, 2), stride=(1, 1))"


@pytest.mark.parametrize("cls", [md.MaxPool2D, md.AvgPool2D])
def test_float32_and_layout(cls: type) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    for pool in (cls(2), cls(3, 1)):
        y = pool(x)
        assert y.dtype == np.float32
        assert pool.backward(np.ones_like(y)).dtype == np.float32
    # a channel-major (Conv2D-style) input gives the same numbers
    xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(cls(2)(xt), cls(2)(x))


@pytest.mark.parametrize("cls", [md.MaxPool2D, md.AvgPool2D])
def test_errors(cls: type) -> None:
    name = cls.__name__
    pool = cls(2)
    with pytest.raises(md.ShapeError, match=rf"{name}\(k=2\): expected a 4-D input of shape \(N, C, H, W\), "
                                            r"got shape \(4, 4\)"):
        pool(np.zeros((4, 4)))
    with pytest.raises(md.ShapeError, match=r"smaller than the window"):
        pool(np.zeros((1, 1, 1, 4)))
    with pytest.raises(md.BackwardBeforeForwardError):
        cls(2).backward(np.zeros((1, 1, 1, 1)))
    pool(np.zeros((1, 2, 4, 4)))
    with pytest.raises(md.ShapeError, match=rf"{name}\(k=2\).backward: expected grad_output of shape "
                                            r"\(1, 2, 2, 2\), got \(1, 2, 2, 3\)"):
        pool.backward(np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        cls(2, 0)


@pytest.mark.parametrize("cls", [md.MaxPool2D, md.AvgPool2D])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k, s, shape", POOLS[:4])
def test_gradient_checker(cls: type, seed: int, k: object, s: object, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    assert_gradients_ok(cls(k, s), inputs=x, seed=seed)


def assert_same_as_torch(torch, ours: md.Layer, theirs, x: np.ndarray, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """Forward and backward (for a random upstream gradient) of a minidl and a PyTorch pool agree."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-14)


def test_pools_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for k, s, shape in POOLS:
        x = rng.normal(size=shape)
        for ours, theirs in ((md.MaxPool2D(k, s), torch.nn.MaxPool2d(k, s)),
                             (md.AvgPool2D(k, s), torch.nn.AvgPool2d(k, s))):
            assert_same_as_torch(torch, ours, theirs, x, rng)
    # ties: both route the gradient to the first maximum of each window
    ties = np.round(rng.uniform(0, 2, size=(2, 2, 6, 6)))
    for k, s in ((2, None), (3, 1), (2, 1)):
        ours, theirs = md.MaxPool2D(k, s), torch.nn.MaxPool2d(k, s)
        xt = torch.tensor(ties, requires_grad=True)
        yt = theirs(xt)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        ours(ties)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-14)


# ----------------------------------------------------------------------------- Flatten


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (3, 2, 2, 2)])
def test_flatten(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    layer = md.Flatten()
    y = layer(x)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1))
    g = np.arange(y.size, dtype=float).reshape(y.shape)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(shape))
    assert_gradients_ok(md.Flatten(), inputs=x)


def test_flatten_errors_and_dtype() -> None:
    layer = md.Flatten()
    with pytest.raises(md.ShapeError, match=r"Flatten: expected an input of shape \(N, d1, ...\).*\(3,\)"):
        layer(np.zeros(3))
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.zeros((1, 1)))
    assert layer(np.zeros((2, 2, 2), dtype=np.float32)).dtype == np.float32
    with pytest.raises(md.ShapeError, match=r"Flatten.backward: expected grad_output of shape \(2, 4\)"):
        layer.backward(np.zeros((2, 3)))


# ----------------------------------------------------------------------------- padding
# kernel, stride, padding, input shape
PADDED = [
    (3, 2, 1, (2, 2, 7, 7)),          # the ResNet stem's pool
    (2, None, 1, (1, 3, 5, 4)),
    ((3, 2), (1, 2), (1, 0), (2, 1, 4, 6)),
    (3, 1, 1, (1, 2, 3, 3)),          # overlapping windows, every border pixel in padded windows
]


def naive_padded_pool(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
                      reduce: str) -> tuple[np.ndarray, np.ndarray]:
    """Pad (with -inf for max, 0 for mean), pool with naive loops, crop the gradient."""
    fill = -np.inf if reduce == "max" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    y, dpadded = naive_pool(padded, k, s, reduce)
    return y, dpadded[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]


@pytest.mark.parametrize("cls, reduce", [(md.MaxPool2D, "max"), (md.AvgPool2D, "mean")])
@pytest.mark.parametrize("k, s, p, shape", PADDED)
def test_padding_matches_naive_loops_and_the_checker(cls: type, reduce: str, k: object, s: object, p: object,
                                                     shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(sum(shape)).normal(size=shape)
    pool = cls(k, s, p)
    y = pool(x)
    expected_y, expected_dx = naive_padded_pool(x, pool.kernel_size, pool.stride, pool.padding, reduce)
    assert y.shape == (*shape[:2], *pool.output_shape(*shape[2:]))
    np.testing.assert_allclose(y, expected_y, rtol=1e-14)
    np.testing.assert_allclose(pool.backward(np.ones_like(y)), expected_dx, rtol=1e-14)
    assert np.isfinite(y).all()  # a window always holds a pixel: -inf padding never wins
    for seed in (0, 1):
        assert_gradients_ok(cls(k, s, p), inputs=np.random.default_rng(seed).normal(size=shape), seed=seed)


def test_padding_errors_and_repr() -> None:
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"):
        md.MaxPool2D(3, padding=2)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        md.AvgPool2D(2, padding=-1)
    assert repr(md.MaxPool2D(3, 2, 1)) == "MaxPool2D(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"
    pool = md.MaxPool2D(3, 2, 1)
    pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(md.ShapeError, match=r"MaxPool2D\(k=3, stride=\(2, 2\), padding=\(1, 1\)\).backward"):
        pool.backward(np.zeros((1, 1, 3, 3)))


def test_padded_pools_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    for k, s, p, shape in PADDED:
        x = rng.normal(size=shape)
        for ours, theirs in ((md.MaxPool2D(k, s, p), torch.nn.MaxPool2d(k, s, p)),
                             (md.AvgPool2D(k, s, p), torch.nn.AvgPool2d(k, s, p))):
            assert_same_as_torch(torch, ours, theirs, x, rng)


def test_padding_never_takes_the_gradient_from_an_input_of_minus_inf() -> None:
    x = np.full((1, 1, 3, 3), -np.inf)
    x[0, 0, 2, 2] = 1.0
    pool = md.MaxPool2D(2, padding=1)
    y = pool(x)
    dx = pool.backward(np.ones_like(y))
    # windows (padded rows/cols [0, 1] and [2, 3]) hold the real pixels x[0, 0]; x[0, 1:3]; x[1:3, 0];
    # x[1:3, 1:3]: the all -inf ones send g to their first real pixel, the last is won by the 1.0
    expected = np.zeros((3, 3))
    expected[0, 0] = expected[0, 1] = expected[1, 0] = expected[2, 2] = 1.0
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("make", [
    lambda: md.MaxPool2D(2, padding=1), lambda: md.AvgPool2D(2, padding=1),
    lambda: md.Conv2D(1, 1, 1, padding=1, rng=0), lambda: md.Conv2D(1, 1, 3, stride=2, padding=1, rng=0),
])
@pytest.mark.parametrize("shape", [(1, 1, 0, 0), (2, 1, 0, 4), (2, 1, 4, 0)])
def test_an_input_without_pixels_is_refused_even_with_padding(make, shape):
    """With padding the windows fitted, so the output was -inf (max), 0 (average) or the bias (conv)."""
    layer = make()
    with pytest.raises(md.ShapeError, match=rf"input of shape {re.escape(str(shape))} has no pixels"):
        layer(np.zeros(shape))


@pytest.mark.parametrize("make", [lambda: md.MaxPool2D(2), lambda: md.Conv2D(1, 2, 3, padding=1, rng=0)])
def test_an_empty_batch_still_works(make):
    y = make()(np.zeros((0, 1, 4, 4)))
    assert y.shape[0] == 0


# ----------------------------------------------------------------------------- ceil_mode, dilation,
# count_include_pad, divisor_override


def naive_out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output size, written out with math.floor/math.ceil."""
    room = (size + 2 * p - d * (k - 1) - 1) / s
    out = (math.ceil(room) if ceil_mode else math.floor(room)) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside input or left padding
        out -= 1
    return out


def naive_pool_with_options(
    x: np.ndarray, reduce: str, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
    d: tuple[int, int] = (1, 1), ceil_mode: bool = False, count_include_pad: bool = True,
    divisor_override: int | None = None, upstream: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pool output y and dx of sum(upstream * y), one window at a time: taps off the input are skipped
    (max: first maximum in row-major order; mean: divisor as PyTorch's avg_pool2d)."""
    N, C, H, W = x.shape
    Ho, Wo = naive_out_size(H, k[0], s[0], p[0], d[0], ceil_mode), naive_out_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    y = np.zeros((N, C, Ho, Wo))
    upstream = np.ones_like(y) if upstream is None else upstream
    dx = np.zeros_like(x)
    for n, c, i, j in itertools.product(range(N), range(C), range(Ho), range(Wo)):
        r0, q0 = i * s[0] - p[0], j * s[1] - p[1]
        taps = [(r0 + a * d[0], q0 + b * d[1]) for a in range(k[0]) for b in range(k[1])]  # row-major
        pixels = [(r, q) for r, q in taps if 0 <= r < H and 0 <= q < W]
        if reduce == "max":
            r, q = max(pixels, key=lambda rq: x[n, c, rq[0], rq[1]])  # max() keeps the first of ties
            y[n, c, i, j] = x[n, c, r, q]
            dx[n, c, r, q] += upstream[n, c, i, j]
            continue
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:  # the window cut at the end of the padding
            divisor = (min(r0 + k[0], H + p[0]) - r0) * (min(q0 + k[1], W + p[1]) - q0)
        else:
            divisor = len(pixels)
        y[n, c, i, j] = sum(x[n, c, r, q] for r, q in pixels) / divisor
        for r, q in pixels:
            dx[n, c, r, q] += upstream[n, c, i, j] / divisor
    return y, dx


def distinct_values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values 0.01 apart in random order: no ties, and far apart for the checker's finite differences."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - 20.0) * 0.01


# kernel, stride, padding, dilation, ceil_mode, input shape
MAX_OPTIONS = [
    (2, None, 0, 1, True, (2, 2, 5, 5)),              # odd sizes: last windows of one row/column
    (3, 2, 1, 1, True, (1, 2, 6, 7)),                 # padding + ceil mode
    ((2, 3), (2, 2), (1, 0), 1, True, (2, 1, 4, 6)),
    (2, 1, 0, 2, False, (2, 2, 5, 6)),                # dilation, overlapping windows
    (3, 2, 1, (2, 1), False, (1, 2, 7, 6)),           # dilation + padding
    (2, 3, 1, 2, True, (1, 2, 6, 8)),                 # span 3 = stride: the non-overlapping backward
    (2, 4, 0, 3, True, (1, 1, 9, 8)),                 # dilation + ceil mode, stride > span
]

# kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, input shape
AVG_OPTIONS = [
    (2, None, 0, True, True, None, (2, 2, 5, 5)),
    (3, 2, 1, True, True, None, (1, 2, 6, 7)),        # last windows cut at the end of the padding
    (3, 2, 1, False, False, None, (2, 1, 7, 7)),      # padding not counted
    (3, 2, 1, True, False, None, (1, 2, 6, 6)),
    ((2, 3), (1, 2), (1, 1), True, False, None, (2, 1, 4, 6)),
    (2, None, 1, True, True, 3, (1, 2, 5, 5)),
    (3, 1, 0, False, True, 5, (1, 1, 4, 5)),
]


def make_max(k: object, s: object, p: object, d: object, ceil_mode: bool) -> md.MaxPool2D:
    return md.MaxPool2D(k, s, p, dilation=d, ceil_mode=ceil_mode)  # type: ignore[arg-type]


def make_avg(k: object, s: object, p: object, ceil_mode: bool, include: bool, divisor: int | None) -> md.AvgPool2D:
    return md.AvgPool2D(k, s, p, ceil_mode=ceil_mode, count_include_pad=include,  # type: ignore[arg-type]
                        divisor_override=divisor)


def test_output_sizes_in_ceil_mode_and_with_dilation() -> None:
    assert md.MaxPool2D(2, ceil_mode=True)(np.zeros((1, 1, 5, 5))).shape == (1, 1, 3, 3)
    assert md.MaxPool2D(2)(np.zeros((1, 1, 5, 5))).shape == (1, 1, 2, 2)
    # (5 + 2 - 2)/2 rounds up to 3, +1 = 4, but window 3 would start at 6 - 1 = 5: beyond the input
    assert md.AvgPool2D(2, padding=1, ceil_mode=True)(np.zeros((1, 1, 5, 5))).shape == (1, 1, 3, 3)
    assert md.AvgPool2D(3, 2, 1, ceil_mode=True)(np.zeros((1, 1, 6, 6))).shape == (1, 1, 4, 4)
    assert md.MaxPool2D(2, ceil_mode=True)(np.zeros((1, 1, 1, 1))).shape == (1, 1, 1, 1)  # as PyTorch
    assert md.MaxPool2D(3, 1, dilation=2)(np.zeros((1, 1, 7, 6))).shape == (1, 1, 3, 2)  # span 5
    assert md.MaxPool2D(2, padding=1, dilation=(3, 1))(np.zeros((1, 1, 6, 6))).shape == (1, 1, 3, 4)
    for size, k, s, p, d, ceil_mode in itertools.product(range(1, 9), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2),
                                                         (False, True)):
        if 2 * p <= k:
            pool = make_max(k, s, p, d, ceil_mode)
            try:
                pool(np.zeros((1, 1, size, size + 1)))
            except md.ShapeError as refused:  # (too small, or windows of padding alone: output_shape refuses it too)
                with pytest.raises(md.ShapeError, match=re.escape(str(refused).split(": ", 2)[2])):
                    pool.output_shape(size, size + 1)
                continue
            assert pool.output_shape(size, size + 1) == (
                naive_out_size(size, k, s, p, d, ceil_mode), naive_out_size(size + 1, k, s, p, d, ceil_mode))


def test_average_divisors_in_ceil_mode_closed_form() -> None:
    ones = np.ones((1, 1, 6, 6))
    # windows rows/cols [-1, 2), [1, 4), [3, 6), [5, 7): the last is cut at the padding's end (2
    # wide, of which pixels: 2 of 3, 3 of 3, 3 of 3, 1 of 2
    y = md.AvgPool2D(3, 2, 1, ceil_mode=True)(ones)[0, 0]
    share = [2 / 3, 1.0, 1.0, 1 / 2]
    np.testing.assert_allclose(y, np.outer(share, share), rtol=1e-15)
    assert y[0, 0] == pytest.approx(4 / 9) and y[3, 3] == pytest.approx(1 / 4) and y[0, 3] == pytest.approx(1 / 3)
    # without the padding in the count, a mean of ones is one everywhere
    np.testing.assert_allclose(md.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False)(ones),
                               np.ones((1, 1, 4, 4)), rtol=1e-15)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(md.AvgPool2D(2, divisor_override=3)(x)[0, 0],
                               [[10 / 3, 18 / 3], [42 / 3, 50 / 3]], rtol=1e-15)
    # 5x5 in ceil mode: the last row/column of windows holds 2 pixels (and 2 positions past the input
    # that are not padding: not counted, even with count_include_pad=True)
    y = md.AvgPool2D(2, ceil_mode=True)(np.arange(25.0).reshape(1, 1, 5, 5))[0, 0]
    np.testing.assert_allclose(y[2], [(20 + 21) / 2, (22 + 23) / 2, 24.0], rtol=1e-15)
    np.testing.assert_allclose(y[:, 2], [(4 + 9) / 2, (14 + 19) / 2, 24.0], rtol=1e-15)


@pytest.mark.parametrize("k, s, p, d, ceil_mode, shape", MAX_OPTIONS)
def test_max_pool_options_match_naive_loops(k: object, s: object, p: object, d: object, ceil_mode: bool,
                                            shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    x[0, 0, -1, :] = np.round(x[0, 0, -1, :])  # a few ties, in the windows hanging over the edge too
    pool = make_max(k, s, p, d, ceil_mode)
    y = pool(x)
    upstream = rng.normal(size=y.shape)
    expected_y, expected_dx = naive_pool_with_options(x, "max", pool.kernel_size, pool.stride, pool.padding,
                                                      pool.dilation, ceil_mode, upstream=upstream)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_allclose(pool.backward(upstream), expected_dx, rtol=1e-14, atol=1e-15)


def _laid_out(a: np.ndarray, layout: str) -> np.ndarray:
    """``a`` (N, C, H, W) with the same values in another memory layout."""
    if layout == "channel-major":  # as a Conv2D's output
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if layout == "channels-last":
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "padded rows":  # rows with spare columns, as Conv2D's input gradient
        wide = np.zeros((*a.shape[:3], a.shape[3] + 2), dtype=a.dtype)
        wide[..., :-2] = a
        return wide[..., :-2]
    return a.copy()


LAYOUTS = ["C", "channel-major", "channels-last", "padded rows"]


@pytest.mark.parametrize("case", [(2, None, 0, 1, False, (2, 3, 6, 6)), *MAX_OPTIONS], ids=str)
def test_max_pool_backward_in_every_memory_layout_matches_naive_loops(case: tuple) -> None:
    # the backward scatters each gradient at its winner's flat index in the layout of the gradient
    *options, shape = case
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    x[:, :, ::2] = np.round(x[:, :, ::2])  # ties
    pool = make_max(*options)
    upstream = rng.normal(size=pool(x).shape)
    _, expected = naive_pool_with_options(x, "max", pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                          options[-1], upstream=upstream)
    for x_layout, g_layout in itertools.product(LAYOUTS, LAYOUTS):
        pool(_laid_out(x, x_layout))
        dx = pool.backward(_laid_out(upstream, g_layout))
        np.testing.assert_allclose(dx, expected, rtol=1e-14, atol=1e-15,  # (overlaps: sums in another order)
                                   err_msg=f"input {x_layout}, gradient {g_layout}")


@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (1, 3), (3, 1), (2, 3), (1, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_windows_tiling_the_input_match_naive_loops_with_ties_and_infinities(kernel: tuple[int, int],
                                                                          seed: int) -> None:
    # windows that tile the input take the max row by row, then over the rows: ties must still go
    # to the first maximum in row-major order (the values below tie in most windows)
    rng = np.random.default_rng(seed)
    kh, kw = kernel
    x = rng.choice([-np.inf, -1.0, 0.0, 1.0, np.inf], size=(2, 3, 3 * kh, 4 * kw), p=[.1, .2, .3, .3, .1])
    pool = md.MaxPool2D(kernel)
    y = pool(x)
    upstream = rng.normal(size=y.shape)
    expected_y, expected_dx = naive_pool_with_options(x, "max", kernel, kernel, (0, 0), upstream=upstream)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(pool.backward(upstream), expected_dx)
    untiled = x[:, :, :, :-1]  # the last column of windows lacks a column: every window tap by tap
    _, expected_dx = naive_pool_with_options(untiled, "max", kernel, kernel, (0, 0), upstream=upstream[..., :-1])
    pool(untiled)
    np.testing.assert_array_equal(pool.backward(upstream[..., :-1]), expected_dx)


@pytest.mark.parametrize("make, shape", [
    (lambda: md.MaxPool1D(300), (2, 3, 600)),      # a global max over a sequence: 300 columns per window
    (lambda: md.MaxPool1D(300), (1, 2, 300)),
    (lambda: md.MaxPool2D((2, 300)), (1, 1, 4, 600)),
    (lambda: md.MaxPool2D((1, 257)), (1, 2, 1, 514)),
])
def test_tiling_windows_wider_than_a_byte(make, shape) -> None:
    # a window row's winning column (0..kw-1) no longer fits in one byte: it takes the type that holds it
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape)
    pool = make()
    y = pool(x)
    upstream = rng.normal(size=y.shape)
    plane = (1, *pool.kernel_size) if len(shape) == 3 else pool.kernel_size
    x4, up4 = (x[:, :, None], upstream[:, :, None]) if len(shape) == 3 else (x, upstream)
    expected_y, expected_dx = naive_pool_with_options(x4, "max", plane, plane, (0, 0), upstream=up4)
    np.testing.assert_array_equal(y, expected_y.reshape(y.shape))
    np.testing.assert_array_equal(pool.backward(upstream), expected_dx.reshape(x.shape))


def test_a_forward_that_fails_after_the_checks_leaves_no_stale_winners(monkeypatch) -> None:
    pool = md.MaxPool2D(2)
    pool(np.zeros((1, 1, 4, 5)))  # tap by tap (5 columns: the windows do not tile)

    def fail(*args: object) -> None:
        raise MemoryError("simulated")
    monkeypatch.setattr(pool, "_tiled_max", fail)
    with pytest.raises(MemoryError):
        pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(md.BackwardBeforeForwardError):  # not the last forward's winners, silently
        pool.backward(np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("width, offset_type", [(20, np.uint8), (300, np.uint16), (70_000, np.uint32)])
def test_max_pool_winners_on_wide_inputs(width: int, offset_type: type) -> None:
    # the winner's offset in its window (i*W + j) is kept in the smallest unsigned type that holds it
    rng = np.random.default_rng(width)
    x = rng.normal(size=(1, 2, 2, width))
    pool = md.MaxPool2D(2)
    y = pool(x)
    assert pool._argmax is not None and pool._argmax.dtype == offset_type
    upstream = rng.normal(size=y.shape)
    _, expected = naive_pool_with_options(x, "max", (2, 2), (2, 2), (0, 0), upstream=upstream)
    np.testing.assert_array_equal(pool.backward(upstream), expected)


@pytest.mark.parametrize("k, s, p, ceil_mode, include, divisor, shape", AVG_OPTIONS)
def test_avg_pool_options_match_naive_loops(k: object, s: object, p: object, ceil_mode: bool, include: bool,
                                            divisor: int | None, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    pool = make_avg(k, s, p, ceil_mode, include, divisor)
    y = pool(x)
    upstream = rng.normal(size=y.shape)
    expected_y, expected_dx = naive_pool_with_options(x, "mean", pool.kernel_size, pool.stride, pool.padding,
                                                      ceil_mode=ceil_mode, count_include_pad=include,
                                                      divisor_override=divisor, upstream=upstream)
    np.testing.assert_allclose(y, expected_y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(pool.backward(upstream), expected_dx, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", MAX_OPTIONS, ids=str)
def test_max_pool_options_gradient_checker(seed: int, case: tuple) -> None:
    *options, shape = case
    report = md.GradientChecker(make_max(*options), inputs=distinct_values(shape, seed), seed=seed).run()
    assert report.passed, report


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", AVG_OPTIONS, ids=str)
def test_avg_pool_options_gradient_checker(seed: int, case: tuple) -> None:
    *options, shape = case
    x = np.random.default_rng(seed).normal(size=shape)
    report = md.GradientChecker(make_avg(*options), inputs=x, seed=seed).run()
    assert report.passed, report


def test_ceil_mode_window_of_minus_inf_sends_its_gradient_to_its_first_pixel() -> None:
    x = np.full((1, 1, 3, 3), -np.inf)
    pool = md.MaxPool2D(2, ceil_mode=True)
    y = pool(x)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -np.inf))
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])  # never the missing cells


@pytest.mark.parametrize("pool", [
    md.MaxPool2D(3, 2, 1, ceil_mode=True), md.MaxPool2D(2, 1, dilation=2),
    md.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False), md.AvgPool2D(2, divisor_override=3),
], ids=repr)
def test_options_keep_float32_and_layout(pool: md.Layer) -> None:
    x = np.random.default_rng(3).normal(size=(2, 3, 7, 7)).astype(np.float32)
    y = pool(x)
    assert y.dtype == np.float32
    dx = pool.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    y64 = pool(x.astype(np.float64))
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-6)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # channel-major
    np.testing.assert_array_equal(pool(xt), y)


def test_options_in_repr_and_messages() -> None:
    assert repr(md.MaxPool2D(2, ceil_mode=True)) == "MaxPool2D(kernel_size=(2, 2), ceil_mode=True)"
    assert repr(md.MaxPool2D(3, 1, 1, dilation=2)) == \
        "MaxPool2D(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(2, 2))"
    assert repr(md.MaxPool2D(2, dilation=1, ceil_mode=False)) == "MaxPool2D(kernel_size=(2, 2))"
    assert repr(md.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=4)) == (
        "AvgPool2D(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True, "
        "count_include_pad=False, divisor_override=4)")
    assert repr(md.AvgPool2D(2, count_include_pad=True)) == "AvgPool2D(kernel_size=(2, 2))"
    pool = md.AvgPool2D(2, ceil_mode=True, count_include_pad=False)
    pool(np.zeros((1, 1, 5, 5)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "AvgPool2D(k=2, ceil_mode=True, count_include_pad=False).backward: expected grad_output of shape "
            "(1, 1, 3, 3), got (1, 1, 2, 2)")):
        pool.backward(np.zeros((1, 1, 2, 2)))


def test_option_errors() -> None:
    for bad in (1, 0, None, "yes", np.array([True])):
        with pytest.raises(TypeError, match=rf"MaxPool2D: ceil_mode must be True or False, got {re.escape(repr(bad))}"):
            md.MaxPool2D(2, ceil_mode=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"AvgPool2D: ceil_mode must be True or False"):
            md.AvgPool2D(2, ceil_mode=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"AvgPool2D: count_include_pad must be True or False"):
            md.AvgPool2D(2, count_include_pad=bad)  # type: ignore[arg-type]
    assert md.MaxPool2D(2, ceil_mode=np.bool_(True)).ceil_mode is True  # type: ignore[arg-type]  # NumPy bool: fine
    for bad_dilation in (0, -1, (1, 0), (1, 2, 3), 1.5, True):
        with pytest.raises(ValueError, match=r"MaxPool2D: dilation must be an int >= 1 or a pair of them, got "
                                             + re.escape(repr(bad_dilation))):
            md.MaxPool2D(2, dilation=bad_dilation)  # type: ignore[arg-type]
    for bad_divisor in (0, -2, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"AvgPool2D: divisor_override must be an int >= 1 or None, got "
                                             + re.escape(repr(bad_divisor))):
            md.AvgPool2D(2, divisor_override=bad_divisor)  # type: ignore[arg-type]
    assert md.AvgPool2D(2, divisor_override=np.int64(3)).divisor_override == 3
    with pytest.raises(TypeError):  # the options are keyword-only (PyTorch's 4th positional differs)
        md.MaxPool2D(2, 2, 0, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        md.AvgPool2D(2, 2, 0, True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"):
        md.MaxPool2D(3, padding=2, dilation=3)  # PyTorch's rule: half the kernel, not of its span


def test_inputs_too_small_for_the_options() -> None:
    with pytest.raises(md.ShapeError, match=re.escape(
            "MaxPool2D(k=3, stride=(1, 1), dilation=(2, 2)): input of shape (1, 1, 4, 7) is smaller than the "
            "window (5, 5): expected H + 2*padding >= 5 and W + 2*padding >= 5, got 4 and 7")):
        md.MaxPool2D(3, 1, dilation=2)(np.zeros((1, 1, 4, 7)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "AvgPool2D(k=3, stride=(1, 1), ceil_mode=True): input of shape (2, 1, 2, 3) is too small for the "
            "window (3, 3) in ceil mode: expected H + 2*padding >= 3 and W + 2*padding >= 3, got 2 and 3")):
        md.AvgPool2D(3, 1, ceil_mode=True)(np.zeros((2, 1, 2, 3)))
    # in ceil mode a stride-2 window may hang one past the input: 2 rows suffice for a 3x3 window
    assert md.AvgPool2D(3, 2, ceil_mode=True)(np.ones((1, 1, 2, 2))).tolist() == [[[[1.0]]]]
    with pytest.raises(md.ShapeError, match=r"has no pixels"):
        md.MaxPool2D(2, ceil_mode=True, dilation=2)(np.zeros((1, 1, 0, 3)))


def test_dilated_windows_on_padding_alone_are_refused() -> None:
    # taps at rows -1 and 2 of a 2-row input: all padding (PyTorch outputs -inf there, or crashes)
    pool = md.MaxPool2D(2, 1, 1, dilation=3)
    with pytest.raises(md.ShapeError, match=re.escape(
            "MaxPool2D(k=2, stride=(1, 1), padding=(1, 1), dilation=(3, 3)): input of shape (1, 1, 2, 5): "
            "the windows of output row 0 cover only padding")):
        pool(np.zeros((1, 1, 2, 5)))
    assert pool(np.zeros((1, 1, 5, 5))).shape == (1, 1, 4, 4)  # every window reaches a pixel


def test_a_refused_input_leaves_the_pool_as_it_was() -> None:
    """The refusal of windows on padding alone came after the layer had recorded the new input's shape
    (and dtype): the backward of the last good pass was then refused."""
    pool = md.MaxPool2D(2, 1, 1, dilation=2)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y = pool(x)
    with pytest.raises(md.ShapeError, match="cover only padding"):
        pool(np.zeros((1, 1, 1, 4), dtype=np.float32))
    dx = pool.backward(np.ones_like(y))
    reference = md.MaxPool2D(2, 1, 1, dilation=2)
    reference(x)
    np.testing.assert_array_equal(dx, reference.backward(np.ones_like(y)))


@pytest.mark.parametrize("make", [lambda: md.MaxPool2D(2), lambda: md.AvgPool2D(2, padding=1)])
def test_a_big_endian_input_can_be_back_propagated(make) -> None:
    """The output is native-endian, but the backward expected a big-endian grad_output."""
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    pool = make()
    y = pool(x.astype(">f4"))
    assert y.dtype == np.float32 and y.dtype.isnative
    reference = make()
    reference(x.astype(np.float32))
    np.testing.assert_array_equal(pool.backward(np.ones_like(y)), reference.backward(np.ones_like(y)))


def test_pool_options_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for k, s, p, d, ceil_mode, shape in MAX_OPTIONS:
        x = rng.normal(size=shape)
        assert_same_as_torch(torch, make_max(k, s, p, d, ceil_mode),
                             lambda t, k=k, s=s, p=p, d=d, c=ceil_mode: torch.nn.functional.max_pool2d(
                                 t, k, s, p, d, ceil_mode=c), x, rng)
        ties = np.round(rng.uniform(0, 2, size=shape))  # both route each gradient to the first maximum
        assert_same_as_torch(torch, make_max(k, s, p, d, ceil_mode),
                             torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil_mode), ties, rng)
    for k, s, p, ceil_mode, include, divisor, shape in AVG_OPTIONS:
        x = rng.normal(size=shape)
        assert_same_as_torch(torch, make_avg(k, s, p, ceil_mode, include, divisor),
                             torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=include,
                                                divisor_override=divisor), x, rng)


# ----------------------------------------------------------------------------- GlobalAvgPool2D


@pytest.mark.parametrize(("shape", "seed"), [((2, 3, 4, 5), 0), ((1, 1, 1, 1), 1), ((3, 2, 7, 3), 2)])
def test_global_avg_pool_is_the_channel_mean_and_spreads_the_gradient(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    pool = md.GlobalAvgPool2D()
    y = pool(x)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)), rtol=1e-14)
    g = rng.normal(size=y.shape)
    dx = pool.backward(g)
    np.testing.assert_allclose(dx, np.broadcast_to(g[:, :, None, None] / (shape[2] * shape[3]), shape), rtol=1e-15)
    assert dx.flags.writeable and dx.shape == shape
    report = md.GradientChecker(pool, inputs=x, seed=seed).run()
    assert report.passed and report["input"].checked == x.size


def test_global_avg_pool_in_a_cnn_passes_the_checker_and_keeps_float32() -> None:
    rng = np.random.default_rng(4)
    model = md.Sequential(md.Conv2D(2, 3, 3, padding=1, rng=0), md.ReLU(), md.GlobalAvgPool2D(), md.Dense(3, 2, rng=1))
    assert md.GradientChecker(model, inputs=rng.normal(size=(3, 2, 5, 4)), loss=md.CrossEntropyLoss(),
                              targets=np.array([0, 1, 1])).run().passed
    pool = md.GlobalAvgPool2D()
    y = pool(rng.normal(size=(2, 3, 4, 4)).astype(np.float32))
    assert y.dtype == pool.backward(np.ones_like(y)).dtype == np.float32


def test_global_avg_pool_errors() -> None:
    pool = md.GlobalAvgPool2D()
    with pytest.raises(md.ShapeError, match=r"GlobalAvgPool2D: expected a 4-D input of shape \(N, C, H, W\), "
                                            r"got shape \(2, 3\)"):
        pool(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match="has no pixels"):
        pool(np.zeros((2, 3, 0, 4)))
    with pytest.raises(md.BackwardBeforeForwardError):
        pool.backward(np.zeros((2, 3)))
    pool(np.zeros((2, 3, 4, 4)))
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 3\)"):
        pool.backward(np.zeros((2, 4)))


def test_global_avg_pool_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, g = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, 1).flatten(1)
    yt.backward(torch.tensor(g))
    pool = md.GlobalAvgPool2D()
    np.testing.assert_allclose(pool(x), yt.detach().numpy(), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(pool.backward(g), xt.grad.numpy(), rtol=1e-14)


def test_global_avg_pool_sums_float16_in_float32() -> None:
    """A 224 x 224 sum of 3s overflows float16 (inf), and 1 / (H * W) rounds badly there: PyTorch and
    np.mean accumulate in float32."""
    pool = md.GlobalAvgPool2D()
    assert pool(np.full((1, 1, 224, 224), 3.0, dtype=np.float16))[0, 0] == 3.0
    y = pool(np.ones((2, 1, 7, 7), dtype=np.float16))
    assert y.dtype == np.float16 and (y == 1.0).all()
    dx = pool.backward(np.ones((2, 1), dtype=np.float16))
    assert dx.dtype == np.float16 and np.allclose(dx, 1 / 49, rtol=1e-3)


def test_avgpool_float16_sums_in_float32_as_pytorch() -> None:
    """16 values of 6e4 overflowed a float16 sum (inf), though their mean fits; a mean beyond float16's
    range is still inf, as in PyTorch."""
    x = np.full((1, 2, 8, 8), 6e4, dtype=np.float16)
    pool = md.AvgPool2D(4)
    y = pool(x)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.float16(6e4))
    assert pool.backward(np.ones_like(y)).dtype == np.float16
    assert np.isinf(md.AvgPool2D(4, divisor_override=2)(x)).all()


@pytest.mark.parametrize("seed", range(4))
def test_avgpool_float16_equals_pytorch(seed: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-1, 1, size=(2, 3, 9, 8)) * rng.choice([1.0, 100.0, 6e4])).astype(np.float16)
    for kwargs in ({"kernel_size": 3, "stride": 2, "padding": 1}, {"kernel_size": 4, "ceil_mode": True},
                   {"kernel_size": 3, "padding": 1, "count_include_pad": False},
                   {"kernel_size": 2, "divisor_override": 3}):
        ours = md.AvgPool2D(**kwargs)(x)
        theirs = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **kwargs).numpy()
        assert ours.dtype == np.float16
        np.testing.assert_array_equal(ours, theirs)


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("window, winner", [
    ([[1, NAN], [5, 2]], 1),
    ([[NAN, 3], [NAN, 9]], 2),
    ([[2, 7], [NAN, 1]], 2),
    ([[NAN, NAN], [NAN, NAN]], 3),
    ([[-INF, NAN], [3, NAN]], 3),
    ([[1, 7], [7, 2]], 1),  # no NaN: the first maximum, as before
])
def test_a_window_holding_nan_sends_its_gradient_to_its_last_nan(window, winner) -> None:
    """As PyTorch's kernel (val > max || isnan(val)); the gradient went to the maximum before the
    first NaN (or to the first element)."""
    pool = md.MaxPool2D(2)
    x = np.array(window, dtype=np.float64)[None, None]
    y = pool(x)
    assert np.isnan(y[0, 0, 0, 0]) == bool(np.isnan(x).any())
    dx = pool.backward(np.full_like(y, 3.0))
    expected = np.zeros(4)
    expected[winner] = 3.0
    np.testing.assert_array_equal(dx.ravel(), expected)


def test_nan_routing_is_per_window_and_holds_in_1d_and_with_padding() -> None:
    x = np.array([[[1, NAN, 5, NAN, 2, 4, 9, 4, 0]]])
    pool = md.MaxPool1D(3, 3, 1)  # windows [pad, 1, nan], [5, nan, 2], [4, 9, 4] (the 0 is left over)
    y = pool(x)
    np.testing.assert_array_equal(y, [[[NAN, NAN, 9]]])
    dx = pool.backward(np.array([[[1.0, 2.0, 3.0]]]))
    np.testing.assert_array_equal(dx, [[[0, 1, 0, 2, 0, 0, 3, 0, 0]]])


def test_nan_routing_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        k, s, d = (int(v) for v in rng.integers(1, 4, size=3))
        p = int(rng.integers(0, k // 2 + 1))
        x = rng.integers(0, 4, size=(2, 2, 7, 8)).astype(np.float64)  # small integers: ties and exact sums
        for value, share in ((NAN, 0.2), (INF, 0.1), (-INF, 0.1)):
            x[rng.random(x.shape) < share] = value
        try:
            ours = md.MaxPool2D(k, s, p, dilation=d)
            y = ours(x)
        except md.ShapeError:
            continue
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.max_pool2d(xt, k, s, p, d)
        g = np.arange(1.0, y.size + 1).reshape(y.shape)
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(ours.backward(g), xt.grad.numpy())
        checked += 1
    assert checked > 100
