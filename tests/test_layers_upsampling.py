"""ConvTranspose2D and Upsample: naive loops, the adjoint identity, gradient checks, PyTorch, dtypes, errors."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import ConvTranspose2D, Upsample
from minidl.testing import assert_backward_params_contract, assert_gradients_ok

Pair = tuple[int, int]


def pair(v: Any) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def naive_conv_transpose(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: Pair, padding: Pair,
                         output_padding: Pair, dilation: Pair, groups: int) -> np.ndarray:
    """The textbook definition, one input pixel at a time: pixel (h, w) of channel c (group g) adds
    ``x * kernel[c]`` to output channels g*Fg .. (g+1)*Fg - 1 at rows h*s + i*d, columns w*s + j*d of the
    output before its padding is cut off."""
    N, C, H, W = x.shape
    _, Fg, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = stride, padding, output_padding, dilation
    Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1
    full = np.zeros((N, Fg * groups, Ho + 2 * ph, Wo + 2 * pw))
    for n in range(N):
        for c in range(C):
            first = c // (C // groups) * Fg
            for h in range(H):
                for w in range(W):
                    full[n, first:first + Fg, h * sh:h * sh + dh * (kh - 1) + 1:dh,
                         w * sw:w * sw + dw * (kw - 1) + 1:dw] += x[n, c, h, w] * kernel[c]
    y = full[:, :, ph:ph + Ho, pw:pw + Wo]
    return y if bias is None else y + bias[:, None, None]


def naive_gradients(x: np.ndarray, g: np.ndarray, kernel: np.ndarray, stride: Pair, padding: Pair,
                    dilation: Pair, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dkernel), one input pixel at a time: each pixel's gradient is the sum of g times the kernel over
    the output positions it was sent to; the kernel's, the sum of x times those positions of g."""
    N, C, H, W = x.shape
    _, Fg, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    gp = np.pad(g, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dx, dk = np.zeros_like(x), np.zeros(kernel.shape)
    for n in range(N):
        for c in range(C):
            first = c // (C // groups) * Fg
            for h in range(H):
                for w in range(W):
                    seen = gp[n, first:first + Fg, h * sh:h * sh + dh * (kh - 1) + 1:dh,
                              w * sw:w * sw + dw * (kw - 1) + 1:dw]
                    dx[n, c, h, w] = np.sum(seen * kernel[c])
                    dk[c] += x[n, c, h, w] * seen
    return dx, dk


# (N, C, H, W), out, kernel, stride, padding, output_padding, dilation, groups, bias
CONFIGS: list[tuple[Any, ...]] = [
    ((2, 3, 4, 5), 4, 3, 1, 0, 0, 1, 1, True),                     # stride 1
    ((2, 2, 3, 4), 3, (2, 3), 2, 1, 1, 1, 1, True),                # output_padding, padding
    ((2, 2, 3, 3), 2, 2, 2, 0, 0, 1, 1, False),                    # kernel == stride: taps never overlap
    ((1, 2, 3, 3), 3, 2, 3, 0, 2, 1, 1, True),                     # stride > kernel: gaps, output_padding 2
    ((2, 4, 3, 4), 6, 3, 2, 1, 1, 2, 2, True),                     # dilation, groups
    ((2, 4, 4, 3), 4, 3, 1, 1, 1, 2, 4, False),                    # depthwise; output_padding >= stride (< dilation)
    ((1, 6, 3, 4), 3, (3, 2), (2, 3), (2, 1), (1, 0), (3, 1), 3, True),  # pairs everywhere
    ((2, 2, 3, 2), 2, 2, 3, 1, 0, 2, 2, True),                     # dilated taps not overlapping (span 3 <= 3)
    ((2, 2, 1, 1), 3, 3, 1, 0, 0, 1, 1, True),                     # one input pixel: the kernel itself
    ((1, 2, 4, 4), 2, 3, 1, 2, 0, 1, 1, True),                     # padding cuts the output to 2x2
]
IDS = [f"c{i}" for i in range(len(CONFIGS))]


def make(config: tuple[Any, ...], seed: int = 1, dtype: Any = np.float64, bias: bool | None = None) -> ConvTranspose2D:
    shape, out, k, s, p, op, d, groups, with_bias = config
    return ConvTranspose2D(shape[1], out, k, s, p, op, with_bias if bias is None else bias, dilation=d,
                           groups=groups, rng=seed, dtype=dtype)


def geometry(layer: ConvTranspose2D) -> tuple[Pair, Pair, Pair, Pair]:
    return layer.stride, layer.padding, layer.output_padding, layer.dilation


def bias_of(layer: ConvTranspose2D) -> np.ndarray:
    assert layer.bias_row is not None
    return layer.bias_row


def kernel_gradient(layer: ConvTranspose2D) -> np.ndarray:
    """The gradient of W (bias row dropped) in PyTorch's (in, out/groups, kh, kw) shape, via ``kernel``."""
    twin = copy.deepcopy(layer)
    twin.W.data = layer.W.grad.copy()
    return twin.kernel


# ---------------------------------------------------------------------------------- ConvTranspose2D
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_forward_and_backward_match_naive_loops(config: tuple[Any, ...]) -> None:
    rng = np.random.default_rng(sum(config[0]))
    layer = make(config)
    x = rng.normal(size=config[0])
    y = layer(x)
    expected = naive_conv_transpose(x, layer.kernel, layer.bias_row, *geometry(layer), layer.groups)
    assert y.shape == expected.shape == (x.shape[0], *layer.output_shape(*x.shape[2:]))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    g = rng.normal(size=y.shape)
    dx = layer.backward(g)
    dx_expected, dk_expected = naive_gradients(x, g, layer.kernel, layer.stride, layer.padding, layer.dilation,
                                               layer.groups)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(kernel_gradient(layer), dk_expected, rtol=1e-12, atol=1e-12)
    if layer.bias:
        np.testing.assert_allclose(layer.W.grad[0], g.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_output_size_formula() -> None:
    """H_out = (H - 1)*s - 2p + d*(k - 1) + output_padding + 1, per axis."""
    layer = ConvTranspose2D(1, 1, (3, 2), (2, 3), (1, 0), (1, 2), dilation=(1, 3))
    assert layer.output_shape(5, 4) == (1, 4 * 2 - 2 + 2 + 1 + 1, 3 * 3 - 0 + 3 + 2 + 1)
    assert layer(np.zeros((2, 1, 5, 4))).shape == (2, 1, 10, 15)
    y = layer(np.zeros((0, 1, 5, 4)))  # an empty batch is fine
    assert y.shape == (0, 1, 10, 15) and layer.backward(y).shape == (0, 1, 5, 4)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_adjoint_of_conv2d(config: tuple[Any, ...]) -> None:
    """<ConvTranspose2D(x), y> == <x, Conv2D(y)> for the same kernel without bias; and our dx is Conv2D's
    forward of grad_output (cut to H x W: with output_padding >= stride Conv2D's output is larger)."""
    rng = np.random.default_rng(10 + sum(config[0]))
    layer = make(config, bias=False)
    conv = md.Conv2D.from_kernel(layer.kernel, None, layer.stride, layer.padding, dilation=layer.dilation,
                                 groups=layer.groups)
    x = rng.normal(size=config[0])
    y = layer(x)
    other = rng.normal(size=y.shape)
    H, W = x.shape[2:]
    back = conv(other)[:, :, :H, :W]
    lhs, rhs = np.vdot(y, other), np.vdot(x, back)
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(y) * np.linalg.norm(other)
    np.testing.assert_allclose(layer.backward(other), back, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_gradient_checker(seed: int, config: tuple[Any, ...]) -> None:
    layer = make(config, seed=seed)
    report = assert_gradients_ok(layer, inputs=np.random.default_rng(seed).normal(size=config[0]), seed=seed)
    assert [r.name for r in report.results] == ["input", "W"]
    assert all(r.failed == 0 and r.checked == r.size for r in report.results)


def test_gradient_checker_with_the_input_shape_hint() -> None:
    layer = ConvTranspose2D(2, 3, 3, stride=2, padding=1, output_padding=1, rng=0)
    assert layer.input_shape_hint() == (2, 2, 2)
    assert_gradients_ok(layer)
    wide = ConvTranspose2D(2, 2, 3, padding=3)  # H_out = H - 4: at least 5 pixels
    assert wide.input_shape_hint() == (2, 5, 5)
    assert wide(np.zeros((1, 2, 5, 5))).shape == (1, 2, 1, 1)


def test_w_layout_kernel_view_and_from_kernel() -> None:
    layer = ConvTranspose2D(2, 3, (2, 3), rng=0)
    assert layer.W.shape == (2 * 2 * 3 + 1, 3)
    kernel = layer.kernel
    assert kernel.shape == (2, 3, 2, 3)  # PyTorch's (in, out, kh, kw)
    for c in range(2):
        for o in range(3):
            for i in range(2):
                for j in range(3):
                    assert kernel[c, o, i, j] == layer.W.data[1 + (c * 2 + i) * 3 + j, o]
    kernel[1, 2, 0, 1] = 42.0  # groups=1: a view, writes go through
    assert layer.W.data[1 + (1 * 2 + 0) * 3 + 1, 2] == 42.0
    np.testing.assert_array_equal(layer.bias_row, layer.W.data[0])
    rebuilt = ConvTranspose2D.from_kernel(layer.kernel, layer.bias_row)
    np.testing.assert_array_equal(rebuilt.W.data, layer.W.data)
    no_bias = ConvTranspose2D.from_kernel(layer.kernel.astype(np.float32))
    assert not no_bias.bias and no_bias.W.shape == (12, 3) and no_bias.W.dtype == np.float32
    assert no_bias.bias_row is None


def test_grouped_w_layout_and_read_only_kernel_copy() -> None:
    layer = ConvTranspose2D(4, 6, (2, 3), 2, 1, 1, dilation=(1, 2), groups=2, rng=0)
    Cg, Fg, kh, kw = 2, 3, 2, 3
    assert layer.W.shape == (Cg * kh * kw + 1, 6)
    kernel = layer.kernel
    assert kernel.shape == (4, 3, 2, 3)
    for c in range(4):
        for o in range(Fg):
            for i in range(kh):
                for j in range(kw):
                    column = c // Cg * Fg + o  # the output channel: group of c, o-th within it
                    assert kernel[c, o, i, j] == layer.W.data[1 + ((c % Cg) * kh + i) * kw + j, column]
    with pytest.raises(ValueError, match="read-only"):  # a copy: a write would be lost, so it raises
        kernel[0, 0, 0, 0] = 1.0
    rebuilt = ConvTranspose2D.from_kernel(kernel, layer.bias_row, 2, 1, 1, dilation=(1, 2), groups=2)
    assert (rebuilt.in_channels, rebuilt.out_channels, rebuilt.groups, rebuilt.output_padding) == (4, 6, 2, (1, 1))
    np.testing.assert_array_equal(rebuilt.W.data, layer.W.data)
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 2))
    np.testing.assert_array_equal(rebuilt(x), layer(x))


def test_grouped_is_the_concatenation_of_per_group_layers() -> None:
    layer = ConvTranspose2D(4, 6, 3, 2, 1, dilation=2, groups=2, rng=0)
    x = np.random.default_rng(7).normal(size=(2, 4, 3, 4))
    halves = [ConvTranspose2D.from_kernel(layer.kernel[2 * h:2 * h + 2], bias_of(layer)[3 * h:3 * h + 3], 2, 1,
                                          dilation=2) for h in range(2)]
    expected = np.concatenate([half(x[:, 2 * h:2 * h + 2]) for h, half in enumerate(halves)], axis=1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-13, atol=1e-14)


def test_one_pixel_and_unit_kernel_closed_forms() -> None:
    """One input pixel outputs the kernel times it (plus bias); a 1x1 unit kernel with stride s spreads the
    pixels s apart, zeros between."""
    layer = ConvTranspose2D(2, 3, (2, 3), rng=0)
    y = layer(np.array([[[[2.0]], [[-1.0]]]]))
    np.testing.assert_allclose(y[0], 2 * layer.kernel[0] - layer.kernel[1] + bias_of(layer)[:, None, None],
                               rtol=1e-14)
    spread = ConvTranspose2D.from_kernel(np.ones((1, 1, 1, 1)), stride=3, output_padding=2)
    x = np.random.default_rng(1).normal(size=(2, 1, 3, 4))
    expected = np.zeros((2, 1, 9, 12))
    expected[:, :, ::3, ::3] = x
    np.testing.assert_array_equal(spread(x), expected)


def test_init_uses_pytorchs_transposed_fan_in() -> None:
    """PyTorch's weight is (in, out/groups, kh, kw), so its fan_in is out/groups*kh*kw (not the rows of W)."""
    layer = ConvTranspose2D(2, 8, 3, rng=0)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(layer.W.data).max() <= bound  # weights and the bias row
    assert np.abs(layer.W.data).max() > 0.9 * bound
    grouped = ConvTranspose2D(4, 8, 3, groups=2, rng=0)
    assert np.abs(grouped.W.data).max() <= 1 / np.sqrt(4 * 9) < 1 / np.sqrt(2 * 9)
    assert np.abs(grouped.W.data).max() > 0.9 / np.sqrt(4 * 9)
    np.testing.assert_array_equal(ConvTranspose2D(2, 8, 3, rng=5).W.data, ConvTranspose2D(2, 8, 3, rng=5).W.data)
    he = ConvTranspose2D(2, 8, 3, init="he", rng=0)
    np.testing.assert_array_equal(he.W.data[0], 0.0)
    assert 0.5 < he.W.data[1:].std() / np.sqrt(2 / 72) < 1.5
    np.testing.assert_array_equal(ConvTranspose2D(2, 8, 3, init="zeros").W.data, 0.0)
    W = np.arange(19 * 8, dtype=float).reshape(19, 8)
    np.testing.assert_array_equal(ConvTranspose2D(2, 8, 3, W=W).W.data, W)


@pytest.mark.parametrize("stride", [1, 2])
def test_float32_stays_float32(stride: int) -> None:
    rng = np.random.default_rng(1)
    layer = ConvTranspose2D(4, 6, 3, stride, 1, stride - 1, dilation=2, groups=2, rng=0, dtype=np.float32)
    x = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones(y.shape, dtype=np.float32))
    assert dx.dtype == np.float32 and layer.W.grad.dtype == np.float32
    layer.backward_params(np.ones(y.shape, dtype=np.float32))
    assert layer.W.grad.dtype == np.float32
    reference = naive_conv_transpose(x.astype(np.float64), layer.kernel.astype(np.float64),
                                     bias_of(layer).astype(np.float64), *geometry(layer), 2)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride, bias, groups", [(1, True, 1), (2, False, 1), (2, True, 2)])
