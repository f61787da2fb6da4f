"""Conv1D: against naive loops, Conv2D on a one-row view, PyTorch's Conv1d; the W layout, dtype,
frozen weights, refused inputs, gradient checks (fixed cases and a hypothesis property), save/load,
and a 1-D CNN in a Sequential with summarize."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.layers.conv import Conv1D, Conv2D
from minidl.layers.pooling import GlobalAvgPool1D, MaxPool1D
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def out_length(L: int, k: int, s: int, p: int, d: int) -> int:
    """PyTorch's Conv1d output length."""
    return (L + 2 * p - d * (k - 1) - 1) // s + 1


def naive_conv1d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, s: int, p: int, d: int,
                 groups: int) -> np.ndarray:
    """One output value at a time: y[n, o, t] = b[o] + sum over c in o's group, j of
    kernel[o, c, j] * x_padded[n, first + c, t*s + j*d]."""
    N, C, L = x.shape
    F, Cg, k = kernel.shape
    xp = np.zeros((N, C, L + 2 * p))
    xp[:, :, p:p + L] = x
    Lo = out_length(L, k, s, p, d)
    y = np.zeros((N, F, Lo))
    for n in range(N):
        for o in range(F):
            first = o // (F // groups) * Cg
            for t in range(Lo):
                window = xp[n, first:first + Cg, t * s:t * s + d * (k - 1) + 1:d]
                y[n, o, t] = np.sum(window * kernel[o]) + (0.0 if bias is None else bias[o])
    return y


def naive_conv1d_grads(g: np.ndarray, x: np.ndarray, kernel: np.ndarray, s: int, p: int, d: int,
                       groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dkernel) by scattering each output's gradient over its window, one output value at a time."""
    N, _, L = x.shape
    F, Cg, k = kernel.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(kernel)
    for n in range(N):
        for o in range(F):
            first = o // (F // groups) * Cg
            for t in range(g.shape[2]):
                taps = slice(t * s, t * s + d * (k - 1) + 1, d)
                dxp[n, first:first + Cg, taps] += g[n, o, t] * kernel[o]
                dk[o] += g[n, o, t] * xp[n, first:first + Cg, taps]
    return dxp[:, :, p:p + L], dk


# (N, C, L), out, kernel, stride, padding, dilation, groups, bias
CONFIGS = [
    ((2, 3, 9), 4, 3, 1, 0, 1, 1, True),          # stride 1
    ((2, 2, 10), 3, 4, 2, 1, 1, 1, True),         # stride 2, overlapping windows, padding
    ((1, 2, 11), 2, 2, 4, 0, 1, 1, False),        # stride > kernel: windows skip positions
    ((2, 4, 12), 6, 3, 1, 2, 2, 2, True),         # dilation + groups + padding, stride 1
    ((2, 4, 13), 8, 2, 3, 0, 2, 4, True),         # depthwise x2; span 3 == stride: windows do not overlap
    ((1, 6, 14), 3, 3, 2, 2, 3, 3, False),        # dilated windows overlapping under stride 2
    ((2, 2, 5), 3, 1, 1, 1, 1, 1, True),          # 1-wide kernel with padding
    ((1, 4, 5), 2, 3, 1, 0, 2, 2, True),          # input exactly the dilated span: one output
]


def make(case: tuple, seed: int = 1, dtype: Any = np.float64) -> Conv1D:
    shape, out, k, s, p, d, groups, bias = case
    return Conv1D(shape[1], out, k, s, p, bias, dilation=d, groups=groups, rng=seed, dtype=dtype)


