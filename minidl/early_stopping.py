"""``EarlyStopping``: end :func:`~minidl.fit` when a monitored figure stops improving, as Keras's callback."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import StateDictError
from .init import switch_setting
from .layer import Layer
from .validation import (
    checked_setting,
    finite_non_negative,
    is_finite,
    is_integer,
    is_number,
    plain_native,
    settings_renamed,
)

__all__ = ["EarlyStopping"]

#: The largest epoch count a state may hold (a float64 counts every int up to it).
_MAX_EPOCH = 2**53
#: The keys of :meth:`EarlyStopping.state_dict`.
_SETTINGS = ("monitor", "mode", "patience", "min_delta", "restore_best_weights")
_RUN_STATE = ("epoch", "best", "best_epoch", "wait", "stopped_epoch", "restored", "best_state")


def _monitor(who: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{who}: {name} must be the name of a history key, e.g. 'val_loss', got {value!r}")
    return value


def _patience(who: str, name: str, value: Any) -> int:
    if not is_integer(value) or value < 0:
        raise ValueError(f"{who}: {name} must be an int >= 0, got {value!r}")
    return int(value)


def _mode(who: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ("auto", "min", "max"):
        raise ValueError(f"{who}: {name} must be 'auto', 'min' or 'max', got {value!r}")
    return value


def auto_mode(who: str, monitor: Any) -> str:
    """``mode="auto"`` at construction, as Keras 3: the direction of a figure whose direction is known by its name
    (the loss, a name ending in ``loss``, the built-in metrics: see :func:`minidl.training.monitor_direction`);
    ``"auto"`` for any other, left for ``fit`` to decide from its metrics (a :class:`~minidl.training.Metric`
    declaring its ``direction``), which refuses a monitor still unknown there (:func:`unknown_direction`): a guess
    could stop training as it improves, and restore its worst epoch.  ``"min"`` for a monitor that is no str or
    empty (its own check refuses it)."""
    from .training import monitor_direction  # (training imports this module)

    if not isinstance(monitor, str) or not monitor:
        return "min"
    return monitor_direction(monitor) or "auto"


def unknown_direction(who: str, monitor: str) -> str:
    """The message of ``fit``'s ValueError for a ``mode="auto"`` whose ``monitor`` has no known direction."""
    from .training import _DIRECTIONS  # (training imports this module)

    known = ", ".join(repr(name) for name in _DIRECTIONS)
    return (f"{who}: mode='auto' cannot tell whether {monitor!r} improves by growing or by shrinking: it knows the "
            f"loss, names ending in 'loss' and the built-in metrics ({known}, and their 'val_' forms), and a Metric's "
            "declared direction (direction = 'max' or 'min' on the Metric passed in metrics); pass mode='max' for a "
            "figure that grows as it improves (an F1 score, an AUC, a precision) or mode='min' for one that shrinks "
            "(an error)")


def _count(value: Any) -> str | None:
    """What is wrong with ``value`` as an epoch count of a state, or None."""
    if not (is_integer(value) and 0 <= value <= _MAX_EPOCH):
        return f"expected an int >= 0 (at most 2**53), got {value!r}"
    return None


