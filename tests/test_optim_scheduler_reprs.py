"""Optimizer and schedule reprs read as calls: an optimizer's hyper-parameters under its constructor's names
(``betas=(0.9, 0.999)``, not the stored ``beta1``/``beta2``), a schedule's settings in the parentheses and its
progress after them (``StepLR(step_size=3, gamma=0.5) at epoch 0``), no keyword a constructor refuses."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md


def params() -> list[md.Parameter]:
    return [md.Parameter(np.zeros(3))]


OPTIMIZERS: list[tuple[Callable[[], md.Optimizer], str]] = [
    (lambda: md.SGD(params(), lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-4, maximize=True),
     "SGD(1 parameter, lr=0.1, momentum=0.9, weight_decay=0.0001, nesterov=False, dampening=0.1, maximize=True, "
     "decay_bias=True)"),
    (lambda: md.Adam(params(), lr=0.01, betas=(0.8, 0.9), eps=1e-6, amsgrad=True),
     "Adam(1 parameter, lr=0.01, betas=(0.8, 0.9), eps=1e-06, weight_decay=0.0, amsgrad=True, maximize=False, "
     "decay_bias=True)"),
    (lambda: md.AdamW(params(), betas=(0.5, 0.6)),
     "AdamW(1 parameter, lr=0.001, betas=(0.5, 0.6), eps=1e-08, weight_decay=0.01, amsgrad=False, maximize=False, "
     "decay_bias=True)"),
    (lambda: md.Adamax(params(), betas=(0.8, 0.9)),
     "Adamax(1 parameter, lr=0.002, betas=(0.8, 0.9), eps=1e-08, weight_decay=0.0, maximize=False, decay_bias=True)"),
    (lambda: md.NAdam(params(), momentum_decay=0.01, decoupled_weight_decay=True),
     "NAdam(1 parameter, lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, momentum_decay=0.01, "
     "decoupled_weight_decay=True, maximize=False, decay_bias=True)"),
    (lambda: md.RAdam(params(), betas=(0.7, 0.8)),
     "RAdam(1 parameter, lr=0.001, betas=(0.7, 0.8), eps=1e-08, weight_decay=0.0, decoupled_weight_decay=False, "
     "maximize=False, decay_bias=True)"),
    (lambda: md.RMSprop(params(), alpha=0.9, momentum=0.5, centered=True),
     "RMSprop(1 parameter, lr=0.01, alpha=0.9, eps=1e-08, weight_decay=0.0, momentum=0.5, centered=True, "
     "maximize=False, decay_bias=True)"),
    (lambda: md.Adagrad(params(), lr_decay=0.1),
     "Adagrad(1 parameter, lr=0.01, lr_decay=0.1, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, "
     "maximize=False, decay_bias=True)"),
    (lambda: md.Adadelta(params(), rho=0.8),
     "Adadelta(1 parameter, lr=1.0, rho=0.8, eps=1e-06, weight_decay=0.0, maximize=False, decay_bias=True)"),
    (lambda: md.Rprop(params(), lr=0.1, etas=(0.4, 1.5), step_sizes=(1e-5, 10.0), maximize=True),
     "Rprop(1 parameter, lr=0.1, etas=(0.4, 1.5), step_sizes=(1e-05, 10.0), maximize=True)"),
]


@pytest.mark.parametrize(("make", "expected"), OPTIMIZERS, ids=[e.split("(")[0] for _, e in OPTIMIZERS])
def test_optimizer_repr_uses_the_constructors_names(make: Callable[[], md.Optimizer], expected: str) -> None:
    opt = make()
    assert repr(opt) == expected
    # every keyword shown is one the constructor takes, and the repr, with the parameters put back, rebuilds
    # the same hyper-parameters
    taken = set(inspect.signature(type(opt)).parameters)
    shown = re.findall(r"(\w+)=", repr(opt))
    assert set(shown) <= taken, set(shown) - taken
    call = repr(opt).replace("1 parameter", "params()", 1)
    rebuilt = eval("md." + call, {"md": md, "params": params})
    assert rebuilt.hyper == opt.hyper


def test_optimizer_repr_follows_changed_hyper_parameters() -> None:
    opt = md.Adam(params())
    opt.hyper["beta1"] = 0.5  # (as a schedule that cycles the momentum sets it)
    opt.lr = 0.25
    assert repr(opt).startswith("Adam(1 parameter, lr=0.25, betas=(0.5, 0.999), eps=1e-08,")


def sgd() -> md.SGD:
    return md.SGD(params(), lr=0.1, momentum=0.9)


def warmup(epoch: int) -> float:
    return min(1.0, (epoch + 1) / 3)


SCHEDULES: list[tuple[Callable[[], md.LRScheduler], str]] = [
    (lambda: md.StepLR(sgd(), 3, gamma=0.5), "StepLR(step_size=3, gamma=0.5) at epoch 0"),
    (lambda: md.MultiStepLR(sgd(), [2, 5], gamma=0.5), "MultiStepLR(milestones=[2, 5], gamma=0.5) at epoch 0"),
    (lambda: md.ConstantLR(sgd(), 0.5, 3), "ConstantLR(factor=0.5, total_iters=3) at epoch 0"),
    (lambda: md.LinearLR(sgd(), 0.1, 0.9, 4), "LinearLR(start_factor=0.1, end_factor=0.9, total_iters=4) at epoch 0"),
    (lambda: md.ExponentialLR(sgd(), 0.9), "ExponentialLR(gamma=0.9) at epoch 0"),
    (lambda: md.PolynomialLR(sgd(), 10, 2.0), "PolynomialLR(total_iters=10, power=2.0) at epoch 0"),
    (lambda: md.CosineAnnealingLR(sgd(), 10, 0.01), "CosineAnnealingLR(T_max=10, eta_min=0.01) at epoch 0"),
    (lambda: md.CosineAnnealingWarmRestarts(sgd(), 5, 2, 0.01),
     "CosineAnnealingWarmRestarts(T_0=5, T_mult=2, eta_min=0.01) at epoch 0"),
    (lambda: md.CyclicLR(sgd(), 0.01, 0.1, 10, 5, "exp_range", 0.9, cycle_momentum=False),
     "CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=10, step_size_down=5, mode='exp_range', gamma=0.9, "
     "cycle_momentum=False) at epoch 0"),
    (lambda: md.OneCycleLR(sgd(), 0.1, total_steps=100, pct_start=0.2, anneal_strategy="linear"),
     "OneCycleLR(max_lr=0.1, total_steps=100, pct_start=0.2, anneal_strategy='linear', three_phase=False, "
     "div_factor=25.0, final_div_factor=10000.0, base_momentum=0.85, max_momentum=0.95) at epoch 0"),
    (lambda: md.ReduceLROnPlateau(sgd(), "max", 0.5, 3, 1e-3, "abs", 2, 1e-5, 1e-9, monitor="val_acc"),
     "ReduceLROnPlateau(mode='max', factor=0.5, patience=3, threshold=0.001, threshold_mode='abs', cooldown=2, "
     "min_lr=1e-05, eps=1e-09, monitor='val_acc') at epoch 0 (best=-inf, 0 bad epochs, 0 cooldown epochs left)"),
    (lambda: md.LambdaLR(sgd(), warmup), "LambdaLR(lr_lambda=warmup) at epoch 0"),
]


@pytest.mark.parametrize(("make", "expected"), SCHEDULES, ids=[e.split("(")[0] for _, e in SCHEDULES])
def test_schedule_repr_is_a_call_then_its_progress(make: Callable[[], md.LRScheduler], expected: str) -> None:
    schedule = make()
    assert repr(schedule) == expected
    call, progress = repr(schedule).rsplit(") at epoch ", 1)
    assert "last_epoch" not in repr(schedule) and progress.split()[0] == "0"
    namespace: dict[str, Any] = {"md": md, "sgd": sgd, "warmup": warmup, "inf": math.inf}
    rebuilt = eval(f"md.{call.replace('(', '(sgd(), ', 1)})", namespace)  # the call is one the constructor takes
    assert repr(rebuilt) == repr(schedule)


def test_schedule_repr_counts_the_steps() -> None:
    schedule = md.StepLR(sgd(), 3, gamma=0.5)
    for _ in range(4):
        schedule.step()
    assert repr(schedule) == "StepLR(step_size=3, gamma=0.5) at epoch 4"
    restarts = md.CosineAnnealingWarmRestarts(sgd(), 5)
    restarts.step(2.5)  # (a fractional epoch, as PyTorch's per-batch use passes)
    assert repr(restarts) == "CosineAnnealingWarmRestarts(T_0=5, T_mult=1, eta_min=0.0) at epoch 2.5"


def test_plateau_repr_shows_its_run_after_the_call() -> None:
    schedule = md.ReduceLROnPlateau(sgd(), "min", patience=1, cooldown=2, monitor="loss")
    schedule.step(1.0)
    schedule.step(2.0)
    assert repr(schedule).endswith("monitor='loss') at epoch 2 (best=1.0, 1 bad epoch, 0 cooldown epochs left)")
    schedule.step(3.0)  # the second bad epoch: the lr falls and the cooldown starts
    assert repr(schedule).endswith("at epoch 3 (best=1.0, 0 bad epochs, 2 cooldown epochs left)")
