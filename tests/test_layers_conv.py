"""Conv2D: against a naive loop convolution, the documented W layout, dtype, errors, gradient checks."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def naive_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
               padding: tuple[int, int], dilation: tuple[int, int] = (1, 1), groups: int = 1) -> np.ndarray:
    """The textbook definition, one output value at a time (cross-correlation, as PyTorch): output
    channel o of group g = o // (F/groups) reads input channels g*C/groups .. (g+1)*C/groups - 1,
    kernel taps ``dilation`` pixels apart."""
    N, C, H, W = x.shape
    F, Cg, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for o in range(F):
            first = o // (F // groups) * Cg
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, first:first + Cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                               j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    y[n, o, i, j] = np.sum(patch * kernel[o]) + (0.0 if bias is None else bias[o])
    return y


def naive_conv_input_grad(g: np.ndarray, kernel: np.ndarray, x_shape: tuple[int, ...],
                          stride: tuple[int, int], padding: tuple[int, int],
                          dilation: tuple[int, int] = (1, 1), groups: int = 1) -> np.ndarray:
    """dx by scattering each output's gradient over its patch, one output value at a time."""
    N, C, H, W = x_shape
    F, Cg, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for n in range(N):
        for o in range(F):
            first = o // (F // groups) * Cg
            for i in range(g.shape[2]):
                for j in range(g.shape[3]):
                    dxp[n, first:first + Cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                        j * sw:j * sw + dw * (kw - 1) + 1:dw] += g[n, o, i, j] * kernel[o]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def naive_conv_kernel_grad(g: np.ndarray, x: np.ndarray, kernel_shape: tuple[int, ...], stride: tuple[int, int],
                           padding: tuple[int, int], dilation: tuple[int, int], groups: int) -> np.ndarray:
    """dCost/dkernel, (F, C/groups, kh, kw): each output's gradient times its patch, one output value at a time."""
    N = x.shape[0]
    F, Cg, kh, kw = kernel_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dk = np.zeros(kernel_shape)
    for n in range(N):
        for o in range(F):
            first = o // (F // groups) * Cg
            for i in range(g.shape[2]):
                for j in range(g.shape[3]):
                    dk[o] += g[n, o, i, j] * xp[n, first:first + Cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                                j * sw:j * sw + dw * (kw - 1) + 1:dw]
    return dk


# (N, C, H, W), out, kernel, stride, padding, bias
CONFIGS = [
    ((2, 3, 6, 5), 4, 3, 1, 0, True),
    ((2, 2, 7, 6), 3, (2, 3), 2, 1, True),
    ((1, 2, 6, 6), 2, 2, 4, 0, False),       # stride > kernel: windows skip pixels
    ((2, 1, 6, 7), 2, 2, 2, 0, True),        # stride == kernel: non-overlapping windows
    ((2, 2, 5, 5), 3, 1, 1, 1, True),        # 1x1 kernel with padding
    ((1, 2, 8, 8), 2, 3, (2, 3), (1, 2), True),
    ((2, 3, 5, 6), 3, (2, 3), 1, (2, 1), False),
    ((1, 1, 3, 3), 1, 3, 1, 0, True),        # a single output pixel
]


@pytest.mark.parametrize("shape, out, k, s, p, bias", CONFIGS)
def test_forward_and_backward_match_naive_loops(shape: tuple[int, ...], out: int, k: object, s: object,
                                                p: object, bias: bool) -> None:
    rng = np.random.default_rng(sum(shape))
    conv = md.Conv2D(shape[1], out, k, s, p, bias, rng=1)  # type: ignore[arg-type]
    x = rng.normal(size=shape)
    y = conv(x)
    expected = naive_conv(x, conv.kernel, conv.bias_row, conv.stride, conv.padding)
    assert y.shape == expected.shape == (shape[0], *conv.output_shape(shape[2], shape[3]))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    g = rng.normal(size=y.shape)
    dx = conv.backward(g)
    np.testing.assert_allclose(dx, naive_conv_input_grad(g, conv.kernel, shape, conv.stride, conv.padding),
                               rtol=1e-12, atol=1e-13)


