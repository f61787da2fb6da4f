"""``MultiHeadAttention.attention_weights``: the weights of the last forward, (N, H, T, S), as PyTorch's
``need_weights=True, average_attn_weights=False``; checked by hand, by rebuilding the output from them,
and against PyTorch when it is installed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import MultiHeadAttention


def rebuilt_output(layer: MultiHeadAttention, x: np.ndarray, memory: np.ndarray | None = None) -> np.ndarray:
    """The layer's output recomputed from its weights: per head ``weights @ v``, the heads side by side,
    then the output projection."""
    E, H, d = layer.embed_dim, layer.num_heads, layer.head_dim
    N, T, _ = x.shape
    source = x if memory is None else memory
    w_in = layer.W_qkv.data[1:] if layer.bias else layer.W_qkv.data
    v = source @ w_in[:, 2 * E:] + (layer.W_qkv.data[0, 2 * E:] if layer.bias else 0)
    v = v.reshape(N, source.shape[1], H, d).transpose(0, 2, 1, 3)  # (N, H, S, d)
    heads = (layer.attention_weights @ v).transpose(0, 2, 1, 3).reshape(N, T, E)
    w_out = layer.W_o.data[1:] if layer.bias else layer.W_o.data
    return heads @ w_out + (layer.W_o.data[0] if layer.bias else 0)


def test_one_head_by_hand() -> None:
    """E = H = d = 1: the score of query t and key j is q_t k_j, the weights its softmax over j."""
    bq, bk, wq, wk = 0.1, -0.2, 0.5, -0.7
    layer = MultiHeadAttention(1, 1, W_qkv=[[bq, bk, 0.3], [wq, wk, 1.1]], W_o=[[0.05], [-0.9]])
    xs = [0.7, -1.3, 2.0]
    layer(np.array([[[v] for v in xs]]))
    q = [bq + wq * v for v in xs]
    k = [bk + wk * v for v in xs]
    expected = [[math.exp(q[t] * k[j]) / sum(math.exp(q[t] * kj) for kj in k) for j in range(3)] for t in range(3)]
    np.testing.assert_allclose(layer.attention_weights, [[expected]], rtol=1e-14)


@pytest.mark.parametrize(("N", "T", "E", "H", "seed"), [(2, 5, 6, 3, 0), (1, 1, 4, 2, 1), (3, 7, 8, 1, 2)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_rows_sum_to_one_the_future_gets_zero_and_they_rebuild_the_output(N: int, T: int, E: int, H: int, seed: int,
                                                                       causal: bool, bias: bool) -> None:
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=seed)
    x = np.random.default_rng(seed).normal(size=(N, T, E))
    y = layer(x)
    weights = layer.attention_weights
    assert weights.shape == (N, H, T, T) and weights.dtype == np.float64
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-14)
    assert (weights >= 0).all()
    if causal:
        assert (weights[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0.0).all()
        assert (weights[..., 0, 0] == 1.0).all()  # the first query sees only itself
    np.testing.assert_allclose(rebuilt_output(layer, x), y, rtol=1e-12, atol=1e-14)


def test_padding_cross_attention_and_a_query_that_sees_nothing() -> None:
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(4, 2, rng=3)
    x, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    padding = np.zeros((2, 5), dtype=bool)
    padding[0, 3:] = True  # sample 0's memory has 3 real positions
    padding[1] = True  # sample 1 has none: its queries see no key
    y = layer((x, memory, padding))
    weights = layer.attention_weights
    assert weights.shape == (2, 2, 3, 5)
    np.testing.assert_array_equal(weights[0, ..., 3:], 0.0)
    np.testing.assert_allclose(weights[0].sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(weights[1], 0.0)  # all-zero weights: the output is the output bias
    np.testing.assert_allclose(rebuilt_output(layer, x, memory), y, rtol=1e-12, atol=1e-14)
    layer(x)  # self-attention again: the property follows the last forward
    assert layer.attention_weights.shape == (2, 2, 3, 3)


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_with_dropout_they_are_the_weights_after_it(p: float) -> None:
    """In training the values are averaged with the dropped and rescaled weights (PyTorch returns
    those); in eval mode they are the softmax itself."""
    layer = MultiHeadAttention(6, 2, dropout=p, rng=4)
    x = np.random.default_rng(4).normal(size=(3, 6, 6))
    y = layer(x)
    weights = layer.attention_weights
    np.testing.assert_allclose(rebuilt_output(layer, x), y, rtol=1e-12, atol=1e-14)
    assert (weights == 0).any()
    layer.eval()(x)
    plain = layer.attention_weights
    kept = weights != 0
    np.testing.assert_allclose(weights[kept], plain[kept] / (1 - p), rtol=1e-14)
    np.testing.assert_allclose(plain.sum(axis=-1), 1.0, rtol=1e-14)


def test_read_only_float32_and_before_any_forward() -> None:
    layer = MultiHeadAttention(4, 2, rng=5, dtype=np.float32)
    with pytest.raises(md.BackwardBeforeForwardError,
                       match=r"MultiHeadAttention\(4, num_heads=2\)\.attention_weights: no forward has run yet"):
        _ = layer.attention_weights
    y = layer(np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32))
    weights = layer.attention_weights
    assert weights.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        weights[0, 0, 0, 0] = 1.0
    layer.backward(np.ones_like(y))  # the backward reads the cache the view shows: still intact
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)


def test_a_refused_input_keeps_the_last_weights() -> None:
    layer = MultiHeadAttention(4, 2, rng=6)
    layer(np.random.default_rng(6).normal(size=(1, 3, 4)))
    before = layer.attention_weights.copy()
    with pytest.raises(md.ShapeError):
        layer(np.zeros((1, 3, 5)))
    np.testing.assert_array_equal(layer.attention_weights, before)


def test_in_a_transformer_block() -> None:
    block = md.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, causal=True, rng=7)
    block(np.random.default_rng(7).normal(size=(2, 4, 8)))
    weights = block.self_attn.attention_weights
    assert weights.shape == (2, 2, 4, 4)
    assert (weights[..., 0, 1:] == 0.0).all()


@pytest.mark.parametrize("form", ["self", "causal", "padding", "cross"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_pytorch(form: str, dtype: Any) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    N, T, S, E, H = 3, 5, 4, 8, 2
    layer = MultiHeadAttention(E, H, causal=form == "causal", rng=8, dtype=dtype)
    layer.W_qkv.data[...] = rng.normal(size=layer.W_qkv.shape) * 0.5  # peaked softmaxes
    module = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64 if dtype == np.float64
                                         else torch.float32)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.from_numpy(layer.in_proj_weight.copy()))
        module.in_proj_bias.copy_(torch.from_numpy(layer.in_proj_bias.copy()))
        module.out_proj.weight.copy_(torch.from_numpy(layer.out_proj_weight.copy()))
        module.out_proj.bias.copy_(torch.from_numpy(layer.out_proj_bias.copy()))
    x = rng.normal(size=(N, T, E)).astype(dtype)
    memory = rng.normal(size=(N, S, E)).astype(dtype)
    padding = np.zeros((N, T), dtype=bool)
    padding[0, 3:] = padding[2, 1:] = True
    xt, mt = torch.from_numpy(x), torch.from_numpy(memory)
    if form == "cross":
        layer((x, memory))
        _, theirs = module(xt, mt, mt, average_attn_weights=False)
        _, mean = module(xt, mt, mt)
    else:
        extra: dict[str, Any] = {}
        if form == "causal":
            extra["attn_mask"] = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        if form == "padding":
            extra["key_padding_mask"] = torch.from_numpy(padding)
        layer((x, padding) if form == "padding" else x)
        _, theirs = module(xt, xt, xt, average_attn_weights=False, **extra)
        _, mean = module(xt, xt, xt, **extra)
    rtol, atol = (1e-12, 1e-15) if dtype == np.float64 else (1e-5, 1e-7)
    np.testing.assert_allclose(layer.attention_weights, theirs.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.attention_weights.mean(axis=1), mean.detach().numpy(), rtol=rtol, atol=atol)
