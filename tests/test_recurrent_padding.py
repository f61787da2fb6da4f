"""A padding mask for RNN, LSTM and GRU: ``layer((x, mask))``, ``layer((x, h_0[, c_0], mask))``.

At a padded step the state is carried over and the output is 0: PyTorch's packed sequences to round-off,
a padded batch equal to each sequence run alone, the gradient checker on the tuple, a bad mask refused
with the last pass kept, and variable-length sequences learned through the padding's noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_layers_recurrent import make
from test_recurrent_initial_state import states

import minidl as md
from minidl.testing import assert_backward_params_contract, assert_gradients_ok


def right_padded(lengths: list[int], T: int) -> np.ndarray:
    return np.arange(T)[None, :] >= np.array(lengths)[:, None]


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("stated", [False, True])
def test_against_pytorch_packed_sequences(kind: str, return_sequences: bool, stated: bool) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_recurrent import from_torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(1)
    N, T, D, H = 4, 6, 3, 5
    lengths = [6, 3, 1, 4]
    name = "RNN" if kind.startswith("rnn") else kind.upper()
    extra = {"nonlinearity": "relu"} if kind == "rnn-relu" else {}
    theirs = getattr(torch.nn, name)(D, H, batch_first=True, dtype=torch.float64, **extra)
    W_x, W_h = from_torch(kind.split("-")[0], theirs, True)
    ours = make(kind, D, H, return_sequences=return_sequences, W_x=W_x, W_h=W_h)
    x = rng.normal(size=(N, T, D))
    initial = states(kind, N, H, rng) if stated else []
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in initial]
    packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    hx = None if not stated else ((st[0], st[1]) if kind == "lstm" else st[0])
    out, last = theirs(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # zeros at the padding
    yt = out if return_sequences else (last[0] if kind == "lstm" else last)[0]
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    y = ours((x, *initial, right_padded(lengths, T)))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    grads = ours.backward(g)
    assert len(grads) == 2 + len(initial) and grads[-1] is None  # one per input, None for the mask
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    for ours_d, theirs_s in zip(grads[1:-1], st, strict=True):
        np.testing.assert_allclose(ours_d, theirs_s.grad.numpy()[0], rtol=1e-11, atol=1e-13)
    rows_h = ours.W_h.grad[1:] if kind == "gru" else ours.W_h.grad
    np.testing.assert_allclose(ours.W_x.grad[1:], theirs.weight_ih_l0.grad.numpy().T, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rows_h, theirs.weight_hh_l0.grad.numpy().T, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_a_padded_batch_is_each_sequence_run_alone(kind: str, return_sequences: bool) -> None:
    rng = np.random.default_rng(2)
    N, T, D, H = 3, 5, 2, 4
    lengths = [5, 2, 3]
    layer, alone = (make(kind, D, H, return_sequences=return_sequences, rng=3) for _ in range(2))
    mask = right_padded(lengths, T)
    x = np.where(mask[:, :, None], rng.normal(scale=30.0, size=(N, T, D)), rng.normal(size=(N, T, D)))
    y = layer((x, mask))
    g = rng.normal(size=y.shape)
    dx, dmask = layer.backward(g)
    assert dmask is None
    expected = [np.zeros_like(p.grad) for p in layer.parameters()]
    for n, L in enumerate(lengths):
        y_n = alone(x[n:n + 1, :L])
        g_n = g[n:n + 1, :L] if return_sequences else g[n:n + 1]
        if return_sequences:
            np.testing.assert_allclose(y[n, :L], y_n[0], rtol=1e-13, atol=1e-14)
            np.testing.assert_array_equal(y[n, L:], 0.0)
        else:
            np.testing.assert_allclose(y[n], y_n[0], rtol=1e-13, atol=1e-14)  # each sequence's own last state
        alone.zero_grad()
        np.testing.assert_allclose(dx[n, :L], alone.backward(g_n)[0], rtol=1e-11, atol=1e-13)
        np.testing.assert_array_equal(dx[n, L:], 0.0)  # the padding reaches nothing
        for e, p in zip(expected, alone.parameters(), strict=True):
            e += p.grad
    for e, p in zip(expected, layer.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, e, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_masked_step_anywhere_carries_the_state_over(kind: str) -> None:
    """A hole in the middle and left padding: the state after a masked step is the state before it."""
    rng = np.random.default_rng(4)
    layer = make(kind, 2, 3, rng=0)
    x = rng.normal(size=(2, 5, 2))
    mask = np.array([[False, True, True, False, False], [True, True, False, False, False]])
    y = layer((x, mask))
    whole = make(kind, 2, 3, rng=0, return_sequences=False)
    np.testing.assert_allclose(whole(x[:1, [0, 3, 4]])[0], y[0, 4], rtol=1e-13)  # the hole skipped
    np.testing.assert_allclose(whole(x[1:, 2:])[0], y[1, 4], rtol=1e-13)  # the left padding skipped
    assert np.all(y[mask] == 0)


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize(("shape", "return_sequences", "stated", "seed"), [
    ((3, 4, 2, 3), True, False, 0), ((2, 3, 3, 2), False, True, 1), ((3, 5, 2, 2), True, True, 2),
])
def test_gradient_checker_on_the_tuple(kind: str, shape: tuple[int, int, int, int], return_sequences: bool,
                                       stated: bool, seed: int) -> None:
    N, T, D, H = shape
    rng = np.random.default_rng(seed)
    mask = rng.random((N, T)) < 0.4
    inputs = (rng.normal(size=(N, T, D)), *(states(kind, N, H, rng) if stated else []), mask)
    report = assert_gradients_ok(make(kind, D, H, return_sequences=return_sequences, rng=seed), inputs=inputs,
                                 seed=seed)
    floats = len(inputs) - 1
    assert [r.name for r in report.results] == [f"input[{i}]" for i in range(floats)] + ["W_x", "W_h"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_backward_params_and_a_frozen_layer(kind: str) -> None:
    rng = np.random.default_rng(5)
    inputs = (rng.normal(size=(3, 4, 2)), *states(kind, 3, 3, rng), right_padded([4, 1, 2], 4))
    assert_backward_params_contract(lambda: make(kind, 2, 3, rng=1), inputs, rng.normal(size=(3, 4, 3)), rtol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_bad_mask_is_refused_and_the_last_pass_kept(kind: str) -> None:
    rng = np.random.default_rng(6)
    layer = make(kind, 2, 3, rng=0)
    x, g = rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 4, 3))
    good = right_padded([4, 2], 4)
    y = layer((x, good))
    assert y.flags.writeable  # a new array (0 at the padding), not the read-only cache
    expected = layer.backward(g)[0]
    who = rf"{kind.upper()}\(2 -> 3\)"
    for bad, error, pattern in [
        (np.zeros((2, 3), dtype=bool), md.ShapeError,
         r"expected padding mask of shape \(N, T\) = \(2, 4\) for an input of shape \(2, 4, 2\), got \(2, 3\)$"),
        (np.zeros((2, 4), dtype=np.int64), None, None),  # an integer array is no mask: taken for a state
        ([[False] * 4] * 2, None, None),
    ]:
        if error is None:
            with pytest.raises((md.ShapeError, md.DTypeError), match=rf"^{who}: "):
                layer((x, bad))
        else:
            with pytest.raises(error, match=rf"^{who}: {pattern}"):
                layer((x, bad))
        np.testing.assert_array_equal(layer.backward(g)[0], expected)
    with pytest.raises(md.ShapeError, match=r"got a tuple of 1"):
        layer((x,))


def test_variable_length_sequences_are_learned_through_noisy_padding() -> None:
    """The label is the sign of the sum of a sequence's real steps; the padding holds large noise."""
    rng = np.random.default_rng(0)
    N, T = 512, 6
    lengths = rng.integers(1, T + 1, size=N)
    mask = np.arange(T)[None, :] >= lengths[:, None]
    values = rng.normal(size=(N, T, 1))
    x = np.where(mask[:, :, None], rng.normal(scale=20.0, size=(N, T, 1)), values)
    y = ((values[:, :, 0] * ~mask).sum(axis=1) > 0).astype(np.int64)

    class Classifier(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.gru = md.GRU(1, 8, return_sequences=False, rng=0)
            self.head = md.Dense(8, 2, rng=1)

        def forward(self, x: Any) -> np.ndarray:
            return self.head(self.gru(x))

        def backward(self, grad_output: np.ndarray) -> Any:
            return self.gru.backward(self.head.backward(grad_output))

    model = Classifier()
    history = model.fit((x, mask), y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.02),
                        epochs=15, batch_size=32, rng=0, verbose=0, metrics=["accuracy"])
    assert history["accuracy"][-1] > 0.9, history["accuracy"]


