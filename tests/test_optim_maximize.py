"""Every optimizer's ``maximize=True``: PyTorch's rule, a step with ``-grad`` wherever ``grad`` was
used (before weight decay, so decay still pulls towards 0; in the momentum buffers, RMSprop's
averages, Adagrad's sum and Rprop's sign test and ``prev``).

Checked exactly, without PyTorch: ``maximize=True`` on gradients ``g`` is ``maximize=False`` on
``-g``, parameters and state, bit for bit, on both of ``step``'s paths; the gradients are left as
they were; no parameter-sized temporary.  Against PyTorch (when installed): 30 steps of random
gradients, float64 and float32, parameters and state.  Then the hyper-parameter itself (saved,
restored, an older state without it, bad values refused) and ``fit`` climbing an objective.
"""

from __future__ import annotations

import copy
import inspect
import tracemalloc
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError
from minidl.testing import states_equal

CASES: list[tuple[type[md.Optimizer], dict[str, Any]]] = [
    (md.SGD, {"lr": 0.1}),
    (md.SGD, {"lr": 0.05, "weight_decay": 0.2}),
    (md.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True}),
    (md.SGD, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    (md.Adam, {"lr": 0.01}),
    (md.Adam, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    (md.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (md.AdamW, {"lr": 0.01, "amsgrad": True}),
    (md.Adamax, {"lr": 0.01}),
    (md.Adamax, {"lr": 0.01, "weight_decay": 0.1}),
    (md.NAdam, {"lr": 0.01, "weight_decay": 0.1}),
    (md.NAdam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (md.RAdam, {"lr": 0.01, "betas": (0.9, 0.8), "weight_decay": 0.1}),  # rectified from step 7 on
    (md.RAdam, {"lr": 0.01, "betas": (0.9, 0.8), "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (md.RMSprop, {"lr": 0.01}),
    (md.RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    (md.Adagrad, {"lr": 0.05}),
    (md.Adagrad, {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    (md.Adadelta, {"lr": 0.5}),
    (md.Adadelta, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}),
    (md.Rprop, {"lr": 0.05}),
    (md.Rprop, {"lr": 0.05, "etas": (0.4, 1.3), "step_sizes": (1e-3, 0.2)}),  # both clamps reached
]
IDS = [f"{cls.__name__}-{','.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CASES]
OPTIMIZERS = [md.SGD, md.Adam, md.AdamW, md.Adamax, md.NAdam, md.RAdam, md.RMSprop, md.Adagrad, md.Adadelta,
              md.Rprop]
SHAPES = [(7, 5), (3,), (2, 3, 4)]
#: above plain SGD's block size in float64 (``_subtract_scaled`` goes block by block)
BIG = (260, 260)
STEPS = 30


def gradients(shape: tuple[int, ...], dtype: Any, seed: int, steps: int = STEPS) -> list[np.ndarray]:
    """Random gradients with a per-element drift (some signs persist, others flip) and exact zeros."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(size=shape)
    return [((rng.normal(size=shape) + drift) * (rng.random(shape) > 0.1)).astype(dtype) for _ in range(steps)]


def start(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 100).normal(size=shape).astype(dtype)


def run(cls: type[md.Optimizer], kw: dict[str, Any], w0: np.ndarray, grads: list[np.ndarray], *,
        maximize: bool, zero_grad: bool) -> tuple[md.Parameter, md.Optimizer]:
    p = md.Parameter(w0.copy())
    opt = cls([p], maximize=maximize, **kw)
    for g in grads:
        p.grad = g.copy()
        opt.step(zero_grad=zero_grad)
    return p, opt


# ------------------------------------------------------------------------------ exact, no PyTorch
@pytest.mark.parametrize("zero_grad", [False, True], ids=["step", "step-zero_grad"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_maximize_on_grad_is_minimize_on_minus_grad_bit_for_bit(cls, kw, dtype, zero_grad):
    """Negating is exact, and so is every product or sum with a negated factor: the two runs agree
    to the bit, parameters and state (momentum buffers, averages, Rprop's ``prev``) alike."""
    for seed, shape in enumerate(SHAPES + [BIG] * (cls is md.SGD)):
        w0, grads = start(shape, dtype, seed), gradients(shape, dtype, seed, steps=12)
        up, up_opt = run(cls, kw, w0, grads, maximize=True, zero_grad=zero_grad)
        down, down_opt = run(cls, kw, w0, [-g for g in grads], maximize=False, zero_grad=zero_grad)
        assert up.data.dtype == dtype
        np.testing.assert_array_equal(up.data, down.data)
        assert states_equal(up_opt.state_dict()["state"], down_opt.state_dict()["state"])
        assert not np.array_equal(up.data, run(cls, kw, w0, grads, maximize=False, zero_grad=zero_grad)[0].data)


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_the_gradient_is_left_as_it_was(cls, kw):
    """The negated gradient lives in a scratch array: ``p.grad`` (the caller's array) keeps its values,
    also when it is not C-contiguous; only ``step(zero_grad=True)`` zeroes it, as without maximize."""
    rng = np.random.default_rng(3)
    p = md.Parameter(rng.normal(size=(4, 6)))
    opt = cls([p], maximize=True, **kw)
    for _ in range(3):
        g = np.asfortranarray(rng.normal(size=(4, 6)))
        p.grad = g
        kept = g.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad, kept)
        np.testing.assert_array_equal(g, kept)
    p.grad = rng.normal(size=(4, 6))
    opt.step(zero_grad=True)
    assert not p.has_grad and p.grad_is_zero()


def test_first_steps_by_hand():
    """One step from zero state, each by its formula with the gradient's sign flipped."""
    g = np.array([0.5, -4.0, 0.0, 2.0])
    w0 = np.array([1.0, 2.0, 3.0, -1.0])

    def step(cls, **kw):
        p = md.Parameter(w0.copy())
        p.grad = g.copy()
        cls([p], maximize=True, **kw).step()
        return p.data

    np.testing.assert_array_equal(step(md.SGD, lr=0.1), w0 + 0.1 * g)
    # decay still pulls towards 0: w - lr * (-g + wd * w)
    np.testing.assert_allclose(step(md.SGD, lr=0.1, weight_decay=0.5), w0 - 0.1 * (-g + 0.5 * w0), rtol=1e-15)
    # Adam's first step is lr * m_hat / (sqrt(v_hat) + eps) = lr * (-g) / (|g| + eps)
    np.testing.assert_allclose(step(md.Adam, lr=0.01), w0 + 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(step(md.Adagrad, lr=0.1), w0 + 0.1 * g / (np.abs(g) + 1e-10), rtol=1e-15)
    np.testing.assert_array_equal(step(md.Rprop, lr=0.05), w0 + 0.05 * np.sign(g))
    # AdamW: the weights shrink first, then Adam's step on -g
    np.testing.assert_allclose(step(md.AdamW, lr=0.01, weight_decay=0.1),
                               w0 * (1 - 0.01 * 0.1) + 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_rprop_keeps_the_negated_gradient_and_tests_its_sign():
    p = md.Parameter(np.zeros(3))
    opt = md.Rprop([p], lr=0.1, maximize=True)
    p.grad = np.array([1.0, -1.0, 1.0])
    opt.step()
    np.testing.assert_array_equal(opt.state[0]["prev"], [-1.0, 1.0, -1.0])
    p.grad = np.array([2.0, 3.0, 0.0])  # the same sign, a flip, no sign
    opt.step()
    np.testing.assert_allclose(opt.state[0]["step_size"], [0.12, 0.05, 0.1], rtol=1e-15)
    np.testing.assert_array_equal(opt.state[0]["prev"], [-2.0, 0.0, 0.0])
    np.testing.assert_allclose(p.data, [0.1 + 0.12, -0.1, 0.1], rtol=1e-15)


def _peaks(cls: type[md.Optimizer], kw: dict[str, Any], dtype: Any, maximize: bool) -> list[int]:
    """The traced peak of each of 6 steps (with and without zero_grad) after the first two."""
    rng = np.random.default_rng(0)
    p = md.Parameter(rng.normal(size=(128, 96)).astype(dtype))
    opt = cls([p], maximize=maximize, **kw)
    peaks = []
    for step in range(4):
        for zero_grad in (False, True):
            p.grad = rng.normal(size=p.shape).astype(dtype)
            tracemalloc.start()
            try:
                opt.step(zero_grad=zero_grad)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            if step:  # the first step makes the state and the scratch arrays
                peaks.append(peak)
    assert all(v.dtype == dtype for v in opt.state[0].values() if isinstance(v, np.ndarray))
    return peaks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_a_step_allocates_no_parameter_sized_temporaries(cls, kw, dtype):
    """maximize costs no temporary: the negated gradient is a scratch array, made once.  (Momentum-free
    SGD without zero_grad makes its ``lr * g`` of up to 512 KiB with or without maximize, by design.)"""
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already runs (PYTHONTRACEMALLOC or a plugin): the peak would not be this step's")
    up, down = _peaks(cls, kw, dtype, True), _peaks(cls, kw, dtype, False)
    nbytes = 128 * 96 * np.dtype(dtype).itemsize
    for with_max, without in zip(up, down, strict=True):
        assert with_max <= without + 1024, (up, down)
    if not (cls is md.SGD and not kw.get("momentum")):
        assert max(up) < nbytes // 16, up


# ------------------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_against_pytorch(cls, kw, dtype):
    """30 steps with ``maximize=True`` on minidl and on ``torch.optim``: parameters and every state
    array to round-off (Rprop to the bit), through ``step()`` and ``step(zero_grad=True)``."""
    torch = pytest.importorskip("torch")
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 2e-6)
    default, threads = torch.get_default_dtype(), torch.get_num_threads()
    # PyTorch keeps NAdam's mu_product in the default dtype (float32: 1e-9 relative off in float64)
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    torch.set_num_threads(1)  # (its threads on the big shape, on a shared machine: 50 times slower)
    try:
        for seed, shape in enumerate(SHAPES + [BIG] * (cls is md.SGD)):
            for zero_grad in (False, True):
                w0, grads = start(shape, dtype, seed), gradients(shape, dtype, seed)
                p, ours = run(cls, kw, w0, grads, maximize=True, zero_grad=zero_grad)
                t = torch.tensor(w0.copy(), requires_grad=True)
                theirs = getattr(torch.optim, cls.__name__)([t], maximize=True, **kw)
                for g in grads:
                    t.grad = torch.tensor(g.copy())
                    theirs.step()
                where = f"{shape} zero_grad={zero_grad}"
                assert p.data.dtype == dtype
                if cls is md.Rprop:
                    np.testing.assert_array_equal(p.data, t.detach().numpy(), err_msg=where)
                np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=where)
                state = theirs.state[t]
                arrays = {k: v for k, v in ours.state[0].items() if isinstance(v, np.ndarray)}
                assert set(arrays) <= set(state), (set(arrays), set(state))
                for key, value in arrays.items():
                    assert value.dtype == dtype
                    np.testing.assert_allclose(value, state[key].numpy(), rtol=rtol * 10, atol=atol,
                                               err_msg=f"{key} {where}")
                if "step" in ours.state[0]:
                    assert ours.state[0]["step"] == int(state["step"]) == STEPS
    finally:
        torch.set_default_dtype(default)
        torch.set_num_threads(threads)


def test_pytorch_takes_maximize_by_keyword_as_minidl():
    torch = pytest.importorskip("torch")
    for cls in OPTIMIZERS:
        ours = inspect.signature(cls).parameters["maximize"]
        theirs = inspect.signature(getattr(torch.optim, cls.__name__)).parameters["maximize"]
        assert ours.default is theirs.default is False
        assert ours.kind is inspect.Parameter.KEYWORD_ONLY, cls.__name__
        # (PyTorch's RMSprop also takes it by position, after capturable and foreach: minidl has neither)
        assert theirs.kind is inspect.Parameter.KEYWORD_ONLY or cls is md.RMSprop, cls.__name__


# ------------------------------------------------------------------------------ the hyper-parameter
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_maximize_is_a_keyword_only_bool_hyper_parameter(cls):
    p = [md.Parameter(np.zeros(2))]
    lr = {"lr": 0.1} if cls is md.SGD else {}
    assert cls(p, **lr).hyper["maximize"] is False
    assert [key for key in cls(p, **lr).hyper if key != "decay_bias"][-1] == "maximize"  # (then decay_bias)
    opt = cls(p, **lr, maximize=np.bool_(True))
    assert opt.hyper["maximize"] is True and "maximize=True" in repr(opt)
    for bad in ("yes", 1, 0, None, 1.0, np.array(True)):
        with pytest.raises(TypeError, match=f"{cls.__name__}: maximize must be a bool"):
            cls(p, **lr, maximize=bad)
    # keyword-only: where PyTorch also takes it by position (RMSprop) it comes after arguments minidl lacks
    assert inspect.signature(cls).parameters["maximize"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=IDS)
def test_state_dict_keeps_maximize_and_resumes_bit_for_bit(cls, kw):
    shape = (4, 3)
    w0, grads = start(shape, np.float64, 5), gradients(shape, np.float64, 5, steps=7)
    p = md.Parameter(w0.copy())
    opt = cls([p], maximize=True, **kw)
    for g in grads[:3]:
        p.grad = g.copy()
        opt.step()
    saved, saved_w = opt.state_dict(), p.data.copy()
    assert saved["hyper"]["maximize"] is True
    for g in grads[3:]:
        p.grad = g.copy()
        opt.step()
    fresh = md.Parameter(saved_w)
    opt2 = cls([fresh], lr=0.5)  # maximize=False: the state says True
    opt2.load_state_dict(saved)
    assert opt2.hyper == opt.hyper and opt2.hyper["maximize"] is True
    for g in grads[3:]:
        fresh.grad = g.copy()
        opt2.step()
    np.testing.assert_array_equal(fresh.data, p.data)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_a_state_saved_before_maximize_loads_as_not_maximizing(cls):
    """A state_dict from before the option (its hyper-parameters lack the key) meant descent: it loads
    with ``maximize=False``, as PyTorch's param groups default it; the given dict is not changed."""
    lr = {"lr": 0.1} if cls is md.SGD else {}
    p = md.Parameter(np.ones(3))
    p.grad = np.array([1.0, -2.0, 0.5])
    old = cls([p], **lr)
    old.step()
    state = old.state_dict()
    del state["hyper"]["maximize"]
    given = copy.deepcopy(state)
    opt = cls([md.Parameter(np.ones(3))], **lr, maximize=True)
    opt.load_state_dict(state)
    assert opt.hyper == old.hyper and opt.hyper["maximize"] is False
    assert list(opt.hyper) == list(old.hyper)  # (maximize last, as made)
    assert states_equal(state, given)
    # other keys missing are still refused
    del state["hyper"]["lr"]
    with pytest.raises(StateDictError, match="hyper-parameters: expected keys"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_load_state_dict_refuses_a_maximize_that_is_not_a_bool(cls):
    lr = {"lr": 0.1} if cls is md.SGD else {}
    p = md.Parameter(np.ones(3))
    opt = cls([p], **lr, maximize=True)
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    before = copy.deepcopy(state)
    for bad in (1, "False", None, 0.0):
        with pytest.raises(StateDictError, match=r"hyper-parameter 'maximize': expected a bool, got"):
            opt.load_state_dict(dict(state, hyper=dict(state["hyper"], maximize=bad)))
        assert states_equal(opt.state_dict(), before)
    opt.load_state_dict(dict(state, hyper=dict(state["hyper"], maximize=np.bool_(False))))
    assert opt.hyper["maximize"] is False


def test_a_custom_optimizer_without_maximize_loads_its_old_states_unchanged():
    class Plain(md.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def update(self, p, state):
            p.data -= self.lr * p.grad

    opt = Plain([md.Parameter(np.ones(2))])
    opt.load_state_dict({"type": "Plain", "hyper": {"lr": 0.2}, "state": {"0": {}}})
    assert opt.hyper == {"lr": 0.2}
    with pytest.raises(StateDictError, match="expected keys"):
        opt.load_state_dict({"type": "Plain", "hyper": {"lr": 0.2, "maximize": False}, "state": {"0": {}}})


# ------------------------------------------------------------------------------ fit
class Negated(md.Loss):
    """``-inner``: an objective to maximise (here minus the mean squared error)."""

    def __init__(self, inner: md.Loss) -> None:
        self.inner = inner

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        return -self.inner.forward(y_pred, y_true)

    def backward(self) -> np.ndarray:
        return -self.inner.backward()


def _model() -> md.Sequential:
    return md.Sequential(md.Dense(3, 6, rng=1), md.Tanh(), md.Dense(6, 1, rng=2))


FIT_CASES = [(cls, kw) for cls, kw in CASES if kw.get("weight_decay")] + [(md.SGD, {"lr": 0.1}),
                                                                         (md.Rprop, {"lr": 0.05})]


@pytest.mark.parametrize(("cls", "kw"), FIT_CASES, ids=[IDS[CASES.index(case)] for case in FIT_CASES])
def test_fit_climbs_an_objective_as_it_descends_its_negative(cls, kw):
    """``fit`` on ``-MSE`` with ``maximize=True`` moves the parameters exactly as on MSE without it
    (the gradients are negated exactly through the backward), and the objective climbs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.sin(x.sum(axis=1, keepdims=True))
    runs = []
    for loss, maximize in ((md.MSELoss(), False), (Negated(md.MSELoss()), True)):
        model = _model()
        opt = cls(model.parameters(), maximize=maximize, **kw)
        history = model.fit(x, y, loss=loss, optimizer=opt, epochs=4, batch_size=8, verbose=0, rng=0)
        runs.append((model, history))
    (down, down_history), (up, up_history) = runs
    for a, b in zip(down.parameters(), up.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    assert up_history["loss"] == [-v for v in down_history["loss"]]
    assert up_history["loss"][-1] > up_history["loss"][0]  # the objective (-MSE) climbed
