"""TransformerDecoderLayer: PyTorch's block to round-off in every form of its input, the gradient checker
through every branch (dropout and masks included), bad inputs refused before anything changes, and an
encoder-decoder that learns a copy task."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import TransformerDecoderLayer, TransformerEncoderLayer
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def perturbed(layer: TransformerDecoderLayer, seed: int) -> TransformerDecoderLayer:
    """The layer with its norms and biases moved off their initial 1s and 0s, so that they count."""
    rng = np.random.default_rng(seed)
    for name, p in layer.named_parameters():
        if name.startswith("norm"):
            p.data += rng.normal(scale=0.2, size=p.data.shape)
        elif name.endswith(("W_qkv", "W_o")):
            p.data[0] = rng.normal(scale=0.3, size=p.data.shape[1])
    return layer


def to_torch(layer: TransformerDecoderLayer, torch: Any) -> Any:
    """PyTorch's layer with ``layer``'s weights (float64, dropout 0)."""
    module = torch.nn.TransformerDecoderLayer(
        layer.self_attn.embed_dim, layer.self_attn.num_heads, layer.linear1.out_features, dropout=0.0,
        activation=layer.activation_name, batch_first=True, norm_first=layer.norm_first).double()
    with torch.no_grad():
        for name in ("self_attn", "multihead_attn"):
            ours, theirs = getattr(layer, name), getattr(module, name)
            theirs.in_proj_weight.copy_(torch.tensor(ours.in_proj_weight))
            theirs.in_proj_bias.copy_(torch.tensor(ours.in_proj_bias))
            theirs.out_proj.weight.copy_(torch.tensor(ours.out_proj_weight))
            theirs.out_proj.bias.copy_(torch.tensor(ours.out_proj_bias))
        for name in ("linear1", "linear2"):
            ours, theirs = getattr(layer, name), getattr(module, name)
            theirs.weight.copy_(torch.tensor(ours.weight.T))
            theirs.bias.copy_(torch.tensor(ours.bias_row))
        for name in ("norm1", "norm2", "norm3"):
            ours, theirs = getattr(layer, name), getattr(module, name)
            theirs.weight.copy_(torch.tensor(ours.gamma.data))
            theirs.bias.copy_(torch.tensor(ours.beta.data))
    return module


def padded(N: int, T: int, rng: np.random.Generator) -> np.ndarray:
    lengths = rng.integers(1, T + 1, size=N)
    return np.arange(T)[None, :] >= lengths[:, None]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masks", [0, 1, 2])
def test_against_torch_if_installed(norm_first: bool, activation: str, causal: bool, masks: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(masks)
    N, T, S, E = 3, 4, 6, 8
    layer = perturbed(TransformerDecoderLayer(E, 2, 12, dropout=0.0, activation=activation, norm_first=norm_first,
                                              causal=causal, rng=1), 2)
    module = to_torch(layer, torch).train()
    x, memory, g = rng.normal(size=(N, T, E)), rng.normal(size=(N, S, E)), rng.normal(size=(N, T, E))
    target_pad, memory_pad = padded(N, T, rng), padded(N, S, rng)
    xt, mt = torch.tensor(x, requires_grad=True), torch.tensor(memory, requires_grad=True)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    yt = module(xt, mt, tgt_mask=future, tgt_is_causal=causal,
                tgt_key_padding_mask=torch.tensor(target_pad) if masks == 2 else None,
                memory_key_padding_mask=torch.tensor(memory_pad) if masks else None)
    yt.backward(torch.tensor(g))
    inputs = [(x, memory), (x, memory, memory_pad), (x, memory, target_pad, memory_pad)][masks]
    np.testing.assert_allclose(layer(inputs), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    grads = layer.backward(g)
    assert len(grads) == len(inputs) and all(d is None for d in grads[2:])
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(grads[1], mt.grad.numpy(), rtol=1e-11, atol=1e-12)
    pairs = [(layer.self_attn.W_qkv.grad[1:].T, module.self_attn.in_proj_weight.grad),
             (layer.multihead_attn.W_qkv.grad[1:].T, module.multihead_attn.in_proj_weight.grad),
             (layer.multihead_attn.W_qkv.grad[0], module.multihead_attn.in_proj_bias.grad),
             (layer.multihead_attn.W_o.grad[1:].T, module.multihead_attn.out_proj.weight.grad),
             (layer.linear1.W.grad[1:].T, module.linear1.weight.grad),
             (layer.linear2.W.grad[0], module.linear2.bias.grad),
             (layer.norm2.gamma.grad, module.norm2.weight.grad),
             (layer.norm3.beta.grad, module.norm3.bias.grad)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("N", "T", "S", "E", "norm_first", "dropout", "masks", "seed"), [
    (2, 3, 4, 4, False, 0.0, 0, 0), (2, 2, 3, 4, True, 0.0, 1, 1), (3, 3, 2, 6, False, 0.3, 2, 2),
    (1, 4, 4, 4, True, 0.4, 2, 3),
])
def test_gradient_checker_through_every_branch(N: int, T: int, S: int, E: int, norm_first: bool, dropout: float,
                                              masks: int, seed: int) -> None:
    """In train mode with dropout too: the checker replays the four dropouts' and the two attentions' generators."""
    rng = np.random.default_rng(seed)
    layer = perturbed(TransformerDecoderLayer(E, 2, 5, dropout=dropout, activation="gelu", norm_first=norm_first,
                                              causal=seed % 2 == 0, rng=seed), seed)
    x, memory = rng.normal(size=(N, T, E)), rng.normal(size=(N, S, E))
    inputs = [(x, memory), (x, memory, padded(N, S, rng)), (x, memory, padded(N, T, rng), padded(N, S, rng))][masks]
    report = assert_gradients_ok(layer, inputs=inputs, seed=seed)
    names = [r.name for r in report.results]
    assert names[:2] == ["input[0]", "input[1]"] and len(names) == 2 + 12
    assert {"multihead_attn.W_qkv", "multihead_attn.W_o", "norm3.gamma", "norm3.beta"} <= set(names)


def test_the_checker_and_summary_draw_a_target_and_a_memory_by_themselves() -> None:
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.0, rng=0)
    report = assert_gradients_ok(layer)
    assert [r.name for r in report.results][:2] == ["input[0]", "input[1]"]
    text = str(md.summarize(layer))
    assert "multihead_attn" in text and "(None, 3, 4)" in text, text


def test_eval_mode_drops_nothing_and_the_names_follow_pytorch() -> None:
    rng = np.random.default_rng(4)
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.5, rng=0)
    plain = TransformerDecoderLayer(4, 2, 6, dropout=0.0, rng=0)
    for a, b in zip(layer.parameters(), plain.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)  # the weights do not depend on the dropout
    x, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    np.testing.assert_allclose(layer.eval()((x, memory)), plain((x, memory)), rtol=1e-14)
    names = [name for name, _ in layer.named_parameters()]
    assert names == ["self_attn.W_qkv", "self_attn.W_o", "multihead_attn.W_qkv", "multihead_attn.W_o", "linear1.W",
                     "linear2.W", "norm1.gamma", "norm1.beta", "norm2.gamma", "norm2.beta", "norm3.gamma",
                     "norm3.beta"]
    assert len(list(layer.named_generators())) == 6  # four dropouts and the two attentions' weights' dropout
    assert repr(layer).startswith("TransformerDecoderLayer(d_model=4, nhead=2, dim_feedforward=6, dropout=0.5")


def test_causal_outputs_ignore_the_targets_future_but_read_all_the_memory() -> None:
    rng = np.random.default_rng(5)
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.0, causal=True, rng=0)
    x, memory = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 4))
    y = layer((x, memory))
    later = x.copy()
    later[:, 3:] *= 100.0
    np.testing.assert_allclose(layer((later, memory))[:, :3], y[:, :3], rtol=1e-13, atol=1e-14)
    moved = memory.copy()
    moved[:, -1] += 1.0
    assert np.abs(layer((x, moved)) - y)[:, 0].max() > 1e-3  # the first position reads the whole memory


def test_backward_params_and_a_frozen_layer() -> None:
    rng = np.random.default_rng(6)
    inputs = (rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 4)), padded(2, 4, rng))
    assert_backward_params_contract(lambda: perturbed(TransformerDecoderLayer(4, 2, 5, dropout=0.0, rng=6), 6),
                                    inputs, rng.normal(size=(2, 3, 4)), rtol=1e-12)


WHO = "TransformerDecoderLayer"


@pytest.mark.parametrize("make, error, pattern", [
    (lambda x, m, p: x, md.ShapeError, r"expected \(x, memory\), \(x, memory, memory_key_padding_mask\) or "
                                       r"\(x, memory, tgt_key_padding_mask, memory_key_padding_mask\), got a ndarray"),
    (lambda x, m, p: (x,), md.ShapeError, "got a tuple of 1"),
    (lambda x, m, p: (x[:, :, :3], m), md.ShapeError, r"expected input of shape \(N, T, 4\), got shape \(2, 3, 3\)"),
    (lambda x, m, p: (x[:, :0], m), md.ShapeError, r"expected at least one position in the input"),
    (lambda x, m, p: (x, m[:1]), md.ShapeError, r"expected memory of shape \(N, S, 4\) = \(2, S, 4\), got shape "
                                                r"\(1, 5, 4\)"),
    (lambda x, m, p: (x, m[:, :, :2]), md.ShapeError, r"expected memory of shape"),
    (lambda x, m, p: (x, m[:, :0]), md.ShapeError, "expected at least one position in the memory"),
    (lambda x, m, p: (x, m.astype(np.float32)), md.DTypeError, r"memory dtype float32 does not match"),
    (lambda x, m, p: (x, np.where(np.arange(m.size).reshape(m.shape) == 7, np.inf, m)), md.NonFiniteError,
     r"memory holds 1 NaN/inf value\(s\), the first at index \(0, 1, 3\)"),
    (lambda x, m, p: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), m), md.NonFiniteError,
     r"input holds 1 NaN/inf value\(s\), the first at index \(0, 1, 1\)"),
    (lambda x, m, p: (x.astype(np.float32), m), md.DTypeError, "does not match the layer's parameters"),
    (lambda x, m, p: (x, m, p[:, :3]), md.ShapeError, r"expected memory_key_padding_mask of shape \(N, S\) = "
                                                      r"\(2, 5\) for a memory"),
    (lambda x, m, p: (x, m, p.astype(int)), md.DTypeError, "libraries disagree"),
    (lambda x, m, p: (x, m, p, p), md.ShapeError, r"expected tgt_key_padding_mask of shape \(N, T\) = \(2, 3\)"),
    (lambda x, m, p: (x, m, None), md.DTypeError, r"x mixes numpy arrays with other values \(item 2: NoneType\)"),
])
def test_bad_inputs_are_refused_and_the_last_pass_kept(make: Any, error: type, pattern: str) -> None:
    rng = np.random.default_rng(7)
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.0, rng=0)
    x, memory, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 4))
    pad = padded(2, 5, rng)
    layer((x, memory, pad))
    expected = layer.backward(g)
    before = copy.deepcopy(layer.state_dict())
    with pytest.raises(error, match=rf"^{WHO}: .*{pattern}"):
        layer(make(x, memory, pad))
    assert md.testing.states_equal(layer.state_dict(), before)
    again = layer.backward(g)
    np.testing.assert_array_equal(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])


def test_a_failure_part_way_refuses_the_next_backward() -> None:
    rng = np.random.default_rng(8)
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.0, rng=0)
    x, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    layer((x, memory))

    def refuse(x: Any) -> np.ndarray:
        raise md.ShapeError("MultiHeadAttention: refused")

    object.__setattr__(layer.multihead_attn, "forward", refuse)  # fails after self_attn ran
    with pytest.raises(md.ShapeError, match=f"^{WHO}: MultiHeadAttention: refused"):
        layer((x, memory))
    with pytest.raises(md.BackwardBeforeForwardError, match=r"TransformerDecoderLayer\.backward: no forward ran"):
        layer.backward(np.ones((2, 3, 4)))


def test_constructor_arguments_are_checked_before_anything_is_drawn() -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    for kwargs, pattern in [({"d_model": 5, "nhead": 2}, r"d_model \(5\) must be divisible by nhead \(2\)"),
                            ({"activation": "tanh"}, "activation must be 'relu', 'gelu', or a layer class"),
                            ({"dropout": 1.5}, "dropout"), ({"dtype": np.float16}, "float16 is not supported")]:
        args = {"d_model": 4, "nhead": 2, **kwargs}
        with pytest.raises((ValueError, md.DTypeError), match=f"^{WHO}: .*{pattern}"):
            TransformerDecoderLayer(args.pop("d_model"), args.pop("nhead"), 6, rng=rng, **args)
        assert rng.bit_generator.state == state


def test_an_encoder_decoder_learns_to_reverse_a_sequence() -> None:
    """Teacher forcing: the decoder reads the target shifted right (a start token first), causally, and the
    encoded source; it must emit the source reversed."""

    class Reverser(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed_source = md.Dense(5 + 4, 16, rng=0)
            self.embed_target = md.Dense(6 + 4, 16, rng=1)
            self.encoder = TransformerEncoderLayer(16, 2, 32, dropout=0.0, norm_first=True, rng=2)
            self.decoder = TransformerDecoderLayer(16, 2, 32, dropout=0.0, norm_first=True, causal=True, rng=3)
            self.head = md.Dense(16, 5, rng=4)

        def forward(self, x: Any) -> np.ndarray:
            source, target_in = x
            memory = self.encoder(self.embed_source(source))
            out = self.head(self.decoder((self.embed_target(target_in), memory)))
            return out.transpose(0, 2, 1)  # (N, classes, T) for CrossEntropyLoss

        def backward(self, grad_output: np.ndarray) -> Any:
            dh, dmemory = self.decoder.backward(self.head.backward(grad_output.transpose(0, 2, 1)))
            return self.embed_source.backward(self.encoder.backward(dmemory)), self.embed_target.backward(dh)

    rng = np.random.default_rng(0)
    N, T = 384, 4
    tokens = rng.integers(0, 5, size=(N, T))
    positions = np.broadcast_to(np.eye(T), (N, T, T))
    source = np.concatenate([np.eye(5)[tokens], positions], axis=2)
    y = tokens[:, ::-1]
    shifted = np.concatenate([np.full((N, 1), 5), y[:, :-1]], axis=1)  # token 5: start
    target_in = np.concatenate([np.eye(6)[shifted], positions], axis=2)
    model = Reverser()
    assert_gradients_ok(model, inputs=(source[:2], target_in[:2]), mode="sampled", samples=16)  # the whole model
    history = model.fit((source, target_in), y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(),
                        lr=0.01), epochs=15, batch_size=64, rng=0, verbose=0, metrics=["accuracy"])
    assert history["accuracy"][-1] > 0.95, history["accuracy"]
