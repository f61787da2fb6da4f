"""CyclicLR, LambdaLR, ConstantLR and PolynomialLR: their formulas step by step, what their constructors
set at once, refusals that change nothing, resuming from a state, fit per batch, and PyTorch's values."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError


def sgd(lr: float = 0.5, momentum: float = 0.9) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr, momentum=momentum)


def run(schedule: md.LRScheduler, steps: int, key: str | None = "momentum") -> tuple[list[float], list[Any]]:
    """The optimizer's lr (and momentum) at construction and after each step."""
    opt = schedule.optimizer
    lrs, momenta = [opt.lr], [opt.hyper.get(key) if key else None]
    for _ in range(steps):
        schedule.step()
        lrs.append(opt.lr)
        momenta.append(opt.hyper.get(key) if key else None)
    return lrs, momenta


def cyclic_by_hand(e: int, base: float, top: float, up: int, down: int, mode: str, gamma: float = 1.0) -> float:
    """The triangle written out by where ``e`` falls: rising for ``up`` steps, falling for ``down``."""
    period = up + down
    cycle, into = divmod(e, period)
    height = into / up if into <= up else (period - into) / down
    scale = {"triangular": 1.0, "triangular2": 0.5**cycle, "exp_range": gamma**e}[mode]
    return base + (top - base) * height * scale


@pytest.mark.parametrize("up, down, mode", [(4, None, "triangular"), (3, 5, "triangular"), (3, 5, "triangular2"),
                                            (2, 3, "exp_range"), (1, 1, "triangular2")])
def test_cyclic_lr_is_a_triangle_and_the_momentum_its_mirror(up: int, down: int | None, mode: str) -> None:
    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=up, step_size_down=down, mode=mode, gamma=0.9)
    lrs, momenta = run(schedule, 40)
    d = up if down is None else down
    want = [cyclic_by_hand(e, 0.01, 0.1, up, d, mode, 0.9) for e in range(41)]
    np.testing.assert_allclose(lrs, want, rtol=1e-13, atol=1e-16)
    # the momentum: max_momentum where the lr is base_lr, base_momentum where it would be max_lr
    share = (np.array(want) - 0.01) / 0.09
    np.testing.assert_allclose(momenta, 0.9 - 0.1 * share, rtol=1e-13)
    assert lrs[0] == 0.01 and momenta[0] == 0.9  # set by the constructor
    assert lrs[up] == pytest.approx(0.1 if mode == "triangular" or mode == "triangular2" else 0.01 + 0.09 * 0.9**up)


def test_cyclic_lr_cycles_adams_beta1_and_refuses_an_optimizer_without_momentum() -> None:
    adam = md.Adam([md.Parameter(np.zeros(2))], lr=0.5)
    _, betas = run(md.CyclicLR(adam, 0.001, 0.01, step_size_up=2, base_momentum=0.85, max_momentum=0.95), 4, "beta1")
    np.testing.assert_allclose(betas, [0.95, 0.9, 0.85, 0.9, 0.95], rtol=1e-14)
    adagrad = md.Adagrad([md.Parameter(np.zeros(2))], lr=0.5)
    with pytest.raises(ValueError, match="CyclicLR: cycle_momentum=True needs an optimizer with a momentum or betas"):
        md.CyclicLR(adagrad, 0.001, 0.01)
    assert adagrad.lr == 0.5  # refused before the lr was set
    lrs, _ = run(md.CyclicLR(adagrad, 0.001, 0.01, step_size_up=2, cycle_momentum=False), 4, None)
    np.testing.assert_allclose(lrs, [0.001, 0.0055, 0.01, 0.0055, 0.001], rtol=1e-14)


