"""A whole training checkpoint (``{"model": ..., "optimizer": ..., "epoch": 3}``) given where one of its entries
belongs: the optimizer's ``load_state_dict`` names the entry to pass, as the model's does.  Every refusal changes
nothing."""

from __future__ import annotations

import pathlib
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
