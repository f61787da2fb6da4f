"""``Bidirectional``: a sequence read both ways, the outputs concatenated; checked, against a hand
reversal, against PyTorch's ``bidirectional=True``, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

KINDS = {"rnn": md.RNN, "lstm": md.LSTM, "gru": md.GRU}


def pair(kind: str, inputs: int, hidden: int, *, return_sequences: bool = True, seed: int = 0,
         dtype: type = np.float64) -> md.Bidirectional:
    make = KINDS[kind]
    return md.Bidirectional(make(inputs, hidden, return_sequences=return_sequences, rng=seed, dtype=dtype),
                            make(inputs, hidden, return_sequences=return_sequences, rng=seed + 1, dtype=dtype))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bidirectional_passes_the_checker(kind: str, return_sequences: bool, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((3, 4, 2))
    report = assert_gradients_ok(pair(kind, 2, 3, return_sequences=return_sequences, seed=seed), inputs=x,
                                 seed=seed)
    assert {r.name for r in report.results} == {"input", "forward_layer.W_x", "forward_layer.W_h",
                                                "backward_layer.W_x", "backward_layer.W_h"}


def test_in_a_classifier_with_cross_entropy_passes_the_checker() -> None:
    model = md.Sequential(pair("lstm", 3, 4, return_sequences=False), md.Dense(8, 5, rng=2))
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    assert_gradients_ok(model, loss=md.CrossEntropyLoss(), inputs=x)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_it_is_the_two_layers_on_the_sequence_and_its_reversal(return_sequences: bool) -> None:
    rng = np.random.default_rng(3)
    x, layer = rng.standard_normal((2, 5, 3)), pair("gru", 3, 4, return_sequences=return_sequences)
    fw, bw = md.GRU(3, 4, return_sequences=return_sequences, rng=0), md.GRU(3, 4, return_sequences=return_sequences,
                                                                             rng=1)
    y = layer(x)
    back = bw(x[:, ::-1])
    np.testing.assert_array_equal(y, np.concatenate([fw(x), back[:, ::-1] if return_sequences else back], axis=-1))
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    g_b = g[..., 4:]
    expected = fw.backward(g[..., :4]) + bw.backward(g_b[:, ::-1] if return_sequences else g_b)[:, ::-1]
    np.testing.assert_allclose(dx, expected, rtol=1e-14, atol=1e-15)
    for ours, alone in ((layer.forward_layer, fw), (layer.backward_layer, bw)):
        for mine, theirs in zip(ours.parameters(), alone.parameters(), strict=True):
            np.testing.assert_array_equal(mine.grad, theirs.grad)


def test_backward_params_adds_what_backward_adds() -> None:
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    grads = []
    for method in ("backward", "backward_params"):
        layer = pair("lstm", 2, 3)
        y = layer(x)
        getattr(layer, method)(np.ones_like(y))
        grads.append([p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_array_equal(a, b)


def torch_weights(kind: str, module: object, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """(W_x, W_h) of one direction of a torch nn.RNN/LSTM/GRU (``suffix`` "" or "_reverse")."""
    w_ih, w_hh, b_ih, b_hh = (getattr(module, f"{name}_l0{suffix}").detach().numpy()
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if kind == "gru":
        return np.vstack([b_ih, w_ih.T]), np.vstack([b_hh, w_hh.T])
    return np.vstack([b_ih + b_hh, w_ih.T]), w_hh.T


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_against_pytorch_bidirectional(kind: str, return_sequences: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    N, T, D, H = 3, 5, 4, 6
    theirs = getattr(torch.nn, kind.upper())(D, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    make = KINDS[kind]
    directions = [make(D, H, return_sequences=return_sequences, W_x=W_x, W_h=W_h)
                  for W_x, W_h in (torch_weights(kind, theirs, ""), torch_weights(kind, theirs, "_reverse"))]
    ours = md.Bidirectional(*directions)
    x = np.random.default_rng(5).standard_normal((N, T, D))
    xt = torch.tensor(x, requires_grad=True)
    out, state = theirs(xt)
    h_n = state[0] if kind == "lstm" else state  # (an LSTM's state is (h_n, c_n))
    if not return_sequences:  # each direction's last state: h_n[0] after step T-1, h_n[1] after step 0
        out = torch.cat([h_n[0], h_n[1]], dim=-1)
    g = np.random.default_rng(6).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    np.testing.assert_allclose(ours(x), out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    for layer, suffix in zip(directions, ("", "_reverse"), strict=True):
        w_h = layer.W_h.grad[1:] if kind == "gru" else layer.W_h.grad
        np.testing.assert_allclose(layer.W_x.grad[1:], getattr(theirs, f"weight_ih_l0{suffix}").grad.numpy().T,
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(w_h, getattr(theirs, f"weight_hh_l0{suffix}").grad.numpy().T,
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(layer.W_x.grad[0], getattr(theirs, f"bias_ih_l0{suffix}").grad.numpy(),
                                   rtol=1e-12, atol=1e-14)
        b_hh = layer.W_h.grad[0] if kind == "gru" else layer.W_x.grad[0]  # RNN/LSTM: b_hh adds to b_ih
        np.testing.assert_allclose(b_hh, getattr(theirs, f"bias_hh_l0{suffix}").grad.numpy(), rtol=1e-12, atol=1e-14)


def test_fit_trains_a_bidirectional_classifier() -> None:
    """The label is whether the first step's feature is positive: a forward reader must carry it over
    the whole sequence, the reversed reader sees it last."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 6, 1))
    y = (x[:, 0, 0] > 0).astype(np.int64)
    model = md.Sequential(pair("gru", 1, 4, return_sequences=False), md.Dense(8, 2, rng=3))
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.03),
                        epochs=15, batch_size=16, metrics=["accuracy"], rng=0, verbose=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] >= 0.95


