"""AdaptiveAvgPool2D and AdaptiveAvgPool1D: PyTorch's windows by hand, the gradient checker, any input
size in one model, dtypes, refusals, and PyTorch's values when it is installed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.layers.adaptive_pooling import windows
from minidl.testing import assert_gradients_ok


def by_hand(x: np.ndarray, out: tuple[int, ...]) -> np.ndarray:
    """Each output the mean of its window, floor(i * size / out) to ceil((i + 1) * size / out), by loops."""
    spatial = x.shape[2:]
    y = np.empty(x.shape[:2] + out)
    for index in np.ndindex(*out):
        window = tuple(slice(math.floor(i * s / o), math.ceil((i + 1) * s / o))
                       for i, s, o in zip(index, spatial, out, strict=True))
        y[(..., *index)] = x[(..., *window)].mean(axis=tuple(range(2, x.ndim)))
    return y


def test_the_windows_of_five_to_three_overlap_as_pytorchs() -> None:
    first, stop = windows(5, 3)
    np.testing.assert_array_equal(first, [0, 1, 3])
    np.testing.assert_array_equal(stop, [2, 4, 5])
    x = np.arange(5.0).reshape(1, 1, 5)
    np.testing.assert_allclose(md.AdaptiveAvgPool1D(3)(x), [[[0.5, 2.0, 3.5]]], rtol=1e-15)


@pytest.mark.parametrize("shape, out", [((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 5), (1, 1)), ((2, 1, 3, 3), (5, 7)),
                                        ((2, 2, 10, 9), (7, 7)), ((1, 1, 4, 6), (4, 6))])
def test_2d_is_the_mean_of_each_window(shape: tuple[int, ...], out: tuple[int, int]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    np.testing.assert_allclose(md.AdaptiveAvgPool2D(out)(x), by_hand(x, out), rtol=1e-13, atol=1e-15)


def test_special_sizes_global_identity_and_repeats() -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(md.AdaptiveAvgPool2D(1)(x)[:, :, 0, 0], md.GlobalAvgPool2D()(x), rtol=1e-14)
    np.testing.assert_array_equal(md.AdaptiveAvgPool2D((4, 5))(x), x)  # one input per window: exact
    np.testing.assert_array_equal(md.AdaptiveAvgPool2D((None, 5))(x), x)
    up = md.AdaptiveAvgPool2D((8, 10))(x)  # each input's window of one, twice along each axis
    np.testing.assert_array_equal(up, x.repeat(2, axis=2).repeat(2, axis=3))


@pytest.mark.parametrize("shape, out, seed", [((2, 3, 7, 5), (3, 2), 0), ((1, 2, 4, 4), (3, 3), 1),
                                              ((3, 1, 2, 5), (4, None), 2), ((2, 2, 5, 3), 1, 3)])
def test_2d_gradient_checker(shape: tuple[int, ...], out: Any, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(md.AdaptiveAvgPool2D(out), inputs=x, seed=seed)
    assert report["input"].checked == x.size


@pytest.mark.parametrize("shape, out, seed", [((2, 3, 7), 3, 0), ((1, 2, 5), 8, 1), ((3, 1, 4), 1, 2)])
def test_1d_matches_the_windows_and_the_checker(shape: tuple[int, ...], out: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    layer = md.AdaptiveAvgPool1D(out)
    np.testing.assert_allclose(layer(x), by_hand(x, (out,)), rtol=1e-13, atol=1e-15)
    assert_gradients_ok(md.AdaptiveAvgPool1D(out), inputs=x, seed=seed)


@pytest.mark.parametrize("pool, features", [(lambda: md.AdaptiveAvgPool2D(2), 12),
                                            (lambda: md.AdaptiveMaxPool2D((2, 3)), 18)])
def test_one_model_takes_images_of_any_size(pool: Any, features: int) -> None:
    """The point of an adaptive pool: the head sees (N, C, 2, 2) (or (2, 3)) whatever the image size."""
    model = md.Sequential(md.Conv2D(1, 3, 3, padding=1, rng=0), md.ReLU(), pool(), md.Flatten(),
                          md.Dense(features, 2, rng=1))
    for size, seed in ((5, 0), (8, 1), (3, 2)):
        x = np.random.default_rng(seed).normal(size=(2, 1, size, size + 1))
        assert model(x).shape == (2, 2)
        assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), seed=seed)


def test_dtypes_and_layouts() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 6, 5))
    layer = md.AdaptiveAvgPool2D((4, 3))
    want = layer(x)
    g = rng.normal(size=want.shape)
    want_dx = layer.backward(g)
    for form in (x.astype(np.float32), np.asfortranarray(x), x.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3),
                 x.astype(">f8")):
        y = layer(form)
        dtype = np.float32 if form.dtype == np.float32 else np.float64
        assert y.dtype == dtype and y.dtype.isnative
        dx = layer.backward(g.astype(dtype))
        assert dx.dtype == dtype and dx.shape == x.shape
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)
    half = x.astype(np.float16)
    y16 = layer(half)
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float64), layer(half.astype(np.float64)), rtol=2.0**-11, atol=2.0**-24)


@pytest.mark.parametrize("make, match", [
    (lambda: md.AdaptiveAvgPool2D(0), r"AdaptiveAvgPool2D: output_size must be an int >= 1 or a pair of ints >= 1 "
                                      r"or None \(None: the input's size\), got 0"),
    (lambda: md.AdaptiveAvgPool2D((2, 3, 4)), r"got \(2, 3, 4\)"),
    (lambda: md.AdaptiveAvgPool2D(2.5), "got 2.5"),
    (lambda: md.AdaptiveAvgPool2D("2"), "got '2'"),
    (lambda: md.AdaptiveAvgPool1D(None), "AdaptiveAvgPool1D: output_size must be an int >= 1, got None"),
    (lambda: md.AdaptiveAvgPool1D(True), "got True"),
])
def test_bad_output_sizes_are_refused(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_and_gradients_are_refused_and_the_last_pass_kept() -> None:
    layer = md.AdaptiveAvgPool2D(2)
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 4))
    layer(x)
    g = np.ones((2, 3, 2, 2))
    kept = layer.backward(g)
    with pytest.raises(md.ShapeError,
                       match=r"AdaptiveAvgPool2D: expected a 4-D input of shape \(N, C, H, W\), got shape \(3, 4, 4\)"):
        layer(np.ones((3, 4, 4)))
    with pytest.raises(md.ShapeError, match="AdaptiveAvgPool2D: input of shape \\(2, 3, 0, 4\\) has no pixels"):
        layer(np.ones((2, 3, 0, 4)))
    with pytest.raises(md.DTypeError, match="AdaptiveAvgPool2D"):
        layer(np.ones((2, 3, 4, 4), dtype=int))
    np.testing.assert_array_equal(layer.backward(g), kept)
    with pytest.raises(md.ShapeError, match=r"AdaptiveAvgPool2D.backward"):
        layer.backward(np.ones((2, 3, 4, 4)))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.AdaptiveAvgPool1D(2).backward(np.ones((1, 1, 2)))
    assert repr(md.AdaptiveAvgPool2D((3, None))) == "AdaptiveAvgPool2D(output_size=(3, None))"
    assert repr(md.AdaptiveAvgPool2D(7)) == "AdaptiveAvgPool2D(output_size=7)"
    assert md.AdaptiveAvgPool2D((3, None)).output_shape(10, 12) == (3, 12)


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for shape, out in (((2, 3, 7, 5), (3, 2)), ((2, 1, 3, 3), (5, 7)), ((1, 2, 4, 6), (4, None)),
                       ((2, 3, 10, 9), 7), ((2, 3, 7), 3), ((1, 2, 5), 8)):
        x = rng.normal(size=shape)
        ours = md.AdaptiveAvgPool2D(out) if len(shape) == 4 else md.AdaptiveAvgPool1D(out)
        theirs = torch.nn.AdaptiveAvgPool2d(out) if len(shape) == 4 else torch.nn.AdaptiveAvgPool1d(out)
        y = ours(x)
        g = rng.normal(size=y.shape)
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt).backward(torch.tensor(g))
        np.testing.assert_allclose(y, theirs(xt).detach().numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_a_nan_stays_in_the_windows_that_hold_it() -> None:
    """Averaged by matrices (tried first), 0 * NaN spread one NaN to every output of its channel."""
    x = np.ones((1, 1, 5, 5))
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 4, 4] = np.inf
    layer = md.AdaptiveAvgPool2D(3)  # windows [0, 2), [1, 4), [3, 5) along both axes
    y = layer(x)[0, 0]
    np.testing.assert_array_equal(np.isnan(y), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    assert y[2, 2] == np.inf and y[0, 2] == 1.0 and y[2, 0] == 1.0
    g = np.zeros((1, 1, 3, 3))
    g[0, 0, 0, 0] = np.nan
    dx = layer.backward(g)[0, 0]
    assert np.isnan(dx[:2, :2]).all() and not np.isnan(dx[2:, :]).any() and not np.isnan(dx[:, 2:]).any()


@pytest.mark.parametrize("shape, out", [((2, 3, 7, 5), (3, 2)), ((2, 1, 3, 3), (5, 7)), ((1, 2, 6, 6), (2, 3))])
def test_the_window_by_window_pass_is_the_products_pass(shape: tuple[int, ...], out: tuple[int, int]) -> None:
    """The pass taken for planes holding NaN/inf, checked on finite data against the matrix products."""
    from minidl.layers.adaptive_pooling import _spread_windows, _sum_windows

    rng = np.random.default_rng(5)
    x = rng.normal(size=shape)
    layer = md.AdaptiveAvgPool2D(out)
    y = layer(x)
    lengths = [stop - first for first, stop in (windows(s, o) for s, o in zip(shape[2:], out, strict=True))]
    area = np.multiply.outer(*lengths)
    slow = _sum_windows(_sum_windows(x, 2, out[0]), 3, out[1]) / area
    np.testing.assert_allclose(slow, y, rtol=1e-14, atol=1e-15)
    g = rng.normal(size=y.shape)
    slow_dx = _spread_windows(_spread_windows(g / area, 2, shape[2]), 3, shape[3])
    np.testing.assert_allclose(slow_dx, layer.backward(g), rtol=1e-14, atol=1e-15)


def test_what_the_review_found() -> None:
    """output_size changed after a forward was ignored (the matrices were cached by input size alone);
    one sample's NaN sent the whole batch down the other pass (1e308 became inf, float32 values moved);
    a constant input came back 0.99999994 (1/n rounded, then summed)."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 1, 6, 6))
    layer = md.AdaptiveAvgPool2D(2)
    layer(x)
    layer.output_size = (3, 3)
    y = layer(x)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(y, md.AdaptiveAvgPool2D(3)(x), rtol=1e-15)
    layer.backward(np.ones(y.shape))
    clean = rng.normal(size=(2, 3, 7, 7)).astype(np.float32)
    alone = md.AdaptiveAvgPool2D(3)(clean)
    dirty = np.concatenate([clean, clean[:1]])
    dirty[2, 1, 0, 0] = np.nan
    together = md.AdaptiveAvgPool2D(3)(dirty)
    np.testing.assert_array_equal(together[:2], alone)  # bit for bit
    np.testing.assert_array_equal(together[2, [0, 2]], alone[0, [0, 2]])
    assert np.isnan(together[2, 1, 0, 0]) and not np.isnan(together[2, 1, 1:, 1:]).any()
    big = np.full((1, 1, 2, 2), 1e308)
    assert md.AdaptiveAvgPool2D(1)(np.concatenate([big, np.full((1, 1, 2, 2), np.nan)]))[0, 0, 0, 0] == \
        md.AdaptiveAvgPool2D(1)(big)[0, 0, 0, 0]
    for dtype in (np.float32, np.float64):
        for size in range(1, 30):
            for out in (1, 2, 3, 5, 7):
                for value in (1.0, 3.0):  # sums exact, so the mean is exact, as PyTorch's
                    assert (md.AdaptiveAvgPool2D(out)(np.full((1, 1, size, size), value, dtype)) == value).all()
    np.testing.assert_array_equal(md.AdaptiveAvgPool2D([2, 3])(x), md.AdaptiveAvgPool2D((2, 3))(x))