def test_backward_params_overwrite_accumulate_and_frozen(stride: int, bias: bool, groups: int) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 4, 4, 4))

    def layer() -> ConvTranspose2D:
        return ConvTranspose2D(4, 6, 3, stride, 1, bias=bias, groups=groups, rng=0)

    frozen = assert_backward_params_contract(layer, x, rng.normal(size=layer()(x).shape))
    report = md.GradientChecker(frozen, inputs=x[:1, :, :2, :2]).run()
    assert report.passed and [r.status for r in report.results][1] == "frozen"


def test_backward_params_through_sequential_equals_backward() -> None:
    rng = np.random.default_rng(3)
    model = md.Sequential(ConvTranspose2D(2, 3, 3, 2, 1, 1, rng=0), md.ReLU(), md.Conv2D(3, 2, 3, rng=1))
    x = rng.normal(size=(2, 2, 3, 3))
    g = rng.normal(size=model(x).shape)
    model.backward(g)
    full = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    model.backward_params(g)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-14)


def test_input_and_grad_are_not_modified_and_any_layout_works() -> None:
    rng = np.random.default_rng(2)
    layer = ConvTranspose2D(2, 3, 3, 2, 1, rng=0)
    base = rng.normal(size=(2, 2, 4, 5))
    channel_major = np.ascontiguousarray(base.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # a Conv2D's layout
    y = layer(base)
    g = rng.normal(size=y.shape)
    dx = layer.backward(g)
    x0, g0 = base.copy(), g.copy()
    for x in (channel_major, base[:, :, ::-1][:, :, ::-1]):
        np.testing.assert_array_equal(layer(x), y)
        np.testing.assert_array_equal(layer.backward(np.asfortranarray(g)), dx)
    np.testing.assert_array_equal(base, x0)
    np.testing.assert_array_equal(g, g0)


def test_state_dict_save_load_and_astype(tmp_path: pathlib.Path) -> None:
    layer = ConvTranspose2D(4, 6, 3, 2, 1, 1, groups=2, rng=0)
    path = tmp_path / "up.ckpt"
    md.save({"model": layer.state_dict()}, path)
    state = md.load(path)["model"]
    assert list(state) == ["W", "_layout"]
    other = ConvTranspose2D(4, 6, 3, 2, 1, 1, groups=2, rng=1)
    other.load_state_dict(state)
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 3))
    np.testing.assert_array_equal(other(x), layer(x))
    with pytest.raises(md.StateDictError, match=r"'W': expected shape \(37, 6\), got \(19, 6\)"):
        ConvTranspose2D(4, 6, 3, rng=0).load_state_dict(state)
    half = other.astype(np.float32)
    assert half is other and other.W.dtype == np.float32 and other(x.astype(np.float32)).dtype == np.float32


