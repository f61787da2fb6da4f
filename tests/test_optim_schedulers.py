"""Learning-rate schedules: values by their formulas, state, and the optimizer they drive."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError
from minidl.optim import SGD, Adam
from minidl.schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)


def opt(lr: float = 0.1) -> SGD:
    return SGD([md.Parameter(np.zeros(2))], lr=lr)


def lrs(scheduler, epochs: int) -> list[float]:
    """The lr in force during epochs 1..epochs (step() after each)."""
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.lr)
        scheduler.step()
    return out


def test_step_lr():
    assert lrs(StepLR(opt(1.0), step_size=3, gamma=0.5), 8) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_multistep_lr():
    got = lrs(MultiStepLR(opt(1.0), milestones=[4, 2], gamma=0.1), 6)
    np.testing.assert_allclose(got, [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-15)


def test_exponential_lr():
    np.testing.assert_allclose(lrs(ExponentialLR(opt(2.0), gamma=0.9), 5), [2 * 0.9**e for e in range(5)])


def test_a_gamma_above_one_raises_the_lr_as_pytorch_does():
    """gamma > 1 (an lr range test) was refused; PyTorch accepts it."""
    np.testing.assert_allclose(lrs(ExponentialLR(opt(1e-3), gamma=1.5), 6), [1e-3 * 1.5**e for e in range(6)],
                               rtol=1e-15)
    assert lrs(StepLR(opt(1.0), step_size=2, gamma=2.0), 5) == [1, 1, 2, 2, 4]
    assert lrs(MultiStepLR(opt(1.0), milestones=[1, 3], gamma=10), 4) == [1, 10, 10, 100]


def test_a_rising_lr_is_computed_where_only_the_power_of_gamma_overflows() -> None:
    """gamma**e alone overflowed (and was refused) while lr0 * gamma**e is a float, as in PyTorch."""
    o = opt(1e-5)
    sched = ExponentialLR(o, gamma=2.0)
    for _ in range(1025):
        sched.step()
    assert o.lr == 1e-5 * 2.0**1000 * 2.0**25  # exact, as PyTorch's product (through logs: 3e-15 off)
    falling = ExponentialLR(opt(1e300), gamma=0.1)  # 0.1**330 alone underflows to 0
    assert falling.lr_at(330) == pytest.approx(1e-30, rel=1e-13)


@pytest.mark.parametrize("make, who", [(lambda o: ExponentialLR(o, gamma=10.0), "ExponentialLR"),
                                       (lambda o: StepLR(o, step_size=1, gamma=1e300), "StepLR")])
def test_a_rising_lr_that_overflows_is_refused_by_name_and_the_count_stays(make, who):
    sched = make(opt(1.0))
    while True:
        try:
            sched.step()
        except ValueError as error:
            assert f"{who}: the lr 1.0 * " in str(error) and "overflows" in str(error)
            break
        assert sched.last_epoch < 400
    assert sched.optimizer.lr == sched.lr_at(sched.last_epoch) and math.isfinite(sched.optimizer.lr)
    assert sched.optimizer.lr > 1e299


def test_a_sequential_state_whose_lr_overflows_is_refused_as_a_state() -> None:
    o = opt(0.1)
    sched = SequentialLR(o, [LinearLR(o), ExponentialLR(o, gamma=2.0)], milestones=[2])
    lr = o.lr
    before = sched.state_dict()
    state = sched.state_dict()
    state["last_epoch"] = 2000
    state["schedulers"][1]["last_epoch"] = 1998
    with pytest.raises(StateDictError, match=r"SequentialLR.load_state_dict refused .*ExponentialLR: .*overflows"):
        sched.load_state_dict(state)
    assert sched.last_epoch == 0 and o.lr == lr and sched.state_dict() == before


@pytest.mark.parametrize("gamma", [0.0, -0.5, math.inf, math.nan, "2", True])
def test_gamma_must_be_a_finite_positive_number(gamma):
    with pytest.raises(ValueError, match=r"ExponentialLR: gamma must be a finite number > 0"):
        ExponentialLR(opt(), gamma=gamma)


def test_cosine_annealing_lr_formula_and_endpoints():
    lr0, eta_min, T = 0.1, 0.001, 10
    got = lrs(CosineAnnealingLR(opt(lr0), T_max=T, eta_min=eta_min), T + 1)
    want = [eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * e / T)) / 2 for e in range(T + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got[0] == lr0
    assert got[-1] == pytest.approx(eta_min, abs=1e-17)
    assert all(a > b for a, b in itertools.pairwise(got))


def test_cosine_can_anneal_to_zero():
    sched = CosineAnnealingLR(opt(0.1), T_max=2)
    sched.step()
    assert sched.step() == 0.0
    assert sched.optimizer.lr == 0.0


def test_scheduler_state_dict_resumes():
    a = StepLR(opt(1.0), step_size=2, gamma=0.5)
    for _ in range(3):
        a.step()
    b = StepLR(opt(1.0), step_size=2, gamma=0.5)
    b.load_state_dict(a.state_dict())
    assert b.last_epoch == 3
    assert b.step() == a.step() == 0.25
    with pytest.raises(StateDictError, match="StepLR"):
        CosineAnnealingLR(opt(), T_max=3).load_state_dict(a.state_dict())


def test_schedule_acts_on_adam_too():
    adam = Adam([md.Parameter(np.zeros(2))], lr=0.01)
    sched = StepLR(adam, step_size=1, gamma=0.5)
    sched.step()
    assert adam.lr == adam.hyper["lr"] == 0.005


@pytest.mark.parametrize(
    "make",
    [lambda o: StepLR(o, step_size=0), lambda o: StepLR(o, step_size=2, gamma=0.0),
     lambda o: CosineAnnealingLR(o, T_max=0), lambda o: CosineAnnealingLR(o, T_max=3, eta_min=-1.0),
     lambda o: MultiStepLR(o, milestones=[0])],
)
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make(opt())


def test_against_torch_if_installed():
    torch = pytest.importorskip("torch")
    w = torch.zeros(2, requires_grad=True)
    for ours, theirs in [
        (lambda o: StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: MultiStepLR(o, [2, 5], 0.3), lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.3)),
        (lambda o: ExponentialLR(o, 0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (lambda o: CosineAnnealingLR(o, 7, 1e-3),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 1e-3)),
    ]:
        mine = ours(opt(0.1))
        topt = torch.optim.SGD([w], lr=0.1)
        theirs_s = theirs(topt)
        for _ in range(9):
            assert mine.optimizer.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
            topt.step()
            mine.step()
            theirs_s.step()


@pytest.mark.parametrize("bad, match", [
    ({"base_lr": float("nan")}, "'base_lr': expected a finite number >= 0, got nan"),
    ({"base_lr": -0.1}, "'base_lr'"),
    ({"base_lr": "0.3"}, "'base_lr'"),
    ({"base_lr": True}, "'base_lr'"),
    ({"last_epoch": -5}, "'last_epoch': expected an int >= 0 \\(at most 2\\*\\*53\\), got -5"),
    ({"last_epoch": 2.9}, "'last_epoch'"),
    ({"last_epoch": True}, "'last_epoch'"),
])
def test_scheduler_load_state_dict_refuses_what_would_mislead_it(bad, match):
    """last_epoch = -5 made the next StepLR step set lr to 4 x base_lr; 2.9 was truncated to 2."""
    scheduler = StepLR(SGD([md.Parameter(np.ones(2))], lr=0.1), 2, 0.5)
    scheduler.step()
    good = scheduler.state_dict()
    with pytest.raises(StateDictError, match=match):
        scheduler.load_state_dict({**good, **bad})
    assert scheduler.state_dict() == good
    scheduler.load_state_dict({**good, "base_lr": np.float32(0.2), "last_epoch": np.int64(3)})  # NumPy numbers
    assert scheduler.base_lr == pytest.approx(0.2) and scheduler.last_epoch == 3


def test_a_refused_lr_does_not_advance_the_schedule():
    class Negative(StepLR):
        def lr_at(self, epoch):
            return -1.0 if epoch == 2 else super().lr_at(epoch)

    opt = SGD([md.Parameter(np.ones(2))], lr=0.1)
    scheduler = Negative(opt, 1, 0.5)
    scheduler.step()
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        scheduler.step()
    assert scheduler.last_epoch == 1 and opt.lr == pytest.approx(0.05)


@pytest.mark.parametrize("make, other, settings", [
    (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda o: StepLR(o, 1, 0.99), {"step_size": 3, "gamma": 0.5}),
    (lambda o: MultiStepLR(o, milestones=[4, 2], gamma=0.25), lambda o: MultiStepLR(o, [1]),
     {"milestones": [2, 4], "gamma": 0.25}),
    (lambda o: ExponentialLR(o, gamma=0.9), lambda o: ExponentialLR(o, 0.99), {"gamma": 0.9}),
    (lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.001), lambda o: CosineAnnealingLR(o, 2),
     {"T_max": 7, "eta_min": 0.001}),
])
def test_a_schedule_resumes_with_its_own_settings(make, other, settings):
    """As PyTorch: the state holds the settings, so a scheduler built with other ones (or defaults)
    continues the saved schedule, not its own."""
    a = make(opt(1.0))
    for _ in range(5):
        a.step()
    state = a.state_dict()
    assert {k: state[k] for k in settings} == settings
    other = other(opt(1.0))
    other.load_state_dict(state)
    assert [other.step() for _ in range(6)] == [a.step() for _ in range(6)]
    # a state saved before the settings were: this scheduler keeps its own
    old = {k: state[k] for k in ("type", "base_lr", "last_epoch")}
    kept = make(opt(1.0))
    kept.load_state_dict(old)
    assert kept.last_epoch == 5 and {k: getattr(kept, k) for k in settings} == settings


@pytest.mark.parametrize("bad, match", [
    ({"gamma": 0.0}, r"'gamma': StepLR: gamma must be a finite number > 0"),
    ({"step_size": 0}, r"'step_size': StepLR: step_size must be a positive int"),
    ({"momentum": 0.9}, r"unexpected keys \['momentum'\] \(StepLR keeps type, base_lr, last_epoch, step_size, gamma\)"),
    ({"base_lr": 10**400}, r"'base_lr': expected a finite number"),
    ({"last_epoch": 10**400}, r"'last_epoch': expected an int >= 0"),
    ({"type": np.array(["StepLR", "StepLR"])}, r"state is for array"),
])
def test_a_schedule_state_with_bad_settings_is_refused(bad, match):
    scheduler = StepLR(opt(), 2, 0.5)
    scheduler.step()
    good = scheduler.state_dict()
    with pytest.raises(StateDictError, match=match):
        scheduler.load_state_dict({**good, **bad})
    assert scheduler.state_dict() == good


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    s = StepLR(opt(), np.int64(3), np.float32(0.5))
    m = MultiStepLR(opt(), np.array([3, 5]), gamma=np.float64(0.1))
    c = CosineAnnealingLR(opt(), np.int32(4), eta_min=np.float32(0.0))
    assert (s.step_size, s.gamma, m.milestones, c.T_max) == (3, 0.5, [3, 5], 4)
    assert all(type(v) in (int, float) for v in (s.step_size, s.gamma, *m.milestones, c.T_max, c.eta_min))


@pytest.mark.parametrize("eta_min", [float("inf"), float("nan"), -0.1, "0"])
def test_cosine_eta_min_must_be_finite(eta_min):
    with pytest.raises(ValueError, match="eta_min must be a finite number >= 0"):
        CosineAnnealingLR(opt(), 5, eta_min=eta_min)


def test_a_subclass_with_its_own_state_dict_keeps_its_own_keys():
    """A custom scheduler that saves more than the base class (and loads it itself) still loads."""
    from minidl.schedulers import LRScheduler

    class Warmup(LRScheduler):
        def __init__(self, optimizer, warmup: int) -> None:
            super().__init__(optimizer)
            self.warmup = warmup

        def lr_at(self, epoch: int) -> float:
            return self.base_lr * min(1.0, (epoch + 1) / self.warmup)

        def state_dict(self):
            return {**super().state_dict(), "warmup": self.warmup}

        def load_state_dict(self, state) -> None:
            super().load_state_dict(state)
            self.warmup = state["warmup"]

    a = Warmup(opt(1.0), 5)
    a.step()
    b = Warmup(opt(1.0), 2)
    b.load_state_dict(a.state_dict())
    assert (b.warmup, b.last_epoch) == (5, 1) and b.step() == a.step() == 0.6


# ------------------------------------------------------------------------------------ ReduceLROnPlateau
NAN, INF = float("nan"), float("inf")


def plateau_lrs(scheduler: ReduceLROnPlateau, values) -> list[float]:
    """The lr after each step(value)."""
    return [scheduler.step(value) for value in values]


def reference_lrs(values, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                  cooldown=0, min_lr=0.0, eps=1e-8) -> list[float]:
    """PyTorch's rule, written out: the lr after each value."""
    best, bad, cool, out = (INF if mode == "min" else -INF), 0, 0, []
    for value in values:
        if mode == "min":
            limit = best * (1 - threshold) if threshold_mode == "rel" else best - threshold
            better = value < limit
        else:
            limit = best * (1 + threshold) if threshold_mode == "rel" else best + threshold
            better = value > limit
        best, bad = (value, 0) if better else (best, bad + 1)
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            reduced = max(lr * factor, min_lr)
            lr = reduced if lr - reduced > eps else lr
            cool, bad = cooldown, 0
        out.append(lr)
    return out


