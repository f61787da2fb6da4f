"""A whole training checkpoint (``{"model": ..., "optimizer": ..., "epoch": 3}``) given where one of its entries
belongs: the optimizer's ``load_state_dict`` names the entry to pass, as the model's does; the model's with
``strict=False`` refuses it (it would load nothing) instead of returning quietly; and PyTorch's parameter groups
given to an optimizer get a message saying minidl has none and what to do instead.  Every refusal changes nothing."""

from __future__ import annotations

import copy
import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal

OPTIMIZERS = [md.SGD, md.Adam, md.AdamW, md.Adamax, md.NAdam, md.RAdam, md.RMSprop, md.Adagrad, md.Adadelta, md.Rprop]


def _model() -> md.Sequential:
    """Parameters, batch norm buffers and a dropout generator: every kind of state a model loads."""
    return md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Dropout(0.5, rng=1), md.Dense(4, 2, rng=2))


def _trained(make: Any) -> tuple[md.Sequential, md.Optimizer]:
    """A model and an optimizer after two steps (moments and step counts set, gradients left in place)."""
    model = _model()
    opt = make(model.parameters(), lr=0.01)
    x, y = np.random.default_rng(3).normal(size=(6, 3)), np.arange(6) % 2
    loss = md.CrossEntropyLoss()
    for _ in range(2):
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    return model, opt


def _snapshot(model: md.Layer, opt: md.Optimizer | None = None) -> dict[str, Any]:
    """Everything a refused load must leave alone: parameters, gradients, buffers, generators, and the
    optimizer's state and hyper-parameters."""
    snap: dict[str, Any] = {"model": model.state_dict(generators=True),
                            "grads": {name: None if p.grad is None else p.grad.copy()
                                      for name, p in model.named_parameters()}}
    if opt is not None:
        snap["opt"] = opt.state_dict()
        snap["hyper"] = dict(opt.hyper)
    return snap


def _checkpoint(model: md.Layer, opt: md.Optimizer) -> dict[str, Any]:
    return {"model": model.state_dict(generators=True), "optimizer": opt.state_dict(), "epoch": 3}


# ------------------------------------------------------------------ 1. the optimizer given a whole checkpoint
@pytest.mark.parametrize("make", OPTIMIZERS, ids=lambda c: c.__name__)
def test_optimizer_given_a_whole_checkpoint_names_the_entry_to_pass(make: Any, tmp_path: pathlib.Path) -> None:
    model, opt = _trained(make)
    checkpoint = _checkpoint(model, opt)
    md.save(checkpoint, tmp_path / "run.ckpt")
    other_model, other = _trained(make)
    other.lr = 0.5  # differs from the checkpoint's, so a partial load would show
    before = _snapshot(other_model, other)
    name = make.__name__
    for state in (checkpoint, md.load(tmp_path / "run.ckpt")):
        with pytest.raises(md.StateDictError) as caught:
            other.load_state_dict(state)
        assert caught.value.args[0].splitlines() == [
            f"{name}.load_state_dict refused the state: missing key 'type'; missing key 'hyper'; missing key 'state'",
            "The state holds a nested optimizer state dict under 'optimizer', as a training checkpoint does: pass "
            "state['optimizer']",
        ]
        assert states_equal(_snapshot(other_model, other), before)
    other.load_state_dict(checkpoint["optimizer"])  # as the hint says
    assert states_equal(other.state_dict(), opt.state_dict()) and other.lr == 0.01


def test_the_optimizer_hint_prefers_its_own_type_and_says_when_the_type_differs() -> None:
    model, adam = _trained(md.Adam)
    sgd = md.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = sgd.state_dict()
    # two optimizers in one checkpoint (a GAN's): the one saved by this optimizer's class is named
    with pytest.raises(md.StateDictError, match=r"\nThe state holds a nested optimizer state dict under 'opt_g', as a "
                                                r"training checkpoint does: pass state\['opt_g'\]$"):
        sgd.load_state_dict({"opt_d": adam.state_dict(), "opt_g": sgd.state_dict(), "step": 7})
    # only another optimizer's: named, and the mismatch said (passing it would be refused for its type)
    with pytest.raises(md.StateDictError) as caught:
        sgd.load_state_dict({"net": model.state_dict(), "optim": adam.state_dict()})
    assert caught.value.args[0].splitlines()[1] == (
        "The state holds a nested optimizer state dict under 'optim', as a training checkpoint does: pass "
        "state['optim'] (it was saved by 'Adam', this is 'SGD')")
    assert states_equal(sgd.state_dict(), before)


def test_no_optimizer_hint_without_a_nested_optimizer_state() -> None:
    model, opt = _trained(md.Adam)
    for state in ({"epoch": 3}, {"model": model.state_dict()}, {"optimizer": {"type": "Adam", "hyper": {}}},
                  {"optimizer": [opt.state_dict()]}):
        with pytest.raises(md.StateDictError) as caught:
            opt.load_state_dict(state)
        assert caught.value.args[0] == ("Adam.load_state_dict refused the state: missing key 'type'; missing key "
                                        "'hyper'; missing key 'state'")
    # an odd 'type' in the nested state (not a str) still gives the hint, and no error of its own
    odd = {**opt.state_dict(), "type": np.array(["Adam"])}
    with pytest.raises(md.StateDictError, match=r"pass state\['optimizer'\] \(it was saved by array"):
        opt.load_state_dict({"optimizer": odd})


