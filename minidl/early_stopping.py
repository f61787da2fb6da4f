"""``EarlyStopping``: end :func:`~minidl.fit` when a monitored figure stops improving, as Keras's callback."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .init import switch
from .layer import Layer
from .validation import is_integer, is_number

__all__ = ["EarlyStopping"]


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
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for a figure with ``acc`` in its name,
            as Keras decides, else ``"min"``).
        restore_best_weights: when training ends (stopped early or not), load the parameters and
            buffers of the best epoch into the model.  Off by default, as in Keras.  The optimizer's
            state is not restored.

    A NaN value never counts as an improvement.  After ``fit``: :attr:`best` (the best value),
    :attr:`best_epoch`, :attr:`stopped_epoch` (the epoch after which training stopped, 0 if it ran
    to the end), :attr:`restored` (whether the best weights were loaded), and with
    ``restore_best_weights`` :attr:`best_state`, the best epoch's ``model.state_dict()``.  When ``fit``
    raises (a NaN loss, an interrupt) nothing is restored, as in Keras: the model keeps the weights of
    its last good batch, and ``model.load_state_dict(es.best_state)`` goes back to the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        who = "EarlyStopping"
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{who}: monitor must be the name of a history key, e.g. 'val_loss', got {monitor!r}")
        if not is_integer(patience) or patience < 0:
            raise ValueError(f"{who}: patience must be an int >= 0, got {patience!r}")
        if not (is_number(min_delta) and math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"{who}: min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.restore_best_weights = switch(restore_best_weights, "restore_best_weights", who)
        self.start()

    def start(self) -> None:
        """Forget any earlier training: the next :meth:`update` is the first epoch's."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.restored = False
        self._wait = 0
        self.best_state: dict[str, np.ndarray] | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, values: Mapping[str, float], model: Layer) -> bool:
        """Record epoch ``epoch``'s ``values`` (its history entries); True when training should stop."""
        if self.monitor not in values:
            raise KeyError(f"EarlyStopping: monitor {self.monitor!r} is not in the history; it has "
                           f"{sorted(values)}")
        value = float(values[self.monitor])
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
        """At the end of training: load the best epoch's weights if asked to and one was recorded."""
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)
            self.restored = True

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