PLATEAU_CASES = {
    "min-rel": ({"factor": 0.5, "patience": 2}, [10, 9, 9, 9, 9, 8, 8, 8, 8],
                [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]),
    "min-rel-threshold": ({"factor": 0.5, "patience": 0, "threshold": 0.1}, [10, 9.5, 8.9, 8.9],
                          [1, 0.5, 0.5, 0.25]),
    "min-abs-threshold": ({"factor": 0.5, "patience": 0, "threshold": 0.4, "threshold_mode": "abs"},
                          [10, 9.5, 8.9, 8.9], [1, 1, 1, 0.5]),
    "max-rel": ({"mode": "max", "patience": 1, "threshold": 0.1}, [0.5, 0.54, 0.56, 0.57, 0.7, 0.7, 0.7],
                [1, 1, 1, 1, 1, 1, 0.1]),
    "max-abs": ({"mode": "max", "patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
                [0.5, 0.54, 0.56, 0.6, 0.6], [1, 1, 1, 1, 0.1]),
    "cooldown": ({"factor": 0.5, "patience": 0, "cooldown": 2, "threshold": 0.0}, [1.0] * 8,
                 [1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]),
    "min_lr-floor": ({"patience": 0, "min_lr": 0.03}, [1.0] * 4, [1, 0.1, 0.03, 0.03]),
    "nan-is-never-better": ({"factor": 0.5, "patience": 1}, [1.0, NAN, NAN, 0.5, NAN, NAN],
                            [1, 1, 0.5, 0.5, 0.5, 0.25]),
    "inf-values": ({"factor": 0.5, "patience": 0}, [INF, 3.0, -INF, -INF], [0.5, 0.5, 0.5, 0.25]),
}


@pytest.mark.parametrize("settings, values, want", PLATEAU_CASES.values(), ids=PLATEAU_CASES.keys())
def test_plateau_follows_the_rule(settings, values, want):
    assert plateau_lrs(ReduceLROnPlateau(opt(1.0), **settings), values) == want
    assert reference_lrs(values, 1.0, **settings) == want


def test_plateau_skips_a_reduction_smaller_than_eps():
    """1e-7 halves while the cut exceeds eps=1e-8; the cut from 1.25e-8 (6.25e-9) is skipped."""
    sched = ReduceLROnPlateau(opt(1e-7), factor=0.5, patience=0, eps=1e-8)
    assert plateau_lrs(sched, [1.0] * 6) == [1e-7, 5e-8, 2.5e-8, 1.25e-8, 1.25e-8, 1.25e-8]
    assert (sched.num_bad_epochs, sched.last_epoch) == (0, 6)  # a skipped cut still resets the count
    big_eps = ReduceLROnPlateau(opt(1e-7), factor=0.5, patience=0, eps=1e-7)
    assert plateau_lrs(big_eps, [1.0] * 3) == [1e-7] * 3


def test_plateau_counts_and_best():
    sched = ReduceLROnPlateau(opt(1.0), mode="max", patience=3, cooldown=2)
    assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == (-INF, 0, 0, 0)
    sched.step(NAN)  # a first NaN is not better than -inf either
    assert (sched.best, sched.num_bad_epochs, sched.last_epoch) == (-INF, 1, 1)
    for value in (0.5, 0.4, 0.4, 0.3, 0.2):
        sched.step(value)
    assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.optimizer.lr) == (0.5, 0, 2, 0.1)
    assert sched.in_cooldown and sched.get_last_lr() == 0.1
    sched.step(np.float32(0.25))
    sched.step(np.array(0.6))  # NumPy scalars and 0-d arrays are values too
    assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == (0.6, 0, 0, 8)


