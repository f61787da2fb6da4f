"""MaxPool1D, AvgPool1D, GlobalAvgPool1D: against naive loops, the 2-D pools on a one-row view,
PyTorch; tie routing, dtype, refused inputs and arguments, gradient checks (fixed cases and a
hypothesis property)."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.layers.pooling import AvgPool1D, AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from minidl.testing import assert_gradients_ok


def naive_length(L: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output length, written out with math.floor/math.ceil."""
    room = (L + 2 * p - d * (k - 1) - 1) / s
    out = (math.ceil(room) if ceil_mode else math.floor(room)) + 1
    if ceil_mode and (out - 1) * s >= L + p:  # the last window must start inside input or left padding
        out -= 1
    return out


def naive_pool1d(x: np.ndarray, reduce: str, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None,
                 upstream: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """y and dx of sum(upstream * y), one window at a time: taps off the input are skipped (max: the
    first maximum, from the left; mean: divisor as PyTorch's avg_pool1d / avg_pool2d)."""
    N, C, L = x.shape
    Lo = naive_length(L, k, s, p, d, ceil_mode)
    y = np.zeros((N, C, Lo))
    upstream = np.ones_like(y) if upstream is None else upstream
    dx = np.zeros_like(x)
    for n, c, t in itertools.product(range(N), range(C), range(Lo)):
        start = t * s - p
        taps = [start + j * d for j in range(k) if 0 <= start + j * d < L]
        if reduce == "max":
            best = max(taps, key=lambda q: x[n, c, q])  # max() keeps the first of ties
            y[n, c, t] = x[n, c, best]
            dx[n, c, best] += upstream[n, c, t]
            continue
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:  # the window cut at the end of the right padding
            divisor = min(start + k, L + p) - start
        else:
            divisor = len(taps)
        y[n, c, t] = sum(x[n, c, q] for q in taps) / divisor
        for q in taps:
            dx[n, c, q] += upstream[n, c, t] / divisor
    return y, dx


def distinct_values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values 0.01 apart in random order: no ties, and far apart for the checker's finite differences."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - 20.0) * 0.01


# kernel, stride, padding, dilation, ceil_mode, input shape
MAX_CASES = [
    (2, None, 0, 1, False, (2, 3, 8)),
    (2, None, 0, 1, True, (2, 2, 7)),        # odd length: a last window of one position
    (3, 1, 1, 1, False, (1, 2, 6)),          # overlapping windows, padding
    (3, 2, 1, 1, True, (2, 2, 8)),           # padding + ceil mode
    (2, 1, 0, 2, False, (2, 2, 7)),          # dilation, overlapping windows
    (3, 2, 1, 2, False, (1, 2, 9)),          # dilation + padding
    (2, 3, 1, 2, True, (1, 2, 10)),          # span 3 == stride: the non-overlapping backward
    (2, 4, 0, 3, True, (1, 1, 11)),          # dilation + ceil mode, stride > span
]

# kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, input shape
AVG_CASES = [
    (2, None, 0, False, True, None, (2, 3, 8)),
    (2, None, 0, True, True, None, (2, 2, 7)),
    (3, 2, 1, True, True, None, (1, 2, 8)),    # the last window cut at the end of the padding
    (3, 2, 1, False, False, None, (2, 1, 9)),  # padding not counted
    (3, 2, 1, True, False, None, (1, 2, 8)),
    (4, 1, 2, False, True, None, (1, 2, 5)),   # overlapping windows
    (2, None, 1, True, True, 3, (1, 2, 7)),
    (3, 1, 0, False, True, 5, (1, 1, 6)),
]


def make_max(k: int, s: int | None, p: int, d: int, ceil_mode: bool) -> MaxPool1D:
    return MaxPool1D(k, s, p, dilation=d, ceil_mode=ceil_mode)


def make_avg(k: int, s: int | None, p: int, ceil_mode: bool, include: bool, divisor: int | None) -> AvgPool1D:
    return AvgPool1D(k, s, p, ceil_mode=ceil_mode, count_include_pad=include, divisor_override=divisor)


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_matches_naive_loops(case: tuple) -> None:
    k, s, p, d, ceil_mode, shape = case
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    x[0, 0] = np.round(x[0, 0])  # a few ties
    pool = make_max(k, s, p, d, ceil_mode)
    y = pool(x)
    assert y.shape == (*shape[:2], *pool.output_shape(shape[2]))
    upstream = rng.normal(size=y.shape)
    expected_y, expected_dx = naive_pool1d(x, "max", k, s or k, p, d, ceil_mode, upstream=upstream)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_allclose(pool.backward(upstream), expected_dx, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_matches_naive_loops(case: tuple) -> None:
    k, s, p, ceil_mode, include, divisor, shape = case
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    pool = make_avg(k, s, p, ceil_mode, include, divisor)
    y = pool(x)
    assert y.shape == (*shape[:2], *pool.output_shape(shape[2]))
    upstream = rng.normal(size=y.shape)
    expected_y, expected_dx = naive_pool1d(x, "mean", k, s or k, p, 1, ceil_mode, include, divisor, upstream)
    np.testing.assert_allclose(y, expected_y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(pool.backward(upstream), expected_dx, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_equals_max_pool_2d_on_a_one_row_view_exactly(case: tuple) -> None:
    k, s, p, d, ceil_mode, shape = case
    x = np.round(np.random.default_rng(3).normal(size=shape), 1)  # ties too
    ours = make_max(k, s, p, d, ceil_mode)
    flat = MaxPool2D((1, k), None if s is None else (1, s), (0, p), dilation=(1, d), ceil_mode=ceil_mode)
    y = ours(x)
    np.testing.assert_array_equal(y, flat(x[:, :, None, :])[:, :, 0])
    g = np.random.default_rng(4).normal(size=y.shape)
    np.testing.assert_array_equal(ours.backward(g), flat.backward(g[:, :, None, :])[:, :, 0])


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_equals_avg_pool_2d_on_a_one_row_view_exactly(case: tuple) -> None:
    k, s, p, ceil_mode, include, divisor, shape = case
    x = np.random.default_rng(3).normal(size=shape)
    ours = make_avg(k, s, p, ceil_mode, include, divisor)
    flat = AvgPool2D((1, k), None if s is None else (1, s), (0, p), ceil_mode=ceil_mode, count_include_pad=include,
                     divisor_override=divisor)
    y = ours(x)
    np.testing.assert_array_equal(y, flat(x[:, :, None, :])[:, :, 0])
    g = np.random.default_rng(4).normal(size=y.shape)
    np.testing.assert_array_equal(ours.backward(g), flat.backward(g[:, :, None, :])[:, :, 0])


def test_max_pool_routes_ties_to_the_first_element() -> None:
    x = np.array([[[1.0, 1.0, 0.0, 2.0, 3.0, 3.0, 5.0, 5.0]]])
    pool = MaxPool1D(2)
    np.testing.assert_array_equal(pool(x), [[[1.0, 2.0, 3.0, 5.0]]])
    np.testing.assert_array_equal(pool.backward(np.array([[[10.0, 20.0, 30.0, 40.0]]])),
                                  [[[10.0, 0, 0, 20.0, 30.0, 0, 40.0, 0]]])
    pool = MaxPool1D(2, stride=1)  # overlapping windows on a constant sequence: each goes to its own left end
    pool(np.zeros((1, 1, 4)))
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 3))), [[[1.0, 1.0, 1.0, 0.0]]])
    pool = MaxPool1D(2, padding=1)  # a padding cell never wins, not even against -inf
    x = np.array([[[-np.inf, -np.inf, 1.0]]])
    pool(x)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 2))), [[[1.0, 0.0, 1.0]]])


