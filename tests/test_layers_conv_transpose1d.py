"""ConvTranspose1D: ConvTranspose2D on a one-row image (values, gradients, weights), the adjoint of Conv1D,
the gradient checker, PyTorch's layout and values when it is installed, and refusals naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

# (N, C, L), out, kernel, stride, padding, output_padding, dilation, groups, bias
CONFIGS: list[tuple[Any, ...]] = [
    ((2, 3, 5), 4, 3, 1, 0, 0, 1, 1, True),
    ((2, 2, 4), 3, 4, 2, 1, 1, 1, 1, True),      # the usual doubling layer, output_padding
    ((2, 2, 3), 2, 2, 2, 0, 0, 1, 1, False),     # taps never overlap
    ((1, 4, 6), 6, 3, 3, 1, 2, 2, 2, True),      # gaps, dilation, groups
    ((2, 4, 3), 4, 3, 1, 1, 1, 2, 4, False),     # depthwise; output_padding >= stride (< dilation)
    ((2, 2, 1), 3, 3, 1, 0, 0, 1, 1, True),      # one input position: the kernel itself
]
IDS = [f"c{i}" for i in range(len(CONFIGS))]


def make(config: tuple[Any, ...], seed: int = 1, dtype: Any = np.float64) -> md.ConvTranspose1D:
    shape, out, k, s, p, op, d, groups, bias = config
    return md.ConvTranspose1D(shape[1], out, k, s, p, op, bias, dilation=d, groups=groups, rng=seed, dtype=dtype)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_is_conv_transpose_2d_on_a_one_row_image(config: tuple[Any, ...]) -> None:
    layer = make(config)
    shape, _, _, s, p, op, d, groups, _ = config
    image = md.ConvTranspose2D.from_kernel(layer.kernel[:, :, None, :], layer.bias_row, (1, s), (0, p), (0, op),
                                           dilation=(1, d), groups=groups)
    np.testing.assert_array_equal(image.W.data, layer.W.data)  # the same W layout
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    y = layer(x)
    np.testing.assert_array_equal(y, image(x[:, :, None, :])[:, :, 0, :])
    assert y.shape == (shape[0], *layer.output_shape(shape[2]))
    g = rng.normal(size=y.shape)
    np.testing.assert_array_equal(layer.backward(g), image.backward(g[:, :, None, :])[:, :, 0, :])
    np.testing.assert_array_equal(layer.W.grad, image.W.grad)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_adjoint_of_conv1d(config: tuple[Any, ...]) -> None:
    """<ConvTranspose1D(x), y> == <x, Conv1D(y)> for the same kernel without bias."""
    shape, out, k, s, p, op, d, groups, _ = config
    layer = md.ConvTranspose1D(shape[1], out, k, s, p, op, False, dilation=d, groups=groups, rng=2)
    conv = md.Conv1D.from_kernel(layer.kernel, None, s, p, dilation=d, groups=groups)
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape)
    y = layer(x)
    other = rng.normal(size=y.shape)
    back = conv(other)[:, :, :shape[2]]
    assert np.vdot(y, other) == pytest.approx(np.vdot(x, back), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(layer.backward(other), back, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_gradient_checker(seed: int, config: tuple[Any, ...]) -> None:
    layer = make(config, seed=seed)
    report = assert_gradients_ok(layer, inputs=np.random.default_rng(seed).normal(size=config[0]), seed=seed)
    assert [r.name for r in report.results] == ["input", "W"]
    assert all(r.failed == 0 and r.checked == r.size for r in report.results)


def test_a_sequence_decoder_passes_the_checker_and_keeps_float32() -> None:
    model = md.Sequential(md.Conv1D(2, 4, 3, stride=2, padding=1, rng=0), md.ReLU(),
                          md.ConvTranspose1D(4, 2, 4, stride=2, padding=1, rng=1))
    x = np.random.default_rng(0).normal(size=(3, 2, 8))
    assert model(x).shape == x.shape
    assert_gradients_ok(model, inputs=x, seed=0)
    assert_gradients_ok(md.ConvTranspose1D(2, 3, 3, rng=0), seed=1)  # inputs drawn from the shape hint
    small = md.ConvTranspose1D(2, 3, 3, stride=2, rng=0, dtype=np.float32)
    y = small(x.astype(np.float32))
    assert y.dtype == np.float32 and small.backward(np.ones_like(y)).dtype == np.float32


def test_repr_kernel_and_refusals() -> None:
    layer = md.ConvTranspose1D(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=0)
    assert repr(layer) == ("ConvTranspose1D(4, 6, kernel_size=3, stride=2, padding=1, output_padding=1, "
                           "groups=2)")
    assert layer.W.shape == (2 * 3 + 1, 6) and layer.kernel.shape == (4, 3, 3)
    assert not layer.kernel.flags.writeable  # (groups: a copy)
    assert md.ConvTranspose1D(2, 3, 3).kernel.flags.writeable  # a view of W
    with pytest.raises(ValueError, match=r"ConvTranspose1D: output_padding must be smaller than the stride or the "
                                         r"dilation \(as PyTorch\), got output_padding=2 with stride=2, dilation=1 "
                                         r"\(along the length\)"):
        md.ConvTranspose1D(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(md.ShapeError, match=r"ConvTranspose1D\(4 -> 6, k=3, stride=2, groups=2\): expected a 3-D "
                                            r"input of shape \(N, 4, L\), got shape \(2, 4, 3, 3\)"):
        layer(np.zeros((2, 4, 3, 3)))
    with pytest.raises(md.ShapeError, match=r"input of shape \(1, 2, 1\) gives an empty output \(-1\) with padding 2: "
                                            r"expected L >= 3, got L=1"):
        md.ConvTranspose1D(2, 2, 3, padding=2)(np.zeros((1, 2, 1)))
    with pytest.raises(md.ShapeError, match="has no positions"):
        layer(np.zeros((1, 4, 0)))
    layer(np.zeros((1, 4, 3)))
    with pytest.raises(md.ShapeError, match=r"ConvTranspose1D\(4 -> 6, k=3, stride=2, groups=2\)\.backward: "
                                            r"expected grad_output of shape \(1, 6, 6\)"):
        layer.backward(np.zeros((1, 6, 7)))
    with pytest.raises(md.ShapeError, match=r"ConvTranspose1D.from_kernel: expected a kernel of shape "
                                            r"\(in, out/groups, k\)"):
        md.ConvTranspose1D.from_kernel(np.zeros((2, 2, 3, 3)))
    for make, shape in ((md.ConvTranspose1D, (0, 2, 3)), (md.ConvTranspose1D, (2, 0, 3)),
                        (md.ConvTranspose2D, (0, 2, 3, 3))):
        with pytest.raises(md.ShapeError, match=rf"{make.__name__}.from_kernel: the kernel of shape "
                                                rf"\({shape[0]}, {shape[1]}, 3.*\) is empty"):
            make.from_kernel(np.zeros(shape))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_against_pytorch_if_installed(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-5, 1e-5)
    for shape, out, k, s, p, op, d, groups, bias in CONFIGS:
        theirs = torch.nn.ConvTranspose1d(shape[1], out, k, s, p, op, groups, bias, d, dtype=getattr(torch, dtype))
        ours = md.ConvTranspose1D.from_kernel(theirs.weight.detach().numpy(),
                                              theirs.bias.detach().numpy() if bias else None, s, p, op, dilation=d,
                                              groups=groups)
        np.testing.assert_array_equal(ours.kernel, theirs.weight.detach().numpy())
        x = rng.normal(size=shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        y = ours(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=rtol, atol=atol)
        g = rng.normal(size=y.shape).astype(dtype)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=rtol, atol=atol)
        twin = md.ConvTranspose1D.from_kernel(ours.kernel, None, s, p, op, dilation=d, groups=groups)
        twin.W.data = (ours.W.grad[1:] if bias else ours.W.grad).copy()
        np.testing.assert_allclose(twin.kernel, theirs.weight.grad.numpy(), rtol=rtol, atol=atol * 10)
        if bias:
            np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=rtol, atol=atol * 10)