def test_weight_gradient_matches_the_patch_formula() -> None:
    """dW[1 + (c*kh + i)*kw + j, o] = sum over n, r, q of g[n, o, r, q] * x_padded[n, c, r*s + i, q*s + j]."""
    rng = np.random.default_rng(0)
    conv = md.Conv2D(2, 3, (2, 3), stride=2, padding=1, rng=0)
    x = rng.normal(size=(2, 2, 5, 6))
    g = rng.normal(size=conv(x).shape)
    conv.backward(g)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dW = np.zeros_like(conv.W.data)
    dW[0] = g.sum(axis=(0, 2, 3))
    Ho, Wo = g.shape[2:]
    for c in range(2):
        for i in range(2):
            for j in range(3):
                patch = xp[:, c, i:i + 2 * (Ho - 1) + 1:2, j:j + 2 * (Wo - 1) + 1:2]  # (N, Ho, Wo)
                dW[1 + (c * 2 + i) * 3 + j] = np.einsum("nrq,norq->o", patch, g)
    np.testing.assert_allclose(conv.W.grad, dW, rtol=1e-12, atol=1e-13)
    conv.backward(g)  # gradients accumulate
    np.testing.assert_allclose(conv.W.grad, 2 * dW, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("k, f, M", [(10, 16, 46592), (9, 16, 8192), (3, 5, 10_000), (16, 16, 9000),
                                     (17, 16, 9000), (10, 16, 8191), (2, 3, 7)])
def test_summed_product_is_the_product_in_any_block_split(k: int, f: int, M: int) -> None:
    from minidl.layers.conv import _summed_product
    rng = np.random.default_rng(M)
    a, b = rng.normal(size=(k, M)), rng.normal(size=(f, M))
    expected = a @ b.T
    np.testing.assert_allclose(_summed_product(a, b), expected, rtol=1e-12, atol=1e-12)
    out = np.full((k, f), np.nan)
    assert _summed_product(a, b, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    assert _summed_product(a32, b32).dtype == np.float32
    a16, b16 = a.astype(np.float16), b.astype(np.float16)  # one product: blocks would be summed in float16
    np.testing.assert_array_equal(_summed_product(a16, b16), a16 @ b16.T)


@pytest.mark.parametrize("bias", [True, False])
def test_weight_gradient_over_many_positions_matches_the_patch_formula(bias: bool) -> None:
    # 2 x 68 x 70 = 9520 positions for 3x3 kernels on one channel: the gradient is summed block by block
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 1, 70, 70))
    conv = md.Conv2D(1, 4, 3, bias=bias, rng=0)
    g = rng.normal(size=conv(x).shape)
    conv.backward_params(g)
    kernel = np.stack([np.einsum("nrq,norq->o", x[:, 0, i:i + 68, j:j + 68], g) for i in range(3) for j in range(3)])
    expected = np.vstack([g.sum(axis=(0, 2, 3)), kernel]) if bias else kernel
    np.testing.assert_allclose(conv.W.grad, expected, rtol=1e-11, atol=1e-11)
    conv.backward_params(g)  # accumulates
    np.testing.assert_allclose(conv.W.grad, 2 * expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("stride, bias", [(1, True), (2, False)])
def test_backward_params_gives_the_same_weight_gradient(stride: int, bias: bool) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 2, 6, 6))
    a, b = md.Conv2D(2, 3, 3, stride, 1, bias, rng=0), md.Conv2D(2, 3, 3, stride, 1, bias, rng=0)
    g = rng.normal(size=a(x).shape)
    b(x)
    a.backward(g)
    assert b.backward_params(g) is None
    np.testing.assert_allclose(b.W.grad, a.W.grad, rtol=1e-14)
    b.backward_params(g)  # accumulates
    np.testing.assert_allclose(b.W.grad, 2 * a.W.grad, rtol=1e-14)
    # through a Sequential: the parameter gradients equal those of the full backward
    model = md.Sequential(md.Conv2D(2, 3, 3, rng=1), md.ReLU(), md.MaxPool2D(2), md.Flatten(),
                          md.Dense(12, 2, rng=2))
    loss = md.CrossEntropyLoss()
    loss(model(x), np.array([0, 1]))
    model.backward(loss.backward())
    full = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    model.backward_params(loss.backward())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-14)


