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


#: The largest epoch count a state may hold: floats count whole numbers exactly up to here.
_MAX_EPOCH = 2**53


class LRScheduler:
    """Base class: subclasses implement :meth:`lr_at` (the lr after ``epoch`` completed epochs).

    A subclass whose constructor takes arguments that shape the schedule names them in
    :attr:`settings` and checks them in :meth:`_check_setting`: :meth:`state_dict` saves them and
    :meth:`load_state_dict` restores them, as PyTorch's schedulers do.  (A subclass may instead
    override both methods; keys the base class does not know are then left to it.)
    """

    #: The constructor's arguments that shape the schedule (saved and restored with the state).
    settings: tuple[str, ...] = ()

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

    def _check_setting(self, name: str, value: Any) -> Any:
        """``value`` for the setting ``name``, checked and stored as the constructor does (a
        ``ValueError`` naming the scheduler otherwise)."""
        raise NotImplementedError(f"{type(self).__name__} lists settings but does not check them")

    def state_dict(self) -> dict[str, Any]:
        """``{"type", "base_lr", "last_epoch", <settings>}``: enough to resume the schedule where it was."""
        state = {"type": type(self).__name__, "base_lr": self.base_lr, "last_epoch": self.last_epoch}
        for key in self.settings:
            value = getattr(self, key)
            state[key] = list(value) if isinstance(value, list) else value
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the count, ``base_lr`` and the settings; refuses (listing every problem, changing
        nothing) another scheduler's state, bad values and unknown keys.  A state without the
        settings (saved before they were) keeps this scheduler's."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict expects a mapping, got {type(state).__name__}")
        problems = [f"missing key '{k}'" for k in ("type", "base_lr", "last_epoch") if k not in state]
        if "type" in state and (not isinstance(state["type"], str) or state["type"] != name):
            problems.append(f"state is for {state['type']!r}, not {name!r}")  # the rest would mislead
        settings: dict[str, Any] = {}
        if not problems:
            # a subclass with its own state_dict may save more: its load_state_dict reads it
            own_keys = type(self).state_dict is LRScheduler.state_dict
            unknown = sorted(map(str, set(state) - {"type", "base_lr", "last_epoch", *self.settings}))
            if unknown and own_keys:
                problems.append(f"unexpected keys {unknown} ({name} keeps type, base_lr, last_epoch"
                                f"{''.join(', ' + key for key in self.settings)})")
            base_lr, last_epoch = state["base_lr"], state["last_epoch"]
            if not (is_number(base_lr) and _finite(base_lr) and base_lr >= 0):
                problems.append(f"'base_lr': expected a finite number >= 0, got {base_lr!r}")
            if not (is_integer(last_epoch) and 0 <= last_epoch <= _MAX_EPOCH):
                problems.append(f"'last_epoch': expected an int >= 0 (at most 2**53), got {last_epoch!r}")
            for key in self.settings:
                if key in state:
                    try:
                        settings[key] = self._check_setting(key, state[key])
                    except (TypeError, ValueError) as error:
                        problems.append(f"'{key}': {error}")
        if problems:
            raise StateDictError(f"{name}.load_state_dict refused the state (nothing was changed): "
                                 + "; ".join(problems))
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        for key, value in settings.items():
            setattr(self, key, value)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra}{', ' if extra else ''}last_epoch={self.last_epoch})"


def _finite(number: Any) -> bool:
    """Whether a number (Python or NumPy) is finite; an int beyond float range is not."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _check_positive_int(who: str, name: str, value: Any) -> int:
    """A Python or NumPy int in [1, 2**53], as a Python int."""
    if not (is_integer(value) and 1 <= value <= _MAX_EPOCH):
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_gamma(who: str, gamma: Any) -> float:
    if not (is_number(gamma) and 0 < gamma <= 1):
        raise ValueError(f"{who}: gamma must be a number in (0, 1], got {gamma!r}")
    return float(gamma)


def _check_milestones(who: str, milestones: Any) -> list[int]:
    if isinstance(milestones, (str, bytes, Mapping)) or not isinstance(milestones, Iterable):
        raise ValueError(f"{who}: milestones must be a sequence of positive ints, got {milestones!r}")
    return sorted(_check_positive_int(who, "a milestone", m) for m in milestones)


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: ``lr0 * gamma ** (e // step_size)``."""

    settings = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size: int = self._check_setting("step_size", step_size)
        self.gamma: float = self._check_setting("gamma", gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_positive_int("StepLR", name, value) if name == "step_size" else _check_gamma("StepLR", value)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def extra_repr(self) -> str:
        return f"step_size={self.step_size}, gamma={self.gamma}"


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch: ``lr0 * gamma ** #{m <= e}``."""

    settings = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.milestones: list[int] = self._check_setting("milestones", milestones)
        self.gamma: float = self._check_setting("gamma", gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "milestones":
            return _check_milestones("MultiStepLR", value)
        return _check_gamma("MultiStepLR", value)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)

    def extra_repr(self) -> str:
        return f"milestones={self.milestones}, gamma={self.gamma}"


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``lr0 * gamma ** e``."""

    settings = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma: float = self._check_setting("gamma", gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_gamma("ExponentialLR", value)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``lr0`` down to ``eta_min`` over ``T_max`` epochs (SGDR without restarts)::

        lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * e / T_max)) / 2

    This is PyTorch's closed form; past ``T_max`` it climbs back up along the same cosine.
    """

    settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max: int = self._check_setting("T_max", T_max)
        self.eta_min: float = self._check_setting("eta_min", eta_min)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "T_max":
            return _check_positive_int("CosineAnnealingLR", "T_max", value)
        if not (is_number(value) and _finite(value) and value >= 0):
            raise ValueError(f"CosineAnnealingLR: eta_min must be a finite number >= 0, got {value!r}")
        return float(value)

    def lr_at(self, epoch: int) -> float:
        cos = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cos

    def extra_repr(self) -> str:
        return f"T_max={self.T_max}, eta_min={self.eta_min}"
