"""MultiHeadAttention: closed forms, a per-sample/per-head/per-query loop reference, the gradient checker
(fixed cases and a hypothesis property), PyTorch, the causal mask, dtypes, frozen weights, refused input,
serialization and use inside models."""

from __future__ import annotations

import copy
import math
import pathlib
import re
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.layers.attention import MultiHeadAttention
from minidl.testing import assert_gradients_ok, states_equal


# ---------------------------------------------------------------------------------- references
def split(W: np.ndarray, bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(weight rows, bias row) of an absorbed-bias matrix; a zero bias without one."""
    return (W[1:], W[0]) if bias else (W, np.zeros(W.shape[1]))


def loop_reference(x: np.ndarray, W_qkv: np.ndarray, W_o: np.ndarray, H: int, causal: bool, bias: bool,
                   g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output and, for the upstream gradient ``g``, dx, dW_qkv and dW_o: one sample, one head and one query
    at a time, the softmax differentiated through its explicit Jacobian diag(p) - p p^T."""
    N, T, E = x.shape
    d = E // H
    s = 1 / math.sqrt(d)
    Wi, bi = split(W_qkv, bias)
    Wo, bo = split(W_o, bias)
    y, dx = np.zeros_like(x), np.zeros_like(x)
    dWi, dbi, dWo, dbo = np.zeros_like(Wi), np.zeros_like(bi), np.zeros_like(Wo), np.zeros_like(bo)
    for n in range(N):
        X = x[n]
        qkv = X @ Wi + bi
        concat = np.zeros((T, E))
        probabilities = []
        for h in range(H):
            q, k, v = (qkv[:, b * E + h * d: b * E + (h + 1) * d] for b in range(3))
            P = np.zeros((T, T))
            for t in range(T):
                seen = t + 1 if causal else T
                scores = np.array([s * (q[t] @ k[j]) for j in range(seen)])
                e = np.exp(scores - scores.max())
                P[t, :seen] = e / e.sum()
                concat[t, h * d:(h + 1) * d] = P[t] @ v
            probabilities.append(P)
        y[n] = concat @ Wo + bo
        G = g[n]
        dWo += concat.T @ G
        dbo += G.sum(axis=0)
        d_concat = G @ Wo.T
        d_qkv = np.zeros((T, 3 * E))
        for h, P in enumerate(probabilities):
            q, k, v = (qkv[:, b * E + h * d: b * E + (h + 1) * d] for b in range(3))
            dq, dk, dv = (d_qkv[:, b * E + h * d: b * E + (h + 1) * d] for b in range(3))
            dO = d_concat[:, h * d:(h + 1) * d]
            for t in range(T):
                dP = v @ dO[t]
                dS = (np.diag(P[t]) - np.outer(P[t], P[t])) @ dP
                dv += np.outer(P[t], dO[t])
                dq[t] += s * (dS @ k)
                dk += s * np.outer(dS, q[t])
        dWi += X.T @ d_qkv
        dbi += d_qkv.sum(axis=0)
        dx[n] = d_qkv @ Wi.T
    dW_qkv = np.vstack([dbi, dWi]) if bias else dWi
    dW_o = np.vstack([dbo, dWo]) if bias else dWo
    return y, dx, dW_qkv, dW_o


def state_of(layer: MultiHeadAttention) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was: parameter values, gradients and the cache."""
    cache = layer._cache
    return (tuple(p.data.copy() for p in layer.parameters()), tuple(p.has_grad for p in layer.parameters()),
            tuple(p.grad.copy() for p in layer.parameters() if p.has_grad),
            None if cache is None else tuple(id(a) for a in cache),
            None if cache is None else tuple(None if a is None else a.copy() for a in cache))


def assert_same_state(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[1] == b[1] and a[3] == b[3]
    for left, right in zip([*a[0], *a[2], *(a[4] or ())], [*b[0], *b[2], *(b[4] or ())], strict=True):
        np.testing.assert_array_equal(left, right)


def probabilities(layer: MultiHeadAttention) -> np.ndarray:
    """The attention probabilities of the last forward, (N, H, T, T)."""
    assert layer._cache is not None
    return layer._cache[5]


# ---------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("causal", [False, True])
def test_one_feature_one_head_by_hand(causal: bool) -> None:
    """E = H = d = 1, T = 2: every score is a product of two numbers; the backward of a causal first
    position (only itself to attend to, p = 1) is exact: q and k get no gradient at all."""
    bq, bk, bv, wq, wk, wv, bo, wo = 0.1, -0.2, 0.3, 0.5, -0.7, 1.1, 0.05, -0.9
    layer = MultiHeadAttention(1, 1, causal=causal, W_qkv=[[bq, bk, bv], [wq, wk, wv]], W_o=[[bo], [wo]])
    x1, x2 = 0.7, -1.3
    q = [bq + wq * x1, bq + wq * x2]
    k = [bk + wk * x1, bk + wk * x2]
    v = [bv + wv * x1, bv + wv * x2]

    def attend(t: int, seen: int) -> float:
        e = [math.exp(q[t] * k[j]) for j in range(seen)]
        return sum(e[j] * v[j] for j in range(seen)) / sum(e)

    y = layer(np.array([[[x1], [x2]]]))
    expected = [bo + wo * attend(0, 1 if causal else 2), bo + wo * attend(1, 2)]
    np.testing.assert_allclose(y[0, :, 0], expected, rtol=1e-15)
    dx = layer.backward(np.array([[[1.0], [0.0]]]))
    if causal:  # y_0 = bo + wo (bv + wv x1): a straight line in x1, nothing from x2
        assert y[0, 0, 0] == bo + wo * v[0]
        np.testing.assert_array_equal(dx, [[[wo * wv], [0.0]]])
        np.testing.assert_array_equal(layer.W_qkv.grad, [[0.0, 0.0, wo], [0.0, 0.0, wo * x1]])
        np.testing.assert_array_equal(layer.W_o.grad, [[1.0], [v[0]]])
    else:  # y_0 = bo + wo (v_0 + sigma(a) (v_1 - v_0)), a = q_0 (k_1 - k_0): p_1 = sigma(a), p_0 = 1 - p_1
        sig = 1 / (1 + math.exp(-q[0] * (k[1] - k[0])))
        slope = sig * (1 - sig) * (v[1] - v[0])  # d(sigma(a) (v_1 - v_0)) / da
        d_first = wo * (wv * (1 - sig) + slope * (wq * (k[1] - k[0]) - q[0] * wk))
        d_second = wo * (wv * sig + slope * q[0] * wk)
        np.testing.assert_allclose(dx[0, :, 0], [d_first, d_second], rtol=1e-14)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_zero_queries_attend_uniformly_to_the_running_mean(causal: bool, bias: bool) -> None:
    """With W_q = 0 (and its bias 0) every score is 0, so each head averages v over the positions it sees:
    the mean over all positions, or with ``causal`` the running mean up to t."""
    E, H, N, T = 6, 3, 2, 5
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=0)
    Wi, bi = split(layer.W_qkv.data, bias)
    Wi[:, :E] = 0
    bi[:E] = 0  # a view of W_qkv's row 0 with bias; a fresh zero array without
    x = np.random.default_rng(1).normal(size=(N, T, E))
    v = x @ Wi[:, 2 * E:] + bi[2 * E:]
    counts = np.arange(1, T + 1)[None, :, None]
    mean = np.cumsum(v, axis=1) / counts if causal else np.broadcast_to(v.mean(axis=1, keepdims=True), v.shape)
    Wo, bo = split(layer.W_o.data, bias)
    np.testing.assert_allclose(layer(x), mean @ Wo + bo, rtol=1e-13, atol=1e-15)
    P = probabilities(layer)
    expected = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None] if causal else np.full((T, T), 1 / T)
    np.testing.assert_allclose(P, np.broadcast_to(expected, P.shape), rtol=1e-15)


@pytest.mark.parametrize("causal", [False, True])
def test_a_single_position_is_its_own_value_projected(causal: bool) -> None:
    """T = 1: the softmax over one key is 1, so y = (x W_v + b_v) W_o + b_o; q and k get no gradient
    (to round-off)."""
    E, H = 4, 2
    layer = MultiHeadAttention(E, H, causal=causal, rng=2)
    x = np.random.default_rng(3).normal(size=(3, 1, E))
    Wi, bi = split(layer.W_qkv.data, True)
    Wo, bo = split(layer.W_o.data, True)
    v = x[:, 0] @ Wi[:, 2 * E:] + bi[2 * E:]
    np.testing.assert_allclose(layer(x)[:, 0], v @ Wo + bo, rtol=1e-14, atol=1e-15)
    g = np.random.default_rng(4).normal(size=(3, 1, E))
    dx = layer.backward(g)
    np.testing.assert_allclose(dx[:, 0], g[:, 0] @ Wo.T @ Wi[:, 2 * E:].T, rtol=1e-13, atol=1e-15)
    # dS = P (dP - rowsum(dO * O)) is 0 only in exact arithmetic: dP comes from a BLAS matmul and the row
    # sum from einsum, whose roundings differ by build (an FMA or not), so the q and k gradients are round-off.
    np.testing.assert_allclose(layer.W_qkv.grad[:, :2 * E], 0, atol=1e-15)


def test_the_key_bias_gets_no_gradient_and_changes_nothing() -> None:
    """Adding b_k to every key adds q_t . b_k to a whole row of scores, which the softmax ignores: the
    output does not depend on b_k and its gradient is 0 (to round-off), as in PyTorch."""
    E, H = 6, 2
    layer = MultiHeadAttention(E, H, rng=5)
    x = np.random.default_rng(6).normal(size=(2, 4, E))
    y = layer(x)
    layer.backward(np.random.default_rng(7).normal(size=y.shape))
    assert np.abs(layer.W_qkv.grad[0, E:2 * E]).max() < 1e-14 * np.abs(layer.W_qkv.grad).max()
    shifted = copy.deepcopy(layer)
    shifted.W_qkv.data[0, E:2 * E] += 3.0
    np.testing.assert_allclose(shifted(x), y, rtol=1e-12, atol=1e-14)


def test_without_mask_permuting_the_positions_permutes_the_output() -> None:
    layer = MultiHeadAttention(6, 3, rng=8)
    x = np.random.default_rng(9).normal(size=(2, 5, 6))
    order = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(layer(x[:, order]), layer(x)[:, order], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cut", [0, 2, 4])
def test_causal_outputs_ignore_the_future_exactly(cut: int) -> None:
    """Changing the positions after ``cut`` leaves the outputs up to ``cut`` bit for bit (a masked
    probability is exactly 0), and a gradient on the outputs up to ``cut`` sends exactly nothing to the
    positions after it."""
    layer = MultiHeadAttention(6, 2, causal=True, rng=10)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 6))
    other = x.copy()
    other[:, cut + 1:] = rng.normal(size=other[:, cut + 1:].shape) * 100
    y = layer(x)
    np.testing.assert_array_equal(layer(other)[:, :cut + 1], y[:, :cut + 1])
    g = np.zeros_like(x)
    g[:, :cut + 1] = rng.normal(size=g[:, :cut + 1].shape)
    dx = layer.backward(g)
    assert not dx[:, cut + 1:].any()
    assert dx[:, :cut + 1].all()


# ---------------------------------------------------------------------------------- loop reference
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 6, 2), (2, 4, 6, 3), (1, 1, 4, 4), (2, 3, 5, 1)])
def test_matches_a_per_sample_per_head_loop_reference(causal: bool, bias: bool,
                                                      shape: tuple[int, int, int, int]) -> None:
    N, T, E, H = shape
    rng = np.random.default_rng(N * T + E * H)
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=1)
    x, g = rng.normal(size=(N, T, E)), rng.normal(size=(N, T, E))
    y_ref, dx_ref, dW_qkv, dW_o = loop_reference(x, layer.W_qkv.data, layer.W_o.data, H, causal, bias, g)
    np.testing.assert_allclose(layer(x), y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.W_qkv.grad, dW_qkv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.W_o.grad, dW_o, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------- causal mask, no NaN
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_causal_mask_makes_no_nan_even_with_huge_scores(dtype: Any) -> None:
    """Scores up to about 4e5 (exp over- and underflows if not shifted) and the first query, which may attend
    only to itself: no warning, finite everything, exact zeros above the diagonal, p = 1 at (0, 0)."""
    E, T = 4, 5
    layer = MultiHeadAttention(E, 2, causal=True, rng=12, dtype=dtype)
    layer.W_qkv.data[1:, :2 * E] *= 300
    x = np.random.default_rng(13).normal(size=(3, T, E)).astype(dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow: 0, fine
        warnings.simplefilter("error")
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
    P = probabilities(layer)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert np.isfinite(layer.W_qkv.grad).all() and np.isfinite(layer.W_o.grad).all()
    assert np.abs(P).max() == 1  # saturated: some rows are one-hot
    assert not P[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]].any()
    np.testing.assert_array_equal(P[..., 0, 0], 1)
    np.testing.assert_allclose(P.sum(axis=-1), 1, rtol=1e-6 if dtype == np.float32 else 1e-15)


# ---------------------------------------------------------------------------------- gradient checker
# (N, T, E, H), causal, bias, seed
CHECKS = [
    ((2, 3, 4, 2), False, True, 0),
    ((2, 3, 4, 2), True, True, 1),
    ((3, 4, 6, 3), False, False, 2),
    ((3, 4, 6, 3), True, False, 3),
    ((2, 5, 6, 1), True, True, 4),
    ((1, 4, 4, 4), False, True, 5),
    ((1, 1, 2, 1), True, True, 6),
    ((2, 2, 6, 2), False, False, 7),
    ((4, 3, 3, 3), True, True, 8),
]


@pytest.mark.parametrize("shape, causal, bias, seed", CHECKS)
def test_gradient_checker(shape: tuple[int, int, int, int], causal: bool, bias: bool, seed: int) -> None:
    N, T, E, H = shape
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=seed)
    x = np.random.default_rng(seed).normal(size=(N, T, E))
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert [r.name for r in report.results] == ["input", "W_qkv", "W_o"]
    for result in report.results:  # every element checked (small tensors), none failed
        assert result.mode == "full" and result.failed == 0
        assert result.checked + result.skipped == result.size and result.checked > 0


def test_gradient_checker_with_the_input_shape_hint() -> None:
    """(3, embed_dim): three positions, as the recurrent layers propose."""
    layer = MultiHeadAttention(4, 2, causal=True, rng=0)
    assert layer.input_shape_hint() == (3, 4)
    assert_gradients_ok(layer)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=st.integers(1, 3), T=st.integers(1, 4), H=st.integers(1, 3), d=st.integers(1, 3), causal=st.booleans(),
       bias=st.booleans(), float32=st.booleans(), seed=st.integers(0, 2**16))
def test_property_random_shapes(N: int, T: int, H: int, d: int, causal: bool, bias: bool, float32: bool,
                                seed: int) -> None:
    dtype = np.float32 if float32 else np.float64
    E = H * d
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=seed, dtype=dtype)
    x = np.random.default_rng(seed).normal(size=(N, T, E)).astype(dtype)
    y = layer(x)
    assert y.shape == (N, T, E) and y.dtype == dtype
    assert layer.backward(np.ones_like(y)).dtype == dtype
    assert_gradients_ok(layer, inputs=x, seed=seed)


@pytest.mark.parametrize("frozen", ["W_qkv", "W_o", "both"])
def test_a_frozen_weight_gets_no_gradient_and_the_rest_is_checked(frozen: str) -> None:
    rng = np.random.default_rng(14)
    layer = MultiHeadAttention(4, 2, causal=True, rng=0)
    x, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    reference = copy.deepcopy(layer)
    reference(x)
    dx_ref = reference.backward(g)
    names = ["W_qkv", "W_o"] if frozen == "both" else [frozen]
    for name in names:
        getattr(layer, name).requires_grad = False
    report = assert_gradients_ok(layer, inputs=x)
    for result in report.results:
        assert result.status == ("frozen" if result.name in names else "ok")
    layer(x)
    np.testing.assert_array_equal(layer.backward(g), dx_ref)  # dx flows through a frozen layer unchanged
    for name in ("W_qkv", "W_o"):
        if name in names:
            assert not getattr(layer, name).has_grad
        else:
            np.testing.assert_array_equal(getattr(layer, name).grad, getattr(reference, name).grad)
    layer.zero_grad()
    layer.backward_params(g)
    for name in ("W_qkv", "W_o"):
        assert getattr(layer, name).has_grad == (name not in names)


def test_backward_params_overwrites_after_zero_grad_and_accumulates() -> None:
    rng = np.random.default_rng(15)
    a = MultiHeadAttention(6, 3, causal=True, rng=0)
    b = copy.deepcopy(a)
    x, g = rng.normal(size=(2, 4, 6)), rng.normal(size=(2, 4, 6))
    a(x)
    b(x)
    a.backward(g)
    for p in b.parameters():  # stale values: zero_grad only marks them, the backward must overwrite them all
        p.grad[...] = np.nan
    b.zero_grad()
    b.backward_params(g)
    once = [p.grad.copy() for p in a.parameters()]
    for first, pb in zip(once, b.parameters(), strict=True):
        np.testing.assert_array_equal(pb.grad, first)
    b.backward_params(g)  # gradients accumulate, through either method
    a.backward(g)
    for first, pa, pb in zip(once, a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(pa.grad, 2 * first, rtol=1e-15)
        np.testing.assert_allclose(pb.grad, 2 * first, rtol=1e-15)


def test_in_models_a_small_transformer_block_with_cross_entropy() -> None:
    """Embedding -> Residual(attention) -> LayerNorm -> causal attention -> Flatten -> Dense, on token ids;
    every sub-layer also checked alone (check_layers)."""
    rng = np.random.default_rng(16)
    tokens, labels = rng.integers(0, 7, size=(4, 3)), np.array([0, 2, 1, 2])
    model = md.Sequential(md.Embedding(7, 4, rng=0), md.Residual(MultiHeadAttention(4, 2, rng=1)), md.LayerNorm(4),
                          MultiHeadAttention(4, 2, causal=True, bias=False, rng=2), md.Flatten(),
                          md.Dense(12, 3, rng=3))
    report = assert_gradients_ok(model, inputs=tokens, loss=md.CrossEntropyLoss(), targets=labels, check_layers=True)
    assert {"0.W", "1.block.W_qkv", "1.block.W_o", "2.gamma", "2.beta", "3.W_qkv", "3.W_o", "5.W"} <= \
        {r.name for r in report.results}
    first = md.Sequential(MultiHeadAttention(4, 2, rng=4), md.Flatten(), md.Dense(12, 3, rng=5))  # backward_params
    assert_gradients_ok(first, inputs=rng.normal(size=(4, 3, 4)), loss=md.CrossEntropyLoss(), targets=labels)


def test_fit_learns_which_position_holds_the_marker() -> None:
    """A smoke test of the training path (backward_params of a first layer, float32, Adam): feature 0 marks
    one of 4 positions, and the class is the sign of that position's feature 1 -- a lookup by content,
    which the same head without the attention layer (a linear model of the sequence) cannot learn."""
    rng = np.random.default_rng(17)
    N, T = 256, 4
    x = np.zeros((N, T, 4), dtype=np.float32)
    where = rng.integers(0, T, size=N)
    x[np.arange(N), where, 0] = 1.0
    x[:, :, 1] = rng.normal(size=(N, T))
    y = (x[np.arange(N), where, 1] > 0).astype(np.int64)
    final = {}
    for attention in (True, False):
        front = [MultiHeadAttention(4, 2, rng=0, dtype=np.float32)] if attention else []
        model = md.Sequential(*front, md.Flatten(), md.Dense(4 * T, 2, rng=1, dtype=np.float32))
        history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.03),
                            epochs=20, batch_size=32, metrics=["accuracy"], rng=0, verbose=0)
        final[attention] = history.history["loss"][-1] / history.history["loss"][0], history.history["accuracy"][-1]
    assert final[True][0] < 0.1 and final[True][1] > 0.95
    assert final[False][0] > 0.5 and final[False][1] < 0.8


# ---------------------------------------------------------------------------------- PyTorch
def torch_module(torch: Any, layer: MultiHeadAttention, dtype: Any) -> Any:
    """A torch nn.MultiheadAttention holding the layer's weights, through the PyTorch-shaped views."""
    module = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, batch_first=True, bias=layer.bias,
                                         dtype=dtype)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.from_numpy(layer.in_proj_weight.copy()))
        module.out_proj.weight.copy_(torch.from_numpy(layer.out_proj_weight.copy()))
        if layer.in_proj_bias is not None and layer.out_proj_bias is not None:
            module.in_proj_bias.copy_(torch.from_numpy(layer.in_proj_bias.copy()))
            module.out_proj.bias.copy_(torch.from_numpy(layer.out_proj_bias.copy()))
    return module


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_against_pytorch(causal: bool, bias: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    N, T, E, H = 3, 6, 8, 2
    x = rng.normal(size=(N, T, E))
    g = rng.normal(size=(N, T, E))
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-12, 1e-14),
                                           (np.float32, torch.float32, 1e-5, 2e-6)]:
        ours = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=19, dtype=dtype)
        ours.W_qkv.data[...] = rng.normal(size=ours.W_qkv.shape) * 0.5  # larger than the init: peaked softmaxes
        if bias:
            ours.W_o.data[0] = rng.normal(size=E)  # PyTorch's init zeroes the biases; make them count
        theirs = torch_module(torch, ours, torch_dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
        out, weights = theirs(xt, xt, xt, need_weights=False, attn_mask=mask)
        assert weights is None
        out.backward(torch.tensor(g.astype(dtype)))
        y = ours(x.astype(dtype))
        assert y.dtype == dtype
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        dx = ours.backward(g.astype(dtype))
        assert dx.dtype == ours.W_qkv.grad.dtype == ours.W_o.grad.dtype == dtype
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
        rows_in, b_in = split(ours.W_qkv.grad, bias)
        rows_out, b_out = split(ours.W_o.grad, bias)
        np.testing.assert_allclose(rows_in, theirs.in_proj_weight.grad.numpy().T, rtol=rtol, atol=atol)
        np.testing.assert_allclose(rows_out, theirs.out_proj.weight.grad.numpy().T, rtol=rtol, atol=atol)
        if bias:
            np.testing.assert_allclose(b_in, theirs.in_proj_bias.grad.numpy(), rtol=rtol, atol=atol)
            np.testing.assert_allclose(b_out, theirs.out_proj.bias.grad.numpy(), rtol=rtol, atol=atol)
        # and back: a layer made from the torch module's arrays is the same layer
        arrays = [theirs.in_proj_weight, theirs.out_proj.weight] + \
            ([theirs.in_proj_bias, theirs.out_proj.bias] if bias else [])
        w_in, w_out, *biases = (a.detach().numpy() for a in arrays)
        back = MultiHeadAttention.from_projections(w_in, w_out, H, *biases, causal=causal)
        assert back.W_qkv.dtype == dtype and back.bias == bias and back.causal == causal
        np.testing.assert_array_equal(back.W_qkv.data, ours.W_qkv.data)
        np.testing.assert_array_equal(back.W_o.data, ours.W_o.data)


def test_default_init_has_pytorchs_distribution() -> None:
    """PyTorch zeroes both biases, draws in_proj_weight Glorot-uniform over its (3E, E) shape and
    out_proj.weight U(+-1/sqrt(E)): the largest |entry| of both libraries' draws sits just under the same bound."""
    torch = pytest.importorskip("torch")
    E = 64
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, 4, batch_first=True, dtype=torch.float64)
    ours = MultiHeadAttention(E, 4, rng=0)
    assert not theirs.in_proj_bias.detach().numpy().any() and not ours.in_proj_bias.any()  # type: ignore[union-attr]
    assert not theirs.out_proj.bias.detach().numpy().any() and not ours.out_proj_bias.any()  # type: ignore[union-attr]
    for mine, their, bound in [(ours.in_proj_weight, theirs.in_proj_weight, math.sqrt(6 / (4 * E))),
                               (ours.out_proj_weight, theirs.out_proj.weight, 1 / math.sqrt(E))]:
        for values in (mine, their.detach().numpy()):
            assert 0.99 * bound < np.abs(values).max() <= bound
            assert abs(values.std() - bound / math.sqrt(3)) < 0.03 * bound  # U(-b, b) has std b/sqrt(3)


