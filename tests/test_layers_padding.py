"""The padding layers: each mode's rule by hand (forward and backward, loops over the output), the
gradient checker, closed forms (a zero padding is a convolution's padding, -inf one a max pool's),
refusals, dtypes, and PyTorch's values when it is installed."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_gradients_ok

CLASSES = {  # mode -> (1-D, 2-D)
    "constant": (lambda p: md.ConstantPad1D(p, 2.5), lambda p: md.ConstantPad2D(p, -1.5)),
    "zero": (md.ZeroPad1D, md.ZeroPad2D),
    "reflect": (md.ReflectionPad1D, md.ReflectionPad2D),
    "replicate": (md.ReplicationPad1D, md.ReplicationPad2D),
    "circular": (md.CircularPad1D, md.CircularPad2D),
}
VALUE = {"constant": (2.5, -1.5), "zero": (0.0, 0.0)}


def source(j: int, size: int, before: int, mode: str, after: int = 0) -> int | None:
    """The input position output position j reads along an axis, by the rule (None: the value)."""
    if mode == "circular":  # crop first, then wrap around what is left
        start, kept = max(-before, 0), size - max(-before, 0) - max(-after, 0)
        return start + (j - max(before, 0)) % kept
    s = j - before
    if 0 <= s < size:
        return s
    if mode in ("constant", "zero"):
        return None
    if mode == "reflect":
        return -s if s < 0 else 2 * (size - 1) - s
    if mode == "replicate":
        return 0 if s < 0 else size - 1
    raise AssertionError(mode)


def by_hand(x: np.ndarray, padding: tuple[int, ...], mode: str, g: np.ndarray | None = None) -> np.ndarray:
    """The padded x (or, given g, dx: each output's gradient added to what it read, in the output's
    row-major order, as PyTorch's loop does)."""
    rank = x.ndim - 2
    pairs = [padding[2 * (rank - 1 - k):2 * (rank - k)] for k in range(rank)]  # per axis, H first
    out = [size + a + b for size, (a, b) in zip(x.shape[2:], pairs, strict=True)]
    value = VALUE.get(mode, (0.0, 0.0))[rank - 1]
    y = np.empty((*x.shape[:2], *out))
    dx = np.zeros_like(x)
    for index in itertools.product(*(range(o) for o in out)):
        read = [source(j, size, a, mode, b) for j, size, (a, b) in zip(index, x.shape[2:], pairs, strict=True)]
        if None in read:
            y[(..., *index)] = value
        else:
            y[(..., *index)] = x[(..., *read)]
            if g is not None:
                dx[(..., *read)] += g[(..., *index)]
    return dx if g is not None else y


def fits(sizes: tuple[int, ...], padding: tuple[int, ...], mode: str) -> bool:
    """Whether the padding is accepted: a side crops at most its axis, one position at least stays,
    reflect's sides are shorter than the axis, circular's at most as long as what its crops leave."""
    rank = len(sizes)
    for k, size in enumerate(reversed(sizes)):
        a, b = padding[2 * k], padding[2 * k + 1]
        limit = {"reflect": size - 1, "circular": size - max(-a, 0) - max(-b, 0)}.get(mode, 10**9)
        if min(a, b) < -size or size + a + b < 1 or max(a, b) > limit:
            return False
    return rank >= 1


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(sorted(CLASSES)), rank=st.sampled_from([1, 2]), data=st.data())
def test_forward_and_backward_follow_the_rule(mode: str, rank: int, data: Any) -> None:
    sizes = tuple(data.draw(st.integers(1, 5)) for _ in range(rank))
    padding = tuple(data.draw(st.integers(-5, 5)) for _ in range(2 * rank))
    layer = CLASSES[mode][rank - 1](padding)
    x = np.random.default_rng(len(sizes)).normal(size=(2, 3, *sizes))
    if not fits(sizes, padding, mode):
        with pytest.raises(md.ShapeError, match=type(layer).__name__):
            layer(x)
        return
    y = layer(x)
    np.testing.assert_array_equal(y, by_hand(x, padding, mode))
    g = np.random.default_rng(7).normal(size=y.shape)
    dx = layer.backward(g)
    expected = by_hand(x, padding, mode, g)
    if rank == 1 and mode != "circular":  # the same additions in the same order
        np.testing.assert_array_equal(dx, expected)
    else:  # a corner's sum grouped by rows
        np.testing.assert_allclose(dx, expected, rtol=1e-13, atol=1e-15)
    assert layer.output_shape(*sizes) == y.shape[2:]