def test_average_divisors_closed_form() -> None:
    ones = np.ones((1, 1, 6))
    # windows [-1, 2), [1, 4), [3, 6), [5, 7): the last is cut at the padding's end (2 wide, 1 pixel)
    np.testing.assert_allclose(AvgPool1D(3, 2, 1, ceil_mode=True)(ones)[0, 0], [2 / 3, 1.0, 1.0, 1 / 2], rtol=1e-15)
    np.testing.assert_allclose(AvgPool1D(3, 2, 1, ceil_mode=True, count_include_pad=False)(ones), np.ones((1, 1, 4)),
                               rtol=1e-15)
    np.testing.assert_allclose(AvgPool1D(2, divisor_override=3)(np.arange(4.0)[None, None])[0, 0], [1 / 3, 5 / 3],
                               rtol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_gradient_checker(seed: int, case: tuple) -> None:
    *options, shape = case
    assert_gradients_ok(make_max(*options), inputs=distinct_values(shape, seed), seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_gradient_checker(seed: int, case: tuple) -> None:
    *options, shape = case
    assert_gradients_ok(make_avg(*options), inputs=np.random.default_rng(seed).normal(size=shape), seed=seed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_output_length_and_gradients(data: st.DataObject) -> None:
    """For random lengths and options: the output length is PyTorch's formula (and output_shape's), the
    checker passes; inputs too short are refused with the sizes needed."""
    k = data.draw(st.integers(1, 4), label="k")
    s = data.draw(st.one_of(st.none(), st.integers(1, 3)), label="stride")
    p = data.draw(st.integers(0, k // 2), label="padding")
    ceil_mode = data.draw(st.booleans(), label="ceil_mode")
    L = data.draw(st.integers(1, 10), label="L")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    stride = k if s is None else s
    if data.draw(st.booleans(), label="max"):
        d = data.draw(st.integers(1, 3), label="dilation")
        pool: md.Layer = MaxPool1D(k, s, p, dilation=d, ceil_mode=ceil_mode)
        x = distinct_values((2, 2, L), seed)
    else:
        d = 1
        pool = AvgPool1D(k, s, p, ceil_mode=ceil_mode, count_include_pad=data.draw(st.booleans(), label="include"),
                         divisor_override=data.draw(st.one_of(st.none(), st.integers(1, 5)), label="divisor"))
        x = np.random.default_rng(seed).normal(size=(2, 2, L))
    span = d * (k - 1) + 1
    Lo = naive_length(L, k, stride, p, d, ceil_mode)
    if Lo < 1 or L + 2 * p < (span - stride + 1 if ceil_mode else span):
        event("refused: too short")
        with pytest.raises(md.ShapeError, match=r"expected L \+ 2\*padding >= \d+, got " + str(L + 2 * p)):
            pool(x)
        return
    starts = [t * stride - p for t in range(Lo)]
    if any(all(not 0 <= a + j * d < L for j in range(k)) for a in starts):  # a window of padding alone
        event("refused: a window of padding alone")
        with pytest.raises(md.ShapeError, match="cover only padding"):
            pool(x)
        return
    event("checked")
    assert pool.output_shape(L) == (Lo,)  # type: ignore[attr-defined]
    assert pool(x).shape == (2, 2, Lo)
    assert_gradients_ok(pool, inputs=x, seed=seed)


@pytest.mark.parametrize("pool", [
    MaxPool1D(3, 2, 1, ceil_mode=True), MaxPool1D(2, 1, dilation=2),
    AvgPool1D(3, 2, 1, ceil_mode=True, count_include_pad=False), AvgPool1D(2, divisor_override=3),
], ids=repr)
def test_float32_and_layout(pool: md.Layer) -> None:
    x = np.random.default_rng(3).normal(size=(2, 3, 9)).astype(np.float32)
    y = pool(x)
    assert y.dtype == np.float32
    dx = pool.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    np.testing.assert_allclose(y, pool(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)  # channel-major, as a Conv1D's output
    np.testing.assert_array_equal(pool(xt), y)


def test_avg_pool_sums_float16_in_float32_and_reads_big_endian() -> None:
    x = np.full((1, 2, 16), 6e4, dtype=np.float16)
    pool = AvgPool1D(16)
    assert pool(x).dtype == np.float16 and (pool(x) == np.float16(6e4)).all()  # the float16 sum overflows
    assert np.isinf(AvgPool1D(4, divisor_override=2)(x)).all()  # a mean beyond float16 is inf, as PyTorch
    for other in (MaxPool1D(2), AvgPool1D(2, padding=1)):
        y = other(np.arange(16.0).reshape(1, 2, 8).astype(">f4"))
        assert y.dtype == np.float32 and y.dtype.isnative
        assert other.backward(np.ones_like(y)).shape == (1, 2, 8)


def test_repr_attributes_and_stride_default() -> None:
    pool = MaxPool1D(3)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.dilation) == ((3,), (3,), (0,), (1,))
    assert pool(np.zeros((1, 1, 7))).shape == (1, 1, 2)
    assert repr(pool) == "MaxPool1D(kernel_size=3)"
    assert repr(MaxPool1D(3, 1, 1, dilation=2, ceil_mode=True)) == \
        "MaxPool1D(kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=True)"
    assert repr(AvgPool1D(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=4)) == (
        "AvgPool1D(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=4)")
    assert repr(GlobalAvgPool1D()) == "GlobalAvgPool1D()"
    assert MaxPool1D((2,), (1,), (1,), dilation=(2,)).kernel_size == (2,)  # PyTorch's 1-tuples are accepted


@pytest.mark.parametrize("cls", [MaxPool1D, AvgPool1D])
def test_errors_name_the_1d_layer_and_1d_shapes(cls: type) -> None:
    name = cls.__name__
    pool = cls(2)
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(k=2): expected a 3-D input of shape (N, C, L), got shape (1, 2, 1, 4)")):
        pool(np.zeros((1, 2, 1, 4)))
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(k=3, stride=1): input of shape (1, 1, 2) is smaller than the window 3: "
            "expected L + 2*padding >= 3, got 2")):
        cls(3, 1)(np.zeros((1, 1, 2)))
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(k=3, stride=1, ceil_mode=True): input of shape (2, 1, 2) is too small for the window 3 in "
            "ceil mode: expected L + 2*padding >= 3, got 2")):
        cls(3, 1, ceil_mode=True)(np.zeros((2, 1, 2)))
    assert cls(3, 2, ceil_mode=True)(np.ones((1, 1, 2))).tolist() == [[[1.0]]]  # hangs one past the input
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(k=2, padding=1): input of shape (2, 1, 0) has no positions (length 0)")):
        cls(2, padding=1)(np.zeros((2, 1, 0)))
    assert pool(np.zeros((0, 1, 4))).shape == (0, 1, 2)  # an empty batch is fine
    with pytest.raises(md.BackwardBeforeForwardError):
        cls(2).backward(np.zeros((1, 1, 1)))
    pool(np.zeros((1, 2, 5)))
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(k=2).backward: expected grad_output of shape (1, 2, 2), got (1, 2, 1, 2)")):
        pool.backward(np.zeros((1, 2, 1, 2)))
    with pytest.raises(ValueError, match=re.escape(
            f"{name}: padding 2 must be at most half the kernel size 3 (as PyTorch): a window must hold a "
            "position of the input")):
        cls(3, padding=2)
    for bad in (0, (2, 2), 1.5, True):
        with pytest.raises(ValueError, match=re.escape(f"{name}: kernel_size must be an int >= 1, got {bad!r}")):
            cls(bad)
    with pytest.raises(ValueError, match=f"{name}: stride must be an int >= 1, got 0"):
        cls(2, 0)
    with pytest.raises(TypeError, match=f"{name}: ceil_mode must be True or False, got 1"):
        cls(2, ceil_mode=1)
    with pytest.raises(TypeError):  # the options are keyword-only (PyTorch's 4th positional differs)
        cls(2, 2, 0, True)


def test_option_errors_and_windows_on_padding_alone() -> None:
    with pytest.raises(ValueError, match=re.escape("MaxPool1D: dilation must be an int >= 1, got (1, 2)")):
        MaxPool1D(2, dilation=(1, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AvgPool1D: count_include_pad must be True or False"):
        AvgPool1D(2, count_include_pad=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"AvgPool1D: divisor_override must be an int >= 1 or None, got 2.5"):
        AvgPool1D(2, divisor_override=2.5)  # type: ignore[arg-type]
    pool = MaxPool1D(2, 1, 1, dilation=3)  # taps at -1 and 2 of a 2-long input: all padding
    with pytest.raises(md.ShapeError, match=re.escape(
            "MaxPool1D(k=2, stride=1, padding=1, dilation=3): input of shape (1, 1, 2): the windows of output "
            "position 0 cover only padding (dilation skips every position of the input); use less padding or "
            "dilation")):
        pool(np.zeros((1, 1, 2)))
    assert pool(np.zeros((1, 1, 5))).shape == (1, 1, 4)


@pytest.mark.parametrize("make, bad", [
    (lambda: MaxPool1D(2, 1, 1, dilation=2), np.zeros((1, 1, 1), dtype=np.float32)),  # padding alone
    (lambda: MaxPool1D(3), np.zeros((1, 1, 2), dtype=np.float32)),
    (lambda: AvgPool1D(3, ceil_mode=True, padding=1), np.zeros((2, 1, 1, 4))),
    (lambda: GlobalAvgPool1D(), np.zeros((1, 1, 0), dtype=np.float32)),
])
def test_a_refused_input_leaves_the_pool_as_it_was(make: Any, bad: np.ndarray) -> None:
    pool, reference = make(), make()
    x = np.random.default_rng(0).normal(size=(2, 1, 6))
    y = pool(x)
    reference(x)
    with pytest.raises(md.ShapeError):
        pool(bad)
    g = np.random.default_rng(1).normal(size=y.shape)
    np.testing.assert_array_equal(pool.backward(g), reference.backward(g))


def test_pools_in_a_sequential_after_conv1d() -> None:
    from minidl.layers.conv import Conv1D

    model = md.Sequential(Conv1D(2, 3, 3, padding=1, rng=0), md.ReLU(), AvgPool1D(3, 2, 1, ceil_mode=True),
                          MaxPool1D(2, padding=1, dilation=2), GlobalAvgPool1D(), md.Dense(3, 2, rng=1))
    x = np.random.default_rng(5).normal(size=(3, 2, 11))
    assert model(x).shape == (3, 2)
    assert "(None, 3, 6)" in str(md.summarize(model, (2, 11)))
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 1, 1]))


