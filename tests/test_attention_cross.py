"""Cross-attention: ``MultiHeadAttention((x, memory))`` and ``((x, memory, key_padding_mask))``.

PyTorch's ``mha(x, memory, memory, key_padding_mask=...)`` to round-off, self-attention as the case
memory = x, the gradient checker on both inputs, backward_params, and bad memories refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_attention_padding import attention

import minidl as md
from minidl import MultiHeadAttention
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("T, S", [(4, 6), (5, 2), (1, 1)])
def test_against_pytorch(bias: bool, masked: bool, T: int, S: int) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_attention import torch_module

    rng = np.random.default_rng(T * 10 + S)
    N, E, H = 3, 8, 2
    x, memory, g = rng.normal(size=(N, T, E)), rng.normal(size=(N, S, E)), rng.normal(size=(N, T, E))
    mask = rng.random((N, S)) < 0.4
    mask[1] = True  # a sample whose memory is all padding: zero weights, as PyTorch's safe softmax
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-12, 1e-13),
                                           (np.float32, torch.float32, 1e-5, 2e-6)]:
        ours = attention(E, H, False, bias, 7, dtype)
        theirs = torch_module(torch, ours, torch_dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        mt = torch.tensor(memory.astype(dtype), requires_grad=True)
        out, _ = theirs(xt, mt, mt, key_padding_mask=torch.tensor(mask) if masked else None, need_weights=False)
        out.backward(torch.tensor(g.astype(dtype)))
        inputs = (x.astype(dtype), memory.astype(dtype)) + ((mask,) if masked else ())
        y = ours(inputs)
        assert y.dtype == dtype and y.shape == (N, T, E)
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        grads = ours.backward(g.astype(dtype))
        assert len(grads) == len(inputs) and (not masked or grads[2] is None)
        np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(grads[1], mt.grad.numpy(), rtol=rtol, atol=atol)
        assert grads[0].dtype == grads[1].dtype == dtype
        W = ours.W_qkv.grad[1:] if bias else ours.W_qkv.grad
        np.testing.assert_allclose(W.T, theirs.in_proj_weight.grad.numpy(), rtol=rtol, atol=atol)
        if bias:
            np.testing.assert_allclose(ours.W_qkv.grad[0], theirs.in_proj_bias.grad.numpy(), rtol=rtol, atol=atol)
        W = ours.W_o.grad[1:] if bias else ours.W_o.grad
        np.testing.assert_allclose(W.T, theirs.out_proj.weight.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_memory_x_itself_is_self_attention(bias: bool, seed: int) -> None:
    """With memory = x the outputs are self-attention's, and x's gradient is the sum of the two inputs'."""
    rng = np.random.default_rng(seed)
    x, g = rng.normal(size=(2, 5, 6)), rng.normal(size=(2, 5, 6))
    cross, plain = attention(6, 3, False, bias, seed), attention(6, 3, False, bias, seed)
    np.testing.assert_allclose(cross((x, x)), plain(x), rtol=1e-13, atol=1e-14)
    dx, dmemory = cross.backward(g)
    np.testing.assert_allclose(dx + dmemory, plain.backward(g), rtol=1e-12, atol=1e-14)
    for ours, theirs in zip(cross.parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(ours.grad, theirs.grad, rtol=1e-12, atol=1e-14)


def test_each_query_averages_the_memorys_values_by_hand() -> None:
    """One head, identity projections: y_t = sum_s softmax_s(x_t . m_s / sqrt(E)) m_s."""
    E = 3
    eye = np.eye(E)
    layer = MultiHeadAttention(E, 1, bias=False, W_qkv=np.hstack([eye, eye, eye]), W_o=eye)
    rng = np.random.default_rng(4)
    x, memory = rng.normal(size=(2, 4, E)), rng.normal(size=(2, 3, E))
    scores = np.einsum("nte,nse->nts", x, memory) / np.sqrt(E)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(layer((x, memory)), np.einsum("nts,nse->nte", weights, memory), rtol=1e-13)


@pytest.mark.parametrize(("N", "T", "S", "H", "d", "bias", "masked", "seed"), [
    (2, 3, 4, 2, 2, True, False, 0), (3, 2, 1, 1, 3, False, False, 1), (2, 4, 3, 2, 1, True, True, 2),
    (1, 1, 5, 3, 2, False, True, 3),
])
def test_gradient_checker_on_both_inputs(N: int, T: int, S: int, H: int, d: int, bias: bool, masked: bool,
                                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    inputs: tuple[np.ndarray, ...] = (rng.normal(size=(N, T, H * d)), rng.normal(size=(N, S, H * d)))
    if masked:
        inputs += (rng.random((N, S)) < 0.4,)
    report = assert_gradients_ok(attention(H * d, H, False, bias, seed), inputs=inputs, seed=seed)
    assert [r.name for r in report.results] == ["input[0]", "input[1]", "W_qkv", "W_o"]


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_with_attention_dropout(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = MultiHeadAttention(4, 2, dropout=0.3, rng=seed)
    assert_gradients_ok(layer, inputs=(rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))), seed=seed)


@pytest.mark.parametrize("masked", [False, True])
def test_backward_params_and_a_frozen_layer(masked: bool) -> None:
    rng = np.random.default_rng(6)
    inputs: tuple[np.ndarray, ...] = (rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)))
    if masked:
        inputs += (np.array([[False] * 5, [False, False, True, True, True]]),)
    assert_backward_params_contract(lambda: attention(4, 2, False, True, 6), inputs, rng.normal(size=(2, 3, 4)),
                                    rtol=1e-13)


