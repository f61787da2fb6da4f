"""``Optimizer.step(check_finite=True)``: a NaN/inf gradient is refused before anything changes.

By default step does not check (a NaN gradient goes into the parameters and the state, and the state is then
refused by load_state_dict); the check is opt-in, and the same as ``fit(..., check_gradients=True)``'s."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal

CONFIGS: list[tuple[type, dict[str, Any]]] = [
    (md.SGD, {"lr": 0.1}),  # plain SGD: its own fast path
    (md.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (md.Adam, {"lr": 0.1}),
    (md.Adam, {"lr": 0.1, "amsgrad": True}),
    (md.AdamW, {"lr": 0.1}),
    (md.Adamax, {"lr": 0.1}),
    (md.NAdam, {"lr": 0.1}),
    (md.RAdam, {"lr": 0.1}),
    (md.RMSprop, {"lr": 0.1, "momentum": 0.5, "centered": True}),
    (md.Adagrad, {"lr": 0.1}),
    (md.Adadelta, {"lr": 0.1}),
    (md.Rprop, {"lr": 0.1}),
]


def stepped(cls: type, kw: dict[str, Any]) -> tuple[md.optim.Optimizer, list[md.Parameter]]:
    """An optimizer over two parameters, after two finite steps (so that it has state)."""
    rng = np.random.default_rng(0)
    params = [md.Parameter(rng.standard_normal(3)), md.Parameter(rng.standard_normal((2, 3)))]
    opt = cls(params, **kw)
    for _ in range(2):
        for p in params:
            p.grad = rng.standard_normal(p.shape)
        opt.step()
    for p in params:
        p.grad = rng.standard_normal(p.shape)
    return opt, params


def test_every_optimizer_is_covered():
    assert {cls for cls, _ in CONFIGS} == {md.SGD, md.Adam, md.AdamW, md.Adamax, md.NAdam, md.RAdam, md.RMSprop,
                                           md.Adagrad, md.Adadelta, md.Rprop}


@pytest.mark.parametrize("zero_grad", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_a_non_finite_gradient_is_refused_with_nothing_changed(cls, kw, bad, zero_grad):
    opt, params = stepped(cls, kw)
    params[1].grad[1, 2] = bad
    data = [p.data.copy() for p in params]
    grads = [p.grad.copy() for p in params]
    state = copy.deepcopy(opt.state_dict())
    with pytest.raises(md.NonFiniteError) as info:
        opt.step(zero_grad=zero_grad, check_finite=True)
    assert str(info.value) == (
        f"{cls.__name__}.step: the gradient of parameter 1 of 2 (optimizer.params[1], shape (2, 3)) holds 1 "
        "NaN/inf value(s) of 6; nothing was updated (the parameters, the optimizer's state and the gradients are "
        "as they were)")
    for p, before in zip(params, data, strict=True):
        np.testing.assert_array_equal(p.data, before)
    for p, before in zip(params, grads, strict=True):
        assert p.has_grad
        np.testing.assert_array_equal(p.grad, before)
    assert states_equal(opt.state_dict(), state)
    params[1].grad[1, 2] = 0.5  # the gradient fixed, the same optimizer steps on
    opt.step(check_finite=True)
    assert all(np.isfinite(p.data).all() for p in params)


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_check_finite_on_finite_gradients_steps_exactly_as_without(cls, kw):
    checked, checked_params = stepped(cls, kw)
    plain, plain_params = stepped(cls, kw)
    checked.step(check_finite=True)
    plain.step()
    for a, b in zip(checked_params, plain_params, strict=True):
        assert a.data.tobytes() == b.data.tobytes()
    assert states_equal(checked.state_dict(), plain.state_dict())


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_without_the_check_a_nan_gradient_reaches_the_parameters_and_a_state_that_does_not_load(cls, kw):
    """What docs/optimizers.md says the default does (so the check is the way to keep a run loadable)."""
    opt, params = stepped(cls, kw)
    params[1].grad[1, 2] = np.nan
    opt.step()
    fresh = cls([md.Parameter(np.zeros(3)), md.Parameter(np.zeros((2, 3)))], **kw)
    if cls is md.Rprop:  # it steps by the gradient's sign, and takes NaN's as 0: that element does not move
        assert all(np.isfinite(p.data).all() for p in params)
        fresh.load_state_dict(opt.state_dict())
        return
    assert np.isnan(params[1].data[1, 2]) and np.isfinite(params[0].data).all()
    if not opt.state[1]:  # plain SGD keeps no state
        assert kw == {"lr": 0.1}
        return
    with pytest.raises(md.StateDictError, match=r"'1\.\w+': holds NaN/inf"):
        fresh.load_state_dict(opt.state_dict())


def test_the_first_bad_parameter_is_named_and_unchecked_ones_are_skipped():
    frozen, first, second = md.Parameter(np.ones(2)), md.Parameter(np.ones(4)), md.Parameter(np.ones(3))
    opt = md.Adam([frozen, first, second], lr=0.1)
    frozen.grad = np.array([np.nan, 1.0])
    frozen.requires_grad = False  # not stepped, so not checked
    first.grad = np.array([np.inf, np.nan, 1.0, -np.inf])
    second.grad = np.array([np.nan, 0.0, 0.0])
    with pytest.raises(md.NonFiniteError, match=r"parameter 1 of 3 \(optimizer.params\[1\], shape \(4,\)\) holds 3 "
                                                r"NaN/inf value\(s\) of 4"):
        opt.step(check_finite=True)
    first.zero_grad()  # no gradient since: skipped by step and by the check
    with pytest.raises(md.NonFiniteError, match=r"parameter 2 of 3"):
        opt.step(check_finite=True)
    second.grad = np.ones(3)
    opt.step(check_finite=True)
    assert opt.state[1] == {} and opt.state[2]["step"] == 1


def test_large_finite_gradients_whose_sum_overflows_are_not_refused():
    p = md.Parameter(np.zeros(2))
    opt = md.SGD([p], lr=1e-300)
    p.grad = np.array([1e308, 1e308])  # the sum is inf: the values are looked at before refusing
    opt.step(check_finite=True)
    np.testing.assert_allclose(p.data, [-1e8, -1e8])


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_check_finite_must_be_a_bool(value):
    p = md.Parameter(np.ones(2))
    p.grad = np.ones(2)
    for opt in (md.SGD([p], lr=0.1), md.Adam([p], lr=0.1)):
        with pytest.raises(TypeError, match=rf"{type(opt).__name__}.step: check_finite must be True or False, got "):
            opt.step(check_finite=value)
        np.testing.assert_array_equal(p.data, [1.0, 1.0])
    md.SGD([p], lr=0.5).step(check_finite=np.bool_(True))
    np.testing.assert_array_equal(p.data, [0.5, 0.5])


def test_fit_check_gradients_uses_the_same_check_and_names_the_parameter_in_the_model():
    class NanGrad(md.MSELoss):
        def backward(self):
            grad = super().backward()
            grad[0, 0] = np.nan
            return grad

    model = md.Sequential(md.Dense(3, 2, rng=0))
    before = model.state_dict()
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    with pytest.raises(md.NonFiniteError, match=r"the gradient of parameter '0.W' \(4, 2\) holds 4 NaN/inf value\(s\) "
                                                "though the loss is finite; this batch's update was not applied"):
        md.fit(model, x, y, loss=NanGrad(), optimizer=md.Adam(model.parameters(), lr=0.1), epochs=1, verbose=0,
               check_gradients=True)
    assert states_equal(model.state_dict(), before)
