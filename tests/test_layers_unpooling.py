"""MaxPool2D/MaxPool1D ``return_indices`` and MaxUnpool2D/MaxUnpool1D: indices against loops (ties, NaN,
-inf, padding, dilation, ceil mode), the two outputs' backward form, the unpools' scatter and gather
against loops (repeated indices too), sizes, refusals, settings, the gradient checker (alone, round
trips in a Sequential and in the model of docs/layers.md), and PyTorch."""

from __future__ import annotations

import itertools
import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

ROOT = pathlib.Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ references (loops)
def loop_pool(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int], d: tuple[int, int],
              out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """y and PyTorch's indices of a max pool on (N, C, H, W), one window at a time: the taps on the input
    in row-major order, starting from -inf at the first of them, ``val > best or isnan(val)`` wins."""
    N, C, H, W = x.shape
    y, idx = np.zeros((N, C, *out)), np.zeros((N, C, *out), dtype=np.int64)
    for n, c, i, j in itertools.product(range(N), range(C), range(out[0]), range(out[1])):
        taps = [(r, q) for r in range(i * s[0] - p[0], i * s[0] - p[0] + d[0] * (k[0] - 1) + 1, d[0])
                for q in range(j * s[1] - p[1], j * s[1] - p[1] + d[1] * (k[1] - 1) + 1, d[1])
                if 0 <= r < H and 0 <= q < W]
        best, where = -np.inf, taps[0]
        for r, q in taps:
            value = x[n, c, r, q]
            if value > best or np.isnan(value):
                best, where = value, (r, q)
        y[n, c, i, j], idx[n, c, i, j] = best, where[0] * W + where[1]
    return y, idx


def loop_unpool(x: np.ndarray, idx: np.ndarray, sizes: tuple[int, ...], g: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """y (each value at its index in its plane, the last in row-major order winning) and dx (g at the
    index for that last one, 0 for the ones it overwrote), plane by plane."""
    N, C = x.shape[:2]
    y = np.zeros((N, C, *sizes), dtype=x.dtype)
    dx = None if g is None else np.zeros_like(x)
    for n, c in itertools.product(range(N), range(C)):
        owner: dict[int, int] = {}
        for m, t in enumerate(idx[n, c].reshape(-1)):
            owner[int(t)] = m
        for t, m in owner.items():
            y[n, c].reshape(-1)[t] = x[n, c].reshape(-1)[m]
            if dx is not None and g is not None:
                dx[n, c].reshape(-1)[m] = g[n, c].reshape(-1)[t]
    return y, dx


def grid_2d() -> list[tuple[int, int, int, int, bool]]:
    """(k, s, p, d, ceil_mode) of the 2-D grid: every valid padding (at most half the kernel)."""
    return [(k, s, p, d, ceil) for k, s, p, d, ceil in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (1, 2),
                                                                           (False, True)) if 2 * p <= k]