@pytest.mark.parametrize("case", CONFIGS, ids=str)
def test_forward_and_gradients_match_naive_loops(case: tuple) -> None:
    shape, _, k, s, p, d, groups, bias = case
    rng = np.random.default_rng(sum(shape))
    conv = make(case)
    x = rng.normal(size=shape)
    y = conv(x)
    expected = naive_conv1d(x, conv.kernel, conv.bias_row, s, p, d, groups)
    assert y.shape == expected.shape == (shape[0], *conv.output_shape(shape[2]))
    assert y.shape[2] == out_length(shape[2], k, s, p, d)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    g = rng.normal(size=y.shape)
    dx = conv.backward(g)
    dx_expected, dk_expected = naive_conv1d_grads(g, x, conv.kernel, s, p, d, groups)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-12, atol=1e-13)
    rows = conv.W.grad[1:] if bias else conv.W.grad
    np.testing.assert_allclose(rows.T.reshape(conv.kernel.shape), dk_expected, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(conv.W.grad[0], g.sum(axis=(0, 2)), rtol=1e-12)


@pytest.mark.parametrize("case", CONFIGS, ids=str)
def test_equals_conv2d_on_a_one_row_view_exactly(case: tuple) -> None:
    """The same numbers, bit for bit, as a Conv2D with a 1 x k kernel on (N, C, 1, L): the same W."""
    shape, _, _, s, p, d, groups, _ = case
    rng = np.random.default_rng(7)
    conv = make(case)
    flat = Conv2D.from_kernel(conv.kernel[:, :, None, :], conv.bias_row, (1, s), (0, p), dilation=(1, d),
                              groups=groups)
    np.testing.assert_array_equal(flat.W.data, conv.W.data)  # the same layout, row for row
    x = rng.normal(size=shape)
    y = conv(x)
    np.testing.assert_array_equal(y, flat(x[:, :, None, :])[:, :, 0])
    g = rng.normal(size=y.shape)
    np.testing.assert_array_equal(conv.backward(g), flat.backward(g[:, :, None, :])[:, :, 0])
    np.testing.assert_array_equal(conv.W.grad, flat.W.grad)


def test_w_layout_kernel_view_and_from_kernel() -> None:
    conv = Conv1D(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, rng=0)
    Cg, k = 2, 3
    assert conv.W.shape == (Cg * k + 1, 6)  # (in_channels//groups*k + 1, out_channels)
    assert dict(conv.state_dict()).keys() == {"W", "_layout"}
    kernel = conv.kernel
    assert kernel.shape == (6, 2, 3)  # PyTorch's Conv1d weight: (out, in/groups, k)
    for o in range(6):
        for c in range(Cg):
            for j in range(k):
                assert kernel[o, c, j] == conv.W.data[1 + c * k + j, o]
    np.testing.assert_array_equal(conv.bias_row, conv.W.data[0])
    kernel[4, 1, 2] = 42.0  # the view writes through
    assert conv.W.data[1 + 1 * k + 2, 4] == 42.0
    rebuilt = Conv1D.from_kernel(conv.kernel, conv.bias_row, 2, 1, dilation=2, groups=2)
    assert (rebuilt.in_channels, rebuilt.out_channels, rebuilt.kernel_size, rebuilt.stride, rebuilt.padding,
            rebuilt.dilation, rebuilt.groups) == (4, 6, (3,), (2,), (1,), (2,), 2)
    np.testing.assert_array_equal(rebuilt.W.data, conv.W.data)
    x = np.random.default_rng(0).normal(size=(2, 4, 9))
    np.testing.assert_array_equal(rebuilt(x), conv(x))
    no_bias = Conv1D.from_kernel(np.ones((4, 1, 5), np.float32), groups=4)
    assert not no_bias.bias and no_bias.bias_row is None
    assert no_bias.W.shape == (5, 4) and no_bias.W.dtype == np.float32 and no_bias.in_channels == 4
    # PyTorch keeps Conv1d's sizes as 1-tuples: they are accepted as they are, and kept so
    assert Conv1D(2, 2, (5,), (2,), (1,), dilation=(3,)).kernel_size == (5,)


def test_init_and_exact_w() -> None:
    conv = Conv1D(3, 4, 5, rng=0)
    assert np.abs(conv.W.data).max() <= 1 / np.sqrt(15)  # PyTorch's U(-1/sqrt(fan_in), +), fan_in = C*k
    assert np.abs(Conv1D(4, 6, 3, groups=2, rng=0).W.data).max() <= 1 / np.sqrt(6)  # the grouped fan-in
    np.testing.assert_array_equal(Conv1D(3, 4, 5, init="he", rng=0).W.data[0], 0.0)
    np.testing.assert_array_equal(Conv1D(3, 4, 5, rng=5).W.data, Conv1D(3, 4, 5, rng=5).W.data)
    W = np.arange(16 * 4, dtype=float).reshape(16, 4)
    np.testing.assert_array_equal(Conv1D(3, 4, 5, W=W).W.data, W)
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 4, k=5): expected W of shape (16, 4) (in_channels*k + 1, out_channels), got (15, 4)")):
        Conv1D(3, 4, 5, W=np.zeros((15, 4)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "expected W of shape (6, 6) (in_channels//groups*k, out_channels), got (12, 6)")):
        Conv1D(4, 6, 3, bias=False, groups=2, W=np.zeros((12, 6)))