def test_repr() -> None:
    assert repr(ConvTranspose2D(16, 8, 4, 2, 1)) == \
        "ConvTranspose2D(16, 8, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))"
    assert repr(ConvTranspose2D(4, 2, (3, 2), output_padding=1, dilation=2, groups=2, bias=False)) == \
        "ConvTranspose2D(4, 2, kernel_size=(3, 2), output_padding=(1, 1), dilation=(2, 2), groups=2, bias=False)"


def test_bad_inputs_name_the_layer_and_leave_it_unchanged() -> None:
    layer = ConvTranspose2D(3, 8, 3, stride=2, rng=0)
    who = r"ConvTranspose2D\(3 -> 8, k=3, stride=2\)"
    good = np.random.default_rng(0).normal(size=(1, 3, 2, 2))
    y = layer(good)
    cache, W = layer._cache, layer.W.data.copy()
    bad_float = np.zeros((1, 3, 2, 2))
    bad_float[0, 1, 1, 0] = np.nan
    cases: list[tuple[Any, type[Exception], str]] = [
        (np.zeros((2, 1, 5, 5)), md.ShapeError, who + r": expected input of shape \(N, 3, H, W\), got shape "
                                                      r"\(2, 1, 5, 5\)"),
        (np.zeros((3, 5, 5)), md.ShapeError, who + r": expected a 4-D input of shape \(N, 3, H, W\), got shape "
                                                   r"\(3, 5, 5\)"),
        (np.zeros((1, 3, 2, 2), np.float32), md.DTypeError, who + r": input dtype float32 does not match the "
                                                                  r"layer's parameters \(float64\)"),
        (np.zeros((1, 3, 2, 2), int), md.DTypeError, who + ": expected a floating-point input, got dtype int"),
        ("x", md.DTypeError, who + ": expected input as a numpy array, got str"),
        (bad_float, md.NonFiniteError, who + r": input holds 1 NaN/inf value\(s\), the first at index \(0, 1, 1, 0\)"),
        (np.zeros((1, 3, 0, 2)), md.ShapeError, who + r": input of shape \(1, 3, 0, 2\) has no pixels"),
    ]
    for x, error, message in cases:
        with pytest.raises(error, match=message):
            layer(x)
        assert layer._cache is cache
        np.testing.assert_array_equal(layer.W.data, W)
    with pytest.raises(md.ShapeError, match=r"backward: expected grad_output of shape \(1, 8, 5, 5\), got"):
        layer.backward(np.zeros((1, 8, 5, 4)))
    with pytest.raises(md.DTypeError, match=r"backward: expected grad_output of dtype float64, got float32"):
        layer.backward_params(np.zeros((1, 8, 5, 5), np.float32))
    assert not layer.W.has_grad
    np.testing.assert_array_equal(layer(good), y)  # still works as before
    cut = ConvTranspose2D(2, 2, 3, padding=3)
    with pytest.raises(md.ShapeError, match=r"ConvTranspose2D\(2 -> 2, k=3\): input of shape \(1, 2, 4, 6\) gives "
                                            r"an empty output \(0 x 2\) with padding \(3, 3\): expected H >= 5 "
                                            r"and W >= 5, got H=4, W=6"):
        cut(np.zeros((1, 2, 4, 6)))
    with pytest.raises(md.BackwardBeforeForwardError):
        cut.backward(np.zeros((1, 2, 1, 1)))
    with pytest.raises(md.BackwardBeforeForwardError):
        cut.backward_params(np.zeros((1, 2, 1, 1)))