def test_the_modes_on_one_sequence() -> None:
    x = np.arange(4.0).reshape(1, 1, 4)
    assert md.ReflectionPad1D(2)(x).ravel().tolist() == [2, 1, 0, 1, 2, 3, 2, 1]
    assert md.ReplicationPad1D((1, 2))(x).ravel().tolist() == [0, 0, 1, 2, 3, 3, 3]
    assert md.CircularPad1D((2, 1))(x).ravel().tolist() == [2, 3, 0, 1, 2, 3, 0]
    assert md.ConstantPad1D((1, 0), 9)(x).ravel().tolist() == [9, 0, 1, 2, 3]
    assert md.ZeroPad1D((0, -1))(x).ravel().tolist() == [0, 1, 2]
    # a crop happens after the other side is padded (as PyTorch): the docstring's example; but circular
    # crops first and wraps around what is left (as PyTorch too)
    assert md.ReflectionPad1D((-1, 2))(x).ravel().tolist() == [1, 2, 3, 2, 1]
    assert md.CircularPad1D((-1, 1))(x).ravel().tolist() == [1, 2, 3, 1]
    assert md.CircularPad1D((2, -1))(x).ravel().tolist() == [1, 2, 0, 1, 2]
    layer = md.ReplicationPad1D((3, 1))
    layer(x)
    assert layer.backward(np.ones((1, 1, 8))).ravel().tolist() == [4, 1, 1, 2]  # an edge sums its copies


MODELS = [  # (mode, rank, padding, input shape, seed)
    ("constant", 2, (1, 2, 0, 1), (2, 3, 4, 5), 0), ("zero", 2, (-1, 2, 1, -2), (1, 2, 5, 4), 1),
    ("reflect", 2, (2, 1, 3, 0), (2, 2, 4, 3), 2), ("reflect", 1, (-2, 3), (3, 2, 5), 3),
    ("replicate", 2, (3, 0, 1, 2), (2, 1, 3, 4), 4), ("replicate", 1, (4, 4), (2, 3, 1), 5),
    ("circular", 2, (3, 1, 2, 4), (1, 3, 4, 4), 6), ("circular", 1, (2, 0), (2, 2, 3), 7),
]


@pytest.mark.parametrize("mode, rank, padding, shape, seed", MODELS)
def test_gradient_checker(mode: str, rank: int, padding: tuple[int, ...], shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(CLASSES[mode][rank - 1](padding), inputs=x, seed=seed)
    assert report["input"].checked == x.size


def test_gradient_checker_through_a_model() -> None:
    """A reflection-padded convolution network, every parameter and the input checked."""
    model = md.Sequential(md.ReflectionPad2D(1), md.Conv2D(2, 3, 3, rng=0), md.ReLU(),
                          md.ReplicationPad2D((0, 1, 1, 0)), md.MaxPool2D(2), md.Flatten(), md.Dense(27, 3, rng=1))
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 5))
    report = assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), seed=0)
    assert report["input"].checked == x.size


def test_zero_padding_is_a_convolutions_padding() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 5))
    padded = md.Conv2D(3, 4, 3, padding=(2, 1), rng=0)
    separate = md.Sequential(md.ZeroPad2D((1, 1, 2, 2)), md.Conv2D(3, 4, 3, rng=0))
    np.testing.assert_allclose(separate(x), padded(x), rtol=1e-13, atol=1e-14)
    g = np.random.default_rng(1).normal(size=padded(x).shape)
    np.testing.assert_allclose(separate.backward(g), padded.backward(g), rtol=1e-13, atol=1e-14)


def test_minus_infinity_padding_is_a_max_pools_padding() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6))
    pool = md.MaxPool2D(3, stride=2, padding=1)
    separate = md.Sequential(md.ConstantPad2D(1, -np.inf), md.MaxPool2D(3, stride=2))
    np.testing.assert_array_equal(separate(x), pool(x))
    g = np.random.default_rng(1).normal(size=pool(x).shape)
    np.testing.assert_array_equal(separate.backward(g), pool.backward(g))