@pytest.mark.parametrize("stride", [1, 2])
def test_float32_stays_float32(stride: int) -> None:
    rng = np.random.default_rng(1)
    conv = Conv1D(4, 6, 3, stride, 1, dilation=2, groups=2, rng=0, dtype=np.float32)
    x = rng.normal(size=(2, 4, 11)).astype(np.float32)
    y = conv(x)
    assert y.dtype == np.float32
    g = np.ones(y.shape, dtype=np.float32)
    dx = conv.backward(g)
    assert dx.dtype == np.float32 and conv.W.grad.dtype == np.float32
    conv.backward_params(g)
    assert conv.W.grad.dtype == np.float32
    reference = naive_conv1d(x.astype(np.float64), conv.kernel.astype(np.float64), conv.bias_row.astype(np.float64),
                             stride, 1, 2, 2)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(md.DTypeError, match=re.escape("Conv1D(4 -> 6, k=3, dilation=2, groups=2): input dtype "
                                                      "float64 does not match the layer's parameters (float32)")):
        conv(x.astype(np.float64))
    assert Conv1D(2, 2, 3, rng=0).astype(np.float32)(x[:, :2]).dtype == np.float32


@pytest.mark.parametrize("stride, bias", [(1, True), (2, False)])
def test_backward_params_overwrite_accumulate_and_frozen(stride: int, bias: bool) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 4, 10))

    def conv() -> Conv1D:
        return Conv1D(4, 6, 3, stride, 1, bias, dilation=2, groups=2, rng=0)

    frozen = assert_backward_params_contract(conv, x, rng.normal(size=conv()(x).shape))
    report = md.GradientChecker(frozen, inputs=x, seed=0).run()
    assert report.passed and report["W"].status == "frozen" and report["input"].checked == x.size


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CONFIGS, ids=str)
def test_gradient_checker(seed: int, case: tuple) -> None:
    conv = make(case, seed=seed)
    x = np.random.default_rng(seed).normal(size=case[0])
    report = assert_gradients_ok(conv, inputs=x, seed=seed)
    assert [r.name for r in report.results] == ["input", "W"]
    for result in report.results:  # small tensors: every element checked
        assert result.mode == "full" and result.checked == result.size and result.failed == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_output_shape_and_gradients(data: st.DataObject) -> None:
    """For random shapes and options: the output length is PyTorch's formula (and output_shape's), and the
    checker passes; an input shorter than the padded kernel span is refused, naming the sizes."""
    groups = data.draw(st.integers(1, 3), label="groups")
    C = groups * data.draw(st.integers(1, 2), label="C/groups")
    F = groups * data.draw(st.integers(1, 2), label="F/groups")
    k, s, p, d = (data.draw(st.integers(1, 4), label="k"), data.draw(st.integers(1, 3), label="stride"),
                  data.draw(st.integers(0, 2), label="padding"), data.draw(st.integers(1, 3), label="dilation"))
    N, L = data.draw(st.integers(1, 2), label="N"), data.draw(st.integers(1, 12), label="L")
    bias = data.draw(st.booleans(), label="bias")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    conv = Conv1D(C, F, k, s, p, bias, dilation=d, groups=groups, rng=seed)
    x = np.random.default_rng(seed).normal(size=(N, C, L))
    if L + 2 * p < d * (k - 1) + 1:
        event("refused: too short")
        with pytest.raises(md.ShapeError, match=re.escape(f"expected L >= {d * (k - 1) + 1 - 2 * p}, got L={L}")):
            conv(x)
        return
    event("checked")
    Lo = out_length(L, k, s, p, d)
    assert Lo >= 1 and conv.output_shape(L) == (F, Lo)
    assert conv(x).shape == (N, F, Lo)
    # (an output that reads only padding, k=1 stride=2 padding=1 on L=1, is flat in x and W: nothing to test)
    reads_x = any(0 <= o * s - p + j * d < L for o in range(Lo) for j in range(k))
    assert_gradients_ok(conv, inputs=x, seed=seed, allow_unchecked=not reads_x)


