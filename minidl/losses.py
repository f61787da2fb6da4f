"""Losses: ``forward(y_pred, y_true) -> float`` and ``backward() -> dLoss/dy_pred``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import BackwardBeforeForwardError, ShapeError
from .validation import as_float_array, check_finite

__all__ = ["HalfSquaredError", "Loss", "MSELoss"]

_REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class for losses; subclass it and write ``forward`` and ``backward``.

    ``forward`` returns the loss as a Python float and keeps what ``backward`` needs;
    ``backward()`` returns ``dLoss/dy_pred`` with the shape and dtype of ``y_pred``.
    ``loss(y_pred, y_true)`` calls ``forward``.
    """

    def __call__(self, y_pred: np.ndarray, y_true: Any) -> float:
        return self.forward(y_pred, y_true)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(y_pred, y_true)")

    def backward(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def _pair(self, y_pred: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate a prediction/target pair of equal shape; targets are cast to the prediction's dtype."""
        who = type(self).__name__
        y_pred = as_float_array(y_pred, who, "y_pred")
        target = np.asarray(y_true)
        if target.dtype.kind not in "fiub":
            raise TypeError(f"{who}: expected numeric y_true, got dtype {target.dtype}")
        if target.shape != y_pred.shape:
            raise ShapeError(f"{who}: y_pred has shape {y_pred.shape} but y_true has shape {target.shape}")
        target = target.astype(y_pred.dtype, copy=False)
        check_finite(target, who, "y_true")
        return y_pred, target

    def _require(self, cache: Any) -> None:
        if cache is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward called before forward: there is no loss to differentiate"
            )

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class MSELoss(Loss):
    """Mean squared error, as PyTorch: ``mean((y_pred - y_true)^2)`` over every element
    (``reduction="sum"``: the sum).  Gradient: ``2 (y_pred - y_true) / size`` (or without ``/ size``).

    Shapes: y_pred and y_true: (N, ...) alike.
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"MSELoss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._diff: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        y_pred, target = self._pair(y_pred, y_true)
        diff = y_pred - target
        self._diff = diff
        total = float(np.vdot(diff, diff))
        return total / diff.size if self.reduction == "mean" else total

    def backward(self) -> np.ndarray:
        self._require(self._diff)
        assert self._diff is not None
        scale = 2.0 / self._diff.size if self.reduction == "mean" else 2.0
        return self._diff * scale

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class HalfSquaredError(Loss):
    """The regression cost ``CF = 1/2 * sum((y_hat - y)^2)``, whose gradient is exactly ``y_hat - y``.

    With a ``Dense`` layer ``y_hat = X @ W`` (X carrying the ones column) this gives the classic
    ``dCF/dW = X^T (y_hat - y)``.  Shapes: y_pred and y_true: (N, ...) alike.
    """

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        y_pred, target = self._pair(y_pred, y_true)
        diff = y_pred - target
        self._diff = diff
        return 0.5 * float(np.vdot(diff, diff))

    def backward(self) -> np.ndarray:
        self._require(self._diff)
        assert self._diff is not None
        return self._diff.copy()
