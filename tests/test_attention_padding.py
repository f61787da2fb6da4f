"""A key padding mask for MultiHeadAttention and TransformerEncoderLayer: ``layer((x, key_padding_mask))``.

PyTorch's ``key_padding_mask`` to round-off (a sample with no key left included: weights 0, as PyTorch's
safe softmax), a padded sequence equal to the same sequence cut short, the gradient checker on the pair,
and a bad mask refused with the last pass kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import MultiHeadAttention, TransformerEncoderLayer
from minidl.testing import assert_gradients_ok


def padded(N: int, T: int, rng: np.random.Generator, empty: bool = False) -> np.ndarray:
    """A right-padded mask: sample n keeps its first lengths[n] positions (lengths >= 1 unless ``empty``)."""
    lengths = rng.integers(0 if empty else 1, T + 1, size=N)
    if empty:
        lengths[0] = 0
    return np.arange(T)[None, :] >= lengths[:, None]


def attention(E: int, H: int, causal: bool, bias: bool, seed: int, dtype: Any = np.float64) -> MultiHeadAttention:
    layer = MultiHeadAttention(E, H, causal=causal, bias=bias, rng=seed, dtype=dtype)
    if bias:  # PyTorch's init zeroes the biases; make them count
        rng = np.random.default_rng(seed + 100)
        layer.W_qkv.data[0] = rng.normal(size=3 * E)
        layer.W_o.data[0] = rng.normal(size=E)
    return layer


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", ["right", "random", "empty sample"])
def test_against_pytorch(causal: bool, bias: bool, layout: str) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_attention import torch_module

    rng = np.random.default_rng(5)
    N, T, E, H = 3, 6, 8, 2
    x, g = rng.normal(size=(N, T, E)), rng.normal(size=(N, T, E))
    mask = rng.random((N, T)) < 0.5 if layout == "random" else padded(N, T, rng, empty=layout == "empty sample")
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-12, 1e-13),
                                           (np.float32, torch.float32, 1e-5, 2e-6)]:
        ours = attention(E, H, causal, bias, 7, dtype)
        theirs = torch_module(torch, ours, torch_dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
        out, _ = theirs(xt, xt, xt, key_padding_mask=torch.tensor(mask), attn_mask=future, need_weights=False)
        out.backward(torch.tensor(g.astype(dtype)))
        y = ours((x.astype(dtype), mask))
        assert y.dtype == dtype and np.isfinite(out.detach().numpy()).all()
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        dx, dmask = ours.backward(g.astype(dtype))
        assert dmask is None and dx.dtype == dtype
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
        W = ours.W_qkv.grad[1:] if bias else ours.W_qkv.grad
        np.testing.assert_allclose(W.T, theirs.in_proj_weight.grad.numpy(), rtol=rtol, atol=atol)
        W = ours.W_o.grad[1:] if bias else ours.W_o.grad
        np.testing.assert_allclose(W.T, theirs.out_proj.weight.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_padded_sequence_is_the_sequence_cut_short(causal: bool, seed: int) -> None:
    """Row by row, the real positions of a padded batch give what the unpadded sequence gives alone, whatever
    the padding holds; their gradients too, and the padding gets none through the keys and values."""
    rng = np.random.default_rng(seed)
    N, T, E = 4, 7, 6
    layer = attention(E, 3, causal, True, seed)
    alone = attention(E, 3, causal, True, seed)
    x = rng.normal(size=(N, T, E))
    mask = padded(N, T, rng)
    g = rng.normal(size=x.shape) * ~mask[:, :, None]  # no upstream gradient at the padding's own outputs
    y = layer((x, mask))
    dx, _ = layer.backward(g)
    dW = layer.W_qkv.grad.copy()
    expected_dW = np.zeros_like(dW)
    for n in range(N):
        L = int((~mask[n]).sum())
        y_n = alone(x[n:n + 1, :L])
        np.testing.assert_allclose(y[n, :L], y_n[0], rtol=1e-12, atol=1e-13)
        alone.zero_grad()
        np.testing.assert_allclose(dx[n, :L], alone.backward(g[n:n + 1, :L])[0], rtol=1e-11, atol=1e-13)
        expected_dW += alone.W_qkv.grad
        np.testing.assert_array_equal(dx[n, L:], 0.0)  # the padding reaches no real position
    np.testing.assert_allclose(dW, expected_dW, rtol=1e-11, atol=1e-13)
    # whatever the padding holds, the real positions' outputs do not move
    noisy = np.where(mask[:, :, None], rng.normal(scale=100.0, size=x.shape), x)
    np.testing.assert_allclose(layer((noisy, mask))[~mask], y[~mask], rtol=1e-13, atol=1e-14)


def test_a_query_that_sees_no_key_gets_the_output_bias_and_no_gradient() -> None:
    rng = np.random.default_rng(3)
    layer = attention(4, 2, False, True, 3)
    x = rng.normal(size=(2, 3, 4))
    mask = np.array([[True, True, True], [False, True, False]])
    y = layer((x, mask))
    np.testing.assert_array_equal(y[0], np.broadcast_to(layer.W_o.data[0], (3, 4)))
    dx, _ = layer.backward(rng.normal(size=y.shape))
    np.testing.assert_array_equal(dx[0], 0.0)
    assert np.isfinite(dx).all() and np.abs(dx[1]).max() > 0
    # causal with left padding: the first query sees only a padded key
    causal = attention(4, 2, True, True, 3)
    y = causal((x, np.array([[True, False, False], [False, False, False]])))
    np.testing.assert_array_equal(y[0, 0], causal.W_o.data[0])
    assert np.isfinite(y).all()


@pytest.mark.parametrize(("shape", "causal", "bias", "seed"), [
    ((2, 3, 2, 2), False, True, 0), ((3, 4, 1, 3), True, True, 1), ((1, 5, 2, 1), False, False, 2),
    ((2, 2, 3, 2), True, False, 3),
])
def test_gradient_checker_on_the_pair(shape: tuple[int, int, int, int], causal: bool, bias: bool,
                                      seed: int) -> None:
    N, T, H, d = shape
    rng = np.random.default_rng(seed)
    layer = attention(H * d, H, causal, bias, seed)
    mask = rng.random((N, T)) < 0.4
    report = assert_gradients_ok(layer, inputs=(rng.normal(size=(N, T, H * d)), mask), seed=seed)
    assert [r.name for r in report.results] == ["input[0]", "W_qkv", "W_o"]


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_with_attention_dropout(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = MultiHeadAttention(4, 2, dropout=0.3, rng=seed)
    assert layer.training
    assert_gradients_ok(layer, inputs=(rng.normal(size=(3, 4, 4)), padded(3, 4, rng, empty=True)), seed=seed)


@pytest.mark.parametrize("mask, error, pattern", [
    (np.zeros((2, 3), dtype=np.int64), md.DTypeError, r"key_padding_mask as a numpy array of booleans of shape "
                                                      r"\(N, T\) = \(2, 3\).*got dtype int64.*libraries disagree"),
    (np.zeros((2, 3)), md.DTypeError, "got dtype float64"),
    ([[True] * 3] * 2, md.DTypeError, r"mixes numpy arrays with other values \(item 1: list\)"),
    (np.zeros((2, 4), dtype=bool), md.ShapeError, r"expected key_padding_mask of shape \(N, T\) = \(2, 3\).*"
                                                  r"got \(2, 4\)"),
    (np.zeros((3,), dtype=bool), md.ShapeError, r"got \(3,\)"),
])
@pytest.mark.parametrize("block", [False, True])
def test_a_bad_mask_is_refused_and_the_last_pass_kept(mask: Any, error: type, pattern: str, block: bool) -> None:
    rng = np.random.default_rng(0)
    layer: md.Layer = TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=0) if block else attention(4, 2, False, True, 0)
    x, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    ok = np.zeros((2, 3), dtype=bool)
    ok[1, 2] = True
    layer((x, ok))
    expected = layer.backward(g)[0]
    with pytest.raises(error, match=pattern):
        layer((x, mask))
    np.testing.assert_array_equal(layer.backward(g)[0], expected)
    with pytest.raises(md.ShapeError, match=r"expected x.* or .*key_padding_mask\), got a tuple of 4"):
        layer((x, ok, ok, ok))


def test_the_backward_follows_the_last_forwards_form() -> None:
    rng = np.random.default_rng(1)
    for layer in (attention(4, 2, True, True, 1), TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=1)):
        x, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
        layer(x)
        plain = layer.backward(g)
        assert isinstance(plain, np.ndarray)
        layer((x, np.zeros((2, 3), dtype=bool)))  # nothing padded: the same numbers, as a pair
        pair = layer.backward(g)
        assert isinstance(pair, tuple) and pair[1] is None
        np.testing.assert_allclose(pair[0], plain, rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------------------- the encoder block
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_block_against_pytorch(norm_first: bool, causal: bool) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_transformer import to_torch

    rng = np.random.default_rng(2)
    layer = TransformerEncoderLayer(8, 2, 12, dropout=0.0, norm_first=norm_first, causal=causal, rng=3)
    module = to_torch(layer, torch).train()  # (train mode: PyTorch's eval fast path zeroes padded outputs)
    x, g = rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8))
    mask = padded(3, 5, rng)
    xt = torch.tensor(x, requires_grad=True)
    future = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None
    yt = module(xt, src_mask=future, src_key_padding_mask=torch.tensor(mask), is_causal=causal)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer((x, mask)), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx, dmask = layer.backward(g)
    assert dmask is None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(layer.self_attn.W_qkv.grad[1:].T, module.self_attn.in_proj_weight.grad.numpy(),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.linear1.W.grad[1:].T, module.linear1.weight.grad.numpy(), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize(("shape", "norm_first", "dropout", "seed"), [
    ((2, 3, 4), False, 0.0, 0), ((3, 4, 4), True, 0.0, 1), ((2, 3, 6), True, 0.3, 2),
])
def test_encoder_block_gradient_checker_on_the_pair(shape: tuple[int, int, int], norm_first: bool, dropout: float,
                                                     seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = TransformerEncoderLayer(shape[2], 2, 5, dropout=dropout, activation="gelu", norm_first=norm_first,
                                    rng=seed)
    report = assert_gradients_ok(layer, inputs=(rng.normal(size=shape), padded(shape[0], shape[1], rng)), seed=seed)
    assert report.results[0].name == "input[0]" and len(report.results) == 9


def test_a_model_trains_on_padded_batches() -> None:
    """Variable-length sequences, padded with large noise: with the mask the model learns the mean of each
    sequence's real tokens; fit batches the sequences and their masks together."""

    class Pooled(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.attn = MultiHeadAttention(4, 2, rng=0)
            self.head = md.Dense(4, 1, rng=1)

        def forward(self, x: Any) -> np.ndarray:
            values, mask = x
            h = self.attn((values, mask)) + values
            keep = ~mask[:, :, None]
            self._scale = keep / keep.sum(axis=1, keepdims=True)
            return self.head((h * self._scale).sum(axis=1))

        def backward(self, grad_output: np.ndarray) -> Any:
            dh = self.head.backward(grad_output)[:, None, :] * self._scale
            return dh + self.attn.backward(dh)[0], None

    rng = np.random.default_rng(0)
    N, T = 256, 6
    mask = padded(N, T, rng)
    x = np.where(mask[:, :, None], rng.normal(scale=50.0, size=(N, T, 4)), rng.normal(size=(N, T, 4)))
    keep = ~mask
    y = ((x[:, :, :1] * keep[:, :, None]).sum(axis=1) / keep.sum(axis=1)[:, None])
    model = Pooled()
    assert_gradients_ok(model, inputs=(x[:3], mask[:3]))
    history = model.fit((x, mask), y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters(), lr=0.02),
                        epochs=30, batch_size=32, rng=0, verbose=0)
    assert history["loss"][-1] < 0.02 * history["loss"][0], history["loss"]
