"""Learning-rate schedules: they set ``optimizer.lr`` once per epoch, as PyTorch's ``lr_scheduler``.

Call :meth:`LRScheduler.step` after each epoch (``fit(..., scheduler=...)`` does it for you).  With
``e`` the number of completed epochs (``last_epoch``) and ``lr0`` the optimizer's lr when the
schedule was made, the lr for the next epoch is (closed forms, no drift from repeated products):

- :class:`StepLR`:            ``lr0 * gamma ** (e // step_size)``
- :class:`MultiStepLR`:       ``lr0 * gamma ** (number of milestones <= e)``
- :class:`ExponentialLR`:     ``lr0 * gamma ** e``
- :class:`CosineAnnealingLR`: ``eta_min + (lr0 - eta_min) * (1 + cos(pi * e / T_max)) / 2``
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import StateDictError
from .optim import Optimizer
from .validation import is_integer, is_number

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "MultiStepLR", "StepLR"]


class LRScheduler:
    """Base class: subclasses implement :meth:`lr_at` (the lr after ``epoch`` completed epochs)."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at(epoch)")

    def get_last_lr(self) -> float:
        """The lr the optimizer holds now."""
        return self.optimizer.lr

    def step(self) -> float:
        """Count one more completed epoch and set the optimizer's lr for the next one; returns it.
        (If the optimizer refuses the lr, the count is not advanced.)"""
        self.last_epoch += 1
        try:
            lr = self.lr_at(self.last_epoch)
            self.optimizer.lr = lr
        except BaseException:
            self.last_epoch -= 1
            raise
        return lr

    def state_dict(self) -> dict[str, Any]:
        """``{"type", "base_lr", "last_epoch"}``: enough to resume the schedule where it was."""
        return {"type": type(self).__name__, "base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        name = type(self).__name__
        problems = [f"missing key '{k}'" for k in ("type", "base_lr", "last_epoch") if k not in state]
        if not problems and state["type"] != name:
            problems.append(f"state is for {state['type']!r}, not {name!r}")
        if not problems:
            base_lr, last_epoch = state["base_lr"], state["last_epoch"]
            if not (is_number(base_lr) and math.isfinite(base_lr) and base_lr >= 0):
                problems.append(f"'base_lr': expected a finite number >= 0, got {base_lr!r}")
            if not (is_integer(last_epoch) and last_epoch >= 0):
                problems.append(f"'last_epoch': expected an int >= 0, got {last_epoch!r}")
        if problems:
            raise StateDictError(f"{name}.load_state_dict refused the state (nothing was changed): "
                                 + "; ".join(problems))
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra}{', ' if extra else ''}last_epoch={self.last_epoch})"


def _check_positive_int(who: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return value


def _check_gamma(who: str, gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"{who}: gamma must be a number in (0, 1], got {gamma!r}")
    return float(gamma)


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: ``lr0 * gamma ** (e // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = _check_positive_int("StepLR", "step_size", step_size)
        self.gamma = _check_gamma("StepLR", gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def extra_repr(self) -> str:
        return f"step_size={self.step_size}, gamma={self.gamma}"


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch: ``lr0 * gamma ** #{m <= e}``."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.milestones = sorted(_check_positive_int("MultiStepLR", "a milestone", m) for m in milestones)
        self.gamma = _check_gamma("MultiStepLR", gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)

    def extra_repr(self) -> str:
        return f"milestones={self.milestones}, gamma={self.gamma}"


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``lr0 * gamma ** e``."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = _check_gamma("ExponentialLR", gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``lr0`` down to ``eta_min`` over ``T_max`` epochs (SGDR without restarts)::

        lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * e / T_max)) / 2

    This is PyTorch's closed form; past ``T_max`` it climbs back up along the same cosine.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        if isinstance(eta_min, bool) or not isinstance(eta_min, (int, float)) or not eta_min >= 0:
            raise ValueError(f"CosineAnnealingLR: eta_min must be a number >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)

    def lr_at(self, epoch: int) -> float:
        cos = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cos

    def extra_repr(self) -> str:
        return f"T_max={self.T_max}, eta_min={self.eta_min}"