def test_state_dict_names_and_float32() -> None:
    layer = pair("rnn", 2, 3, dtype=np.float32)
    assert set(layer.state_dict()) == {"forward_layer.W_x", "forward_layer.W_h", "backward_layer.W_x",
                                       "backward_layer.W_h", "forward_layer._layout", "backward_layer._layout"}
    y = layer(np.ones((2, 4, 2), np.float32))
    assert y.dtype == np.float32 and y.shape == (2, 4, 6)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# ---------------------------------------------------------------------------------------- refusals
def test_one_layer_for_both_directions_is_refused() -> None:
    lstm = md.LSTM(2, 3)
    with pytest.raises(ValueError, match="share a layer"):
        md.Bidirectional(lstm, lstm)
    with pytest.raises(TypeError, match="expected a Layer as backward_layer, got int"):
        md.Bidirectional(lstm, 3)  # type: ignore[arg-type]
    inner = md.LSTM(2, 3)
    with pytest.raises(ValueError, match="already in the sequence"):  # the used-twice checks look inside
        md.Sequential(md.Bidirectional(md.LSTM(2, 3), md.Sequential(inner)), inner)


def test_reassigning_a_path_to_share_a_layer_is_refused() -> None:
    """The constructor's check ran only once: ``bi.backward_layer = bi.forward_layer`` was accepted and
    back-propagated through the wrong cache (relative errors 1.3-2.0 in the checker)."""
    bi = pair("lstm", 2, 2)
    with pytest.raises(ValueError, match="would share a layer"):
        bi.backward_layer = bi.forward_layer
    with pytest.raises(TypeError, match="expected a Layer as forward_layer, got NoneType"):
        bi.forward_layer = None  # type: ignore[assignment]
    fresh = md.LSTM(2, 2, rng=5)
    bi.backward_layer = fresh  # a layer of its own is fine
    assert bi.backward_layer is fresh and md.GradientChecker(
        bi, inputs=np.random.default_rng(0).standard_normal((2, 3, 2))).run().passed
    residual = md.Residual(md.Dense(3, 3), shortcut=md.Dense(3, 3))
    with pytest.raises(ValueError, match="would share a layer"):
        residual.shortcut = residual.block
    residual.shortcut = None  # the identity again


