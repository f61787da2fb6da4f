"""A whole training checkpoint (``{"model": ..., "optimizer": ..., "epoch": 3}``) given where one of its entries
belongs: the optimizer's ``load_state_dict`` names the entry to pass, as the model's does; the model's with
``strict=False`` refuses it (it would load nothing) instead of returning quietly; and PyTorch's parameter groups
given to an optimizer get a message saying minidl has none and what to do instead.  Every refusal changes nothing."""

from __future__ import annotations

import copy
import pathlib
import re
from collections.abc import Iterator, Mapping
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


def _loaded_keys(model: md.Layer) -> list[str]:
    """The keys of ``model.state_dict()`` that a load reports missing: all but the layouts (``0._layout``), which
    a state may leave out."""
    return [key for key in model.state_dict() if not key.endswith("_layout")]


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
                  {"optimizer": [opt.state_dict()]}, {"optimizer": {"type": "Adam", "hyper": None, "state": None}},
                  {"optimizer": {**opt.state_dict(), "state": [{}] * 4}},
                  {"optimizer": {**opt.state_dict(), "hyper": 0.1}}):
        with pytest.raises(md.StateDictError) as caught:
            opt.load_state_dict(state)
        assert caught.value.args[0] == ("Adam.load_state_dict refused the state: missing key 'type'; missing key "
                                        "'hyper'; missing key 'state'")
    # an odd 'type' in the nested state (not a str) still gives the hint, and no error of its own
    odd = {**opt.state_dict(), "type": np.array(["Adam"])}
    with pytest.raises(md.StateDictError, match=r"pass state\['optimizer'\] \(it was saved by array"):
        opt.load_state_dict({"optimizer": odd})


def test_of_several_optimizer_states_of_its_class_the_one_with_its_parameter_count_is_named() -> None:
    model, adam = _trained(md.Adam)  # 4 parameters
    small = md.Adam(md.Dense(2, 2, rng=0).parameters())  # 1 parameter
    before = adam.state_dict()
    # a GAN's checkpoint: the discriminator's Adam first, this (the generator's) second
    gan = {"opt_d": small.state_dict(), "opt_g": adam.state_dict(), "step": 7}
    with pytest.raises(md.StateDictError) as caught:
        adam.load_state_dict(gan)
    assert caught.value.args[0].splitlines()[1] == (
        "The state holds a nested optimizer state dict under 'opt_g', as a training checkpoint does: pass "
        "state['opt_g']")
    assert states_equal(adam.state_dict(), before)
    adam.load_state_dict(gan["opt_g"])  # as the hint says
    # two of its class and of its parameter count: both named
    twin = md.Adam(_model().parameters(), lr=0.5)
    with pytest.raises(md.StateDictError) as caught:
        adam.load_state_dict({"opt_a": twin.state_dict(), "opt_b": adam.state_dict()})
    assert caught.value.args[0].splitlines()[1] == (
        "The state holds nested optimizer state dicts under 'opt_a' and 'opt_b', as a training checkpoint does: "
        "pass the one for this Adam: state['opt_a'] or state['opt_b']")
    # none of its count: every one of its class is named
    with pytest.raises(md.StateDictError) as caught:
        adam.load_state_dict({"a": small.state_dict(), "b": md.Adam(md.Dense(2, 2).parameters()).state_dict()})
    assert caught.value.args[0].splitlines()[1].endswith("pass the one for this Adam: state['a'] or state['b']")
    # only other classes': the one with this optimizer's count, with the class that saved it
    sgd = md.SGD(model.parameters(), lr=0.1)
    with pytest.raises(md.StateDictError) as caught:
        sgd.load_state_dict(gan)
    assert caught.value.args[0].splitlines()[1] == (
        "The state holds a nested optimizer state dict under 'opt_g', as a training checkpoint does: pass "
        "state['opt_g'] (it was saved by 'Adam', this is 'SGD')")
    rms = md.RMSprop(model.parameters())
    with pytest.raises(md.StateDictError) as caught:
        sgd.load_state_dict({"opt_a": adam.state_dict(), "opt_r": rms.state_dict()})
    assert caught.value.args[0].splitlines()[1] == (
        "The state holds nested optimizer state dicts under 'opt_a' and 'opt_r', as a training checkpoint does: "
        "pass the one for this SGD: state['opt_a'] (saved by 'Adam') or state['opt_r'] (saved by 'RMSprop'); "
        "this is 'SGD'")


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
    state = {f"meta{i}": i for i in range(6)} | {"net": model.state_dict()}
    with pytest.raises(md.StateDictError) as caught:
        model.load_state_dict(state, strict=False)
    assert caught.value.args[0].splitlines() == [
        "Sequential.load_state_dict refused the state (strict=False): none of its keys ('meta0', 'meta1', 'meta2', "
        "'meta3', 'meta4', ...) names a parameter, buffer or generator of this Sequential, so nothing would be "
        "loaded; nothing was changed",
        "The state holds a nested state dict under 'net', as a training checkpoint does: pass state['net']",
    ]
    # a nested state must hold every parameter and buffer key to be refused as the model's (generators are optional)
    with pytest.raises(md.StateDictError, match=r"pass state\['model'\]$"):
        model.load_state_dict({"model": model.state_dict(generators=False)}, strict=False)
    # one holding only some of them (a generator's key, one weight) is not: the keys are reported, as PyTorch's
    before = _snapshot(model)
    for partial in ({"2.rng": model[2].rng.bit_generator.state}, {"0.W": model[0].W.data},
                    {key: value for key, value in model.state_dict().items() if key != "1.running_var"}):
        assert model.load_state_dict({"model": partial}, strict=False) == md.LoadResult(_loaded_keys(model),
                                                                                       ["model"])
    assert states_equal(_snapshot(model), before)


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
    assert model.load_state_dict({}, strict=False).missing_keys == _loaded_keys(model)
    # a model with no state at all: a nested mapping cannot hold its keys
    assert md.Sequential(md.ReLU()).load_state_dict({"model": {}}, strict=False) == md.LoadResult([], ["model"])