def test_overflowing_shares_and_output_size_set_later() -> None:
    """A finite gradient whose shares overflowed where windows overlap gave inf, then 0 * inf = NaN over
    the plane (only g / area was checked); output_size = 3 set later failed inside the forward, and
    (2.5,) or (0, 2) were taken."""
    layer = md.AdaptiveAvgPool2D((3, 2))
    layer(np.zeros((1, 1, 2, 2), np.float32))
    g = np.zeros((1, 1, 3, 2), np.float32)
    g[0, 0, 0, 0] = g[0, 0, 1, 0] = 3e38
    np.testing.assert_array_equal(layer.backward(g).ravel(), np.array([np.inf, 0, 1.5e38, 0], np.float32))
    layer = md.AdaptiveAvgPool2D(2)
    layer.output_size = 3
    assert layer.output_size == 3 and layer(np.ones((1, 1, 6, 6))).shape == (1, 1, 3, 3)
    for bad in (2.5, (0, 2), "3", (1, 2, 3)):
        with pytest.raises(ValueError, match="AdaptiveAvgPool2D: output_size must be"):
            layer.output_size = bad  # type: ignore[assignment]
        assert layer.output_size == 3
    one = md.AdaptiveAvgPool1D(2)
    assert one.output_size == 2
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool1D: output_size must be an int >= 1, got \(2.5,\)"):
        one.output_size = (2.5,)  # type: ignore[assignment]


