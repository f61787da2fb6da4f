"""Adamax, NAdam and RAdam against their rules written out by hand (PyTorch's documentation form),
against PyTorch when it is installed, and their state: saved, resumed, and refused when it is wrong.

The generic checks (float32 kept, updates in place, bit-for-bit resume, read-only parameters, state
following ``model.astype``) run on them through ``ALL`` in ``tests/test_optim.py``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from test_optim import assert_same, grads, problem, run_minidl, run_reference

import minidl as md
from minidl.errors import StateDictError
from minidl.testing import states_equal


def adamax_reference(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas

    def rule(w, g, s, t):
        if weight_decay:
            g = g + weight_decay * w
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["u"] = np.maximum(b2 * s["u"], np.abs(g) + eps)
        return w - lr / (1 - b1**t) * s["m"] / s["u"]

    return rule


def nadam_reference(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                    decoupled_weight_decay=False):
    """Dozat's bias-corrected Nesterov moment: m_hat mixes the next momentum with the current gradient."""
    b1, b2 = betas

    def rule(w, g, s, t):
        if decoupled_weight_decay:
            w = w * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * w
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        s["prod"] = s["prod"] * mu
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        m_hat = mu_next * s["m"] / (1 - s["prod"] * mu_next) + (1 - mu) * g / (1 - s["prod"])
        v_hat = s["v"] / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)

    return rule


def radam_reference(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
    b1, b2 = betas

    def rule(w, g, s, t):
        if decoupled_weight_decay:
            w = w * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * w
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            adaptive = math.sqrt(1 - b2**t) / (np.sqrt(s["v"]) + eps)
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            s["rectified"] = s.get("rectified", 0) + 1
            return w - lr * m_hat * adaptive * r
        return w - lr * m_hat

    return rule


def moments(w: np.ndarray) -> dict[str, Any]:
    return {"m": np.zeros_like(w), "v": np.zeros_like(w), "u": np.zeros_like(w), "prod": 1.0}


def _ids(kw: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"


ADAMAX_CASES = [{}, {"lr": 0.05}, {"lr": 0.02, "betas": (0.8, 0.9), "weight_decay": 0.1}, {"eps": 1e-2}]
NADAM_CASES = [{}, {"lr": 0.05, "momentum_decay": 0.01}, {"lr": 0.02, "betas": (0.8, 0.99), "weight_decay": 0.1},
               {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}, {"momentum_decay": 0.0}]
RADAM_CASES = [{}, {"lr": 0.05, "betas": (0.9, 0.8)}, {"lr": 0.02, "betas": (0.5, 0.6), "weight_decay": 0.1},
               {"lr": 0.02, "betas": (0.9, 0.8), "weight_decay": 0.1, "decoupled_weight_decay": True}]


@pytest.mark.parametrize("kw", ADAMAX_CASES, ids=_ids)
def test_adamax_matches_hand_written_rule(kw):
    assert_same(run_minidl(md.Adamax, kw, steps=12), run_reference(adamax_reference(**kw), moments, steps=12))


@pytest.mark.parametrize("kw", NADAM_CASES, ids=_ids)
def test_nadam_matches_hand_written_rule(kw):
    assert_same(run_minidl(md.NAdam, kw, steps=12), run_reference(nadam_reference(**kw), moments, steps=12))


@pytest.mark.parametrize("kw", RADAM_CASES, ids=_ids)
def test_radam_matches_hand_written_rule(kw):
    steps = 25
    assert_same(run_minidl(md.RAdam, kw, steps=steps), run_reference(radam_reference(**kw), moments, steps=steps))


def test_radam_takes_both_branches_and_its_first_step_is_plain_sgd():
    """The first steps are SGD with bias-corrected momentum (m_hat = g at t = 1): w - lr g; the rectified
    Adam step starts once rho_t > 5 (t = 7 with beta2 = 0.8; t = 6 with the default 0.999)."""
    p = md.Parameter(np.array([1.0, -2.0, 3.0]))
    opt = md.RAdam([p], lr=0.1, betas=(0.9, 0.8))
    p.grad[...] = [0.5, -4.0, 0.0]
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 + 0.4, 3.0], rtol=1e-15)
    states = [moments(np.zeros(3)) for _ in range(2)]
    rule = radam_reference(lr=0.05, betas=(0.9, 0.8))
    for t in range(1, 16):
        rule(np.zeros(3), np.ones(3), states[0], t)
    assert states[0]["rectified"] == 9  # t = 7..15
    rule = radam_reference()
    for t in range(1, 8):
        rule(np.zeros(3), np.ones(3), states[1], t)
    assert states[1]["rectified"] == 2  # t = 6, 7


