"""A layer's input: one array, or a tuple of arrays when a layer or model takes several.

A layer with several inputs (an attention layer given a padding mask, a model with two branches) takes
them as one tuple, ``forward((x, mask))``, and its ``backward`` returns a tuple of the same length:
one gradient per input, ``None`` for an input that has none (integer indices, a boolean mask).  Every
input has the batch on axis 0, so ``fit`` and ``predict`` slice each the same way and the gradient
checker checks each floating input as its own tensor (``input[0]``, ``input[1]``, ...).

Only a plain ``tuple`` of ``numpy`` arrays counts as several inputs: a list, or a tuple of numbers or
of lists, is data for one array, converted as before; a tuple that holds arrays and anything else (a
list, ``None``), or a named tuple of arrays, is refused by name rather than stacked.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import numpy as np

from .errors import DTypeError, ShapeError
from .validation import as_array, as_float_array, native

__all__ = ["Inputs", "as_inputs", "count", "is_several", "pair_of_arrays", "rows", "take_rows"]

#: one array, or several (a tuple of arrays, each with the batch on axis 0)
Inputs = np.ndarray | tuple[np.ndarray, ...]


def is_several(x: Any) -> TypeGuard[tuple[np.ndarray, ...]]:
    """Whether ``x`` is several inputs: a non-empty tuple of ``numpy`` arrays."""
    return type(x) is tuple and len(x) > 0 and all(isinstance(a, np.ndarray) for a in x)


def as_inputs(x: Any, who: str, what: str = "x") -> Inputs:
    """``x`` as one array (converted like any data) or, when it is several inputs, as a tuple of arrays
    that each have a batch axis and the same number of samples; else ``ShapeError`` naming ``who``."""
    if not is_several(x):
        return as_array(x, who, what)  # (which refuses a tuple mixing arrays and other values, or a named one)
    for i, a in enumerate(x):
        if a.ndim == 0:
            raise ShapeError(f"{who}: {what}[{i}] needs a batch axis, got shape {a.shape}")
        if len(a) != len(x[0]):
            raise ShapeError(f"{who}: the inputs of {what} must have the same number of samples; {what}[0] has "
                             f"{len(x[0])}, {what}[{i}] has {len(a)}")
    return tuple(x)


def pair_of_arrays(x: Any, who: str, expected: str, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """``x``, a tuple of two arrays, as two float arrays of the same shape and dtype in native byte order;
    else the error naming ``who``, ``expected`` saying what ``x`` should be (e.g. "takes one tuple (x1,
    x2) of two arrays") and ``names`` the two in messages about each."""
    if not (type(x) is tuple and len(x) == 2):
        given = f"a tuple of {len(x)}" if type(x) is tuple else type(x).__name__
        raise ShapeError(f"{who}: {expected}, got {given}")
    x1, x2 = (native(as_float_array(a, who, name)) for a, name in zip(x, names, strict=True))
    if x1.shape != x2.shape:
        raise ShapeError(f"{who}: x1 and x2 must have the same shape, got {x1.shape} and {x2.shape}")
    if x1.dtype != x2.dtype:
        raise DTypeError(f"{who}: x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}")
    return x1, x2


def count(x: Inputs) -> int:
    """The number of samples (the length of axis 0; of the first input when there are several)."""
    return len(x[0]) if type(x) is tuple else len(x)


def rows(x: Inputs, start: int, stop: int) -> Inputs:
    """Samples ``start:stop`` of every input (views)."""
    if type(x) is tuple:
        return tuple(a[start:stop] for a in x)
    return x[start:stop]


def take_rows(x: Inputs, index: np.ndarray) -> Inputs:
    """The samples at ``index`` of every input (new arrays)."""
    if isinstance(x, np.ndarray):
        return x.take(index, axis=0)  # = x[index], a bit faster (the method: np.take's wrapper costs ~1 us)
    return tuple(a.take(index, axis=0) for a in x)