def test_a_pending_backward_uses_its_forwards_output_size() -> None:
    layer = md.AdaptiveAvgPool2D(3)
    x = np.random.default_rng(7).normal(size=(2, 3, 7, 5))
    y = layer(x)
    want = md.AdaptiveAvgPool2D(3)
    want(x)
    layer.output_size = 4  # for the next forward
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), want.backward(np.ones_like(y)))
    assert layer(x).shape == (2, 3, 4, 4)


# ---------------------------------------------------------------------------------------------- max
def max_by_hand(x: np.ndarray, out: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each output the maximum of its window by loops, PyTorch's rule: scanning in row-major order, a
    value wins if it is greater than the maximum so far or NaN (ties: the first; NaN: the last); and
    the winner's flat index in its plane."""
    spatial = x.shape[2:]
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    winner = np.empty(x.shape[:2] + out, dtype=np.intp)
    for n, c in np.ndindex(*x.shape[:2]):
        for index in np.ndindex(*out):
            window = [range(math.floor(i * s / o), math.ceil((i + 1) * s / o))
                      for i, s, o in zip(index, spatial, out, strict=True)]
            best, at = -np.inf, None
            for position in np.ndindex(*(len(w) for w in window)):
                where = tuple(w[k] for w, k in zip(window, position, strict=True))
                value = x[(n, c, *where)]
                if at is None or value > best or np.isnan(value):
                    best, at = value, int(np.ravel_multi_index(where, spatial))
            y[(n, c, *index)], winner[(n, c, *index)] = best, at
    return y, winner


@pytest.mark.parametrize("shape, out", [((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 5), (1, 1)), ((2, 1, 3, 3), (5, 7)),
                                        ((2, 2, 10, 9), (7, 7)), ((1, 1, 4, 6), (4, 6)), ((2, 2, 6, 4), (4, None)),
                                        ((2, 3, 7), (3,)), ((1, 2, 5), (8,)), ((3, 1, 9), (1,))])
@pytest.mark.parametrize("data", ["normal", "ties", "nan and inf"])
def test_max_is_each_windows_maximum_ties_first_nan_last(shape: tuple[int, ...], out: Any, data: str) -> None:
    rng = np.random.default_rng(len(shape) * 10 + len(data))
    if data == "normal":
        x = rng.normal(size=shape)
    else:  # few values: many ties; with NaN, -inf and inf among them
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
        if data == "nan and inf":
            x[x == 2], x[x == -2], x[x == 1] = np.nan, -np.inf, np.inf
    layer = md.AdaptiveMaxPool2D(out) if len(shape) == 4 else md.AdaptiveMaxPool1D(out[0])
    size = tuple(s if o is None else o for s, o in zip(shape[2:], out, strict=True))
    want, winner = max_by_hand(x, size)
    y = layer(x)
    np.testing.assert_array_equal(y, want)  # (NaN where NaN)
    g = rng.normal(size=y.shape)
    dx = layer.backward(g).reshape(*shape[:2], -1)
    expected = np.zeros_like(dx)
    for n, c in np.ndindex(*shape[:2]):
        np.add.at(expected[n, c], winner[n, c].ravel(), g[n, c].ravel())  # overlapping windows add up
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("flat_taps", [0, 10**9])  # every window axis by axis; every window tap by tap
@pytest.mark.parametrize("shape, out", [((2, 3, 7, 5), (3, 2)), ((2, 1, 3, 3), (5, 7)), ((1, 2, 12, 9), (1, 1)),
                                        ((2, 2, 10, 9), (7, 3)), ((1, 2, 9, 11), (2, None)), ((2, 3, 13), (1,)),
                                        ((2, 1, 9), (4,)), ((1, 2, 4), (9,))])
def test_max_both_ways_give_pytorchs_winners(monkeypatch: pytest.MonkeyPatch, flat_taps: int,
                                             shape: tuple[int, ...], out: Any) -> None:
    """Small windows are compared tap by tap, large ones axis by axis (rows, then the row maxima):
    forced each way, both give the loops' winners and values, ties, NaN, inf and signed zeros included."""
    from minidl.layers import adaptive_pooling

    monkeypatch.setattr(adaptive_pooling, "FLAT_TAPS", flat_taps)
    rng = np.random.default_rng(sum(shape) + flat_taps % 7)
    x = rng.integers(-3, 3, size=shape).astype(np.float64)
    x[x == 2], x[x == -3], x[x == 1] = np.nan, -np.inf, -0.0  # NaN, -inf, and zeros of both signs
    x[x == -2] = np.inf if flat_taps else -2.0
    layer = md.AdaptiveMaxPool2D(out) if len(shape) == 4 else md.AdaptiveMaxPool1D(out[0])
    size = tuple(s if o is None else o for s, o in zip(shape[2:], out, strict=True))
    want, winner = max_by_hand(x, size)
    y = layer(x)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))  # the winner's zero, -0.0 or 0.0
    np.testing.assert_array_equal(layer._argmax, winner)