def test_outputs_that_do_not_line_up_are_refused_and_backward_waits_for_a_good_forward() -> None:
    layer = md.Bidirectional(md.LSTM(2, 3, rng=0), md.LSTM(2, 3, return_sequences=False, rng=1))
    with pytest.raises(md.ShapeError, match=r"one direction returns every step's state and the other its last one "
                                            r"\(\(2, 4, 3\) and \(2, 3\)\); set the same return_sequences"):
        layer(np.ones((2, 4, 2)))
    for method in ("backward", "backward_params"):
        with pytest.raises(md.BackwardBeforeForwardError, match=rf"Bidirectional\.{method}: the last forward "
                                                                r"failed after the forward_layer ran"):
            getattr(layer, method)(np.ones((2, 4, 6)))
    layer.backward_layer = md.LSTM(2, 3, rng=1)
    assert layer.backward(np.ones_like(layer(np.ones((2, 4, 2))))).shape == (2, 4, 2)  # a good forward clears it
    with pytest.raises(md.ShapeError, match=r"each direction must return \(N, T, H\), a state per step, with the "
                                            r"input's \(N, T\) = \(2, 3\), or \(N, H\)"):
        md.Bidirectional(md.ReLU(), md.ReLU())(np.ones((2, 3, 4, 5)))
    flattened = md.Bidirectional(md.Sequential(md.LSTM(2, 3), md.Flatten()), md.Sequential(md.LSTM(2, 3), md.Flatten()))
    flattened(np.ones((2, 4, 2)))  # (N, T*H): taken for last states, as (N, H) is; the steps are not reversed back
    with pytest.raises(md.DTypeError, match="directions' outputs are float64 and float32"):
        md.Bidirectional(md.LSTM(2, 3), md.Sequential(md.LSTM(2, 3), _Cast32()))(np.ones((2, 4, 2)))


class _Cast32(md.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output.astype(np.float64)


def test_bad_input_and_gradient_are_refused_naming_the_direction() -> None:
    layer = pair("rnn", 2, 3)
    with pytest.raises(md.BackwardBeforeForwardError, match="before forward"):
        layer.backward(np.ones((1, 2, 6)))
    with pytest.raises(md.ShapeError, match=r"Bidirectional forward_layer: RNN\(2 -> 3\): expected input of shape"):
        layer(np.ones((1, 2, 5)))
    with pytest.raises(md.ShapeError, match=r"expected a sequence batch \(N, T, \.\.\.\), got shape \(4,\)"):
        layer(np.ones(4))
    layer(np.ones((1, 2, 2)))
    with pytest.raises(md.ShapeError, match=r"Bidirectional\.backward: expected grad_output of shape \(1, 2, 6\)"):
        layer.backward(np.ones((1, 2, 3)))


def test_a_sequential_refuses_a_backward_before_any_layer_adds_a_gradient_after_its_first_container_failed() -> None:
    """A Bidirectional first layer whose backward_layer refused the input had run its forward_layer; the
    Sequential took the failure for one that changed nothing, and its backward ran the head's backward
    (adding to its gradient) before the Bidirectional refused."""
    bi = md.Bidirectional(md.LSTM(2, 3, return_sequences=False, rng=0),
                          md.Sequential(md.LSTM(2, 3, rng=1), md.Flatten(), md.Dense(12, 3, rng=2)))  # T = 4 only
    head = md.Dense(6, 2, rng=3)
    model = md.Sequential(bi, head)
    y = model(np.random.default_rng(0).standard_normal((2, 4, 2)))
    with pytest.raises(md.ShapeError):
        model(np.random.default_rng(1).standard_normal((2, 5, 2)))
    model.zero_grad()
    for method in ("backward", "backward_params"):
        with pytest.raises(md.BackwardBeforeForwardError, match="the last forward failed at layer '0'"):
            getattr(model, method)(np.ones_like(y))
    assert not head.W.has_grad


def test_a_first_bidirectional_that_refused_before_either_direction_ran_keeps_the_good_pass() -> None:
    model = md.Sequential(pair("lstm", 2, 3, return_sequences=False), md.Dense(6, 2, rng=3))
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    y = model(x)
    with pytest.raises(md.ShapeError, match="expected a sequence batch"):
        model(np.ones(4))
    model.zero_grad()
    model.backward(np.ones_like(y))
    again = md.Sequential(pair("lstm", 2, 3, return_sequences=False), md.Dense(6, 2, rng=3))
    again.zero_grad()
    again.backward(np.ones_like(again(x)))
    for mine, theirs in zip(model.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(mine.grad, theirs.grad)