def test_a_model_with_an_encoder_and_a_decoder_trains() -> None:
    """The decoder's queries read the encoded source: it learns to copy the source token its position asks for."""

    class Copier(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.source = md.Dense(10, 8, rng=0)
            self.query = md.Dense(4, 8, rng=1)
            self.cross = MultiHeadAttention(8, 2, rng=2)
            self.head = md.Dense(8, 6, rng=3)

        def forward(self, x: Any) -> np.ndarray:
            source, queries = x
            logits = self.head(self.cross((self.query(queries), self.source(source))))
            return logits.transpose(0, 2, 1)  # (N, classes, T), as CrossEntropyLoss takes a sequence

        def backward(self, grad_output: np.ndarray) -> Any:
            dq, dm = self.cross.backward(self.head.backward(grad_output.transpose(0, 2, 1)))
            return self.source.backward(dm), self.query.backward(dq)

    rng = np.random.default_rng(0)
    N, S, T = 512, 4, 3
    tokens = rng.integers(0, 6, size=(N, S))
    source = np.concatenate([np.eye(6)[tokens], np.broadcast_to(np.eye(S), (N, S, S))], axis=2)  # token, position
    asked = rng.integers(0, S, size=(N, T))
    queries = np.eye(4)[asked]
    y = np.take_along_axis(tokens, asked, axis=1)
    model = Copier()
    assert_gradients_ok(model, inputs=(source[:2], queries[:2]))
    history = model.fit((source, queries), y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(),
                        lr=0.02), epochs=30, batch_size=64, rng=0, verbose=0, metrics=["accuracy"])
    assert history["accuracy"][-1] > 0.95, history["accuracy"]


WHO = r"MultiHeadAttention\(4, num_heads=2\)"


@pytest.mark.parametrize("memory, error, pattern", [
    (np.ones((2, 5, 3)), md.ShapeError, r"expected memory of shape \(N, S, 4\) = \(2, S, 4\), got shape \(2, 5, 3\)"),
    (np.ones((3, 5, 4)), md.ShapeError, r"expected memory of shape \(N, S, 4\) = \(2, S, 4\), got shape \(3, 5, 4\)"),
    (np.ones((2, 0, 4)), md.ShapeError, r"expected at least one position in the memory, got shape \(2, 0, 4\)"),
    (np.ones((2, 5, 4), dtype=np.float32), md.DTypeError, r"memory dtype float32 does not match the layer's "
                                                           r"parameters \(float64\)"),
    (np.ones((2, 5, 4), dtype=np.int64), md.DTypeError, "expected a floating-point memory, got dtype int64"),
    (np.where(np.arange(40).reshape(2, 5, 4) == 9, np.nan, 1.0), md.NonFiniteError, r"memory holds 1 NaN/inf"),
])
def test_a_bad_memory_is_refused_and_the_last_pass_kept(memory: Any, error: type, pattern: str) -> None:
    rng = np.random.default_rng(0)
    layer = attention(4, 2, False, True, 0)
    x, good, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 4))
    layer((x, good))
    expected = layer.backward(g)
    with pytest.raises(error, match=rf"^{WHO}: {pattern}"):
        layer((x, memory))
    again = layer.backward(g)
    np.testing.assert_array_equal(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])


def test_a_causal_layer_refuses_a_memory_and_a_mask_must_cover_the_memory() -> None:
    rng = np.random.default_rng(1)
    x, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    with pytest.raises(ValueError, match=r"causal=True masks each query's own future"):
        attention(4, 2, True, True, 0)((x, memory))
    with pytest.raises(md.ShapeError, match=r"expected key_padding_mask of shape \(N, S\) = \(2, 5\) for a memory "
                                            r"of shape \(2, 5, E\), got \(2, 3\)"):
        attention(4, 2, False, True, 0)((x, memory, np.zeros((2, 3), dtype=bool)))


def test_an_empty_batch_and_none_in_place_of_an_input() -> None:
    layer = attention(8, 2, False, True, 0)
    y = layer((np.zeros((0, 4, 8)), np.zeros((0, 3, 8))))
    dx, dmemory = layer.backward(np.zeros((0, 4, 8)))
    assert y.shape == dx.shape == (0, 4, 8) and dmemory.shape == (0, 3, 8)
    x, memory = np.ones((2, 4, 8)), np.ones((2, 3, 8))
    for bad, item in [((x, memory, None), 2), ((x, None, np.zeros((2, 3), bool)), 1), ((x, None), 1)]:
        with pytest.raises(md.DTypeError, match=rf"mixes numpy arrays with other values \(item {item}: NoneType\)"):
            layer(bad)