# ------------------------------------------------------------------------------- Bidirectional
def bidirectional_from_torch(kind: str, module: Any, return_sequences: bool) -> md.Bidirectional:
    """A Bidirectional of two minidl layers holding a torch bidirectional module's two directions."""

    def direction(suffix: str) -> Any:
        w_ih = getattr(module, "weight_ih_l0" + suffix).detach().numpy().T
        w_hh = getattr(module, "weight_hh_l0" + suffix).detach().numpy().T
        b_ih = getattr(module, "bias_ih_l0" + suffix).detach().numpy()
        b_hh = getattr(module, "bias_hh_l0" + suffix).detach().numpy()
        W_x, W_h = (np.vstack([b_ih, w_ih]), np.vstack([b_hh, w_hh])) if kind == "gru" else \
            (np.vstack([b_ih + b_hh, w_ih]), w_hh)
        return make(kind, w_ih.shape[0], w_hh.shape[0], W_x=W_x, W_h=W_h, return_sequences=return_sequences)

    return md.Bidirectional(direction(""), direction("_reverse"))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_against_pytorch_packed_sequences(kind: str, return_sequences: bool) -> None:
    """The reversed reader of a right-padded sequence crosses the padding first, from its zero state."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(7)
    N, T, D, H = 4, 6, 3, 5
    lengths = [6, 3, 1, 4]
    theirs = getattr(torch.nn, kind.upper())(D, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    ours = bidirectional_from_torch(kind, theirs, return_sequences)
    x = rng.normal(size=(N, T, D))
    xt = torch.tensor(x, requires_grad=True)
    out, last = theirs(pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    h = last[0] if kind == "lstm" else last
    yt = out if return_sequences else torch.cat([h[0], h[1]], dim=1)
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours((x, right_padded(lengths, T))), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    dx, dmask = ours.backward(g)
    assert dmask is None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradient_checker_and_backward_params(kind: str, return_sequences: bool) -> None:
    rng = np.random.default_rng(8)

    def build() -> md.Bidirectional:
        return md.Bidirectional(make(kind, 2, 3, rng=0, return_sequences=return_sequences),
                                make(kind, 2, 3, rng=1, return_sequences=return_sequences))

    inputs = (rng.normal(size=(3, 4, 2)), right_padded([4, 2, 1], 4))
    report = assert_gradients_ok(build(), inputs=inputs)
    assert report.results[0].name == "input[0]"
    g = rng.normal(size=build()(inputs).shape)
    assert_backward_params_contract(build, inputs, g, rtol=1e-13)
    layer = build()
    layer(inputs)
    expected = layer.backward(g)[0]
    with pytest.raises(md.ShapeError, match=r"Bidirectional: expected padding mask of shape \(N, T\) = \(3, 4\)"):
        layer((inputs[0], inputs[1][:, :3]))
    with pytest.raises(md.ShapeError, match=r"Bidirectional: expected x or a pair \(x, padding_mask\), got a tuple"):
        layer((inputs[0], inputs[1], inputs[1]))
    np.testing.assert_array_equal(layer.backward(g)[0], expected)


# ------------------------------------------------------------------------------- Stack
def test_a_stack_of_lstms_is_pytorchs_two_layers_on_packed_sequences() -> None:
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence

    rng = np.random.default_rng(9)
    N, T, D, H = 4, 6, 3, 5
    lengths = [6, 4, 2, 1]
    theirs = torch.nn.LSTM(D, H, num_layers=2, batch_first=True, dtype=torch.float64)

    def layer(k: int, size: int, last: bool) -> Any:
        w_ih = getattr(theirs, f"weight_ih_l{k}").detach().numpy().T
        w_hh = getattr(theirs, f"weight_hh_l{k}").detach().numpy().T
        b = (getattr(theirs, f"bias_ih_l{k}") + getattr(theirs, f"bias_hh_l{k}")).detach().numpy()
        return md.LSTM(size, H, W_x=np.vstack([b, w_ih]), W_h=w_hh, return_sequences=not last)

    stack = md.Stack(layer(0, D, False), layer(1, H, True))
    x = rng.normal(size=(N, T, D))
    xt = torch.tensor(x, requires_grad=True)
    _, (h_n, _) = theirs(pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False))
    g = rng.normal(size=(N, H))
    h_n[1].backward(torch.tensor(g))
    mask = right_padded(lengths, T)
    np.testing.assert_allclose(stack((x, mask)), h_n[1].detach().numpy(), rtol=1e-12, atol=1e-13)
    dx, dmask = stack.backward(g)
    assert dmask is None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    sequential = md.Sequential(layer(0, D, False), layer(1, H, True))
    assert np.abs(sequential((x, mask)) - stack((x, mask))).max() > 1e-3  # (the mask reaches its first layer only)


def test_stack_checks_gradients_contract_and_refusals() -> None:
    rng = np.random.default_rng(10)

    def build() -> md.Stack:
        return md.Stack(md.GRU(2, 3, rng=0), md.Bidirectional(md.GRU(3, 2, rng=1), md.GRU(3, 2, rng=2)),
                        md.LSTM(4, 3, return_sequences=False, rng=3))

    inputs = (rng.normal(size=(3, 4, 2)), right_padded([4, 2, 1], 4))
    report = assert_gradients_ok(build(), inputs=inputs, check_layers=True)
    assert report.results[0].name == "input[0]" and len(report.layers) >= 3
    assert_backward_params_contract(build, inputs, rng.normal(size=(3, 3)), rtol=1e-13)
    stack = build()
    assert len(stack) == 3 and isinstance(stack[1], md.Bidirectional) and [type(s).__name__ for s in stack] == [
        "GRU", "Bidirectional", "LSTM"]
    with pytest.raises(ValueError, match="Stack: give at least one layer"):
        md.Stack()
    with pytest.raises(TypeError, match="Stack: layer 1 is a str, expected a minidl Layer"):
        md.Stack(md.Tanh(), "tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Stack: layer 1 is layer 0 again"):
        md.Stack(stack[0], stack[0])
    with pytest.raises(md.DTypeError, match=r"Stack: x mixes numpy arrays with other values \(item 1: NoneType\)"):
        stack((inputs[0], None))
    g = rng.normal(size=(3, 3))
    stack(inputs)
    expected = stack.backward(g)[0]
    with pytest.raises(md.ShapeError, match=r"^Stack layer 0: GRU\(2 -> 3\): expected padding mask of shape"):
        stack((inputs[0], inputs[1][:, :2]))  # refused by the first layer before it ran: the last pass stays
    np.testing.assert_array_equal(stack.backward(g)[0], expected)

    def interrupted(x: Any) -> np.ndarray:
        raise KeyboardInterrupt

    object.__setattr__(stack[1], "forward", interrupted)  # not a minidl error, after layer 0 ran
    with pytest.raises(KeyboardInterrupt):
        stack(inputs)
    grads = [p.grad.copy() for p in stack.parameters()]
    with pytest.raises(md.BackwardBeforeForwardError, match=r"Stack\.backward: no forward ran to its end"):
        stack.backward(g)
    assert all(np.array_equal(a, p.grad) for a, p in zip(grads, stack.parameters(), strict=True))  # nothing added


@pytest.mark.parametrize(("make", "hidden"), [(lambda: md.RNN(3, 4, rng=0), 4), (lambda: md.GRU(3, 4, rng=0), 4),
                                              (lambda: md.LSTM(3, 4, rng=0), 4), (lambda: md.LSTM(3, 5, rng=0), 5)])
def test_a_float_mask_is_named_as_a_mask_not_as_a_state(make: Any, hidden: int) -> None:
    """A 0/1 float mask (as built for PyTorch) got "expected h_0 of shape (N, 4)" from RNN/GRU and, from
    an LSTM, a list of forms that included (x, padding_mask), neither saying what a mask must be."""
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    mask = np.array([[0, 0, 0, 1, 1], [0] * 5], float)
    with pytest.raises(md.ShapeError, match=r"got (a tuple of 2 whose last item has )?shape \(2, 5\), which is x's "
                                            r"\(N, T\): a padding mask must be booleans \(mask.astype\(bool\)"):
        make()((x, mask))
    layer = make()
    assert layer((x, mask.astype(bool))).shape == (2, 5, hidden)


def test_recurrent_layers_name_themselves_for_an_unknown_argument() -> None:
    """LSTM and GRU have no __init__ of their own: Python named _Recurrent.__init__."""
    with pytest.raises(TypeError, match=r"LSTM.__init__\(\) got an unexpected keyword argument 'batch_first': .*"
                                        r"always take batch-first input"):
        md.LSTM(3, 4, batch_first=True)
    with pytest.raises(TypeError, match=r"GRU.__init__\(\) .* 'nonlinearity': only RNN takes one"):
        md.GRU(3, 4, nonlinearity="relu")
    with pytest.raises(TypeError, match=r"RNN.__init__\(\) .* 'num_layers': stack layers with md.Stack"):
        md.RNN(3, 4, num_layers=2)
    with pytest.raises(TypeError, match=r"^LSTM.__init__\(\) got an unexpected keyword argument 'spam'$"):
        md.LSTM(3, 4, spam=1)
    for cell in (md.LSTM, md.GRU, md.RNN):  # PyTorch's third positional argument, num_layers
        with pytest.raises(TypeError, match=rf"^{cell.__name__}.__init__\(\) takes input_size and hidden_size by "
                                            r"position, the rest by keyword; got 3 .*md.Stack"):
            cell(3, 4, 2)


def test_the_one_hot_state_warning_points_at_the_user_s_line() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    wrapped = md.Sequential(md.Stack(md.GRU(2, 4, rng=0)))
    with pytest.warns(UserWarning, match="holds only 0s and 1s") as caught:
        wrapped((x, np.eye(3, 4)))
    assert caught[0].filename == __file__  # not minidl's own call (Layer.__call__, Stack.forward, ...)