# ------------------------------------------------------------------------------ MaxPool's indices
def test_pool_indices_match_loops_with_ties_padding_dilation_and_ceil_mode() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for k, s, p, d, ceil in grid_2d():
        x = rng.integers(-2, 3, size=(2, 2, 7, 6)).astype(np.float64)  # many ties
        pool = md.MaxPool2D(k, stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
        try:
            y, idx = pool(x)
        except md.ShapeError:  # (a dilated window on padding alone)
            continue
        expected_y, expected_idx = loop_pool(x, (k, k), (s, s), (p, p), (d, d), pool.output_shape(7, 6))
        assert idx.dtype == np.int64 and idx.shape == y.shape
        np.testing.assert_array_equal(y, expected_y)
        np.testing.assert_array_equal(idx, expected_idx, err_msg=f"k={k} s={s} p={p} d={d} ceil={ceil}")
        plain = md.MaxPool2D(k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        np.testing.assert_array_equal(plain(x), y)
        g = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(pool.backward((g, None)), plain.backward(g))
        checked += 1
    assert checked >= 50


def test_pool_indices_non_square_and_1d() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, size=(2, 3, 9, 8)).astype(np.float64)
    pool = md.MaxPool2D((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), return_indices=True)
    y, idx = pool(x)
    np.testing.assert_array_equal(idx, loop_pool(x, (3, 2), (2, 1), (1, 0), (1, 2), y.shape[2:])[1])
    for k, s, p, d, ceil in grid_2d():
        seq = rng.integers(-2, 3, size=(2, 3, 11)).astype(np.float64)
        pool1 = md.MaxPool1D(k, stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
        try:
            y1, idx1 = pool1(seq)
        except md.ShapeError:
            continue
        assert idx1.shape == y1.shape == (2, 3, *pool1.output_shape(11))
        expected = loop_pool(seq[:, :, None, :], (1, k), (1, s), (0, p), (1, d), (1, y1.shape[2]))[1][:, :, 0]
        np.testing.assert_array_equal(idx1, expected)
        assert idx1.min() >= 0 and idx1.max() < 11
        np.testing.assert_array_equal(np.take_along_axis(seq, idx1, axis=2), y1)


def test_pool_indices_of_nan_windows_and_minus_inf_inputs() -> None:
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan  # one window holds two NaN: its last one
    x[0, 0, 2:, 2:] = -np.inf  # a window of -inf: its first pixel
    _, idx = md.MaxPool2D(2, return_indices=True)(x)
    np.testing.assert_array_equal(idx[0, 0], [[5, 2], [8, 10]])
    minus_inf = np.full((1, 1, 5), -np.inf)  # padding is never the winner, not even against -inf
    _, idx1 = md.MaxPool1D(3, stride=2, padding=1, return_indices=True)(minus_inf)
    np.testing.assert_array_equal(idx1[0, 0], [0, 1, 3])


def test_pool_indices_keep_the_outputs_memory_layout() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 6, 6)).transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3)
    y, idx = md.MaxPool2D(2, return_indices=True)(x)  # a Conv2D-like channel-major input
    assert np.argsort(y.strides).tolist() == np.argsort(idx.strides).tolist()
    np.testing.assert_array_equal(idx, md.MaxPool2D(2, return_indices=True)(np.ascontiguousarray(x))[1])


def test_pool_backward_takes_one_gradient_per_output() -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6))
    pool = md.MaxPool2D(2, return_indices=True)
    y, idx = pool(x)
    g = np.random.default_rng(4).standard_normal(y.shape)
    expected = md.MaxPool2D(2)
    expected(x)
    for bad, words in [(g, r"takes their gradients as one tuple \(dy, None\), got one array"),
                       ((g,), r"got a tuple of 1"), ((g, None, None), r"got a tuple of 3"),
                       ((g, np.zeros(idx.shape)), r"the indices have no gradient: pass \(dy, None\), got an array "
                                                  r"of float64 in place of None")]:
        with pytest.raises(md.ShapeError, match=words) as refused:
            pool.backward(bad)
        assert str(refused.value).startswith("MaxPool2D(k=2, return_indices=True).backward: ")
    np.testing.assert_array_equal(pool.backward((g, None)), expected.backward(g))  # nothing changed
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 3, 3, 3\)"):
        pool.backward((g[:, :, :2], None))


def test_return_indices_is_a_setting_and_a_backward_follows_its_forward() -> None:
    x = np.random.default_rng(5).standard_normal((2, 2, 5))
    pool = md.MaxPool1D(2, stride=1)
    assert pool.return_indices is False and "return_indices" not in repr(pool)
    y = pool(x)
    pool.return_indices = True  # between a forward and its backward: the backward still takes one array
    g = np.ones(y.shape)
    dx = pool.backward(g)
    assert repr(pool) == "MaxPool1D(kernel_size=2, stride=1, return_indices=True)"
    y2, idx = pool(x)  # the next forward returns two
    np.testing.assert_array_equal(y2, y)
    assert idx.shape == y.shape
    pool.return_indices = False
    np.testing.assert_array_equal(pool.backward((g, None)), dx)
    pool(x)
    with pytest.raises(md.DTypeError, match="expected grad_output as a numpy array, got tuple"):
        pool.backward((g, None))  # its forward returned one array again
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match=r"^MaxPool1D: return_indices must be True or False") as later:
            pool.return_indices = bad
        assert pool.return_indices is False
        with pytest.raises(TypeError) as made:
            md.MaxPool1D(2, return_indices=bad)
        assert str(made.value) == str(later.value)