def test_bad_constructor_arguments() -> None:
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"in_channels": 0}, ValueError, r"ConvTranspose2D: in_channels must be a positive int, got 0"),
        ({"out_channels": 2.0}, ValueError, r"ConvTranspose2D: out_channels must be a positive int, got 2.0"),
        ({"kernel_size": 0}, ValueError, r"ConvTranspose2D: kernel_size must be an int >= 1 or a pair"),
        ({"stride": (1, 0)}, ValueError, r"ConvTranspose2D: stride must be an int >= 1 or a pair of them, got"),
        ({"padding": -1}, ValueError, r"ConvTranspose2D: padding must be an int >= 0"),
        ({"output_padding": True}, ValueError, r"ConvTranspose2D: output_padding must be an int >= 0"),
        ({"dilation": 1.5}, ValueError, r"ConvTranspose2D: dilation must be an int >= 1"),
        ({"groups": 0}, ValueError, r"ConvTranspose2D: groups must be a positive int, got 0"),
        ({"groups": 3}, ValueError, r"groups must divide both in_channels and out_channels, got groups=3 with "
                                    r"in_channels=4, out_channels=6"),
        ({"output_padding": 1}, ValueError, r"ConvTranspose2D: output_padding must be smaller than the stride or the "
                                            r"dilation \(as PyTorch\), got output_padding=\(1, 1\) with "
                                            r"stride=\(1, 1\), dilation=\(1, 1\) \(along the height\)"),
        ({"stride": (3, 2), "output_padding": (2, 2)}, ValueError, r"along the width"),
        ({"bias": "yes"}, TypeError, r"ConvTranspose2D: bias must be True or False, got 'yes'"),
        ({"dtype": np.int32}, md.DTypeError, r"ConvTranspose2D: parameters need a floating dtype"),
        ({"init": "kaiming"}, ValueError, r"unknown init scheme 'kaiming'"),
        ({"W": np.zeros((19, 6))}, md.ShapeError, r"ConvTranspose2D\(4 -> 6, k=3\): expected W of shape \(37, 6\) "
                                                  r"\(in_channels\*kh\*kw \+ 1, out_channels\), got \(19, 6\)"),
        ({"W": np.full((37, 6), np.inf)}, md.NonFiniteError, r"W holds 222 NaN/inf"),
        ({"rng": "seed"}, TypeError, r"rng must be a numpy.random.Generator"),
    ]
    for change, error, message in cases:
        args: dict[str, Any] = {"in_channels": 4, "out_channels": 6, "kernel_size": 3} | change
        with pytest.raises(error, match=message):
            ConvTranspose2D(**args)
    with pytest.raises(ValueError, match=r"stride=\(1, 1\), dilation=\(2, 2\)"):  # op must be < max(s, d)
        ConvTranspose2D(2, 2, 3, output_padding=2, dilation=2)
    assert ConvTranspose2D(2, 2, 3, output_padding=1, dilation=2).output_padding == (1, 1)
    with pytest.raises(md.ShapeError, match=r"groups=2\): expected W of shape \(19, 6\) "
                                            r"\(in_channels//groups\*kh\*kw \+ 1, out_channels\), got \(37, 6\)"):
        ConvTranspose2D(4, 6, 3, groups=2, W=np.zeros((37, 6)))


def test_from_kernel_refuses_bad_kernels() -> None:
    with pytest.raises(md.DTypeError, match=r"ConvTranspose2D\.from_kernel: the kernel must hold real numbers"):
        ConvTranspose2D.from_kernel(np.ones((2, 1, 3, 3), complex))
    with pytest.raises(md.ShapeError, match=r"expected a kernel of shape \(in, out/groups, kh, kw\), got \(2, 3, 3\)"):
        ConvTranspose2D.from_kernel(np.ones((2, 3, 3)))
    with pytest.raises(md.ShapeError, match=r"expected a bias of shape \(6,\), got \(3,\)"):
        ConvTranspose2D.from_kernel(np.ones((4, 3, 3, 3)), np.zeros(3), groups=2)
    with pytest.raises(ValueError, match=r"groups must divide in_channels, got groups=3 with a kernel of shape"):
        ConvTranspose2D.from_kernel(np.ones((4, 3, 3, 3)), groups=3)
    assert ConvTranspose2D.from_kernel(np.ones((4, 3, 3, 3), int), groups=2).W.dtype == np.float64