# ----------------------------------------------------------------------------- GlobalAvgPool1D


@pytest.mark.parametrize(("shape", "seed"), [((2, 3, 5), 0), ((1, 1, 1), 1), ((3, 2, 9), 2)])
def test_global_avg_pool_is_the_channel_mean_and_spreads_the_gradient(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    pool = GlobalAvgPool1D()
    y = pool(x)
    assert y.shape == shape[:2]  # (N, C), as GlobalAvgPool2D's
    np.testing.assert_allclose(y, x.mean(axis=2), rtol=1e-14)
    np.testing.assert_array_equal(y, GlobalAvgPool2D()(x[:, :, None, :]))
    g = rng.normal(size=y.shape)
    dx = pool.backward(g)
    np.testing.assert_allclose(dx, np.broadcast_to(g[:, :, None] / shape[2], shape), rtol=1e-15)
    assert dx.flags.writeable and dx.shape == shape
    report = assert_gradients_ok(pool, inputs=x, seed=seed)
    assert report["input"].checked == x.size


def test_global_avg_pool_dtype_and_errors() -> None:
    pool = GlobalAvgPool1D()
    y = pool(np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32))
    assert y.dtype == pool.backward(np.ones_like(y)).dtype == np.float32
    assert pool(np.full((1, 1, 50000), 3.0, dtype=np.float16))[0, 0] == 3.0  # summed in float32
    with pytest.raises(md.ShapeError, match=re.escape(
            "GlobalAvgPool1D: expected a 3-D input of shape (N, C, L), got shape (2, 3, 4, 4)")):
        pool(np.zeros((2, 3, 4, 4)))
    with pytest.raises(md.ShapeError, match=re.escape("GlobalAvgPool1D: input of shape (2, 3, 0) has no positions")):
        pool(np.zeros((2, 3, 0)))
    with pytest.raises(md.BackwardBeforeForwardError):
        GlobalAvgPool1D().backward(np.zeros((2, 3)))
    pool(np.zeros((2, 3, 4)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "GlobalAvgPool1D.backward: expected grad_output of shape (2, 3), got (2, 3, 1)")):
        pool.backward(np.zeros((2, 3, 1)))