# ---------------------------------------------------------------------------------- PyTorch's layout
def test_pytorch_shaped_views_and_from_projections() -> None:
    E, H = 6, 3
    layer = MultiHeadAttention(E, H, rng=20)
    assert layer.in_proj_weight.shape == (3 * E, E) and layer.out_proj_weight.shape == (E, E)
    assert layer.in_proj_bias is not None and layer.in_proj_bias.shape == (3 * E,)
    assert layer.out_proj_bias is not None and layer.out_proj_bias.shape == (E,)
    np.testing.assert_array_equal(layer.in_proj_weight, layer.W_qkv.data[1:].T)
    np.testing.assert_array_equal(layer.out_proj_weight, layer.W_o.data[1:].T)
    layer.in_proj_weight[2, 5] = 7.0  # views: writing them writes the parameters
    layer.out_proj_bias[1] = -3.0
    assert layer.W_qkv.data[6, 2] == 7.0 and layer.W_o.data[0, 1] == -3.0
    copy_ = MultiHeadAttention.from_projections(layer.in_proj_weight, layer.out_proj_weight, H,
                                                layer.in_proj_bias, layer.out_proj_bias, causal=True)
    assert copy_.causal and copy_.bias and copy_.num_heads == H
    np.testing.assert_array_equal(copy_.W_qkv.data, layer.W_qkv.data)
    np.testing.assert_array_equal(copy_.W_o.data, layer.W_o.data)
    bare = MultiHeadAttention(E, H, bias=False, rng=21)
    assert bare.in_proj_bias is None and bare.out_proj_bias is None
    again = MultiHeadAttention.from_projections(bare.in_proj_weight, bare.out_proj_weight, H)
    assert not again.bias
    np.testing.assert_array_equal(again.W_qkv.data, bare.W_qkv.data)
    small = MultiHeadAttention.from_projections(bare.in_proj_weight.astype(np.float32),
                                                bare.out_proj_weight.astype(np.float32), H)
    assert small.W_qkv.dtype == small.W_o.dtype == np.float32  # the dtype of the arrays given
    ints = MultiHeadAttention.from_projections(np.ones((6, 2), dtype=np.int64), np.eye(2, dtype=np.int64), 1)
    assert ints.W_qkv.dtype == np.float64
    assert MultiHeadAttention.from_projections(bare.in_proj_weight, bare.out_proj_weight, H,
                                               dtype=np.float32).W_o.dtype == np.float32


