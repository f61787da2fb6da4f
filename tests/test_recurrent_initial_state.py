"""An initial state for RNN, LSTM and GRU: ``layer((x, h_0))``, ``lstm((x, h_0, c_0))``.

PyTorch's ``h_0``/``c_0`` to round-off, the gradient checker on every input, a zero state equal to no
state, a sequence run in two halves equal to the whole (the state carried across, the gradients too),
and bad states refused with the last pass kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_layers_recurrent import make

import minidl as md
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def states(kind: str, N: int, H: int, rng: np.random.Generator, dtype: Any = np.float64) -> tuple[np.ndarray, ...]:
    count = 2 if kind == "lstm" else 1
    return tuple(rng.normal(scale=0.8, size=(N, H)).astype(dtype) for _ in range(count))


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("bias, return_sequences", [(True, True), (False, True), (True, False), (False, False)])
def test_against_pytorch(kind: str, bias: bool, return_sequences: bool) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_recurrent import from_torch

    rng = np.random.default_rng(3)
    torch.manual_seed(1)
    N, T, D, H = 3, 5, 4, 6
    x = rng.normal(size=(N, T, D))
    initial = states(kind, N, H, rng)
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-12, 1e-13),
                                           (np.float32, torch.float32, 1e-5, 1e-5)]:
        name = "RNN" if kind.startswith("rnn") else kind.upper()
        extra = {"nonlinearity": "relu"} if kind == "rnn-relu" else {}
        theirs = getattr(torch.nn, name)(D, H, bias=bias, batch_first=True, dtype=torch_dtype, **extra)
        W_x, W_h = from_torch(kind.split("-")[0], theirs, bias)
        ours = make(kind, D, H, bias=bias, return_sequences=return_sequences, W_x=W_x, W_h=W_h, dtype=dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        st = [torch.tensor(s.astype(dtype)[None], requires_grad=True) for s in initial]  # (1, N, H): one layer
        out, _ = theirs(xt, (st[0], st[1]) if kind == "lstm" else st[0])
        if not return_sequences:
            out = out[:, -1]
        g = rng.normal(size=tuple(out.shape)).astype(dtype)
        out.backward(torch.tensor(g))
        y = ours((x.astype(dtype), *(s.astype(dtype) for s in initial)))
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        grads = ours.backward(g)
        assert isinstance(grads, tuple) and len(grads) == 1 + len(initial)
        assert all(a.dtype == dtype for a in grads)
        np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=rtol, atol=atol)
        for ours_d, theirs_s in zip(grads[1:], st, strict=True):
            assert theirs_s.grad is not None
            np.testing.assert_allclose(ours_d, theirs_s.grad.numpy()[0], rtol=rtol, atol=atol)
        rows_x = ours.W_x.grad[1:] if bias else ours.W_x.grad
        rows_h = ours.W_h.grad[1:] if bias and kind == "gru" else ours.W_h.grad
        np.testing.assert_allclose(rows_x, theirs.weight_ih_l0.grad.numpy().T, rtol=rtol, atol=atol)
        np.testing.assert_allclose(rows_h, theirs.weight_hh_l0.grad.numpy().T, rtol=rtol, atol=atol)
        if bias:
            np.testing.assert_allclose(ours.W_x.grad[0], theirs.bias_ih_l0.grad.numpy(), rtol=rtol, atol=atol)
            b_hh = ours.W_h.grad[0] if kind == "gru" else ours.W_x.grad[0]  # RNN/LSTM: b_hh adds to b_ih
            np.testing.assert_allclose(b_hh, theirs.bias_hh_l0.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize(("shape", "return_sequences", "seed"), [
    ((2, 3, 2, 3), True, 0), ((3, 1, 3, 2), False, 1), ((1, 4, 2, 2), True, 2),
])
def test_gradient_checker_on_every_input(kind: str, shape: tuple[int, int, int, int], return_sequences: bool,
                                         seed: int) -> None:
    N, T, D, H = shape
    rng = np.random.default_rng(seed)
    layer = make(kind, D, H, return_sequences=return_sequences, rng=seed)
    inputs = (rng.normal(size=(N, T, D)), *states(kind, N, H, rng))
    report = assert_gradients_ok(layer, inputs=inputs, seed=seed)
    names = ["input[0]", "input[1]", "input[2]"][:len(inputs)]
    assert [r.name for r in report.results] == [*names, "W_x", "W_h"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_zero_state_is_no_state(kind: str) -> None:
    rng = np.random.default_rng(4)
    a, b = make(kind, 3, 4, rng=0), make(kind, 3, 4, rng=0)
    x, g = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 4))
    zeros = tuple(np.zeros((2, 4)) for _ in states(kind, 2, 4, rng))
    np.testing.assert_allclose(a((x, *zeros)), b(x), rtol=1e-14, atol=1e-15)
    dx, *_ = a.backward(g)
    np.testing.assert_allclose(dx, b.backward(g), rtol=1e-13, atol=1e-15)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "gru"])
def test_two_halves_carried_over_are_the_whole_sequence(kind: str) -> None:
    """Run steps 0..k-1, then k..T-1 from the first half's last state: the outputs are the whole run's, and
    back-propagating the second half's dh_0 into the first half gives the whole run's gradients (truncated
    back-propagation through time, untruncated).  (Not the LSTM: its output is h only, and carrying it over
    needs the cell state c too, which is not an output; its c_0 is checked by hand below.)"""
    rng = np.random.default_rng(5)
    N, T, D, H, k = 2, 7, 3, 4, 3
    whole, first, second = (make(kind, D, H, rng=1) for _ in range(3))
    x, g = rng.normal(size=(N, T, D)), rng.normal(size=(N, T, H))
    y = whole(x)
    y1 = first(x[:, :k])
    y2 = second((x[:, k:], y1[:, -1].copy()))
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=1e-13, atol=1e-14)
    dx2, dh = second.backward(g[:, k:])
    g1 = g[:, :k].copy()
    g1[:, -1] += dh  # the carried state was also the first half's last output
    dx1 = first.backward(g1)
    np.testing.assert_allclose(np.concatenate([dx1, dx2], axis=1), whole.backward(g), rtol=1e-12, atol=1e-14)
    for p, q, r in zip(first.parameters(), second.parameters(), whole.parameters(), strict=True):
        np.testing.assert_allclose(p.grad + q.grad, r.grad, rtol=1e-12, atol=1e-14)


def test_an_lstm_cell_state_is_carried_by_hand() -> None:
    """One step from (h_0, c_0), by the formulas: c_1 = f c_0 + i g, h_1 = o tanh(c_1)."""
    rng = np.random.default_rng(6)
    layer = md.LSTM(2, 3, rng=0)
    x, h0, c0 = rng.normal(size=(4, 1, 2)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    a = x[:, 0] @ layer.W_x.data[1:] + layer.W_x.data[0] + h0 @ layer.W_h.data
    i, f, o = (1 / (1 + np.exp(-a[:, k * 3:(k + 1) * 3])) for k in (0, 1, 3))
    c1 = f * c0 + i * np.tanh(a[:, 6:9])
    np.testing.assert_allclose(layer((x, h0, c0))[:, 0], o * np.tanh(c1), rtol=1e-13)
    g = rng.normal(size=(4, 1, 3))
    _, _, dc0 = layer.backward(g)
    np.testing.assert_allclose(dc0, g[:, 0] * o * (1 - np.tanh(c1) ** 2) * f, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_backward_params_and_a_frozen_layer(kind: str) -> None:
    rng = np.random.default_rng(7)
    inputs = (rng.normal(size=(2, 4, 3)), *states(kind, 2, 5, rng))
    assert_backward_params_contract(lambda: make(kind, 3, 5, rng=2), inputs, rng.normal(size=(2, 4, 5)), rtol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bad_states_are_refused_and_the_last_pass_kept(kind: str) -> None:
    rng = np.random.default_rng(8)
    layer = make(kind, 3, 4, rng=0)
    x, g = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 4))
    good = states(kind, 2, 4, rng)
    layer((x, *good))
    expected = layer.backward(g)
    who = rf"{kind.upper()}\(3 -> 4\)"
    rest = good[1:]
    cases: list[tuple[Any, type, str]] = [
        ((x, np.zeros((2, 5)), *rest), md.ShapeError, rf"{who}: expected h_0 of shape \(N, 4\) = \(2, 4\), got "
                                                      r"shape \(2, 5\)"),
        ((x, np.zeros((3, 4)), *rest), md.ShapeError, r"expected h_0 of shape \(N, 4\) = \(2, 4\), got shape \(3, 4\)"),
        ((x, np.zeros((2, 4), np.float32), *rest), md.DTypeError, r"h_0 dtype float32 does not match the layer's"),
        ((x, np.full((2, 4), np.nan), *rest), md.NonFiniteError, r"h_0 holds 8 NaN/inf value"),
        ((x, *good, good[0]), md.ShapeError,
         rf"{who}: expected x, \(x, h_0{', c_0' if kind == 'lstm' else ''}\), \(x, padding_mask\) or .*, "
         rf"got a tuple of {2 + len(good)}"),
    ]
    if kind == "lstm":
        cases.append(((x, good[0], np.ones((2, 3))), md.ShapeError, r"expected c_0 of shape \(N, 4\)"))
        cases.append(((x, good[0]), md.ShapeError, r"expected x, \(x, h_0, c_0\), .*got a tuple of 2"))
    for bad, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            layer(bad)
        again = layer.backward(g)
        for a, b in zip(again, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    layer(x)  # and back to no state: backward returns dx alone
    assert isinstance(layer.backward(g), np.ndarray)


def test_a_decoder_started_from_an_encoders_state_trains() -> None:
    """The encoder reads a sequence; its last state starts a decoder that must emit the sequence's sum."""

    class Seq2Seq(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = md.GRU(1, 16, return_sequences=False, rng=0)
            self.decoder = md.GRU(1, 16, rng=1)
            self.head = md.Dense(16, 1, rng=2)

        def forward(self, x: Any) -> np.ndarray:
            source, steps = x
            return self.head(self.decoder((steps, self.encoder(source).copy())))

        def backward(self, grad_output: np.ndarray) -> Any:
            d_steps, dh = self.decoder.backward(self.head.backward(grad_output))
            return self.encoder.backward(dh), d_steps

    rng = np.random.default_rng(0)
    N = 256
    source = rng.uniform(-1, 1, size=(N, 5, 1))
    steps = np.zeros((N, 2, 1))  # the decoder reads nothing: all it knows is the state it starts from
    y = np.repeat(source.sum(axis=1, keepdims=True), 2, axis=1) / 3
    model = Seq2Seq()
    assert_gradients_ok(model, inputs=(source[:2], steps[:2]))
    history = model.fit((source, steps), y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters(), lr=0.01),
                        epochs=30, batch_size=32, rng=0, verbose=0)
    assert history["loss"][-1] < 0.05 * history["loss"][0], history["loss"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_tuple_of_lists_is_data_and_a_mixed_tuple_is_refused(kind: str) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 5, 3))
    layer = make(kind, 3, 4, rng=0)
    np.testing.assert_array_equal(layer(tuple(x.tolist())), make(kind, 3, 4, rng=0)(x))  # converted, as always
    with pytest.raises(md.DTypeError, match=r"input mixes numpy arrays with other values \(item 1: list\)"):
        layer((x, np.zeros((2, 4)).tolist()))
