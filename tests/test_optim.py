"""Optimizers against their update rules written out by hand, step by step, on a tiny least-squares problem.

The references below are deliberately written in the textbook / PyTorch-documentation form (not the
in-place form of minidl.optim), so agreement to round-off checks the algebra as well as the code.
"""

from __future__ import annotations

import copy
import re
import tracemalloc

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError
from minidl.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from minidl.testing import states_equal

RTOL, ATOL = 1e-12, 1e-14
STEPS = 6


def problem(seed: int = 0, dtype: type = np.float64) -> tuple[list[md.Parameter], list[np.ndarray]]:
    """Two parameters and the data of a least-squares cost 1/2 |X w1 w2 - Y|^2 (non-trivial coupling)."""
    rng = np.random.default_rng(seed)
    w1 = md.Parameter(rng.standard_normal((3, 4)), dtype=dtype)
    w2 = md.Parameter(rng.standard_normal((4, 2)), dtype=dtype)
    X = rng.standard_normal((5, 3)).astype(dtype)
    Y = rng.standard_normal((5, 2)).astype(dtype)
    return [w1, w2], [X, Y]


def grads(ws: list[np.ndarray], data: list[np.ndarray]) -> list[np.ndarray]:
    X, Y = data
    w1, w2 = ws
    r = X @ w1 @ w2 - Y
    return [X.T @ r @ w2.T, (X @ w1).T @ r]


def run_minidl(opt_cls: type[Optimizer], kwargs: dict, steps: int = STEPS, dtype: type = np.float64,
               seed: int = 0) -> list[np.ndarray]:
    params, data = problem(seed, dtype)
    opt = opt_cls(params, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        for p, g in zip(params, grads([p.data for p in params], data), strict=True):
            p.grad += g
        opt.step()
    return [p.data for p in params]


def run_reference(rule, state_init, steps: int = STEPS, seed: int = 0) -> list[np.ndarray]:
    params, data = problem(seed)
    ws = [p.data.copy() for p in params]
    states = [state_init(w) for w in ws]
    for t in range(1, steps + 1):
        gs = grads(ws, data)
        ws = [rule(w, g, s, t) for w, g, s in zip(ws, gs, states, strict=True)]
    return ws


def assert_same(a: list[np.ndarray], b: list[np.ndarray], rtol: float = RTOL, atol: float = ATOL) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------------ SGD
def sgd_reference(lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    def rule(w, g, s, t):
        if weight_decay:
            g = g + weight_decay * w
        if momentum:
            s["b"] = g if t == 1 else momentum * s["b"] + (1 - dampening) * g
            g = g + momentum * s["b"] if nesterov else s["b"]
        return w - lr * g

    return rule


SGD_CASES = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.1},
    {"momentum": 0.8, "weight_decay": 0.05},
    {"momentum": 0.8, "weight_decay": 0.05, "nesterov": True},
    {"momentum": 0.7, "weight_decay": 0.02, "dampening": 0.5},
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_sgd_matches_hand_written_rule(kw):
    got = run_minidl(SGD, {"lr": 0.01, **kw})
    want = run_reference(sgd_reference(0.01, **kw), lambda w: {})
    assert_same(got, want)


def test_sgd_plain_single_step_exact():
    p = md.Parameter(np.array([1.0, -2.0]))
    p.grad[:] = [0.5, 0.25]
    SGD([p], lr=0.1).step()
    np.testing.assert_array_equal(p.data, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25])


@pytest.mark.parametrize("shape", [(3, 5), (129, 128), (785, 256), (1000, 301)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_plain_update_is_bit_exact_for_parameters_of_every_size(shape, dtype):
    """Big parameters are updated block by block through a scratch of at most 512 KiB: still
    exactly ``w - lr * g``, with no temporary the size of the parameter."""
    rng = np.random.default_rng(shape[0])
    params = [md.Parameter(rng.normal(size=shape).astype(dt)) for dt in (dtype, np.float64, np.float32)]
    opt = SGD(params, lr=0.037)
    for _ in range(3):
        want = []
        for p in params:
            p.grad[...] = rng.normal(size=shape)
            want.append(p.data - p.dtype.type(0.037) * p.grad)
        tracemalloc.start()
        try:
            opt.step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        for p, w in zip(params, want, strict=True):
            assert p.data.dtype == p.grad.dtype
            np.testing.assert_array_equal(p.data, w)
        assert peak <= (1 << 19) + 4096, peak


def test_sgd_first_momentum_step_has_no_dampening():
    # PyTorch: the buffer starts as the gradient itself, not (1 - dampening) * gradient.
    p = md.Parameter(np.array([1.0]))
    p.grad[:] = 2.0
    opt = SGD([p], lr=0.5, momentum=0.9, dampening=0.5)
    opt.step()
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], [2.0])
    np.testing.assert_array_equal(p.data, [0.0])


def test_sgd_nesterov_needs_momentum():
    p = md.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, momentum=0.9, nesterov=True, dampening=0.1)


# ------------------------------------------------------------------------------------------------ Adam
def adam_reference(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    """The paper's form with bias-corrected moments m_hat, v_hat (PyTorch's documentation)."""
    b1, b2 = betas

    def rule(w, g, s, t):
        if decoupled:
            w = w * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * w
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        if amsgrad:
            s["vmax"] = np.maximum(s["vmax"], s["v"])
            v_hat = s["vmax"] / (1 - b2**t)
        else:
            v_hat = s["v"] / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)

    return rule


def adam_state(w):
    return {"m": np.zeros_like(w), "v": np.zeros_like(w), "vmax": np.zeros_like(w)}


ADAM_CASES = [
    {},
    {"lr": 0.05},
    {"lr": 0.02, "betas": (0.8, 0.99)},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.01, "amsgrad": True},
    {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.05, "amsgrad": True},
]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_adam_matches_hand_written_rule(kw):
    got = run_minidl(Adam, kw)
    want = run_reference(adam_reference(**kw), adam_state)
    assert_same(got, want)


@pytest.mark.parametrize("kw", [{}, {"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.01, "weight_decay": 0.3,
                                                                        "amsgrad": True}],
                         ids=["defaults", "wd", "wd-amsgrad"])