# ------------------------------------------------------------------------------ MaxUnpool: values and sizes
@pytest.mark.parametrize("k, s, p, shape, output_size, dup", [
    (2, None, 0, (2, 3, 3, 4), None, False),
    (3, 2, 1, (2, 2, 4, 3), None, True),
    (2, 2, 0, (1, 3, 2, 2), (5, 4), False),
    ((3, 2), (2, 1), (1, 0), (2, 2, 3, 4), None, True),
    (3, 3, 1, (3, 1, 2, 2), (1, 1, 5, 5), False),  # a full size (N, C, H, W): its spatial part
])
def test_unpool2d_matches_loops(k: Any, s: Any, p: Any, shape: tuple[int, ...], output_size: Any, dup: bool) -> None:
    rng = np.random.default_rng(6)
    unpool = md.MaxUnpool2D(k, stride=s, padding=p, output_size=output_size)
    x, idx = unpool.random_inputs(shape, rng)
    if dup:  # the same index twice in a plane, with different values
        idx[0, 0, 0, 1] = idx[0, 0, 0, 0]
        idx[-1, -1, -1, -1] = idx[-1, -1, 0, 0]
    y = unpool((x, idx))
    sizes = unpool.output_shape(*shape[2:])
    g = rng.standard_normal(y.shape)
    expected_y, expected_dx = loop_unpool(x, idx, sizes, g)
    assert y.shape == (*shape[:2], *sizes) and y.dtype == x.dtype
    np.testing.assert_array_equal(y, expected_y)
    dx, none = unpool.backward(g)
    assert none is None
    np.testing.assert_array_equal(dx, expected_dx)
    if dup:
        assert dx[0, 0, 0, 0] == 0 and dx[0, 0, 0, 1] != 0  # overwritten: no gradient


def test_unpool1d_matches_loops_and_its_sizes() -> None:
    rng = np.random.default_rng(7)
    for k, s, p, L in [(2, None, 0, 5), (3, 2, 1, 6), (4, 1, 2, 3), (1, 3, 0, 4)]:
        unpool = md.MaxUnpool1D(k, stride=s, padding=p)
        x, idx = unpool.random_inputs((2, 3, L), rng)
        idx[1, 2, -1] = idx[1, 2, 0]
        y = unpool((x, idx))
        stride = k if s is None else s
        assert y.shape == (2, 3, (L - 1) * stride - 2 * p + k) == (2, 3, *unpool.output_shape(L))
        g = rng.standard_normal(y.shape)
        expected_y, expected_dx = loop_unpool(x, idx, y.shape[2:], g)
        np.testing.assert_array_equal(y, expected_y)
        np.testing.assert_array_equal(unpool.backward(g)[0], expected_dx)
    assert md.MaxUnpool1D(2).kernel_size == (2,) and repr(md.MaxUnpool1D(2, output_size=7)) == \
        "MaxUnpool1D(kernel_size=2, output_size=7)"


def test_round_trip_puts_every_maximum_back_and_keeps_the_dtype() -> None:
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float16, np.float64):
        x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
        pool = md.MaxPool2D(2, return_indices=True)
        y, idx = pool(x)
        unpool = md.MaxUnpool2D(2, output_size=x.shape)
        u = unpool((y, idx))
        assert u.dtype == dtype and u.shape == x.shape
        kept = u != 0
        np.testing.assert_array_equal(u[kept], x[kept])  # the maxima in place, zeros elsewhere
        assert kept.sum() == y.size and (u[:, :, 4, :] == 0).all() and (u[:, :, :, 6] == 0).all()
        g = rng.standard_normal(u.shape).astype(dtype)
        dx, _ = unpool.backward(g)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, np.take_along_axis(g.reshape(2, 3, -1), idx.reshape(2, 3, -1),
                                                             axis=2).reshape(y.shape))


def test_any_integer_dtype_and_layout_of_the_indices() -> None:
    rng = np.random.default_rng(9)
    unpool = md.MaxUnpool2D(2)
    x, idx = unpool.random_inputs((2, 3, 3, 3), rng)
    y = unpool((x, idx))
    g = rng.standard_normal(y.shape)
    dx = unpool.backward(g)[0]
    for other in (idx.astype(np.int32), idx.astype(np.uint8), idx.astype(">i8"), idx.astype(np.int16)):
        np.testing.assert_array_equal(unpool((x, other)), y)
        np.testing.assert_array_equal(unpool.backward(g)[0], dx)
    # channel-major values and indices (a Conv2D's output layout): the same numbers, in that layout
    xt = x.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3)
    it = idx.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3)
    yt = unpool((xt, it))
    np.testing.assert_array_equal(yt, y)
    assert yt.strides[1] > yt.strides[0]
    dxt = unpool.backward(np.ascontiguousarray(g))[0]
    np.testing.assert_array_equal(dxt, dx)
    assert dxt.strides[1] > dxt.strides[0]