@pytest.mark.parametrize("kwargs, match", [
    ({"step_size_up": 0}, "CyclicLR: step_size_up must be a positive int, got 0"),
    ({"step_size_down": 2.5}, "CyclicLR: step_size_down must be a positive int, got 2.5"),
    ({"mode": "sawtooth"}, "CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range', got 'sawtooth'"),
    ({"gamma": 0.0}, "CyclicLR: gamma must be a finite number > 0, got 0.0"),
    ({"max_lr": -1.0}, "CyclicLR: max_lr must be a finite number >= 0, got -1.0"),
    ({"base_lr": math.nan}, "CyclicLR: base_lr must be a finite number >= 0, got nan"),
    ({"max_momentum": 1.0}, r"CyclicLR: max_momentum must be a number in \[0, 1\), got 1.0"),
    ({"cycle_momentum": "yes"}, "CyclicLR: cycle_momentum must be a bool, got 'yes'"),
])
def test_cyclic_lr_bad_arguments_leave_the_optimizer_alone(kwargs: dict[str, Any], match: str) -> None:
    opt = sgd()
    settings = {"base_lr": 0.01, "max_lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        md.CyclicLR(opt, **settings)
    assert opt.lr == 0.5 and opt.hyper["momentum"] == 0.9


def test_cyclic_lr_exp_range_that_overflows_is_refused_and_the_count_stays() -> None:
    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=1e300, cycle_momentum=False)
    schedule.step()
    lr = schedule.optimizer.lr
    with pytest.raises(ValueError, match=r"CyclicLR: gamma \*\* 2 = 1e\+300 \*\* 2 overflows"):
        schedule.step()
    assert schedule.last_epoch == 1 and schedule.optimizer.lr == lr


def test_lambda_lr_is_lr0_times_the_function_and_sets_epoch_zero_at_once() -> None:
    def warmup(e: int) -> float:
        return min(1.0, (e + 1) / 4)

    opt = sgd(lr=0.2)
    schedule = md.LambdaLR(opt, warmup)
    assert opt.lr == pytest.approx(0.05)
    lrs, _ = run(schedule, 6)
    np.testing.assert_allclose(lrs, [0.2 * warmup(e) for e in range(7)], rtol=1e-15)
    assert repr(schedule) == "LambdaLR(lr_lambda=warmup) at epoch 6"


@pytest.mark.parametrize("bad, error, match", [
    (math.nan, ValueError, r"lr_lambda\(2\) returned nan; expected a finite number >= 0"),
    (-0.5, ValueError, r"lr_lambda\(2\) returned -0.5"),
    ("1", TypeError, r"lr_lambda\(2\) returned '1'; expected a number"),
    (None, TypeError, r"lr_lambda\(2\) returned None"),
    (np.array([0.5, 0.5]), TypeError, r"lr_lambda\(2\) returned array"),
    (1e308, ValueError, r"the lr 20.0 \* lr_lambda\(2\) = 20.0 \* 1e\+308 overflows")])
def test_lambda_lr_refuses_a_bad_factor_and_changes_nothing(bad: Any, error: type, match: str) -> None:
    opt = sgd(lr=20.0)
    schedule = md.LambdaLR(opt, lambda e: 1.0 if e < 2 else bad)
    schedule.step()
    with pytest.raises(error, match="LambdaLR: " + match):
        schedule.step()
    assert schedule.last_epoch == 1 and opt.lr == 20.0
    with pytest.raises(TypeError, match=r"LambdaLR: lr_lambda must be a function of the epoch count, got 0.5"):
        md.LambdaLR(opt, 0.5)  # type: ignore[arg-type]


def test_constant_lr_then_lr0() -> None:
    opt = sgd(lr=0.2)
    lrs, _ = run(md.ConstantLR(opt, factor=0.25, total_iters=3), 5)
    np.testing.assert_allclose(lrs, [0.05, 0.05, 0.05, 0.2, 0.2, 0.2], rtol=1e-15)
    for factor in (-0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match=r"ConstantLR: factor must be a number in \[0, 1\]"):
            md.ConstantLR(sgd(), factor=factor)  # type: ignore[arg-type]
    assert run(md.ConstantLR(sgd(lr=0.2), total_iters=0), 2)[0] == [0.2, 0.2, 0.2]


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0, 2.5])
def test_polynomial_lr_falls_to_zero_and_stays(power: float) -> None:
    lrs, _ = run(md.PolynomialLR(sgd(lr=0.2), total_iters=4, power=power), 6)
    want = [0.2 * (1 - min(e, 4) / 4) ** power for e in range(7)]
    np.testing.assert_allclose(lrs, want, rtol=1e-15)
    assert lrs[-1] == (0.2 if power == 0 else 0.0)
    with pytest.raises(ValueError, match=r"PolynomialLR: power must be a finite number >= 0, got -1.0"):
        md.PolynomialLR(sgd(), power=-1.0)
    with pytest.raises(ValueError, match="PolynomialLR: total_iters must be a positive int, got 0"):
        md.PolynomialLR(sgd(), total_iters=0)