def test_input_shape_hint_summary_and_a_1d_cnn_in_a_sequential() -> None:
    conv = Conv1D(4, 6, 3, stride=2, dilation=3, groups=2, rng=0)
    assert conv.input_shape_hint() == (4, 11)  # the span 3*(3 - 1) + 1 = 7, plus two strides: 3 outputs
    assert conv(np.zeros((1, 4, 11))).shape == (1, 6, 3)
    assert_gradients_ok(conv)  # inputs drawn from the hint
    model = md.Sequential(Conv1D(2, 4, 5, padding=2, rng=0), md.ReLU(), MaxPool1D(2),
                          Conv1D(4, 6, 3, dilation=2, groups=2, rng=1), md.Tanh(), GlobalAvgPool1D(),
                          md.Dense(6, 3, rng=2))
    assert model.input_shape_hint() == (2, 7)
    summary = md.summarize(model, (2, 16))
    text = str(summary)
    for name, shape in (("Conv1D", "(None, 4, 16)"), ("MaxPool1D", "(None, 4, 8)"), ("Conv1D", "(None, 6, 4)"),
                        ("GlobalAvgPool1D", "(None, 6)"), ("Dense", "(None, 3)")):
        assert re.search(rf"\({name}\)\s+{re.escape(shape)}", text), text
    assert summary.trainable == (2 * 5 + 1) * 4 + (2 * 3 + 1) * 6 + 7 * 3
    assert "(0): Conv1D(2, 4, kernel_size=5, padding=2)" in repr(model)
    assert "(2): MaxPool1D(kernel_size=2)" in repr(model)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3, 2, 16)), np.array([0, 2, 1])
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=y)
    # backward_params of the model (the first Conv1D skips its dx) gives the full backward's gradients
    loss = md.CrossEntropyLoss()
    loss(model(x), y)
    model.zero_grad()
    model.backward(loss.backward())
    full = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    model.backward_params(loss.backward())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-13, atol=1e-15)


def test_errors_name_the_1d_layer_and_1d_shapes() -> None:
    conv = Conv1D(3, 8, 5)
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 8, k=5): expected input of shape (N, 3, L), got shape (2, 1, 9)")):
        conv(np.zeros((2, 1, 9)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 8, k=5): expected a 3-D input of shape (N, 3, L), got shape (2, 3, 1, 9)")):
        conv(np.zeros((2, 3, 1, 9)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 8, k=5): input of shape (1, 3, 4) is smaller than the kernel 5 (with padding 0): "
            "expected L >= 5, got L=4")):
        conv(np.zeros((1, 3, 4)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 8, k=5): input of shape (2, 3, 0) has no positions (length 0)")):
        Conv1D(3, 8, 5, padding=2)(np.zeros((2, 3, 0)))  # padding alone would fit the kernel
    dilated = Conv1D(4, 6, 3, padding=1, dilation=3, groups=2)
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(4 -> 6, k=3, dilation=3, groups=2): input of shape (1, 4, 4) is smaller than the kernel 3 "
            "dilated by 3 (spanning 7) (with padding 1): expected L >= 5, got L=4")):
        dilated(np.zeros((1, 4, 4)))
    assert dilated(np.zeros((1, 4, 5))).shape == (1, 6, 1)  # the smallest input that fits
    with pytest.raises(md.BackwardBeforeForwardError):
        Conv1D(3, 8, 5).backward(np.zeros((1, 8, 1)))
    conv(np.zeros((2, 3, 9)))
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D(3 -> 8, k=5).backward: expected grad_output of shape (2, 8, 5), got (2, 8, 1, 5)")):
        conv.backward(np.zeros((2, 8, 1, 5)))
    with pytest.raises(md.DTypeError, match=re.escape(
            "Conv1D(3 -> 8, k=5).backward: expected grad_output of dtype float64, got float32")):
        conv.backward_params(np.zeros((2, 8, 5), dtype=np.float32))