def test_output_size_rule_and_range() -> None:
    unpool = md.MaxUnpool2D(3, stride=2, padding=1)
    assert unpool.output_shape(4, 5) == (7, 9)  # (H - 1)*2 - 2 + 3
    unpool.output_size = (8, 8)
    assert unpool.output_size == (8, 8) and unpool.output_shape(4, 5) == (8, 8)
    assert unpool((np.ones((1, 1, 4, 5)), np.zeros((1, 1, 4, 5), dtype=np.int64))).shape == (1, 1, 8, 8)
    unpool.output_size = (1, 2, 9, 9)  # a full size
    assert unpool.output_size == (9, 9)
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool2D\(k=3, stride=\(2, 2\), padding=\(1, 1\)\): output_size "
                                            r"\(9, 9\) does not fit an input x of shape \(1, 1, 4, 5\): H_out must "
                                            r"be in \[6, 8\] \(within stride - 1 of the default 7, as PyTorch\), "
                                            r"got 9"):
        unpool((np.ones((1, 1, 4, 5)), np.zeros((1, 1, 4, 5), dtype=np.int64)))
    with pytest.raises(md.ShapeError, match="output_size 9 does not fit"):
        md.MaxUnpool1D(2, output_size=9).output_shape(3)
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool1D\(k=2, padding=1\): an input x of shape \(1, 1, 1\) "
                                            r"gives an empty output: \(L - 1\)\*2 - 2\*1 \+ 2 = 0; use less "
                                            r"padding, or set output_size"):
        md.MaxUnpool1D(2, padding=1)((np.ones((1, 1, 1)), np.zeros((1, 1, 1), dtype=np.int64)))
    assert md.MaxUnpool1D(2, padding=1, output_size=1).output_shape(1) == (1,)
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool2D\(k=2\): x of 0 x 3 has no pixels \(height or width 0\)$"):
        md.MaxUnpool2D(2).output_shape(0, 3)  # (as the forward refuses it)


# ------------------------------------------------------------------------------ MaxUnpool: refusals
def _state(layer: md.MaxUnpool2D | md.MaxUnpool1D) -> Any:
    return layer.kernel_size, layer.stride, layer.padding, layer.output_size


@pytest.mark.parametrize("make_x, error, words", [
    (lambda x, i: x, md.ShapeError, r"takes one tuple \(x, indices\), the values and the indices a "
                                    r"MaxPool2D\(\.\.\., return_indices=True\) returned, got one array"),
    (lambda x, i: (x, i, i), md.ShapeError, r"got a tuple of 3"),
    (lambda x, i: [x, i], md.ShapeError, r"got list"),
    (lambda x, i: (x.astype(np.int64), i), md.DTypeError, r"expected a floating-point x, got dtype int64"),
    (lambda x, i: (x[0], i[0]), md.ShapeError, r"expected a 4-D x of shape \(N, C, H, W\), got shape \(3, 2, 2\)"),
    (lambda x, i: (x[:, :, :0], i[:, :, :0]), md.ShapeError, r"has no pixels"),
    (lambda x, i: (x, i.astype(np.float64)), md.DTypeError, r"expected integer indices, got dtype float64 \(a float "
                                                            r"array is refused even when its values are whole\)"),
    (lambda x, i: (x, i > 0), md.DTypeError, r"expected integer indices, got dtype bool"),
    (lambda x, i: (x, i[:, :, :1]), md.ShapeError, r"indices must have the shape of x, \(2, 3, 2, 2\), got "
                                                   r"\(2, 3, 1, 2\)"),
    (lambda x, i: (x, np.where(np.arange(i.size).reshape(i.shape) == 5, 16, i)), md.IndexRangeError,
     r"index 16 at position \(0, 1, 0, 1\) is out of range for the output plane \(4, 4\) of 16 position\(s\); "
     r"valid indices are 0\.\.15; indices of a pooled input larger than the default output need output_size="),
    (lambda x, i: (x, np.where(np.arange(i.size).reshape(i.shape) % 7 == 3, -1, i)), md.IndexRangeError,
     r"index -1 at position \(0, 0, 1, 1\) is out of range for the output plane \(4, 4\) of 16 position\(s\) "
     r"\(negative indices do not count from the end\); valid indices are 0\.\.15 \(3 of the 24 indices are out "
     r"of range\)$"),
])
def test_unpool_refusals_name_the_layer_and_change_nothing(make_x: Any, error: type, words: str) -> None:
    rng = np.random.default_rng(10)
    unpool = md.MaxUnpool2D(2)
    x, idx = unpool.random_inputs((2, 3, 2, 2), rng)
    y = unpool((x, idx))
    g = rng.standard_normal(y.shape)
    before = _state(unpool)
    bad = make_x(x, idx)
    with pytest.raises(error, match=words) as refused:
        unpool(bad)
    assert str(refused.value).startswith("MaxUnpool2D(k=2): ")
    assert _state(unpool) == before
    dx, _ = unpool.backward(g)  # still the last accepted forward's
    np.testing.assert_array_equal(dx, loop_unpool(x, idx, (4, 4), g)[1])