@pytest.mark.parametrize("args, error, pattern", [
    ((np.ones((6, 3)), np.eye(3), 1), md.ShapeError, r"expected in_proj_weight of shape \(3\*E, E\), got \(6, 3\)"),
    ((np.ones((9,)), np.eye(3), 1), md.ShapeError, r"expected in_proj_weight of shape \(3\*E, E\), got \(9,\)"),
    ((np.ones((9, 3)), np.eye(2), 1), md.ShapeError,
     r"expected out_proj_weight of shape \(3, 3\) \(E = 3 from in_proj_weight\), got \(2, 2\)"),
    ((np.ones((9, 3)), np.eye(3), 1, np.ones(9)), ValueError,
     "give both in_proj_bias and out_proj_bias \\(bias=True\\) or neither"),
    ((np.ones((9, 3)), np.eye(3), 1, np.ones(8), np.ones(3)), md.ShapeError,
     r"expected in_proj_bias of shape \(9,\), got \(8,\)"),
    ((np.ones((9, 3)), np.eye(3), 1, np.ones(9), np.ones((1, 3))), md.ShapeError,
     r"expected out_proj_bias of shape \(3,\), got \(1, 3\)"),
    ((np.ones((9, 3), complex), np.eye(3), 1), md.DTypeError,
     "in_proj_weight must hold real numbers, got dtype complex"),
    ((np.ones((9, 3)), np.full((3, 3), "1"), 1), md.DTypeError,
     "out_proj_weight must hold real numbers, got dtype <U1"),
    ((np.ones((9, 3)), "eye", 1), md.DTypeError, "expected out_proj_weight as a numpy array, got str"),
    ((np.ones((9, 3)), np.eye(3), 2), ValueError, r"embed_dim \(3\) must be divisible by num_heads \(2\)"),
])
def test_from_projections_refuses_wrong_arrays(args: tuple[Any, ...], error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        MultiHeadAttention.from_projections(*args)


# ---------------------------------------------------------------------------------- dtypes, state, shapes
def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(22)
    layer = MultiHeadAttention(6, 2, causal=True, rng=0, dtype=np.float32)
    assert layer.W_qkv.dtype == layer.W_o.dtype == np.float32
    x = rng.normal(size=(2, 5, 6)).astype(np.float32)
    g = rng.normal(size=(2, 5, 6)).astype(np.float32)
    y = layer(x)
    assert layer._cache is not None and all(a.dtype == np.float32 for a in layer._cache if a is not None)
    dx = layer.backward(g)
    assert y.dtype == dx.dtype == layer.W_qkv.grad.dtype == layer.W_o.grad.dtype == np.float32
    layer.backward_params(g)
    assert layer.W_qkv.grad.dtype == layer.W_o.grad.dtype == np.float32
    wide = MultiHeadAttention(6, 2, causal=True, W_qkv=layer.W_qkv.data, W_o=layer.W_o.data)  # same weights, float64
    np.testing.assert_allclose(y, wide(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, wide.backward(g.astype(np.float64)), rtol=1e-4, atol=1e-5)
    with pytest.raises(md.DTypeError, match=r"expected grad_output of dtype float32, got float64"):
        layer.backward(g.astype(np.float64))


def test_state_dict_round_trip_astype_and_repr(tmp_path: pathlib.Path) -> None:
    layer = MultiHeadAttention(6, 3, causal=True, rng=0)
    x = np.random.default_rng(23).normal(size=(2, 4, 6))
    path = tmp_path / "attention.ckpt"
    md.save({"model": layer.state_dict()}, path)
    other = MultiHeadAttention(6, 3, causal=True, rng=1)
    other.load_state_dict(md.load(path)["model"])
    assert list(other.state_dict()) == ["W_qkv", "W_o"]
    assert states_equal(other.state_dict(), layer.state_dict())
    np.testing.assert_array_equal(other(x), layer(x))
    with pytest.raises(md.StateDictError, match=r"'W_qkv': expected shape \(7, 18\), got \(5, 12\)"):
        MultiHeadAttention(6, 3).load_state_dict(MultiHeadAttention(4, 2).state_dict())
    with pytest.raises(md.StateDictError, match=r"'W_qkv': expected shape \(7, 18\), got \(6, 18\)"):
        MultiHeadAttention(6, 3).load_state_dict(MultiHeadAttention(6, 3, bias=False).state_dict())
    half = copy.deepcopy(layer)
    half.astype(np.float32)
    assert half.W_qkv.dtype == half.W_o.dtype == np.float32
    np.testing.assert_allclose(half(x.astype(np.float32)), layer(x), rtol=1e-5, atol=1e-6)
    assert repr(MultiHeadAttention(6, 3)) == "MultiHeadAttention(6, num_heads=3)"
    assert repr(layer) == "MultiHeadAttention(6, num_heads=3, causal=True)"
    assert repr(MultiHeadAttention(6, 1, bias=False)) == "MultiHeadAttention(6, num_heads=1, bias=False)"


def test_parameter_shapes_init_and_exact_values() -> None:
    E = 4
    layer = MultiHeadAttention(E, 2, rng=3)
    assert layer.W_qkv.shape == (E + 1, 3 * E) and layer.W_o.shape == (E + 1, E) and layer.head_dim == 2
    no_bias = MultiHeadAttention(E, 2, bias=False, rng=3)
    assert no_bias.W_qkv.shape == (E, 3 * E) and no_bias.W_o.shape == (E, E)
    # the exact draws: W_qkv's weights first, Glorot over (E, 3E), then W_o's, U(+-1/sqrt(E)); zero biases
    draw = np.random.default_rng(3)
    glorot, uniform = math.sqrt(6 / (E + 3 * E)), 1 / math.sqrt(E)
    np.testing.assert_array_equal(layer.W_qkv.data[1:], draw.uniform(-glorot, glorot, size=(E, 3 * E)))
    np.testing.assert_array_equal(layer.W_o.data[1:], draw.uniform(-uniform, uniform, size=(E, E)))
    assert not layer.W_qkv.data[0].any() and not layer.W_o.data[0].any()
    draw = np.random.default_rng(3)
    np.testing.assert_array_equal(no_bias.W_qkv.data, draw.uniform(-glorot, glorot, size=(E, 3 * E)))
    glorot_o = math.sqrt(6 / (2 * E))
    other = MultiHeadAttention(E, 2, init="glorot", rng=3)
    draw = np.random.default_rng(3)
    np.testing.assert_array_equal(other.W_qkv.data[1:], draw.uniform(-glorot, glorot, size=(E, 3 * E)))
    np.testing.assert_array_equal(other.W_o.data[1:], draw.uniform(-glorot_o, glorot_o, size=(E, E)))
    he = MultiHeadAttention(E, 2, init="he", rng=3)
    draw = np.random.default_rng(3)
    np.testing.assert_array_equal(he.W_qkv.data[1:], draw.normal(0, math.sqrt(2 / E), size=(E, 3 * E)))
    assert not he.W_qkv.data[0].any()
    lecun = MultiHeadAttention(E, 2, init="lecun", rng=3)  # (for SELU networks, as Dense's)
    draw = np.random.default_rng(3)
    np.testing.assert_array_equal(lecun.W_qkv.data[1:], draw.normal(0, math.sqrt(1 / E), size=(E, 3 * E)))
    np.testing.assert_array_equal(lecun.W_o.data[1:], draw.normal(0, math.sqrt(1 / E), size=(E, E)))
    zeros = MultiHeadAttention(E, 2, init="zeros", rng=3)
    assert not zeros.W_qkv.data.any() and not zeros.W_o.data.any()
    assert not np.array_equal(MultiHeadAttention(E, 2, rng=4).W_qkv.data, layer.W_qkv.data)
    W_qkv = np.arange((E + 1) * 3 * E, dtype=float).reshape(E + 1, 3 * E) / 100
    exact = MultiHeadAttention(E, 2, W_qkv=W_qkv, rng=5)
    np.testing.assert_array_equal(exact.W_qkv.data, W_qkv)
    assert exact.W_qkv.data is not W_qkv
    draw = np.random.default_rng(5)  # W_o alone is drawn: the generator's first numbers
    np.testing.assert_array_equal(exact.W_o.data[1:], draw.uniform(-uniform, uniform, size=(E, E)))
    given = MultiHeadAttention(E, 2, W_qkv=W_qkv, W_o=exact.W_o.data.tolist(), dtype=np.float32)
    assert given.W_o.dtype == np.float32
    np.testing.assert_array_equal(given.W_o.data, exact.W_o.data.astype(np.float32))


def test_one_sample_one_step_an_empty_batch_and_inputs_left_alone() -> None:
    rng = np.random.default_rng(24)
    layer = MultiHeadAttention(4, 2, causal=True, rng=0)
    one = rng.normal(size=(1, 1, 4))
    assert layer(one).shape == (1, 1, 4)
    assert layer.backward(np.ones((1, 1, 4))).shape == (1, 1, 4)
    assert layer(np.zeros((0, 3, 4))).shape == (0, 3, 4)
    assert layer.backward(np.zeros((0, 3, 4))).shape == (0, 3, 4)
    x, g = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4))
    x0, g0 = x.copy(), g.copy()
    y = layer(x)
    dx = layer.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    # a non-contiguous view (time-major memory) and a nested list are read like any input
    np.testing.assert_array_equal(layer(np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)), y)
    np.testing.assert_array_equal(layer(x.tolist()), y)
    layer(x)
    np.testing.assert_allclose(layer.backward(np.asfortranarray(g)), dx, rtol=1e-15)