def test_a_negative_zero_gradient_arrives_as_zero_either_way() -> None:
    """Where windows did not overlap the gradient was written, not added: -0.0 stayed -0.0 (PyTorch, and
    the overlapping windows' sum, give 0.0)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    for out in (2, 3):  # windows apart; overlapping
        layer = md.AdaptiveMaxPool2D(out)
        y = layer(x)
        dx = layer.backward(np.full(y.shape, -0.0))
        assert not np.signbit(dx).any()


def test_a_global_max_of_a_large_map_is_two_reductions() -> None:
    """Windows were compared position by position: a 1000 x 1000 map to one output was a million
    Python steps (4 s); now it is one reduction per axis."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 1000, 1000)).astype(np.float32)
    x[1, 2, 999, 0] = 50.0
    layer = md.AdaptiveMaxPool2D(1)
    y = layer(x)
    np.testing.assert_array_equal(y[:, :, 0, 0], x.max(axis=(2, 3)))
    dx = layer.backward(np.ones_like(y))
    assert dx[1, 2, 999, 0] == 1.0 and dx.sum() == 6.0
    np.testing.assert_array_equal(md.AdaptiveMaxPool2D(3)(x[:1, :1]), _by_blocks(x[:1, :1]))


def _by_blocks(x: np.ndarray) -> np.ndarray:
    """The 3 x 3 windows of a 1000 x 1000 map, floor(i * 1000 / 3) to ceil((i + 1) * 1000 / 3), by slices."""
    edges = [(0, 334), (333, 667), (666, 1000)]
    return np.array([[[[x[0, 0, a:b, c:d].max() for c, d in edges] for a, b in edges]]])