# ---------------------------------------------------------------------------------- autoencoder
def test_autoencoder_passes_the_checker_and_learns() -> None:
    def model() -> md.Sequential:
        return md.Sequential(md.Conv2D(1, 4, 4, stride=2, padding=1, rng=0), md.ReLU(),
                             ConvTranspose2D(4, 1, 4, stride=2, padding=1, rng=1))

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 1, 6, 6))
    assert_gradients_ok(model(), inputs=x, loss=md.MSELoss(), targets=x)
    # smooth 8x8 images: random mixtures of four low-frequency patterns
    grid = np.linspace(0, np.pi, 8)
    patterns = np.stack([np.outer(np.cos(a * grid), np.cos(b * grid)) for a in (0, 1) for b in (0, 1)])
    images = np.einsum("nk,khw->nhw", rng.normal(size=(64, 4)), patterns)[:, None]
    net = model()
    loss = md.MSELoss()
    before = loss(net(images), images)
    net.fit(images, images, loss=loss, optimizer=md.Adam(net.parameters(), lr=0.02), epochs=40, batch_size=16,
            rng=0, verbose=0)
    after = loss(net(images), images)
    assert after < 0.1 * before, (before, after)


# ---------------------------------------------------------------------------------- Upsample
SCALES = [1, 2, 3, (2, 3)]


@pytest.mark.parametrize("scale", SCALES)
def test_nearest_matches_kron(scale: Any) -> None:
    sh, sw = pair(scale)
    rng = np.random.default_rng(sh * 10 + sw)
    x = rng.normal(size=(2, 3, 4, 5))
    up = Upsample(scale)
    y = up(x)
    np.testing.assert_array_equal(y, np.kron(x, np.ones((1, 1, sh, sw))))
    g = rng.normal(size=y.shape)
    expected = np.zeros_like(x)
    for h in range(4):
        for w in range(5):
            expected[:, :, h, w] = g[:, :, h * sh:(h + 1) * sh, w * sw:(w + 1) * sw].sum(axis=(2, 3))
    np.testing.assert_allclose(up.backward(g), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("scale", SCALES)
def test_bilinear_closed_forms(scale: Any) -> None:
    """Rows of the interpolation sum to 1 (a constant image stays constant), and a linear ramp a*h + b*w is
    reproduced at the source coordinate clip((r + 0.5)/s - 0.5, 0, H - 1)."""
    sh, sw = pair(scale)
    up = Upsample(scale, mode="bilinear")
    np.testing.assert_allclose(up(np.full((1, 2, 3, 4), 2.5)), 2.5, rtol=1e-15)
    H, W = 4, 5
    ramp = (3.0 * np.arange(H)[:, None] - 2.0 * np.arange(W)[None, :])[None, None]
    rows = np.clip((np.arange(H * sh) + 0.5) / sh - 0.5, 0, H - 1)
    cols = np.clip((np.arange(W * sw) + 0.5) / sw - 0.5, 0, W - 1)
    np.testing.assert_allclose(up(ramp)[0, 0], 3.0 * rows[:, None] - 2.0 * cols[None, :], rtol=1e-13, atol=1e-13)
    x = np.random.default_rng(0).normal(size=(2, 3, H, W))  # and the back-pass is the adjoint
    y = up(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    assert abs(np.vdot(y, g) - np.vdot(x, up.backward(g))) <= 1e-12 * np.linalg.norm(y) * np.linalg.norm(g)


@pytest.mark.parametrize("scale", SCALES)
def test_bilinear_align_corners_closed_forms(scale: Any) -> None:
    """With align_corners=True output r reads source r*(H - 1)/(sh*H - 1): the corner pixels are copied, a
    ramp a*h + b*w is reproduced there exactly, and the back-pass is the adjoint."""
    sh, sw = pair(scale)
    up = Upsample(scale, mode="bilinear", align_corners=True)
    H, W = 4, 5
    x = np.random.default_rng(0).normal(size=(2, 3, H, W))
    y = up(x)
    for r, q in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        np.testing.assert_allclose(y[:, :, r, q], x[:, :, r, q], rtol=1e-14)
    ramp = (3.0 * np.arange(H)[:, None] - 2.0 * np.arange(W)[None, :])[None, None]
    rows = np.arange(H * sh) * (H - 1) / (H * sh - 1)
    cols = np.arange(W * sw) * (W - 1) / (W * sw - 1)
    np.testing.assert_allclose(up(ramp)[0, 0], 3.0 * rows[:, None] - 2.0 * cols[None, :], rtol=1e-13, atol=1e-13)
    y = up(x)
    g = np.random.default_rng(1).normal(size=y.shape)
    assert abs(np.vdot(y, g) - np.vdot(x, up.backward(g))) <= 1e-12 * np.linalg.norm(y) * np.linalg.norm(g)
    one = Upsample(scale, "bilinear", align_corners=True)(x[:, :, :1, :1])  # a single pixel: copied everywhere
    np.testing.assert_array_equal(one, np.broadcast_to(x[:, :, :1, :1], (2, 3, sh, sw)))
    assert repr(up).endswith(", align_corners=True)") and up._who.endswith(", align_corners=True)")


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "corners"])
@pytest.mark.parametrize("scale", SCALES)
def test_upsample_gradient_checker(scale: Any, mode: str) -> None:
    if mode == "corners":
        layer = Upsample(scale, "bilinear", align_corners=True)
        x = np.random.default_rng(3).normal(size=(2, 2, 3, 4))
        report = assert_gradients_ok(layer, inputs=x, seed=1)
        assert [(r.name, r.checked) for r in report.results] == [("input", 48)]
        return
    x = np.random.default_rng(3).normal(size=(2, 2, 3, 4))
    report = assert_gradients_ok(Upsample(scale, mode), inputs=x, seed=1)
    assert [(r.name, r.checked) for r in report.results] == [("input", 48)]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_dtype_layout_state_and_repr(mode: str) -> None:
    up = Upsample((2, 3), mode)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = up(x)
    assert y.dtype == np.float32 and y.shape == (2, 3, 8, 15) and y.flags.c_contiguous
    assert up.backward(np.ones_like(y)).dtype == np.float32
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    z = up(channel_major)
    np.testing.assert_array_equal(z, y)
    assert z.transpose(1, 0, 2, 3).flags.c_contiguous  # keeps a Conv2D output's channel-major layout
    np.testing.assert_allclose(up.backward(np.ones_like(z)), up.backward(np.ones_like(y)), rtol=1e-6)
    assert up.state_dict() == {} and up.num_parameters() == 0 and up.astype(np.float64) is up
    assert repr(up) == f"Upsample(scale_factor=(2, 3), mode='{mode}')"