class EarlyStopping:
    """Stop training after ``patience`` epochs without improvement of ``monitor``.

    Pass it to ``fit(..., early_stopping=EarlyStopping(...))``; ``fit`` calls :meth:`start` once its
    first batch is accepted, or at once with ``epochs=0`` (a call refused before that leaves this
    object as it was), and
    :meth:`update` after each epoch (after the scheduler's step).

    Args:
        monitor: a key of the history: ``"val_loss"`` (the default; needs ``validation_data`` or ``validation_split``),
            ``"loss"``, a metric such as ``"accuracy"`` or ``"val_accuracy"``.
        patience: stop after this many epochs in a row without improvement (0 and 1 both stop at
            the first epoch that does not improve, as in Keras).
        min_delta: the smallest change that counts as an improvement (>= 0).
        mode: ``"min"``, ``"max"`` or ``"auto"``: as Keras 3, the direction of the loss and of any name ending in
            ``loss`` (``"min"``) or of a built-in metric (``"max"`` for ``"accuracy"``/``"acc"``, ``"min"`` for
            ``"mse"``, ``"mae"``...), with or without ``val_``; for any other monitor, the ``direction`` its
            :class:`~minidl.training.Metric` declares, which only ``fit`` knows: ``mode`` reads ``"auto"`` until a
            fit decides it, and a fit whose metrics do not tell is refused (a ``ValueError`` asking for ``"min"`` or
            ``"max"``).
        restore_best_weights: when training ends (stopped early or not), load the parameters and
            buffers of the best epoch into the model.  Off by default, as in Keras.  The optimizer's
            state is not restored.

    The five settings are checked when set, after construction too, with the constructor's messages (a
    refused value changes nothing); ``mode`` reads ``"min"`` or ``"max"`` (``"auto"`` is decided from the
    ``monitor``, again when that is set; ``"auto"`` while it waits for a fit's metrics).

    A NaN value never counts as an improvement.  After ``fit``: :attr:`best` (the best value),
    :attr:`best_epoch`, :attr:`stopped_epoch` (the epoch after which training stopped, 0 if it ran
    to the end), :attr:`restored` (whether the best weights were loaded), and with
    ``restore_best_weights`` :attr:`best_state`, the best epoch's ``model.state_dict()``, and once they
    are restored :attr:`last_state`, the last epoch's (what a resumed run goes on from).  When ``fit``
    raises (a NaN loss, an interrupt) nothing is restored, as in Keras: the model keeps the weights of
    its last good batch, and ``model.load_state_dict(es.best_state)`` goes back to the best epoch.

    Each ``fit`` starts it afresh (as Keras's callback at the start of training).  To resume a run
    saved between two fits, :meth:`state_dict` goes into the checkpoint and :meth:`load_state_dict`
    into a new ``EarlyStopping``: the next ``fit`` then continues that run (its best, its count of epochs
    without improvement, its epoch numbers) instead of starting afresh; see docs/checkpoints.md.
    """

    patience = checked_setting("patience", _patience, "Epochs in a row without improvement before stopping, an int "
                                                      ">= 0; checked when set.")
    min_delta = checked_setting("min_delta", finite_non_negative, "The smallest change that counts as an "
                                "improvement, a finite number >= 0; checked when set.")
    restore_best_weights = checked_setting(
        "restore_best_weights", switch_setting, "Whether training ends with the best epoch's weights; a bool, checked "
                                         "when set.")

    def __init__(self, monitor: str = "val_loss", *, patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        self.monitor = monitor  # (checked by the settings: the messages of a later assignment)
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode  # (after monitor: "auto" reads it)
        self.restore_best_weights = restore_best_weights
        self._resume = False
        self._epoch = 0  # the last epoch update saw (in the run's numbering)
        self._offset = 0  # added to fit's epoch numbers: the epochs of the run before a resumed fit
        self.start()

    #: Whether ``mode`` was given as ``"auto"`` (it then follows ``monitor``, and a fit's metrics).
    _mode_auto = False
    best: float
    best_epoch: int

    @property
    def monitor(self) -> str:
        """The history key watched, e.g. ``'val_loss'``; checked when set (with ``mode="auto"``, the direction is
        decided again from it)."""
        return self._monitor

    @monitor.setter
    def monitor(self, value: Any) -> None:
        value = _monitor(type(self).__name__, "monitor", value)
        changed = value != getattr(self, "_monitor", None)
        self._monitor = value
        if self._mode_auto and changed:
            self._redecide()

    def _redecide(self) -> None:
        """An auto ``mode`` from the ``monitor`` again; a direction only a fit can tell (``"auto"``) keeps the
        one decided for a run that has a best epoch (its ``best`` is of that direction)."""
        mode = auto_mode(type(self).__name__, self._monitor)
        if mode != "auto" or not getattr(self, "best_epoch", 0) or getattr(self, "_mode", "auto") == "auto":
            self._mode = mode

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: whether a smaller or a larger value is an improvement.  Set ``"auto"``,
        ``"min"`` or ``"max"`` (checked; ``"auto"``: the direction of the ``monitor``, see :func:`auto_mode`,
        decided again when it is set; it reads ``"auto"`` while only a fit's metrics can tell)."""
        return self._mode

    @mode.setter
    def mode(self, value: Any) -> None:
        value = _mode(type(self).__name__, "mode", value)
        self._mode_auto = value == "auto"
        if value == "auto":
            self._redecide()
        else:
            self._mode = value

    def _decide(self, direction: str) -> None:
        """``fit``'s decision of an auto ``mode`` from its metrics (a run with no best yet starts from the worst of
        that direction)."""
        if direction != self._mode:
            self._mode = direction
            if self.best_epoch == 0:
                self.best = math.inf if direction == "min" else -math.inf

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An object pickled when the settings were plain attributes loads with them where they are read now."""
        self.__dict__.update(settings_renamed(type(self), state))
        self.__dict__.setdefault("_resume", False)
        seen = max(self.__dict__.get("best_epoch", 0), self.__dict__.get("stopped_epoch", 0))
        self.__dict__.setdefault("_epoch", seen)
        self.__dict__.setdefault("_offset", 0)
        self.__dict__.setdefault("last_state", None)
        self.__dict__.setdefault("_mode_auto", False)

    def start(self, initial_epoch: int = 0) -> None:
        """Forget any earlier training: the next :meth:`update` is the first epoch's.  After
        :meth:`load_state_dict`, and until the next :meth:`update`, it keeps the loaded run instead: the
        next update continues it, its epochs numbered after the loaded ones.  ``initial_epoch``: that of
        ``fit``, whose epoch numbers then count the epochs before it (``fit`` refuses one that is not the
        loaded run's last epoch)."""
        self.last_state: dict[str, np.ndarray] | None = None
        if self._resume:
            self._offset = self._epoch - initial_epoch
            if not self.loaded_stopped_run:  # (a run that had stopped stays stopped: fit trains no epoch)
                self.stopped_epoch = 0
            self.restored = False
            return
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.restored = False
        self._wait = 0
        self._epoch = initial_epoch
        self._offset = 0
        self.best_state: dict[str, np.ndarray] | None = None

    @property
    def loaded_stopped_run(self) -> bool:
        """Whether this goes on from a loaded run (:meth:`load_state_dict`) that had stopped at its last epoch: a
        checkpoint saved in the epoch it stopped.  ``fit`` then trains no epoch and ends as that run ended."""
        return self._resume and 0 < self.stopped_epoch == self._epoch

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, values: Mapping[str, float], model: Layer) -> bool:
        """Record epoch ``epoch``'s ``values`` (its history entries); True when training should stop."""
        if self.monitor not in values:
            raise KeyError(f"EarlyStopping: monitor {self.monitor!r} is not in the history; it has "
                           f"{sorted(values)}")
        if self._mode == "auto":  # (fit decides it first)
            raise ValueError(unknown_direction(type(self).__name__, self.monitor))
        value = float(values[self.monitor])
        epoch = self._offset + epoch
        self._resume = False
        self._epoch = epoch
        if self._improved(value):  # (False for NaN)
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = model.state_dict()  # copies
            return False
        self._wait += 1
        if self._wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            return True
        return False

    def finish(self, model: Layer) -> None:
        """At the end of training: load the best epoch's weights if asked to and one was recorded; the
        weights they replace (the last epoch's ``model.state_dict()``) are kept in :attr:`last_state`."""
        if self.restore_best_weights and self.best_state is not None:
            last = model.state_dict()  # (copies) what a run resumed later must go on from
            model.load_state_dict(self.best_state)
            self.restored, self.last_state = True, last

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """What :func:`minidl.save` can store to resume the run: ``{"type": "EarlyStopping", "monitor",
        "mode", "patience", "min_delta", "restore_best_weights", "epoch" (the last epoch seen), "best",
        "best_epoch", "wait" (epochs since the best), "stopped_epoch", "restored", "best_state"}``;
        ``best_state`` is None or a copy of the best epoch's ``model.state_dict()`` (arrays)."""
        best_state = None if self.best_state is None else {k: np.array(v) for k, v in self.best_state.items()}
        return {"type": type(self).__name__, "monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "min_delta": self.min_delta, "restore_best_weights": self.restore_best_weights,
                "epoch": self._epoch, "best": self.best, "best_epoch": self.best_epoch, "wait": self._wait,
                "stopped_epoch": self.stopped_epoch, "restored": self.restored, "best_state": best_state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take the settings and the run of ``state`` (from :meth:`state_dict`, maybe through
        :func:`minidl.save` and :func:`minidl.load`); the next ``fit`` (the next :meth:`start`) then
        continues that run rather than starting afresh.  Refuses, with one
        :class:`~minidl.errors.StateDictError` listing every problem and changing nothing, another
        object's state, missing or unknown keys, settings the constructor would refuse, and a run that
        cannot be (a NaN best, a best epoch after the last epoch, a ``best_state`` that is not arrays
        by str keys, or one without ``restore_best_weights``).  ``best_state`` is copied."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{who} expects a mapping, got {type(state).__name__}")
        problems: list[str] = []
        if "type" in state and state["type"] != type(self).__name__:
            problems.append(f"state is for {state['type']!r}, not {type(self).__name__!r}")
        known = ("type", *_SETTINGS, *_RUN_STATE)
        problems += [f"missing key '{key}'" for key in known if key not in state]
        unknown = [key for key in state if key not in known]
        if unknown:
            problems.append(f"unexpected keys {sorted(map(repr, unknown))} ({type(self).__name__} keeps "
                            f"{', '.join(known)})")
        if problems:
            raise StateDictError(f"{who} refused the state (nothing was changed): " + "; ".join(problems))
        name = type(self).__name__
        kept: dict[str, Any] = {}
        for key, check in (("monitor", _monitor), ("patience", _patience), ("min_delta", finite_non_negative),
                           ("restore_best_weights", switch_setting)):
            try:
                kept[key] = check(name, key, state[key])
            except (TypeError, ValueError) as error:
                problems.append(f"'{key}': {error}")
        if not isinstance(state["mode"], str) or state["mode"] not in ("min", "max", "auto"):  # as the getter gives it
            problems.append(f"'mode': expected 'min', 'max' or 'auto' (not yet decided), got {state['mode']!r}")
        for key in ("epoch", "best_epoch", "wait", "stopped_epoch"):
            problem = _count(state[key])
            if problem:
                problems.append(f"'{key}': {problem}")
        best = state["best"]
        if not (is_number(best) and (is_finite(best) or best in (math.inf, -math.inf))):
            problems.append(f"'best': expected a float, finite or +-inf (not NaN: NaN never improves), got {best!r}")
        if not isinstance(state["restored"], (bool, np.bool_)):
            problems.append(f"'restored': expected True or False, got {state['restored']!r}")
        if not problems:  # the run against itself and the settings
            epoch, best_epoch = state["epoch"], state["best_epoch"]
            if best_epoch > epoch or state["stopped_epoch"] > epoch:
                problems.append(f"'best_epoch' {best_epoch} and 'stopped_epoch' {state['stopped_epoch']} cannot "
                                f"come after the last epoch seen, 'epoch' {epoch}")
            if state["mode"] == "auto" and best_epoch != 0:
                problems.append(f"'mode': 'auto' (not yet decided) for a run with a best epoch ({best_epoch}): "
                                "expected 'min' or 'max'")
            initial = math.inf if state["mode"] == "min" else -math.inf
            if best_epoch == 0 and best != initial and not (state["mode"] == "auto" and best == math.inf):
                problems.append(f"'best' is {best!r} with no best epoch ('best_epoch' 0): expected {initial} for "
                                f"mode {state['mode']!r}")
        best_state = self._checked_best_state(state["best_state"], problems)
        if best_state is not None and kept.get("restore_best_weights") is False:
            problems.append("'best_state': given, but 'restore_best_weights' is False (it is kept only for "
                            "restoring)")
        if problems:
            raise StateDictError(f"{who} refused the state (nothing was changed): " + "; ".join(problems))
        self._monitor, self._patience, self._min_delta = kept["monitor"], kept["patience"], kept["min_delta"]
        self._restore_best_weights, self._mode = kept["restore_best_weights"], state["mode"]
        self._mode_auto = state["mode"] == "auto"  # (a state of a decided auto mode holds the decision)
        self._epoch, self.best_epoch = int(state["epoch"]), int(state["best_epoch"])
        self._wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.restored, self.best_state = float(best), bool(state["restored"]), best_state
        self._offset = 0
        self._resume = True

    @staticmethod
    def _checked_best_state(value: Any, problems: list[str]) -> dict[str, np.ndarray] | None:
        """A copy of ``value`` as a ``best_state`` (None, or arrays by str keys), or None with the
        problem appended to ``problems``."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            problems.append(f"'best_state': expected None or a model's state_dict (a mapping), got "
                            f"{type(value).__name__}")
            return None
        copies: dict[str, np.ndarray] = {}
        for key, array in value.items():
            if not isinstance(key, str):
                problems.append(f"'best_state': key {key!r} (of type {type(key).__name__}); keys must be str")
            elif not isinstance(array, np.ndarray) or array.dtype.hasobject:
                got = f"dtype {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
                problems.append(f"'best_state'['{key}']: expected an array of numbers, got {got}")
            else:
                copies[key] = plain_native(array).copy()
        return copies

    def summary(self) -> str:
        """One line for the log, e.g. ``early stopping after epoch 9: val_loss did not improve ...``."""
        restored = "; best weights restored" if self.restored else ""
        if not self.stopped_epoch:
            return f"best {self.monitor}: {self.best:.4g} at epoch {self.best_epoch}{restored}"
        return (f"early stopping after epoch {self.stopped_epoch}: {self.monitor} did not improve for "
                f"{self._wait} epoch(s); best {self.best:.4g} at epoch {self.best_epoch}{restored}")

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta}, "
                f"mode={self.mode!r}, restore_best_weights={self.restore_best_weights})")