def test_strict_false_does_not_refuse_a_state_whose_entry_only_shares_a_key_with_the_model() -> None:
    # a config dict that happens to hold a key named like the model's: loaded nothing before and says so
    drop = md.Dropout(0.5, rng=0)
    rng_state = copy.deepcopy(drop.rng.bit_generator.state)
    assert drop.load_state_dict({"hparams": {"rng": 0, "p": 0.5}, "epoch": 2}, strict=False) == md.LoadResult(
        [], ["hparams", "epoch"])
    assert drop.rng.bit_generator.state == rng_state
    model = _model()
    assert model.load_state_dict({"config": {"0.W": "glorot", "1.gamma": 1.0}}, strict=False) == md.LoadResult(
        _loaded_keys(model), ["config"])
    # a layer with no parameters or buffers: no entry can be its state
    assert drop.load_state_dict({"model": drop.state_dict(generators=True)}, strict=False) == md.LoadResult(
        [], ["model"])
    # with strict=True the error is raised anyway: its last line still names an entry sharing any key
    with pytest.raises(md.StateDictError) as caught:
        drop.load_state_dict({"hparams": {"rng": 0, "p": 0.5}})
    assert caught.value.args[0].splitlines()[1:] == [
        "  unexpected key 'hparams'",
        "The state holds a nested state dict under 'hparams', as a training checkpoint does: pass state['hparams']"]


def test_several_nested_model_states_prefer_model_or_are_all_named() -> None:
    model = _model()
    state = model.state_dict(generators=True)
    before = _snapshot(model)
    for strict in (False, True):
        with pytest.raises(md.StateDictError) as caught:  # an EMA copy beside the model: 'model' is the one
            model.load_state_dict({"ema": state, "model": state, "epoch": 3}, strict=strict)
        assert caught.value.args[0].splitlines()[-1] == (
            "The state holds a nested state dict under 'model', as a training checkpoint does: pass state['model']")
        with pytest.raises(md.StateDictError) as caught:  # none named 'model': every one
            model.load_state_dict({"ema": state, "net": state}, strict=strict)
        assert caught.value.args[0].splitlines()[-1] == (
            "The state holds nested state dicts under 'ema' and 'net', as a training checkpoint does: pass the one "
            "for this Sequential: state['ema'] or state['net']")
        with pytest.raises(md.StateDictError) as caught:
            model.load_state_dict({f"snapshot{i}": state for i in range(7)}, strict=strict)
        assert caught.value.args[0].splitlines()[-1] == (
            "The state holds nested state dicts under 'snapshot0', 'snapshot1', 'snapshot2', 'snapshot3', 'snapshot4' "
            "and 2 more, as a training checkpoint does: pass the one for this Sequential: state['snapshot0'], "
            "state['snapshot1'], state['snapshot2'], state['snapshot3'], state['snapshot4'] or one of the 2 more")
    assert states_equal(_snapshot(model), before)