def test_refused_arguments() -> None:
    for bad in (0, (5, 5), 1.5, True, "3", [2, 2]):
        with pytest.raises(ValueError, match=re.escape(f"Conv1D: kernel_size must be an int >= 1, got {bad!r}")):
            Conv1D(2, 2, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Conv1D: stride must be an int >= 1, got 0"):
        Conv1D(2, 2, 3, stride=0)
    with pytest.raises(ValueError, match=r"Conv1D: padding must be an int >= 0, got -1"):
        Conv1D(2, 2, 3, padding=-1)
    with pytest.raises(ValueError, match=r"Conv1D: dilation must be an int >= 1, got \(1, 1\)"):
        Conv1D(2, 2, 3, dilation=(1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Conv1D: groups must divide both in_channels and out_channels, "
                                         r"got groups=2 with in_channels=3, out_channels=4"):
        Conv1D(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv1D: in_channels must be a positive int, got 0"):
        Conv1D(0, 4, 3)
    with pytest.raises(TypeError, match=r"Conv1D: bias must be True or False, got 2"):
        Conv1D(3, 4, 3, 1, 0, 2)  # type: ignore[arg-type]  # PyTorch's 6th positional is dilation
    with pytest.raises(md.ShapeError, match=re.escape(
            "Conv1D.from_kernel: expected a kernel of shape (out, in/groups, k), got (2, 3, 1, 3)")):
        Conv1D.from_kernel(np.zeros((2, 3, 1, 3)))
    with pytest.raises(md.DTypeError, match=r"Conv1D\.from_kernel: the kernel must hold real numbers"):
        Conv1D.from_kernel(np.ones((2, 1, 3), complex))
    with pytest.raises(md.ShapeError, match=re.escape("Conv1D.from_kernel: expected a bias of shape (2,), got (3,)")):
        Conv1D.from_kernel(np.ones((2, 1, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"Conv1D.from_kernel: groups must be a positive int, got 0"):
        Conv1D.from_kernel(np.ones((2, 1, 3)), groups=0)


@pytest.mark.parametrize("bad", [np.zeros((1, 3, 2)), np.zeros((1, 2, 9)), np.zeros((1, 3, 9), np.float32),
                                 np.full((1, 3, 9), np.nan), np.zeros((1, 3, 0)), np.zeros((3, 9))],
                         ids=["too short", "channels", "dtype", "nan", "empty", "rank"])
def test_a_refused_input_leaves_the_layer_as_it_was(bad: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    conv, reference = Conv1D(3, 4, 5, stride=2, padding=1, rng=0), Conv1D(3, 4, 5, stride=2, padding=1, rng=0)
    x = rng.normal(size=(2, 3, 9))
    y = conv(x)
    reference(x)
    W = conv.W.data.copy()
    with pytest.raises(md.MinidlError, match=r"^Conv1D\(3 -> 4, k=5\)"):
        conv(bad)
    np.testing.assert_array_equal(conv.W.data, W)
    g = rng.normal(size=y.shape)
    np.testing.assert_array_equal(conv.backward(g), reference.backward(g))  # the last good pass's cache
    np.testing.assert_array_equal(conv.W.grad, reference.W.grad)


def test_repr_and_attributes() -> None:
    assert repr(Conv1D(3, 8, 5)) == "Conv1D(3, 8, kernel_size=5)"
    assert repr(Conv1D(4, 6, 3, 2, 1, False, dilation=2, groups=2)) == \
        "Conv1D(4, 6, kernel_size=3, stride=2, padding=1, dilation=2, groups=2, bias=False)"
    conv = Conv1D(4, 6, 3, 2, 1, dilation=2, groups=2)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3,), (2,), (1,), (2,))
    assert conv._who == "Conv1D(4 -> 6, k=3, dilation=2, groups=2)"


def test_input_and_grad_are_not_modified_and_layouts_agree() -> None:
    rng = np.random.default_rng(2)
    conv = Conv1D(2, 3, 3, padding=1, rng=0)
    x, g = rng.normal(size=(2, 2, 6)), rng.normal(size=(2, 3, 6))
    x0, g0 = x.copy(), g.copy()
    y = conv(x)
    dx = conv.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    # a channel-major input (as a Conv1D outputs) and non-contiguous gradients give the same numbers
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    np.testing.assert_array_equal(conv(xt), y)
    np.testing.assert_array_equal(conv.backward(np.asfortranarray(g)), dx)
    assert conv(np.zeros((0, 2, 6))).shape == (0, 3, 6)  # an empty batch


def test_state_dict_round_trips_through_save_and_load(tmp_path: pathlib.Path) -> None:
    conv = Conv1D(4, 6, 3, padding=1, dilation=2, groups=2, rng=0)
    path = tmp_path / "conv1d.ckpt"
    md.save({"model": conv.state_dict()}, path)
    state = md.load(path)["model"]
    assert list(state) == ["W", "_layout"] and state["W"].shape == (7, 6)
    other = Conv1D(4, 6, 3, padding=1, dilation=2, groups=2, rng=1)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.W.data, conv.W.data)
    x = np.random.default_rng(0).normal(size=(2, 4, 8))
    np.testing.assert_array_equal(other(x), conv(x))
    with pytest.raises(md.StateDictError, match=re.escape("'W': expected shape (13, 6), got (7, 6)")):
        Conv1D(4, 6, 3, rng=0).load_state_dict(state)  # ungrouped: other W rows
    model = md.Sequential(Conv1D(2, 3, 3, rng=0), md.ReLU(), GlobalAvgPool1D())
    md.save(model.state_dict(), tmp_path / "model.ckpt")
    copy = md.Sequential(Conv1D(2, 3, 3, rng=9), md.ReLU(), GlobalAvgPool1D())
    copy.load_state_dict(md.load(tmp_path / "model.ckpt"))
    np.testing.assert_array_equal(copy(x[:, :2]), model(x[:, :2]))


# ---------------------------------------------------------------------------------- PyTorch
def random_configs(count: int, seed: int) -> list[tuple]:
    """A random grid: stride, padding, dilation, groups, bias and shapes, each valid for Conv1d."""
    rng = np.random.default_rng(seed)
    configs: list[tuple] = []
    while len(configs) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        C, F = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        k, s, p, d = (int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 4)),
                      int(rng.integers(1, 4)))
        L = int(rng.integers(1, 20))
        if L + 2 * p >= d * (k - 1) + 1:
            configs.append(((int(rng.integers(1, 4)), C, L), F, k, s, p, d, groups, bool(rng.integers(2))))
    return configs


def test_against_pytorch_on_a_random_grid() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for case in CONFIGS + random_configs(60, seed=11):
        shape, out, k, s, p, d, groups, bias = case
        theirs = torch.nn.Conv1d(shape[1], out, k, s, p, d, groups, bias=bias, dtype=torch.float64)
        # torch's sizes are 1-tuples: taken as they are
        ours = Conv1D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy() if bias else None,
                                  theirs.stride, theirs.padding, dilation=theirs.dilation, groups=theirs.groups)
        x = rng.normal(size=shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        y = ours(x)
        assert y.shape == tuple(yt.shape), case
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=str(case))
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=str(case))
        rows = ours.W.grad[1:] if bias else ours.W.grad
        np.testing.assert_allclose(rows.T.reshape(theirs.weight.shape), theirs.weight.grad.numpy(), rtol=1e-12,
                                   atol=1e-12, err_msg=str(case))
        if bias:
            np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_an_empty_batch_goes_back_through_grouped_convolutions() -> None:
    """With groups > 1 the per-group reshapes used -1, which an empty batch (M = 0 columns) cannot infer;
    PyTorch takes N = 0 (found by a review, in Conv2D since groups were added)."""
    for layer, x in ((Conv1D(4, 6, 3, groups=2, rng=0), np.zeros((0, 4, 5))),
                     (md.Conv2D(4, 6, 3, groups=2, rng=0), np.zeros((0, 4, 5, 5)))):
        y = layer(x)
        assert y.shape[0] == 0
        dx = layer.backward(np.zeros(y.shape))
        assert dx.shape == x.shape
        np.testing.assert_array_equal(layer.W.grad, 0)
        layer.backward_params(np.zeros(y.shape))