def test_upsample_in_a_model() -> None:
    model = md.Sequential(md.Conv2D(2, 3, 3, padding=1, rng=0), Upsample(2), md.ReLU(),
                          ConvTranspose2D(3, 2, 3, stride=2, padding=1, output_padding=1, rng=1),
                          Upsample(3, "bilinear"))
    x = np.random.default_rng(0).normal(size=(2, 2, 2, 3))
    assert model(x).shape == (2, 2, 24, 36)
    assert_gradients_ok(model, inputs=x)


def test_upsample_bad_arguments_and_inputs() -> None:
    for bad in (0, 1.5, (2, 0), True, "2", (1, 2, 3), 2.0):
        with pytest.raises(ValueError, match=r"Upsample: scale_factor must be an int >= 1 or a pair of them, got"):
            Upsample(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Upsample: mode must be one of \('nearest', 'bilinear'\), got 'bicubic'"):
        Upsample(2, "bicubic")
    with pytest.raises(ValueError, match=r"align_corners can only be set with mode='bilinear'"):
        Upsample(2, align_corners=False)
    with pytest.raises(TypeError, match=r"Upsample: align_corners must be True or False, got 'no'"):
        Upsample(2, "bilinear", align_corners="no")  # type: ignore[arg-type]
    assert Upsample(2, "bilinear", align_corners=False).mode == "bilinear"
    up = Upsample(2)
    who = r"Upsample\(scale_factor=2, mode='nearest'\)"
    with pytest.raises(md.BackwardBeforeForwardError):
        up.backward(np.zeros((1, 1, 2, 2)))
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 3))
    y = up(x)
    cases: list[tuple[Any, type[Exception], str]] = [
        (np.zeros((3, 4, 4)), md.ShapeError, who + r": expected a 4-D input of shape \(N, C, H, W\), got shape "
                                                   r"\(3, 4, 4\)"),
        (np.zeros((1, 2, 3, 3), int), md.DTypeError, who + ": expected a floating-point input, got dtype int"),
        (np.zeros((1, 2, 3, 0)), md.ShapeError, who + r": input of shape \(1, 2, 3, 0\) has no pixels"),
        ({"x": 1}, md.DTypeError, who + ": expected input as a numpy array, got dict"),
    ]
    for bad_x, error, message in cases:
        with pytest.raises(error, match=message):
            up(bad_x)
        assert up._shape == x.shape
    with pytest.raises(md.ShapeError, match=who + r".backward: expected grad_output of shape \(1, 2, 4, 6\)"):
        up.backward(np.zeros((1, 2, 4, 5)))
    with pytest.raises(md.DTypeError, match=r"expected grad_output of dtype float64, got float32"):
        up.backward(np.zeros((1, 2, 4, 6), np.float32))
    np.testing.assert_array_equal(up.backward(np.ones_like(y)), np.full(x.shape, 4.0))
    assert Upsample((2, 3), "bilinear")._who == "Upsample(scale_factor=(2, 3), mode='bilinear')"


