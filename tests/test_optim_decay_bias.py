"""``decay_bias=False``: the weight decay leaves out the biases (``Parameter.bias_rows``: the bias row 0 that
Dense, the convolutions, the recurrent layers and attention absorb, and a norm layer's ``beta`` whole), as
PyTorch's param group of biases with ``weight_decay=0`` does; coupled (L2) and decoupled (AdamW) decay."""

from __future__ import annotations

import copy
import inspect
import io
import pickle

import numpy as np
import pytest

import minidl as md

#: every optimizer with a weight_decay, with settings that decay (coupled, and decoupled where it has it)
DECAYING = [
    (md.SGD, {"lr": 0.1, "weight_decay": 0.1}),
    (md.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (md.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (md.Adam, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    (md.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (md.Adamax, {"lr": 0.01, "weight_decay": 0.1}),
    (md.NAdam, {"lr": 0.01, "weight_decay": 0.1}),
    (md.NAdam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (md.RAdam, {"lr": 0.01, "weight_decay": 0.1}),
    (md.RAdam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (md.RMSprop, {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.5, "centered": True}),
    (md.Adagrad, {"lr": 0.1, "weight_decay": 0.1}),
    (md.Adadelta, {"lr": 1.0, "weight_decay": 0.1}),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(DECAYING)]


def biased_model() -> md.Sequential:
    """A layer of each kind with a bias: absorbed (row 0) or a parameter of its own (beta)."""
    return md.Sequential(md.Conv2D(2, 3, 3, rng=0), md.ConvTranspose2D(3, 2, 2, rng=1), md.BatchNorm2d(2),
                         md.Flatten(), md.Dense(2 * 5 * 5, 4, rng=2), md.LayerNorm(4))


def test_the_layers_say_where_their_bias_is() -> None:
    row0 = slice(0, 1)
    assert md.Dense(3, 2).W.bias_rows == row0 and md.Dense(3, 2, bias=False).W.bias_rows is None
    for layer in (md.Conv2D(2, 3, 3), md.Conv1D(2, 3, 3), md.ConvTranspose2D(2, 3, 2), md.ConvTranspose1D(2, 3, 2)):
        assert layer.W.bias_rows == row0, type(layer).__name__
    assert md.Conv2D(2, 3, 3, bias=False).W.bias_rows is None
    lstm, gru = md.LSTM(3, 4), md.GRU(3, 4)
    assert lstm.W_x.bias_rows == row0 and lstm.W_h.bias_rows is None  # (LSTM's W_h has no bias row)
    assert gru.W_x.bias_rows == row0 and gru.W_h.bias_rows == row0  # (GRU's b_hn)
    assert md.RNN(3, 4, bias=False).W_x.bias_rows is None
    attention = md.MultiHeadAttention(4, 2)
    assert attention.W_qkv.bias_rows == row0 and attention.W_o.bias_rows == row0
    assert md.MultiHeadAttention(4, 2, bias=False).W_o.bias_rows is None
    for norm in (md.BatchNorm1d(3), md.LayerNorm((2, 3)), md.GroupNorm(1, 3), md.InstanceNorm2d(3, affine=True)):
        assert norm.beta.bias_rows == slice(None) and norm.gamma.bias_rows is None, type(norm).__name__
    assert md.Embedding(5, 3).W.bias_rows is None and md.PReLU().weight.bias_rows is None


@pytest.mark.parametrize("cls, kw", DECAYING, ids=IDS)
def test_a_zero_gradient_moves_the_weights_only(cls, kw) -> None:
    """With zero gradients only the decay moves a parameter: under decay_bias=False the bias rows and beta
    stay exactly, every weight moves; with the default every one moves (zero-gradient SGD: the closed
    form ``w * (1 - lr * wd)``, AdamW's too)."""
    for decay_bias in (False, True):
        model = biased_model()
        for p in model.parameters():
            p.data = p.data + 0.5  # (beta and gamma start at 0 and 1: non-zero, not all equal)
        before = [p.data.copy() for p in model.parameters()]
        opt = cls(model.parameters(), decay_bias=decay_bias, **kw)
        for _ in range(3):
            for p in model.parameters():
                p.grad = np.zeros_like(p.data)
            opt.step()
        for (name, p), old in zip(model.named_parameters(), before, strict=True):
            bias = np.zeros(p.shape, bool)
            if p.bias_rows is not None:
                bias[p.bias_rows] = True
            assert (p.data[~bias] != old[~bias]).all(), name  # the weights (gamma too) decay
            if decay_bias:
                assert (p.data[bias] != old[bias]).all(), name
            else:
                np.testing.assert_array_equal(p.data[bias], old[bias], err_msg=name)
            if (cls is md.SGD and "momentum" not in kw) or cls is md.AdamW:
                shrink = (1 - kw["lr"] * kw["weight_decay"]) ** 3
                np.testing.assert_allclose(p.data[~bias], old[~bias] * shrink, rtol=1e-14)


@pytest.mark.parametrize("cls, kw", DECAYING, ids=IDS)
def test_the_default_and_a_parameter_without_bias_rows_are_as_before(cls, kw) -> None:
    """decay_bias=True (the default), and decay_bias=False on parameters without bias rows, step to the
    bit as a parameter with no bias rows does: the bias option changes nothing else."""
    rng = np.random.default_rng(3)
    w0, grads = rng.standard_normal((5, 3)), rng.standard_normal((6, 5, 3))
    results = []
    for bias_rows, decay_bias in ((None, True), (slice(0, 1), True), (None, False)):
        p = md.Parameter(w0, bias_rows=bias_rows)
        opt = cls([p], decay_bias=decay_bias, **kw)
        for g in grads:
            p.grad = g.copy()
            opt.step()
        results.append(p.data)
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])


@pytest.mark.parametrize("cls, kw", DECAYING, ids=IDS)
def test_against_pytorch_with_a_no_decay_group_of_biases(cls, kw) -> None:
    """An absorbed bias row, a weight matrix and a beta-like bias: minidl with decay_bias=False against
    torch.optim with the biases in a param group of weight_decay=0, 20 steps of random gradients."""
    torch = pytest.importorskip("torch")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # (NAdam's mu_product is a tensor of the default dtype)
    try:
        _compare_with_torch(torch, cls, kw)
    finally:
        torch.set_default_dtype(default)


def _compare_with_torch(torch, cls, kw) -> None:
    rng = np.random.default_rng(4)
    weight, bias, beta = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal(3)
    grads = rng.standard_normal((20, 4 + 1, 3)), rng.standard_normal((20, 3))
    W = md.Parameter(np.vstack([bias, weight.T]), bias_rows=slice(0, 1))  # Dense's layout: (in + 1, out)
    B = md.Parameter(beta, bias_rows=slice(None))
    ours = cls([W, B], decay_bias=False, **kw)
    tw, tb, tbeta = (torch.tensor(a.copy(), requires_grad=True) for a in (weight, bias, beta))
    theirs = getattr(torch.optim, cls.__name__)([{"params": [tw]}, {"params": [tb, tbeta], "weight_decay": 0.0}],
                                                **kw)
    for g, g_beta in zip(*grads, strict=True):
        W.grad, B.grad = g.copy(), g_beta.copy()
        ours.step()
        tw.grad, tb.grad, tbeta.grad = (torch.tensor(a.copy()) for a in (g[1:].T, g[0], g_beta))
        theirs.step()
    np.testing.assert_allclose(W.data[1:], tw.detach().numpy().T, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(W.data[0], tb.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(B.data, tbeta.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name, kw", [("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
                                      ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
                                      ("AdamW", {"lr": 0.01, "weight_decay": 0.1})])
def test_a_model_against_pytorch_with_a_no_decay_group_of_biases(name, kw) -> None:
    """A ported CNN (conv, dense, layer norm) trained 15 steps: minidl's decay_bias=False against torch's
    usual recipe, every parameter named ``*.bias`` in a group with weight_decay=0."""
    torch = pytest.importorskip("torch")
    from minidl.porting import state_dict_from_torch
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        # (no batch norm right after the conv: its bias would get a zero gradient, which Adam's steps blow up
        # from round-off)
        tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(3 * 4 * 4, 4), torch.nn.LayerNorm(4))
        model = md.Sequential(md.Conv2D(2, 3, 3), md.ReLU(), md.Flatten(), md.Dense(3 * 4 * 4, 4), md.LayerNorm(4))
        model.load_state_dict(state_dict_from_torch(model, tm.state_dict()))
        named = list(tm.named_parameters())
        groups = [{"params": [p for n, p in named if not n.endswith("bias")]},
                  {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0}]
        theirs = getattr(torch.optim, name)(groups, **kw)
        ours = getattr(md, name)(model.parameters(), decay_bias=False, **kw)
        rng = np.random.default_rng(5)
        x, y = rng.standard_normal((8, 2, 6, 6)), rng.integers(0, 4, 8)
        loss = md.CrossEntropyLoss()
        for _ in range(15):
            theirs.zero_grad()
            torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            theirs.step()
            ours.zero_grad()
            loss(model(x), y)
            model.backward(loss.backward())
            ours.step()
        expected = state_dict_from_torch(model, tm.state_dict())
        for key, p in model.named_parameters():
            np.testing.assert_allclose(p.data, expected[key], rtol=1e-9, atol=1e-11, err_msg=key)
    finally:
        torch.set_default_dtype(default)


def test_the_setting_is_saved_restored_and_shown() -> None:
    model = biased_model()
    opt = md.AdamW(model.parameters(), weight_decay=0.1, decay_bias=False)
    assert opt.hyper["decay_bias"] is False and repr(opt).endswith("maximize=False, decay_bias=False)")
    state = opt.state_dict()
    assert state["hyper"]["decay_bias"] is False
    other = md.AdamW(model.parameters(), weight_decay=0.1)
    buffer = io.BytesIO()
    md.save({"optimizer": state}, buffer)
    buffer.seek(0)
    other.load_state_dict(md.load(buffer)["optimizer"])
    assert other.hyper["decay_bias"] is False
    assert copy.deepcopy(opt).hyper["decay_bias"] is False
    assert pickle.loads(pickle.dumps(opt)).hyper["decay_bias"] is False
    # a state saved before the option existed decayed the biases: it loads as decay_bias=True
    del state["hyper"]["decay_bias"]
    other.load_state_dict(state)
    assert other.hyper["decay_bias"] is True
    assert list(other.hyper) == list(opt.hyper)  # (in the constructor's order: the same repr)
    state["hyper"]["decay_bias"] = "no"
    with pytest.raises(md.StateDictError, match="hyper-parameter 'decay_bias': expected a bool, got 'no'"):
        other.load_state_dict(state)


def test_the_setting_is_checked_and_only_where_there_is_a_weight_decay() -> None:
    params = md.Dense(2, 2).parameters()
    for cls in {cls for cls, _ in DECAYING}:
        assert inspect.signature(cls).parameters["decay_bias"].kind is inspect.Parameter.KEYWORD_ONLY
        assert list(cls(params, lr=0.1).hyper)[-1] == "decay_bias", cls.__name__
    with pytest.raises(TypeError, match="AdamW: decay_bias must be a bool, got str 'False'"):
        md.AdamW(params, decay_bias="False")
    with pytest.raises(TypeError, match="unexpected keyword argument 'decay_bias'"):
        md.Rprop(params, decay_bias=False)  # (no weight decay)


def test_the_no_groups_message_names_the_option() -> None:
    params = md.Dense(2, 2).parameters()
    with pytest.raises(TypeError, match="decay_bias=False"):
        md.AdamW([{"params": params, "weight_decay": 0.0}])


def test_bias_rows_is_checked_and_survives_copies() -> None:
    p = md.Parameter(np.zeros((3, 2)), bias_rows=slice(0, 1))
    assert repr(p) == "Parameter(shape=(3, 2), dtype=float64, bias_rows=slice(0, 1, None))"
    for bad in (0, slice(0, 2, 2), slice(0.0, 1), "0"):
        with pytest.raises(TypeError, match=r"Parameter.bias_rows must be None or a slice of rows"):
            p.bias_rows = bad
    with pytest.raises(ValueError, match="a 0-d parameter has no rows"):
        md.Parameter(1.0, bias_rows=slice(None))
    assert pickle.loads(pickle.dumps(p)).bias_rows == slice(0, 1) and copy.deepcopy(p).bias_rows == slice(0, 1)
    assert p.bias_rows == slice(0, 1)
    p.bias_rows = None
    assert p.bias_rows is None


def test_a_parameter_pickled_before_bias_rows_existed_has_none() -> None:
    p = md.Parameter(np.ones((2, 2)))
    reduced = p.__reduce_ex__(2)
    _, slots = reduced[2]
    del slots["_bias_rows"]  # what an earlier minidl pickled
    restored = copy._reconstruct(p, None, *reduced)  # (the path pickle and deepcopy take)
    assert restored.bias_rows is None
    np.testing.assert_array_equal(restored.data, p.data)