def test_summary_uses_the_input_shape_hint() -> None:
    model = md.Sequential(MultiHeadAttention(8, 2, rng=0), md.Flatten(), md.Dense(24, 4, rng=1))
    table = str(md.summarize(model))
    assert "(None, 3, 8)" in table and "(None, 24)" in table and "MultiHeadAttention" in table
    assert md.summarize(model).trainable == 9 * 24 + 9 * 8 + 25 * 4


# ---------------------------------------------------------------------------------- errors
WHO = r"MultiHeadAttention\(4, num_heads=2\)"


@pytest.mark.parametrize("x, error, pattern", [
    (np.ones((2, 4)), md.ShapeError, r"expected a 3-D input of shape \(N, T, 4\), got shape \(2, 4\)"),
    (np.ones((2, 3, 4, 1)), md.ShapeError, r"expected a 3-D input of shape \(N, T, 4\), got shape \(2, 3, 4, 1\)"),
    (np.ones((2, 3, 5)), md.ShapeError, r"expected input of shape \(N, T, 4\), got shape \(2, 3, 5\)"),
    (np.ones((2, 0, 4)), md.ShapeError, r"expected at least one time step in an input of shape \(N, T, 4\), "
                                         r"got shape \(2, 0, 4\)"),
    (np.ones((2, 3, 4), dtype=np.int64), md.DTypeError, "expected a floating-point input, got dtype int64"),
    (np.ones((2, 3, 4), dtype=np.float32), md.DTypeError, r"input dtype float32 does not match the layer's "
                                                           r"parameters \(float64\)"),
    ("not an array", md.DTypeError, "expected input as a numpy array, got str"),
    (np.where(np.arange(24).reshape(2, 3, 4) == 17, np.nan, 1.0), md.NonFiniteError,
     r"input holds 1 NaN/inf value\(s\), the first at index \(1, 1, 1\) \(nan\)"),
    (np.where(np.arange(24).reshape(2, 3, 4) == 6, -np.inf, 1.0), md.NonFiniteError,
     r"input holds 1 NaN/inf value\(s\), the first at index \(0, 1, 2\) \(-inf\)"),
])
def test_bad_input_is_refused_and_changes_nothing(x: Any, error: type, pattern: str) -> None:
    layer = MultiHeadAttention(4, 2, causal=True, rng=0)
    good = np.random.default_rng(25).normal(size=(2, 5, 4))
    y = layer(good).copy()
    dx = layer.backward(np.ones((2, 5, 4)))
    before = state_of(layer)
    with pytest.raises(error, match=rf"^{WHO}: {pattern}"):
        layer(x)
    assert_same_state(state_of(layer), before)
    layer.zero_grad()
    np.testing.assert_array_equal(layer.backward(np.ones((2, 5, 4))), dx)  # the last good pass, intact
    np.testing.assert_array_equal(layer(good), y)