def test_unpool_backward_refusals() -> None:
    unpool = md.MaxUnpool1D(2)
    with pytest.raises(md.BackwardBeforeForwardError):
        unpool.backward(np.ones((1, 1, 4)))
    y = unpool((np.ones((1, 2, 3), dtype=np.float32), np.array([[[0, 3, 4], [1, 2, 5]]])))
    np.testing.assert_array_equal(y, [[[1, 0, 0, 1, 1, 0], [0, 1, 1, 0, 0, 1]]])
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool1D\(k=2\)\.backward: expected grad_output of shape "
                                            r"\(1, 2, 6\), got \(1, 2, 5\)"):
        unpool.backward(np.ones((1, 2, 5), dtype=np.float32))
    with pytest.raises(md.DTypeError, match=r"expected grad_output of dtype float32, got float64"):
        unpool.backward(np.ones((1, 2, 6)))
    dx, _ = unpool.backward(np.arange(12, dtype=np.float32).reshape(1, 2, 6))
    np.testing.assert_array_equal(dx, [[[0, 3, 4], [7, 8, 11]]])


@pytest.mark.parametrize("name, bad, error, words", [
    ("kernel_size", 0, ValueError, "kernel_size must be an int >= 1 or a pair of them, got 0"),
    ("stride", (1, 0), ValueError, "stride must be an int >= 1 or a pair of them"),
    ("padding", -1, ValueError, "padding must be an int >= 0 or a pair of them"),
    ("output_size", (4,), ValueError, r"output_size must be None, an int >= 1 or a pair \(H, W\) of them, or a full "
                                      r"size \(N, C, H, W\), got \(4,\)"),
    ("output_size", (4, 0), ValueError, r"output_size must be None"),
    ("output_size", 2.0, ValueError, r"output_size must be None"),
    ("output_size", (True, 3), ValueError, r"output_size must be None"),
])
def test_unpool_settings_are_checked_when_set(name: str, bad: Any, error: type, words: str) -> None:
    unpool = md.MaxUnpool2D(2)
    before = _state(unpool)
    with pytest.raises(error, match=words) as later:
        setattr(unpool, name, bad)
    assert str(later.value).startswith("MaxUnpool2D: ")
    assert _state(unpool) == before
    with pytest.raises(error) as made:
        md.MaxUnpool2D(**{"kernel_size": 2, name: bad})
    assert str(made.value) == str(later.value)


@pytest.mark.parametrize("name, value", [("kernel_size", 3), ("stride", 1), ("padding", 1), ("output_size", (7, 7))])
def test_unpool_backward_uses_its_forwards_settings_and_the_next_forward_the_new(name: str, value: Any) -> None:
    rng = np.random.default_rng(11)
    plain, changed = md.MaxUnpool2D(2, stride=2), md.MaxUnpool2D(2, stride=2)
    x, idx = plain.random_inputs((2, 2, 3, 3), rng)
    y = plain((x, idx))
    np.testing.assert_array_equal(changed((x, idx)), y)
    setattr(changed, name, value)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(changed.backward(g)[0], plain.backward(g)[0])
    fresh = md.MaxUnpool2D(changed.kernel_size, stride=changed.stride, padding=changed.padding,
                           output_size=changed.output_size)
    assert repr(fresh) == repr(changed)
    fits = idx % int(np.prod(fresh.output_shape(3, 3)))
    np.testing.assert_array_equal(changed((x, fits)), fresh((x, fits)))
    assert changed((x, fits)).shape == (2, 2, *fresh.output_shape(3, 3))