MAKERS: dict[str, Callable[[md.Optimizer], md.LRScheduler]] = {
    "cyclic": lambda o: md.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=2, mode="triangular2"),
    "lambda": lambda o: md.LambdaLR(o, lambda e: 0.9**e),
    "constant": lambda o: md.ConstantLR(o, 0.5, 4),
    "polynomial": lambda o: md.PolynomialLR(o, 8, 2.0),
}


@pytest.mark.parametrize("name", MAKERS)
def test_a_schedule_resumes_from_its_state(name: str) -> None:
    """Five steps, saved; a fresh optimizer and schedule loaded from it continue as the first does."""
    make = MAKERS[name]
    first = make(sgd())
    run(first, 5)
    state = first.state_dict()
    opt_state = first.optimizer.state_dict()
    straight = run(first, 6)
    other = sgd(lr=0.7, momentum=0.3)
    resumed = make(other)
    other.load_state_dict(opt_state)
    resumed.load_state_dict(state)
    assert (other.lr, other.hyper["momentum"]) == (straight[0][0], straight[1][0])
    assert run(resumed, 6) == straight


def test_a_cyclic_state_with_bad_settings_is_refused_and_changes_nothing() -> None:
    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3)
    run(schedule, 2)
    good = schedule.state_dict()
    for key, bad, match in (("mode", "square", "mode must be"), ("step_size_up", 0, "step_size_up must be"),
                            ("max_momentum", 2.0, r"max_momentum must be a number in \[0, 1\)")):
        with pytest.raises(StateDictError, match=match):
            schedule.load_state_dict({**good, key: bad})
        assert schedule.state_dict() == good
    adagrad = md.Adagrad([md.Parameter(np.zeros(2))], lr=0.5)
    plain = md.CyclicLR(adagrad, 0.01, 0.1, cycle_momentum=False)
    with pytest.raises(StateDictError, match="cycle_momentum=True needs an optimizer with a momentum"):
        plain.load_state_dict({**plain.state_dict(), "cycle_momentum": True})
    assert plain.cycle_momentum is False and adagrad.lr == 0.01