def test_bad_grad_output_and_backward_before_forward() -> None:
    layer = MultiHeadAttention(4, 2, rng=0)
    for method in (layer.backward, layer.backward_params):
        with pytest.raises(md.BackwardBeforeForwardError, match=r"MultiHeadAttention\.backward called before forward"):
            method(np.ones((2, 3, 4)))
    layer(np.ones((2, 3, 4)))
    before = state_of(layer)
    cases: list[tuple[Any, type, str]] = [
        (np.ones((2, 4)), md.ShapeError, r"expected grad_output of shape \(2, 3, 4\), got \(2, 4\)"),
        (np.ones((2, 4, 4)), md.ShapeError, r"expected grad_output of shape \(2, 3, 4\), got \(2, 4, 4\)"),
        (np.ones((2, 3, 4), dtype=np.float32), md.DTypeError, "expected grad_output of dtype float64, got float32"),
        ([[[1.0] * 4] * 3] * 2, md.DTypeError, "expected grad_output as a numpy array, got list"),
    ]
    for bad, error, pattern in cases:
        for method in (layer.backward, layer.backward_params):
            with pytest.raises(error, match=rf"^{WHO}\.backward: {pattern}"):
                method(bad)
            assert_same_state(state_of(layer), before)


def test_constructor_arguments_are_checked() -> None:
    name = "MultiHeadAttention"
    with pytest.raises(ValueError, match=rf"{name}: embed_dim must be a positive int, got 0"):
        MultiHeadAttention(0, 1)
    with pytest.raises(ValueError, match=rf"{name}: num_heads must be a positive int, got 2.5"):
        MultiHeadAttention(4, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"{name}: num_heads must be a positive int, got True"):
        MultiHeadAttention(4, True)
    with pytest.raises(ValueError, match=re.escape(
            f"{name}: embed_dim (10) must be divisible by num_heads (3): every head takes embed_dim / num_heads "
            "features")):
        MultiHeadAttention(10, 3)
    with pytest.raises(TypeError, match=rf"{name}: causal must be True or False, got 'yes'"):
        MultiHeadAttention(4, 2, causal="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"{name}: bias must be True or False, got 1"):
        MultiHeadAttention(4, 2, bias=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"{name}: unknown init scheme 'xavier'; use one of 'uniform', 'glorot', "
                                         "'he', 'lecun', 'zeros'"):
        MultiHeadAttention(4, 2, init="xavier")
    with pytest.raises(md.DTypeError, match=rf"{name}: parameters need a floating dtype"):
        MultiHeadAttention(4, 2, dtype=np.int32)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        MultiHeadAttention(4, 2, rng="seed")  # type: ignore[arg-type]
    who = f"{name}(4, num_heads=2)"
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{who}: expected W_qkv of shape (5, 12) = (1 + embed_dim, 3*embed_dim) (row 0 the bias; column blocks "
            "q, k, v), got (4, 12)")):
        MultiHeadAttention(4, 2, W_qkv=np.zeros((4, 12)))
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{who}: expected W_o of shape (5, 4) = (1 + embed_dim, embed_dim) (row 0 the bias), got (4, 4)")):
        MultiHeadAttention(4, 2, W_o=np.eye(4))
    with pytest.raises(md.ShapeError, match=re.escape(
            f"{who}: expected W_qkv of shape (4, 12) = (embed_dim, 3*embed_dim) (column blocks q, k, v), "
            "got (5, 12)")):
        MultiHeadAttention(4, 2, bias=False, W_qkv=np.zeros((5, 12)))
    W_o = np.eye(4)
    W_o[1, 2] = np.nan
    with pytest.raises(md.NonFiniteError, match=r"W_o holds 1 NaN/inf value\(s\) \(in float64\)"):
        MultiHeadAttention(4, 2, bias=False, W_o=W_o)
    with pytest.raises(md.NonFiniteError, match=r"W_qkv holds 4 NaN/inf value\(s\) \(in float32\)"):
        MultiHeadAttention(4, 2, bias=False, dtype=np.float32, W_qkv=np.full((4, 12), 1e300) * (np.arange(12) == 3))
    with pytest.raises(md.DTypeError, match="W_qkv must hold real numbers, got dtype complex128"):
        MultiHeadAttention(4, 2, bias=False, W_qkv=np.ones((4, 12), complex))
    with pytest.raises(md.DTypeError, match="could not make a numpy array of W_o"):
        MultiHeadAttention(4, 2, W_o=[[1.0], [1.0, 2.0]])


