"""Layers that only change an array's shape: ``Flatten`` (N, d1, d2, ...) -> (N, d1*d2*...), the bridge
from convolutions to ``Dense``; ``Unflatten``, its inverse along one axis; and ``Identity``, which
changes nothing (a placeholder where a layer is optional or removed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..inputs import is_several
from ..layer import Layer
from ..validation import as_array, as_float_array, check_grad_output, is_integer, native

__all__ = ["Flatten", "Identity", "Unflatten"]


class Flatten(Layer):
    """Keep the batch axis, flatten the rest in C order, as PyTorch's ``nn.Flatten()``.

    Shapes: x: (N, d1, ..., dk) with k >= 1 -> y: (N, d1*...*dk).  Backward reshapes the gradient
    back to x's shape.  The output is a view of x whenever NumPy's reshape can make one (so do not
    write into it), else a copy.  An empty batch (N = 0) gives an empty (0, d1*...*dk) output.
    NaN/inf are passed through unchecked.
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


class Unflatten(Layer):
    """Split axis ``dim`` into ``sizes``, as PyTorch's ``nn.Unflatten(dim, unflattened_size)``: the inverse
    of ``Flatten`` along one axis, e.g. a ``Dense`` output (N, 64) back to images (N, 4, 4, 4).

    Shapes: x: (..., d, ...) with ``d`` on axis ``dim`` -> y: (..., *sizes, ...), ``prod(sizes) == d``
    (one size may be -1: the rest of ``d``).  Backward reshapes the gradient back to x's shape.  The
    output is a view of x whenever NumPy's reshape can make one (so do not write into it), else a copy.
    NaN/inf are passed through unchecked.

    Args:
        dim: the axis to split (negative counts from the end; 0, the batch axis, is allowed, as in PyTorch).
        sizes: a tuple of ints >= 1, or one -1.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(self, dim: int, sizes: tuple[int, ...]) -> None:
        super().__init__()
        if not is_integer(dim):
            raise TypeError(f"Unflatten: dim must be an int, got {dim!r}")
        sizes = tuple(sizes) if isinstance(sizes, (tuple, list)) else sizes
        if not (isinstance(sizes, tuple) and sizes and all(is_integer(v) and (v >= 1 or v == -1) for v in sizes)
                and sum(v == -1 for v in sizes) <= 1):
            raise ValueError(f"Unflatten: sizes must be a non-empty tuple of ints >= 1 (one may be -1), got {sizes!r}")
        self.dim = int(dim)
        self.sizes = tuple(int(v) for v in sizes)
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        self._out: tuple[int, ...] = ()  # the last forward's output shape

    def _who(self) -> str:
        return f"Unflatten({self.extra_repr()})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., d, ...) -> (..., *sizes, ...)."""
        x = native(as_float_array(x, self._who()))
        if not -x.ndim <= self.dim < x.ndim:
            raise ShapeError(f"{self._who()}: dim {self.dim} is out of range for an input of shape {x.shape}")
        axis = self.dim % x.ndim
        d = x.shape[axis]
        known = math.prod(v for v in self.sizes if v != -1)
        sizes = tuple(v if v != -1 else (d // known if known and d % known == 0 else -1) for v in self.sizes)
        if -1 in sizes or math.prod(sizes) != d:
            raise ShapeError(f"{self._who()}: cannot split axis {self.dim} of size {d} (input shape {x.shape}) into "
                             f"{self.sizes}: the sizes' product must be {d}")
        out = (*x.shape[:axis], *sizes, *x.shape[axis + 1:])
        self._shape, self._out = x.shape, out
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return x.reshape(out)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward's output shape -> dx: x's shape."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None
        check_grad_output(grad_output, "Unflatten.backward", self._out, self._dtype)
        return grad_output.reshape(shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, sizes={self.sizes}"


class Identity(Layer):
    """``y = x``, as PyTorch's ``nn.Identity``: a placeholder where a model takes a layer but should do
    nothing (a head removed, an optional normalisation off).  Any array passes unchanged (the same
    object; lists and numbers become arrays, a masked array is refused as by the other layers);
    backward returns ``grad_output`` itself, checked against the forward's output shape (and a float
    input's dtype).  PyTorch's arguments (ignored there) are not taken, nor several inputs.
    """

    single_input = True  # (a Stack hands it the sequence alone)
    elementwise = True  # (summarize and the checker look past it to infer a model's input)

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None

    def forward(self, x: Any) -> Any:
        """x: any array -> x (in native byte order: a big-endian array read from a file as a native copy,
        as the other layers give)."""
        if is_several(x):
            raise ShapeError("Identity: takes one array, got a tuple of several inputs")
        x = native(as_array(x, "Identity"))
        self._shape = x.shape
        if x.dtype is not self._dtype:
            self._dtype = x.dtype
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx = grad_output (for a float x, of x's dtype)."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None and self._dtype is not None
        return check_grad_output(grad_output, "Identity.backward", shape,
                                 self._dtype if self._dtype.kind == "f" else None)
