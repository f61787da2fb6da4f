"""Learning-rate schedules: values by their formulas, state, and the optimizer they drive."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError
from minidl.optim import SGD, Adam
from minidl.schedulers import CosineAnnealingLR, ExponentialLR, MultiStepLR, StepLR


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
    ({"gamma": 1.5}, r"'gamma': StepLR: gamma must be a number in \(0, 1\]"),
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