def test_w_layout_kernel_view_and_from_kernel() -> None:
    conv = md.Conv2D(2, 3, (2, 3), rng=0)
    C, kh, kw = 2, 2, 3
    assert conv.W.shape == (C * kh * kw + 1, 3)
    kernel = conv.kernel
    assert kernel.shape == (3, 2, 2, 3)
    for o in range(3):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    assert kernel[o, c, i, j] == conv.W.data[1 + (c * kh + i) * kw + j, o]
    np.testing.assert_array_equal(conv.bias_row, conv.W.data[0])
    kernel[1, 0, 1, 2] = 42.0  # the view writes through
    assert conv.W.data[1 + (0 * kh + 1) * kw + 2, 1] == 42.0
    rebuilt = md.Conv2D.from_kernel(conv.kernel, conv.bias_row, stride=1, padding=0)
    np.testing.assert_array_equal(rebuilt.W.data, conv.W.data)
    no_bias = md.Conv2D.from_kernel(conv.kernel.astype(np.float32))
    assert not no_bias.bias and no_bias.W.shape == (12, 3) and no_bias.W.dtype == np.float32
    assert no_bias.bias_row is None


def test_init_and_exact_w() -> None:
    conv = md.Conv2D(3, 4, 3, rng=0)
    bound = 1 / np.sqrt(27)
    assert np.all(np.abs(conv.W.data) <= bound)  # PyTorch's default U(-1/sqrt(fan_in), +)
    he = md.Conv2D(3, 4, 3, init="he", rng=0)
    np.testing.assert_array_equal(he.W.data[0], 0.0)
    np.testing.assert_array_equal(md.Conv2D(3, 4, 3, rng=5).W.data, md.Conv2D(3, 4, 3, rng=5).W.data)
    W = np.arange(28 * 4, dtype=float).reshape(28, 4)
    np.testing.assert_array_equal(md.Conv2D(3, 4, 3, W=W).W.data, W)
    with pytest.raises(md.ShapeError, match=r"expected W of shape \(28, 4\)"):
        md.Conv2D(3, 4, 3, W=np.zeros((27, 4)))


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(1)
    for stride in (1, 2):
        conv = md.Conv2D(2, 3, 3, stride=stride, padding=1, rng=0, dtype=np.float32)
        x = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
        y = conv(x)
        assert y.dtype == np.float32
        dx = conv.backward(np.ones(y.shape, dtype=np.float32))
        assert dx.dtype == np.float32 and conv.W.grad.dtype == np.float32
        reference = naive_conv(x.astype(np.float64), conv.kernel.astype(np.float64),
                               conv.bias_row.astype(np.float64), conv.stride, conv.padding)
        np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)