# ----------------------------------------------------------------------------- PyTorch


def random_max_cases(count: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    cases: list[tuple] = []
    while len(cases) < count:
        k = int(rng.integers(1, 6))
        case = (k, None if rng.random() < 0.3 else int(rng.integers(1, 5)), int(rng.integers(0, k // 2 + 1)),
                int(rng.integers(1, 4)), bool(rng.integers(2)), (int(rng.integers(1, 4)), 2, int(rng.integers(1, 16))))
        k, s, p, d, ceil_mode, shape = case
        if naive_length(shape[2], k, s or k, p, d, ceil_mode) >= 1 and shape[2] + 2 * p >= d * (k - 1) + 1:
            cases.append(case)
    return cases


def random_avg_cases(count: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    cases: list[tuple] = []
    while len(cases) < count:
        k = int(rng.integers(1, 6))
        case = (k, None if rng.random() < 0.3 else int(rng.integers(1, 5)), int(rng.integers(0, k // 2 + 1)),
                bool(rng.integers(2)), bool(rng.integers(2)), None if rng.random() < 0.6 else int(rng.integers(1, 7)),
                (int(rng.integers(1, 4)), 2, int(rng.integers(1, 16))))
        k, s, p, ceil_mode, _, _, shape = case
        if naive_length(shape[2], k, s or k, p, 1, ceil_mode) >= 1 and shape[2] + 2 * p >= k:
            cases.append(case)
    return cases


def test_pools_against_pytorch_on_a_random_grid() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)

    def run(theirs: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        return yt.detach().numpy(), g, xt.grad.numpy()

    refused = 0
    padding_alone = (2, 1, 1, 3, False, (1, 2, 2))  # taps at -1 and 2 of a 2-long input
    for case in [*MAX_CASES, padding_alone, *random_max_cases(80, seed=1)]:
        k, s, p, d, ceil_mode, shape = case
        theirs = torch.nn.MaxPool1d(k, s, p, d, ceil_mode=ceil_mode)
        for x in (rng.normal(size=shape), np.round(rng.uniform(0, 2, size=shape))):  # ties: the first maximum
            expected, g, dx = run(theirs, x)
            ours = make_max(k, s, p, d, ceil_mode)
            if np.isneginf(expected).any():  # a window of padding alone: PyTorch gives -inf, we refuse
                with pytest.raises(md.ShapeError, match="cover only padding"):
                    ours(x)
                refused += 1
                continue
            np.testing.assert_array_equal(ours(x), expected, err_msg=str(case))
            np.testing.assert_allclose(ours.backward(g), dx, rtol=1e-12, atol=1e-12, err_msg=str(case))
    assert refused == 2  # the padding-alone case (twice), and only it: the rest of the grid is compared
    for case in AVG_CASES + random_avg_cases(80, seed=2):
        k, s, p, ceil_mode, include, divisor, shape = case
        if divisor is None:
            theirs = torch.nn.AvgPool1d(k, s, p, ceil_mode=ceil_mode, count_include_pad=include)
        else:  # PyTorch's AvgPool1d has no divisor_override: its 2-D pool on the one-row view has
            def theirs(t: Any, k: int = k, s: int | None = s, p: int = p, c: bool = ceil_mode, i: bool = include,
                       v: int = divisor) -> Any:
                return F.avg_pool2d(t[:, :, None, :], (1, k), None if s is None else (1, s), (0, p), ceil_mode=c,
                                    count_include_pad=i, divisor_override=v)[:, :, 0, :]
        x = rng.normal(size=shape)
        expected, g, dx = run(theirs, x)
        mean = make_avg(k, s, p, ceil_mode, include, divisor)
        np.testing.assert_allclose(mean(x), expected, rtol=1e-12, atol=1e-12, err_msg=str(case))
        np.testing.assert_allclose(mean.backward(g), dx, rtol=1e-12, atol=1e-12, err_msg=str(case))


def test_global_avg_pool_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, g = rng.normal(size=(2, 3, 7)), rng.normal(size=(2, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool1d(xt, 1).flatten(1)
    yt.backward(torch.tensor(g))
    pool = GlobalAvgPool1D()
    np.testing.assert_allclose(pool(x), yt.detach().numpy(), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(pool.backward(g), xt.grad.numpy(), rtol=1e-14)