def test_backward_uses_the_forwards_padding() -> None:
    """A padding changed between forward and backward does not change the pass already made."""
    x = np.random.default_rng(0).normal(size=(1, 2, 4))
    layer = md.ReflectionPad1D((1, 2))
    y = layer(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    layer.padding = (2, 1)  # the same output length
    np.testing.assert_array_equal(layer.backward(g), by_hand(x, (1, 2), "reflect", g))
    assert layer(x).ravel()[:4].tolist() == x[0, 0, [2, 1, 0, 1]].tolist()  # the next pass uses the new one


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("mode", sorted(CLASSES))
def test_dtypes_are_kept(dtype: type, mode: str) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(dtype)
    layer = CLASSES[mode][1]((1, 2, 2, 1))
    y = layer(x)
    assert y.dtype == dtype  # copies of x (and the value): exact in any dtype
    np.testing.assert_array_equal(y, by_hand(x.astype(np.float64), (1, 2, 2, 1), mode).astype(dtype))
    g = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    dx = layer.backward(g)
    assert dx.dtype == dtype
    exact = by_hand(x.astype(np.float64), (1, 2, 2, 1), mode, g.astype(np.float64))
    tolerance = 2e-3 if dtype == np.float16 else 1e-6  # (at most 9 terms a sum)
    np.testing.assert_allclose(dx, exact, rtol=tolerance, atol=tolerance)


def test_a_big_endian_input_gives_native_arrays() -> None:
    x = np.arange(6.0).reshape(1, 1, 6).astype(">f8")
    for layer in (md.ZeroPad1D(1), md.ReflectionPad1D(1)):
        y = layer(x)
        assert y.dtype.isnative and y.ravel()[1:7].tolist() == list(range(6))
        assert layer.backward(np.ones(y.shape)).dtype.isnative


def test_repr_and_padding_forms() -> None:
    assert repr(md.ZeroPad2D(2)) == "ZeroPad2D(padding=(2, 2, 2, 2))"
    assert repr(md.ConstantPad1D((1, 2), 3.5)) == "ConstantPad1D(padding=(1, 2), value=3.5)"
    assert repr(md.ReflectionPad2D([1, 0, 2, 3])) == "ReflectionPad2D(padding=(1, 0, 2, 3))"
    assert md.CircularPad1D(np.int64(2)).padding == (2, 2)
    assert md.ZeroPad2D(np.array([1, 2, 3, 4])).padding == (1, 2, 3, 4)  # (as PyTorch takes it)
    assert not isinstance(md.ReflectionPad1D(1), md.ReflectionPad2D)  # siblings, as the pools
    assert not isinstance(md.CircularPad1D(1), md.CircularPad2D)
    assert md.ReplicationPad2D((1, 2, 3, 4)).output_shape(5, 6) == (12, 9)


@pytest.mark.parametrize("padding", [1.5, True, (1, 2, 3), (1, "2"), None, (1, 2, 3, 4, 5)])
def test_bad_padding_is_refused(padding: Any) -> None:
    with pytest.raises(ValueError, match=r"ReflectionPad2D: padding must be an int or a tuple \(left, right, top"):
        md.ReflectionPad2D(padding)
    layer = md.ZeroPad1D(1)
    with pytest.raises(ValueError, match=r"ZeroPad1D: padding must be an int or a tuple \(left, right\)"):
        layer.padding = padding if padding != (1, 2) else (1, 2, 3)
    assert layer.padding == (1, 1)  # unchanged


@pytest.mark.parametrize("make, shape, message", [
    (lambda: md.ReflectionPad1D(3), (1, 1, 3), r"ReflectionPad1D\(padding=\(3, 3\)\): padding \(3, 3\) of L = 3 "
                                               "reflects beyond the axis"),
    (lambda: md.CircularPad2D((0, 0, 4, 0)), (1, 1, 3, 5), r"padding \(4, 0\) of H = 3 wraps around more than once"),
    (lambda: md.ZeroPad2D((-2, -3, 0, 0)), (1, 1, 3, 5), r"padding \(-2, -3\) of W = 5 leaves no position"),
    (lambda: md.ReplicationPad1D((-4, 5)), (1, 1, 3), r"padding \(-4, 5\) of L = 3 crops more than the whole axis"),
    (lambda: md.ZeroPad2D(1), (2, 3, 4), r"ZeroPad2D\(padding=\(1, 1, 1, 1\)\): expected a 4-D input"),
    (lambda: md.ReflectionPad1D(1), (2, 3, 0), "no positions"),
])
def test_what_does_not_fit_is_refused_by_name(make: Any, shape: tuple[int, ...], message: str) -> None:
    layer = make()
    with pytest.raises(md.ShapeError, match=message):
        layer(np.zeros(shape))


def test_a_failed_forward_keeps_the_last_pass() -> None:
    layer = md.ReflectionPad1D(2)
    x = np.random.default_rng(0).normal(size=(1, 2, 4))
    y = layer(x)
    with pytest.raises(md.ShapeError):
        layer(np.zeros((1, 2, 2)))
    g = np.ones(y.shape)
    np.testing.assert_array_equal(layer.backward(g), by_hand(x, (2, 2), "reflect", g))


def test_values_and_gradients_are_checked() -> None:
    with pytest.raises(TypeError, match="ConstantPad2D: value must be a number"):
        md.ConstantPad2D(1, "0")
    with pytest.raises(ValueError, match="beyond a float's range"):
        md.ConstantPad1D(1, 10**400)
    if np.finfo(np.longdouble).max > 1e400:  # (an 80-bit long double)
        with pytest.raises(ValueError, match="beyond a float's range"):
            md.ConstantPad1D(1, np.longdouble("1e400"))
    layer = md.ConstantPad1D(1, 70000.0)
    with pytest.raises(ValueError, match=r"ConstantPad1D\(padding=\(1, 1\), value=70000.0\): value 70000.0 "
                                         "overflows the input's dtype float16"):
        layer(np.zeros((1, 1, 2), np.float16))
    assert layer(np.zeros((1, 1, 2), np.float32)).ravel().tolist() == [70000, 0, 0, 70000]
    assert md.ConstantPad1D(1, -np.inf)(np.zeros((1, 1, 1), np.float16)).ravel().tolist() == [-np.inf, 0, -np.inf]
    with pytest.raises(md.BackwardBeforeForwardError):
        md.ReplicationPad1D(1).backward(np.zeros((1, 1, 3)))
    layer = md.ReplicationPad2D(1)
    layer(np.zeros((1, 1, 2, 2)))
    with pytest.raises(md.ShapeError, match=r"ReplicationPad2D.backward: expected grad_output of shape \(1, 1, 4, 4\)"):
        layer.backward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(md.DTypeError, match=r"ReplicationPad2D\.backward: expected grad_output of dtype float64"):
        layer.backward(np.zeros((1, 1, 4, 4), np.float32))


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    theirs = {"constant": (lambda p: torch.nn.ConstantPad1d(p, 2.5), lambda p: torch.nn.ConstantPad2d(p, -1.5)),
              "zero": (torch.nn.ZeroPad1d, torch.nn.ZeroPad2d),
              "reflect": (torch.nn.ReflectionPad1d, torch.nn.ReflectionPad2d),
              "replicate": (torch.nn.ReplicationPad1d, torch.nn.ReplicationPad2d),
              "circular": (torch.nn.CircularPad1d, torch.nn.CircularPad2d)}
    rng = np.random.default_rng(0)
    compared = 0
    while compared < 300:
        mode, rank = sorted(CLASSES)[compared % 5], 1 + compared % 2
        sizes = tuple(int(v) for v in rng.integers(1, 6, rank))
        padding = tuple(int(v) for v in rng.integers(-3, 5, 2 * rank))
        if not fits(sizes, padding, mode):  # (refused here; PyTorch's circular padding may read garbage there)
            continue
        x = rng.normal(size=(2, 3, *sizes))
        ours = CLASSES[mode][rank - 1](padding)
        y = ours(x)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs[mode][rank - 1](padding)(xt)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        g = rng.normal(size=y.shape)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-15)
        compared += 1


def test_the_checker_says_why_an_infinite_padding_alone_cannot_be_checked() -> None:
    """-inf padding makes the cost sum(R * output) NaN: reported per tensor, with no warning first;
    the max pool it is for takes the -inf away, and the pair checks."""
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = md.GradientChecker(md.ConstantPad2D(1, -np.inf), inputs=x).run()
    (result,) = report.results
    assert not report.passed and result.failed == x.size
    assert any("the model's output holds 32 NaN/inf value(s)" in note for note in result.notes)
    assert_gradients_ok(md.Sequential(md.ConstantPad2D(1, -np.inf), md.MaxPool2D(3, 2)), inputs=x)


def test_check_layers_leaves_a_minus_infinity_padding_to_the_whole_model() -> None:
    """checked alone, the padding's output and the pool's input hold -inf (no cost to differentiate): not
    checked alone, said so, and the model's verdict stands, with no warning."""
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4))
    model = md.Sequential(md.ConstantPad2D(1, -np.inf), md.MaxPool2D(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = md.GradientChecker(model, inputs=x, check_layers=True).run()
    assert report.passed and not report.layers
    assert sum("holds NaN/inf, so a cost near it is not a number: not checked alone" in n for n in report.notes) == 2
