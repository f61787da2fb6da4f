"""Unfold and Fold (im2col, col2im): the documented order against loops and a hand-written case, the adjoint
identity, Fold(Unfold(x)) against the closed-form overlap count, Unfold + a matrix product as Conv2D (the
student's example, values and gradients), the gradient checker (each alone and a model convolving with
Unfold), dtypes and layouts, refusals, repr and summary, and PyTorch's nn.Unfold / nn.Fold when installed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import Fold, Unfold
from minidl.testing import assert_gradients_ok

Pair = tuple[int, int]


def out_size(size: int, k: int, d: int, p: int, s: int) -> int:
    """Windows along one axis: a convolution's output size."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def pairs(options: dict[str, Any]) -> tuple[Pair, Pair, Pair, Pair]:
    """(kernel_size, dilation, padding, stride) of Unfold's keyword options, each as a pair."""
    def pair(v: Any) -> Pair:
        return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]
    return (pair(options["kernel_size"]), pair(options.get("dilation", 1)), pair(options.get("padding", 0)),
            pair(options.get("stride", 1)))


def unfold_by_loops(x: np.ndarray, **options: Any) -> np.ndarray:
    """y[n, (c*kh + i)*kw + j, r*Wo + q] = x_padded[n, c, r*sh + i*dh, q*sw + j*dw], element by element."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pairs(options)
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, dh, ph, sh), out_size(W, kw, dw, pw, sw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.empty((N, C * kh * kw, Ho * Wo), x.dtype)
    for n, c, i, j, r, q in np.ndindex(N, C, kh, kw, Ho, Wo):
        y[n, (c * kh + i) * kw + j, r * Wo + q] = xp[n, c, r * sh + i * dh, q * sw + j * dw]
    return y


def fold_by_loops(cols: np.ndarray, size: Pair, **options: Any) -> np.ndarray:
    """y_padded[n, c, r*sh + i*dh, q*sw + j*dw] += cols[n, (c*kh + i)*kw + j, r*Wo + q], then cut the padding."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pairs(options)
    H, W = size
    Ho, Wo = out_size(H, kh, dh, ph, sh), out_size(W, kw, dw, pw, sw)
    N, C = cols.shape[0], cols.shape[1] // (kh * kw)
    yp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), cols.dtype)
    for n, c, i, j, r, q in np.ndindex(N, C, kh, kw, Ho, Wo):
        yp[n, c, r * sh + i * dh, q * sw + j * dw] += cols[n, (c * kh + i) * kw + j, r * Wo + q]
    return yp[:, :, ph:ph + H, pw:pw + W]