def test_errors_name_the_layer_and_shapes() -> None:
    conv = md.Conv2D(3, 8, 3)
    with pytest.raises(md.ShapeError, match=r"Conv2D\(3 -> 8, k=3\): expected input of shape \(N, 3, H, W\), "
                                            r"got shape \(2, 1, 5, 5\)"):
        conv(np.zeros((2, 1, 5, 5)))
    with pytest.raises(md.ShapeError, match=r"Conv2D\(3 -> 8, k=3\): expected a 4-D input.*\(3, 5, 5\)"):
        conv(np.zeros((3, 5, 5)))
    with pytest.raises(md.ShapeError, match=r"smaller than the kernel"):
        conv(np.zeros((1, 3, 2, 5)))
    with pytest.raises(md.DTypeError, match=r"Conv2D\(3 -> 8, k=3\): input dtype float32"):
        conv(np.zeros((1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(md.BackwardBeforeForwardError):
        conv.backward(np.zeros((1, 8, 3, 3)))
    conv(np.zeros((1, 3, 5, 5)))
    with pytest.raises(md.ShapeError, match=r"backward: expected grad_output of shape \(1, 8, 3, 3\), got"):
        conv.backward(np.zeros((1, 8, 3, 4)))
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        md.Conv2D(1, 1, 0)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        md.Conv2D(1, 1, 3, padding=-1)
    expected = "Conv2D(1, 2, kernel_size=(3, 3), stride=(2, 2), bias=False)"
    assert repr(md.Conv2D(1, 2, 3, stride=2, bias=False)) == expected


def test_input_and_grad_are_not_modified() -> None:
    rng = np.random.default_rng(2)
    conv = md.Conv2D(2, 2, 3, padding=1, rng=0)
    x = rng.normal(size=(2, 2, 4, 4))
    g = rng.normal(size=(2, 2, 4, 4))
    x0, g0 = x.copy(), g.copy()
    conv(x)
    conv.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape, out, k, s, p, bias", CONFIGS[:6])
def test_gradient_checker(seed: int, shape: tuple[int, ...], out: int, k: object, s: object, p: object,
                          bias: bool) -> None:
    rng = np.random.default_rng(seed)
    conv = md.Conv2D(shape[1], out, k, s, p, bias, rng=seed)  # type: ignore[arg-type]
    assert_gradients_ok(conv, inputs=rng.normal(size=shape), seed=seed)


def test_gradient_checker_with_the_input_shape_hint() -> None:
    conv = md.Conv2D(2, 3, 3, stride=2, rng=0)
    hint = conv.input_shape_hint()
    assert hint == (2, 7, 7)
    conv(np.zeros((1, *hint)))  # valid
    assert_gradients_ok(conv)


def test_small_cnn_with_cross_entropy() -> None:
    rng = np.random.default_rng(3)
    model = md.Sequential(
        md.Conv2D(1, 3, 3, padding=1, rng=0), md.ReLU(), md.MaxPool2D(2),
        md.Conv2D(3, 4, 3, rng=1), md.Tanh(), md.Flatten(), md.Dense(4, 3, rng=2),
    )
    x, y = rng.normal(size=(3, 1, 6, 6)), np.array([0, 2, 1])
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=y)


def assert_same_as_torch_conv(torch, ours: md.Conv2D, theirs, x: np.ndarray, rng: np.random.Generator,
                              bias: bool) -> None:
    """Forward, dx and the kernel and bias gradients of ``ours`` equal those of the torch conv ``theirs``."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-13)
    rows = ours.W.grad[1:] if bias else ours.W.grad
    np.testing.assert_allclose(rows.T.reshape(theirs.weight.shape), theirs.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    if bias:
        np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=1e-11)

def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for (shape, out, k, s, p, bias) in CONFIGS[:4]:
        theirs = torch.nn.Conv2d(shape[1], out, k, s, p, bias=bias, dtype=torch.float64)
        ours = md.Conv2D.from_kernel(theirs.weight.detach().numpy(),
                                     theirs.bias.detach().numpy() if bias else None, s, p)
        assert_same_as_torch_conv(torch, ours, theirs, rng.normal(size=shape), rng, bias)


@pytest.mark.parametrize("kernel", [np.ones((2, 1, 3, 3), complex), np.full((2, 1, 3, 3), "1")])
def test_from_kernel_refuses_what_is_not_real_numbers(kernel) -> None:
    with pytest.raises(md.DTypeError, match="the kernel must hold real numbers"):
        md.Conv2D.from_kernel(kernel)


@pytest.mark.parametrize("layer, shape, axes", [
    (md.Conv2D, (0, 3, 3, 3), "kh, kw"), (md.Conv2D, (2, 0, 3, 3), "kh, kw"), (md.Conv2D, (2, 3, 3, 0), "kh, kw"),
    (md.Conv1D, (0, 2, 3), "k"),
])
def test_from_kernel_refuses_an_empty_kernel(layer: Any, shape: tuple[int, ...], axes: str) -> None:
    with pytest.raises(md.ShapeError, match=rf"{layer.__name__}\.from_kernel: the kernel of shape "
                                            rf"{re.escape(str(shape))} is empty; every axis of \(out, in/groups, "
                                            rf"{axes}\) must be at least 1"):
        layer.from_kernel(np.zeros(shape))


# ---------------------------------------------------------------------------------- dilation and groups
# (N, C, H, W), out, kernel, stride, padding, dilation, groups, bias
DILATED_GROUPED = [
    ((2, 3, 7, 6), 4, 3, 1, 0, 2, 1, True),              # dilation alone, stride 1
    ((2, 4, 7, 8), 6, (2, 3), 2, 1, (2, 1), 2, True),    # stride > 1 with dilation, padding, groups
    ((2, 4, 5, 5), 4, 3, 1, 1, 1, 4, False),             # depthwise, no bias
    ((2, 4, 7, 6), 8, 2, 3, 0, 2, 4, True),              # depthwise x2; span 3 <= stride 3: windows do not overlap
    ((1, 6, 7, 7), 3, 3, 2, 2, 3, 3, False),             # dilated windows overlapping under stride 2
    ((1, 2, 5, 6), 4, (3, 2), (1, 2), (0, 1), (2, 3), 2, True),  # pairs everywhere
    ((2, 4, 6, 6), 2, 2, 2, 0, 2, 2, True),              # stride == dilation: taps of neighbours coincide
    ((1, 4, 5, 5), 2, 3, 1, 0, 2, 2, True),              # input exactly the dilated span: one output pixel
]


def make_conv(shape: tuple[int, ...], out: int, k: Any, s: Any, p: Any, d: Any, groups: int, bias: bool,
              seed: int = 1, dtype: Any = np.float64) -> md.Conv2D:
    return md.Conv2D(shape[1], out, k, s, p, bias, dilation=d, groups=groups, rng=seed, dtype=dtype)


@pytest.mark.parametrize("shape, out, k, s, p, d, groups, bias", DILATED_GROUPED)
def test_dilated_grouped_conv_matches_naive_loops(shape: tuple[int, ...], out: int, k: object, s: object, p: object,
                                                  d: object, groups: int, bias: bool) -> None:
    rng = np.random.default_rng(sum(shape) + groups)
    conv = make_conv(shape, out, k, s, p, d, groups, bias)
    geometry = (conv.stride, conv.padding, conv.dilation, groups)
    x = rng.normal(size=shape)
    y = conv(x)
    expected = naive_conv(x, conv.kernel, conv.bias_row, *geometry[:3], groups=groups)
    assert y.shape == expected.shape == (shape[0], *conv.output_shape(shape[2], shape[3]))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    g = rng.normal(size=y.shape)
    dx = conv.backward(g)
    np.testing.assert_allclose(dx, naive_conv_input_grad(g, conv.kernel, shape, *geometry[:3], groups=groups),
                               rtol=1e-12, atol=1e-13)
    rows = conv.W.grad[1:] if bias else conv.W.grad
    np.testing.assert_allclose(rows.T.reshape(conv.kernel.shape),
                               naive_conv_kernel_grad(g, x, conv.kernel.shape, *geometry), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(conv.W.grad[0], g.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape, out, k, s, p, d, groups, bias", DILATED_GROUPED)
def test_dilated_grouped_gradient_checker(seed: int, shape: tuple[int, ...], out: int, k: object, s: object,
                                          p: object, d: object, groups: int, bias: bool) -> None:
    conv = make_conv(shape, out, k, s, p, d, groups, bias, seed=seed)
    x = np.random.default_rng(seed).normal(size=shape)
    report = md.GradientChecker(conv, inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input", "W"]
    for result in report.results:  # every element checked (inputs of at most 512 values), all close
        assert result.mode == "full" and result.checked == result.size and result.failed == 0
        assert result.max_rel_error < 1e-6, str(report)


def test_grouped_conv_is_the_concatenation_of_per_group_convs() -> None:
    """groups=2 equals two independent convolutions on the two halves of the channels."""
    rng = np.random.default_rng(7)
    conv = md.Conv2D(4, 6, 3, padding=1, dilation=2, groups=2, rng=0)
    x = rng.normal(size=(2, 4, 6, 5))
    halves = [md.Conv2D.from_kernel(conv.kernel[3 * h:3 * h + 3], conv.bias_row[3 * h:3 * h + 3], padding=1,
                                    dilation=2) for h in range(2)]
    expected = np.concatenate([half(x[:, 2 * h:2 * h + 2]) for h, half in enumerate(halves)], axis=1)
    np.testing.assert_allclose(conv(x), expected, rtol=1e-13, atol=1e-14)


def test_depthwise_conv_with_a_one_hot_kernel_shifts_each_channel() -> None:
    """A closed form: depthwise 3x3 kernels dilated by 2 with a single 1 at (2, 0) and bias c give
    y[n, c, r, q] = x[n, c, r + 4, q] + c."""
    kernel = np.zeros((3, 1, 3, 3))
    kernel[:, 0, 2, 0] = 1.0
    conv = md.Conv2D.from_kernel(kernel, np.arange(3.0), dilation=2, groups=3)
    x = np.random.default_rng(8).normal(size=(2, 3, 7, 6))
    y = conv(x)
    assert y.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(y, x[:, :, 4:7, 0:2] + np.arange(3.0)[:, None, None])
    dx = conv.backward(np.ones_like(y))
    expected = np.zeros_like(x)
    expected[:, :, 4:7, 0:2] = 1.0
    np.testing.assert_array_equal(dx, expected)


def test_grouped_w_layout_kernel_view_and_from_kernel_round_trip() -> None:
    conv = md.Conv2D(4, 6, (2, 3), stride=2, padding=1, dilation=(1, 2), groups=2, rng=0)
    Cg, kh, kw = 2, 2, 3
    assert conv.W.shape == (Cg * kh * kw + 1, 6)
    kernel = conv.kernel
    assert kernel.shape == (6, 2, 2, 3)  # PyTorch's (out, in/groups, kh, kw)
    for o in range(6):
        for c in range(Cg):
            for i in range(kh):
                for j in range(kw):
                    assert kernel[o, c, i, j] == conv.W.data[1 + (c * kh + i) * kw + j, o]
    kernel[4, 1, 0, 2] = 42.0  # the view writes through
    assert conv.W.data[1 + (1 * kh + 0) * kw + 2, 4] == 42.0
    rebuilt = md.Conv2D.from_kernel(conv.kernel, conv.bias_row, 2, 1, dilation=(1, 2), groups=2)
    assert (rebuilt.in_channels, rebuilt.out_channels, rebuilt.groups, rebuilt.dilation) == (4, 6, 2, (1, 2))
    np.testing.assert_array_equal(rebuilt.W.data, conv.W.data)
    np.testing.assert_array_equal(rebuilt.kernel, conv.kernel)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 7))
    np.testing.assert_array_equal(rebuilt(x), conv(x))
    depthwise = md.Conv2D.from_kernel(np.ones((4, 1, 3, 3), np.float32), groups=4)
    assert depthwise.in_channels == 4 and depthwise.W.shape == (9, 4) and depthwise.W.dtype == np.float32


def test_grouped_init_uses_the_grouped_fan_in() -> None:
    conv = md.Conv2D(4, 6, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(2 * 9)  # PyTorch: fan_in = in_channels/groups * kh * kw
    assert np.abs(conv.W.data).max() <= bound
    assert np.abs(conv.W.data).max() > 1 / np.sqrt(4 * 9)  # not the ungrouped bound
    np.testing.assert_array_equal(md.Conv2D(4, 6, 3, groups=2, init="he", rng=0).W.data[0], 0.0)
    W = np.arange(19 * 6, dtype=float).reshape(19, 6)
    np.testing.assert_array_equal(md.Conv2D(4, 6, 3, groups=2, W=W).W.data, W)
    with pytest.raises(md.ShapeError, match=r"expected W of shape \(19, 6\) \(in_channels//groups\*kh\*kw \+ 1, "
                                            r"out_channels\), got \(37, 6\)"):
        md.Conv2D(4, 6, 3, groups=2, W=np.zeros((37, 6)))


@pytest.mark.parametrize("stride", [1, 2])
def test_dilated_grouped_float32_stays_float32(stride: int) -> None:
    rng = np.random.default_rng(1)
    conv = md.Conv2D(4, 6, 3, stride, 1, dilation=2, groups=2, rng=0, dtype=np.float32)
    x = rng.normal(size=(2, 4, 7, 7)).astype(np.float32)
    y = conv(x)
    assert y.dtype == np.float32
    dx = conv.backward(np.ones(y.shape, dtype=np.float32))
    assert dx.dtype == np.float32 and conv.W.grad.dtype == np.float32
    conv.backward_params(np.ones(y.shape, dtype=np.float32))
    assert conv.W.grad.dtype == np.float32
    reference = naive_conv(x.astype(np.float64), conv.kernel.astype(np.float64), conv.bias_row.astype(np.float64),
                           conv.stride, conv.padding, conv.dilation, groups=2)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride, bias", [(1, True), (2, False)])
def test_grouped_backward_params_overwrite_accumulate_and_frozen(stride: int, bias: bool) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 4, 7, 7))

    def conv() -> md.Conv2D:
        return md.Conv2D(4, 6, 3, stride, 1, bias, dilation=2, groups=2, rng=0)

    assert_backward_params_contract(conv, x, rng.normal(size=conv()(x).shape))


def test_dilated_grouped_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match=r"Conv2D: groups must divide both in_channels and out_channels, "
                                         r"got groups=2 with in_channels=3, out_channels=4"):
        md.Conv2D(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"got groups=4 with in_channels=4, out_channels=6"):
        md.Conv2D(4, 6, 3, groups=4)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"Conv2D: groups must be a positive int, got"):
            md.Conv2D(4, 4, 3, groups=bad)  # type: ignore[arg-type]
    for bad in (0, (1, 0), 1.5, (2, 2.0), True, "2", (1, 2, 3)):
        with pytest.raises(ValueError, match=r"Conv2D: dilation must be an int >= 1 or a pair of them, got"):
            md.Conv2D(4, 4, 3, dilation=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got groups=4 with in_channels=8, out_channels=6"):
        md.Conv2D.from_kernel(np.zeros((6, 2, 3, 3)), groups=4)
    with pytest.raises(ValueError, match=r"Conv2D.from_kernel: groups must be a positive int, got 0"):
        md.Conv2D.from_kernel(np.zeros((6, 2, 3, 3)), groups=0)
    conv = md.Conv2D(4, 6, 3, padding=1, dilation=(3, 2), groups=2)
    message = (r"Conv2D\(4 -> 6, k=3, dilation=\(3, 2\), groups=2\): input of shape \(1, 4, 4, 9\) is smaller "
               r"than the kernel \(3, 3\) dilated by \(3, 2\) \(spanning \(7, 5\)\) \(with padding \(1, 1\)\): "
               r"expected H >= 5 and W >= 3, got H=4, W=9")
    with pytest.raises(md.ShapeError, match=message):
        conv(np.zeros((1, 4, 4, 9)))
    assert conv(np.zeros((1, 4, 5, 3))).shape == (1, 6, 1, 1)  # the smallest input that fits
    with pytest.raises(md.ShapeError, match=r"Conv2D\(4 -> 6, k=3, dilation=\(3, 2\), groups=2\): expected input "
                                            r"of shape \(N, 4, H, W\)"):
        conv(np.zeros((1, 2, 9, 9)))
    assert repr(conv) == "Conv2D(4, 6, kernel_size=(3, 3), padding=(1, 1), dilation=(3, 2), groups=2)"
    assert repr(md.Conv2D(2, 2, 3, dilation=2, bias=False)) == "Conv2D(2, 2, kernel_size=(3, 3), dilation=(2, 2), " \
                                                                "bias=False)"


def test_dilated_input_shape_hint_is_valid_and_checks() -> None:
    conv = md.Conv2D(4, 6, 3, stride=2, dilation=3, groups=2, rng=0)
    hint = conv.input_shape_hint()
    assert hint == (4, 11, 11)  # the span 3*(3 - 1) + 1 = 7, plus two strides: 3x3 outputs
    assert conv(np.zeros((1, *hint))).shape == (1, 6, 3, 3)
    assert_gradients_ok(conv)
    assert "(None, 6, 3, 3)" in str(md.summarize(md.Sequential(conv)))
    assert md.summarize(md.Sequential(conv)).trainable == 19 * 6


def test_grouped_state_dict_round_trips_through_save_and_load(tmp_path: pathlib.Path) -> None:
    conv = md.Conv2D(4, 6, 3, padding=1, dilation=2, groups=2, rng=0)
    path = tmp_path / "conv.ckpt"
    md.save({"model": conv.state_dict()}, path)
    state = md.load(path)["model"]
    other = md.Conv2D(4, 6, 3, padding=1, dilation=2, groups=2, rng=1)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.W.data, conv.W.data)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 5))
    np.testing.assert_array_equal(other(x), conv(x))
    with pytest.raises(md.StateDictError, match=r"'W': expected shape \(37, 6\), got \(19, 6\)"):
        md.Conv2D(4, 6, 3, rng=0).load_state_dict(state)  # an ungrouped conv has other W rows
    half = md.Conv2D(4, 6, 3, dilation=2, groups=2, rng=0).astype(np.float32)
    assert half.W.dtype == np.float32 and half(x.astype(np.float32)).dtype == np.float32


def test_dilated_grouped_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for shape, out, k, s, p, d, groups, bias in DILATED_GROUPED:
        theirs = torch.nn.Conv2d(shape[1], out, k, s, p, dilation=d, groups=groups, bias=bias, dtype=torch.float64)
        ours = md.Conv2D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy() if bias else None,
                                     s, p, dilation=d, groups=groups)
        assert_same_as_torch_conv(torch, ours, theirs, rng.normal(size=shape), rng, bias)
