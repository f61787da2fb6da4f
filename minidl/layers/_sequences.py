"""What the layers over sequences (recurrent, attention) share: the length they propose for a dummy input
and the weight gradient of a projection applied to every step at once."""

from __future__ import annotations

import numpy as np

from ..parameter import Parameter

__all__ = ["HINT_STEPS", "add_product"]

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