def test_float16_is_refused_and_a_big_endian_dtype_gives_native_parameters() -> None:
    """float16 scores overflow above 65504 into NaN (PyTorch computes them in float32): refused, also after
    astype.  Weights read big-endian (">f4") give a native float32 layer whose backward takes its own output's
    gradient (the dtype compared was ">f4", the output's float32)."""
    with pytest.raises(md.DTypeError, match=r"MultiHeadAttention\(4, num_heads=2\): float16 is not supported"):
        MultiHeadAttention(4, 2, dtype=np.float16)
    layer = MultiHeadAttention(4, 2, rng=0)
    with pytest.raises(md.DTypeError, match=r"MultiHeadAttention.astype\(float16\): .*float16 is not supported.*"
                                            r"nothing was cast"):
        layer.astype(np.float16)  # (it was accepted, and refused only at the next forward)
    assert layer.W_qkv.data.dtype == np.float64
    model = md.Sequential(md.Dense(4, 4, rng=0), md.ReLU(), layer)
    with pytest.raises(md.DTypeError, match=r"Sequential.astype\(float16\): layer 2: MultiHeadAttention"):
        model.astype(np.float16)
    assert model[0].W.data.dtype == np.float64  # nothing cast, not even the layers before it
    rng = np.random.default_rng(0)
    w_in, w_out = rng.normal(size=(12, 4)).astype(">f4"), rng.normal(size=(4, 4)).astype(">f4")
    layer = MultiHeadAttention.from_projections(w_in, w_out, 2)
    assert layer.W_qkv.data.dtype == np.float32 and layer.W_qkv.data.dtype.isnative
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    y = layer(x)
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert md.Dense(2, 3, dtype=">f8").W.data.dtype.isnative