def test_from_kernel_builds_a_subclass_with_its_own_signature() -> None:
    """from_kernel passed init= and rng= that a subclass's explicit __init__ need not take."""

    class MyConv(md.Conv2D):
        def __init__(self, cin: int, cout: int, k: Any, stride: Any = 1, padding: Any = 0, bias: bool = True, *,
                     dilation: Any = 1, groups: int = 1, W: Any = None, dtype: Any = np.float64) -> None:
            super().__init__(cin, cout, k, stride, padding, bias, dilation=dilation, groups=groups, W=W, dtype=dtype)

    layer = MyConv.from_kernel(np.ones((2, 1, 3, 3)))
    assert type(layer) is MyConv and repr(layer) == "MyConv(1, 2, kernel_size=(3, 3), bias=False)"
    np.testing.assert_array_equal(layer.kernel, 1)


# ---------------------------------------------------------------------------------------------- named padding
@pytest.mark.parametrize(("kind", "k", "dilation", "spatial"), [
    ("1d", 3, 1, (9,)), ("1d", 5, 2, (7,)), ("1d", 4, 2, (6,)), ("2d", 3, 1, (5, 6)), ("2d", (3, 5), (2, 1), (7, 4)),
    ("2d", (1, 4), (1, 2), (3, 8)),
])
def test_padding_same_keeps_the_size_and_equals_the_padded_layer(kind: str, k: Any, dilation: Any,
                                                                  spatial: tuple[int, ...]) -> None:
    make = Conv1D if kind == "1d" else Conv2D
    rank = len(spatial)
    same = make(3, 4, k, padding="same", dilation=dilation, rng=0)
    ks = (k,) * rank if isinstance(k, int) else k
    ds = (dilation,) * rank if isinstance(dilation, int) else dilation
    explicit = make(3, 4, k, padding=tuple(d * (a - 1) // 2 for a, d in zip(ks, ds, strict=True)),
                    dilation=dilation, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 3, *spatial))
    y = same(x)
    assert y.shape == (2, 4, *spatial)
    np.testing.assert_array_equal(y, explicit(x))
    assert repr(same) == repr(explicit)  # kept as the padding it stands for
    assert_gradients_ok(same, inputs=x, seed=1)
    valid = make(3, 4, k, padding="valid", dilation=dilation, rng=0)
    assert valid.padding == (0,) * rank