def test_plateau_reference_agrees_on_random_sequences():
    rng = np.random.default_rng(0)
    for _ in range(200):
        settings = {"mode": str(rng.choice(["min", "max"])), "factor": float(rng.choice([0.1, 0.5, 0.9])),
                    "patience": int(rng.integers(0, 4)), "threshold": float(rng.choice([0.0, 1e-4, 0.1])),
                    "threshold_mode": str(rng.choice(["rel", "abs"])), "cooldown": int(rng.integers(0, 3)),
                    "min_lr": float(rng.choice([0.0, 1e-3])), "eps": float(rng.choice([0.0, 1e-8, 1e-3]))}
        values = np.round(rng.standard_normal(25), 1).tolist()
        assert plateau_lrs(ReduceLROnPlateau(opt(0.1), **settings), values) == reference_lrs(values, 0.1, **settings)


def test_plateau_against_torch_if_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for trial in range(300):
        settings = {"mode": str(rng.choice(["min", "max"])), "factor": float(rng.choice([0.1, 0.5, 0.9])),
                    "patience": int(rng.integers(0, 4)), "threshold": float(rng.choice([0.0, 1e-4, 0.1, 1.0])),
                    "threshold_mode": str(rng.choice(["rel", "abs"])), "cooldown": int(rng.integers(0, 3)),
                    "min_lr": float(rng.choice([0.0, 1e-3, 0.05])), "eps": float(rng.choice([0.0, 1e-8, 1e-3]))}
        lr0 = float(rng.choice([0.1, 1e-8]))
        if trial % 4 == 0:  # ties, NaN and infinities
            values = rng.choice([-1.0, 0.0, 1.0, NAN, INF, -INF], size=30).tolist()
        else:
            values = np.round(rng.standard_normal(30), 1).tolist()
        mine = ReduceLROnPlateau(opt(lr0), **settings)
        topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **settings)
        for value in values:
            mine.step(value)
            theirs.step(value)
            assert mine.optimizer.lr == topt.param_groups[0]["lr"], (settings, values)
            assert (mine.best, mine.num_bad_epochs, mine.cooldown_counter, mine.last_epoch) == \
                (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter, theirs.last_epoch)