def test_adamw_matches_hand_written_rule(kw):
    got = run_minidl(AdamW, kw)
    ref_kw = {"weight_decay": 0.01, **kw}
    want = run_reference(adam_reference(decoupled=True, **ref_kw), adam_state)
    assert_same(got, want)


@pytest.mark.parametrize(("cls", "decoupled"), [(Adam, False), (AdamW, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_amsgrad_uses_the_largest_second_moment_when_the_gradients_shrink(cls, decoupled, weight_decay):
    """On the least-squares problem v only grows, so AMSGrad equals Adam there (a mutation that dropped
    the maximum survived every other test); here a large gradient is followed by small ones with a short
    beta2 memory, so v falls below its maximum and the two rules part."""
    rng = np.random.default_rng(7)
    w0 = rng.normal(size=(3, 2))
    scales = [10.0, 1.0, 0.1, 0.1, 0.05, 0.02]
    gradients = [s * rng.normal(size=w0.shape) for s in scales]
    kw = {"lr": 0.1, "betas": (0.9, 0.5), "weight_decay": weight_decay}
    finals = {}
    for amsgrad in (False, True):
        p = md.Parameter(w0.copy())
        opt = cls([p], amsgrad=amsgrad, **kw)
        rule, state, w = adam_reference(amsgrad=amsgrad, decoupled=decoupled, **kw), adam_state(w0), w0.copy()
        for t, g in enumerate(gradients, start=1):
            opt.zero_grad()
            p.grad += g
            opt.step()
            w = rule(w, g, state, t)
            np.testing.assert_allclose(p.data, w, rtol=1e-14, atol=1e-15)
        if amsgrad:
            assert (state["vmax"] > state["v"]).all()  # the maximum was in use at the end
        finals[amsgrad] = p.data.copy()
    assert np.abs(finals[True] - finals[False]).max() > 0.1


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: Adam(ps, lr=0.1), lambda ps: AdamW(ps, lr=0.1)],
                         ids=["SGD", "SGD-momentum", "Adam", "AdamW"])
def test_a_parameter_listed_twice_is_updated_once(make):
    """E.g. the parameter lists of two models that share a (tied) weight, concatenated."""
    twice, once = md.Parameter(np.array([1.0, -2.0])), md.Parameter(np.array([1.0, -2.0]))
    opt_twice, opt_once = make([twice, twice]), make([once])
    assert opt_twice.params == [twice]
    for step in range(3):
        for p, opt in ((twice, opt_twice), (once, opt_once)):
            opt.zero_grad()
            p.grad += [0.5 + step, -0.25]
            opt.step()
    np.testing.assert_array_equal(twice.data, once.data)
    assert not np.array_equal(once.data, [1.0, -2.0])


def test_adam_coupled_and_adamw_decoupled_weight_decay_differ_and_agree_without_it():
    assert_same(run_minidl(Adam, {"lr": 0.01}), run_minidl(AdamW, {"lr": 0.01, "weight_decay": 0.0}), 0, 0)
    coupled = run_minidl(Adam, {"lr": 0.01, "weight_decay": 0.1})
    decoupled = run_minidl(AdamW, {"lr": 0.01, "weight_decay": 0.1})
    assert not np.allclose(coupled[0], decoupled[0], rtol=1e-6, atol=0)


def test_adamw_first_step_by_hand():
    # Step 1: m_hat = g, v_hat = g^2, so the Adam part is lr * g / (|g| + eps) = lr * sign(g) (nearly).
    p = md.Parameter(np.array([2.0, -1.0]))
    p.grad[:] = [0.5, -4.0]
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    decayed = np.array([2.0, -1.0]) * (1 - 0.1 * 0.5)
    want = decayed - 0.1 * np.array([0.5, -4.0]) / (np.array([0.5, 4.0]) + 1e-8)
    np.testing.assert_allclose(p.data, want, rtol=1e-15)


# ------------------------------------------------------------------------------------------------ RMSprop
def rmsprop_reference(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    def rule(w, g, s, t):
        if weight_decay:
            g = g + weight_decay * w
        s["sq"] = alpha * s["sq"] + (1 - alpha) * g**2
        if centered:
            s["avg"] = alpha * s["avg"] + (1 - alpha) * g
            denom = np.sqrt(s["sq"] - s["avg"] ** 2) + eps
        else:
            denom = np.sqrt(s["sq"]) + eps
        if momentum:
            s["b"] = momentum * s["b"] + g / denom
            return w - lr * s["b"]
        return w - lr * g / denom

    return rule


def rmsprop_state(w):
    return {"sq": np.zeros_like(w), "avg": np.zeros_like(w), "b": np.zeros_like(w)}


RMSPROP_CASES = [
    {},
    {"lr": 0.001, "alpha": 0.9},
    {"momentum": 0.9},
    {"centered": True},
    {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
    {"weight_decay": 0.2, "eps": 1e-4},
]


@pytest.mark.parametrize("kw", RMSPROP_CASES,
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_rmsprop_matches_hand_written_rule(kw):
    got = run_minidl(RMSprop, kw)
    want = run_reference(rmsprop_reference(**kw), rmsprop_state)
    assert_same(got, want)


# ------------------------------------------------------------------------------------------------ Adagrad
def adagrad_reference(lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    def rule(w, g, s, t):
        if weight_decay:
            g = g + weight_decay * w
        if t == 1:
            s["sum"] = np.full_like(w, initial_accumulator_value)
        s["sum"] = s["sum"] + g**2
        return w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)

    return rule


ADAGRAD_CASES = [
    {},
    {"lr": 0.1, "lr_decay": 0.05},
    {"weight_decay": 0.2, "initial_accumulator_value": 0.5},
    {"lr": 0.3, "eps": 1e-3, "lr_decay": 0.5, "weight_decay": 0.01, "initial_accumulator_value": 2.0},
]


@pytest.mark.parametrize("kw", ADAGRAD_CASES,
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_adagrad_matches_hand_written_rule(kw):
    got = run_minidl(Adagrad, kw)
    want = run_reference(adagrad_reference(**kw), lambda w: {})
    assert_same(got, want)


def test_adagrad_first_step_closed_form():
    """From s = 0: w - lr * g / (|g| + eps), i.e. a step of about lr against the sign of each gradient."""
    p = md.Parameter(np.array([1.0, 2.0, 3.0]))
    p.grad = np.array([0.5, -4.0, 0.0])
    opt = Adagrad([p], lr=0.1)
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 0.5 / (0.5 + 1e-10), 2.0 + 0.1 * 4.0 / (4.0 + 1e-10), 3.0],
                               rtol=1e-15)
    assert opt.state[0]["step"] == 1
    np.testing.assert_array_equal(opt.state[0]["sum"], [0.25, 16.0, 0.0])


# ------------------------------------------------------------------------------------------------ common
def test_defaults_follow_pytorch():
    p = [md.Parameter(np.zeros(2))]
    assert Adam(p).hyper == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                             "amsgrad": False, "maximize": False, "decay_bias": True}
    assert Adam(p).betas == (0.9, 0.999)
    assert AdamW(p).hyper["weight_decay"] == 0.01
    assert AdamW(p).hyper["lr"] == 1e-3
    assert RMSprop(p).hyper == {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                                "centered": False, "maximize": False, "decay_bias": True}
    assert SGD(p, lr=0.1).hyper == {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False,
                                    "dampening": 0.0, "maximize": False, "decay_bias": True}
    assert Adagrad(p).hyper == {"lr": 0.01, "lr_decay": 0.0, "weight_decay": 0.0,
                                "initial_accumulator_value": 0.0, "eps": 1e-10, "maximize": False, "decay_bias": True}


ALL = [
    (SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}),
    (SGD, {"lr": 0.01, "momentum": 0.9, "dampening": 0.1}),
    (Adam, {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True}),
    (AdamW, {"lr": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    (Adagrad, {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    (md.Adamax, {"lr": 0.01, "weight_decay": 0.01}),
    (md.NAdam, {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    (md.RAdam, {"lr": 0.01, "weight_decay": 0.01, "betas": (0.9, 0.8)}),  # rectified from step 7 on
    (md.Adadelta, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.01}),
    (md.Rprop, {"lr": 0.05, "etas": (0.4, 1.3), "step_sizes": (1e-4, 1.0)}),
    # (every optimizer's maximize, several settings each: tests/test_optim_maximize.py)
    (SGD, {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01, "maximize": True}),
    (AdamW, {"lr": 0.01, "maximize": True}),
]
ALL_IDS = ["SGD-nesterov", "SGD-dampening", "Adam-amsgrad", "AdamW", "RMSprop-centered", "Adagrad", "Adamax",
           "NAdam-decoupled", "RAdam", "Adadelta", "Rprop", "SGD-maximize", "AdamW-maximize"]


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_float32_stays_float32(cls, kw):
    got = run_minidl(cls, kw, dtype=np.float32)
    assert all(w.dtype == np.float32 for w in got)
    params, data = problem(0, np.float32)
    opt = cls(params, **kw)
    for p, g in zip(params, grads([p.data for p in params], data), strict=True):
        p.grad += g
    opt.step()
    for state in opt.state:
        for value in state.values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32
    # and agrees with the float64 run to float32 round-off
    assert_same(got, run_minidl(cls, kw), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_updates_are_in_place(cls, kw):
    params, data = problem()
    arrays = [p.data for p in params]
    opt = cls(params, **kw)
    for _ in range(3):
        for p, g in zip(params, grads([p.data for p in params], data), strict=True):
            p.grad[...] = g
        opt.step()
    assert all(p.data is a for p, a in zip(params, arrays, strict=True))


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_state_dict_resumes_bit_for_bit(cls, kw):
    params, data = problem(3)
    opt = cls(params, **kw)

    def steps(ps, o, n):
        for _ in range(n):
            o.zero_grad()
            for p, g in zip(ps, grads([p.data for p in ps], data), strict=True):
                p.grad += g
            o.step()

    steps(params, opt, 3)
    saved_params = [p.data.copy() for p in params]
    saved = opt.state_dict()
    steps(params, opt, 4)
    straight = [p.data.copy() for p in params]

    # a fresh optimizer (different hyper-parameters even) on a fresh copy, restored from the save
    fresh = [md.Parameter(w) for w in saved_params]
    opt2 = cls(fresh, lr=0.5)
    opt2.load_state_dict(saved)
    assert opt2.hyper == opt.hyper
    steps(fresh, opt2, 4)
    for a, b in zip(straight, (p.data for p in fresh), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_holds_moments_and_step_counts_as_copies():
    params, data = problem()
    opt = Adam(params, lr=0.01)
    for p, g in zip(params, grads([p.data for p in params], data), strict=True):
        p.grad += g
    opt.step()
    opt.step()
    sd = opt.state_dict()
    assert sd["type"] == "Adam"
    assert set(sd["state"]) == {"0", "1"}
    assert sd["state"]["0"]["step"] == 2
    assert set(sd["state"]["0"]) == {"step", "exp_avg", "exp_avg_sq"}
    sd["state"]["0"]["exp_avg"][...] = 123.0
    assert not np.any(opt.state[0]["exp_avg"] == 123.0)
    rms = RMSprop(params, momentum=0.9, centered=True)
    rms.step()
    assert set(rms.state_dict()["state"]["1"]) == {"step", "square_avg", "grad_avg", "momentum_buffer"}


def test_load_state_dict_refuses_other_optimizer_and_changes_nothing():
    params, _ = problem()
    adam = Adam(params)
    adam.step()
    sgd = SGD(params, lr=0.1, momentum=0.9)
    before = copy.deepcopy(sgd.state_dict())
    with pytest.raises(StateDictError, match="'Adam', not 'SGD'"):
        sgd.load_state_dict(adam.state_dict())
    assert sgd.state_dict()["hyper"] == before["hyper"]
    other = Adam([md.Parameter(np.zeros(3))])
    with pytest.raises(StateDictError, match="parameters"):
        other.load_state_dict(adam.state_dict())


def test_frozen_parameters_are_skipped_and_keep_no_state():
    a = md.Parameter(np.ones(2))
    b = md.Parameter(np.ones(2), requires_grad=False)
    a.grad[:] = 1.0
    b.grad[:] = 1.0
    opt = Adam([a, b], lr=0.1, weight_decay=0.1)
    opt.step()
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert opt.state[1] == {}
    assert np.all(a.data < 1.0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: Adam(p, betas=(1.0, 0.999)), "betas"),
        (lambda p: Adam(p, betas=(0.9,)), "betas"),
        (lambda p: AdamW(p, lr=-1.0), "lr"),
        (lambda p: RMSprop(p, alpha=1.5), "alpha"),
        (lambda p: RMSprop(p, momentum=-0.1), "momentum"),
        (lambda p: SGD(p, lr=-0.1), "lr"),  # (0 is accepted, as PyTorch: test_settings_review21)
        (lambda p: Adam(p, eps=float("nan")), "eps"),
    ],
)
def test_bad_hyper_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make([md.Parameter(np.zeros(2))])


def test_lr_setter_accepts_zero_refuses_negative():
    opt = SGD([md.Parameter(np.zeros(2))], lr=0.1)
    opt.lr = 0.0
    assert opt.lr == 0.0
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.1


def test_deepcopy_of_an_optimizer_is_independent():
    params, _ = problem()
    opt = Adam(params, lr=0.01)
    opt.step()
    clone = copy.deepcopy(opt)
    clone.params[0].data[...] = 0.0
    clone.step()
    assert not np.all(params[0].data == 0.0)
    assert clone._scratch.keys().isdisjoint(opt._scratch.keys())


# ------------------------------------------------------------------------------------------------ torch
def test_against_torch_if_installed():
    torch = pytest.importorskip("torch")
    cases = [(SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}),
             (SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
             (Adam, torch.optim.Adam, {}),
             (Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
             (AdamW, torch.optim.AdamW, {"lr": 0.01}),
             (AdamW, torch.optim.AdamW, {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
             (RMSprop, torch.optim.RMSprop, {}),
             (RMSprop, torch.optim.RMSprop, {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
             (Adagrad, torch.optim.Adagrad, {}),
             (Adagrad, torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
                                             "initial_accumulator_value": 0.3, "eps": 1e-6})]
    for ours, theirs, kw in cases:
        got = run_minidl(ours, kw)
        params, data = problem()
        ts = [torch.tensor(p.data, requires_grad=True) for p in params]
        opt = theirs(ts, **kw)
        for _ in range(STEPS):
            opt.zero_grad()
            for t, g in zip(ts, grads([t.detach().numpy() for t in ts], data), strict=True):
                t.grad = torch.tensor(g)
            opt.step()
        assert_same(got, [t.detach().numpy() for t in ts], rtol=1e-10, atol=1e-12)


def test_sgd_subclass_overriding_update_is_still_called() -> None:
    calls = []

    class CountingSGD(md.SGD):
        def update(self, p: md.Parameter, state: dict) -> None:
            calls.append(p)
            super().update(p, state)

    p = md.Parameter(np.ones(3))
    p.grad[...] = 2.0
    frozen = md.Parameter(np.ones(2), requires_grad=False)
    CountingSGD([p, frozen], lr=0.5).step()
    assert calls == [p]
    np.testing.assert_array_equal(p.data, np.zeros(3))
    md.SGD([p, frozen], lr=0.25).step()  # the plain fast path: frozen parameters stay put
    np.testing.assert_array_equal(p.data, np.full(3, -0.5))
    np.testing.assert_array_equal(frozen.data, np.ones(2))


def test_sgd_subclass_hooks_and_instance_update_are_honoured() -> None:
    class ClippedSGD(md.SGD):
        def _decayed_grad(self, p: md.Parameter, weight_decay: float) -> np.ndarray:
            return np.clip(p.grad, -1.0, 1.0)

    p = md.Parameter(np.zeros(2))
    p.grad[...] = [10.0, -0.5]
    ClippedSGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [-0.1, 0.05])
    calls = []
    sgd = md.SGD([p], lr=0.1)
    sgd.update = lambda param, state: calls.append(param)  # type: ignore[method-assign]
    sgd.step()
    assert calls == [p]


@pytest.mark.parametrize("make, key, bad, match", [
    (lambda ps: Adam(ps), "beta1", 1.5, r"beta1.*\[0, 1\)"),
    (lambda ps: AdamW(ps), "beta2", 1.0, r"beta2.*\[0, 1\)"),
    (lambda ps: RMSprop(ps), "alpha", 1.2, r"alpha.*\[0, 1\]"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), "momentum", 0.0, "nesterov needs momentum"),
])
def test_load_state_dict_refuses_what_the_constructor_refuses(make, key, bad, match) -> None:
    p = md.Parameter(np.ones(3))
    opt = make([p])
    state = opt.state_dict()
    state["hyper"] = dict(state["hyper"], **{key: bad})
    before = dict(opt.hyper)
    state_before = copy.deepcopy(opt.state)
    with pytest.raises(StateDictError, match=match):
        opt.load_state_dict(state)
    assert opt.hyper == before
    assert repr(opt.state) == repr(state_before)


def test_load_state_dict_stores_python_floats_and_refuses_odd_numbers() -> None:
    p = md.Parameter(np.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()
    state["hyper"] = dict(state["hyper"], beta1=np.float32(0.5), lr=np.longdouble(0.01))
    opt.load_state_dict(state)
    assert opt.hyper["beta1"] == 0.5 and type(opt.hyper["beta1"]) is float and type(opt.hyper["lr"]) is float
    for key, bad in (("eps", 2**64 * 10**300), ("lr", float("nan")), ("weight_decay", -1)):
        with pytest.raises(StateDictError, match=f"'{key}'"):
            opt.load_state_dict(dict(state, hyper=dict(state["hyper"], **{key: bad})))
    for bad_step in (float("nan"), 1.5, -1):
        broken = opt.state_dict()
        broken["state"]["0"]["step"] = bad_step
        with pytest.raises(StateDictError, match=r"state '0.step'"):
            opt.load_state_dict(broken)
    with pytest.raises(ValueError, match="momentum must be a finite number"):
        SGD([p], lr=0.1, momentum=10**400)


# ------------------------------------------------------------------------ step(zero_grad=True)
ZEROING_CASES = (
    [(SGD, {"lr": 0.01, **kw}) for kw in SGD_CASES]
    + [(Adam, kw) for kw in ADAM_CASES[::2]]
    + [(AdamW, {"lr": 0.01, "weight_decay": 0.1})]
    + [(RMSprop, kw) for kw in RMSPROP_CASES[::2]]
    + [(Adagrad, kw) for kw in ADAGRAD_CASES[1::2]]
)


@pytest.mark.parametrize("cls, kw", ZEROING_CASES,
                         ids=lambda c: c.__name__ if isinstance(c, type) else ",".join(map(str, c.values())))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_with_zero_grad_is_step_then_zero_grad_to_the_bit(cls, kw, dtype):
    """Plain SGD updates through the gradient arrays themselves; every optimizer must still give
    exactly ``step(); zero_grad()``: the same parameters, gradients that read zero, frozen
    parameters untouched and a gradient marked zero (no backward since zero_grad) left out."""
    rng = np.random.default_rng(5)
    shapes = [(3, 5), (785, 256), (7,), (4,)]  # (785, 256): a parameter the plain update blocks

    def make() -> list[md.Parameter]:
        init = np.random.default_rng(1)
        params = [md.Parameter(init.normal(size=s).astype(dtype)) for s in shapes]
        params[3].requires_grad = False
        return params

    a, b = make(), make()
    opt_a, opt_b = cls(a, **kw), cls(b, **kw)
    for step in range(3):
        for i, s in enumerate(shapes):
            g = rng.normal(size=s).astype(dtype)
            a[i].grad[...] = g
            b[i].grad[...] = g
        if step == 1:  # parameter 2's gradient is marked zero in this step (as after zero_grad)
            a[2].zero_grad()
            b[2].zero_grad()
        frozen = b[3].data.copy()
        opt_a.step()
        opt_a.zero_grad()
        opt_b.step(zero_grad=True)
        for pa, pb in zip(a, b, strict=True):
            np.testing.assert_array_equal(pb.data, pa.data)
            assert pb.data.dtype == dtype
            assert pb.grad_is_zero() and not pb.grad.any()
        np.testing.assert_array_equal(b[3].data, frozen)


def test_step_with_zero_grad_leaves_a_read_only_gradient_array_alone():
    p = md.Parameter(np.array([1.0, -2.0]))
    given = np.array([0.5, 0.25])
    given.flags.writeable = False
    p.grad = given
    SGD([p], lr=0.1).step(zero_grad=True)
    np.testing.assert_array_equal(p.data, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25])
    np.testing.assert_array_equal(given, [0.5, 0.25])
    assert p.grad_is_zero()


def test_a_misshapen_gradient_is_refused_when_assigned():
    p = md.Parameter(np.ones((2, 3)))
    p.grad = np.full((2, 3), 0.5)
    with pytest.raises(md.ShapeError, match=r"Parameter.grad must have the parameter's shape \(2, 3\), got \(3, 2\)"):
        p.grad = np.full((3, 2), 0.25)
    with pytest.raises(md.ShapeError, match="got a list"):
        p.grad = [[0.0] * 3] * 2  # type: ignore[assignment]
    np.testing.assert_array_equal(p.grad, np.full((2, 3), 0.5))
    SGD([p], lr=0.1).step(zero_grad=True)
    np.testing.assert_allclose(p.data, np.full((2, 3), 0.95))


def _aliased_cases():
    """(name, params) where scaling one gradient in place would change another array."""
    def make(*values):
        return [md.Parameter(np.full(3, v)) for v in values]

    shared = make(1.0, 1.0)
    shared[1].grad = shared[0].grad
    shared[0].grad[...] = 0.5
    own = make(2.0)
    own[0].grad = own[0].data
    other = make(2.0, 3.0)
    other[1].grad = other[0].data
    view = make(1.0, 1.0)
    buffer = np.full(6, 0.5)
    view[0].grad, view[1].grad = buffer[:3], buffer[3:]  # views of one array: kept to the safe path too
    return [("shared", shared), ("own data", own), ("other's data", other), ("views of one buffer", view)]


@pytest.mark.parametrize("name", [name for name, _ in _aliased_cases()])
def test_step_with_zero_grad_is_exact_when_gradients_share_memory(name):
    params = dict(_aliased_cases())[name]
    twins = copy.deepcopy(params)  # deepcopy keeps the sharing between the copies
    SGD(twins, lr=0.1).step()
    want = [p.data.copy() for p in twins]
    SGD(params, lr=0.1).step(zero_grad=True)
    for p, w in zip(params, want, strict=True):
        np.testing.assert_array_equal(p.data, w)


def test_step_with_zero_grad_keeps_the_gradient_when_the_update_cannot_happen():
    frozen = md.Parameter(np.ones(3))
    frozen.data.flags.writeable = False
    frozen.grad[...] = 0.5
    with pytest.raises(ValueError):
        SGD([frozen], lr=0.1).step(zero_grad=True)
    np.testing.assert_array_equal(frozen.grad, 0.5)



@pytest.mark.parametrize("grad", [np.array([1, 2, 3]), np.ones(3, np.float32), np.ones(3, complex), [1.0, 2.0, 3.0]])
def test_a_gradient_of_another_dtype_cannot_be_assigned(grad):
    """As PyTorch: an integer, complex or float32 gradient for a float64 parameter is refused where it is
    assigned, so that no step can fail half-way on it (or scale an integer array in place)."""
    p = md.Parameter(np.ones(3))
    p.grad = np.full(3, 0.5)
    with pytest.raises((md.DTypeError, md.ShapeError), match=r"Parameter\.grad must"):
        p.grad = grad
    np.testing.assert_array_equal(p.grad, 0.5)


def test_step_with_zero_grad_honours_an_instance_zero_grad():
    p = md.Parameter(np.ones(2))
    p.grad[...] = 1.0
    opt = SGD([p], lr=0.25)
    calls = []
    opt.zero_grad = lambda: calls.append("zeroed")  # type: ignore[method-assign]
    opt.step(zero_grad=True)
    assert calls == ["zeroed"]
    np.testing.assert_array_equal(p.data, [0.75, 0.75])


@pytest.mark.parametrize("shape", [(1, 4), (4,), (4, 3)])
def test_a_gradient_that_would_broadcast_cannot_be_assigned(shape):
    """(1, 4) or (4,) broadcast against a (3, 4) parameter: an optimizer would update every row with it.
    The Parameter refuses it, so no optimizer ever sees one (and pays no check per step)."""
    second = md.Parameter(np.zeros((3, 4)))
    second.grad = np.ones((3, 4))
    with pytest.raises(md.ShapeError, match=rf"shape \(3, 4\), got {re.escape(str(shape))}"):
        second.grad = np.ones(shape)
    np.testing.assert_array_equal(second.grad, np.ones((3, 4)))


@pytest.mark.parametrize(("cls", "kw", "entry", "match"), [
    (Adam, {"lr": 0.1}, {"step": 0, "exp_avg": 0.0, "exp_avg_sq": 0.0}, r"'0.exp_avg': expected an array"),
    (Adam, {"lr": 0.1}, {"step": 5}, r"missing \['exp_avg', 'exp_avg_sq'\]"),
    (Adam, {"lr": 0.1}, {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3), "junk": 1},
     r"unexpected entries \['junk'\]"),
    (Adam, {"lr": 0.1}, {"step": 1, "exp_avg": np.full(3, np.nan), "exp_avg_sq": np.zeros(3)}, "holds NaN/inf"),
    (Adam, {"lr": 0.1}, {"step": np.zeros(3), "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     "expected a whole number, got an array"),
    (SGD, {"lr": 0.1, "momentum": 0.9}, {"momentum_buffer": 1.0}, r"'0.momentum_buffer': expected an array"),
    (RMSprop, {"lr": 0.1}, {"square_avg": np.zeros(3)}, r"missing \['step'\]"),
    # a negative mean of squares: the next step would take its square root (NaN weights)
    (Adam, {"lr": 0.1}, {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": -np.ones(3)},
     r"'0.exp_avg_sq': holds negative values"),
    (Adam, {"lr": 0.1, "amsgrad": True},
     {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3), "max_exp_avg_sq": np.array([0, -1e-3, 0])},
     r"'0.max_exp_avg_sq': holds negative values"),
    (RMSprop, {"lr": 0.1}, {"step": 1, "square_avg": np.array([1.0, -2.0, 0.0])}, r"'0.square_avg': holds negative"),
    (Adagrad, {"lr": 0.1}, {"step": 1, "sum": np.array([1.0, -2.0, 0.0])}, r"'0.sum': holds negative"),
    (Adagrad, {"lr": 0.1}, {"step": 1}, r"missing \['sum'\]"),
    (Adam, {"lr": 0.1}, {"step": 10**400, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}, "out of range"),
])
def test_load_state_dict_refuses_state_the_updates_would_misuse(cls, kw, entry, match):
    """A number where a moment array belongs would be rebound, not updated, by `m *= beta1`: the moment
    would stay 0 for ever and every step be wrong.  Refused, with nothing changed."""
    p = md.Parameter(np.ones(3))
    opt = cls([p], **kw)
    p.grad = np.full(3, 0.5)
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    with pytest.raises(StateDictError, match=match):
        opt.load_state_dict({"type": cls.__name__, "hyper": dict(opt.hyper), "state": {"0": entry}})
    assert states_equal(opt.state_dict(), good)
    opt.load_state_dict(good)  # its own state still loads
    assert states_equal(opt.state_dict(), good)


@pytest.mark.parametrize("step", [np.array(5), np.array(5, np.int32), np.array(5, np.uint8), np.array(5.0),
                                  np.array(5.0, np.float32), np.int64(5), 5.0, 5])
def test_a_step_count_given_as_a_0d_array_loads_as_its_number(step):
    """A float 5.0 was accepted for a step count, np.array(5) refused ('expected a whole number, got an
    array'): a 0-d int or whole float array is its number, kept as an int."""
    p = md.Parameter(np.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad = np.full(3, 0.5)
    opt.step()
    entry = {"step": step, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}
    opt.load_state_dict({"type": "Adam", "hyper": dict(opt.hyper), "state": {"0": entry}})
    assert type(opt.state[0]["step"]) is int and opt.state[0]["step"] == 5
    assert opt.state_dict()["state"]["0"]["step"] == 5


@pytest.mark.parametrize(("step", "match"), [
    (np.array(5.5), r"'0.step': expected a whole number >= 0, got np.float64\(5.5\)"),
    (np.array(-1), r"'0.step': expected a whole number >= 0, got np.int64\(-1\)"),
    (np.array(np.nan), r"'0.step': expected a whole number >= 0, got np.float64\(nan\)"),
    (np.array(2**60), r"'0.step': an int of 19 digits is out of range \(at most 2\*\*53\)"),
    (np.array(True), r"'0.step': expected a whole number, got an array of dtype bool and shape \(\)"),
    (np.array(5 + 0j), r"'0.step': expected a whole number, got an array of dtype complex128 and shape \(\)"),
    (np.array([5]), r"'0.step': expected a whole number, got an array of dtype int64 and shape \(1,\)"),
    (np.array("5"), r"'0.step': expected a whole number, got an array of dtype <U1 and shape \(\)"),
    (5.5, r"'0.step': expected a whole number >= 0, got 5.5"),
    (True, r"'0.step': unsupported value of type bool"),
])
def test_a_step_count_that_is_not_a_whole_number_is_refused_as_an_array_or_a_number(step, match):
    p = md.Parameter(np.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad = np.full(3, 0.5)
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    entry = {"step": step, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}
    with pytest.raises(StateDictError, match=match):
        opt.load_state_dict({"type": "Adam", "hyper": dict(opt.hyper), "state": {"0": entry}})
    assert states_equal(opt.state_dict(), good)


def test_an_optimizer_that_does_not_describe_its_state_loads_any_arrays_and_numbers():
    class Counting(Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def update(self, p, state):
            state["calls"] = state.get("calls", 0) + 1
            state["last"] = p.grad.copy()
            p.data -= self.lr * p.grad

    p = md.Parameter(np.ones(2))
    opt = Counting([p])
    p.grad = np.ones(2)
    opt.step()
    saved = opt.state_dict()
    fresh = Counting([md.Parameter(np.ones(2))])
    fresh.load_state_dict(saved)
    assert fresh.state[0]["calls"] == 1 and np.array_equal(fresh.state[0]["last"], [1.0, 1.0])


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_state_follows_the_model_to_float32_and_its_checkpoint_loads(cls, kw, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)

    def build():
        return md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))

    model = build()
    opt = cls(model.parameters(), **kw)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=1, batch_size=4, rng=0, verbose=0)
    model.astype(np.float32)
    arrays = [v for s in opt.state_dict()["state"].values() for v in s.values() if isinstance(v, np.ndarray)]
    assert arrays and all(a.dtype == np.float32 for a in arrays)  # saved in the parameters' dtype at once
    model.fit(x.astype(np.float32), y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=1, batch_size=4, rng=0,
              verbose=0)
    assert all(v.dtype == np.float32 for s in opt.state for v in s.values() if isinstance(v, np.ndarray))
    path = tmp_path / "ckpt.npz"
    md.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    checkpoint = md.load(path)
    fresh = build().astype(np.float32)
    fresh_opt = cls(fresh.parameters(), **kw)
    fresh.load_state_dict(checkpoint["model"])
    fresh_opt.load_state_dict(checkpoint["optimizer"])
    assert states_equal(fresh_opt.state_dict(), opt.state_dict())


def test_a_subclass_with_its_own_update_keeps_its_own_state_and_dtypes():
    """Adam's state schema is Adam's: a subclass that keeps more (an EMA of the weights, a float64
    master copy of float32 weights, a running minimum starting at +inf) loads its own state_dict, and
    its undeclared arrays keep their dtype."""
    class EmaAdam(Adam):
        def update(self, p, state):
            super().update(p, state)
            ema = state.setdefault("ema", p.data.copy())
            ema += 0.1 * (p.data - ema)
            state.setdefault("master", p.data.astype(np.float64))
            state.setdefault("lowest", np.full(p.shape, np.inf, dtype=p.dtype))

    p = md.Parameter(np.ones(3, dtype=np.float32))
    opt = EmaAdam([p], lr=0.1)
    p.grad = np.full(3, 0.5, dtype=np.float32)
    opt.step()
    saved = opt.state_dict()
    assert saved["state"]["0"]["master"].dtype == np.float64  # not cast to the parameter's dtype
    fresh = EmaAdam([md.Parameter(np.ones(3, dtype=np.float32))], lr=0.1)
    with pytest.raises(StateDictError, match="expected dtype float32, got float64"):
        fresh.load_state_dict(saved)  # its loose check still wants the parameter's dtype for arrays...
    del saved["state"]["0"]["master"]
    fresh.load_state_dict(saved)  # ...and takes the extra key and the +inf array
    assert set(fresh.state[0]) == {"step", "exp_avg", "exp_avg_sq", "ema", "lowest"}
    assert AdamW.state_arrays == Adam.state_arrays  # AdamW keeps Adam's update, so its schema


@pytest.mark.parametrize("make", [
    lambda ps: Adam(ps, amsgrad="False"), lambda ps: AdamW(ps, amsgrad=[0]),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov="False"), lambda ps: RMSprop(ps, centered="False"),
    lambda ps: RMSprop(ps, centered=1),
])
def test_a_switch_must_be_a_bool(make):
    """"False" used to switch amsgrad/nesterov/centered *on* (bool("False") is True)."""
    with pytest.raises(TypeError, match=r"must be a bool, got"):
        make([md.Parameter(np.ones(3))])


@pytest.mark.parametrize(("cls", "kw"), [*ALL, (SGD, {"lr": 0.1}), (Adam, {"lr": 0.01})],
                         ids=[*ALL_IDS, "SGD-plain", "Adam"])
@pytest.mark.parametrize("zero_grad", [False, True])
def test_a_parameter_no_backward_reached_is_skipped(cls, kw, zero_grad):
    """As PyTorch skips a .grad of None: after zero_grad, a parameter whose gradient nothing wrote
    does not move (no momentum, no weight decay) and its state (moments, step count) stays."""
    model = md.Sequential(md.Dense(3, 2, rng=0))
    unused = md.Dense(3, 2, rng=1)  # e.g. a branch this batch did not take
    params = [*model.parameters(), *unused.parameters()]
    opt = cls(params, **kw)
    x = np.random.default_rng(0).normal(size=(4, 3))
    for _ in range(3):  # both used: every parameter has a gradient and state
        opt.zero_grad()
        for layer in (model, unused):
            layer.backward(layer(x))
        opt.step(zero_grad=zero_grad)
    frozen_data, frozen_state = unused.W.data.copy(), copy.deepcopy(opt.state[1])
    moved = model[0].W.data.copy()
    for _ in range(4):  # only the model: the unused layer has no gradient
        opt.zero_grad()
        model.backward(model(x))
        assert model[0].W.has_grad and not unused.W.has_grad
        opt.step(zero_grad=zero_grad)
    np.testing.assert_array_equal(unused.W.data, frozen_data)
    assert states_equal(opt.state[1], frozen_state)
    assert not np.array_equal(model[0].W.data, moved)


def test_has_grad_follows_zero_grad_writes_and_reads():
    p = md.Parameter(np.ones(3))
    assert not p.has_grad  # new: no gradient yet (reads as zeros)
    p.grad = np.full(3, 0.5)
    assert p.has_grad
    p.zero_grad()
    assert not p.has_grad
    np.testing.assert_array_equal(p.grad, 0.0)
    assert p.has_grad  # whoever read the array may write into it: it counts as a gradient of zeros
    layer = md.Dense(2, 1, rng=0)
    layer.zero_grad()
    layer.backward(layer(np.ones((1, 2))))
    assert layer.W.has_grad
    SGD(layer.parameters(), lr=0.1).step(zero_grad=True)
    assert not layer.W.has_grad


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_a_read_only_parameter_is_refused_before_anything_moves(cls, kw):
    """The step used to update the parameters before the read-only one (and part of its state), so
    that a retry applied their update twice."""
    a, b = md.Parameter(np.ones(3)), md.Parameter(np.ones(3))
    opt = cls([a, b], **kw)
    for _ in range(2):
        a.grad, b.grad = np.full(3, 0.5), np.full(3, -0.25)
        opt.step()
    before = (a.data.copy(), b.data.copy(), copy.deepcopy(opt.state_dict()))
    a.grad, b.grad = np.full(3, 0.5), np.full(3, -0.25)
    b.data.flags.writeable = False
    with pytest.raises(ValueError, match=r"parameter 1 of 2 \(shape \(3,\)\) is read-only; nothing was updated"):
        opt.step()
    np.testing.assert_array_equal(a.data, before[0])
    assert states_equal(opt.state_dict(), before[2])
    b.data.flags.writeable = True
    opt.step()  # the retry is the step that failed, once
    reference = cls([pa := md.Parameter(np.ones(3)), pb := md.Parameter(np.ones(3))], **kw)
    for _ in range(3):
        pa.grad, pb.grad = np.full(3, 0.5), np.full(3, -0.25)
        reference.step()
    np.testing.assert_array_equal(a.data, pa.data)
    np.testing.assert_array_equal(b.data, pb.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_centered_rmsprop_stays_finite_under_a_steady_gradient(dtype):
    """s - a^2 rounds below 0 when every gradient is the same; its square root was NaN (as in PyTorch)."""
    p = md.Parameter(np.zeros(1000, dtype))
    opt = RMSprop([p], lr=1e-3, centered=True)
    g = np.random.default_rng(0).uniform(0.1, 10, 1000).astype(dtype)
    for _ in range(3200):
        p.grad = g.copy()
        opt.step()
    assert np.isfinite(p.data).all()
    # where the variance estimate is 0 the step is lr * g / eps-scale: large but finite, and the same
    # sign as the gradient (the parameter moves against it)
    assert (p.data < 0).all()


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_a_parameter_without_gradient_moves_as_in_torch_if_installed(cls, kw):
    """Three steps with a gradient, then seven where no backward reaches the second parameter:
    PyTorch (zero_grad() sets .grad to None) skips it; so does minidl."""
    torch = pytest.importorskip("torch")
    theirs_cls = {SGD: torch.optim.SGD, Adam: torch.optim.Adam, AdamW: torch.optim.AdamW,
                  RMSprop: torch.optim.RMSprop, Adagrad: torch.optim.Adagrad, md.Adamax: torch.optim.Adamax,
                  md.NAdam: torch.optim.NAdam, md.RAdam: torch.optim.RAdam, md.Adadelta: torch.optim.Adadelta,
                  md.Rprop: torch.optim.Rprop}[cls]
    params, data = problem()
    ts = [torch.tensor(p.data, requires_grad=True) for p in params]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam keeps its mu_product in it (float32: 1e-9 relative)
    try:
        ours, theirs = cls(params, **kw), theirs_cls(ts, **kw)
        for step in range(10):
            ours.zero_grad()
            theirs.zero_grad()
            for i, g in enumerate(grads([p.data for p in params], data)):
                if i == 0 or step < 3:
                    params[i].grad = g
                    ts[i].grad = torch.tensor(g)
            ours.step()
            theirs.step()
    finally:
        torch.set_default_dtype(default)
    assert_same([p.data for p in params], [t.detach().numpy() for t in ts], rtol=1e-10, atol=1e-12)


def test_the_read_only_check_leaves_parameters_without_gradient_alone():
    a, b = md.Parameter(np.ones(3)), md.Parameter(np.ones(2))
    b.data.flags.writeable = False  # e.g. a frozen embedding shared read-only, no backward reached it
    opt = SGD([a, b], lr=0.1)
    a.grad = np.ones(3)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ALL_IDS)
def test_data_rebound_to_another_shape_than_its_gradient_is_refused_before_anything_moves(cls, kw):
    a, b = md.Parameter(np.ones(3)), md.Parameter(np.ones(2))
    opt = cls([a, b], **kw)
    a.grad, b.grad = np.ones(3), np.ones(2)
    b.data = np.ones(4)
    with pytest.raises(ValueError, match=r"parameter 1 of 2 \(shape \(4,\)\) has a gradient of shape \(2,\); "
                                         r"nothing was updated"):
        opt.step()
    np.testing.assert_array_equal(a.data, 1.0)
    assert opt.state == [{}, {}]


def test_a_custom_optimizer_may_keep_big_ints_in_its_state():
    """The 2**53 limit is for step counts; a custom optimizer's 128-bit seed still loads."""
    class Seeded(Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def update(self, p, state):
            state["seed"] = 2**127 + 5
            p.data -= self.lr * p.grad

    p = md.Parameter(np.ones(2))
    opt = Seeded([p])
    p.grad = np.ones(2)
    opt.step()
    fresh = Seeded([md.Parameter(np.ones(2))])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state[0]["seed"] == 2**127 + 5


def test_a_custom_optimizer_may_take_a_maximize_switch():
    class Ascent(Optimizer):
        def __init__(self, params, lr=0.1, maximize=True):
            super().__init__(params, {"lr": lr, "maximize": maximize})

        def update(self, p, state):
            p.data += self.lr * p.grad if self.hyper["maximize"] else -self.lr * p.grad

    p = md.Parameter(np.ones(2))
    opt = Ascent([p])
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(p.data, 1.1)
    with pytest.raises(TypeError, match="maximize must be a bool"):
        Ascent([p], maximize="yes")


def test_sgd_arguments_after_momentum_are_keyword_only() -> None:
    """PyTorch's SGD takes (params, lr, momentum, dampening, weight_decay, nesterov); minidl took
    weight_decay fourth, so SGD(p, 0.1, 0.9, 0.5) ported from PyTorch decayed the weights silently."""
    p = md.Parameter(np.array([1.0, -2.0, 3.0]))
    with pytest.raises(TypeError, match="positional argument"):
        md.SGD([p], 0.1, 0.9, 0.5)  # type: ignore[misc]
    sgd = md.SGD([p], 0.1, 0.9, dampening=0.5, weight_decay=0.0)
    for _ in range(3):
        p.grad = np.full(3, 0.5)
        sgd.step()
    np.testing.assert_allclose(p.data, [0.792, -2.208, 2.792], rtol=1e-12)  # PyTorch's values for this run


def test_a_numpy_scalar_gradient_is_named_as_one() -> None:
    p = md.Parameter(np.array(1.0))
    with pytest.raises(md.DTypeError, match=r"got a NumPy scalar \(float64; np.asarray\(value\) makes the 0-d"):
        p.grad = np.float64(2.0)  # type: ignore[assignment]
    with pytest.raises(md.DTypeError, match="got an ndarray of dtype float32"):
        p.grad = np.array(2.0, np.float32)
    p.grad = np.asarray(np.float64(2.0))
    assert p.grad == 2.0