def test_padding_same_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for module, make, shape in ((torch.nn.Conv1d(3, 4, 5, padding="same", dilation=2), Conv1D, (2, 3, 11)),
                                (torch.nn.Conv2d(3, 4, (3, 5), padding="same"), Conv2D, (2, 3, 6, 7))):
        module = module.double()
        ours = make.from_kernel(module.weight.detach().numpy(), module.bias.detach().numpy(), module.stride,
                                module.padding, dilation=module.dilation)  # torch's padding is the string 'same'
        x = rng.normal(size=shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("make", "kwargs", "match"), [
    (Conv2D, {"kernel_size": 4, "padding": "same"}, r"Conv2D: padding='same' with kernel_size \(4, 4\) and dilation "
                                                     r"\(1, 1\) needs \(3, 3\) padding in all, odd on some axis"),
    (Conv1D, {"kernel_size": 2, "padding": "same"}, r"Conv1D: padding='same' with kernel_size 2 and dilation 1 needs "
                                                     r"1 padding in all"),
    (Conv2D, {"kernel_size": 3, "padding": "same", "stride": 2}, r"padding='same' needs stride 1 \(as PyTorch\), "
                                                                  r"got stride \(2, 2\)"),
    (Conv2D, {"kernel_size": 3, "padding": "same", "stride": (1, 2)}, r"padding='same' needs stride 1 \(as "
                                                                       r"PyTorch\), got stride \(1, 2\)"),
    (Conv2D, {"kernel_size": (3, 2), "padding": "same"}, r"Conv2D: padding='same' with kernel_size \(3, 2\) and "
                                                          r"dilation \(1, 1\) needs \(2, 1\) padding in all, odd on "
                                                          r"some axis"),
    (Conv1D, {"kernel_size": 3, "padding": "full"}, r"Conv1D: padding must be an int >= 0, one per spatial axis, "
                                                     r"'same' or 'valid', got 'full'"),
    (md.ConvTranspose2D, {"kernel_size": 3, "padding": "same"}, r"ConvTranspose2D: padding must be an int >= 0 or a "
                                                                r"pair of them, got 'same'"),
])
def test_named_padding_refusals(make: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(3, 4, **kwargs)