def test_plateau_state_dict_resumes_bit_for_bit():
    rng = np.random.default_rng(2)
    values = np.round(rng.standard_normal(30), 1).tolist()
    settings = {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 0.05, "threshold_mode": "abs",
                "cooldown": 1, "min_lr": 0.01, "eps": 1e-6, "monitor": "val_accuracy"}
    whole = ReduceLROnPlateau(opt(1.0), **settings)
    want = plateau_lrs(whole, values)
    first = ReduceLROnPlateau(opt(1.0), **settings)
    plateau_lrs(first, values[:13])
    state, opt_state = first.state_dict(), first.optimizer.state_dict()
    assert set(state) == {"type", "base_lr", "last_epoch", *settings, "best", "num_bad_epochs", "cooldown_counter"}
    assert {k: state[k] for k in settings} == settings and state["last_epoch"] == 13
    resumed = ReduceLROnPlateau(opt(1.0))  # other settings: the state's are restored
    resumed.optimizer.load_state_dict(opt_state)  # the lr itself lives in the optimizer's state, as in PyTorch
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    assert want[:13] + plateau_lrs(resumed, values[13:]) == want
    assert resumed.state_dict() == whole.state_dict()


@pytest.mark.parametrize("bad, match", [
    ({"best": NAN}, r"'best': expected a number \(inf allowed, not NaN\), got nan"),
    ({"best": "1.0"}, r"'best'"),
    ({"num_bad_epochs": -1}, r"'num_bad_epochs': expected an int in \[0, patience=3\], got -1"),
    ({"num_bad_epochs": 4}, r"'num_bad_epochs': expected an int in \[0, patience=3\]"),
    ({"num_bad_epochs": 4, "patience": 5}, None),  # consistent with the state's own patience: accepted
    ({"num_bad_epochs": 1.0}, r"'num_bad_epochs'"),
    # (a cooldown_counter above cooldown is accepted: cooldown lowered during a cooldown)
    ({"cooldown_counter": -1}, r"'cooldown_counter': ReduceLROnPlateau: cooldown_counter must be an int >= 0, got -1"),
    ({"mode": "median"}, r"'mode': ReduceLROnPlateau: mode must be 'min' or 'max', got 'median'"),
    ({"factor": 1.0}, r"'factor': ReduceLROnPlateau: factor must be a number in \(0, 1\)"),
    ({"monitor": 3}, r"'monitor': ReduceLROnPlateau: monitor must be the name of a history key"),
    ({"min_lr": INF}, r"'min_lr': ReduceLROnPlateau: min_lr must be a finite number >= 0"),
    ({"lr": 0.1}, r"unexpected keys \['lr'\] \(ReduceLROnPlateau keeps type, base_lr, last_epoch, mode, factor, "
                  r"patience, threshold, threshold_mode, cooldown, min_lr, eps, monitor, best, num_bad_epochs, "
                  r"cooldown_counter\)"),
])
def test_plateau_refuses_a_bad_state(bad, match):
    sched = ReduceLROnPlateau(opt(1.0), patience=3, cooldown=2)
    plateau_lrs(sched, [1.0, 2.0])
    good = sched.state_dict()
    if match is None:
        sched.load_state_dict({**good, **bad})
        assert (sched.num_bad_epochs, sched.patience) == (4, 5)
        return
    with pytest.raises(StateDictError, match=match):
        sched.load_state_dict({**good, **bad})
    assert sched.state_dict() == good


def test_plateau_state_needs_its_run_state_and_type():
    sched = ReduceLROnPlateau(opt(), patience=3)
    good = sched.state_dict()
    with pytest.raises(StateDictError, match="missing key 'best'; missing key 'cooldown_counter'"):
        sched.load_state_dict({k: v for k, v in good.items() if k not in ("best", "cooldown_counter")})
    with pytest.raises(StateDictError, match="state is for 'StepLR', not 'ReduceLROnPlateau'"):
        sched.load_state_dict(StepLR(opt(), 2).state_dict())
    with pytest.raises(StateDictError, match="state is for 'ReduceLROnPlateau', not 'StepLR'"):
        StepLR(opt(), 2).load_state_dict(good)
    assert sched.state_dict() == good


@pytest.mark.parametrize("kwargs, error, match", [
    ({"factor": 1.0}, ValueError, r"ReduceLROnPlateau: factor must be a number in \(0, 1\), got 1.0"),
    ({"factor": 0}, ValueError, "factor must be a number in"),
    ({"factor": -0.5}, ValueError, "factor must be a number in"),
    ({"factor": NAN}, ValueError, "factor must be a number in"),
    ({"factor": "0.5"}, ValueError, "factor must be a number in"),
    ({"mode": "median"}, ValueError, "ReduceLROnPlateau: mode must be 'min' or 'max', got 'median'"),
    ({"mode": None}, ValueError, "mode must be 'min' or 'max'"),
    ({"threshold_mode": "relative"}, ValueError, "threshold_mode must be 'rel' or 'abs', got 'relative'"),
    ({"patience": -1}, ValueError, "ReduceLROnPlateau: patience must be an int >= 0, got -1"),
    ({"patience": 1.5}, ValueError, "patience must be an int >= 0"),
    ({"patience": True}, ValueError, "patience must be an int >= 0"),
    ({"cooldown": -1}, ValueError, "ReduceLROnPlateau: cooldown must be an int >= 0"),
    ({"threshold": -1e-4}, ValueError, "ReduceLROnPlateau: threshold must be a finite number >= 0"),
    ({"threshold": INF}, ValueError, "threshold must be a finite number >= 0"),
    ({"min_lr": -0.1}, ValueError, "ReduceLROnPlateau: min_lr must be a finite number >= 0, got -0.1"),
    ({"min_lr": [0.0]}, ValueError, "min_lr must be a finite number >= 0"),
    ({"eps": NAN}, ValueError, "ReduceLROnPlateau: eps must be a finite number >= 0, got nan"),
    ({"monitor": ""}, TypeError, "ReduceLROnPlateau: monitor must be the name of a history key"),
    ({"monitor": None}, TypeError, "monitor must be the name of a history key"),
])
def test_plateau_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReduceLROnPlateau(opt(), **kwargs)


