"""Conv2D: against a naive loop convolution, the documented W layout, dtype, errors, gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


def naive_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: tuple[int, int],
               padding: tuple[int, int]) -> np.ndarray:
    """The textbook definition, one output value at a time (cross-correlation, as PyTorch)."""
    N, C, H, W = x.shape
    F, _, kh, kw = kernel.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for o in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[n, o, i, j] = np.sum(patch * kernel[o]) + (0.0 if bias is None else bias[o])
    return y


def naive_conv_input_grad(g: np.ndarray, kernel: np.ndarray, x_shape: tuple[int, ...],
                          stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """dx by scattering each output's gradient over its patch, one output value at a time."""
    N, C, H, W = x_shape
    _, _, kh, kw = kernel.shape
    (sh, sw), (ph, pw) = stride, padding
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for n in range(N):
        for o in range(g.shape[1]):
            for i in range(g.shape[2]):
                for j in range(g.shape[3]):
                    dxp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g[n, o, i, j] * kernel[o]
    return dxp[:, :, ph:ph + H, pw:pw + W]


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


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for (shape, out, k, s, p, bias) in CONFIGS[:4]:
        theirs = torch.nn.Conv2d(shape[1], out, k, s, p, bias=bias, dtype=torch.float64)
        ours = md.Conv2D.from_kernel(theirs.weight.detach().numpy(),
                                     theirs.bias.detach().numpy() if bias else None, s, p)
        x = rng.normal(size=shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-13)
        rows = ours.W.grad[1:] if bias else ours.W.grad
        np.testing.assert_allclose(rows.T.reshape(theirs.weight.shape), theirs.weight.grad.numpy(),
                                   rtol=1e-11, atol=1e-12)
        if bias:
            np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=1e-11)


@pytest.mark.parametrize("kernel", [np.ones((2, 1, 3, 3), complex), np.full((2, 1, 3, 3), "1")])
def test_from_kernel_refuses_what_is_not_real_numbers(kernel) -> None:
    with pytest.raises(md.DTypeError, match="the kernel must hold real numbers"):
        md.Conv2D.from_kernel(kernel)