# ---------------------------------------------------------------------------------------------- dropout
@pytest.mark.parametrize(("p", "causal", "seed"), [(0.2, False, 0), (0.5, True, 1), (0.7, False, 2)])
def test_attention_dropout_is_checked_and_off_in_eval(p: float, causal: bool, seed: int) -> None:
    """O = (P * M) V with M = (u >= p) / (1 - p) per attention weight, in training; the checker replays the
    layer's registered generator, so the back-pass through the mask is proven like the rest."""
    layer = MultiHeadAttention(6, 3, causal=causal, dropout=p, rng=seed)
    plain = MultiHeadAttention(6, 3, causal=causal, rng=seed)
    for a, b in zip(layer.parameters(), plain.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)  # the weights do not depend on the dropout
    x = np.random.default_rng(seed).normal(size=(2, 5, 6))
    assert_gradients_ok(layer, inputs=x, seed=seed)
    layer(x)
    mask = layer._cache[7]
    assert mask.shape == (2, 3, 5, 5) and set(np.unique(mask)) <= {0.0, 1 / (1 - p)}
    np.testing.assert_allclose(layer.eval()(x), plain.eval()(x), rtol=1e-14, atol=1e-15)
    assert layer._cache[7] is None
    assert f"dropout={p}" in repr(layer) and [name for name, _ in layer.named_generators()] == ["rng"]