def test_plateau_settings_accept_numpy_scalars_and_refuse_a_non_optimizer():
    sched = ReduceLROnPlateau(opt(), factor=np.float32(0.5), patience=np.int64(2), cooldown=np.int32(1),
                              threshold=np.float64(0.01), min_lr=np.int64(0), eps=np.float32(0))
    settings = (sched.factor, sched.patience, sched.cooldown, sched.threshold, sched.min_lr, sched.eps)
    assert settings == (0.5, 2, 1, 0.01, 0.0, 0.0)
    assert all(type(v) in (int, float) for v in settings)
    with pytest.raises(TypeError, match="ReduceLROnPlateau: expected an Optimizer, got list"):
        ReduceLROnPlateau([md.Parameter(np.zeros(2))])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1.0", None, True, np.array([1.0]), 1 + 2j])
def test_plateau_step_refuses_a_non_number_and_changes_nothing(value):
    sched = ReduceLROnPlateau(opt(), patience=0)
    sched.step(1.0)
    state = sched.state_dict()
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau\.step: metrics must be a number"):
        sched.step(value)
    assert sched.state_dict() == state and sched.optimizer.lr == 0.1
    with pytest.raises(TypeError):
        sched.step()  # type: ignore[call-arg]  # unlike the closed-form schedules, the value is required
    with pytest.raises(NotImplementedError, match="no lr per epoch"):
        sched.lr_at(1)


def test_plateau_repr():
    sched = ReduceLROnPlateau(opt(), patience=2, monitor="loss")
    sched.step(1.0)
    assert repr(sched) == ("ReduceLROnPlateau(mode='min', factor=0.1, patience=2, threshold=0.0001, "
                           "threshold_mode='rel', cooldown=0, min_lr=0.0, eps=1e-08, monitor='loss') at epoch 1 "
                           "(best=1.0, 0 bad epochs, 0 cooldown epochs left)")