# ---------------------------------------------------------------------------------- PyTorch
def assert_same_as_torch(torch: Any, ours: ConvTranspose2D, theirs: Any, x: np.ndarray, rng: np.random.Generator,
                         rtol: float, atol: float) -> None:
    """Forward, dx and the kernel and bias gradients of ``ours`` equal those of the torch layer ``theirs``."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.normal(size=tuple(yt.shape)).astype(x.dtype)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(kernel_gradient(ours), theirs.weight.grad.numpy(), rtol=rtol, atol=atol * 10)
    if ours.bias:
        np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=rtol, atol=atol * 10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv_transpose_against_pytorch(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-5, 1e-5)
    configs = [*CONFIGS, ((4, 16, 7, 7), 8, 4, 2, 1, 0, 1, 1, True)]  # and the usual "double the size" layer
    for shape, out, k, s, p, op, d, groups, bias in configs:
        theirs = torch.nn.ConvTranspose2d(shape[1], out, k, s, p, op, groups, bias, d, dtype=getattr(torch, dtype))
        ours = ConvTranspose2D.from_kernel(theirs.weight.detach().numpy(),
                                           theirs.bias.detach().numpy() if bias else None, s, p, op, dilation=d,
                                           groups=groups)
        assert ours.W.dtype == np.dtype(dtype)
        assert_same_as_torch(torch, ours, theirs, rng.normal(size=shape).astype(dtype), rng, rtol, atol)


def test_default_init_has_pytorchs_bounds() -> None:
    """Both draw weights and bias from U(+-1/sqrt(fan_in)), fan_in = weight.shape[1]*kh*kw = out/groups*kh*kw."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    settings: list[tuple[int, int, Any, int]] = [(3, 8, 3, 1), (4, 6, (2, 3), 2)]
    for cin, out, k, groups in settings:
        theirs = torch.nn.ConvTranspose2d(cin, out, k, groups=groups)
        ours = ConvTranspose2D(cin, out, k, groups=groups, rng=0)
        fan_in = theirs.weight.shape[1] * theirs.weight.shape[2] * theirs.weight.shape[3]
        bound = 1 / np.sqrt(fan_in)
        for values in (theirs.weight.detach().numpy(), theirs.bias.detach().numpy(), ours.kernel, bias_of(ours)):
            assert np.abs(values).max() <= bound
        for largest in (max(theirs.weight.abs().max(), theirs.bias.abs().max()), np.abs(ours.W.data).max()):
            assert largest > 0.8 * bound


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "corners"])
@pytest.mark.parametrize("scale", SCALES)
def test_upsample_against_pytorch(scale: Any, mode: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    tol = 1e-12 if dtype == "float64" else 1e-5
    x = rng.normal(size=(2, 3, 5, 4)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    corners = {"align_corners": True} if mode == "corners" else {}
    mode = "bilinear" if corners else mode
    yt = torch.nn.Upsample(scale_factor=scale, mode=mode, **corners)(xt)
    g = rng.normal(size=tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(g))
    up = Upsample(scale, mode, **corners)
    y = up(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(up.backward(g), xt.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_big_endian_input_gives_native_output_and_takes_its_gradient(mode: str) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 3))
    native, swapped = Upsample(2, mode), Upsample(2, mode)
    y = swapped(x.astype(">f8"))
    assert y.dtype == np.float64 and y.dtype.isnative
    np.testing.assert_array_equal(y, native(x))
    g = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_array_equal(swapped.backward(g), native.backward(g))


def test_upsample_by_one_returns_a_fresh_writable_array() -> None:
    x = np.zeros((2, 3, 4, 5))
    for scale in (1, (1, 1)):
        y = Upsample(scale)(x)
        assert not np.shares_memory(x, y) and y.flags.writeable
        np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("scale", [(2, 2), (3, 1), (1, 3), (2, 3)])
def test_upsample_nearest_backward_sums_each_block_for_any_gradient_layout(scale: tuple[int, int]) -> None:
    layer = Upsample(scale)
    y = layer(np.ones((2, 3, 4, 5)))
    g = np.random.default_rng(2).standard_normal(y.shape)
    sh, sw = scale
    expected = g.reshape(2, 3, 4, sh, 5, sw).sum(axis=(3, 5))
    for grad in (g, np.asfortranarray(g), g.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3)):
        before = grad.copy()
        np.testing.assert_allclose(layer.backward(grad), expected, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(grad, before)


# ---------------------------------------------------------------------------------------------- size=
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "corners"])
def test_upsample_to_a_size_closed_forms_and_gradient_checker(mode: str) -> None:
    """size= equal to the input is the identity; an integer multiple equals scale_factor; any size (smaller
    too) passes the checker, and the back-pass is the adjoint."""
    corners = {"align_corners": True} if mode == "corners" else {}
    mode = "bilinear" if corners else mode
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(Upsample(size=(4, 5), mode=mode, **corners)(x), x, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(Upsample(size=(8, 15), mode=mode, **corners)(x),
                               Upsample((2, 3), mode, **corners)(x), rtol=1e-14, atol=1e-15)
    for size in ((7, 3), (3, 9), 6):
        layer = Upsample(size=size, mode=mode, **corners)
        y = layer(x)
        assert y.shape == (2, 3, *((size, size) if isinstance(size, int) else size))
        g = np.random.default_rng(1).normal(size=y.shape)
        assert abs(np.vdot(y, g) - np.vdot(x, layer.backward(g))) <= 1e-12 * np.linalg.norm(y) * np.linalg.norm(g)
        assert_gradients_ok(layer, inputs=x[:1, :2], seed=2)


def test_upsample_nearest_to_a_size_picks_pytorchs_pixels() -> None:
    """Row o copies row floor(o * H / Ho) (in float32, as PyTorch), clamped to the last one."""
    x = np.arange(5.0)[None, None, None, :]
    np.testing.assert_array_equal(Upsample(size=(1, 8))(x)[0, 0, 0], [0, 0, 1, 1, 2, 3, 3, 4])
    np.testing.assert_array_equal(Upsample(size=(1, 3))(x)[0, 0, 0], [0, 1, 3])  # fewer: picked, not averaged


@pytest.mark.parametrize("seed", range(3))
def test_upsample_to_a_size_against_pytorch(seed: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    for _ in range(25):
        H, W, Ho, Wo = (int(v) for v in (*rng.integers(1, 8, 2), *rng.integers(1, 17, 2)))
        mode = str(rng.choice(["nearest", "bilinear"]))
        corners = None if mode == "nearest" else bool(rng.integers(2))
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
            x = rng.normal(size=(2, 3, H, W)).astype(dtype)
            xt = torch.tensor(x, requires_grad=True)
            yt = torch.nn.Upsample(size=(Ho, Wo), mode=mode, align_corners=corners)(xt)
            g = rng.normal(size=tuple(yt.shape)).astype(dtype)
            yt.backward(torch.tensor(g))
            layer = Upsample(size=(Ho, Wo), mode=mode, align_corners=corners)
            np.testing.assert_allclose(layer(x), yt.detach().numpy(), rtol=tol, atol=tol)
            np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=tol, atol=tol)


def test_upsample_size_arguments() -> None:
    with pytest.raises(ValueError, match=r"Upsample: give either scale_factor or size \(as PyTorch\), got "
                                         r"scale_factor=None and size=None"):
        Upsample()
    with pytest.raises(ValueError, match="give either scale_factor or size"):
        Upsample(2, size=4)
    for bad in (0, (3, 0), 2.5, "4"):
        with pytest.raises(ValueError, match=r"Upsample: size must be an int >= 1 or a pair of them"):
            Upsample(size=bad)  # type: ignore[arg-type]
    layer = Upsample(size=(6, 8), mode="bilinear", align_corners=False)
    assert repr(layer) == "Upsample(size=(6, 8), mode='bilinear', align_corners=False)"
    assert layer._who == "Upsample(size=(6, 8), mode='bilinear', align_corners=False)"
    assert Upsample(size=5)._who == "Upsample(size=5, mode='nearest')"
    assert layer.output_shape(2, 3) == (6, 8) and layer.scale_factor is None
    with pytest.raises(md.ShapeError, match=r"Upsample\(size=\(6, 8\), mode='bilinear', align_corners=False\)"
                                            r"\.backward: expected grad_output of shape \(1, 1, 6, 8\)"):
        layer(np.zeros((1, 1, 2, 3)))
        layer.backward(np.zeros((1, 1, 4, 6)))


def test_upsample_nearest_to_a_size_keeps_a_nan_or_inf_in_its_own_pixels() -> None:
    """Copied by index, not by a 0/1 matrix (where 0 * inf = NaN spread a single inf over whole rows and
    columns; found by a review); the backward adds each copy's gradient back, and -0.0 stays -0.0."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.inf
    y = Upsample(size=(8, 8))(x)
    assert not np.isnan(y).any() and np.isinf(y).sum() == 4 and np.isinf(y[0, 0, :2, :2]).all()
    layer = Upsample(size=(3, 3))
    layer(np.zeros((1, 1, 4, 4)))
    g = np.zeros((1, 1, 3, 3))
    g[0, 0, 0, 0] = np.inf
    dx = layer.backward(g)
    assert np.isinf(dx[0, 0, 0, 0]) and np.count_nonzero(dx) == 1 and not np.isnan(dx).any()
    assert np.signbit(Upsample(size=(2, 3))(np.full((1, 1, 1, 1), -0.0))).all()


def test_upsample_nearest_to_large_sizes_picks_pytorchs_float32_pixels() -> None:
    """PyTorch picks the nearest pixel in float32 arithmetic: at 47 * 3/141 (exactly 1) that is pixel 0.
    Its float64 forward picks otherwise at some sides of 129 or more, its float64 backward as here."""
    torch = pytest.importorskip("torch")
    for H, Ho in ((3, 141), (2, 166), (9, 141), (36, 246), (5, 130)):
        for dtype in (np.float32, np.float64):
            x = np.arange(H, dtype=dtype).reshape(1, 1, H, 1)
            layer = Upsample(size=(Ho, 1))
            y = layer(x)
            xt = torch.tensor(x, requires_grad=True)
            yt = torch.nn.Upsample(size=(Ho, 1))(xt)
            g = np.arange(1, Ho + 1, dtype=dtype).reshape(1, 1, Ho, 1)
            yt.backward(torch.tensor(g))
            np.testing.assert_array_equal(layer.backward(g), xt.grad.numpy())
            if dtype == np.float32:
                np.testing.assert_array_equal(y, yt.detach().numpy())


#: (H, Ho) -> the outputs at which PyTorch's nearest pixel, ``floor(o * float32(H / Ho))`` in float32, is one
#: below the exact ``o * H // Ho`` (at every other output the two agree).  Obtained once from
#: ``torch.nn.Upsample(size=(Ho, 1))`` on ``torch.arange(H, dtype=torch.float32)`` (PyTorch 2.13, CPU); float64
#: ``floor(o * (H / Ho))`` differs from PyTorch at (3, 141): 47, 94; (2, 166): 83; (9, 141): 47, 94 (one below
#: the exact pixel, where PyTorch's is exact); (104, 22): 11; (106, 38): 19; (120, 22): 11.
_TORCH_NEAREST_BELOW_EXACT = {(3, 141): [47, 94], (2, 166): [83], (9, 141): [], (36, 246): [205],
                              (104, 22): [11], (106, 38): [], (120, 22): []}


@pytest.mark.parametrize("H, Ho", list(_TORCH_NEAREST_BELOW_EXACT))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upsample_nearest_to_a_size_picks_pytorchs_float32_pixels_without_torch(H: int, Ho: int, dtype: type) -> None:
    """The torch test above is skipped without PyTorch, so a float64 nearest index (a mutation review:
    ``size / out``, which picks pixel 1 at 47 * 3/141, where PyTorch picks 0) passed the whole suite."""
    want = np.minimum(np.arange(Ho) * H // Ho, H - 1)
    want[_TORCH_NEAREST_BELOW_EXACT[H, Ho]] -= 1
    layer = Upsample(size=(Ho, 1))
    y = layer(np.arange(H, dtype=dtype).reshape(1, 1, H, 1))
    np.testing.assert_array_equal(y.reshape(-1), want.astype(dtype))
    g = np.arange(1, Ho + 1, dtype=dtype)
    dx = layer.backward(g.reshape(1, 1, Ho, 1))  # each output's gradient added back to the pixel it copied
    np.testing.assert_array_equal(dx.reshape(-1), np.bincount(want, weights=g, minlength=H).astype(dtype))
    if (H, Ho) == (3, 141):
        assert y[0, 0, 47, 0] == 0.0 and y[0, 0, 94, 0] == 1.0


def test_bilinear_matrices_are_kept_until_sizes_settings_or_dtype_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bilinear builds its interpolation matrices once per (sizes, ratios, align_corners, dtype): a forward
    of the same input size builds none; a change of any of them builds new ones.  Every output and input
    gradient equals a fresh layer's (which builds its own), bit for bit."""
    import minidl.layers.upsampling as upsampling
    built: list[tuple[int, int]] = []
    real = upsampling._linear_weights
    monkeypatch.setattr(upsampling, "_linear_weights",
                        lambda size, out, *rest: (built.append((size, out)), real(size, out, *rest))[1])
    rng = np.random.default_rng(0)
    up = Upsample(2, "bilinear")

    def same_as_fresh(x: np.ndarray, expected_builds: list[tuple[int, int]]) -> None:
        built.clear()
        y = up(x)
        assert built == expected_builds
        g = rng.normal(size=y.shape).astype(x.dtype)
        dx = up.backward(g)
        fresh = Upsample(up.scale_factor, "bilinear", up.align_corners, size=up.size)
        np.testing.assert_array_equal(y, fresh(x))
        np.testing.assert_array_equal(dx, fresh.backward(g))
        assert y.dtype == dx.dtype == x.dtype

    x = rng.normal(size=(2, 3, 4, 5))
    same_as_fresh(x, [(4, 8), (5, 10)])
    same_as_fresh(rng.normal(size=(1, 2, 4, 5)), [])  # other N and C: the same matrices
    a_h, a_w = up._used[3:]
    assert not a_h.flags.writeable and not a_w.flags.writeable
    same_as_fresh(rng.normal(size=(2, 3, 6, 5)), [(6, 12), (5, 10)])  # another height
    same_as_fresh(x.astype(np.float32), [(4, 8), (5, 10)])  # another dtype
    up.align_corners = True
    same_as_fresh(x, [(4, 8), (5, 10)])
    up.scale_factor = (3, 2)
    same_as_fresh(x, [(4, 12), (5, 10)])
    up.size = (7, 3)
    same_as_fresh(x, [(4, 7), (5, 3)])
    same_as_fresh(x, [])


def test_bilinear_kept_matrices_are_not_copied_or_pickled() -> None:
    """A deep copy or a pickle leaves the kept matrices out (the copy builds its own at its next forward);
    the last forward's, which its backward needs, go along."""
    import pickle
    rng = np.random.default_rng(1)
    up = Upsample(3, "bilinear")
    x = rng.normal(size=(2, 2, 3, 4))
    y = up(x)
    g = rng.normal(size=y.shape)
    assert up._linear is not None
    for copied in (copy.deepcopy(up), pickle.loads(pickle.dumps(up))):
        assert copied._linear is None and up._linear is not None
        np.testing.assert_array_equal(copied.backward(g), up.backward(g))
        np.testing.assert_array_equal(copied(x), y)
        assert copied._linear is not None
    assert "_linear" not in up.state_dict() and up.astype(np.float32) is up
    np.testing.assert_array_equal(up(x.astype(np.float32)), Upsample(3, "bilinear")(x.astype(np.float32)))
