"""Adadelta and Rprop against their rules written out by hand, against PyTorch when it is installed
(many steps of random gradients, float64 and float32), their closed-form first steps, Rprop's sign
changes and clamps, the hyper-parameters they refuse, and their state: saved, resumed, and refused
when it is wrong.

The generic checks (float32 kept, updates in place, bit-for-bit resume, read-only parameters, a
parameter without gradient, state following ``model.astype``) run on them through ``ALL`` in
``tests/test_optim.py``; the checkpoint resume with dropout and batch norm in ``tests/test_resume.py``.
"""

from __future__ import annotations

import copy
import re
import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
from test_optim import assert_same, run_minidl, run_reference

import minidl as md
from minidl.errors import StateDictError
from minidl.testing import states_equal


def adadelta_reference(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    """Zeiler's rule: the step is RMS[previous steps] / RMS[gradients] * g."""

    def rule(w, g, s, t):
        if weight_decay:
            g = g + weight_decay * w
        s["sq"] = rho * s["sq"] + (1 - rho) * g**2
        delta = np.sqrt(s["acc"] + eps) / np.sqrt(s["sq"] + eps) * g
        s["acc"] = rho * s["acc"] + (1 - rho) * delta**2
        return w - lr * delta

    return rule


def rprop_reference(lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    """PyTorch's documented Rprop: the step size grows on a kept sign, shrinks on a flip (where the
    gradient then counts as 0), and the parameter moves by the sign of the gradient times it."""
    eta_minus, eta_plus = etas

    def rule(w, g, s, t):
        if t == 1:
            s["size"], s["prev"] = np.full_like(w, lr), np.zeros_like(w)
        product = g * s["prev"]
        factor = np.where(product > 0, eta_plus, np.where(product < 0, eta_minus, 1.0))
        s["size"] = np.clip(s["size"] * factor, *step_sizes)
        g = np.where(product < 0, 0.0, g)
        s["prev"] = g
        return w - np.sign(g) * s["size"]

    return rule


def _ids(kw: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"


ADADELTA_CASES = [{}, {"lr": 0.5, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1}, {"rho": 0.0}, {"lr": 0.01, "rho": 1.0},
                  {"lr": 2.0, "rho": 0.99, "eps": 1e-8, "weight_decay": 0.01}]
RPROP_CASES = [{}, {"lr": 0.1, "etas": (0.3, 1.7), "step_sizes": (1e-3, 0.2)},
               {"lr": 1.0, "etas": (0.1, 1.05), "step_sizes": (0.05, 0.5)},
               {"lr": 1e-3, "step_sizes": (1e-2, 2.0)},  # lr below the smallest step: clamped up at once
               {"lr": 5.0, "etas": (0.9, 1.1), "step_sizes": (1e-6, 1.0)}]  # and above the largest


@pytest.mark.parametrize("kw", ADADELTA_CASES, ids=_ids)
def test_adadelta_matches_hand_written_rule(kw):
    with np.errstate(all="raise"):  # (no NaN to agree on)
        assert_same(run_minidl(md.Adadelta, kw, steps=12), run_reference(adadelta_reference(**kw), _moments, steps=12))


@pytest.mark.parametrize("kw", RPROP_CASES, ids=_ids)
def test_rprop_matches_hand_written_rule(kw):
    """30 steps of the least-squares problem: the parameters overshoot, so signs flip."""
    with np.errstate(all="raise"):
        assert_same(run_minidl(md.Rprop, kw, steps=30), run_reference(rprop_reference(**kw), lambda w: {}, steps=30),
                rtol=0, atol=0)


def _moments(w: np.ndarray) -> dict[str, np.ndarray]:
    return {"sq": np.zeros_like(w), "acc": np.zeros_like(w)}


# ---------------------------------------------------------------------------------- closed forms
def test_adadelta_first_step_closed_form():
    """From zero state: s = (1 - rho) g^2, d = sqrt(eps) / sqrt(s + eps) * g, u = (1 - rho) d^2; a zero
    gradient does not move (the step is sqrt(eps) / sqrt(eps) * 0)."""
    p = md.Parameter(np.array([1.0, 2.0, 3.0, 4.0]))
    opt = md.Adadelta([p], lr=0.5, rho=0.8, eps=1e-4)
    g = np.array([0.5, -4.0, 0.0, 1e-3])
    p.grad = g.copy()
    opt.step()
    s = 0.2 * g**2
    d = np.sqrt(1e-4) / np.sqrt(s + 1e-4) * g
    np.testing.assert_allclose(p.data, np.array([1.0, 2.0, 3.0, 4.0]) - 0.5 * d, rtol=1e-15)
    assert p.data[2] == 3.0
    np.testing.assert_allclose(opt.state[0]["square_avg"], s, rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["acc_delta"], 0.2 * d**2, rtol=1e-15)
    assert opt.state[0]["step"] == 1


def test_adadelta_weight_decay_is_added_to_the_gradient():
    p = md.Parameter(np.array([2.0, -1.0]))
    opt = md.Adadelta([p], weight_decay=0.5)
    p.grad = np.array([0.0, 0.0])  # the step is the decay's alone: g = 0.5 * w
    opt.step()
    g = 0.5 * np.array([2.0, -1.0])
    d = np.sqrt(1e-6) / np.sqrt(0.1 * g**2 + 1e-6) * g
    np.testing.assert_allclose(p.data, np.array([2.0, -1.0]) - d, rtol=1e-15)


def test_rprop_first_steps_and_a_sign_change_by_hand():
    """Step 1 moves every element by lr against its gradient's sign (0 stays); at a sign flip the step
    size shrinks, the element does not move and its gradient is kept as 0, so the next step compares
    with 0 and keeps the (shrunk) step size.  The arithmetic is the same in Python floats, so equal."""
    p = md.Parameter(np.array([1.0, -2.0, 3.0, 0.5]))
    opt = md.Rprop([p])
    steps = ([0.5, -4.0, 0.0, 1.0], [0.5, 4.0, 1.0, -1.0], [0.5, 4.0, 1.0, 2.0], [-0.1, 1.0, 1.0, 2.0])
    for g in steps:
        p.grad = np.array(g)
        opt.step()
    lr, up, down = 0.01, 1.2, 0.5
    want = [1.0 - lr - lr * up - lr * up * up,               # same sign three times, then a flip: no move
            -2.0 + lr - lr * down - lr * down * up,          # flip at step 2 (no move), kept at 3, grows at 4
            3.0 - lr - lr * up - lr * up * up,               # 0 at step 1: no move; then compared with 0
            0.5 - lr - lr * down - lr * down * up]           # flip at step 2, then 2 and 2
    np.testing.assert_array_equal(p.data, want)
    np.testing.assert_array_equal(opt.state[0]["prev"], [0.0, 1.0, 1.0, 2.0])  # the zeroed gradient kept
    np.testing.assert_array_equal(opt.state[0]["step_size"], [lr * up * up * down, lr * down * up, lr * up * up,
                                                              lr * down * up])
    assert opt.state[0]["step"] == 4


def test_rprop_step_sizes_are_clamped():
    """lr outside step_sizes is clamped at the first step; a kept sign grows to the largest step and
    stays; alternating signs halve the step every other step down to the smallest, and stay."""
    high = md.Parameter(np.zeros(2))
    low = md.Parameter(np.zeros(2))
    opt_high = md.Rprop([high], lr=10.0, step_sizes=(0.1, 3.0))
    opt_low = md.Rprop([low], lr=0.01, step_sizes=(0.1, 3.0))
    high.grad = np.array([1.0, -1.0])
    low.grad = np.array([1.0, -1.0])
    opt_high.step()
    opt_low.step()
    np.testing.assert_array_equal(high.data, [-3.0, 3.0])
    np.testing.assert_array_equal(low.data, [-0.1, 0.1])

    p = md.Parameter(np.zeros(1))
    opt = md.Rprop([p], lr=1.0, step_sizes=(0.1, 3.0))
    sizes = []
    for _ in range(10):
        p.grad = np.ones(1)
        opt.step()
        sizes.append(float(opt.state[0]["step_size"][0]))
    want = [min(1.2**k, 3.0) for k in range(10)]
    np.testing.assert_allclose(sizes, want, rtol=1e-15)
    assert sizes[6] < 3.0 and sizes[7:] == [3.0] * 3
    moved = float(p.data[0])
    assert moved == pytest.approx(-sum(sizes), rel=1e-15)
    for k in range(20):
        p.grad = np.array([-1.0 if k % 2 == 0 else 1.0])
        opt.step()
    assert opt.state[0]["step_size"][0] == 0.1
    before = p.data.copy()
    p.grad = np.array([-1.0])  # the last gradient was +1: a flip, no move, the step clamped at 0.05 -> 0.1
    opt.step()
    assert opt.state[0]["step_size"][0] == 0.1
    np.testing.assert_array_equal(p.data, before)
    p.grad = np.array([-1.0])  # compared with the 0 kept at the flip: moves by the smallest step
    opt.step()
    assert opt.state[0]["step_size"][0] == 0.1
    np.testing.assert_array_equal(p.data, before + 0.1)


def test_rprop_a_nan_gradient_does_not_move_its_element():
    """PyTorch's sign(NaN) is 0: no move, the step size stays; the next step compares with nothing."""
    p = md.Parameter(np.array([1.0, 2.0]))
    opt = md.Rprop([p])
    with np.errstate(invalid="ignore"):
        for g in ([1.0, 1.0], [np.nan, 1.0], [1.0, 1.0]):
            p.grad = np.array(g)
            opt.step()
    np.testing.assert_array_equal(p.data, [1.0 - 0.01 - 0.01, 2.0 - 0.01 - 0.012 - 0.0144])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.01, 0.01 * 1.2 * 1.2])
    np.testing.assert_array_equal(opt.state[0]["prev"], [1.0, 1.0])


def test_rprop_uses_only_the_signs_of_the_gradients():
    rng = np.random.default_rng(4)
    gradients = [rng.normal(size=(3, 4)) for _ in range(15)]
    runs = []
    for scale in (1.0, 1e-3, 1e6):
        p = md.Parameter(np.ones((3, 4)))
        opt = md.Rprop([p], lr=0.05)
        for g in gradients:
            p.grad = g * scale
            opt.step()
        runs.append(p.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_rprop_lr_is_only_the_initial_step_size():
    """As in PyTorch, a schedule changing lr changes the step only of elements that have not stepped."""
    p = md.Parameter(np.zeros(2))
    opt = md.Rprop([p], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    opt.lr = 5.0
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(p.data, [-0.1 - 0.12] * 2, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "kw"), [(md.Adadelta, {"weight_decay": 0.1}), (md.Rprop, {})],
                         ids=["Adadelta", "Rprop"])
def test_a_step_allocates_no_parameter_sized_temporaries(cls, kw, dtype):
    rng = np.random.default_rng(0)
    p = md.Parameter(rng.normal(size=(256, 128)).astype(dtype))
    opt = cls([p], **kw)
    for step in range(3):
        p.grad = rng.normal(size=p.shape).astype(dtype)
        tracemalloc.start()
        try:
            opt.step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if step:  # the first step makes the state and the scratch arrays
            assert peak < p.data.nbytes // 16, peak
    assert p.data.dtype == dtype
    assert all(v.dtype == dtype for v in opt.state[0].values() if isinstance(v, np.ndarray))


# ---------------------------------------------------------------------------------- PyTorch
TORCH_SHAPES = [(7, 5), (3,), (2, 3, 4)]


def _torch_run(torch, cls, kw, dtype, shape, seed, steps=60):
    """``steps`` steps of random gradients (a per-element drift, so some signs persist and others
    flip, and exact zeros) on minidl and on PyTorch; returns both optimizers and parameters."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=shape).astype(dtype)
    drift = rng.normal(size=shape)
    p, t = md.Parameter(w0.copy()), torch.tensor(w0.copy(), requires_grad=True)
    ours, theirs = cls([p], **kw), getattr(torch.optim, cls.__name__)([t], **kw)
    for _ in range(steps):
        g = (rng.normal(size=shape) + drift) * (rng.random(shape) > 0.1)
        g = g.astype(dtype)
        p.grad = g.copy()
        t.grad = torch.tensor(g.copy())
        ours.step()
        theirs.step()
    return ours, theirs, p, t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adadelta_against_pytorch(dtype):
    """Equal to round-off only: PyTorch's addcmul fuses a multiply-add that NumPy rounds twice."""
    torch = pytest.importorskip("torch")
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-5, 2e-6)
    for kw in ADADELTA_CASES:
        for seed, shape in enumerate(TORCH_SHAPES):
            ours, theirs, p, t = _torch_run(torch, md.Adadelta, kw, dtype, shape, seed)
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{kw} {shape}")
            state = theirs.state[t]
            for key in ("square_avg", "acc_delta"):
                assert ours.state[0][key].dtype == dtype
                np.testing.assert_allclose(ours.state[0][key], state[key].numpy(), rtol=rtol * 10, atol=atol)
            assert ours.state[0]["step"] == int(state["step"]) == 60


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rprop_against_pytorch_bit_for_bit(dtype):
    """Rprop's arithmetic is products, comparisons, a clamp and a sign: PyTorch's to the bit."""
    torch = pytest.importorskip("torch")
    for kw in RPROP_CASES:
        for seed, shape in enumerate(TORCH_SHAPES):
            ours, theirs, p, t = _torch_run(torch, md.Rprop, kw, dtype, shape, seed)
            assert p.data.dtype == dtype
            np.testing.assert_array_equal(p.data, t.detach().numpy(), err_msg=f"{kw} {shape}")
            state = theirs.state[t]
            for key in ("prev", "step_size"):
                assert ours.state[0][key].dtype == dtype
                np.testing.assert_array_equal(ours.state[0][key], state[key].numpy())
            assert ours.state[0]["step"] == int(state["step"]) == 60
            if kw.get("step_sizes") == (1e-3, 0.2) and shape == (7, 5):  # both clamps were reached
                assert (ours.state[0]["step_size"] == np.float64(0.2).astype(dtype)).any()
                assert (ours.state[0]["step_size"] == np.float64(1e-3).astype(dtype)).any()


def test_rprop_with_nan_and_infinite_gradients_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w0 = rng.normal(size=20)
    p, t = md.Parameter(w0.copy()), torch.tensor(w0.copy(), requires_grad=True)
    ours, theirs = md.Rprop([p], lr=0.1), torch.optim.Rprop([t], lr=0.1)
    with np.errstate(invalid="ignore"):
        for _ in range(30):
            g = rng.normal(size=20)
            g[rng.random(20) < 0.15] = np.nan
            g[rng.random(20) < 0.05] = np.inf
            g[rng.random(20) < 0.1] = 0.0
            p.grad = g.copy()
            t.grad = torch.tensor(g.copy())
            ours.step()
            theirs.step()
    assert np.isfinite(p.data).all()  # (assert_array_equal would take NaN for NaN)
    np.testing.assert_array_equal(p.data, t.detach().numpy())
    np.testing.assert_array_equal(ours.state[0]["step_size"], theirs.state[t]["step_size"].numpy())
    theirs_prev = theirs.state[t]["prev"].numpy()
    top = np.finfo(np.float64).max  # (minidl keeps NaN as 0 and inf as the largest finite value)
    np.testing.assert_array_equal(ours.state[0]["prev"], np.where(np.isnan(theirs_prev), 0.0,
                                                                   np.clip(theirs_prev, -top, top)))


def test_pytorch_refuses_the_etas_minidl_refuses():
    torch = pytest.importorskip("torch")
    t = [torch.zeros(2, requires_grad=True)]
    for etas in ((1.5, 1.2), (0.5, 1.0), (0.0, 1.2)):
        with pytest.raises(ValueError, match="Invalid eta values"):
            torch.optim.Rprop(t, etas=etas)
        with pytest.raises(ValueError, match="etas must be"):
            md.Rprop([md.Parameter(np.zeros(2))], etas=etas)
    with pytest.raises(ValueError, match="Invalid rho value"):
        torch.optim.Adadelta(t, rho=1.5)


# ---------------------------------------------------------------------------------- arguments
def test_defaults_follow_pytorch():
    p = [md.Parameter(np.zeros(2))]
    assert md.Adadelta(p).hyper == {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0,
                                    "maximize": False, "decay_bias": True}
    rprop = md.Rprop(p)
    assert rprop.hyper == {"lr": 0.01, "eta_minus": 0.5, "eta_plus": 1.2, "step_size_min": 1e-6,
                           "step_size_max": 50.0, "maximize": False}
    assert rprop.etas == (0.5, 1.2) and rprop.step_sizes == (1e-6, 50.0)
    assert all(type(v) is (bool if k == "maximize" else float) for k, v in rprop.hyper.items())
    assert repr(md.Adadelta(p)) == ("Adadelta(1 parameter, lr=1.0, rho=0.9, eps=1e-06, weight_decay=0.0, "
                                     "maximize=False, decay_bias=True)")
    assert repr(rprop) == "Rprop(1 parameter, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-06, 50.0), maximize=False)"
    assert md.Rprop(p, etas=[np.float32(0.25), 2], step_sizes=np.array([0.5, 0.5])).hyper == {
        "lr": 0.01, "eta_minus": 0.25, "eta_plus": 2.0, "step_size_min": 0.5, "step_size_max": 0.5,
        "maximize": False}


ETAS = "0 < eta_minus < 1 < eta_plus (finite)"
SIZES = "0 < step_size_min <= step_size_max (finite)"


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda p: md.Adadelta(p, lr=-1.0), ValueError, "Adadelta: lr must be a finite number >= 0, got -1.0"),
    (lambda p: md.Adadelta(p, rho=1.5), ValueError, "Adadelta: rho must be a number in [0, 1], got 1.5"),
    (lambda p: md.Adadelta(p, rho=-0.1), ValueError, "Adadelta: rho must be a number in [0, 1], got -0.1"),
    (lambda p: md.Adadelta(p, rho=float("nan")), ValueError, "Adadelta: rho must be a number in [0, 1], got nan"),
    (lambda p: md.Adadelta(p, rho="0.9"), TypeError, "Adadelta: rho must be a number, got str '0.9'"),
    (lambda p: md.Adadelta(p, eps=-1e-6), ValueError, "Adadelta: eps must be a finite number >= 0, got -1e-06"),
    (lambda p: md.Adadelta(p, weight_decay=-0.1), ValueError,
     "Adadelta: weight_decay must be a finite number >= 0, got -0.1"),
    (lambda p: md.Adadelta(p, weight_decay=float("inf")), ValueError,
     "Adadelta: weight_decay must be a finite number >= 0, got inf"),
    (lambda p: md.Rprop(p, lr=-0.01), ValueError, "Rprop: lr must be a finite number >= 0, got -0.01"),
    (lambda p: md.Rprop(p, etas=(1.5, 1.2)), ValueError, f"Rprop: etas must be {ETAS}, got (1.5, 1.2)"),
    (lambda p: md.Rprop(p, etas=(0.5, 1.0)), ValueError, f"Rprop: etas must be {ETAS}, got (0.5, 1.0)"),
    (lambda p: md.Rprop(p, etas=(0, 1.2)), ValueError, f"Rprop: etas must be {ETAS}, got (0, 1.2)"),
    (lambda p: md.Rprop(p, etas=(-0.5, 1.2)), ValueError, f"Rprop: etas must be {ETAS}, got (-0.5, 1.2)"),
    (lambda p: md.Rprop(p, etas=(0.5, float("inf"))), ValueError, f"Rprop: etas must be {ETAS}, got (0.5, inf)"),
    (lambda p: md.Rprop(p, etas=(0.5,)), ValueError, "Rprop: etas must be a pair (eta_minus, eta_plus), got (0.5,)"),
    (lambda p: md.Rprop(p, etas=None), TypeError,
     "Rprop: etas must be a pair of numbers (eta_minus, eta_plus), got None"),
    (lambda p: md.Rprop(p, etas="ab"), TypeError,
     "Rprop: etas must be a pair of numbers (eta_minus, eta_plus), got 'ab'"),
    (lambda p: md.Rprop(p, etas=("0.5", 1.2)), TypeError, "Rprop: etas[0] must be a number, got str '0.5'"),
    (lambda p: md.Rprop(p, step_sizes=(1.0, 0.5)), ValueError, f"Rprop: step_sizes must be {SIZES}, got (1.0, 0.5)"),
    (lambda p: md.Rprop(p, step_sizes=(0.0, 1.0)), ValueError, f"Rprop: step_sizes must be {SIZES}, got (0.0, 1.0)"),
    (lambda p: md.Rprop(p, step_sizes=(-1, 1)), ValueError, f"Rprop: step_sizes must be {SIZES}, got (-1, 1)"),
    (lambda p: md.Rprop(p, step_sizes=(1e-6, float("inf"))), ValueError,
     f"Rprop: step_sizes must be {SIZES}, got (1e-06, inf)"),
    (lambda p: md.Rprop(p, step_sizes=(1e-6, None)), TypeError,
     "Rprop: step_sizes[1] must be a number, got NoneType None"),
    (lambda p: md.Rprop(p, step_sizes=(1, 2, 3)), ValueError,
     "Rprop: step_sizes must be a pair (step_size_min, step_size_max), got (1, 2, 3)"),
    (lambda p: md.Rprop(p, etas=(2.0, 0.5), step_sizes=(2.0, 1.0)), ValueError,
     f"Rprop: etas must be {ETAS}, got (2.0, 0.5); Rprop: step_sizes must be {SIZES}, got (2.0, 1.0)"),
    (lambda p: md.Rprop(p, weight_decay=0.1), TypeError, "unexpected keyword argument 'weight_decay'"),
])
def test_bad_arguments_are_refused(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make([md.Parameter(np.zeros(2))])


@pytest.mark.parametrize(("make", "key", "bad", "message"), [
    (md.Adadelta, "rho", 1.5, "hyper-parameter 'rho': must be a number in [0, 1], got 1.5"),
    (md.Adadelta, "eps", -1.0, "hyper-parameter 'eps': expected a finite number >= 0, got -1.0"),
    (md.Rprop, "eta_minus", 1.0, f"hyper-parameters 'eta_minus', 'eta_plus': must be {ETAS}, got 1.0, 1.2"),
    (md.Rprop, "eta_plus", 0.9, f"hyper-parameters 'eta_minus', 'eta_plus': must be {ETAS}, got 0.5, 0.9"),
    (md.Rprop, "step_size_min", 0.0,
     f"hyper-parameters 'step_size_min', 'step_size_max': must be {SIZES}, got 0.0, 50.0"),
    (md.Rprop, "step_size_min", 60.0,
     f"hyper-parameters 'step_size_min', 'step_size_max': must be {SIZES}, got 60.0, 50.0"),
])
def test_load_state_dict_refuses_what_the_constructor_refuses(make, key, bad, message):
    p = md.Parameter(np.ones(3))
    opt = make([p])
    p.grad = np.full(3, 0.5)
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    state = opt.state_dict()
    state["hyper"][key] = bad
    with pytest.raises(StateDictError, match=re.escape(message)):
        opt.load_state_dict(state)
    assert states_equal(opt.state_dict(), good)


# ---------------------------------------------------------------------------------- state
@pytest.mark.parametrize(("cls", "entry", "match"), [
    (md.Adadelta, {"step": 1, "square_avg": np.array([0.0, -1.0, 0.0]), "acc_delta": np.zeros(3)},
     r"'0.square_avg': holds negative values"),
    (md.Adadelta, {"step": 1, "square_avg": np.zeros(3), "acc_delta": np.array([0.0, 0.0, -1e-9])},
     r"'0.acc_delta': holds negative values"),  # its square root: NaN weights
    (md.Adadelta, {"step": 1, "square_avg": np.zeros(3)}, r"missing \['acc_delta'\]"),
    (md.Adadelta, {"step": 1, "square_avg": np.zeros(3), "acc_delta": np.zeros(3), "prev": np.zeros(3)},
     r"unexpected entries \['prev'\]"),
    (md.Adadelta, {"step": 1, "square_avg": np.zeros(2), "acc_delta": np.zeros(3)},
     r"'0.square_avg': expected shape \(3,\), got \(2,\)"),
    (md.Rprop, {"step": 1, "prev": np.zeros(3), "step_size": np.array([0.01, -0.01, 0.01])},
     r"'0.step_size': holds negative values \(a step size cannot\), e.g. -0.01"),
    (md.Rprop, {"step": 1, "prev": np.array([0.0, np.nan, 0.0]), "step_size": np.full(3, 0.01)},
     r"'0.prev': holds NaN/inf"),
    (md.Rprop, {"step": 1, "prev": np.zeros(3), "step_size": 0.01}, r"'0.step_size': expected an array"),
    (md.Rprop, {"step": 1, "prev": np.zeros(3)}, r"missing \['step_size'\]"),
    (md.Rprop, {"step": 1.5, "prev": np.zeros(3), "step_size": np.full(3, 0.01)},
     r"'0.step': expected a whole number >= 0"),
    (md.Rprop, {"step": 1, "prev": np.zeros(3), "step_size": np.full(3, 0.01, np.float32)},
     r"'0.step_size': expected dtype float64, got float32"),
])
def test_load_state_dict_refuses_a_corrupted_state_and_changes_nothing(cls, entry, match):
    p = md.Parameter(np.ones(3))
    opt = cls([p])
    p.grad = np.full(3, 0.5)
    opt.step()
    good = copy.deepcopy(opt.state_dict())
    with pytest.raises(StateDictError, match=match):
        opt.load_state_dict({"type": cls.__name__, "hyper": dict(opt.hyper), "state": {"0": entry}})
    assert states_equal(opt.state_dict(), good)
    opt.load_state_dict(good)  # its own state still loads
    assert states_equal(opt.state_dict(), good)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("cls", "kw", "keys"), [
    (md.Adadelta, {"lr": 0.5, "weight_decay": 0.01}, {"step", "square_avg", "acc_delta"}),
    (md.Rprop, {"lr": 0.05, "etas": (0.4, 1.3), "step_sizes": (1e-4, 1.0)}, {"step", "prev", "step_size"}),
], ids=["Adadelta", "Rprop"])
def test_a_checkpoint_resumes_bit_for_bit(cls, kw, keys, dtype, tmp_path):
    """5 steps, md.save, md.load into a fresh optimizer made with other settings, 5 more steps: the
    same as 10 steps straight; the state saved is a copy, of the parameters' dtype."""
    rng = np.random.default_rng(3)
    gradients = [[rng.normal(size=s).astype(dtype) for s in ((4, 3), (3,))] for _ in range(10)]

    def run(params, opt, todo):
        for gs in todo:
            for p, g in zip(params, gs, strict=True):
                p.grad = g.copy()
            opt.step()

    def fresh():
        return [md.Parameter(np.linspace(-1, 1, 12).reshape(4, 3).astype(dtype)),
                md.Parameter(np.array([0.5, -0.5, 2.0], dtype))]

    straight = fresh()
    run(straight, cls(straight, **kw), gradients)
    first = fresh()
    opt = cls(first, **kw)
    run(first, opt, gradients[:5])
    saved = opt.state_dict()
    assert saved["type"] == cls.__name__ and set(saved["state"]["0"]) == keys
    assert all(v.dtype == dtype for s in saved["state"].values() for v in s.values() if isinstance(v, np.ndarray))
    md.save({"params": [p.data for p in first], "optimizer": saved}, tmp_path / "run.ckpt")
    saved["state"]["0"][sorted(keys - {"step"})[0]][...] = 123.0  # a copy: the optimizer's own is untouched
    assert not any((v == 123.0).any() for v in opt.state[0].values() if isinstance(v, np.ndarray))
    checkpoint = md.load(tmp_path / "run.ckpt")
    resumed = [md.Parameter(np.asarray(w)) for w in checkpoint["params"]]
    opt2 = cls(resumed, lr=0.9)
    opt2.load_state_dict(checkpoint["optimizer"])
    assert opt2.hyper == opt.hyper
    run(resumed, opt2, gradients[5:])
    for a, b in zip(straight, resumed, strict=True):
        assert b.data.dtype == dtype
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("make", [lambda ps: md.Adadelta(ps, lr=10.0), lambda ps: md.Rprop(ps, lr=0.05)],
                         ids=["Adadelta", "Rprop"])