# -------------------------------------------------------------------------- ReduceLROnPlateau in fit
def _regression(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((80, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 * rng.standard_normal((80, 1))
    return x[:60], y[:60], x[60:], y[60:]


def _net() -> md.Sequential:
    return md.Sequential(md.Dense(3, 8, rng=0), md.Tanh(), md.Dense(8, 1, rng=1))


def test_fit_steps_plateau_with_the_monitored_value_as_a_hand_written_loop():
    x, y, xv, yv = _regression(0)
    settings = {"factor": 0.5, "patience": 0, "threshold": 0.05, "monitor": "val_loss"}
    a, b = _net(), _net()
    opt_a, opt_b = SGD(a.parameters(), lr=0.2), SGD(b.parameters(), lr=0.2)
    sched_a, sched_b = ReduceLROnPlateau(opt_a, **settings), ReduceLROnPlateau(opt_b, **settings)
    h = md.fit(a, x, y, loss=md.MSELoss(), optimizer=opt_a, epochs=8, batch_size=16, rng=3,
               validation_data=(xv, yv), scheduler=sched_a, verbose=0)
    gen, loss, lrs_b, val_losses = np.random.default_rng(3), md.MSELoss(), [], []
    for _ in range(8):
        lrs_b.append(opt_b.lr)
        order = gen.permutation(60)
        for start in range(0, 60, 16):
            idx = order[start:start + 16]
            b.zero_grad()
            loss(b(x[idx]), y[idx])
            b.backward(loss.backward())
            opt_b.step()
        val_losses.append(md.evaluate(b, xv, yv, loss=md.MSELoss())["loss"])
        sched_b.step(val_losses[-1])
    assert h["lr"] == lrs_b and h["val_loss"] == val_losses
    assert len(set(lrs_b)) > 2  # the lr was cut more than once
    assert sched_a.state_dict() == sched_b.state_dict() and opt_a.lr == opt_b.lr
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_fit_passes_the_training_loss_when_plateau_monitors_it():
    x, y, _, _ = _regression(1)
    model = _net()
    optimizer = SGD(model.parameters(), lr=0.1)
    sched = ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.5, monitor="loss")
    h = md.fit(model, x, y, loss=md.MSELoss(), optimizer=optimizer, epochs=6, rng=0, scheduler=sched, verbose=0)
    replay = ReduceLROnPlateau(opt(0.1), factor=0.5, patience=0, threshold=0.5, monitor="loss")
    assert [0.1, *plateau_lrs(replay, h["loss"])] == [*h["lr"], optimizer.lr]
    assert sched.last_epoch == 6 and len(set(h["lr"])) > 1


def test_fit_refuses_a_plateau_monitor_it_does_not_record_before_training():
    x, y, _, _ = _regression(2)
    model = _net()
    before = model.state_dict()
    optimizer = SGD(model.parameters(), lr=0.1)
    sched = ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match=r"fit: ReduceLROnPlateau monitors 'val_loss', which this fit does not "
                                         r"record \(val_ figures need validation_data or validation_split\); it "
                                         r"records \['loss'\]"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=optimizer, epochs=3, scheduler=sched, verbose=0)
    with pytest.raises(ValueError, match=r"monitors 'accuracy', which this fit does not record; it records "
                                         r"\['loss', 'mae'\]"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=optimizer, epochs=3, metrics=["mae"], verbose=0,
               scheduler=ReduceLROnPlateau(optimizer, mode="max", monitor="accuracy"))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert sched.last_epoch == 0 and optimizer.lr == 0.1



def test_plateau_mode_follows_an_accuracy_monitor_and_a_huge_best_is_refused() -> None:
    p = md.Parameter(np.ones(1))
    assert ReduceLROnPlateau(md.SGD([p], lr=1.0)).mode == "min"  # PyTorch's default for val_loss
    assert ReduceLROnPlateau(md.SGD([p], lr=1.0), monitor="val_accuracy").mode == "max"
    assert ReduceLROnPlateau(md.SGD([p], lr=1.0), "min", monitor="val_accuracy").mode == "min"
    sched = ReduceLROnPlateau(md.SGD([p], lr=1.0))
    state = sched.state_dict()
    state["best"] = 10**400  # an int beyond float range: a StateDictError, not a raw OverflowError
    with pytest.raises(md.StateDictError, match=r"'best': expected a number"):
        sched.load_state_dict(state)
    assert sched.best == math.inf


# ---------------------------------------------------------------------------------- LinearLR, SequentialLR
def test_linear_lr_is_the_formula_and_sets_the_first_epochs_lr_at_once() -> None:
    o = opt(0.2)
    s = LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4)
    assert o.lr == pytest.approx(0.05)  # epoch 1 already warms up, as PyTorch
    got = lrs(s, 7)
    want = [0.2 * (0.25 + 0.75 * min(e, 4) / 4) for e in range(7)]
    assert got == pytest.approx(want, rel=1e-15)
    decay = LinearLR(opt(1.0), start_factor=1.0, end_factor=0.0, total_iters=2)  # a linear decay to 0
    assert lrs(decay, 4) == [1.0, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("kwargs, match", [
    ({"start_factor": 0}, r"start_factor must be a number in \(0, 1\]"),
    ({"start_factor": 1.5}, r"start_factor must be a number in \(0, 1\]"),
    ({"end_factor": -0.1}, r"end_factor must be a number in \[0, 1\]"),
    ({"end_factor": "1"}, r"end_factor must be a number"),
    ({"total_iters": 0}, "total_iters must be a positive int"),
])
def test_linear_lr_refuses_bad_settings_and_leaves_the_lr(kwargs, match) -> None:
    o = opt(0.3)
    with pytest.raises(ValueError, match=match):
        LinearLR(o, **kwargs)
    assert o.lr == 0.3


def test_sequential_warmup_then_cosine_starts_every_schedule_from_the_first_lr0() -> None:
    o = opt(0.1)
    warmup = LinearLR(o, start_factor=0.1, total_iters=3)  # lowers o.lr to 0.01 at once
    cosine = CosineAnnealingLR(o, T_max=5)  # made after: its own lr0 would be 0.01
    s = SequentialLR(o, [warmup, cosine], milestones=[3])
    got = lrs(s, 9)
    want = [0.1 * (0.1 + 0.9 * e / 3) for e in range(3)] + [0.1 * (1 + math.cos(math.pi * e / 5)) / 2
                                                            for e in range(6)]
    assert got == pytest.approx(want, rel=1e-14)
    assert cosine.base_lr == warmup.base_lr == s.base_lr == 0.1
    assert "milestones=[3]" in repr(s) and "LinearLR" in repr(s)


def test_sequential_lr_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    w = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler
    theirs = sched.SequentialLR(topt, [sched.LinearLR(topt, start_factor=0.2, total_iters=4),
                                       sched.CosineAnnealingLR(topt, T_max=6, eta_min=0.01),
                                       sched.StepLR(topt, 2, 0.5)], milestones=[4, 10])
    o = opt(0.1)
    ours = SequentialLR(o, [LinearLR(o, start_factor=0.2, total_iters=4), CosineAnnealingLR(o, T_max=6, eta_min=0.01),
                            StepLR(o, 2, 0.5)], milestones=[4, 10])
    for _ in range(16):
        assert o.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        topt.step()
        theirs.step()
        ours.step()
    lin_theirs = sched.LinearLR(torch.optim.SGD([w], lr=0.3), start_factor=0.5, end_factor=0.9, total_iters=3)
    lin_ours = LinearLR(opt(0.3), start_factor=0.5, end_factor=0.9, total_iters=3)
    for _ in range(6):
        assert lin_ours.optimizer.lr == pytest.approx(lin_theirs.optimizer.param_groups[0]["lr"], rel=1e-12)
        lin_theirs.optimizer.step()
        lin_theirs.step()
        lin_ours.step()


def test_sequential_lr_resumes_bit_for_bit_and_refuses_a_bad_state_changing_nothing() -> None:
    def build(lr: float = 0.1) -> SequentialLR:
        o = opt(lr)
        return SequentialLR(o, [LinearLR(o, 0.5, total_iters=2), ExponentialLR(o, 0.9)], milestones=[2])

    a = build()
    for _ in range(3):
        a.step()
    state = a.state_dict()
    assert [c["type"] for c in state["schedulers"]] == ["LinearLR", "ExponentialLR"]
    b = build(0.7)
    b.load_state_dict(state)
    assert [b.step() for _ in range(5)] == [a.step() for _ in range(5)]
    c = build()
    good = c.state_dict()
    bad_child = {**good, "schedulers": [good["schedulers"][0], {**good["schedulers"][1], "gamma": -2.0}]}
    for bad, match in ((bad_child, r"schedule 1: .*gamma must be a finite number > 0"),
                       ({**good, "schedulers": good["schedulers"][:1]}, "expected a list of 2 schedule states, got 1"),
                       ({**good, "milestones": [2, 5]}, r"expected 1 strictly increasing milestone\(s\) for 2"),
                       ({**good, "bogus": 1}, r"unexpected keys \['bogus'\]"),
                       ({**good, "type": "StepLR"}, "state is for 'StepLR', not 'SequentialLR'"),
                       ({**good, "last_epoch": -1}, "'last_epoch'")):
        with pytest.raises(StateDictError, match=match):
            c.load_state_dict(bad)
        assert c.state_dict() == good and c.optimizer.lr == 0.05


def test_sequential_lr_refuses_what_it_cannot_chain() -> None:
    o, other = opt(), opt()
    with pytest.raises(TypeError, match="closed form"):
        SequentialLR(o, [LinearLR(o), ReduceLROnPlateau(o)], milestones=[2])
    with pytest.raises(ValueError, match="drives another optimizer"):
        SequentialLR(o, [LinearLR(o), StepLR(other, 2)], milestones=[2])
    with pytest.raises(ValueError, match=r"expected 1 strictly increasing milestone\(s\) for 2 schedules, got \[2, 3"):
        SequentialLR(o, [LinearLR(o), StepLR(o, 2)], milestones=[2, 3])
    with pytest.raises(ValueError, match=r"strictly increasing milestone\(s\) for 3 schedules, got \[5, 2\]"):
        SequentialLR(o, [LinearLR(o), StepLR(o, 2), StepLR(o, 3)], milestones=[5, 2])  # (was sorted silently)
    inner = SequentialLR(o, [StepLR(o, 2), StepLR(o, 3)], milestones=[2])
    with pytest.raises(TypeError, match="a SequentialLR, nor OneCycleLR"):
        SequentialLR(o, [LinearLR(o), inner], milestones=[2])
    step = StepLR(o, 2)
    with pytest.raises(ValueError, match="listed twice"):
        SequentialLR(o, [step, step], milestones=[2])
    with pytest.raises(ValueError, match="needs at least one schedule"):
        SequentialLR(o, [], milestones=[])


def test_fit_runs_a_warmup_then_cosine_epoch_by_epoch() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 3)), rng.integers(0, 2, 64)
    model = md.Sequential(md.Dense(3, 2, rng=0))
    o = Adam(model.parameters(), lr=0.01)
    s = SequentialLR(o, [LinearLR(o, 0.1, total_iters=2), CosineAnnealingLR(o, T_max=3)], milestones=[2])
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=o, scheduler=s, epochs=5, batch_size=16,
                        rng=0, verbose=0)
    want = [0.001, 0.0055, 0.01, 0.0075, 0.0025]
    assert history["lr"] == pytest.approx(want, rel=1e-12)