def test_adamax_first_step_is_a_signed_step_of_lr():
    """From zero state: m = (1 - b1) g, u = |g| + eps, so w - lr g / (|g| + eps)."""
    p = md.Parameter(np.array([1.0, 2.0, 3.0]))
    opt = md.Adamax([p], lr=0.1)
    p.grad[...] = [0.5, -4.0, 0.0]
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 3.0],
                               rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["exp_inf"], [0.5 + 1e-8, 4.0 + 1e-8, 1e-8], rtol=1e-15)


def test_nadam_resumes_from_a_product_of_one_its_starting_value():
    p = md.Parameter(np.ones(3))
    opt = md.NAdam([p], lr=0.1)
    p.grad[...] = 0.5
    opt.step()
    state = opt.state_dict()
    state["state"]["0"]["mu_product"] = 1.0
    opt.load_state_dict(state)
    p.grad[...] = 0.5
    with np.errstate(all="raise"):
        opt.step()
    assert np.isfinite(p.data).all() and 0 < opt.state[0]["mu_product"] < 1


def test_nadam_keeps_the_product_of_momenta_as_a_number():
    params, data = problem()
    opt = md.NAdam(params, lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        for p, g in zip(params, grads([p.data for p in params], data), strict=True):
            p.grad += g
        opt.step()
    expected = math.prod(0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3)) for t in (1, 2, 3))
    for state in opt.state:
        assert type(state["mu_product"]) is float
        assert state["mu_product"] == pytest.approx(expected, rel=1e-15)
    saved = opt.state_dict()
    assert saved["state"]["0"]["mu_product"] == opt.state[0]["mu_product"]


def test_defaults_follow_pytorch():
    p = [md.Parameter(np.zeros(2))]
    assert md.Adamax(p).hyper == {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                                  "maximize": False, "decay_bias": True}
    assert md.NAdam(p).hyper == {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                                 "momentum_decay": 4e-3, "decoupled_weight_decay": False, "maximize": False,
                                 "decay_bias": True}
    assert md.RAdam(p).hyper == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
                                 "decoupled_weight_decay": False, "maximize": False, "decay_bias": True}
    assert md.NAdam(p, betas=(0.8, 0.9)).betas == (0.8, 0.9)
    assert repr(md.Adamax(p)) == ("Adamax(1 parameter, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, "
                                   "maximize=False, decay_bias=True)")


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda p: md.Adamax(p, betas=(1.0, 0.9)), ValueError, r"Adamax: betas\[0\] must be a number in \[0, 1\)"),
    (lambda p: md.NAdam(p, betas=(0.9,)), ValueError, r"NAdam: betas must be a pair"),
    (lambda p: md.NAdam(p, momentum_decay=-0.1), ValueError, "NAdam: momentum_decay must be a finite number >= 0"),
    (lambda p: md.NAdam(p, decoupled_weight_decay=1), TypeError, "NAdam: decoupled_weight_decay must be a bool"),
    (lambda p: md.RAdam(p, lr=-1e-3), ValueError, "RAdam: lr must be a finite number >= 0, got -0.001"),
    (lambda p: md.RAdam(p, 1e-3, (0.9, 0.999), 1e-8, 0.0, True), TypeError, "positional"),
])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make([md.Parameter(np.zeros(2))])