def test_fit_trains_a_model_and_a_checkpoint_resumes_it(make, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = np.tanh(x @ np.array([[1.0], [-2.0], [0.5]])) + 0.3

    def build() -> tuple[md.Sequential, md.Optimizer]:
        model = md.Sequential(md.Dense(3, 8, rng=1), md.Tanh(), md.Dense(8, 1, rng=2))
        return model, make(model.parameters())

    model, opt = build()
    first = model.evaluate(x, y, loss=md.MSELoss())["loss"]
    model.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=10, batch_size=16, verbose=0, rng=0)
    md.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "run.ckpt")
    model.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=10, batch_size=16, verbose=0, rng=1)
    resumed, opt2 = build()
    checkpoint = md.load(tmp_path / "run.ckpt")
    resumed.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["optimizer"])
    resumed.fit(x, y, loss=md.MSELoss(), optimizer=opt2, epochs=10, batch_size=16, verbose=0, rng=1)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value)
    assert model.evaluate(x, y, loss=md.MSELoss())["loss"] < 0.1 * first


def test_rprop_state_after_an_infinite_gradient_loads_and_resumes(tmp_path: Any) -> None:
    """prev keeps an infinite gradient as the largest finite value of its sign: the state loads (NaN/inf
    in a state file is refused) and the run goes on as an uninterrupted one; no warning on the way."""
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(6)]
    grads[0][[0, 3]] = [1.0, -1.0]  # the same signs as the infinite ones after them: no flip to 0
    grads[1][[0, 3]] = [np.inf, -np.inf]
    grads[2][0] = 0.0  # inf * 0: no sign, as PyTorch's NaN sign
    p = md.Parameter(w0.copy())
    opt = md.Rprop([p], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for g in grads[:2]:
            p.grad = g.copy()
            opt.step()
    top = np.finfo(np.float64).max
    assert opt.state[0]["prev"][0] == top and opt.state[0]["prev"][3] == -top
    md.save({"optimizer": opt.state_dict()}, tmp_path / "ck.npz")
    q = md.Parameter(p.data.copy())
    resumed = md.Rprop([q], lr=0.1)
    resumed.load_state_dict(md.load(tmp_path / "ck.npz")["optimizer"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for g in grads[2:]:
            p.grad, q.grad = g.copy(), g.copy()
            opt.step()
            resumed.step()
    np.testing.assert_array_equal(q.data, p.data)
    np.testing.assert_array_equal(resumed.state[0]["step_size"], opt.state[0]["step_size"])