def test_sequential_lr0_is_the_lr_before_any_warmup_lowered_it_whatever_the_order_made() -> None:
    """A review: with lr0 taken from schedulers[0], a cooldown made before the warm-up it follows gave
    half of PyTorch's lrs, and a warm-up made before a cosine listed first a tenth."""
    o = opt(0.1)
    cool = LinearLR(o, 0.5, 0.0, total_iters=4)  # made first: lowers the lr to 0.05
    warm = LinearLR(o, 0.1, total_iters=3)  # made from 0.05
    s = SequentialLR(o, [warm, cool], milestones=[3])
    assert lrs(s, 5) == pytest.approx([0.01, 0.04, 0.07, 0.05, 0.0375], rel=1e-14)  # PyTorch's values
    o = opt(0.1)
    warm = LinearLR(o, 0.1, total_iters=3)
    cosine = CosineAnnealingLR(o, T_max=4)
    assert lrs(SequentialLR(o, [cosine, warm], milestones=[2]), 3) == pytest.approx([0.1, 0.1 * (1 + math.cos(
        math.pi / 4)) / 2, 0.01], rel=1e-14)


def test_a_resumed_warmup_gets_its_lr_whether_the_optimizer_or_the_schedule_is_loaded_first() -> None:
    """LinearLR lowers the lr when made: an optimizer state loaded before the schedules were made was
    undone, and the resumed epoch ran at a tenth of its lr."""
    def build(lr: float = 0.01) -> tuple[SGD, SequentialLR]:
        o = opt(lr)
        return o, SequentialLR(o, [LinearLR(o, 0.1, total_iters=4), CosineAnnealingLR(o, T_max=5)], milestones=[4])

    o, s = build()
    for _ in range(2):
        s.step()
    saved_opt, saved_s, lr = o.state_dict(), s.state_dict(), o.lr
    o2 = opt(0.01)
    o2.load_state_dict(saved_opt)  # the optimizer first ...
    s2 = SequentialLR(o2, [LinearLR(o2, 0.1, total_iters=4), CosineAnnealingLR(o2, T_max=5)], milestones=[4])
    s2.load_state_dict(saved_s)  # ... then the schedules
    assert o2.lr == pytest.approx(lr, rel=1e-15)
    assert lrs(s2, 4) == lrs(s, 4)


def _decay_then_step(o: SGD) -> SequentialLR:
    return SequentialLR(o, [ExponentialLR(o, gamma=0.5), StepLR(o, step_size=100, gamma=0.5)], milestones=[3])


def _constant_decay_step(o: SGD) -> SequentialLR:
    return SequentialLR(o, [md.ConstantLR(o, factor=0.1, total_iters=10), ExponentialLR(o, gamma=0.5),
                            StepLR(o, step_size=2, gamma=0.1)], milestones=[2, 5])


@pytest.mark.parametrize("build, want", [
    (_decay_then_step, [1.0, 0.5, 0.25, 1.0, 1.0, 1.0, 1.0]),
    (_constant_decay_step, [0.1, 0.1, 1.0, 0.5, 0.25, 1.0, 1.0, 0.1, 0.1, 0.01]),
])
def test_sequential_lr_at_a_milestone_is_the_next_schedules_and_a_state_saved_there_resumes_it(build, want) -> None:
    """At epoch ``milestones[i]`` the lr is ``schedulers[i + 1]``'s at its epoch 0, in ``lr_at`` as in ``step``:
    a mutation review (bisect_left in lr_at only) went unnoticed, and an optimizer and schedule saved exactly
    at a milestone resumed at the lr the schedule before it would have reached (0.125 for 1.0)."""
    o = opt(1.0)
    s = build(o)
    stepped = lrs(s, len(want))
    assert stepped == pytest.approx(want, rel=1e-15)
    assert [s.lr_at(e) for e in range(len(want))] == stepped
    for k in range(len(want) - 1):  # saved after k steps (at each milestone among them), resumed in a fresh run
        o = opt(1.0)
        s = build(o)
        for _ in range(k):
            s.step()
        saved_opt, saved_s = o.state_dict(), s.state_dict()
        o2 = opt(0.3)
        s2 = build(o2)
        o2.load_state_dict(saved_opt)
        s2.load_state_dict(saved_s)
        assert o2.lr == stepped[k], f"resumed after {k} steps"
        assert lrs(s2, len(want) - k) == stepped[k:], f"resumed after {k} steps"
    w, o3 = LinearLR(opt(0.2), 0.5, total_iters=4), opt(0.2)
    w.step()
    alone = LinearLR(o3, 0.5, total_iters=4)
    alone.load_state_dict(w.state_dict())
    assert o3.lr == w.optimizer.lr


def test_a_sequential_lr_that_raises_when_made_changes_no_schedule() -> None:
    from minidl.schedulers import LRScheduler

    o = opt(0.1)
    warm = LinearLR(o, 0.1, total_iters=3)
    with pytest.raises(NotImplementedError):
        SequentialLR(o, [LRScheduler(o), warm], milestones=[2])  # no lr_at: raises computing epoch 0's lr
    assert warm.base_lr == 0.1 and o.lr == pytest.approx(0.01)