@pytest.mark.parametrize(("cls", "kw", "entry", "match"), [
    (md.NAdam, {}, {"step": 1, "mu_product": 1.5, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"'0.mu_product': must be a product of momenta, in \[0, 1\], got 1.5"),
    (md.NAdam, {}, {"step": 1, "mu_product": -0.5, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"'0.mu_product': must be a product of momenta, in \[0, 1\], got -0.5"),
    # an int beyond float range was an OverflowError, not a refusal
    (md.NAdam, {}, {"step": 1, "mu_product": 10**400, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"'0.mu_product': must be a product of momenta, in \[0, 1\], got an int of 401 digits"),
    (md.NAdam, {}, {"step": 1, "mu_product": np.zeros(3), "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"'0.mu_product': expected a number, got ndarray"),
    (md.NAdam, {}, {"step": 1, "mu_product": float("nan"), "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"'0.mu_product': expected a finite number"),
    (md.NAdam, {}, {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}, r"missing \['mu_product'\]"),
    (md.Adamax, {}, {"step": 1, "exp_avg": np.zeros(3), "exp_inf": np.array([0.0, -1.0, 0.0])},
     r"'0.exp_inf': holds negative values"),
    (md.Adamax, {}, {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)},
     r"unexpected entries \['exp_avg_sq'\]"),
    (md.RAdam, {}, {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": -np.ones(3)}, "holds negative values"),
])
def test_load_state_dict_refuses_state_the_updates_would_misuse(cls, kw, entry, match):
    p = md.Parameter(np.ones(3))
    opt = cls([p], **kw)
    p.grad[...] = 0.5
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    with pytest.raises(StateDictError, match=match):
        opt.load_state_dict({"type": cls.__name__, "hyper": dict(opt.hyper), "state": {"0": entry}})
    assert states_equal(opt.state_dict(), good)
    opt.load_state_dict(good)
    assert states_equal(opt.state_dict(), good)


@pytest.mark.parametrize("make", [lambda ps: md.Adamax(ps, lr=0.05), lambda ps: md.NAdam(ps, lr=0.05),
                                  lambda ps: md.RAdam(ps, lr=0.05)], ids=["Adamax", "NAdam", "RAdam"])
def test_fit_trains_a_model_and_a_checkpoint_resumes_it(make, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3

    def build() -> tuple[md.Sequential, md.Optimizer]:
        model = md.Sequential(md.Dense(3, 1, rng=1))
        return model, make(model.parameters())

    model, opt = build()
    first = model.evaluate(x, y, loss=md.MSELoss())["loss"]
    model.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=5, batch_size=16, verbose=0, rng=0)
    md.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "run.ckpt")
    model.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=5, batch_size=16, verbose=0, rng=1)
    resumed, opt2 = build()
    checkpoint = md.load(tmp_path / "run.ckpt")
    resumed.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["optimizer"])
    resumed.fit(x, y, loss=md.MSELoss(), optimizer=opt2, epochs=5, batch_size=16, verbose=0, rng=1)
    np.testing.assert_array_equal(resumed.state_dict()["0.W"], model.state_dict()["0.W"])
    assert model.evaluate(x, y, loss=md.MSELoss())["loss"] < 0.5 * first


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    cases = [(md.Adamax, torch.optim.Adamax, kw) for kw in ADAMAX_CASES]
    cases += [(md.NAdam, torch.optim.NAdam, kw) for kw in NADAM_CASES]
    cases += [(md.RAdam, torch.optim.RAdam, kw) for kw in RADAM_CASES]
    default = torch.get_default_dtype()
    # PyTorch keeps NAdam's mu_product in the default dtype: float32 would differ by 1e-9 relative
    torch.set_default_dtype(torch.float64)
    try:
        for ours, theirs, kw in cases:
            got = run_minidl(ours, kw, steps=25)
            params, data = problem()
            ts = [torch.tensor(p.data, requires_grad=True) for p in params]
            opt = theirs(ts, **kw)
            for _ in range(25):
                opt.zero_grad()
                for t, g in zip(ts, grads([t.detach().numpy() for t in ts], data), strict=True):
                    t.grad = torch.tensor(g)
                opt.step()
            assert_same(got, [t.detach().numpy() for t in ts], rtol=1e-12, atol=1e-14)
    finally:
        torch.set_default_dtype(default)