def test_random_inputs_are_a_pools_indices() -> None:
    rng = np.random.default_rng(12)
    unpool = md.MaxUnpool2D(3, stride=2, padding=1)
    x, idx = unpool.random_inputs((4, 2, 5, 6), rng)
    H, W = unpool.output_shape(5, 6)
    assert x.shape == idx.shape == (4, 2, 5, 6) and idx.dtype == np.int64 and x.dtype == np.float64
    rows, cols = idx // W, idx % W
    starts_r, starts_c = np.arange(5)[:, None] * 2 - 1, np.arange(6)[None, :] * 2 - 1
    assert ((rows >= np.maximum(starts_r, 0)) & (rows <= starts_r + 2) & (rows < H)).all()
    assert ((cols >= np.maximum(starts_c, 0)) & (cols <= starts_c + 2) & (cols < W)).all()


# ------------------------------------------------------------------------------ gradient checks (float64)
@pytest.mark.parametrize("cls, k, s, p, shape, seed", [
    (md.MaxUnpool2D, 2, None, 0, (2, 3, 3, 4), 0),
    (md.MaxUnpool2D, 3, 2, 1, (2, 2, 4, 3), 1),  # overlapping windows: repeated indices
    (md.MaxUnpool2D, (2, 3), (1, 2), (1, 1), (1, 2, 3, 3), 2),
    (md.MaxUnpool1D, 2, None, 0, (3, 2, 5), 3),
    (md.MaxUnpool1D, 3, 1, 1, (2, 3, 6), 4),
])
def test_unpool_gradients_alone(cls: Any, k: Any, s: Any, p: Any, shape: tuple[int, ...], seed: int) -> None:
    unpool = cls(k, stride=s, padding=p)
    inputs = unpool.random_inputs(shape, np.random.default_rng(seed))
    report = assert_gradients_ok(unpool, inputs=inputs, seed=seed)
    assert [t.name for t in report.results] == ["input[0]"]
    assert any("input[1] is an array of int64" in note for note in report.notes)


class GatherToAll(md.MaxUnpool2D):
    """PyTorch's backward: every element gets the gradient at its index, also one that was overwritten."""

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, None]:
        targets, _, shape, _, _, _ = self._cache  # type: ignore[misc]
        return np.take(grad_output.reshape(-1), targets).reshape(shape), None


def test_the_gradient_of_a_repeated_index_goes_to_its_kept_value_only() -> None:
    x = np.random.default_rng(13).standard_normal((1, 1, 2, 2))
    idx = np.array([[[[0, 5], [5, 15]]]])
    assert_gradients_ok(md.MaxUnpool2D(2), inputs=(x, idx))
    report = md.GradientChecker(GatherToAll(2), inputs=(x, idx)).run()
    assert not report.passed and report.results[0].failed == 1 and report.results[0].worst_index == (0, 0, 0, 1)