# ----------------------------------------------------- 2. the model given a whole checkpoint with strict=False
def test_strict_false_refuses_a_whole_checkpoint_that_would_load_nothing(tmp_path: pathlib.Path) -> None:
    model, opt = _trained(md.Adam)
    checkpoint = _checkpoint(model, opt)
    md.save(checkpoint, tmp_path / "run.ckpt")
    other, _ = _trained(md.SGD)
    other[2].rng.normal(size=5)  # the generator moved too, so a load of it would show
    before = _snapshot(other)
    for state in (checkpoint, md.load(tmp_path / "run.ckpt")):
        with pytest.raises(md.StateDictError) as caught:
            other.load_state_dict(state, strict=False)
        assert caught.value.args[0].splitlines() == [
            "Sequential.load_state_dict refused the state (strict=False): none of its keys ('model', 'optimizer', "
            "'epoch') names a parameter, buffer or generator of this Sequential, so nothing would be loaded; "
            "nothing was changed",
            "The state holds a nested state dict under 'model', as a training checkpoint does: pass state['model']",
        ]
        assert states_equal(_snapshot(other), before)
    assert other.load_state_dict(checkpoint["model"], strict=False) == md.LoadResult([], [])  # as the hint says
    assert states_equal(other.state_dict(generators=True), model.state_dict(generators=True))


def test_strict_false_hint_names_the_key_and_shortens_a_long_key_list() -> None:
    model = _model()
    state = {f"meta{i}": i for i in range(6)} | {"net": {"0.W": model[0].W.data}}
    with pytest.raises(md.StateDictError) as caught:
        model.load_state_dict(state, strict=False)
    assert caught.value.args[0].splitlines() == [
        "Sequential.load_state_dict refused the state (strict=False): none of its keys ('meta0', 'meta1', 'meta2', "
        "'meta3', 'meta4', ...) names a parameter, buffer or generator of this Sequential, so nothing would be "
        "loaded; nothing was changed",
        "The state holds a nested state dict under 'net', as a training checkpoint does: pass state['net']",
    ]
    # a nested state holding only a generator's key is the model's too
    with pytest.raises(md.StateDictError, match=r"pass state\['model'\]$"):
        model.load_state_dict({"model": {"2.rng": model[2].rng.bit_generator.state}}, strict=False)


def test_strict_false_still_returns_the_skipped_keys_when_something_loads_or_nothing_is_nested() -> None:
    model = _model()
    twin = md.Sequential(md.Dense(3, 4, rng=7), md.BatchNorm1d(4), md.Dropout(0.5, rng=8), md.Dense(4, 2, rng=9))
    # a key of the model's beside the nested checkpoint: that one loads, the rest is reported, as PyTorch's
    result = model.load_state_dict({"0.W": twin[0].W.data, "model": twin.state_dict()}, strict=False)
    assert isinstance(result, md.LoadResult) and result.unexpected_keys == ["model"]
    assert "0.W" not in result.missing_keys and "3.W" in result.missing_keys
    np.testing.assert_array_equal(model[0].W.data, twin[0].W.data)
    # nothing of the model's anywhere (another model's state): reported, not refused
    result = model.load_state_dict({"encoder.W": np.zeros(2), "extra": {"lr": 0.1}}, strict=False)
    assert result.unexpected_keys == ["encoder.W", "extra"] and "0.W" in result.missing_keys
    assert model.load_state_dict({}, strict=False).missing_keys == list(model.state_dict())
    # a model with no state at all: a nested mapping cannot hold its keys
    assert md.Sequential(md.ReLU()).load_state_dict({"model": {}}, strict=False) == md.LoadResult([], ["model"])


# ------------------------------------------------------------------------- 3. PyTorch's parameter groups
_GROUPS = ("minidl's optimizers have no parameter groups and take a flat iterable of Parameters: "
           "{n}(model.parameters(), ...).  For a learning rate per group, make one optimizer per group "
           "({n}(group_a, lr=0.1) and {n}(group_b, lr=0.01)) and call each one's zero_grad and step in your own "
           "loop (fit takes one optimizer)")


@pytest.mark.parametrize("make", OPTIMIZERS, ids=lambda c: c.__name__)
def test_parameter_groups_get_a_precise_message(make: Any) -> None:
    model = _model()
    name = make.__name__
    groups = [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[3].parameters(), "lr": 0.01}]
    untouched = copy.deepcopy(groups)
    tail = re.escape(_GROUPS.format(n=name))
    with pytest.raises(TypeError, match=rf"^{name}: params\[0\] is a dict with 'params', a PyTorch-style parameter "
                                        rf"group; {tail}$"):
        make(groups, lr=0.1)
    with pytest.raises(TypeError, match=rf"^{name}: params is a dict with 'params', a PyTorch-style parameter "
                                        rf"group; {tail}$"):
        make(groups[0], lr=0.1)
    with pytest.raises(TypeError, match=rf"^{name}: params\[4\] is a dict with 'params', a PyTorch-style"):
        make([*model.parameters(), {"params": []}], lr=0.1)
    assert [[p.shape for p in g["params"]] for g in groups] == [[p.shape for p in g["params"]] for g in untouched]


def test_other_dicts_keep_the_plain_message_and_the_advice_works() -> None:
    model = _model()
    with pytest.raises(TypeError, match=r"^SGD: params\[0\] is a dict, expected a Parameter$"):
        md.SGD([{"weights": model[0].W}], lr=0.1)
    # one optimizer per group, each with its own lr, as the message says
    head, body = md.SGD(model[3].parameters(), lr=0.1), md.SGD(model[0].parameters(), lr=0.01)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    w_head, w_body = model[3].W.data.copy(), model[0].W.data.copy()
    head.step()
    body.step()
    np.testing.assert_allclose(model[3].W.data, w_head - 0.1)
    np.testing.assert_allclose(model[0].W.data, w_body - 0.01)
