"""``Flatten``: (N, d1, d2, ...) -> (N, d1*d2*...), the bridge from convolutions to ``Dense``."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..layer import Layer
from ..validation import as_float_array, check_grad_output, native

__all__ = ["Flatten"]


class Flatten(Layer):
    """Keep the batch axis, flatten the rest in C order, as PyTorch's ``nn.Flatten()``.

    Shapes: x: (N, d1, ..., dk) with k >= 1 -> y: (N, d1*...*dk).  Backward reshapes the gradient
    back to x's shape.  The output is a view of x when x is C-contiguous, else a copy.  An empty
    batch (N = 0) gives an empty (0, d1*...*dk) output.  NaN/inf are passed through unchecked.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, ...) -> (N, prod(...))."""
        x = as_float_array(x, "Flatten")
        if x.ndim < 2:
            raise ShapeError(f"Flatten: expected an input of shape (N, d1, ...) with at least 2 dimensions, "
                             f"got shape {x.shape}")
        x = native(x)  # (e.g. read from a file: returned in native order, as the other layers do)
        self._shape = x.shape
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: N = 0 would be ambiguous

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, prod(...)) -> dx: x's shape."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None
        check_grad_output(grad_output, "Flatten.backward", (shape[0], math.prod(shape[1:])), self._dtype)
        return grad_output.reshape(shape)