@pytest.mark.parametrize("pool, unpool, shape, seed", [
    (lambda: md.MaxPool2D(2, return_indices=True), lambda: md.MaxUnpool2D(2), (2, 3, 6, 4), 0),
    (lambda: md.MaxPool2D(2, return_indices=True), lambda: md.MaxUnpool2D(2, output_size=(5, 7)), (2, 2, 5, 7), 1),
    (lambda: md.MaxPool2D(3, stride=2, padding=1, return_indices=True),
     lambda: md.MaxUnpool2D(3, stride=2, padding=1, output_size=(6, 6)), (2, 2, 6, 6), 2),  # overlapping
    (lambda: md.MaxPool2D(3, stride=1, return_indices=True), lambda: md.MaxUnpool2D(3, stride=1), (1, 2, 5, 5), 3),
    (lambda: md.MaxPool1D(3, stride=2, return_indices=True), lambda: md.MaxUnpool1D(3, stride=2), (3, 2, 9), 4),
    (lambda: md.MaxPool1D(2, padding=1, return_indices=True), lambda: md.MaxUnpool1D(2, padding=1), (2, 3, 8), 5),
])
def test_round_trip_in_a_sequential(pool: Any, unpool: Any, shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    model = md.Sequential(pool(), unpool())
    assert_gradients_ok(model, inputs=x, seed=seed)
    # the round trip's dx: g at each winner, once, even where overlapping windows picked it twice
    u = model(x)
    g = rng.standard_normal(u.shape)
    dx = model.backward(g)
    np.testing.assert_array_equal(dx, np.where(u != 0, g, 0))


def doc_example() -> str:
    """The python block of docs/layers.md that defines ``PoolUnpool``."""
    text = (ROOT / "docs" / "layers.md").read_text()
    start = text.rindex("```python", 0, text.index("class PoolUnpool(md.Model):"))
    return text[start + len("```python"):text.index("```", start + 3)]


def test_the_docs_model_runs_checks_and_trains() -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(doc_example(), "docs/layers.md, PoolUnpool", "exec"), namespace)
    assert "(2, 2, 7, 7)" in printed.getvalue() and "pool (MaxPool2D)" in printed.getvalue()
    model = namespace["PoolUnpool"]()
    rng = np.random.default_rng(14)
    x = rng.standard_normal((24, 1, 6, 6))
    y = np.concatenate([x, -x], axis=1)
    loss = md.MSELoss()
    before = model.evaluate(x, y, loss=loss)["loss"]
    model.fit(x, y, loss=loss, optimizer=md.Adam(model.parameters(), lr=0.01), epochs=15, batch_size=8,
              verbose=0, rng=0)
    assert model.evaluate(x, y, loss=loss)["loss"] < 0.5 * before


def test_check_layers_checks_a_pool_with_two_outputs_alone_too() -> None:
    """Checked alone, the pool with two outputs (values, indices) takes the cost sum(R * values) (its
    indices take no gradient), as the unpool and the convolution do theirs; checked as the whole model
    too, without a loss (its backward takes ``(dy, None)``)."""
    model = md.Sequential(md.Conv2D(1, 2, 3, padding=1, rng=0), md.MaxPool2D(2, return_indices=True),
                          md.MaxUnpool2D(2))
    x = np.random.default_rng(3).standard_normal((2, 1, 4, 6))
    report = md.GradientChecker(model, inputs=x, check_layers=True).run()
    assert report.passed
    assert sorted(report.layers) == ["0", "1", "2"] and all(r.passed for r in report.layers.values())
    assert [r.name for r in report.layers["1"].results] == ["input"] and report.layers["1"].results[0].checked > 0
    assert not any("not checked alone" in n for n in report.notes), report.notes
    alone = md.GradientChecker(md.MaxPool2D(2, return_indices=True), inputs=x).run()
    assert alone.passed and alone.cost == "sum_i R_i . y_i over the floating outputs (1 of 2), R_i ~ N(0, 1)"


# ------------------------------------------------------------------------------ exports and docs
def test_exported_and_documented() -> None:
    assert md.MaxUnpool2D is md.layers.MaxUnpool2D and md.MaxUnpool1D is md.layers.MaxUnpool1D
    assert {"MaxUnpool1D", "MaxUnpool2D"} <= set(md.__all__) & set(md.layers.__all__)
    text = (ROOT / "docs" / "layers.md").read_text()
    table = text[:text.index("\n## ")]
    for row in ("`MaxUnpool2D(k, stride=k, padding=0, *, output_size=None)`",
                "`MaxUnpool1D(k, stride=k, padding=0, *, output_size=None)`",
                "ceil_mode=False, return_indices=False)`"):
        assert row in table
    assert "## MaxUnpool2D and MaxUnpool1D; MaxPool's return_indices" in text
    layers = [n for n in md.__all__ if isinstance(getattr(md, n), type) and issubclass(getattr(md, n), md.Layer)
              and n not in ("Activation", "Layer", "LayerList", "Model")]
    missing = [n for n in layers if not re.search(rf"`{n}[(`]", table)]
    assert not missing, f"docs/layers.md's table lists every exported layer: add {missing}"