def channel_major(x: np.ndarray) -> np.ndarray:
    """x's values laid out as a Conv2D lays out its output: contiguous (C, N, H, W), seen as (N, C, H, W)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


CASES = [  # (input shape, Unfold's options)
    ((2, 3, 5, 6), {"kernel_size": 3}),
    ((1, 2, 6, 5), {"kernel_size": (2, 3), "stride": (2, 1)}),
    ((2, 1, 7, 7), {"kernel_size": 3, "dilation": 2, "padding": 1}),
    ((3, 2, 4, 5), {"kernel_size": (1, 2), "dilation": (1, 3), "padding": (2, 0), "stride": (3, 2)}),
    ((1, 3, 4, 4), {"kernel_size": 2, "stride": 2}),  # tiles: no overlap
    ((2, 2, 5, 7), {"kernel_size": (2, 3), "stride": (3, 4)}),  # gaps between windows
    ((1, 1, 3, 3), {"kernel_size": 3, "padding": 2, "stride": 2}),  # windows of padding alone
    ((2, 2, 1, 9), {"kernel_size": (1, 4), "dilation": 2, "stride": (1, 2)}),
    ((0, 2, 4, 4), {"kernel_size": 2}),  # an empty batch
]


# ------------------------------------------------------------------------------------ values
def test_hand_written_case() -> None:
    """A 3 x 3 image with 2 x 2 windows: four columns, each a window read row by row (PyTorch's own output)."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    y = Unfold(2)(x)
    np.testing.assert_array_equal(y[0], [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    # two channels: channel 0's four taps, then channel 1's
    y2 = Unfold((1, 2), stride=(1, 2))(np.arange(8.0).reshape(1, 2, 1, 4))
    np.testing.assert_array_equal(y2[0], [[0, 2], [1, 3], [4, 6], [5, 7]])
    # Fold adds the windows back: the centre pixel of a 3 x 3 image is in all four 2 x 2 windows
    np.testing.assert_array_equal(Fold(3, 2)(np.ones((1, 4, 4)))[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("shape, options", CASES)
def test_both_against_loops(shape: tuple[int, ...], options: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    unfold = Unfold(**options)
    y = unfold(x)
    np.testing.assert_array_equal(y, unfold_by_loops(x, **options))
    assert y.flags.c_contiguous and y.flags.writeable and not np.shares_memory(x, y)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(unfold.backward(g), fold_by_loops(g, shape[2:], **options), rtol=0, atol=1e-14)
    fold = Fold(shape[2:], **options)
    np.testing.assert_allclose(fold(g), fold_by_loops(g, shape[2:], **options), rtol=0, atol=1e-14)
    np.testing.assert_array_equal(fold.backward(x), y)  # Fold's backward is Unfold


@pytest.mark.parametrize("shape, options", CASES)
def test_each_is_the_others_adjoint(shape: tuple[int, ...], options: dict[str, Any]) -> None:
    """<Unfold(x), c> = <x, Fold(c)> for every x and c."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    y = Unfold(**options)(x)
    c = rng.standard_normal(y.shape)
    assert np.vdot(y, c) == pytest.approx(np.vdot(x, Fold(shape[2:], **options)(c)), rel=1e-12, abs=1e-12)


def overlap_count(size: int, k: int, d: int, p: int, s: int) -> np.ndarray:
    """(size,): how many (window, tap) pairs read each pixel along one axis, in closed form: tap i of window r
    reads pixel r*s + i*d - p, so pixel h is read by tap i when h + p - i*d is a multiple of s whose window
    index lies in [0, windows)."""
    h = np.arange(size)[:, None]
    offset = h + p - d * np.arange(k)[None, :]  # (size, k)
    hit = (offset % s == 0) & (offset >= 0) & (offset // s < out_size(size, k, d, p, s))
    return hit.sum(axis=1)


@pytest.mark.parametrize("shape, options", CASES)
def test_fold_of_unfold_is_x_times_the_overlap_count(shape: tuple[int, ...], options: dict[str, Any]) -> None:
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pairs(options)
    x = np.random.default_rng(2).standard_normal(shape)
    folded = Fold(shape[2:], **options)(Unfold(**options)(x))
    count = np.multiply.outer(overlap_count(shape[2], kh, dh, ph, sh), overlap_count(shape[3], kw, dw, pw, sw))
    np.testing.assert_allclose(folded, x * count, rtol=1e-14, atol=0)


def test_overlap_count_of_a_plain_sliding_window() -> None:
    """Stride 1, no padding or dilation: pixel h is in min(h + 1, k, H - h, H - k + 1) windows."""
    H, W, k = 7, 5, 3
    expected = np.array([[min(h + 1, k, H - h, H - k + 1) * min(w + 1, k, W - w, W - k + 1) for w in range(W)]
                         for h in range(H)])
    np.testing.assert_array_equal(Fold((H, W), k)(Unfold(k)(np.ones((1, 1, H, W))))[0, 0], expected)
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 8))
    np.testing.assert_array_equal(Fold((6, 8), 2, stride=2)(Unfold(2, stride=2)(x)), x)  # tiles: Fold undoes Unfold


# ------------------------------------------------------------------------------------ Unfold as a convolution
@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_unfold_matmul_reshape_is_conv2d(stride: int, padding: int, dilation: int) -> None:
    """A convolution written as a student would: Unfold, one matrix product, a reshape; values and gradients."""
    rng = np.random.default_rng(0)
    N, C, H, W, F, k = 2, 3, 8, 7, 4, 3
    x = rng.standard_normal((N, C, H, W))
    conv = md.Conv2D(C, F, k, stride=stride, padding=padding, dilation=dilation, rng=0)
    unfold = md.Unfold(k, dilation=dilation, padding=padding, stride=stride)

    # forward: every window is a column; the kernel, flattened, is a row per filter
    cols = unfold(x)                                   # (N, C*k*k, L)
    K = conv.kernel.reshape(F, -1)                     # (F, C*k*k)
    b = conv.bias_row                                  # (F,)
    Ho, Wo = conv.output_shape(H, W)[1:]
    y = (K @ cols + b[:, None]).reshape(N, F, Ho, Wo)
    np.testing.assert_allclose(y, conv(x), rtol=1e-12, atol=1e-12)

    # backward by hand, for g = dCost/dy
    g = rng.standard_normal(y.shape)
    g_cols = g.reshape(N, F, Ho * Wo)                  # (N, F, L)
    dK = np.einsum("nfl,nkl->fk", g_cols, cols)        # the kernel's gradient, summed over the batch
    db = g_cols.sum(axis=(0, 2))
    dx = unfold.backward(K.T @ g_cols)                 # Fold of the columns' gradient

    conv.zero_grad()
    np.testing.assert_allclose(dx, conv.backward(g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dK, conv.W.grad[1:].T, rtol=1e-12, atol=1e-12)  # W's rows 1: are the kernel's columns
    np.testing.assert_allclose(db, conv.W.grad[0], rtol=1e-12, atol=1e-12)


class UnfoldConv2D(md.Layer):
    """A convolution built from Unfold: y = kernel @ Unfold(x) + bias, reshaped to an image."""

    def __init__(self, C: int, F: int, k: int, rng: np.random.Generator, **options: Any) -> None:
        super().__init__()
        self.unfold = md.Unfold(k, **options)
        self.kernel = md.Parameter(rng.standard_normal((F, C * k * k)) / k)
        self.bias = md.Parameter(rng.standard_normal(F))
        self._cols: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        cols = self.unfold(x)
        self._cols = cols
        (kh, kw), (dh, dw), (ph, pw), (sh, sw) = (self.unfold.kernel_size, self.unfold.dilation,
                                                  self.unfold.padding, self.unfold.stride)
        Ho, Wo = out_size(x.shape[2], kh, dh, ph, sh), out_size(x.shape[3], kw, dw, pw, sw)
        y = self.kernel.data @ cols + self.bias.data[:, None]
        return y.reshape(x.shape[0], -1, Ho, Wo)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._cols)
        assert self._cols is not None
        g = grad_output.reshape(grad_output.shape[0], grad_output.shape[1], -1)  # (N, F, L)
        self.kernel.grad += np.einsum("nfl,nkl->fk", g, self._cols)
        self.bias.grad += g.sum(axis=(0, 2))
        return self.unfold.backward(self.kernel.data.T @ g)


@pytest.mark.parametrize("seed, options", [(0, {}), (1, {"stride": 2, "padding": 1}), (2, {"dilation": 2})])
def test_gradient_checker_on_a_model_convolving_with_unfold(seed: int, options: dict[str, Any]) -> None:
    rng = np.random.default_rng(seed)
    conv = UnfoldConv2D(2, 3, 3, rng, **options)
    x = rng.standard_normal((2, 2, 6, 6))
    features = int(np.prod(conv(x).shape[1:]))
    model = md.Sequential(conv, md.Tanh(), md.Flatten(), md.Dense(features, 3, rng=seed))
    report = assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), seed=seed)
    assert {r.name for r in report.results} == {"input", "0.kernel", "0.bias", "3.W"}
    assert report["input"].checked == x.size
    # and it is Conv2D: the same kernel in a Conv2D gives the same output
    same = md.Conv2D.from_kernel(conv.kernel.data.reshape(3, 2, 3, 3), conv.bias.data, options.get("stride", 1),
                                 options.get("padding", 0), dilation=options.get("dilation", 1))
    np.testing.assert_allclose(conv(x), same(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------ gradient checker
@pytest.mark.parametrize("shape, options", CASES[:8])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_on_each_alone(shape: tuple[int, ...], options: dict[str, Any], seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    report = assert_gradients_ok(Unfold(**options), inputs=x, seed=seed)
    assert [(r.name, r.checked) for r in report.results] == [("input", x.size)]  # (every element: few)
    cols = np.random.default_rng(seed + 10).standard_normal(Unfold(**options)(x).shape)
    report = assert_gradients_ok(Fold(shape[2:], **options), inputs=cols, seed=seed)
    assert [r.name for r in report.results] == ["input"]
    assert report["input"].checked == (cols.size if cols.size <= 512 else 2)  # (beyond 512: two random directions)


def test_gradient_checker_from_the_shape_hints() -> None:
    """Without inputs the checker draws them from input_shape_hint: one channel, valid sizes."""
    unfold = Unfold((2, 3), dilation=(1, 2), stride=2)
    assert unfold.input_shape_hint() == (1, 2 + 4, 5 + 4)
    assert_gradients_ok(unfold)
    fold = Fold((5, 4), 2, padding=1, stride=(2, 1))
    assert fold.input_shape_hint() == (4, 3 * 5)
    assert fold(np.zeros((1, *fold.input_shape_hint()))).shape == (1, 1, 5, 4)
    assert_gradients_ok(fold)


# ------------------------------------------------------------------------------------ dtypes, layouts
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    unfold, fold = Unfold(3, padding=1), Fold(5, 3, padding=1)
    y = unfold(x)
    assert y.dtype == dtype
    dx = unfold.backward(rng.standard_normal(y.shape).astype(dtype))
    assert dx.dtype == dtype and dx.shape == x.shape
    z = fold(y)
    assert z.dtype == dtype and z.shape == x.shape
    assert fold.backward(z).dtype == dtype
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(md.DTypeError, match=rf"Unfold\(k=3, padding=1\)\.backward: expected grad_output of dtype "
                                            rf"{np.dtype(dtype).name}"):
        unfold.backward(y.astype(other))
    with pytest.raises(md.DTypeError, match=r"Fold\(output_size=5, k=3, padding=1\)\.backward: expected grad_output"):
        fold.backward(z.astype(other))


def test_float16_sums_in_float32() -> None:
    """Unfold copies (exact); Fold's sums of overlapping windows are taken in float32 and rounded once."""
    rng = np.random.default_rng(0)
    cols = (rng.standard_normal((2, 3 * 16, 13 * 13)) * 100).astype(np.float16)
    fold = Fold(16, 4)
    z = fold(cols)
    assert z.dtype == np.float16
    np.testing.assert_array_equal(z, Fold(16, 4)(cols.astype(np.float32)).astype(np.float16))
    unfold = Unfold(4)
    x = z.astype(np.float16)
    np.testing.assert_array_equal(unfold(x), Unfold(4)(x.astype(np.float32)).astype(np.float16))
    dx = unfold.backward(cols)
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, z)


def test_layouts_and_inputs_untouched() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 6))
    before = x.copy()
    unfold = Unfold(2, padding=1)
    y = unfold(x)
    for layout in (channel_major(x), np.asfortranarray(x), x[:, :, ::-1, :][:, :, ::-1, :]):  # a Conv2D's output, ...
        np.testing.assert_array_equal(unfold(layout), y)
    g = rng.standard_normal(y.shape)
    dx = unfold.backward(g)
    np.testing.assert_array_equal(unfold.backward(np.asfortranarray(g)), dx)
    fold = Fold((5, 6), 2, padding=1)
    np.testing.assert_array_equal(fold(np.asfortranarray(g)), dx)
    np.testing.assert_array_equal(fold.backward(channel_major(x)), y)
    read_only = x.copy()
    read_only.flags.writeable = False  # e.g. a ReLU's output
    np.testing.assert_array_equal(unfold(read_only), y)
    np.testing.assert_array_equal(x, before)
    big = Unfold(2, padding=1)(x.astype(">f8"))  # read from a big-endian file: computed, and returned, native
    assert big.dtype == np.float64 and big.dtype.isnative
    np.testing.assert_array_equal(big, y)


def test_nan_and_inf_propagate() -> None:
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = np.nan
    y = Unfold(2)(x)
    assert np.isnan(y).sum() == 4  # the centre is in every window
    assert np.isnan(Fold(3, 2)(y)).sum() == 1


# ------------------------------------------------------------------------------------ refusals
def test_bad_constructor_arguments() -> None:
    for cls, args in ((Unfold, ()), (Fold, (4,))):
        name = cls.__name__
        for option, bad, minimum in (("kernel_size", 0, 1), ("dilation", 0, 1), ("padding", -1, 0),
                                     ("stride", 0, 1), ("kernel_size", 2.0, 1), ("stride", True, 1),
                                     ("kernel_size", (2, 2, 2), 1), ("padding", (1,), 0), ("dilation", "2", 1)):
            kwargs = {"kernel_size": 2, option: bad}
            with pytest.raises(ValueError, match=rf"^{name}: {option} must be an int >= {minimum} or a pair of them, "
                                                 rf"got {bad!r}".replace("(", r"\(").replace(")", r"\)")):
                cls(*args, **kwargs)
    for bad in (0, (4, 0), -1, 4.0, (4,)):
        with pytest.raises(ValueError, match=r"^Fold: output_size must be an int >= 1 or a pair of them"):
            Fold(bad, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^Fold\(output_size=1, k=5, padding=1\): the kernel \(5, 5\) does not fit "
                                         r"in the output_size \(1, 1\) with padding \(1, 1\): expected H \+ 2\*padding "
                                         r">= 5 and W \+ 2\*padding >= 5, got 3 and 3"):
        Fold(1, 5, padding=1)
    with pytest.raises(ValueError, match=r"the kernel \(3, 3\) dilated by \(2, 2\) \(spanning \(5, 5\)\) does not fit"):
        Fold((4, 9), 3, dilation=2)
    layer = Unfold(np.int64(3), dilation=[1, 2])  # numpy ints and lists are sizes too
    assert layer.kernel_size == (3, 3) and layer.dilation == (1, 2) and type(layer.kernel_size[0]) is int


def test_bad_inputs_name_the_layer_and_change_nothing() -> None:
    unfold, fold = Unfold(3), Fold((4, 5), 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = unfold(x)
    z = fold(Unfold(2)(x))
    u, f = r"Unfold\(k=3\)", r"Fold\(output_size=\(4, 5\), k=2\)"
    cases: list[tuple[md.Layer, Any, type[Exception], str]] = [
        (unfold, np.zeros((3, 4, 5)), md.ShapeError, u + r": expected a 4-D input of shape \(N, C, H, W\), got shape "
                                                         r"\(3, 4, 5\) \(an unbatched \(C, H, W\) image, which PyTorch "
                                                         r"also takes: minidl's image layers want the batch axis, "
                                                         r"x\[None\]\)"),
        (unfold, np.zeros((1, 1, 3, 4, 4)), md.ShapeError, u + r": expected a 4-D input of shape \(N, C, H, W\), got "
                                                               r"shape \(1, 1, 3, 4, 4\)$"),
        (unfold, np.zeros((1, 3, 2, 5)), md.ShapeError, u + r": input of shape \(1, 3, 2, 5\) is smaller than the "
                                                            r"kernel \(3, 3\) \(with padding \(0, 0\)\): expected "
                                                            r"H >= 3 and W >= 3, got H=2, W=5"),
        (unfold, np.zeros((1, 0, 4, 4)), md.ShapeError, u + r": input of shape \(1, 0, 4, 4\) has no channels"),
        (unfold, np.zeros((1, 3, 0, 4)), md.ShapeError, u + r": input of shape \(1, 3, 0, 4\) has no pixels"),
        (unfold, np.zeros((1, 3, 4, 4), np.int64), md.DTypeError, u + ": expected a floating-point input, got dtype "
                                                                      "int64"),
        (unfold, np.zeros((1, 3, 4, 4), bool), md.DTypeError, "got dtype bool"),
        (unfold, {"x": 1}, md.DTypeError, u + ": expected input as a numpy array, got dict"),
        (unfold, (x, x), md.DTypeError, "several inputs"),
        (fold, np.zeros((12, 12)), md.ShapeError, f + r": expected a 3-D input of shape \(N, C\*4, 12\), got shape "
                                                      r"\(12, 12\) \(an unbatched \(C\*kh\*kw, L\) input, which "
                                                      r"PyTorch also takes: minidl's image layers want the batch axis, "
                                                      r"x\[None\]\)"),
        (fold, np.zeros((1, 12, 12, 1)), md.ShapeError, r"expected a 3-D input"),
        (fold, np.zeros((1, 11, 12)), md.ShapeError, f + r": expected axis 1 to be a positive multiple of kh\*kw = 4 "
                                                         r"\(C\*kh\*kw for the kernel \(2, 2\)\), got 11 \(input shape "
                                                         r"\(1, 11, 12\)\)"),
        (fold, np.zeros((1, 0, 12)), md.ShapeError, r"positive multiple of kh\*kw = 4 .*got 0"),
        (fold, np.zeros((1, 12, 11)), md.ShapeError, f + r": expected axis 2 \(L\) to be the number of windows, 3 \* 4 "
                                                         r"= 12 for the kernel \(2, 2\) on the output_size \(4, 5\) "
                                                         r"\(padding \(0, 0\), stride \(1, 1\)\), got 11 \(input shape "
                                                         r"\(1, 12, 11\)\)"),
        (fold, np.zeros((1, 12, 0)), md.ShapeError, r"got 0 \(input shape"),
        (fold, np.zeros((1, 12, 12), np.int32), md.DTypeError, "got dtype int32"),
    ]
    for layer, bad, error, message in cases:
        state = dict(vars(layer))
        with pytest.raises(error, match=message):
            layer(bad)
        assert {k: v for k, v in vars(layer).items()} == state  # the last good forward's cache, still
    np.testing.assert_array_equal(unfold.backward(y), Fold((4, 5), 3)(y))
    with pytest.raises(md.ShapeError, match=u + r"\.backward: expected grad_output of shape \(2, 27, 6\), got "
                                                r"\(2, 27, 5\)"):
        unfold.backward(y[:, :, :5])
    with pytest.raises(md.ShapeError, match=f + r"\.backward: expected grad_output of shape \(2, 3, 4, 5\), got"):
        fold.backward(z[:1])
    with pytest.raises(md.DTypeError, match=f + r"\.backward: expected grad_output as a numpy array, got list"):
        fold.backward(z.tolist())
    for fresh, g in ((Unfold(2), np.zeros((1, 4, 4))), (Fold(3, 2), np.zeros((1, 1, 3, 3)))):
        with pytest.raises(md.BackwardBeforeForwardError):
            fresh.backward(g)


def test_a_backward_uses_its_forwards_sizes() -> None:
    """Sizes set between a forward and its backward are the next forward's (as PixelShuffle's factor)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    unfold = Unfold(2, stride=2)
    y = unfold(x)
    g = np.arange(16.0).reshape(y.shape)
    expected = unfold.backward(g)
    unfold.dilation, unfold.stride = (2, 2), (1, 1)  # the same output shape on a 4 x 4 image
    np.testing.assert_array_equal(unfold.backward(g), expected)
    np.testing.assert_array_equal(expected[0, 0], [[0, 4, 1, 5], [8, 12, 9, 13], [2, 6, 3, 7], [10, 14, 11, 15]])
    fold = Fold(4, 2, stride=2)
    z = fold(np.ones((1, 4, 4)))
    fold.kernel_size = (1, 1)
    np.testing.assert_array_equal(fold.backward(np.ones(z.shape)), np.ones((1, 4, 4)))


def test_sizes_set_later_are_checked_as_the_constructor_checks_them() -> None:
    """Set after construction, they were not checked: stride = (0, 1) was a ZeroDivisionError at the next forward,
    an int kernel_size or output_size "'int' object is not iterable", kernel_size = (0, 0) an empty output."""
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    for make in (lambda: Unfold(2), lambda: Fold((6, 5), 2)):
        for option, bad, minimum in (("kernel_size", 0, 1), ("kernel_size", (0, 0), 1), ("dilation", 0, 1),
                                     ("padding", -1, 0), ("padding", (1, -1), 0), ("stride", (0, 1), 1),
                                     ("kernel_size", 2.0, 1), ("stride", True, 1), ("kernel_size", (2, 2, 2), 1),
                                     ("padding", (1,), 0), ("dilation", "2", 1), ("stride", None, 1)):
            layer = make()
            name = type(layer).__name__
            y = layer(x if name == "Unfold" else Unfold(2)(x))
            before = dict(vars(layer))
            with pytest.raises(ValueError, match=rf"^{name}: {option} must be an int >= {minimum} or a pair of them, "
                                                 rf"got {bad!r}".replace("(", r"\(").replace(")", r"\)")):
                setattr(layer, option, bad)
            assert vars(layer) == before
            np.testing.assert_array_equal(layer(x if name == "Unfold" else Unfold(2)(x)), y)
    for bad in (0, (6, 0), -1, 4.0, (4,), "6"):
        fold = Fold((6, 5), 2)
        with pytest.raises(ValueError, match=r"^Fold: output_size must be an int >= 1 or a pair of them"):
            fold.output_size = bad  # type: ignore[assignment]
        assert fold.output_size == (6, 5)
    # sizes that leave no window on Fold's output_size: refused as the constructor refuses them, whichever is set
    for make, option, value, message in [
        (lambda: Fold(4, 2), "output_size", (1, 1), r"Fold\(output_size=4, k=2\): the kernel \(2, 2\) does not fit in "
                                                    r"the output_size \(1, 1\) with padding \(0, 0\): expected H \+ "
                                                    r"2\*padding >= 2 and W \+ 2\*padding >= 2, got 1 and 1"),
        (lambda: Fold(4, 2), "kernel_size", 5, r"Fold\(output_size=4, k=2\): the kernel \(5, 5\) does not fit in the "
                                               r"output_size \(4, 4\) with padding \(0, 0\): expected H \+ 2\*padding "
                                               r">= 5 and W \+ 2\*padding >= 5, got 4 and 4"),
        (lambda: Fold(4, 2), "dilation", (1, 4), r"the kernel \(2, 2\) dilated by \(1, 4\) \(spanning \(2, 5\)\) does "
                                                 r"not fit in the output_size \(4, 4\)"),
        (lambda: Fold(1, 3, padding=1), "padding", 0,
         r"Fold\(output_size=1, k=3, padding=1\): the kernel \(3, 3\) does not fit in the output_size \(1, 1\) with "
         r"padding \(0, 0\)"),
    ]:
        fold = make()
        before = dict(vars(fold))
        with pytest.raises(ValueError, match=message):
            setattr(fold, option, value)
        assert vars(fold) == before
    # what the constructor takes: an int for both axes, a pair or list, NumPy ints; kept as pairs of ints
    unfold = Unfold(2)
    unfold.kernel_size, unfold.dilation, unfold.padding, unfold.stride = 3, [1, np.int64(2)], np.int32(1), (2, 1)
    assert (unfold.kernel_size, unfold.dilation, unfold.padding, unfold.stride) == ((3, 3), (1, 2), (1, 1), (2, 1))
    assert all(type(v) is int for pair in unfold._geometry() for v in pair)
    fresh = Unfold(3, dilation=(1, 2), padding=1, stride=(2, 1))
    assert repr(unfold) == repr(fresh)
    np.testing.assert_array_equal(unfold(x), fresh(x))
    fold = Fold((6, 5), 2)
    fold.output_size, fold.kernel_size = 7, (3, 2)  # (both fit the other at each step)
    assert fold.output_size == (7, 7) and fold.kernel_size == (3, 2) and repr(fold) == repr(Fold(7, (3, 2)))
    columns = np.random.default_rng(2).standard_normal((2, 6, 5 * 6))
    np.testing.assert_array_equal(fold(columns), Fold(7, (3, 2))(columns))


def test_output_shape() -> None:
    assert Unfold(3).output_shape(2, 5, 6) == (18, 12)
    assert Unfold((2, 3), dilation=2, padding=1, stride=(1, 2)).output_shape(1, 4, 7) == (6, 4 * 3)
    with pytest.raises(md.ShapeError, match=r"Unfold\(k=3\)\.output_shape: input of shape \(1, 2, 2, 6\) is smaller"):
        Unfold(3).output_shape(2, 2, 6)
    with pytest.raises(TypeError, match=r"Unfold\(k=3\)\.output_shape: height must be an int, got 4\.0 \(float\)"):
        Unfold(3).output_shape(2, 4.0, 4)  # type: ignore[arg-type]
    assert Fold((4, 5), 2).output_shape(12, 12) == (3, 4, 5)
    with pytest.raises(md.ShapeError, match=r"Fold\(output_size=\(4, 5\), k=2\)\.output_shape: expected axis 2 \(L\)"):
        Fold((4, 5), 2).output_shape(12, 11)
    with pytest.raises(ValueError, match=r"Fold\(output_size=4, k=2\)\.output_shape: rows must be >= 0, got -4"):
        Fold(4, 2).output_shape(-4, 9)


# ------------------------------------------------------------------------------------ repr, summary, state
def test_repr_summary_and_state() -> None:
    assert repr(Unfold(3)) == "Unfold(kernel_size=(3, 3))"
    assert repr(Unfold((2, 3), 2, 1, (1, 2))) == \
        "Unfold(kernel_size=(2, 3), dilation=(2, 2), padding=(1, 1), stride=(1, 2))"
    assert repr(Fold(4, 2)) == "Fold(output_size=(4, 4), kernel_size=(2, 2))"
    assert repr(Fold((4, 5), 3, padding=1, stride=2)) == \
        "Fold(output_size=(4, 5), kernel_size=(3, 3), padding=(1, 1), stride=(2, 2))"
    model = md.Sequential(md.Conv2D(3, 4, 3, padding=1, rng=0), Unfold(2, stride=2), md.Tanh(), Fold(6, 2, stride=2),
                          md.Conv2D(4, 2, 3, rng=1))
    text = str(md.summarize(model, (3, 6, 6)))
    assert "1 (Unfold)" in text and "(None, 16, 9)" in text
    assert "3 (Fold)" in text and "(None, 4, 6, 6)" in text and "(None, 2, 4, 4)" in text
    lines: list[str] = []
    model.summary((3, 6, 6), print_fn=lines.append)
    assert "\n".join(lines).count("(Fold)") == 1
    assert "(1): Unfold(kernel_size=(2, 2), stride=(2, 2))" in repr(model)
    assert_gradients_ok(model, inputs=np.random.default_rng(0).standard_normal((2, 3, 6, 6)))
    for layer in (Unfold(2), Fold(3, 2)):
        assert layer.state_dict() == {} and layer.num_parameters() == 0
        assert layer.astype(np.float32) is layer and type(layer).single_input
    assert md.layers.Unfold is Unfold and "Fold" in md.__all__ and "Unfold" in md.layers.__all__


def test_in_a_stack_it_takes_the_array_alone() -> None:
    mask = np.zeros((2, 3), bool)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_array_equal(md.Stack(Unfold(2, stride=2), Fold(4, 2, stride=2))((x, mask)), x)


# ------------------------------------------------------------------------------------ PyTorch
def torch_cases(count: int, seed: int) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """CASES and ``count`` random geometries (ints or pairs) whose windows fit."""
    rng = np.random.default_rng(seed)
    cases = list(CASES)
    while len(cases) < len(CASES) + count:
        def size(low: int, high: int) -> Any:
            a, b = (int(v) for v in rng.integers(low, high + 1, 2))
            return a if rng.random() < 0.4 else (a, b)
        options = {"kernel_size": size(1, 4), "dilation": size(1, 3), "padding": size(0, 2), "stride": size(1, 3)}
        shape = (int(rng.integers(0, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 10)), int(rng.integers(1, 10)))
        (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pairs(options)
        if min(out_size(shape[2], kh, dh, ph, sh), out_size(shape[3], kw, dw, pw, sw)) >= 1:
            cases.append((shape, options))
    return cases


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_equal_to_pytorch(dtype: str) -> None:
    """Values and gradients of both over many shapes, kernels, dilations, paddings and strides."""
    torch = pytest.importorskip("torch")
    tol = 1e-6 if dtype == "float32" else 1e-12
    rng = np.random.default_rng(7)
    for shape, options in torch_cases(40, seed=1):
        x = rng.standard_normal(shape).astype(dtype)
        for layout in (x, channel_major(x)):
            xt = torch.tensor(layout, requires_grad=True)
            yt = torch.nn.Unfold(**options)(xt)
            unfold = Unfold(**options)
            y = unfold(layout)
            assert y.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(y, yt.detach().numpy())  # a copy: bit for bit
            g = rng.standard_normal(y.shape).astype(dtype)
            yt.backward(torch.tensor(g))
            dx = unfold.backward(g)
            assert dx.dtype == np.dtype(dtype)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
        ct = torch.tensor(g, requires_grad=True)
        zt = torch.nn.Fold(shape[2:], **options)(ct)
        fold = Fold(shape[2:], **options)
        z = fold(g)
        assert z.dtype == np.dtype(dtype)
        np.testing.assert_allclose(z, zt.detach().numpy(), rtol=tol, atol=tol)
        gz = rng.standard_normal(z.shape).astype(dtype)
        zt.backward(torch.tensor(gz))
        np.testing.assert_array_equal(fold.backward(gz), ct.grad.numpy())


def test_pytorch_float16_sums_in_float16() -> None:
    """The deliberate difference: PyTorch's CPU Fold sums float16 in float16; ours is its float32 sum rounded."""
    torch = pytest.importorskip("torch")
    cols = (np.random.default_rng(0).standard_normal((1, 64, 13 * 13)) * 100 + 0.01).astype(np.float16)
    ours = Fold(20, 8)(cols)
    np.testing.assert_array_equal(ours, torch.nn.Fold(20, 8)(torch.tensor(cols, dtype=torch.float32)).numpy()
                                  .astype(np.float16))
    np.testing.assert_allclose(ours, torch.nn.Fold(20, 8)(torch.tensor(cols)).numpy(), rtol=1e-2, atol=4)
    x = cols[:, :16, :].reshape(1, 1, 16, 169).copy()  # Unfold copies: bit for bit in float16 too
    np.testing.assert_array_equal(Unfold(3, padding=1)(x), torch.nn.Unfold(3, padding=1)(torch.tensor(x)).numpy())


def test_pytorch_refuses_what_we_refuse() -> None:
    torch = pytest.importorskip("torch")
    for options, shape in (({"kernel_size": 5}, (1, 3, 4, 4)), ({"kernel_size": 2}, (2, 0, 4, 4)),
                           ({"kernel_size": 2, "padding": 1}, (2, 3, 0, 4)),
                           ({"kernel_size": 4, "padding": 1}, (2, 3, 1, 1)), ({"kernel_size": 2}, (1, 1, 3, 4, 4))):
        with pytest.raises(RuntimeError):
            torch.nn.Unfold(**options)(torch.zeros(shape))
        with pytest.raises(md.ShapeError):
            Unfold(**options)(np.zeros(shape))
    for args, shape in ((((4, 4), 2), (1, 12, 8)), (((4, 4), 2), (1, 11, 9)), (((4, 4), 2), (1, 12, 9, 1)),
                        (((4, 4), 2), (2, 0, 9)), (((4, 5), 2, 1, 0, 3), (2, 4, 1))):
        with pytest.raises(RuntimeError):
            torch.nn.Fold(*args)(torch.zeros(shape))
        with pytest.raises(md.ShapeError):
            Fold(*args)(np.zeros(shape))
    with pytest.raises(RuntimeError, match="too small"):  # PyTorch refuses at the call, minidl at construction
        torch.nn.Fold(1, 5, padding=1)(torch.zeros(2, 25, 1))
    with pytest.raises(ValueError):
        Fold(1, 5, padding=1)
    # what both accept: an empty batch, windows of padding alone
    for options, shape in (({"kernel_size": 2}, (0, 3, 4, 4)), ({"kernel_size": 3, "padding": 5}, (2, 3, 1, 1))):
        assert Unfold(**options)(np.zeros(shape)).shape == tuple(torch.nn.Unfold(**options)(torch.zeros(shape)).shape)
