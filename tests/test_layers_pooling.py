"""MaxPool2D, AvgPool2D and Flatten: against naive loops, tie routing, dtype, errors, gradient checks."""

from __future__ import annotations

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