@pytest.mark.parametrize("shape, out, seed", [((2, 3, 7, 5), (3, 2), 0), ((1, 2, 4, 4), (3, 3), 1),
                                              ((3, 1, 2, 5), (4, None), 2), ((2, 2, 5, 3), 1, 3),
                                              ((2, 3, 7), 3, 4), ((1, 2, 5), 8, 5)])
def test_max_gradient_checker(shape: tuple[int, ...], out: Any, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    layer = md.AdaptiveMaxPool2D(out) if len(shape) == 4 else md.AdaptiveMaxPool1D(out)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert report["input"].checked == x.size


def test_max_dtypes_and_layouts() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 6, 5))
    layer = md.AdaptiveMaxPool2D((4, 3))
    want = layer(x)
    g = rng.normal(size=want.shape)
    want_dx = layer.backward(g)
    for form in (x.astype(np.float32), x.astype(np.float16), np.asfortranarray(x),
                 x.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3), x.astype(">f8"), x[:, :, ::-1, :][:, :, ::-1]):
        y = layer(form)
        dtype = np.dtype(form.dtype.name)
        assert y.dtype == dtype and y.dtype.isnative and y.shape == want.shape
        dx = layer.backward(g.astype(dtype))
        assert dx.dtype == dtype and dx.shape == x.shape
        np.testing.assert_array_equal(y, want.astype(dtype))  # a maximum is exact in any dtype
        # (where windows overlap, two gradients add up in the dtype)
        tol = {np.float16: 2e-3, np.float32: 2e-7, np.float64: 0}[dtype.type]
        np.testing.assert_allclose(dx, want_dx.astype(dtype), rtol=tol, atol=tol)


