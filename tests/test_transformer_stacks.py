"""TransformerEncoder and TransformerDecoder: stacks of blocks that give every block the masks (and the
memory), which a Sequential cannot do.  PyTorch's stacks to round-off, a padded batch equal to each sequence
cut short through two blocks, the gradient checker, and the contract of a container."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def encoder(norm: bool = True, seed: int = 0, norm_first: bool = True) -> TransformerEncoder:
    blocks = [TransformerEncoderLayer(8, 2, 12, dropout=0.0, norm_first=norm_first, rng=seed + i) for i in range(2)]
    return TransformerEncoder(*blocks, norm=md.LayerNorm(8) if norm else None)


def decoder(norm: bool = True, seed: int = 0) -> TransformerDecoder:
    blocks = [TransformerDecoderLayer(8, 2, 12, dropout=0.0, norm_first=True, causal=True, rng=seed + i)
              for i in range(2)]
    return TransformerDecoder(*blocks, norm=md.LayerNorm(8) if norm else None)


def padded(N: int, T: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(T)[None, :] >= rng.integers(1, T + 1, size=N)[:, None]


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_against_torch(norm: bool, norm_first: bool) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_transformer import to_torch

    rng = np.random.default_rng(1)
    ours = encoder(norm, 3, norm_first)
    assert ours.norm is None or isinstance(ours.norm, md.LayerNorm)
    if ours.norm is not None:
        ours.norm.gamma.data += rng.normal(scale=0.2, size=8)
    layers = [to_torch(block, torch).train() for block in ours.blocks]
    theirs = torch.nn.TransformerEncoder(layers[0], 2, enable_nested_tensor=False).double()
    theirs.layers = torch.nn.ModuleList(layers)
    if ours.norm is not None:
        theirs.norm = torch.nn.LayerNorm(8).double()
        with torch.no_grad():
            theirs.norm.weight.copy_(torch.tensor(ours.norm.gamma.data))
    theirs.train()
    x, g = rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8))
    mask = padded(3, 5, rng)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt, src_key_padding_mask=torch.tensor(mask))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours((x, mask)), yt.detach().numpy(), rtol=1e-11, atol=1e-12)
    dx, dmask = ours.backward(g)
    assert dmask is None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.blocks[0].self_attn.W_qkv.grad[1:].T,
                               theirs.layers[0].self_attn.in_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_decoder_against_torch() -> None:
    torch = pytest.importorskip("torch")
    from test_transformer_decoder import to_torch

    rng = np.random.default_rng(2)
    ours = decoder(True, 4)
    layers = [to_torch(block, torch).train() for block in ours.blocks]
    theirs = torch.nn.TransformerDecoder(layers[0], 2, norm=torch.nn.LayerNorm(8).double()).double()
    theirs.layers = torch.nn.ModuleList(layers)
    theirs.train()
    x, memory, g = rng.normal(size=(3, 4, 8)), rng.normal(size=(3, 6, 8)), rng.normal(size=(3, 4, 8))
    memory_pad = padded(3, 6, rng)
    xt, mt = torch.tensor(x, requires_grad=True), torch.tensor(memory, requires_grad=True)
    future = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    yt = theirs(xt, mt, tgt_mask=future, tgt_is_causal=True, memory_key_padding_mask=torch.tensor(memory_pad))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours((x, memory, memory_pad)), yt.detach().numpy(), rtol=1e-11, atol=1e-12)
    dx, dmemory, dmask = ours.backward(g)
    assert dmask is None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dmemory, mt.grad.numpy(), rtol=1e-10, atol=1e-12)  # summed over the blocks


@pytest.mark.parametrize("norm_first", [False, True])
def test_every_block_gets_the_mask_a_padded_sequence_is_the_sequence_cut_short(norm_first: bool) -> None:
    """What a Sequential of blocks gets wrong: from its second block on, the padding is attended to again."""
    rng = np.random.default_rng(3)
    stack = encoder(True, 5, norm_first)
    x = rng.normal(size=(2, 5, 8))
    mask = np.array([[False, False, False, True, True], [False] * 5])
    x[0, 3:] = rng.normal(scale=50.0, size=(2, 8))  # noisy padding
    y = stack((x, mask))
    np.testing.assert_allclose(y[0, :3], stack(x[:1, :3])[0], rtol=1e-12, atol=1e-13)
    sequential = md.Sequential(*(TransformerEncoderLayer(8, 2, 12, dropout=0.0, norm_first=norm_first, rng=5 + i)
                                 for i in range(2)), md.LayerNorm(8))
    assert np.abs(sequential((x, mask))[0, :3] - y[0, :3]).max() > 1e-3  # (the mask reached block 0 only)


@pytest.mark.parametrize("masked", [False, True])
def test_gradient_checker_on_both_stacks(masked: bool) -> None:
    rng = np.random.default_rng(4)
    x, memory = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 4, 8))
    report = assert_gradients_ok(encoder(), inputs=(x, padded(2, 3, rng)) if masked else x, mode="sampled",
                                 samples=8)
    assert report.results[0].name == ("input[0]" if masked else "input")
    assert {"0.self_attn.W_qkv", "1.linear2.W", "norm.gamma"} <= {r.name for r in report.results}
    inputs = (x, memory, padded(2, 3, rng), padded(2, 4, rng)) if masked else (x, memory)
    report = assert_gradients_ok(decoder(), inputs=inputs, mode="sampled", samples=8)
    assert [r.name for r in report.results][:2] == ["input[0]", "input[1]"]


def test_backward_params_and_the_default_inputs() -> None:
    rng = np.random.default_rng(5)
    x, memory = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 4, 8))
    assert_backward_params_contract(lambda: encoder(), (x, padded(2, 3, rng)), rng.normal(size=(2, 3, 8)),
                                    rtol=1e-12)
    assert_backward_params_contract(lambda: decoder(), (x, memory), rng.normal(size=(2, 3, 8)), rtol=1e-12)
    assert md.summarize(decoder()).rows[0].name == "0"  # the checker's and summary's dummy (x, memory)


def test_construction_is_checked_and_errors_name_the_block() -> None:
    block = TransformerEncoderLayer(8, 2, 12, rng=0)
    with pytest.raises(ValueError, match="TransformerEncoder: give at least one TransformerEncoderLayer"):
        TransformerEncoder()
    with pytest.raises(TypeError, match="TransformerEncoder: block 1 is a Dense, expected a TransformerEncoderLayer"):
        TransformerEncoder(block, md.Dense(8, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TransformerEncoder: block 1 is block 0 again"):
        TransformerEncoder(block, block)
    with pytest.raises(TypeError, match="TransformerDecoder: block 0 is a TransformerEncoderLayer"):
        TransformerDecoder(block)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="norm must be a Layer"):
        TransformerEncoder(block, norm="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"TransformerEncoder: block 1 has d_model 4, block 0 has 8"):
        TransformerEncoder(block, TransformerEncoderLayer(4, 2, 6, rng=1))
    assert "norm_first=True, causal=True" in repr(decoder().blocks[0]).splitlines()[0]
    stack = encoder()
    rng = np.random.default_rng(6)
    x, g = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 3, 8))
    stack(x)
    expected = stack.backward(g)
    with pytest.raises(md.ShapeError, match=r"^TransformerEncoder block 0: TransformerEncoderLayer: expected input"):
        stack(x[:, :, :4])  # refused at once: the last pass stays usable
    np.testing.assert_array_equal(stack.backward(g), expected)
    with pytest.raises(md.ShapeError, match="TransformerDecoder: expected \\(x, memory"):
        decoder()(x)

    def refuse(h: Any) -> np.ndarray:
        raise md.ShapeError("TransformerEncoderLayer: refused")

    object.__setattr__(stack.blocks[1], "forward", refuse)  # block 1 fails after block 0 ran
    with pytest.raises(md.ShapeError, match=r"^TransformerEncoder block 1: TransformerEncoderLayer: refused"):
        stack(x)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"TransformerEncoder\.backward: no forward ran"):
        stack.backward(g)


def test_an_encoder_decoder_of_stacks_trains_on_padded_sources() -> None:
    """Variable-length sources (padded with noise) and their masks through both stacks: the decoder's one
    query must output the mean of its source's real tokens."""

    class Model(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder(seed=10)
            self.decoder = decoder(seed=20)
            self.head = md.Dense(8, 1, rng=0)

        def forward(self, x: Any) -> np.ndarray:
            source, query, pad = x
            memory = self.encoder((source, pad))
            return self.head(self.decoder((query, memory, pad))[:, 0])

        def backward(self, grad_output: np.ndarray) -> Any:
            g = np.zeros((len(grad_output), 1, 8))
            g[:, 0] = self.head.backward(grad_output)
            dq, dmemory, _ = self.decoder.backward(g)
            return self.encoder.backward(dmemory)[0], dq, None

    rng = np.random.default_rng(0)
    N, S = 256, 5
    pad = padded(N, S, rng)
    values = rng.normal(size=(N, S, 8))
    source = np.where(pad[:, :, None], rng.normal(scale=30.0, size=(N, S, 8)), values)
    y = ((values[:, :, :1] * ~pad[:, :, None]).sum(axis=1) / (~pad).sum(axis=1)[:, None])
    query = np.ones((N, 1, 8))
    model = Model()
    history = model.fit((source, query, pad), y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters(), lr=0.01),
                        epochs=12, batch_size=32, rng=0, verbose=0)
    assert history["loss"][-1] < 0.2 * history["loss"][0], history["loss"]