class _Trainer(md.Layer):
    """A layer whose sub-layers are called ``model`` and ``optimizer``, as a training checkpoint's entries are."""

    def __init__(self) -> None:
        super().__init__()
        self.model = md.Dense(2, 3, rng=0)
        self.optimizer = md.Dense(3, 2, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.optimizer(self.model(x))


def test_a_layer_with_sub_layers_named_model_and_optimizer() -> None:
    layer, other = _Trainer(), _Trainer()
    assert list(layer.state_dict()) == ["model.W", "optimizer.W", "model._layout", "optimizer._layout"]
    opt = md.Adam(other.parameters())
    # its own state loads
    assert layer.load_state_dict(other.state_dict(), strict=False) == md.LoadResult([], [])
    np.testing.assert_array_equal(layer.model.W.data, other.model.W.data)
    before = _snapshot(layer)
    # a sub-layer's state under 'model' is not the layer's: reported, not refused
    assert layer.load_state_dict({"model": other.model.state_dict()}, strict=False) == md.LoadResult(
        ["model.W", "optimizer.W"], ["model"])
    assert layer.load_state_dict({"model": {"model.W": other.model.W.data}}, strict=False) == md.LoadResult(
        ["model.W", "optimizer.W"], ["model"])
    # a real checkpoint of it is refused with the right hint, in both modes, and the optimizer's too
    checkpoint = {"model": other.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}
    with pytest.raises(md.StateDictError) as caught:
        layer.load_state_dict(checkpoint, strict=False)
    assert caught.value.args[0].splitlines() == [
        "_Trainer.load_state_dict refused the state (strict=False): none of its keys ('model', 'optimizer', 'epoch') "
        "names a parameter, buffer or generator of this _Trainer, so nothing would be loaded; nothing was changed",
        "The state holds a nested state dict under 'model', as a training checkpoint does: pass state['model']"]
    with pytest.raises(md.StateDictError, match=r"\n  unexpected key 'epoch'\nThe state holds a nested state "
                                                r"dict under 'model', as a training checkpoint does: pass "
                                                r"state\['model'\]$"):
        layer.load_state_dict(checkpoint)
    assert states_equal(_snapshot(layer), before)
    with pytest.raises(md.StateDictError, match=r"pass state\['optimizer'\]$"):
        md.Adam(layer.parameters()).load_state_dict(checkpoint)


class _RaisingIteration(Mapping[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        return 1

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iteration fails")

    def __contains__(self, key: object) -> bool:
        return False


class _RaisingLookup(Mapping[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("lookup fails")

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[Any]:
        return iter(["type", "hyper", "state"])

    def __contains__(self, key: object) -> bool:
        return key in ("type", "hyper", "state")


class _UnhashableKey(Mapping[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        return 1

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Any]:
        return iter([[1]])


class _RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr fails")


@pytest.mark.parametrize("odd", [_RaisingIteration, _RaisingLookup, _UnhashableKey], ids=lambda c: c.__name__)
def test_a_hint_that_fails_gives_no_hint_and_the_refusal_stands(odd: Any) -> None:
    model, opt = _trained(md.Adam)
    before = _snapshot(model, opt)
    assert model.load_state_dict({"x": odd()}, strict=False) == md.LoadResult(_loaded_keys(model), ["x"])
    with pytest.raises(md.StateDictError) as caught:
        opt.load_state_dict({"x": odd()})
    assert caught.value.args[0] == ("Adam.load_state_dict refused the state: missing key 'type'; missing key "
                                    "'hyper'; missing key 'state'")
    assert states_equal(_snapshot(model, opt), before)


def test_odd_states_and_types_give_a_clean_and_short_refusal() -> None:
    model, opt = _trained(md.Adam)
    before = _snapshot(model, opt)
    with pytest.raises(md.StateDictError, match=r"^Adam.load_state_dict refused the state: missing key 'type'; "
                                                r"missing key 'hyper'; missing key 'state'$"):
        opt.load_state_dict(_RaisingIteration())  # (the state itself cannot be iterated)
    nested = {**opt.state_dict(), "type": _RaisingRepr()}
    with pytest.raises(md.StateDictError, match=r"pass state\['o'\] \(it was saved by <_RaisingRepr instance at "
                                                r"0x[0-9a-f]+>, this is 'Adam'\)$"):
        opt.load_state_dict({"o": nested})
    with pytest.raises(md.StateDictError, match=r"\n  state is for <_RaisingRepr instance at 0x[0-9a-f]+>, not 'Adam'"):
        opt.load_state_dict(nested)
    huge = "x" * 10**6
    for state in ({"o": {**opt.state_dict(), "type": huge}}, {**opt.state_dict(), "type": huge},
                  {huge: opt.state_dict()}):
        with pytest.raises(md.StateDictError) as caught:
            opt.load_state_dict(state)
        assert len(caught.value.args[0]) < 400 and re.search(r"'x{20,}\.\.\.x{20,}'", caught.value.args[0])
    with pytest.raises(md.StateDictError) as caught:
        model.load_state_dict({huge: model.state_dict()}, strict=False)
    assert len(caught.value.args[0]) < 500 and "pass state['xxxxxxxxxx" in caught.value.args[0]
    assert states_equal(_snapshot(model, opt), before)


# ------------------------------------------------------------------------- 3. PyTorch's parameter groups
_GROUPS = ("minidl's optimizers have no parameter groups and take a flat iterable of Parameters: "
           "{n}(model.parameters(), ...).  For a learning rate per group, make one optimizer per group "
           "({n}(group_a, lr=0.1) and {n}(group_b, lr=0.01)) and call each one's zero_grad and step in your own "
           "loop (fit takes one optimizer)")
#: what the message adds for an optimizer with a weight decay
_DECAY_GROUP = (".  For the usual group of biases with weight_decay=0 (the bias is row 0 of a layer's weights here), "
                "pass decay_bias=False: {n}(model.parameters(), weight_decay=..., decay_bias=False)")


@pytest.mark.parametrize("make", OPTIMIZERS, ids=lambda c: c.__name__)
def test_parameter_groups_get_a_precise_message(make: Any) -> None:
    model = _model()
    name = make.__name__
    groups = [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[3].parameters(), "lr": 0.01}]
    untouched = copy.deepcopy(groups)
    tail = re.escape(_GROUPS.format(n=name) + ("" if make is md.Rprop else _DECAY_GROUP.format(n=name)))
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
