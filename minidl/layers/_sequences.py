"""What the layers over sequences (recurrent, attention) share: the length they propose for a dummy input,
the weight gradient of a projection applied to every step at once, and the check of a padding mask."""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..parameter import Parameter

__all__ = ["HINT_STEPS", "add_product", "check_padding_mask"]

#: The sequence length ``input_shape_hint`` proposes (the checker's and the summary's dummy input).
HINT_STEPS = 3


def add_product(param: Parameter, rows: np.ndarray, grads: np.ndarray, bias_row: bool) -> None:
    """``param.grad += [1, rows]^T @ grads`` (``bias_row``: row 0 gets the column sums of ``grads``)
    or ``rows^T @ grads``; written straight into the gradient array right after ``zero_grad``."""
    dW, overwrite = param.grad_target()
    if overwrite:  # the gradient is zero but the array holds old values: write every element
        try:
            if bias_row:
                np.matmul(rows.T, grads, out=dW[1:])
                np.add.reduce(grads, axis=0, out=dW[0])
            else:
                np.matmul(rows.T, grads, out=dW)
        except BaseException:  # interrupted mid-write: the gradient is still zero, say so again
            param.zero_grad()
            raise
    elif bias_row:
        dW[1:] += rows.T @ grads
        dW[0] += np.add.reduce(grads, axis=0)
    else:
        dW += rows.T @ grads


def check_padding_mask(mask: object, N: int, T: int, who: str, what: str = "key_padding_mask") -> None:
    """Refuse a padding mask that is not (N, T) booleans (True at a padding position)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise DTypeError(
            f"{who}: expected {what} as booleans of shape (N, T) = ({N}, {T}), True at a padding "
            f"position, got {got}. Numbers are refused because libraries disagree on what 1 means (PyTorch: "
            "padding; Hugging Face's attention_mask: a real token); write e.g. lengths_mask == 0 as you mean it")
    if mask.shape != (N, T):
        raise ShapeError(f"{who}: expected {what} of shape (N, T) = ({N}, {T}) for an input of shape "
                         f"({N}, {T}, E), got {mask.shape}")