def test_max_refusals_repr_and_output_size() -> None:
    layer = md.AdaptiveMaxPool2D(2)
    x = np.random.default_rng(9).normal(size=(2, 3, 4, 4))
    layer(x)
    g = np.arange(24.0).reshape(2, 3, 2, 2)
    kept = layer.backward(g)
    with pytest.raises(md.ShapeError,
                       match=r"AdaptiveMaxPool2D: expected a 4-D input of shape \(N, C, H, W\), got shape \(3, 4, 4\)"):
        layer(np.ones((3, 4, 4)))
    with pytest.raises(md.ShapeError, match=r"AdaptiveMaxPool1D: input of shape \(2, 3, 0\) has no positions"):
        md.AdaptiveMaxPool1D(2)(np.ones((2, 3, 0)))
    with pytest.raises(md.DTypeError, match="AdaptiveMaxPool2D"):
        layer(np.ones((2, 3, 4, 4), dtype=int))
    np.testing.assert_array_equal(layer.backward(g), kept)  # the refused inputs left the last pass
    with pytest.raises(md.ShapeError, match=r"AdaptiveMaxPool2D.backward: expected grad_output of shape "
                                            r"\(2, 3, 2, 2\), got \(2, 3, 4, 4\)"):
        layer.backward(np.ones((2, 3, 4, 4)))
    with pytest.raises(md.DTypeError, match=r"AdaptiveMaxPool2D.backward"):
        layer.backward(g.astype(np.float32))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.AdaptiveMaxPool1D(2).backward(np.ones((1, 1, 2)))
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool2D: output_size must be an int >= 1 or a pair"):
        md.AdaptiveMaxPool2D((0, 2))
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool1D: output_size must be an int >= 1, got None"):
        md.AdaptiveMaxPool1D(None)  # type: ignore[arg-type]
    assert repr(md.AdaptiveMaxPool2D((3, None))) == "AdaptiveMaxPool2D(output_size=(3, None))"
    assert md.AdaptiveMaxPool2D((3, None)).output_shape(10, 12) == (3, 12)
    # (the zip() of two lengths said nothing of the layer; a wrong count or type is a TypeError, as Python's)
    for bad in ((10,), (10, 10, 10)):
        with pytest.raises(TypeError, match=r"AdaptiveMaxPool2D.output_shape: expected 2 size\(s\) \(height, width\), "
                                            r"got "):
            md.AdaptiveMaxPool2D(2).output_shape(*bad)
    with pytest.raises(TypeError, match=r"AdaptiveMaxPool2D.output_shape: height must be an int, got 2.5 \(float\)"):
        md.AdaptiveMaxPool2D(2).output_shape(2.5, 3)  # type: ignore[arg-type]
    with pytest.raises(md.ShapeError, match=r"^AdaptiveMaxPool2D: input of 0 x 10 has no pixels \(height or width "
                                            r"0\)$"):
        md.AdaptiveMaxPool2D(2).output_shape(0, 10)  # (as the forward refuses it)
    with pytest.raises(TypeError, match=r"AdaptiveAvgPool1D.output_shape: expected 1 size\(s\) \(length\), got 2"):
        md.AdaptiveAvgPool1D(2).output_shape(3, 4)
    pending = layer(x)
    layer.output_size = 3  # for the next forward; the pending backward keeps its own
    fresh = md.AdaptiveMaxPool2D(2)
    fresh(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(pending)), fresh.backward(np.ones_like(pending)))
    assert layer(x).shape == (2, 3, 3, 3)
    layer.output_size = 2
    layer(x)
    layer.output_size = (10**6, 10**6)  # a forward that fails after taking its input keeps the last pass
    with pytest.raises(MemoryError):
        layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(pending)), fresh.backward(np.ones_like(pending)))


