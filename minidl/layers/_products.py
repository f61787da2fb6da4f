"""The weight gradient of ``[1, x] @ W`` (a bias absorbed as row 0 of ``W``), shared by the layers that
compute that product: ``Dense``, the recurrent layers' projections and ``MultiHeadAttention``'s."""

from __future__ import annotations

import numpy as np

from ..parameter import Parameter

__all__ = ["add_product"]


def add_product(param: Parameter, rows: np.ndarray, grads: np.ndarray, bias_row: bool) -> None:
    """``param.grad += [1, rows]^T @ grads`` (``bias_row``: row 0 gets the column sums of ``grads``)
    or ``rows^T @ grads``; written straight into the gradient array right after ``zero_grad``.

    rows: (M, in_features), grads: (M, out_features); ``param``: (in_features + bias_row, out_features).
    """
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
