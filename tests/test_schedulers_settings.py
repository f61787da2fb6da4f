"""Every schedule's settings set after construction: checked as the constructor checks them (its error and
message, the schedule and the optimizer unchanged when refused) and used from the next step on; values derived
from them follow, and changes that make no sense mid-schedule are refused.  A user's function that raises in a
step keeps its error, with a note naming the schedule and its count, and the step changes nothing.  (The
settings were plain attributes: ``CyclicLR(...).scale_fn = 3`` was accepted and failed at the next step with a
bare TypeError; ``gamma = -1``, ``mode = "bogus"``, ``max_lr = nan``, ``step_size = 0`` were accepted.)"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal

Make = Callable[..., md.LRScheduler]


def sgd(lr: float = 1.0, momentum: float = 0.9, **kwargs: Any) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr, momentum=momentum, **kwargs)


def decay(e: int) -> float:
    return 1.0 / (e + 1)


def half(e: int) -> float:
    return 0.5


def inverse(x: int) -> float:
    return 1.0 / x


def tenth(x: int) -> float:
    return 0.1 * x


def sequence(o: md.Optimizer, **kw: Any) -> md.SequentialLR:
    """lr0 = 1: 0.5, 0.75 (a warm-up), then 1, 0.5, 0.25, ... from epoch 2."""
    return md.SequentialLR(o, [md.LinearLR(o, 0.5, total_iters=2), md.ExponentialLR(o, 0.5)], **{"milestones": [2],
                                                                                                  **kw})


def chain(o: md.Optimizer, **kw: Any) -> md.ChainedScheduler:
    """lr0 = 1: 0.5 * 0.5**e for e < 2, then 0.5**e."""
    return md.ChainedScheduler([md.ConstantLR(o, 0.5, total_iters=2), md.ExponentialLR(o, 0.5)], **kw)


#: Each schedule on sgd() (lr0 = 1, momentum 0.9), made with the constructor's keywords overridden by ``kw``.
MAKE: dict[str, Make] = {
    "StepLR": lambda o, **kw: md.StepLR(o, **{"step_size": 2, "gamma": 0.5, **kw}),
    "MultiStepLR": lambda o, **kw: md.MultiStepLR(o, **{"milestones": [2, 4], "gamma": 0.5, **kw}),
    "ExponentialLR": lambda o, **kw: md.ExponentialLR(o, **{"gamma": 0.5, **kw}),
    "CosineAnnealingLR": lambda o, **kw: md.CosineAnnealingLR(o, **{"T_max": 4, **kw}),
    "CosineAnnealingWarmRestarts": lambda o, **kw: md.CosineAnnealingWarmRestarts(o, **{"T_0": 4, **kw}),
    "LinearLR": lambda o, **kw: md.LinearLR(o, **{"start_factor": 0.5, "total_iters": 4, **kw}),
    "ConstantLR": lambda o, **kw: md.ConstantLR(o, **{"factor": 0.5, "total_iters": 3, **kw}),
    "PolynomialLR": lambda o, **kw: md.PolynomialLR(o, **{"total_iters": 4, **kw}),
    "LambdaLR": lambda o, **kw: md.LambdaLR(o, **{"lr_lambda": decay, **kw}),
    "MultiplicativeLR": lambda o, **kw: md.MultiplicativeLR(o, **{"lr_lambda": half, **kw}),
    # triangles of 2 steps up and 4 down: 0.1, 0.55, 1, 0.775, 0.55, 0.325, 0.1, ...
    "CyclicLR": lambda o, **kw: md.CyclicLR(o, **{"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2,
                                                  "step_size_down": 4, "gamma": 0.5, **kw}),
    "CyclicLR exp_range": lambda o, **kw: md.CyclicLR(o, **{"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2,
                                                            "step_size_down": 4, "mode": "exp_range", "gamma": 0.5,
                                                            **kw}),
    "CyclicLR no momentum": lambda o, **kw: md.CyclicLR(o, **{"base_lr": 0.1, "max_lr": 1.0, "cycle_momentum": False,
                                                              **kw}),
    "CyclicLR scale_fn": lambda o, **kw: md.CyclicLR(o, **{"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2,
                                                           "step_size_down": 4, "scale_fn": inverse, **kw}),
    # linear: 0.04 up to 1 at step 2, down to 4e-6 at step 9
    "OneCycleLR": lambda o, **kw: md.OneCycleLR(o, **{"max_lr": 1.0, "total_steps": 10, "anneal_strategy": "linear",
                                                      **kw}),
    "ReduceLROnPlateau": lambda o, **kw: md.ReduceLROnPlateau(o, **{"mode": "min", "factor": 0.5, "patience": 1,
                                                                    "threshold": 0.3, **kw}),
    "ReduceLROnPlateau auto": lambda o, **kw: md.ReduceLROnPlateau(o, **{"factor": 0.5, "patience": 1,
                                                                         "threshold": 0.3, **kw}),
    "SequentialLR": sequence,
    "ChainedScheduler": chain,
}

#: ReduceLROnPlateau's values: before the setting, and after it (the lr after each of these is asserted).
VALUES, PLATEAU = (10.0,), (8.0, 8.0, 8.0, 8.0)
RISING = (10.0, 20.0, 40.0, 80.0)  # better every time in mode "max", never in "min"


def advance(s: md.LRScheduler, steps: int | tuple[float, ...]) -> list[float]:
    """Step ``s`` ``steps`` times (ReduceLROnPlateau: once per value); the lrs."""
    if isinstance(s, md.ReduceLROnPlateau):
        assert isinstance(steps, tuple)
        return [s.step(v) for v in steps]
    assert isinstance(steps, int)
    return [s.step() for _ in range(steps)]


def of(s: md.LRScheduler, part: int | None) -> md.LRScheduler:
    return s if part is None else s.schedulers[part]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Good:
    make: str
    name: str
    value: Any
    lrs: tuple[float, ...]  # the lr after each step after the setting
    before: int | tuple[float, ...] = 1
    after: int | tuple[float, ...] = 2
    part: int | None = None  # a setting of the container's schedule ``part``
    stored: Any = None  # what the setting reads afterwards (default: the value as a Python number)
    then: dict[str, Any] = field(default_factory=dict)  # what the schedule's other attributes read afterwards
    momenta: tuple[float, ...] | None = None  # the optimizer's momentum after each step


L2, L3 = 1 / 7, 2 / 7  # OneCycleLR's second phase (steps 2 to 9) at steps 3 and 4
GOOD = [
    Good("StepLR", "step_size", np.int64(4), (0.5, 0.5), before=3),
    Good("StepLR", "gamma", np.float64(0.1), (0.01, 0.01), before=3),
    Good("StepLR", "base_lr", np.float64(2.0), (0.5, 0.5), before=3),
    Good("MultiStepLR", "milestones", (5, np.int64(3)), (1.0, 0.5), stored=[3, 5]),
    Good("MultiStepLR", "gamma", 0.1, (0.1, 0.1)),
    Good("ExponentialLR", "gamma", np.float64(0.9), (0.9**3, 0.9**4), before=2),
    Good("CosineAnnealingLR", "T_max", np.int64(2), (0.0, 0.5)),
    Good("CosineAnnealingLR", "eta_min", 0.2, (0.6, 0.2 + 0.4 * (1 + math.cos(3 * math.pi / 4)))),
    Good("CosineAnnealingWarmRestarts", "T_0", 2, (1.0, 0.5)),
    Good("CosineAnnealingWarmRestarts", "T_mult", np.int64(2),
         ((1 + math.cos(math.pi / 8)) / 2, (1 + math.cos(math.pi / 4)) / 2), before=4),
    Good("CosineAnnealingWarmRestarts", "eta_min", 0.5, (0.75, 0.5 + 0.25 * (1 + math.cos(3 * math.pi / 4)))),
    Good("LinearLR", "start_factor", 0.25, (0.625, 0.8125)),
    Good("LinearLR", "end_factor", np.float64(0.5), (0.5, 0.5)),
    Good("LinearLR", "total_iters", 2, (1.0, 1.0)),
    Good("ConstantLR", "factor", 0.25, (0.25, 1.0)),
    Good("ConstantLR", "total_iters", np.int64(0), (1.0, 1.0)),
    Good("PolynomialLR", "total_iters", 8, (0.75, 0.625)),
    Good("PolynomialLR", "power", np.float64(2), (0.25, 0.0625), stored=2.0),
    Good("LambdaLR", "lr_lambda", tenth, (0.2, 0.30000000000000004)),
    Good("MultiplicativeLR", "lr_lambda", tenth, (0.25 * 0.3, 0.25 * 0.3 * 0.4), before=2),
    Good("CyclicLR", "base_lr", 0.2, (1.0, 0.8)),
    Good("CyclicLR", "max_lr", np.float64(0.5), (0.5, 0.4)),
    Good("CyclicLR", "step_size_up", np.int64(4), (0.55, 0.775)),
    Good("CyclicLR", "step_size_down", None, (1.0, 0.55), stored=2),  # None: step_size_up, as the constructor's
    Good("CyclicLR", "mode", "triangular2", (0.325, 0.55), before=6),
    Good("CyclicLR", "mode", "exp_range", (0.325, 0.1 + 0.9 * 0.75 * 0.125), then={"scale_mode": "iterations"}),
    Good("CyclicLR exp_range", "gamma", 0.9, (0.1 + 0.9 * 0.81, 0.1 + 0.9 * 0.75 * 0.729)),
    Good("CyclicLR exp_range", "mode", "triangular", (1.0, 0.775), then={"scale_mode": "cycle"}),
    Good("CyclicLR", "scale_fn", half, (0.55, 0.4375), then={"scale_mode": "cycle", "has_scale_fn": True}),
    Good("CyclicLR exp_range", "scale_fn", inverse, (1.0, 0.775), then={"scale_mode": "cycle"}),  # (cycle 1: 1)
    Good("CyclicLR scale_fn", "scale_fn", None, (1.0, 0.775), then={"scale_mode": "cycle", "has_scale_fn": False}),
    Good("CyclicLR scale_fn", "scale_mode", "iterations", (0.55, 0.325)),
    Good("CyclicLR scale_fn", "scale_mode", None, (1.0, 0.775), stored="cycle"),
    Good("CyclicLR", "cycle_momentum", False, (1.0, 0.775), momenta=(0.85, 0.85)),
    Good("CyclicLR", "base_momentum", 0.5, (1.0, 0.775), momenta=(0.5, 0.6)),
    Good("CyclicLR", "max_momentum", np.float64(0.95), (1.0, 0.775), momenta=(0.8, 0.8375)),
    Good("OneCycleLR", "max_lr", 2.0, (2.0, 2.0 + (8e-6 - 2.0) * L2), then={"base_lr": 0.08}),
    Good("OneCycleLR", "total_steps", np.int64(20), (0.424, 0.616)),
    Good("OneCycleLR", "pct_start", 0.5, (0.52, 0.76)),
    Good("OneCycleLR", "anneal_strategy", "cos", (1.0, 4e-6 + (1 - 4e-6) * (1 + math.cos(math.pi * L2)) / 2)),
    Good("OneCycleLR", "div_factor", 10, (1.0, 1.0 + (1e-5 - 1.0) * L2), stored=10.0, then={"base_lr": 0.1}),
    Good("OneCycleLR", "final_div_factor", 100.0, (1.0, 1.0 + (4e-4 - 1.0) * L2)),
    Good("OneCycleLR", "three_phase", True, (1.0, 0.52)),
    Good("OneCycleLR", "cycle_momentum", False, (1.0, 1.0 + (4e-6 - 1.0) * L2), momenta=(0.9, 0.9)),
    Good("OneCycleLR", "base_momentum", 0.5, (1.0, 1.0 + (4e-6 - 1.0) * L2), momenta=(0.5, 0.5 + 0.45 * L2)),
    Good("OneCycleLR", "max_momentum", 0.99, (1.0, 1.0 + (4e-6 - 1.0) * L2), momenta=(0.85, 0.85 + 0.14 * L2)),
    Good("OneCycleLR", "total_steps", 8, (1 + (4e-6 - 1) * 2.6 / 5.6, 1 + (4e-6 - 1) * 3.6 / 5.6), before=3),
    Good("ReduceLROnPlateau", "factor", 0.1, (1.0, 0.1, 0.1, 0.01), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "patience", np.int64(0), (0.5, 0.25, 0.125, 0.0625), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "threshold", 0.1, (1.0, 1.0, 0.5, 0.5), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "threshold_mode", "abs", (1.0, 1.0, 0.5, 0.5), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "cooldown", 1, (1.0, 0.5, 0.5, 0.5), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "min_lr", 0.4, (1.0, 0.5, 0.5, 0.4), before=VALUES, after=PLATEAU),
    Good("ReduceLROnPlateau", "eps", 0.3, (1.0, 0.5, 0.5, 0.5), before=VALUES, after=PLATEAU),
    # before the first step mode and monitor may change: best starts from the new mode's worst
    Good("ReduceLROnPlateau", "mode", "max", (1.0, 1.0, 1.0, 1.0), before=(), after=RISING, then={"best": 80.0}),
    Good("ReduceLROnPlateau auto", "monitor", "val_accuracy", (1.0, 1.0, 1.0, 1.0), before=(), after=RISING,
         then={"mode": "max"}),  # mode="auto" follows it
    Good("ReduceLROnPlateau", "monitor", "val_accuracy", (1.0, 1.0, 0.5, 0.5), before=(), after=RISING,
         then={"mode": "min"}),  # a mode given stays
    Good("ReduceLROnPlateau auto", "mode", "auto", (1.0, 1.0, 0.5, 0.5), before=(), after=RISING, stored="min"),
    Good("SequentialLR", "milestones", [np.int64(3)], (1.0, 1.0), stored=[3]),
    Good("SequentialLR", "base_lr", 2.0, (2.0, 1.0), then={"schedulers[1].base_lr": 2.0}),
    Good("SequentialLR", "gamma", 0.1, (1.0, 0.1), part=1),
    Good("SequentialLR", "total_iters", 4, (0.625, 1.0), part=0, before=0),
    Good("ChainedScheduler", "base_lr", 2.0, (0.5, 0.25), then={"schedulers[0].base_lr": 2.0}),
    Good("ChainedScheduler", "gamma", 0.1, (0.01, 0.001), part=1),
    Good("ChainedScheduler", "total_iters", np.int64(4), (0.125, 0.0625), part=0),
]


def _id(case: Any) -> str:
    value = case.value
    shown = type(value).__name__ if isinstance(value, md.Optimizer) else getattr(value, "__name__", repr(value))
    return f"{case.make}{'' if case.part is None else f'[{case.part}]'}.{case.name}={shown}"


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _read(s: md.LRScheduler, path: str) -> Any:
    """``"schedulers[1].base_lr"`` or ``"mode"`` of ``s``."""
    if path.startswith("schedulers["):
        i, path = int(path[11]), path[14:]
        s = s.schedulers[i]  # type: ignore[attr-defined]
    return getattr(s, path)


@pytest.mark.parametrize("case", GOOD, ids=_id)
def test_a_good_value_is_taken_and_used_from_the_next_step(case: Good) -> None:
    o = sgd()
    s = MAKE[case.make](o)
    advance(s, case.before)
    target = of(s, case.part)
    setattr(target, case.name, case.value)
    stored = getattr(target, case.name)
    expected = _python(case.value) if case.stored is None else case.stored
    assert stored == expected and type(stored) is type(expected)  # (NumPy scalars kept as Python numbers)
    for path, value in case.then.items():
        if path != "best":
            assert _read(s, path) == value
    lrs, momenta = [], []
    for v in (case.after if isinstance(case.after, tuple) else [None] * case.after):
        lrs.append(s.step() if v is None else s.step(v))  # type: ignore[call-arg]
        momenta.append(o.hyper["momentum"])
    assert lrs == pytest.approx(case.lrs, rel=1e-12, abs=1e-15)
    if case.momenta is not None:
        assert momenta == pytest.approx(case.momenta, rel=1e-12)
    if "best" in case.then:
        assert s.best == case.then["best"]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Bad:
    make: str
    name: str
    value: Any
    error: type[Exception]
    message: str  # the whole message
    part: int | None = None
    before: int | tuple[float, ...] = 2
    optimizer: Callable[[], md.Optimizer] = sgd
    in_constructor: bool = True  # the constructor refuses it with the same error and message


def _numbers(make: str, name: str, rule: str, *values: Any, **kw: Any) -> list[Bad]:
    return [Bad(make, name, v, ValueError, f"{make.split()[0]}: {name} must be {rule}, got {v!r}", **kw)
            for v in values]


POSITIVE_INT, GAMMA, NON_NEGATIVE = "a positive int", "a finite number > 0", "a finite number >= 0"
MOMENTUM = "a number in [0, 1)"
NAN, INF = math.nan, math.inf
BAD = [
    *_numbers("StepLR", "step_size", POSITIVE_INT, 0, 2.0, True, np.int64(-1)),
    *_numbers("StepLR", "gamma", GAMMA, -1, 0.0, NAN, INF, "0.1", None),
    *_numbers("StepLR", "base_lr", NON_NEGATIVE, -0.1, NAN, INF, "1", in_constructor=False),
    Bad("MultiStepLR", "milestones", [2, 0], ValueError, "MultiStepLR: a milestone must be a positive int, got 0"),
    Bad("MultiStepLR", "milestones", "3", ValueError,
        "MultiStepLR: milestones must be a sequence of positive ints, got '3'"),
    Bad("MultiStepLR", "milestones", 3, ValueError, "MultiStepLR: milestones must be a sequence of positive ints, "
                                                    "got 3"),
    *_numbers("MultiStepLR", "gamma", GAMMA, -0.5),
    *_numbers("ExponentialLR", "gamma", GAMMA, 0, NAN),
    *_numbers("CosineAnnealingLR", "T_max", POSITIVE_INT, 0, 1.5),
    *_numbers("CosineAnnealingLR", "eta_min", NON_NEGATIVE, -0.1, INF),
    *_numbers("CosineAnnealingWarmRestarts", "T_0", POSITIVE_INT, 0),
    *_numbers("CosineAnnealingWarmRestarts", "T_mult", POSITIVE_INT, 1.5, 0),
    *_numbers("CosineAnnealingWarmRestarts", "eta_min", NON_NEGATIVE, NAN),
    *_numbers("LinearLR", "start_factor", "a number in (0, 1]", 0, 1.5),
    *_numbers("LinearLR", "end_factor", "a number in [0, 1]", -0.1, 1.01),
    *_numbers("LinearLR", "total_iters", POSITIVE_INT, 0),
    *_numbers("ConstantLR", "factor", "a number in [0, 1]", 2, -1, "0.5"),
    Bad("ConstantLR", "total_iters", -1, ValueError, "ConstantLR: total_iters must be an int >= 0, got -1"),
    *_numbers("PolynomialLR", "total_iters", POSITIVE_INT, 0),
    *_numbers("PolynomialLR", "power", NON_NEGATIVE, -1, NAN),
    *[Bad(make, "lr_lambda", v, TypeError, f"{make}: lr_lambda must be a function of the epoch count, got {v!r}")
      for make in ("LambdaLR", "MultiplicativeLR") for v in (3, None, 0.5)],
    *_numbers("CyclicLR", "base_lr", NON_NEGATIVE, -1),
    *_numbers("CyclicLR", "max_lr", NON_NEGATIVE, NAN, -1),
    *_numbers("CyclicLR", "step_size_up", POSITIVE_INT, 0),
    *_numbers("CyclicLR", "step_size_down", POSITIVE_INT, 0, 2.5),
    Bad("CyclicLR", "mode", "bogus", ValueError,
        "CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range', got 'bogus'"),
    *_numbers("CyclicLR", "gamma", GAMMA, -1),
    *[Bad("CyclicLR", "scale_fn", v, TypeError, "CyclicLR: scale_fn must be a function of the cycle (or step) count "
                                                f"returning a number, or None, got {v!r}") for v in (3, "half")],
    Bad("CyclicLR", "scale_mode", "bogus", ValueError, "CyclicLR: scale_mode must be 'cycle' or 'iterations', got "
                                                       "'bogus'"),
    Bad("CyclicLR", "scale_mode", "iterations", ValueError,
        "CyclicLR: scale_mode='iterations' is for a scale_fn, and none was given; mode='triangular' scales by the "
        "cycle (scale_mode='cycle'): give a scale_fn, or leave scale_mode out"),
    Bad("CyclicLR", "has_scale_fn", True, ValueError, "CyclicLR: has_scale_fn follows scale_fn; set scale_fn",
        in_constructor=False),
    Bad("CyclicLR", "cycle_momentum", 1, ValueError, "CyclicLR: cycle_momentum must be a bool, got 1"),
    *_numbers("CyclicLR", "base_momentum", MOMENTUM, 1.0, -0.1),
    *_numbers("CyclicLR", "max_momentum", MOMENTUM, NAN),
    Bad("CyclicLR no momentum", "cycle_momentum", True, ValueError,
        "CyclicLR: cycle_momentum=True needs an optimizer with a momentum or betas (SGD, RMSprop, the Adam family), "
        "not Adagrad; pass cycle_momentum=False", optimizer=lambda: md.Adagrad([md.Parameter(np.zeros(2))], lr=1.0),
        in_constructor=False),
    Bad("CyclicLR", "base_momentum", 0.0, ValueError, "CyclicLR: the optimizer uses Nesterov momentum, which needs "
                                                      "momentum > 0; give base_momentum and max_momentum > 0",
        optimizer=lambda: sgd(nesterov=True)),
    *_numbers("OneCycleLR", "max_lr", GAMMA, 0, INF),
    *_numbers("OneCycleLR", "total_steps", POSITIVE_INT, 0, 10.0),
    Bad("OneCycleLR", "total_steps", 3, ValueError,
        "OneCycleLR: with total_steps=3, pct_start=0.3 and three_phase=False, phase 1 of 2 has no steps (it would "
        "end at step -0.1, starting at 0); give more total_steps or another pct_start"),
    Bad("OneCycleLR", "total_steps", 4, ValueError, "OneCycleLR: total_steps=4 is fewer than the 5 steps taken; give "
                                                    "total_steps >= 5, or make a new OneCycleLR",
        before=5, in_constructor=False),
    *_numbers("OneCycleLR", "pct_start", "a number in (0, 1)", 0, 1.0),
    Bad("OneCycleLR", "pct_start", 0.05, ValueError,
        "OneCycleLR: with total_steps=10, pct_start=0.05 and three_phase=False, phase 1 of 2 has no steps (it would "
        "end at step -0.5, starting at 0); give more total_steps or another pct_start"),
    Bad("OneCycleLR", "anneal_strategy", "cosine", ValueError,
        "OneCycleLR: anneal_strategy must be 'cos' or 'linear', got 'cosine'"),
    *_numbers("OneCycleLR", "div_factor", GAMMA, 0),
    *_numbers("OneCycleLR", "final_div_factor", GAMMA, -1e4),
    Bad("OneCycleLR", "three_phase", 1, ValueError, "OneCycleLR: three_phase must be a bool, got 1"),
    Bad("OneCycleLR", "cycle_momentum", "yes", ValueError, "OneCycleLR: cycle_momentum must be a bool, got 'yes'"),
    *_numbers("OneCycleLR", "base_momentum", MOMENTUM, 1),
    *_numbers("OneCycleLR", "max_momentum", MOMENTUM, NAN),
    Bad("OneCycleLR", "base_lr", 0.1, ValueError, "OneCycleLR: base_lr is max_lr / div_factor, where the cycle "
                                                  "starts: set max_lr or div_factor", in_constructor=False),
    Bad("ReduceLROnPlateau", "mode", "bogus", ValueError, "ReduceLROnPlateau: mode must be 'min' or 'max', got "
                                                          "'bogus'", before=VALUES),
    Bad("ReduceLROnPlateau", "mode", "max", ValueError,
        "ReduceLROnPlateau: mode cannot change after the first step: the best value so far, 10.0, is of 'val_loss' "
        "in mode 'min'; make a new ReduceLROnPlateau", before=VALUES, in_constructor=False),
    Bad("ReduceLROnPlateau auto", "monitor", "val_acc", ValueError,
        "ReduceLROnPlateau: monitor cannot change after the first step: the best value so far, 10.0, is of "
        "'val_loss' in mode 'min'; make a new ReduceLROnPlateau", before=VALUES, in_constructor=False),
    *_numbers("ReduceLROnPlateau", "factor", "a number in (0, 1)", 1, 0, before=VALUES),
    Bad("ReduceLROnPlateau", "patience", -1, ValueError, "ReduceLROnPlateau: patience must be an int >= 0, got -1",
        before=VALUES),
    *_numbers("ReduceLROnPlateau", "threshold", NON_NEGATIVE, -1, before=VALUES),
    Bad("ReduceLROnPlateau", "threshold_mode", "relative", ValueError,
        "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got 'relative'", before=VALUES),
    Bad("ReduceLROnPlateau", "cooldown", 1.5, ValueError, "ReduceLROnPlateau: cooldown must be an int >= 0, got 1.5",
        before=VALUES),
    *_numbers("ReduceLROnPlateau", "min_lr", NON_NEGATIVE, NAN, before=VALUES),
    *_numbers("ReduceLROnPlateau", "eps", NON_NEGATIVE, -1e-8, before=VALUES),
    *[Bad("ReduceLROnPlateau", "monitor", v, TypeError, "ReduceLROnPlateau: monitor must be the name of a history "
                                                        f"key, e.g. 'val_loss', got {v!r}", before=VALUES)
      for v in ("", None)],
    Bad("SequentialLR", "milestones", [0], ValueError, "SequentialLR: a milestone must be a positive int, got 0"),
    Bad("SequentialLR", "milestones", [2, 3], ValueError,
        "SequentialLR: expected 1 strictly increasing milestone(s) for 2 schedules, got [2, 3]"),
    *_numbers("SequentialLR", "base_lr", NON_NEGATIVE, -1, in_constructor=False),
    Bad("SequentialLR", "base_lr", 2.0, ValueError, "ExponentialLR: base_lr is the lr0 of the SequentialLR this "
                                                    "ExponentialLR belongs to, which all its schedules share: set the "
                                                    "SequentialLR's base_lr", part=1, in_constructor=False),
    Bad("SequentialLR", "gamma", 0, ValueError, "ExponentialLR: gamma must be a finite number > 0, got 0", part=1,
        in_constructor=False),
    *_numbers("ChainedScheduler", "base_lr", NON_NEGATIVE, NAN, in_constructor=False),
    Bad("ChainedScheduler", "factor", 1.5, ValueError, "ConstantLR: factor must be a number in [0, 1], got 1.5",
        part=0, in_constructor=False),
]
# what a chain refuses of its schedules is refused when set on one of them, with the chain's reason
CHAINED_COSINE = "ChainedScheduler cosine"
MAKE[CHAINED_COSINE] = lambda o, **kw: md.ChainedScheduler([md.CosineAnnealingLR(o, 4), md.ExponentialLR(o, 0.5)])
BAD.append(Bad(CHAINED_COSINE, "eta_min", 0.01, ValueError,
               "CosineAnnealingLR: eta_min=0.01 is refused: this CosineAnnealingLR belongs to a ChainedScheduler, "
               "which refuses a CosineAnnealingLR with eta_min=0.01: its lr is not lr0 times a factor (PyTorch's "
               "chain mixes it with the other factors, depending on their order); give eta_min=0, or run it in a "
               "SequentialLR", part=0, in_constructor=False))
# fixed when made: the optimizer, and the schedules of a container
BAD += [Bad(make, "optimizer", sgd(), AttributeError,
            f"{name}: the optimizer cannot change (the schedule has set its lr, and records what it set): make a new "
            f"{name} for the other optimizer", before=VALUES if "Plateau" in make else 2, in_constructor=False)
        for make, name in [(m, m.split()[0]) for m in MAKE]]
BAD += [Bad(make, "schedulers", [], AttributeError,
            f"{make}: the schedules cannot be replaced (they belong to this {make}, which started them from one lr0 "
            f"and steps them): make a new {make} of new schedules", in_constructor=False)
        for make in ("SequentialLR", "ChainedScheduler")]


#: the closed forms whose lr is lr0 times a factor: twice the base_lr, twice the lrs
SCALED = ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LinearLR",
          "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR"]
BAD += [Bad(make, "base_lr", v, ValueError, f"{make}: base_lr must be a finite number >= 0, got {v!r}",
            before=VALUES if make == "ReduceLROnPlateau" else 2, in_constructor=False)
        for make in [*SCALED[1:], "ReduceLROnPlateau"] for v in (-1.0, INF)]


def snapshot(s: md.LRScheduler, attributes: bool = True) -> Any:
    """What a refused setting or step must leave as it was: the schedule's state and repr (and its attributes
    and its schedules', ``attributes``), the optimizer's hyper-parameters and state (compare with
    ``states_equal``)."""
    parts = getattr(s, "schedulers", ())
    state = (s.state_dict(), repr(s), dict(s.optimizer.hyper), s.optimizer.initial_lr, s.optimizer.state_dict())
    return state, [dict(vars(x)) for x in (s, *parts)] if attributes else []  # (after: state_dict may cache)


@pytest.mark.parametrize("case", BAD, ids=_id)
def test_a_bad_value_is_refused_with_the_constructors_message_and_changes_nothing(case: Bad) -> None:
    s, twin = MAKE[case.make](case.optimizer()), MAKE[case.make](case.optimizer())
    advance(s, case.before)
    advance(twin, case.before)
    before = snapshot(s)
    with pytest.raises(case.error) as info:
        setattr(of(s, case.part), case.name, case.value)
    assert str(info.value) == case.message
    assert states_equal(snapshot(s), before)
    after = PLATEAU if isinstance(s, md.ReduceLROnPlateau) else 2
    assert advance(s, after) == advance(twin, after)  # the next steps as if nothing had been tried
    if case.in_constructor:
        with pytest.raises(case.error) as made:
            MAKE[case.make](case.optimizer(), **{case.name: case.value})
        assert str(made.value) == case.message


def test_every_setting_of_every_schedule_is_covered() -> None:
    """Each name a schedule saves as a setting or takes as a function, and base_lr, has a good value and a refused
    one here (a good base_lr: below, for the closed forms), and the optimizer a refused one."""
    for make in MAKE:
        s = MAKE[make](sgd())
        cls = type(s).__name__
        names = {*s.settings, *s.functions, "base_lr"}
        good = {c.name for c in GOOD if c.make.split()[0] == cls and c.part is None}
        bad = {c.name for c in BAD if c.make.split()[0] == cls and c.part is None}
        no_good = {"has_scale_fn"} | ({"base_lr"} if make in SCALED or cls in ("OneCycleLR", "ReduceLROnPlateau")
                                      else set())
        assert names - no_good <= good, make
        assert names | {"optimizer"} <= bad, make


@pytest.mark.parametrize("make", SCALED)
def test_a_new_base_lr_is_the_lr0_of_the_next_steps(make: str) -> None:
    s, twin = MAKE[make](sgd()), MAKE[make](sgd())
    advance(s, 2)
    advance(twin, 2)
    s.base_lr = np.float64(3.0)
    assert type(s.base_lr) is float
    assert advance(s, 3) == pytest.approx([3 * lr for lr in advance(twin, 3)], rel=1e-14)


# ------------------------------------------------------------------------------ derived and mid-run


def test_a_new_lr_lambda_multiplies_the_lr_reached_even_after_a_preview() -> None:
    """MultiplicativeLR keeps the products it computed (a plot of the schedule asks for many): a new function
    goes on from the product at last_epoch, as PyTorch's multiplies the lr it has; none computed with the old
    function beyond it is used."""
    o = sgd()
    s = md.MultiplicativeLR(o, half)
    advance(s, 2)
    assert [s.lr_at(e) for e in range(6)] == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]  # a preview
    s.lr_lambda = tenth
    assert s.lr_at(5) == pytest.approx(0.25 * 0.3 * 0.4 * 0.5, rel=1e-14)
    assert advance(s, 3) == pytest.approx([0.25 * 0.3, 0.25 * 0.3 * 0.4, 0.25 * 0.3 * 0.4 * 0.5], rel=1e-14)
    resumed = md.MultiplicativeLR(sgd(), tenth)
    resumed.load_state_dict(s.state_dict())
    assert resumed.step() == s.step()  # its state holds the product: a schedule made with the new function goes on


def test_a_lower_patience_lowers_the_count_a_lower_cooldown_lets_the_running_one_end_and_the_state_loads() -> None:
    """(This test asserted that a lower cooldown cut the cooldown in progress; PyTorch's runs on from where it
    was, and so does minidl's now: tests/test_schedulers_fixes.py compares them.)"""
    o = sgd()
    s = md.ReduceLROnPlateau(o, factor=0.5, patience=3, cooldown=3)
    advance(s, (10.0, 10.0, 10.0, 10.0))  # three bad epochs
    s.patience = 1
    assert s.num_bad_epochs == 1
    assert s.step(10.0) == 0.5  # the next bad epoch reduces, as with the count left at 3
    assert s.cooldown_counter == 3
    s.cooldown = 1
    assert s.cooldown_counter == 3
    again = md.ReduceLROnPlateau(sgd(), factor=0.5)
    again.load_state_dict(s.state_dict())  # (a cooldown_counter above cooldown is the running one's)
    assert again.state_dict() == s.state_dict()


def test_a_setting_set_in_the_constructor_form_of_a_custom_schedule_is_checked() -> None:
    """A schedule of your own that lists its settings and checks them (docs/optimizers.md's Warmup) gets the
    same properties: its check when set, nothing changed when refused."""

    class Warmup(md.LRScheduler):
        settings = ("steps",)

        def __init__(self, optimizer: md.Optimizer, steps: int = 5) -> None:
            super().__init__(optimizer)
            self.steps = steps

        def _check_setting(self, name: str, value: Any) -> Any:
            if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(f"Warmup: steps must be an int >= 1, got {value!r}")
            return int(value)

        def lr_at(self, epoch: int) -> float:
            return self.base_lr * min(1.0, (epoch + 1) / self.steps)

    with pytest.raises(ValueError, match=r"^Warmup: steps must be an int >= 1, got 0$"):
        Warmup(sgd(), 0)
    s = Warmup(sgd(), np.int64(4))
    assert type(s.steps) is int and advance(s, 1) == [0.5]
    with pytest.raises(ValueError, match=r"^Warmup: steps must be an int >= 1, got -2$"):
        s.steps = -2
    assert s.steps == 4
    s.steps = 8
    assert advance(s, 1) == [0.375]


# --------------------------------------------------------------------------- a user's function that raises


def raising_at(n: int) -> Callable[[int], float]:
    def factor(x: int) -> float:
        if x == n:
            raise KeyError(f"no factor for {x}")
        return 0.5

    return factor


RAISING: list[tuple[str, Make, int, list[str]]] = [
    ("LambdaLR", lambda o: md.LambdaLR(o, raising_at(3)), 2,
     ["(raised by LambdaLR's lr_lambda(3), computing the lr after 3 step(s); the LambdaLR had taken 2 step(s))"]),
    ("MultiplicativeLR", lambda o: md.MultiplicativeLR(o, raising_at(3)), 2,
     ["(raised by MultiplicativeLR's lr_lambda(3), computing the lr after 3 step(s); the MultiplicativeLR had taken "
      "2 step(s))"]),
    ("CyclicLR", lambda o: md.CyclicLR(o, 0.1, 1.0, 2, 4, scale_fn=raising_at(2)), 5,  # cycle 2 from step 6
     ["(raised by CyclicLR's scale_fn(2), computing the lr after 6 step(s); the CyclicLR had taken 5 step(s))"]),
    ("CyclicLR iterations", lambda o: md.CyclicLR(o, 0.1, 1.0, 2, 4, scale_fn=raising_at(4),
                                                  scale_mode="iterations"), 3,
     ["(raised by CyclicLR's scale_fn(4), computing the lr after 4 step(s); the CyclicLR had taken 3 step(s))"]),
    ("ChainedScheduler", lambda o: md.ChainedScheduler([md.ExponentialLR(o, 0.5),
                                                        md.MultiplicativeLR(o, raising_at(3))]), 2,
     ["(raised by MultiplicativeLR's lr_lambda(3), computing its lr 3 step(s) into its schedule)",
      "(in ChainedScheduler's schedule 1 (MultiplicativeLR), computing the lr after 3 step(s); the ChainedScheduler "
      "had taken 2 step(s))"]),
    ("SequentialLR", lambda o: md.SequentialLR(o, [md.LinearLR(o, 0.5, total_iters=2),
                                                   md.LambdaLR(o, raising_at(1))], milestones=[3]), 3,
     ["(raised by LambdaLR's lr_lambda(1), computing its lr 1 step(s) into its schedule)",
      "(in SequentialLR's schedule 1 (LambdaLR), computing the lr after 4 step(s); the SequentialLR had taken 3 "
      "step(s))"]),
]


@pytest.mark.parametrize("name, make, steps, notes", RAISING, ids=[r[0] for r in RAISING])
def test_a_users_function_that_raises_in_step_keeps_its_error_with_a_note_and_changes_nothing(
        name: str, make: Make, steps: int, notes: list[str]) -> None:
    o = sgd()
    s = make(o)
    advance(s, steps)
    before = snapshot(s, attributes=False)
    with pytest.raises(KeyError) as info:
        s.step()
    assert type(info.value) is KeyError and info.value.args[0].startswith("no factor for ")  # as raised
    assert getattr(info.value, "__notes__", None) == notes
    # the schedule's count and state, the optimizer's lr, momentum and state (MultiplicativeLR's products kept, a
    # cache, may differ)
    assert states_equal(snapshot(s, attributes=False), before)
    function = "scale_fn" if isinstance(s, md.CyclicLR) else "lr_lambda"
    target = s if not isinstance(s, (md.SequentialLR, md.ChainedScheduler)) else s.schedulers[1]
    setattr(target, function, half)  # a function that works: the schedule goes on from where it was
    assert s.last_epoch == steps and isinstance(s.step(), float) and s.last_epoch == steps + 1


def test_a_function_that_raises_when_a_load_sets_the_lr_refuses_the_load_with_the_note() -> None:
    o = sgd()
    s = md.LambdaLR(o, half)
    advance(s, 2)
    state = s.state_dict()
    fresh = md.LambdaLR(sgd(), raising_at(2))
    with pytest.raises(md.StateDictError, match="nothing was changed") as info:
        fresh.load_state_dict(state)
    cause = info.value.__cause__
    assert isinstance(cause, KeyError) and cause.__notes__ == [
        "(raised by LambdaLR's lr_lambda(2), computing the lr after 2 step(s); the LambdaLR had taken 2 step(s))"]
    assert fresh.last_epoch == 0


# ------------------------------------------------------------------- states and pickles of the earlier code

#: (the schedule, the state the earlier code (plain attributes) saved after 3 steps, its lrs for 2 more steps)
OLD_STATES: list[tuple[str, Make, dict[str, Any], list[float]]] = [
    ("StepLR", lambda o: md.StepLR(o, 5), {"type": "StepLR", "base_lr": 1.0, "last_epoch": 3, "step_size": 2,
                                           "gamma": 0.5}, [0.25, 0.25]),
    ("MultiStepLR", lambda o: md.MultiStepLR(o, [7]),
     {"type": "MultiStepLR", "base_lr": 1.0, "last_epoch": 3, "milestones": [2, 4], "gamma": 0.5}, [0.25, 0.25]),
    ("CosineAnnealingWarmRestarts", lambda o: md.CosineAnnealingWarmRestarts(o, 9),
     {"type": "CosineAnnealingWarmRestarts", "base_lr": 1.0, "last_epoch": 3, "T_0": 2, "T_mult": 2, "eta_min": 0.1},
     [0.55, 0.23180194846605365]),
    ("LinearLR", lambda o: md.LinearLR(o),
     {"type": "LinearLR", "base_lr": 1.0, "last_epoch": 3, "start_factor": 0.5, "end_factor": 1.0, "total_iters": 4},
     [1.0, 1.0]),
    ("PolynomialLR", lambda o: md.PolynomialLR(o),
     {"type": "PolynomialLR", "base_lr": 1.0, "last_epoch": 3, "total_iters": 4, "power": 2.0}, [0.0, 0.0]),
    ("LambdaLR", lambda o: md.LambdaLR(o, decay), {"type": "LambdaLR", "base_lr": 1.0, "last_epoch": 3},
     [0.2, 0.16666666666666666]),
    ("MultiplicativeLR", lambda o: md.MultiplicativeLR(o, half),
     {"type": "MultiplicativeLR", "base_lr": 1.0, "last_epoch": 3, "last_lr": 0.125}, [0.0625, 0.03125]),
    ("CyclicLR", lambda o: md.CyclicLR(o, 0.5, 2.0),
     {"type": "CyclicLR", "base_lr": 0.1, "last_epoch": 3, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 4,
      "mode": "exp_range", "gamma": 0.9, "scale_mode": "iterations", "has_scale_fn": False, "cycle_momentum": True,
      "base_momentum": 0.8, "max_momentum": 0.9}, [0.39524500000000007, 0.23286024999999988]),
    ("CyclicLR scale_fn", lambda o: md.CyclicLR(o, 0.5, 2.0, scale_fn=inverse),
     {"type": "CyclicLR", "base_lr": 0.1, "last_epoch": 3, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 4,
      "mode": "triangular", "gamma": 1.0, "scale_mode": "cycle", "has_scale_fn": True, "cycle_momentum": True,
      "base_momentum": 0.8, "max_momentum": 0.9}, [0.5500000000000002, 0.3249999999999998]),
    ("OneCycleLR", lambda o: md.OneCycleLR(o, 3.0, total_steps=20),
     {"type": "OneCycleLR", "base_lr": 0.04, "last_epoch": 3, "max_lr": 1.0, "total_steps": 10, "pct_start": 0.3,
      "anneal_strategy": "linear", "div_factor": 25.0, "final_div_factor": 10000.0, "three_phase": False,
      "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95}, [0.7142868571428571, 0.5714302857142857]),
    ("SequentialLR", lambda o: md.SequentialLR(o, [md.LinearLR(o), md.ExponentialLR(o, 0.9)], [4]),
     {"type": "SequentialLR", "base_lr": 1.0, "last_epoch": 3, "milestones": [2], "schedulers": [
         {"type": "LinearLR", "base_lr": 1.0, "last_epoch": 0, "start_factor": 0.5, "end_factor": 1.0,
          "total_iters": 2},
         {"type": "ExponentialLR", "base_lr": 1.0, "last_epoch": 0, "gamma": 0.5}]}, [0.25, 0.125]),
    ("ChainedScheduler", lambda o: md.ChainedScheduler([md.ConstantLR(o), md.MultiplicativeLR(o, half)]),
     {"type": "ChainedScheduler", "base_lr": 1.0, "last_epoch": 3, "schedulers": [
         {"type": "ConstantLR", "base_lr": 1.0, "last_epoch": 3, "factor": 0.5, "total_iters": 2},
         {"type": "MultiplicativeLR", "base_lr": 1.0, "last_epoch": 3, "last_lr": 0.125}]}, [0.0625, 0.03125]),
    ("ReduceLROnPlateau", lambda o: md.ReduceLROnPlateau(o),
     {"type": "ReduceLROnPlateau", "base_lr": 1.0, "last_epoch": 3, "mode": "min", "factor": 0.5, "patience": 1,
      "threshold": 0.0001, "threshold_mode": "rel", "cooldown": 1, "min_lr": 0.0, "eps": 1e-08, "monitor": "val_loss",
      "best": 8.0, "num_bad_epochs": 1, "cooldown_counter": 0}, [0.5, 0.5, 0.5]),
]


@pytest.mark.parametrize("name, make, state, lrs", OLD_STATES, ids=[s[0] for s in OLD_STATES])
def test_a_state_saved_by_the_earlier_code_loads_and_goes_on_as_it_did(
        name: str, make: Make, state: dict[str, Any], lrs: list[float]) -> None:
    """States written when the settings were plain attributes (the same keys): a schedule made with other
    settings loads one and steps on exactly as the earlier code did, and saves it back as it was (but for the
    counts of a sequence's schedules, which the earlier code left at 0: they follow the sequence's now, as
    PyTorch's, and this test expected the 0s kept)."""
    s = make(sgd())
    s.load_state_dict(state)
    if name == "SequentialLR":  # milestones [2] after 3 steps: the first ran 1 step of its own, the second 1
        state = {**state, "schedulers": [{**child, "last_epoch": 1} for child in state["schedulers"]]}
    assert s.state_dict() == state
    assert advance(s, (8.0, 8.0, 8.0) if isinstance(s, md.ReduceLROnPlateau) else 2) == lrs
    for key in state.keys() - {"type", "base_lr", "last_epoch", "schedulers", "has_scale_fn", *s.run_state}:
        with pytest.raises((ValueError, TypeError)):  # (the settings it loaded are checked when set, as any)
            setattr(s, key, "bogus")


def old_form(s: md.LRScheduler) -> md.LRScheduler:
    """``s`` (and its schedules) as the earlier code pickled them: every setting, the optimizer, ``base_lr`` and a
    container's ``schedulers`` as plain attributes, not ``_<name>``."""
    state = dict(vars(s))
    state.pop("_mode_auto", None)  # (new: the class's default)
    for private in [k for k in state if k[0] == "_" and isinstance(getattr(type(s), k[1:], None), property)]:
        value = state.pop(private)
        state[private[1:]] = [old_form(x) for x in value] if private == "_schedulers" else value
    old = type(s).__new__(type(s))
    old.__dict__.update(state)
    return old


@pytest.mark.parametrize("make", [m for m in MAKE if m != CHAINED_COSINE])
def test_a_schedule_pickled_with_plain_settings_keeps_them_and_checks_them(make: str) -> None:
    fresh, twin = MAKE[make](sgd()), MAKE[make](sgd())
    for s in (fresh, twin):
        advance(s, VALUES if "Plateau" in make else 2)
    old = old_form(fresh)
    assert "_base_lr" not in vars(old) and "base_lr" in vars(old)
    restored = pickle.loads(pickle.dumps(old))
    assert repr(restored) == repr(twin) and restored.state_dict() == twin.state_dict()
    for name in (*restored.settings, *restored.functions, "base_lr", "optimizer"):
        assert name not in vars(restored)
    with pytest.raises(ValueError, match=f"^{type(twin).__name__}: base_lr "):
        restored.base_lr = -1.0  # checked
    after = PLATEAU if "Plateau" in make else 2
    assert advance(restored, after) == advance(twin, after)


@pytest.mark.parametrize("make", [lambda o: md.LambdaLR(o, decay), lambda o: md.MultiplicativeLR(o, half),
                                  lambda o: md.CyclicLR(o, 0.1, 1.0, scale_fn=inverse),
                                  lambda o: md.ChainedScheduler([md.MultiplicativeLR(o, half)])])
def test_a_state_holds_no_function(make: Make) -> None:
    """A checkpoint never holds a function (the user's lr_lambda or scale_fn): make the schedule with it, then
    load."""
    s = make(sgd())
    s.step()

    def values(x: Any) -> list[Any]:
        if isinstance(x, dict):
            return [v for item in x.values() for v in values(item)]
        if isinstance(x, list):
            return [v for item in x for v in values(item)]
        return [x]

    state = s.state_dict()
    assert not any(callable(v) for v in values(state))
    assert not {"lr_lambda", "scale_fn"} & {k for d in [state, *state.get("schedulers", [])] for k in d}


# -------------------------------------------------------------------------------------------- PyTorch


def test_settings_changed_mid_run_give_pytorchs_lrs_where_pytorch_uses_them() -> None:
    """LambdaLR, MultiplicativeLR and ReduceLROnPlateau read their settings at every step in PyTorch too: a
    change mid-run gives its lrs (a closed form such as StepLR's differs by design: PyTorch's step builds on the
    lr it finds, minidl's computes the closed form from lr0 with the new value)."""
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler

    def pair() -> tuple[Any, md.SGD]:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0), sgd()

    for kind, first in ((sched.LambdaLR, decay), (sched.MultiplicativeLR, half)):  # lr_lambda swapped at step 3
        t, m = pair()
        ts, ms = kind(t, first), getattr(md, kind.__name__)(m, first)
        got, want = [], []
        for e in range(6):
            if e == 3:
                ts.lr_lambdas[0] = ms.lr_lambda = tenth
            t.step()
            ts.step()
            want.append(t.param_groups[0]["lr"])
            got.append(ms.step())
        assert got == pytest.approx(want, rel=1e-14), kind.__name__

    t, m = pair()
    ts = sched.ReduceLROnPlateau(t, factor=0.5, patience=3, cooldown=2)
    ms = md.ReduceLROnPlateau(m, mode="min", factor=0.5, patience=3, cooldown=2)
    values = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    # cooldown lowered during a cooldown (its counter at 2: both run it to its end; this test changed cooldown
    # when the counter was 0, where lowering it changes nothing, and passed while minidl cut the running one)
    changes = {3: {"patience": 1}, 4: {"cooldown": 0}, 6: {"factor": 0.1}, 9: {"min_lr": 0.004, "threshold": 0.5}}
    got, want = [], []
    for e, v in enumerate(values):
        if e == 4:
            assert ms.cooldown_counter == ts.cooldown_counter == 2
        for key, value in changes.get(e, {}).items():
            setattr(ms, key, value)
            setattr(ts, "min_lrs" if key == "min_lr" else key, [value] if key == "min_lr" else value)  # (per group)
        t.step()
        ts.step(v)
        want.append(t.param_groups[0]["lr"])
        got.append(ms.step(v))
    assert got == pytest.approx(want, rel=1e-14)