def test_fit_steps_a_cyclic_schedule_every_batch() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    model = md.Sequential(md.Dense(3, 1, rng=1))
    opt = md.SGD(model.parameters(), lr=0.1, momentum=0.5)
    schedule = md.CyclicLR(opt, 0.001, 0.05, step_size_up=3)
    model.fit(x, y, loss=md.MSELoss(), optimizer=opt, scheduler=schedule, scheduler_interval="batch", epochs=2,
              batch_size=8, verbose=0, rng=0)
    assert schedule.last_epoch == 10
    assert opt.lr == pytest.approx(cyclic_by_hand(10, 0.001, 0.05, 3, 3, "triangular"), rel=1e-14)


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    cases = [
        (lambda o: md.CyclicLR(o, 0.01, 0.1, step_size_up=4), lambda o: sched.CyclicLR(o, 0.01, 0.1, step_size_up=4)),
        (lambda o: md.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=5, mode="triangular2"),
         lambda o: sched.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=5, mode="triangular2")),
        (lambda o: md.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9),
         lambda o: sched.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9)),
        (lambda o: md.LambdaLR(o, lambda e: 0.9**e + 0.1 * (e % 3)),
         lambda o: sched.LambdaLR(o, lambda e: 0.9**e + 0.1 * (e % 3))),
        (lambda o: md.ConstantLR(o, 0.25, 4), lambda o: sched.ConstantLR(o, 0.25, 4)),
        (lambda o: md.PolynomialLR(o, 7, 2.5), lambda o: sched.PolynomialLR(o, 7, 2.5)),
    ]
    for ours_make, theirs_make in cases:
        ours = run(ours_make(sgd()), 30)
        p = torch.zeros(2, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.5, momentum=0.9)
        schedule = theirs_make(opt)
        lrs, momenta = [opt.param_groups[0]["lr"]], [opt.param_groups[0]["momentum"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (PyTorch's warning that no optimizer step came first)
            for _ in range(30):
                schedule.step()
                lrs.append(opt.param_groups[0]["lr"])
                momenta.append(opt.param_groups[0]["momentum"])
        # (PyTorch's PolynomialLR steps by a chained ratio: round-off apart from the closed form)
        np.testing.assert_allclose(ours[0], lrs, rtol=1e-14, atol=1e-17)
        np.testing.assert_allclose(ours[1], momenta, rtol=1e-14)


# --- what an outside review found ---------------------------------------------------------------


def test_a_momentum_outside_its_range_is_refused_before_anything_changes() -> None:
    """exp_range with gamma > 1 took SGD's momentum to -0.62 (and Adam's beta1 to 1.26), silently; the
    checkpoint then no longer loaded."""
    opt = sgd(lr=0.1, momentum=0.5)
    schedule = md.CyclicLR(opt, 0.01, 0.02, step_size_up=2, mode="exp_range", gamma=1.5, base_momentum=0.0)
    schedule.step()  # momentum 0.9 - 0.9 * 0.5 * 1.5 = 0.225; the next would be 0.9 - 0.9 * 1 * 2.25
    before = (opt.lr, opt.hyper["momentum"], schedule.last_epoch)
    with pytest.raises(ValueError, match=r"CyclicLR: the momentum at step 2 would be -1.125, outside \[0, 1\); "
                                         "nothing was changed"):
        schedule.step()
    assert (opt.lr, opt.hyper["momentum"], schedule.last_epoch) == before
    nesterov = md.SGD([md.Parameter(np.zeros(2))], lr=0.1, momentum=0.5, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        md.CyclicLR(nesterov, 0.01, 0.02, base_momentum=0.0, max_momentum=0.9)


def test_sequential_lr_refuses_cyclic_lr_and_starts_from_the_lr_before_a_raising_lambda() -> None:
    """CyclicLR in a sequence lost its base_lr (the sequence's lr0 replaced it) and its momentum; a
    LambdaLR whose lr_lambda(0) > 1 made the sequence start from the raised lr (0.4, PyTorch 0.2)."""
    o = sgd(lr=0.1, momentum=0.5)
    with pytest.raises(TypeError, match="nor OneCycleLR or CyclicLR, which set the momentum too"):
        md.SequentialLR(o, [md.LinearLR(o, 0.1, 1.0, 4), md.CyclicLR(o, 0.01, 0.2, 2)], [4])
    for first_lambda in (True, False):
        o = sgd(lr=0.1)
        if first_lambda:
            made = [md.LambdaLR(o, lambda e: 2 / (1 + e)), md.CosineAnnealingLR(o, 7)]
        else:
            cosine = md.CosineAnnealingLR(o, 7)
            made = [md.LambdaLR(o, lambda e: 2 / (1 + e)), cosine]
        seq = md.SequentialLR(o, made, [3])
        assert seq.base_lr == 0.1 and o.lr == pytest.approx(0.2)
        lrs = [o.lr] + [seq.step() for _ in range(5)]
        np.testing.assert_allclose(lrs, [0.2, 0.1, 0.2 / 3, 0.1, 0.1 * (1 + math.cos(math.pi / 7)) / 2,
                                         0.1 * (1 + math.cos(2 * math.pi / 7)) / 2], rtol=1e-14)


def test_a_lambda_state_whose_lr_cannot_be_given_is_refused_and_changes_nothing() -> None:
    """The base state was applied before the function failed, and the hand-set-lr check switched off."""
    o = sgd(lr=0.1)
    schedule = md.LambdaLR(o, lambda e: 1.0 if e < 5 else (10.0 if e < 7 else [][e]))
    schedule.step()
    before = (schedule.state_dict(), o.lr)
    for state in ({"type": "LambdaLR", "base_lr": 0.3, "last_epoch": 7},  # the function raises IndexError
                  {"type": "LambdaLR", "base_lr": 1e308, "last_epoch": 5}):  # 1e308 * 10 overflows
        with pytest.raises(StateDictError, match=r"LambdaLR.load_state_dict refused the state \(nothing was "
                                                 r"changed\): the lr at the loaded epoch"):
            schedule.load_state_dict(state)
        assert (schedule.state_dict(), o.lr) == before
    o.lr = 0.5  # the hand-set-lr check is still on
    with pytest.raises(RuntimeError, match=r"not the 0.1 this LambdaLR set"):
        schedule.step()


def test_sequential_lr_starts_from_the_lr_its_first_made_schedule_found() -> None:
    """A raising LambdaLR made first and a lowering LinearLR after it: each one's lr0 was the other's
    epoch-0 lr, and the sequence took the raised 0.4 (every lr twice PyTorch's)."""
    o = sgd(lr=0.2)
    lam = md.LambdaLR(o, lambda e: 2.0)
    assert o.lr == 0.4
    lin = md.LinearLR(o, 0.5, 1.0, 3)
    seq = md.SequentialLR(o, [lin, lam], [3])
    lrs = [o.lr] + [seq.step() for _ in range(4)]
    assert seq.base_lr == 0.2
    np.testing.assert_allclose(lrs, [0.1, 0.2 / 1.5, 0.2 / 1.2, 0.4, 0.4], rtol=1e-14)


def test_what_a_users_review_found() -> None:
    """lr_lambda returning a 0-d array (np.where) was refused as not 'a finite number >= 0' (PyTorch takes
    it); CyclicLR's repr left out gamma and the momenta; optimizers printed '1 parameters'."""
    o = sgd(lr=0.1)
    schedule = md.LambdaLR(o, lambda e: np.where(e < 3, (e + 1) / 3, 1.0))
    assert o.lr == pytest.approx(0.1 / 3)
    assert [schedule.step() for _ in range(3)] == pytest.approx([0.2 / 3, 0.1, 0.1])
    cyclic = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9)
    assert repr(cyclic) == ("CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=3, mode='exp_range', "
                            "gamma=0.9, base_momentum=0.8, max_momentum=0.9) at epoch 0")
    assert "cycle_momentum=False" in repr(md.CyclicLR(sgd(), 0.01, 0.1, cycle_momentum=False))
    assert repr(sgd()).startswith("SGD(1 parameter, lr=0.5")
    assert repr(md.Adam([md.Parameter(np.zeros(2)), md.Parameter(np.zeros(3))])).startswith("Adam(2 parameters,")


def test_a_second_phase_sequence_starts_from_the_lr_set_for_it_once_initial_lr_is_cleared() -> None:
    opt = md.Adam([md.Parameter(np.zeros(2))], lr=1e-3)
    first = md.CosineAnnealingLR(opt, T_max=10)
    for _ in range(10):
        first.step()
    with pytest.raises(ValueError):
        md.ConstantLR(opt, factor=2.0)  # refused: changes nothing a later sequence reads
    opt.lr = 1e-4  # phase 2, keeping Adam's moments
    opt.initial_lr = None  # (as PyTorch, a sequence would start from the first phase's lr otherwise)
    warmup = md.LinearLR(opt, 0.5, total_iters=2)
    cosine = md.CosineAnnealingLR(opt, T_max=5)
    seq = md.SequentialLR(opt, [warmup, cosine], milestones=[2])
    assert seq.base_lr == 1e-4 and opt.lr == pytest.approx(5e-5)
    assert [seq.step() for _ in range(3)] == pytest.approx([7.5e-5, 1e-4, 1e-4 * (1 + math.cos(math.pi / 5)) / 2])


def test_the_same_schedules_made_again_and_states_loaded_in_another_order_start_from_the_same_lr0() -> None:
    """Numbering the schedules by the order they were made (tried between PyTorch's initial_lr and this)
    shrank lr0 tenfold each time a warm-up and cosine were made again on one optimizer, and gave 0.02 for
    states loaded into schedules made in another order (PyTorch: 0.1 and 0.2)."""
    o = sgd(lr=0.1)
    for _ in range(3):  # a notebook cell run three times
        seq = md.SequentialLR(o, [md.LinearLR(o, 0.1, 1.0, 5), md.CosineAnnealingLR(o, 45)], [5])
        assert seq.base_lr == 0.1 and o.lr == pytest.approx(0.01)
    o = sgd(lr=0.2)
    w, c = md.LinearLR(o, 0.1, 1.0, 3), md.CosineAnnealingLR(o, 6)
    saved = w.state_dict(), c.state_dict()
    o2 = sgd(lr=0.2)
    c2 = md.CosineAnnealingLR(o2, 6)
    w2 = md.LinearLR(o2, 0.1, 1.0, 3)
    w2.load_state_dict(saved[0])
    c2.load_state_dict(saved[1])
    seq = md.SequentialLR(o2, [w2, c2], [3])
    lrs = [o2.lr] + [seq.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [0.02, 0.08, 0.14, 0.2, 0.2 * (1 + math.cos(math.pi / 6)) / 2], rtol=1e-14)


def test_a_lambda_in_a_sequence_whose_loaded_lr_is_not_a_number_is_a_state_error() -> None:
    o = sgd(lr=0.1)
    seq = md.SequentialLR(o, [md.ConstantLR(o, 0.5, 2), md.LambdaLR(o, lambda e: 1.0 if e < 3 else None)], [2])
    state = seq.state_dict()
    state["last_epoch"] = 6
    before = seq.state_dict(), o.lr
    with pytest.raises(StateDictError, match=r"SequentialLR.load_state_dict refused the state .*lr_lambda\(4\) "
                                             r"returned None"):
        seq.load_state_dict(state)
    assert (seq.state_dict(), o.lr) == before


def test_one_cycle_repr_shows_its_momentum_and_factors() -> None:
    assert repr(md.OneCycleLR(sgd(), 1.0, 10)) == (
        "OneCycleLR(max_lr=1.0, total_steps=10, pct_start=0.3, anneal_strategy='cos', three_phase=False, "
        "div_factor=25.0, final_div_factor=10000.0, base_momentum=0.85, max_momentum=0.95) at epoch 0")


def _warmup_then_cosine(o: md.Optimizer) -> md.SequentialLR:
    return md.SequentialLR(o, [md.LinearLR(o, 0.5, 1.0, 2), md.CosineAnnealingLR(o, 4)], [2])


def test_initial_lr_is_recorded_as_pytorchs() -> None:
    """What recorded the optimizer's initial_lr differed from PyTorch: ReduceLROnPlateau did (PyTorch's does
    not: a sequence after it went back 100x); OneCycleLR and CyclicLR recorded the lr they found (PyTorch:
    max_lr / div_factor and base_lr); a refused constructor recorded it; the optimizer's state did not
    hold it; with initial_lr cleared the sequence fell back to the already lowered lr."""
    o = sgd(lr=0.2)
    plateau = md.ReduceLROnPlateau(o, patience=0, factor=0.1)
    for value in (1.0, 1.0, 1.0):
        plateau.step(value)
    assert o.initial_lr is None and o.lr == pytest.approx(0.002)
    _warmup_then_cosine(o)
    assert o.lr == pytest.approx(0.001) and o.initial_lr == pytest.approx(0.002)
    o = sgd(lr=0.2)
    md.OneCycleLR(o, 1.0, 10)
    assert o.initial_lr == pytest.approx(0.04)
    o = sgd(lr=0.2)
    md.CyclicLR(o, 0.01, 0.1)
    assert o.initial_lr == 0.01
    o = sgd(lr=0.2)
    with pytest.raises(ValueError):
        md.LinearLR(o, start_factor=0.0)
    assert o.initial_lr is None
    o.lr = 0.01
    _warmup_then_cosine(o)
    assert o.lr == pytest.approx(0.005)
    o = sgd(lr=0.1)
    w, c = md.LinearLR(o, 0.5, 1.0, 2), md.CosineAnnealingLR(o, 4)
    o.initial_lr = None  # cleared after the schedules were made: the largest lr they found, 0.1
    seq = md.SequentialLR(o, [w, c], [2])
    assert seq.base_lr == 0.1 and o.initial_lr == 0.1
    with pytest.raises(TypeError, match="SGD: initial_lr must be a number"):
        o.initial_lr = "0.1"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="SGD: initial_lr must be None or a finite number >= 0"):
        o.initial_lr = -1.0


def test_initial_lr_is_saved_with_the_optimizer() -> None:
    o = sgd(lr=0.2)
    seq = _warmup_then_cosine(o)
    for _ in range(3):
        seq.step()
    state = o.state_dict()
    assert state["initial_lr"] == 0.2
    resumed = sgd(lr=0.7)
    resumed.load_state_dict(state)
    assert resumed.initial_lr == 0.2
    _warmup_then_cosine(resumed)  # a next phase starts where the same process would
    assert resumed.lr == pytest.approx(0.1)
    with pytest.raises(StateDictError, match="'initial_lr': expected a finite number >= 0"):
        resumed.load_state_dict({**state, "initial_lr": math.nan})
    assert "initial_lr" not in sgd().state_dict()


def test_a_function_failing_at_a_loaded_epoch_inside_a_sequence_is_a_state_error() -> None:
    o = sgd(lr=0.1)
    table = [1.0, 0.5, 0.25]
    seq = md.SequentialLR(o, [md.ConstantLR(o, 0.5, 2), md.LambdaLR(o, lambda e: table[e])], [2])
    state = seq.state_dict()
    state["last_epoch"] = 7
    with pytest.raises(StateDictError, match="IndexError: list index out of range"):
        seq.load_state_dict(state)


def test_a_refused_constructor_leaves_the_optimizer_as_it_was_however_the_optimizer_is_passed() -> None:
    """A subclass refusing after a built-in constructor had lowered the lr put initial_lr back but not the
    lr (a retry started 10x low); the optimizer passed by keyword or second was not found at all."""
    class MyWarm(md.LinearLR):
        def __init__(self, optimizer: md.Optimizer, start: float, extra: float) -> None:
            super().__init__(optimizer, start, 1.0, 4)
            if extra < 0:
                raise ValueError("extra")

    class Hold(md.LRScheduler):
        def __init__(self, k: int, opt: md.Optimizer) -> None:
            super().__init__(opt)
            opt.hyper["momentum"] = 0.0
            if k < 0:
                raise ValueError("k")

        def lr_at(self, epoch: int) -> float:
            return self.base_lr

    o = sgd(lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="extra"):
        MyWarm(o, 0.1, -1)
    assert (o.lr, o.initial_lr) == (0.1, None)
    for make in (lambda: Hold(-1, o), lambda: Hold(k=-1, opt=o)):
        with pytest.raises(ValueError, match="k"):
            make()
        assert (o.lr, o.hyper["momentum"], o.initial_lr) == (0.1, 0.9, None)
    md.SequentialLR(o, [MyWarm(o, 0.1, 0), md.CosineAnnealingLR(o, 10)], [4])
    assert o.lr == pytest.approx(0.01)


def test_an_optimizer_pickled_before_initial_lr_was_a_property_keeps_it() -> None:
    import pickle

    o = sgd(lr=0.2)
    state = o.__getstate__()
    state.pop("_initial_lr", None)
    state["initial_lr"] = 0.2  # as the instance attribute the earlier code pickled
    old = md.SGD.__new__(md.SGD)
    old.__setstate__(state)
    assert old.initial_lr == 0.2
    assert pickle.loads(pickle.dumps(old)).initial_lr == 0.2
    del old.initial_lr
    assert old.initial_lr is None


def test_optimizers_given_in_a_list_or_as_a_second_argument_are_restored_too() -> None:
    class Two(md.LRScheduler):
        def __init__(self, a: md.Optimizer, b: md.Optimizer, k: int) -> None:
            super().__init__(a)
            md.LinearLR(b, 0.1, 1.0, 4)
            if k < 0:
                raise ValueError("k")

        def lr_at(self, epoch: int) -> float:
            return self.base_lr

    class InList(md.LRScheduler):
        def __init__(self, optimizers: list[md.Optimizer], k: int) -> None:
            super().__init__(optimizers[0])
            md.LinearLR(optimizers[0], 0.1, 1.0, 4)
            if k < 0:
                raise ValueError("k")

        def lr_at(self, epoch: int) -> float:
            return self.base_lr

    a, b = sgd(lr=0.1), sgd(lr=0.1)
    with pytest.raises(ValueError):
        Two(a, b, -1)
    with pytest.raises(ValueError):
        InList([b], -1)
    assert [(o.lr, o.initial_lr) for o in (a, b)] == [(0.1, None), (0.1, None)]


def test_the_documented_warmup_resumes_in_either_loading_order() -> None:
    class Warmup(md.LRScheduler):  # as docs/optimizers.md writes it
        settings = ("steps",)

        def __init__(self, optimizer: md.Optimizer, steps: int = 5) -> None:
            super().__init__(optimizer)
            self.steps = self._check_setting("steps", steps)
            self._write_lr(self.lr_at(0))

        def _check_setting(self, name: str, value: Any) -> Any:
            if isinstance(value, bool) or not (isinstance(value, numbers.Integral) and value >= 1):
                raise ValueError(f"Warmup: steps must be an int >= 1, got {value!r}")
            return int(value)

        def lr_at(self, epoch: int) -> float:
            return self.base_lr * min(1.0, (epoch + 1) / self.steps)

        def load_state_dict(self, state: Any) -> None:
            self._load_and_set_lr(state)

    o = sgd(lr=0.1)
    schedule = Warmup(o, 4)
    assert [o.lr] + [schedule.step() for _ in range(2)] == pytest.approx([0.025, 0.05, 0.075])
    for optimizer_first in (True, False):
        fresh = sgd(lr=0.1)
        if optimizer_first:
            fresh.load_state_dict(o.state_dict())
        resumed = Warmup(fresh, 2)
        if not optimizer_first:
            fresh.load_state_dict(o.state_dict())
        resumed.load_state_dict(schedule.state_dict())
        assert fresh.lr == pytest.approx(0.075) and resumed.steps == 4
        assert resumed.step() == pytest.approx(0.1)


def test_a_loaded_lr_the_optimizer_refuses_is_a_state_error_and_changes_nothing() -> None:
    """_load_and_set_lr guarded lr_at alone: an lr the optimizer refused (negative) left the state loaded,
    and SequentialLR's load left its count at the refused epoch."""
    class Down(md.LRScheduler):
        def __init__(self, optimizer: md.Optimizer) -> None:
            super().__init__(optimizer)
            self._write_lr(self.lr_at(0))

        def lr_at(self, epoch: int) -> float:
            return self.base_lr * (1 - epoch / 5)

        def load_state_dict(self, state: Any) -> None:
            self._load_and_set_lr(state)

    o = sgd(lr=0.1)
    down = Down(o)
    with pytest.raises(StateDictError, match="SGD: lr must be a finite number >= 0"):
        down.load_state_dict({"type": "Down", "base_lr": 0.2, "last_epoch": 7})
    assert (down.last_epoch, down.base_lr, down._lr_set, o.lr) == (0, 0.1, 0.1, 0.1)
    o = sgd(lr=0.1)
    seq = md.SequentialLR(o, [md.ConstantLR(o, 0.5, 1), md.PolynomialLR(o, 4)], [1])
    state = seq.state_dict()
    seq2 = md.SequentialLR(o, [md.ConstantLR(o, 0.5, 1), Down(o)], [1])
    state2 = seq2.state_dict()
    state2["last_epoch"] = 9
    before = seq2.state_dict()
    with pytest.raises(StateDictError, match="lr must be a finite number >= 0"):
        seq2.load_state_dict(state2)
    assert seq2.state_dict() == before
    assert state["type"] == "SequentialLR"


def test_optimizers_as_mapping_keys_or_in_a_set_are_restored() -> None:
    class PerOptimizer(md.LRScheduler):
        def __init__(self, factors: Any, k: int) -> None:
            opt = next(iter(factors))
            super().__init__(opt)
            self._write_lr(opt.lr * (factors[opt] if isinstance(factors, dict) else 0.5))
            if k < 0:
                raise ValueError("k")

        def lr_at(self, epoch: int) -> float:
            return self.base_lr

    for container in (dict, set):
        o = sgd(lr=0.1)
        with pytest.raises(ValueError):
            PerOptimizer({o: 0.5} if container is dict else {o}, -1)
        assert (o.lr, o.initial_lr) == (0.1, None)