# ------------------------------------------------------------------------------ PyTorch
def test_pool_indices_values_and_gradients_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    compared = 0
    for k, s, p, d, ceil in grid_2d():
        x = rng.integers(-2, 3, size=(2, 3, 8, 7)).astype(np.float64)
        x[0, 0, 1, 1], x[1, 2, 0, :] = np.nan, -np.inf
        pool = md.MaxPool2D(k, stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
        try:
            y, idx = pool(x)
        except md.ShapeError:
            continue
        xt = torch.tensor(x, requires_grad=True)
        yt, it = F.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(idx, it.numpy())
        # (overlapping windows: the gradients they share are added in another order)
        np.testing.assert_allclose(pool.backward((g, None)), xt.grad.numpy(), rtol=1e-15, atol=1e-15)
        seq = x[:, :, 2]
        pool1 = md.MaxPool1D(k, stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
        try:
            y1, idx1 = pool1(seq)
        except md.ShapeError:
            continue
        yt1, it1 = F.max_pool1d(torch.tensor(seq), k, s, p, d, ceil, return_indices=True)
        np.testing.assert_array_equal(idx1, it1.numpy())
        np.testing.assert_array_equal(y1, yt1.numpy())
        compared += 1
    assert compared >= 40


def test_unpool_values_and_gradients_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(16)
    for (k, s, p), shape, output_size in itertools.product(
            [(2, 2, 0), (3, 3, 1), ((2, 3), (2, 3), (1, 0)), (2, 3, 0)], [(2, 3, 5, 7), (1, 2, 4, 4)], [False, True]):
        x = rng.standard_normal(shape)
        y, idx = md.MaxPool2D(k, stride=s, padding=p, return_indices=True)(x)
        unpool = md.MaxUnpool2D(k, stride=s, padding=p, output_size=shape if output_size else None)
        try:
            u = unpool((y, idx))
        except md.IndexRangeError:  # the default output is smaller than the pooled input: refused, as PyTorch
            with pytest.raises(RuntimeError, match="invalid max index"):
                F.max_unpool2d(torch.tensor(y), torch.tensor(idx), k, s, p)
            continue
        yt = torch.tensor(y, requires_grad=True)
        ut = F.max_unpool2d(yt, torch.tensor(idx), k, s, p, output_size=shape[2:] if output_size else None)
        g = rng.standard_normal(u.shape)
        ut.backward(torch.tensor(g))
        np.testing.assert_array_equal(u, ut.detach().numpy())
        np.testing.assert_array_equal(unpool.backward(g)[0], yt.grad.numpy())
    for k, s, p, L in [(2, 2, 0, 9), (3, 3, 1, 10), (3, 4, 0, 12), (1, 2, 0, 5)]:
        seq = rng.standard_normal((3, 2, L))
        y1, idx1 = md.MaxPool1D(k, stride=s, padding=p, return_indices=True)(seq)
        unpool1 = md.MaxUnpool1D(k, stride=s, padding=p, output_size=L)
        u1 = unpool1((y1, idx1))
        yt1 = torch.tensor(y1, requires_grad=True)
        ut1 = F.max_unpool1d(yt1, torch.tensor(idx1), k, s, p, output_size=(L,))
        g1 = rng.standard_normal(u1.shape)
        ut1.backward(torch.tensor(g1))
        np.testing.assert_array_equal(u1, ut1.detach().numpy())
        np.testing.assert_array_equal(unpool1.backward(g1)[0], yt1.grad.numpy())


def test_repeated_winners_pytorch_counts_twice_minidl_once() -> None:
    """docs/layers.md: on repeated indices PyTorch's gather gives each element the gradient; minidl's dx
    is the exact derivative (the checker passes it), which differs exactly there."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.array([[[0.0, 5.0, 1.0, 0.0, 0.0]]])
    y, idx = md.MaxPool1D(3, stride=1, return_indices=True)(x)
    np.testing.assert_array_equal(y, [[[5, 5, 1]]])
    np.testing.assert_array_equal(idx, [[[1, 1, 2]]])  # x[1] wins two windows
    model = md.Sequential(md.MaxPool1D(3, stride=1, return_indices=True), md.MaxUnpool1D(3, stride=1))
    u = model(x)
    np.testing.assert_array_equal(u, x)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool1d(xt, 3, 1, return_indices=True)
    ut = F.max_unpool1d(yt, it, 3, 1)
    np.testing.assert_array_equal(ut.detach().numpy(), u)  # the same values
    ut.backward(torch.ones_like(ut))
    np.testing.assert_array_equal(model.backward(np.ones(u.shape)), [[[0, 1, 1, 0, 0]]])  # d u / d x
    np.testing.assert_array_equal(xt.grad.numpy(), [[[0, 2, 1, 0, 0]]])
