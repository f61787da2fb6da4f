"""``Parameter``: a trainable array and the gradient the back-pass accumulates into it."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .errors import DTypeError, ShapeError

__all__ = ["Parameter"]

#: Unsigned integer types by item size, to test a float array for all-zero bits.
_UINT_OF_SIZE = {2: np.uint16, 4: np.uint32, 8: np.uint64}


class Parameter:
    """A trainable tensor.

    Attributes:
        data: the values, a floating ``ndarray`` of any shape.
        grad: ``dCost/d(data)``, same shape and dtype as ``data``; starts at zero.  Layers *add*
            into it in ``backward`` (so a parameter used twice gets the sum of both uses) and
            optimizers read it in ``step``.
        requires_grad: ``False`` freezes the parameter: optimizers skip it.  (This is unrelated
            to ``Layer.training``, which switches train/eval behaviour.)

    Both ``data`` and ``grad`` may be rebound to new arrays of the same shape; layers look them
    up at call time and never keep views of them.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: ArrayLike, *, dtype: DTypeLike | None = None, requires_grad: bool = True):
        array = np.array(data, dtype=dtype, copy=True)
        if array.dtype.kind != "f":
            if dtype is None and array.dtype.kind in "iub":
                array = array.astype(np.float64)
            else:
                raise DTypeError(f"Parameter: expected a floating dtype, got {array.dtype}")
        self.data: np.ndarray = array
        self.grad: np.ndarray = np.zeros_like(array)
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def grad_is_zero(self) -> bool:
        """Whether ``grad`` is exactly all zero, as right after :meth:`zero_grad`.

        A layer's backward may then *write* its gradient into ``grad`` (e.g. ``np.matmul(a, b,
        out=grad)``) instead of adding a temporary to it: the same result, without a temporary the
        size of the parameter.  The test ORs the raw bits (about twice as fast as ``not
        grad.any()``); -0.0 and NaN count as non-zero, which only means adding as usual.
        """
        grad = self.grad
        uint = _UINT_OF_SIZE.get(grad.itemsize)
        if uint is None or grad.size == 0:
            return not grad.any()
        return not np.bitwise_or.reduce(grad.view(uint), axis=None)

    def zero_grad(self) -> None:
        """Set ``grad`` to zero in place (reallocating it if its shape or dtype went stale)."""
        if self.grad.shape != self.data.shape or self.grad.dtype != self.data.dtype:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad.fill(0)

    def astype(self, dtype: DTypeLike) -> Parameter:
        """Cast ``data`` and ``grad`` to ``dtype`` (rebinding them; arrays already of ``dtype`` are
        kept as they are); returns ``self``."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise DTypeError(f"Parameter.astype: expected a floating dtype, got {dtype}")
        self.data = self.data.astype(dtype, copy=False)
        self.grad = self.grad.astype(dtype, copy=False)
        return self

    def assign(self, value: ArrayLike) -> None:
        """Copy ``value`` into ``data`` in place, refusing a shape change (dtype is kept)."""
        array = np.asarray(value)
        if array.shape != self.data.shape:
            raise ShapeError(
                f"Parameter.assign: expected shape {self.data.shape}, got {array.shape}"
            )
        np.copyto(self.data, array, casting="same_kind")

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"
