"""state_dict_from_torch against PyTorch: the same small models built on both sides, the torch weights ported,
the forward outputs equal to 1e-12 in float64 (skipped without torch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.porting import state_dict_from_torch

torch = pytest.importorskip("torch")
nn = torch.nn
RNG = np.random.default_rng(0)


def output(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    return (y[0] if isinstance(y, tuple) else y).numpy()


def port(theirs: Any, ours: md.Layer) -> md.Layer:
    ours.load_state_dict(state_dict_from_torch(ours, theirs.state_dict()))
    return ours


def assert_same(theirs: Any, ours: md.Layer, x: np.ndarray, atol: float = 1e-12) -> None:
    theirs.double().eval()
    port(theirs, ours).eval()
    np.testing.assert_allclose(ours(x), output(theirs, x), rtol=0, atol=atol)


def test_mlp() -> None:
    torch.manual_seed(0)
    theirs = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16, bias=False), nn.PReLU(), nn.Linear(16, 3))
    ours = md.Sequential(md.Dense(5, 16), md.Tanh(), md.Dense(16, 16, bias=False), md.PReLU(), md.Dense(16, 3))
    assert_same(theirs, ours, RNG.standard_normal((4, 5)))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_cnn_with_batch_norm_statistics_from_training(momentum: float | None) -> None:
    torch.manual_seed(1)
    theirs = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=momentum), nn.ReLU(),
                           nn.Conv2d(8, 8, 3, stride=2, groups=4, bias=False), nn.GroupNorm(2, 8), nn.MaxPool2d(2),
                           nn.ConvTranspose2d(8, 4, 3, stride=2, groups=2), nn.InstanceNorm2d(4, affine=True),
                           nn.Flatten(), nn.Linear(4 * 5 * 5, 10)).double()
    for _ in range(3):  # running statistics other than the initial ones, num_batches_tracked = 3
        theirs(torch.randn(6, 3, 9, 9, dtype=torch.float64))
    ours = md.Sequential(md.Conv2D(3, 8, 3, padding=1), md.BatchNorm2d(8, momentum=momentum), md.ReLU(),
                         md.Conv2D(8, 8, 3, stride=2, groups=4, bias=False), md.GroupNorm(2, 8), md.MaxPool2D(2),
                         md.ConvTranspose2D(8, 4, 3, stride=2, groups=2), md.InstanceNorm2d(4, affine=True),
                         md.Flatten(), md.Dense(4 * 5 * 5, 10))
    x = RNG.standard_normal((2, 3, 9, 9))
    assert_same(theirs, ours, x)
    assert int(ours[1].num_batches_tracked) == 3
    theirs.train(), ours.train()  # one more training step moves both statistics alike (momentum=None: 1/4)
    np.testing.assert_allclose(ours(x), output(theirs, x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours[1].running_mean, theirs[1].running_mean.numpy(), rtol=0, atol=1e-13)


def test_sequence_cnn() -> None:
    torch.manual_seed(2)
    theirs = nn.Sequential(nn.Conv1d(4, 6, 3, groups=2, dilation=2), nn.BatchNorm1d(6), nn.PReLU(6),
                           nn.ConvTranspose1d(6, 4, 3, stride=2, output_padding=1), nn.LayerNorm(18))
    ours = md.Sequential(md.Conv1D(4, 6, 3, groups=2, dilation=2), md.BatchNorm1d(6), md.PReLU(6),
                         md.ConvTranspose1D(6, 4, 3, stride=2, output_padding=1), md.LayerNorm(18))
    assert_same(theirs, ours, RNG.standard_normal((2, 4, 12)))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (1, True), (2, True)])
def test_recurrent(kind: str, layers: int, bidirectional: bool) -> None:
    torch.manual_seed(3)
    theirs = getattr(nn, kind)(3, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    cell = getattr(md, kind)

    def one(inputs: int) -> md.Layer:
        return md.Bidirectional(cell(inputs, 5), cell(inputs, 5)) if bidirectional else cell(inputs, 5)

    width = 10 if bidirectional else 5
    ours = md.Stack(*(one(3 if k == 0 else width) for k in range(layers))) if layers > 1 else one(3)
    assert_same(theirs, ours, RNG.standard_normal((2, 6, 3)))


class TorchTagger(nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.rnn = nn.GRU(6, 8, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, tokens: Any) -> Any:
        return self.head(self.rnn(self.embed(tokens))[0])


class Tagger(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.embed = md.Embedding(20, 6)
        self.rnn = md.GRU(6, 8)
        self.head = md.Dense(8, 4)

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        return self.head(self.rnn(self.embed(tokens)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.embed.backward(self.rnn.backward(self.head.backward(grad_output)))


def test_a_model_of_ones_own_pairs_by_attribute_names() -> None:
    torch.manual_seed(4)
    tokens = RNG.integers(0, 20, (3, 7))
    theirs, ours = TorchTagger().double().eval(), Tagger()
    port(theirs, ours)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(ours(tokens), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_and_decoder(norm_first: bool) -> None:
    torch.manual_seed(5)
    E, F = 8, 16
    theirs = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 2, F, 0.0, batch_first=True, norm_first=norm_first),
                                   2, norm=nn.LayerNorm(E), enable_nested_tensor=False)
    ours = md.TransformerEncoder(*(md.TransformerEncoderLayer(E, 2, F, 0.0, norm_first=norm_first) for _ in range(2)),
                                 norm=md.LayerNorm(E))
    x = RNG.standard_normal((2, 5, E))
    assert_same(theirs, ours, x)
    decoder = nn.TransformerDecoderLayer(E, 2, F, 0.0, activation="gelu", batch_first=True, norm_first=norm_first)
    block = port(decoder.double().eval(), md.TransformerDecoderLayer(E, 2, F, 0.0, "gelu", norm_first=norm_first))
    memory = RNG.standard_normal((2, 3, E))
    with torch.no_grad():
        expected = decoder(torch.from_numpy(x), torch.from_numpy(memory)).numpy()
    np.testing.assert_allclose(block((x, memory)), expected, rtol=0, atol=1e-12)


def test_attention_alone() -> None:
    torch.manual_seed(6)
    theirs = nn.MultiheadAttention(8, 2, batch_first=True).double()
    ours = port(theirs, md.MultiHeadAttention(8, 2))
    x = RNG.standard_normal((2, 4, 8))
    with torch.no_grad():
        expected = theirs(*(torch.from_numpy(x),) * 3, need_weights=False)[0].numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=0, atol=1e-12)


def test_a_float32_torch_model_ports_into_float64_and_float32() -> None:
    torch.manual_seed(7)
    theirs = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)).eval()  # float32
    x = RNG.standard_normal((3, 5))
    ours = port(theirs, md.Sequential(md.Dense(5, 4), md.BatchNorm1d(4)).eval())
    assert ours[0].W.data.dtype == np.float64
    np.testing.assert_array_equal(ours[0].W.data[1:], theirs[0].weight.detach().numpy().T.astype(np.float64))
    small = port(theirs, md.Sequential(md.Dense(5, 4, dtype=np.float32), md.BatchNorm1d(4, dtype=np.float32)).eval())
    np.testing.assert_allclose(small(x.astype(np.float32)), output(theirs, x.astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_a_torch_lstm_with_a_projection_is_refused() -> None:
    theirs = nn.LSTM(3, 5, proj_size=2, batch_first=True)
    with pytest.raises(md.StateDictError, match=r"torch 'weight_hh_l0' has shape \(20, 2\), expected \(20, 5\)"):
        state_dict_from_torch(md.LSTM(3, 5), theirs.state_dict())


def test_tensors_that_require_grad_and_bfloat16_ones() -> None:
    torch.manual_seed(8)
    theirs = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = RNG.standard_normal((3, 5))
    for state in (theirs.state_dict(keep_vars=True), dict(theirs.named_parameters())):
        assert state["0.weight"].requires_grad
        ours = md.Sequential(md.Dense(5, 4), md.Tanh(), md.Dense(4, 2))
        ours.load_state_dict(state_dict_from_torch(ours, state))
        np.testing.assert_allclose(ours(x), output(theirs, x), rtol=0, atol=1e-12)
    half = nn.Linear(5, 4).to(torch.bfloat16)
    ours = md.Dense(5, 4)
    ours.load_state_dict(state_dict_from_torch(ours, half.state_dict()))
    np.testing.assert_array_equal(ours.W.data[1:], half.weight.detach().float().numpy().T)


def test_tied_linears() -> None:
    torch.manual_seed(9)
    first, second = nn.Linear(3, 3), nn.Linear(3, 3)
    second.weight, second.bias = first.weight, first.bias
    theirs = nn.Sequential(first, nn.ReLU(), second)
    a, b = md.Dense(3, 3), md.Dense(3, 3)
    b.W = a.W
    assert_same(theirs, md.Sequential(a, md.ReLU(), b), RNG.standard_normal((4, 3)))


def test_a_stacked_lstm_with_dropout_is_a_stack_in_eval() -> None:
    torch.manual_seed(10)
    theirs = nn.LSTM(3, 5, num_layers=2, dropout=0.5, batch_first=True)
    assert_same(theirs, md.Stack(md.LSTM(3, 5), md.LSTM(5, 5)), RNG.standard_normal((2, 6, 3)))