def test_attention_dropout_of_one_leaves_the_output_bias_and_is_refused_out_of_range() -> None:
    layer = MultiHeadAttention(4, 2, dropout=1.0, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    y = layer(x)
    np.testing.assert_allclose(y, np.broadcast_to(layer.W_o.data[0], y.shape), rtol=1e-15)
    layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(layer.W_qkv.grad, 0)
    for bad, error in ((1.5, ValueError), (-0.1, ValueError), (True, TypeError), ("0.1", TypeError)):
        with pytest.raises(error, match=r"MultiHeadAttention: dropout \(the drop probability\)"):
            MultiHeadAttention(4, 2, dropout=bad)  # type: ignore[arg-type]


def test_attention_dropout_settings_are_checked_first_and_its_generator_always_kept() -> None:
    """A bad dropout consumed the caller's generator; the generator existed only for dropout > 0, so the
    saved keys depended on it and setting dropout later failed (found by a review)."""
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(4, 2, dropout=1.5, rng=rng)
    assert rng.bit_generator.state == state
    plain, dropping = MultiHeadAttention(4, 2, rng=0), MultiHeadAttention(4, 2, dropout=0.5, rng=0)
    assert plain.state_dict(generators=True).keys() == dropping.state_dict(generators=True).keys()
    plain.load_state_dict(dropping.state_dict(generators=True))
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    plain.dropout = 0.5
    np.testing.assert_array_equal(plain(x), dropping(x))  # the same weights and the same dropout stream
    with pytest.raises(ValueError, match=r"MultiHeadAttention: dropout \(the drop probability\) must be in \[0, 1\]"):
        plain.dropout = 1.5
    assert plain.dropout == 0.5


def test_causal_is_checked_when_set_and_a_boolean_3d_mask_is_not_taken_for_a_memory() -> None:
    """``layer.causal = "no"`` masked the future (a truthy string); a PyTorch-style (N, T, T) boolean
    attn_mask in the pair was read as a memory and the message advised converting it to float (which
    then ran as cross-attention on the mask)."""
    layer = MultiHeadAttention(4, 2, rng=0)
    with pytest.raises(TypeError, match="MultiHeadAttention: causal must be True or False, got 'no'"):
        layer.causal = "no"  # type: ignore[assignment]
    assert layer.causal is False
    layer.causal = True
    x = np.random.default_rng(0).normal(size=(2, 4, 4))
    np.testing.assert_array_equal(layer(x), MultiHeadAttention(4, 2, causal=True, rng=0)(x))
    mask = np.triu(np.ones((4, 4), bool), 1)[None].repeat(2, 0)
    with pytest.raises(md.DTypeError, match=r"3-D array of booleans \(2, 4, 4\): a mask here is a key-padding mask "
                                            r"\(N, S\); PyTorch's attn_mask is a setting of the layer, "
                                            r"layer.attn_mask = \(T, S\) or \(2, T, S\)"):
        MultiHeadAttention(4, 2, rng=0)((x, mask))