def test_max_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    for trial in range(200):
        rank = 1 + trial % 2
        large = trial % 5 == 4  # windows of more than FLAT_TAPS positions: taken axis by axis
        spatial = tuple(int(s) for s in (rng.integers(12, 40, size=rank) if large else rng.integers(1, 12, size=rank)))
        out = tuple(int(o) for o in rng.integers(1, 4 if large else 10, size=rank))
        dtype = (np.float32, np.float64)[trial // 2 % 2]
        x = rng.integers(-2, 3, size=(2, 3, *spatial)).astype(dtype)
        if trial % 3 == 0:
            x = rng.normal(size=x.shape).astype(dtype)
        elif trial % 3 == 1:
            x[x == 2], x[x == -2], x[x == 1] = np.nan, -np.inf, -0.0
        layer = md.AdaptiveMaxPool2D(out) if rank == 2 else md.AdaptiveMaxPool1D(out[0])
        pool = torch.nn.functional.adaptive_max_pool2d if rank == 2 else torch.nn.functional.adaptive_max_pool1d
        y = layer(x)
        g = rng.normal(size=y.shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt = pool(xt, out if rank == 2 else out[0])
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(np.signbit(y), np.signbit(yt.detach().numpy()))  # zeros' signs too
        np.testing.assert_array_equal(layer.backward(g), xt.grad.numpy())  # bit for bit, overlaps included
