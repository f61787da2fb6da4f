"""RNN, LSTM, GRU: hand-computed steps, a saturated LSTM, per-step loop references, the gradient
checker, PyTorch, dtypes, frozen weights and refused input."""

from __future__ import annotations

import copy
import math
import pathlib
import re
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import GRU, LSTM, RNN
from minidl.testing import assert_gradients_ok

KINDS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def make(kind: str, D: int, H: int, **options: Any) -> Any:
    """A layer of ``kind``; ``"rnn-relu"`` is the relu RNN."""
    if kind == "rnn-relu":
        return RNN(D, H, nonlinearity="relu", **options)
    return KINDS[kind](D, H, **options)


# ---------------------------------------------------------------------------------- references
def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def augmented(v: np.ndarray, bias: bool) -> np.ndarray:
    """[1, v] row by row (the absorbed bias), or v."""
    return np.hstack([np.ones((v.shape[0], 1)), v]) if bias else v


def loop_reference(kind: str, x: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, bias: bool,
                   g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States (N, T, H) and, for the upstream gradient ``g`` (N, T, H) on every state, dx, dW_x and dW_h:
    one step at a time with the textbook formulas, weight gradients summed step by step."""
    N, T, _ = x.shape
    H = Wh.shape[1] // GATES[kind.split("-")[0]]
    Wxw = Wx[1:] if bias else Wx
    gru_bias = kind == "gru" and bias
    Whw = Wh[1:] if gru_bias else Wh
    h, c = np.zeros((N, H)), np.zeros((N, H))
    steps: list[tuple[np.ndarray, ...]] = []
    outputs = []
    for t in range(T):
        xa = augmented(x[:, t], bias)
        if kind == "gru":
            p, q = xa @ Wx, augmented(h, bias) @ Wh
            r = sigmoid(p[:, :H] + q[:, :H])
            z = sigmoid(p[:, H:2 * H] + q[:, H:2 * H])
            n = np.tanh(p[:, 2 * H:] + r * q[:, 2 * H:])
            new = (1 - z) * n + z * h
            steps.append((h, r, z, n, q))
        else:
            a = xa @ Wx + h @ Wh
            if kind == "lstm":
                i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
                gg = np.tanh(a[:, 2 * H:3 * H])
                c_prev, c = c, f * c + i * gg
                new = o * np.tanh(c)
                steps.append((h, i, f, gg, o, c_prev, c))
            else:
                new = np.maximum(a, 0) if kind == "rnn-relu" else np.tanh(a)
                steps.append((h, a, new))
        h = new
        outputs.append(h)
    states = np.stack(outputs, axis=1)
    dx, dWx, dWh = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh)
    dh, dc = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        xa = augmented(x[:, t], bias)
        dh = dh + g[:, t]
        if kind == "gru":
            h_prev, r, z, n, q = steps[t]
            dn = dh * (1 - z)
            dz = dh * (h_prev - n)
            dan = dn * (1 - n ** 2)
            dar = dan * q[:, 2 * H:] * r * (1 - r)
            daz = dz * z * (1 - z)
            dp = np.hstack([dar, daz, dan])
            dq = np.hstack([dar, daz, dan * r])
            dWx += xa.T @ dp
            dWh += augmented(h_prev, bias).T @ dq
            dx[:, t] = dp @ Wxw.T
            dh = dh * z + dq @ Whw.T
        elif kind == "lstm":
            h_prev, i, f, gg, o, c_prev, c = steps[t]
            do = dh * np.tanh(c)
            dc = dc + dh * o * (1 - np.tanh(c) ** 2)
            da = np.hstack([dc * gg * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - gg ** 2),
                            do * o * (1 - o)])
            dc = dc * f
            dWx += xa.T @ da
            dWh += h_prev.T @ da
            dx[:, t] = da @ Wxw.T
            dh = da @ Wh.T
        else:
            h_prev, a, h_t = steps[t]
            da = dh * ((a > 0) if kind == "rnn-relu" else (1 - h_t ** 2))
            dWx += xa.T @ da
            dWh += h_prev.T @ da
            dx[:, t] = da @ Wxw.T
            dh = da @ Wh.T
    return states, dx, dWx, dWh


def from_torch(kind: str, module: Any, bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(W_x, W_h) from a torch nn.RNN/LSTM/GRU: transposed weights, b_ih + b_hh absorbed as W_x's row 0
    (GRU: b_ih in W_x, b_hh in W_h)."""
    w_ih = module.weight_ih_l0.detach().numpy().T
    w_hh = module.weight_hh_l0.detach().numpy().T
    if not bias:
        return w_ih, w_hh
    b_ih, b_hh = module.bias_ih_l0.detach().numpy(), module.bias_hh_l0.detach().numpy()
    if kind == "gru":
        return np.vstack([b_ih, w_ih]), np.vstack([b_hh, w_hh])
    return np.vstack([b_ih + b_hh, w_ih]), w_hh


def state_of(layer: md.Layer) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was: parameter values, gradients and the cache."""
    cache = layer._cache  # type: ignore[attr-defined]
    return (tuple(p.data.copy() for p in layer.parameters()), tuple(p.has_grad for p in layer.parameters()),
            tuple(p.grad.copy() for p in layer.parameters() if p.has_grad),
            None if cache is None else tuple(id(a) for a in cache),
            None if cache is None else tuple(a.copy() for a in cache))


def assert_same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[1] == b[1] and a[3] == b[3]
    for left, right in zip([*a[0], *a[2], *(a[4] or ())], [*b[0], *b[2], *(b[4] or ())], strict=True):
        np.testing.assert_array_equal(left, right)


# ---------------------------------------------------------------------------------- closed forms
def test_rnn_steps_computed_by_hand() -> None:
    """One unit, one feature: h1 = tanh(b + w x1), h2 = tanh(b + w x2 + u h1), and the back-pass of
    dCost/dh2 = 1 written out with the chain rule."""
    b, w, u = 0.1, 0.5, -0.3
    x1, x2 = 0.7, -0.2
    rnn = RNN(1, 1, W_x=[[b], [w]], W_h=[[u]])
    h1 = math.tanh(b + w * x1)
    np.testing.assert_allclose(rnn(np.array([[[x1]]])), [[[h1]]], rtol=1e-15)
    h2 = math.tanh(b + w * x2 + u * h1)
    y = rnn(np.array([[[x1], [x2]]]))
    np.testing.assert_allclose(y, [[[h1], [h2]]], rtol=1e-15)
    dx = rnn.backward(np.array([[[0.0], [1.0]]]))
    da2 = 1 - h2 ** 2
    da1 = da2 * u * (1 - h1 ** 2)
    np.testing.assert_allclose(dx, [[[da1 * w], [da2 * w]]], rtol=1e-14)
    np.testing.assert_allclose(rnn.W_x.grad, [[da1 + da2], [da1 * x1 + da2 * x2]], rtol=1e-14)
    np.testing.assert_allclose(rnn.W_h.grad, [[da2 * h1]], rtol=1e-14)
    last = RNN(1, 1, return_sequences=False, W_x=[[b], [w]], W_h=[[u]])
    np.testing.assert_allclose(last(np.array([[[x1], [x2]]])), [[h2]], rtol=1e-15)
    np.testing.assert_allclose(last.backward(np.array([[1.0]])), dx, rtol=1e-15)


def test_relu_rnn_by_hand() -> None:
    """With W_h = 2 and x = [1, 1, -5]: h = 1, 3, max(-5 + 6, 0) = 1; the gradient stops where h = 0."""
    rnn = RNN(1, 1, nonlinearity="relu", bias=False, W_x=[[1.0]], W_h=[[2.0]])
    np.testing.assert_array_equal(rnn(np.array([[[1.0], [1.0], [-5.0]]])), [[[1.0], [3.0], [1.0]]])
    dx = rnn.backward(np.array([[[0.0], [0.0], [1.0]]]))
    np.testing.assert_array_equal(dx, [[[4.0], [2.0], [1.0]]])  # dh2/dx = W_h, dh1/dx = W_h^2
    np.testing.assert_array_equal(rnn(np.array([[[-1.0], [1.0]]])), [[[0.0], [1.0]]])
    np.testing.assert_array_equal(rnn.backward(np.array([[[0.0], [1.0]]])), [[[0.0], [1.0]]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_with_a_saturated_forget_gate_carries_its_cell_state(dtype: Any) -> None:
    """Inputs (write, value), one unit.  Pre-activations of +-1000 saturate the gates exactly (and must
    not overflow): forget and output gates open, the input gate open only when write = 1, g = tanh(value).
    The value written at step 0 is carried unchanged for 30 steps, h_t = tanh(tanh(v)) exactly, and its
    gradient comes back undiminished (the "constant error carousel"); every other input gets none."""
    #                 i        f       g    o
    W_x = np.array([[-1000.0, 1000.0, 0.0, 1000.0],   # bias
                    [2000.0, 0.0, 0.0, 0.0],          # write
                    [0.0, 0.0, 1.0, 0.0]])            # value
    lstm = LSTM(2, 1, return_sequences=False, W_x=W_x, W_h=np.zeros((1, 4)), dtype=dtype)
    rng = np.random.default_rng(0)
    x = np.zeros((3, 30, 2), dtype=dtype)
    x[:, 0, 0] = 1.0
    x[:, :, 1] = rng.normal(size=(3, 30))
    v = x[:, 0, 1]
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        h = lstm(x)
        dx = lstm.backward(np.ones((3, 1), dtype=dtype))
    np.testing.assert_array_equal(h[:, 0], np.tanh(np.tanh(v)))
    expected = np.zeros_like(x)
    expected[:, 0, 1] = (1 - np.tanh(np.tanh(v)) ** 2) * (1 - np.tanh(v) ** 2)
    np.testing.assert_allclose(dx, expected, rtol=2e-6 if dtype == np.float32 else 1e-15, atol=0)
    assert h.dtype == dx.dtype == dtype


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("bias, return_sequences, shape", [
    (True, True, (3, 5, 4, 6)), (False, True, (2, 4, 3, 2)), (True, False, (4, 3, 2, 5)),
    (False, False, (1, 1, 3, 4)),
])
def test_matches_a_per_step_loop_reference(kind: str, bias: bool, return_sequences: bool,
                                           shape: tuple[int, int, int, int]) -> None:
    N, T, D, H = shape
    rng = np.random.default_rng(N * T + D * H)
    layer = make(kind, D, H, bias=bias, return_sequences=return_sequences, rng=1)
    x = rng.normal(size=(N, T, D))
    g_all = rng.normal(size=(N, T, H))
    if not return_sequences:
        g_all[:, :-1] = 0
    states, dx, dWx, dWh = loop_reference(kind, x, layer.W_x.data, layer.W_h.data, bias, g_all)
    y = layer(x)
    np.testing.assert_allclose(y, states if return_sequences else states[:, -1], rtol=1e-12, atol=1e-14)
    g = g_all if return_sequences else g_all[:, -1].copy()
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.W_x.grad, dWx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.W_h.grad, dWh, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------------- gradient checker
# kind, (N, T, I, H), bias, return_sequences, seed
CHECKS = [
    ("rnn", (3, 4, 3, 4), True, True, 0),
    ("rnn", (2, 3, 2, 3), False, False, 1),
    ("rnn-relu", (3, 4, 3, 4), True, True, 2),
    ("rnn-relu", (2, 5, 2, 3), True, False, 3),
    ("lstm", (2, 4, 3, 3), True, True, 0),
    ("lstm", (3, 3, 2, 2), False, True, 1),
    ("lstm", (2, 5, 2, 3), True, False, 2),
    ("lstm", (1, 1, 2, 3), True, True, 3),
    ("gru", (2, 4, 3, 3), True, True, 0),
    ("gru", (3, 3, 2, 2), False, False, 1),
    ("gru", (2, 5, 2, 3), True, False, 2),
    ("gru", (1, 1, 3, 2), False, True, 3),
]


@pytest.mark.parametrize("kind, shape, bias, return_sequences, seed", CHECKS)
def test_gradient_checker(kind: str, shape: tuple[int, ...], bias: bool, return_sequences: bool, seed: int) -> None:
    N, T, D, H = shape
    layer = make(kind, D, H, bias=bias, return_sequences=return_sequences, rng=seed)
    x = np.random.default_rng(seed).normal(size=(N, T, D))
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert [r.name for r in report.results] == ["input", "W_x", "W_h"]
    for result in report.results:  # every element checked (small tensors), none failed
        assert result.mode == "full" and result.failed == 0
        assert result.checked + result.skipped == result.size
        assert result.checked > 0


def test_gradient_checker_with_the_input_shape_hint() -> None:
    """(3, input_size): three steps, as Conv2D and BatchNorm2d propose small images."""
    for layer in (RNN(2, 3, rng=0), LSTM(2, 3, rng=0), GRU(2, 3, return_sequences=False, rng=0)):
        assert layer.input_shape_hint() == (3, 2)
        assert_gradients_ok(layer)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_in_a_sequential_with_a_dense_head_and_cross_entropy(kind: str) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(4, 3, 2)), np.array([0, 2, 1, 2])
    last = md.Sequential(make(kind, 2, 3, return_sequences=False, rng=0), md.Dense(3, 3, rng=1))
    report = assert_gradients_ok(last, inputs=x, loss=md.CrossEntropyLoss(), targets=y)
    assert {"0.W_x", "0.W_h", "1.W", "input"} == {r.name for r in report.results}
    every = md.Sequential(make(kind, 2, 3, rng=2), make(kind, 3, 2, rng=3), md.Flatten(), md.Dense(6, 3, rng=4))
    report = assert_gradients_ok(every, inputs=x, loss=md.CrossEntropyLoss(), targets=y)
    assert {"0.W_x", "0.W_h", "1.W_x", "1.W_h", "3.W", "input"} == {r.name for r in report.results}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("frozen", ["W_h", "W_x"])
def test_a_frozen_weight_gets_no_gradient_and_the_rest_is_checked(kind: str, frozen: str) -> None:
    rng = np.random.default_rng(5)
    layer = make(kind, 2, 3, rng=0)
    x, g = rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 4, 3))
    reference = copy.deepcopy(layer)
    reference(x)
    dx_ref = reference.backward(g)
    trainable = "W_x" if frozen == "W_h" else "W_h"
    getattr(layer, frozen).requires_grad = False
    report = assert_gradients_ok(layer, inputs=x)
    assert report[frozen].status == "frozen"
    assert report[trainable].status == "ok" and report["input"].status == "ok"
    layer(x)
    np.testing.assert_array_equal(layer.backward(g), dx_ref)
    np.testing.assert_array_equal(getattr(layer, trainable).grad, getattr(reference, trainable).grad)
    assert not getattr(layer, frozen).has_grad
    layer.requires_grad_(False)
    layer.zero_grad()
    np.testing.assert_array_equal(layer.backward(g), dx_ref)  # dx still flows through a frozen layer
    assert layer.backward_params(g) is None
    assert not layer.W_x.has_grad and not layer.W_h.has_grad
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 4, 3\), got \(2, 3\)"):
        layer.backward_params(g[:, 0])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_backward_params_overwrites_after_zero_grad_and_accumulates(kind: str, return_sequences: bool) -> None:
    rng = np.random.default_rng(6)
    a = make(kind, 3, 2, return_sequences=return_sequences, rng=0)
    b = copy.deepcopy(a)
    x = rng.normal(size=(2, 4, 3))
    g = rng.normal(size=a(x).shape)
    b(x)
    a.backward(g)
    for p in b.parameters():  # stale values: zero_grad marks them, the next backward must overwrite them all
        p.grad[...] = np.nan
    b.zero_grad()
    assert b.backward_params(g) is None
    once = [p.grad.copy() for p in a.parameters()]
    for first, pb in zip(once, b.parameters(), strict=True):
        np.testing.assert_allclose(pb.grad, first, rtol=1e-14)
    b.backward_params(g)  # gradients accumulate, through either method
    a.backward(g)
    for first, pa, pb in zip(once, a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(pa.grad, 2 * first, rtol=1e-14)
        np.testing.assert_allclose(pb.grad, 2 * first, rtol=1e-14)


# ---------------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("bias, return_sequences", [(True, True), (False, True), (True, False), (False, False)])
def test_against_pytorch(kind: str, bias: bool, return_sequences: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    N, T, D, H = 3, 6, 4, 5
    x = rng.normal(size=(N, T, D))
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-12, 1e-14),
                                           (np.float32, torch.float32, 1e-5, 1e-5)]:
        if kind == "rnn-relu":
            theirs = torch.nn.RNN(D, H, nonlinearity="relu", bias=bias, batch_first=True, dtype=torch_dtype)
        else:
            theirs = getattr(torch.nn, kind.upper())(D, H, bias=bias, batch_first=True, dtype=torch_dtype)
        W_x, W_h = from_torch(kind.split("-")[0], theirs, bias)
        ours = make(kind, D, H, bias=bias, return_sequences=return_sequences, W_x=W_x, W_h=W_h, dtype=dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        out, _ = theirs(xt)
        if not return_sequences:
            out = out[:, -1]
        g = rng.normal(size=tuple(out.shape)).astype(dtype)
        out.backward(torch.tensor(g))
        y = ours(x.astype(dtype))
        assert y.dtype == dtype
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        dx = ours.backward(g)
        assert dx.dtype == ours.W_x.grad.dtype == ours.W_h.grad.dtype == dtype
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
        dW_x, dW_h = ours.W_x.grad, ours.W_h.grad
        rows_x = dW_x[1:] if bias else dW_x
        recurrent_bias = bias and kind == "gru"
        rows_h = dW_h[1:] if recurrent_bias else dW_h
        np.testing.assert_allclose(rows_x, theirs.weight_ih_l0.grad.numpy().T, rtol=rtol, atol=atol)
        np.testing.assert_allclose(rows_h, theirs.weight_hh_l0.grad.numpy().T, rtol=rtol, atol=atol)
        if bias:
            np.testing.assert_allclose(dW_x[0], theirs.bias_ih_l0.grad.numpy(), rtol=rtol, atol=atol)
            b_hh = dW_h[0] if recurrent_bias else dW_x[0]  # RNN/LSTM: b_hh adds to b_ih, same gradient
            np.testing.assert_allclose(b_hh, theirs.bias_hh_l0.grad.numpy(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------- dtypes, state, shapes
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_float32_stays_float32(kind: str) -> None:
    rng = np.random.default_rng(8)
    layer = make(kind, 3, 4, rng=0, dtype=np.float32)
    assert layer.W_x.dtype == layer.W_h.dtype == np.float32
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    g = rng.normal(size=(2, 5, 4)).astype(np.float32)
    y = layer(x)
    dx = layer.backward(g)
    assert y.dtype == dx.dtype == layer.W_x.grad.dtype == layer.W_h.grad.dtype == np.float32
    layer.backward_params(g)
    assert layer.W_x.grad.dtype == np.float32
    wide = make(kind, 3, 4, W_x=layer.W_x.data, W_h=layer.W_h.data)  # the same weights in float64
    np.testing.assert_allclose(y, wide(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, wide.backward(g.astype(np.float64)), rtol=1e-4, atol=1e-5)
    with pytest.raises(md.DTypeError, match=r"expected grad_output of dtype float32, got float64"):
        layer.backward(g.astype(np.float64))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_astype_state_dict_and_repr(kind: str, tmp_path: pathlib.Path) -> None:
    layer = make(kind, 3, 4, rng=0)
    x = np.random.default_rng(9).normal(size=(2, 3, 3))
    path = tmp_path / "rnn.ckpt"
    md.save({"model": layer.state_dict()}, path)
    other = make(kind, 3, 4, rng=1)
    other.load_state_dict(md.load(path)["model"])
    assert list(other.state_dict()) == ["W_x", "W_h", "_layout"]
    np.testing.assert_array_equal(other(x), layer(x))
    with pytest.raises(md.StateDictError, match=r"'W_x': expected shape"):
        make(kind, 2, 4, rng=0).load_state_dict(layer.state_dict())
    half = copy.deepcopy(layer).astype(np.float32)
    assert half.W_x.dtype == half.W_h.dtype == np.float32
    np.testing.assert_allclose(half(x.astype(np.float32)), layer(x), rtol=1e-5, atol=1e-6)
    name = type(layer).__name__
    assert repr(layer) == f"{name}(3, 4)"
    options = {"nonlinearity": "relu"} if kind == "rnn" else {}
    extra = "nonlinearity='relu', " if kind == "rnn" else ""
    assert repr(make(kind, 3, 4, bias=False, return_sequences=False, **options)) == \
        f"{name}(3, 4, {extra}bias=False, return_sequences=False)"


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_parameter_shapes_init_and_exact_values(kind: str) -> None:
    G = GATES[kind]
    layer = make(kind, 5, 4, rng=3)
    recurrent_rows = 5 if kind == "gru" else 4
    assert layer.W_x.shape == (6, G * 4) and layer.W_h.shape == (recurrent_rows, G * 4)
    no_bias = make(kind, 5, 4, bias=False, rng=3)
    assert no_bias.W_x.shape == (5, G * 4) and no_bias.W_h.shape == (4, G * 4)
    # PyTorch's U(-1/sqrt(hidden), 1/sqrt(hidden)) for every entry, W_x drawn first, from the one rng
    # (a bound of 1/sqrt(input_size) = 0.447 would also lie in (0.4, 0.5]: compare the exact draws)
    draw = np.random.default_rng(3)
    np.testing.assert_array_equal(layer.W_x.data, draw.uniform(-0.5, 0.5, size=(6, G * 4)))
    np.testing.assert_array_equal(layer.W_h.data, draw.uniform(-0.5, 0.5, size=(recurrent_rows, G * 4)))
    np.testing.assert_array_equal(make(kind, 5, 4, rng=3).W_h.data, layer.W_h.data)
    assert not np.array_equal(make(kind, 5, 4, rng=4).W_x.data, layer.W_x.data)
    W_x = np.arange(6 * G * 4, dtype=float).reshape(6, G * 4) / 100
    exact = make(kind, 5, 4, W_x=W_x, rng=0)
    np.testing.assert_array_equal(exact.W_x.data, W_x)
    assert exact.W_x.data is not W_x
    np.testing.assert_array_equal(make(kind, 5, 4, W_h=exact.W_h.data).W_h.data, exact.W_h.data)
    assert np.abs(exact.W_h.data).max() <= 1 / math.sqrt(4)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_one_step_one_sample_and_an_empty_batch(kind: str) -> None:
    layer = make(kind, 2, 3, rng=0)
    x = np.random.default_rng(10).normal(size=(1, 1, 2))
    y = layer(x)
    assert y.shape == (1, 1, 3)
    assert layer.backward(np.ones((1, 1, 3))).shape == (1, 1, 2)
    assert layer(np.zeros((0, 4, 2))).shape == (0, 4, 3)
    assert layer.backward(np.zeros((0, 4, 3))).shape == (0, 4, 2)
    last = make(kind, 2, 3, return_sequences=False, rng=0)
    np.testing.assert_array_equal(last(x), y[:, 0])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_output_is_read_only_and_inputs_are_not_modified(kind: str) -> None:
    rng = np.random.default_rng(11)
    layer = make(kind, 3, 2, rng=0)
    x, g = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 2))
    x0, g0 = x.copy(), g.copy()
    y = layer(x)
    with pytest.raises(ValueError, match="read-only"):
        y[0, 0, 0] = 1.0
    layer.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    # a time-major view (the output of another recurrent layer) and a list are read like any input
    np.testing.assert_array_equal(layer(np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)), y)
    np.testing.assert_array_equal(layer(x.tolist()), y)


def test_summary_uses_the_input_shape_hint() -> None:
    model = md.Sequential(LSTM(8, 16, return_sequences=False, rng=0), md.Dense(16, 10, rng=1))
    table = str(md.summarize(model))
    assert "(None, 16)" in table
    assert md.summarize(model).trainable == 9 * 64 + 16 * 64 + 17 * 10


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("x, error, pattern", [
    (np.ones((2, 3)), md.ShapeError, r"expected a 3-D input of shape \(N, T, 3\), got shape \(2, 3\)"),
    (np.ones((2, 4, 5)), md.ShapeError, r"expected input of shape \(N, T, 3\), got shape \(2, 4, 5\)"),
    (np.ones((2, 0, 3)), md.ShapeError, r"expected at least one time step in an input of shape \(N, T, 3\), "
                                         r"got shape \(2, 0, 3\)"),
    (np.ones((2, 4, 3), dtype=np.int64), md.DTypeError, "expected a floating-point input, got dtype int64"),
    (np.ones((2, 4, 3), dtype=np.float32), md.DTypeError, r"input dtype float32 does not match the layer's "
                                                           r"parameters \(float64\)"),
    ("not an array", md.DTypeError, "expected input as a numpy array, got str"),
    (np.where(np.arange(24).reshape(2, 4, 3) == 17, np.nan, 1.0), md.NonFiniteError,
     r"input holds 1 NaN/inf value\(s\), the first at index \(1, 1, 2\) \(nan\)"),
    (np.where(np.arange(24).reshape(2, 4, 3) == 4, -np.inf, 1.0), md.NonFiniteError,
     r"input holds 1 NaN/inf value\(s\), the first at index \(0, 1, 1\) \(-inf\)"),
])
def test_bad_input_is_refused_and_changes_nothing(kind: str, x: Any, error: type, pattern: str) -> None:
    layer = make(kind, 3, 2, rng=0)
    name = type(layer).__name__
    good = np.random.default_rng(12).normal(size=(2, 5, 3))
    y = layer(good).copy()
    dx = layer.backward(np.ones((2, 5, 2)))
    before = state_of(layer)
    with pytest.raises(error, match=rf"^{name}\(3 -> 2\): {pattern}"):
        layer(x)
    assert_same_state(state_of(layer), before)
    layer.zero_grad()
    np.testing.assert_array_equal(layer.backward(np.ones((2, 5, 2))), dx)  # the last good pass, intact
    np.testing.assert_array_equal(layer(good), y)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bad_grad_output_and_backward_before_forward(kind: str) -> None:
    layer = make(kind, 3, 2, rng=0)
    name = type(layer).__name__
    with pytest.raises(md.BackwardBeforeForwardError, match=rf"{name}\.backward called before forward"):
        layer.backward(np.ones((2, 4, 2)))
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward_params(np.ones((2, 4, 2)))
    layer(np.ones((2, 4, 3)))
    before = state_of(layer)
    for bad, error, pattern in [
        (np.ones((2, 2)), md.ShapeError, r"expected grad_output of shape \(2, 4, 2\), got \(2, 2\)"),
        (np.ones((2, 4, 3)), md.ShapeError, r"expected grad_output of shape \(2, 4, 2\), got \(2, 4, 3\)"),
        (np.ones((2, 4, 2), dtype=np.float32), md.DTypeError, "expected grad_output of dtype float64, got float32"),
        ([[[1.0, 1.0]] * 4] * 2, md.DTypeError, "expected grad_output as a numpy array, got list"),
    ]:
        for method in (layer.backward, layer.backward_params):
            with pytest.raises(error, match=rf"^{name}\(3 -> 2\)\.backward: {pattern}"):
                method(bad)
            assert_same_state(state_of(layer), before)
    last = make(kind, 3, 2, return_sequences=False, rng=0)
    last(np.ones((2, 4, 3)))
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 2\), got \(2, 4, 2\)"):
        last.backward(np.ones((2, 4, 2)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_constructor_arguments_are_checked(kind: str) -> None:
    cls = KINDS[kind]
    name = cls.__name__
    G = GATES[kind]
    with pytest.raises(ValueError, match=rf"{name}: input_size must be a positive int, got 0"):
        cls(0, 3)
    with pytest.raises(ValueError, match=rf"{name}: hidden_size must be a positive int, got 2.5"):
        cls(3, 2.5)
    with pytest.raises(ValueError, match=rf"{name}: hidden_size must be a positive int, got True"):
        cls(3, True)
    with pytest.raises(TypeError, match=rf"{name}: bias must be True or False, got 'no'"):
        cls(3, 2, bias="no")
    with pytest.raises(TypeError, match=rf"{name}: return_sequences must be True or False, got 0"):
        cls(3, 2, return_sequences=0)
    with pytest.raises(md.DTypeError, match=rf"{name}: parameters need a floating dtype"):
        cls(3, 2, dtype=np.int32)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        cls(3, 2, rng="seed")
    if kind == "rnn":
        x_layout, h_layout = "(1 + input_size, hidden_size) (row 0 the bias)", "(hidden_size, hidden_size)"
        bare = "(hidden_size, hidden_size)"
    else:
        gates = "column blocks " + ("i, f, g, o" if kind == "lstm" else "r, z, n")
        x_layout = f"(1 + input_size, {G}*hidden_size) (row 0 the bias; {gates})"
        h_layout = (f"(1 + hidden_size, {G}*hidden_size) (row 0 the bias; {gates})" if kind == "gru"
                    else f"(hidden_size, {G}*hidden_size) ({gates})")
        bare = f"(hidden_size, {G}*hidden_size) ({gates})"
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(3 -> 2): expected W_x of shape (4, {2 * G}) = {x_layout}, got (3, {2 * G})")):
        cls(3, 2, W_x=np.zeros((3, 2 * G)))
    h_rows = 3 if kind == "gru" else 2
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{name}(3 -> 2): expected W_h of shape ({h_rows}, {2 * G}) = {h_layout}, got (7, {2 * G})")):
        cls(3, 2, W_h=np.zeros((7, 2 * G)))
    message = f"expected W_h of shape (2, {2 * G}) = {bare}, got (3, {2 * G})"
    with pytest.raises(md.ShapeError, match=re.escape(message)):
        cls(3, 2, bias=False, W_h=np.zeros((3, 2 * G)))
    W_h = np.zeros((2, 2 * G))
    W_h[1, 0] = np.nan
    with pytest.raises(md.NonFiniteError, match=r"W_h holds 1 NaN/inf value\(s\) \(in float64\)"):
        cls(3, 2, bias=False, W_h=W_h)
    W_x = np.zeros((3, 2 * G))
    W_x[:, 0] = 1e300  # finite, but inf in float32
    with pytest.raises(md.NonFiniteError, match=r"W_x holds 3 NaN/inf value\(s\) \(in float32\)"):
        cls(3, 2, bias=False, dtype=np.float32, W_x=W_x)
    with pytest.raises(md.DTypeError, match="W_x must hold real numbers, got dtype complex128"):
        cls(3, 2, bias=False, W_x=np.ones((3, 2 * G), complex))
    with pytest.raises(md.DTypeError, match="W_h must hold real numbers, got dtype <U1"):
        cls(3, 2, bias=False, W_h=np.full((2, 2 * G), "1"))
    with pytest.raises(md.DTypeError, match="could not make a numpy array of W_x"):
        cls(3, 2, W_x=[[1.0], [1.0, 2.0]])


def test_rnn_nonlinearity_is_tanh_or_relu() -> None:
    for bad in ("sigmoid", "Tanh", None, 1):
        with pytest.raises(ValueError, match=r"RNN: nonlinearity must be 'tanh' or 'relu', got"):
            RNN(2, 2, nonlinearity=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fit_learns_the_sign_of_a_sum(kind: str) -> None:
    """A smoke test of the training path (backward_params of a first layer, float32, Adam): whether a
    sequence of 6 numbers sums to more than 0 is learnt in a few epochs."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(128, 6, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = md.Sequential(make(kind, 1, 8, return_sequences=False, rng=0, dtype=np.float32),
                          md.Dense(8, 2, rng=1, dtype=np.float32))
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.03),
                        epochs=15, batch_size=32, metrics=["accuracy"], rng=0, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