# --- fourteenth session: a schedule notices another hand on the lr ----------------------------------


def test_two_schedules_on_one_optimizer_are_refused_not_silently_overwritten() -> None:
    """PyTorch's schedules chain (0.9**2 * 0.1 after two epochs); minidl's closed forms would each write
    lr0 * f(epoch), the last one winning (lr 0.1), with no word."""
    o = opt(1.0)
    a, b = ExponentialLR(o, 0.9), StepLR(o, 2, 0.1)
    a.step()
    assert o.lr == pytest.approx(0.9)
    with pytest.raises(RuntimeError, match=r"StepLR.step: the optimizer's lr is 0.9, not the 1.0 this StepLR set "
                                           r"\(after 0 step\(s\)\).*a second schedule.*SequentialLR"):
        b.step()
    assert (b.last_epoch, o.lr) == (0, pytest.approx(0.9))  # nothing changed


def test_an_lr_set_by_hand_is_not_undone_silently() -> None:
    o = opt(1.0)
    s = StepLR(o, 3, 0.5)
    s.step()
    o.lr = 0.01
    with pytest.raises(RuntimeError, match="an lr set by hand"):
        s.step()
    assert (s.last_epoch, o.lr) == (1, 0.01)
    fresh = StepLR(o, 3, 0.5)  # a new schedule from the lr set: fine
    assert lrs(fresh, 4) == pytest.approx([0.01, 0.01, 0.01, 0.005])


def test_resuming_with_both_states_steps_on_and_the_optimizer_alone_is_refused() -> None:
    o = opt(1.0)
    s = StepLR(o, 2, 0.1)
    for _ in range(3):
        s.step()
    opt_state, sched_state = o.state_dict(), s.state_dict()
    o2 = opt(1.0)
    s2 = StepLR(o2, 2, 0.1)
    o2.load_state_dict(opt_state)
    with pytest.raises(RuntimeError, match="an optimizer state loaded without this schedule's"):
        s2.step()  # the schedule would restart at epoch 1 and raise the lr back to 1.0
    s2.load_state_dict(sched_state)
    assert s2.step() == s.step() == pytest.approx(0.01)
    o3 = opt(1.0)  # the other order: the schedule's state first, then the optimizer's
    s3 = StepLR(o3, 2, 0.1)
    s3.load_state_dict(sched_state)
    o3.load_state_dict(opt_state)
    assert s3.step() == pytest.approx(0.01)


def test_schedules_that_set_the_lr_when_made_or_loaded_still_step() -> None:
    o = opt(1.0)
    warm = LinearLR(o, start_factor=0.5, total_iters=2)
    assert lrs(warm, 3) == pytest.approx([0.5, 0.75, 1.0])
    o = opt(1.0)
    seq = SequentialLR(o, [LinearLR(o, 0.5, total_iters=2), CosineAnnealingLR(o, T_max=2)], milestones=[2])
    assert lrs(seq, 4) == pytest.approx([0.5, 0.75, 1.0, 0.5])
    o = opt(1.0)
    cycle = md.OneCycleLR(o, max_lr=1.0, total_steps=6, cycle_momentum=False)
    cycle.step()
    state = cycle.state_dict()
    o2 = opt(1.0)
    cycle2 = md.OneCycleLR(o2, max_lr=1.0, total_steps=6, cycle_momentum=False)
    cycle2.load_state_dict(state)  # sets the optimizer's lr for step 1
    assert cycle2.step() == cycle.step()
    o.lr = 0.3
    with pytest.raises(RuntimeError, match=r"OneCycleLR\.step: the optimizer's lr is 0\.3"):
        cycle.step()
    assert cycle.last_epoch == 2


def test_reduce_on_plateau_builds_on_the_lr_it_finds() -> None:
    """ReduceLROnPlateau multiplies the lr it finds (as PyTorch's): an lr set by hand is its start."""
    o = opt(1.0)
    plateau = ReduceLROnPlateau(o, factor=0.5, patience=0)
    plateau.step(1.0)
    o.lr = 0.2
    plateau.step(2.0)
    assert o.lr == pytest.approx(0.1)


def test_one_cycle_takes_epochs_and_steps_per_epoch_as_pytorch() -> None:
    a, b = opt(), opt()
    by_total = md.OneCycleLR(a, 0.5, 12, cycle_momentum=False)
    by_epochs = md.OneCycleLR(b, 0.5, epochs=3, steps_per_epoch=4, cycle_momentum=False)
    assert by_epochs.total_steps == 12
    assert lrs(by_total, 12) == lrs(by_epochs, 12)
    positional = md.OneCycleLR(opt(), 0.5, None, 3, 4, 0.25, cycle_momentum=False)  # PyTorch's positions
    assert (positional.total_steps, positional.pct_start) == (12, 0.25)
    for kwargs in ({}, {"total_steps": 12, "epochs": 3}, {"epochs": 3}, {"steps_per_epoch": 4},
                   {"total_steps": 12, "epochs": 3, "steps_per_epoch": 4}):
        with pytest.raises(ValueError, match="give total_steps, or epochs and steps_per_epoch"):
            md.OneCycleLR(opt(), 0.5, **kwargs)
    with pytest.raises(ValueError, match="give total_steps, or epochs"):  # minidl's old positional pct_start
        md.OneCycleLR(opt(), 0.5, 12, 0.25)
    with pytest.raises(ValueError, match="epochs must be"):
        md.OneCycleLR(opt(), 0.5, epochs=0, steps_per_epoch=4)


def test_fit_refuses_a_changed_lr_before_it_trains() -> None:
    model = md.Sequential(md.Dense(3, 1, rng=0))
    o = SGD(model.parameters(), lr=0.1)
    schedule = StepLR(o, 2)
    o.lr = 0.05
    before = model.state_dict()
    for interval in ("epoch", "batch"):
        with pytest.raises(RuntimeError, match=r"^fit: StepLR.step: the optimizer's lr is 0.05, not the 0.1"):
            model.fit(np.ones((8, 3)), np.ones((8, 1)), loss=md.MSELoss(), optimizer=o, epochs=3, scheduler=schedule,
                      scheduler_interval=interval, verbose=0)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items()) and schedule.last_epoch == 0
