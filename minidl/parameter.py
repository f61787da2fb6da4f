"""``Parameter``: a trainable array and the gradient the back-pass accumulates into it."""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from typing_extensions import Self

from . import aligned
from .errors import DTypeError, ShapeError
from .init import switch

__all__ = ["Parameter", "bias_rows_again"]

#: Unsigned integer types by item size, to test a float array for all-zero bits.
_UINT_OF_SIZE = {2: np.uint16, 4: np.uint32, 8: np.uint64}


class Parameter:
    """A trainable tensor: its values and the gradient the back-pass adds into.

    Attributes:
        data: the values, a floating ``ndarray`` of any shape.
        grad: ``dCost/d(data)``, same shape and dtype as ``data``; starts at zero.  Layers *add* into it in
            ``backward`` (so a parameter shared by two layers gets the sum of both uses) and optimizers read
            it in ``step``; :meth:`zero_grad` sets it back to zero.
        requires_grad: ``False`` freezes the parameter: optimizers skip it, and the built-in layers compute
            no gradient for it.  ``Layer.requires_grad_(False)`` freezes a whole layer.
        bias_rows: the rows (a ``slice`` of axis 0) of ``data`` that are a bias, or None (see below).

    Implementation notes:

    A new parameter, or one after :meth:`zero_grad`, has *no* gradient (:attr:`has_grad` is False;
    ``grad`` reads as zeros) until a backward writes it: optimizers skip it then, as PyTorch skips a
    ``.grad`` of ``None``.  A frozen parameter keeps no gradient, as in PyTorch; a
    custom layer may skip it too, and the gradient checker then reports the tensor as frozen instead of
    checking it (``requires_grad`` is unrelated to ``Layer.training``, which switches train/eval behaviour).

    ``bias_rows`` is ``slice(0, 1)`` for the bias row 0 that ``Dense``, the convolutions, the recurrent
    layers and ``MultiHeadAttention`` absorb into their weights, ``slice(None)`` for a parameter that is a
    bias whole (a norm layer's ``beta``).  Set by the layers (a custom layer with an absorbed bias sets it
    too); an optimizer made with ``decay_bias=False`` leaves these rows out of the weight decay, as PyTorch
    users put the biases in a group with ``weight_decay=0``.

    ``data`` may be rebound to another floating ``ndarray`` (anything else is a ``DTypeError``, the
    parameter unchanged), ``grad`` to an ``ndarray`` of ``data``'s shape and dtype; layers look them up at
    call time and never keep views of them.  A new dtype (``W.data = W.data.astype(np.float32)``) is taken
    as it is: the layer then wants inputs of that dtype, and the gradient follows at the next
    :meth:`zero_grad`.  A new *shape* is taken too, for a custom layer that fills a placeholder weight at
    its first forward (the shape known only then) and calls :meth:`zero_grad`; nothing else should rebind
    to another shape.  A built-in layer is built for its parameters' shapes (its sizes are fixed), and
    another breaks it (``Dense``'s forward refuses it with a ``ShapeError``; others may fail inside NumPy):
    build a new layer instead.  Until the next :meth:`zero_grad` a gradient of the old shape stays, and
    optimizers refuse to step with it.

    The arrays the parameter makes itself (of 4 KiB or more) start on a 64-byte boundary
    (:mod:`minidl.aligned`: a training step runs several percent faster); so does what
    ``load_state_dict`` loads, but not an array a user rebinds, nor a copy made by ``copy.deepcopy`` or
    pickle.

    :meth:`zero_grad` costs nothing per element: it marks the gradient as zero, and the array is
    zeroed when ``grad`` is next read, or never, when a layer's backward writes the whole gradient
    through :meth:`grad_target` (a matrix product straight into the array, instead of adding a
    temporary to zeros).  So a reference to the old ``grad`` array kept across ``zero_grad`` may
    still show the old values until ``grad`` is read again (or, after plain SGD's
    ``step(zero_grad=True)``, which scales the array in place, ``lr`` times them).
    """

    __slots__ = ("_bias_rows", "_data", "_grad", "_grad_is_stale", "requires_grad")

    def __init__(self, data: ArrayLike, *, dtype: DTypeLike | None = None, requires_grad: bool = True,
                 bias_rows: slice | None = None):
        array = np.asarray(data, dtype=dtype)  # copied below
        if array.dtype.kind != "f":
            if dtype is None and array.dtype.kind in "iub":
                array = array.astype(np.float64)
            else:
                raise DTypeError(f"Parameter: expected a floating dtype, got {array.dtype}")
        # both on a cache line: every step streams through them (see minidl.aligned)
        self._data: np.ndarray = aligned.copy(array)
        self._grad: np.ndarray = aligned.zeros_like(array)
        # True while there is no gradient (new, or after zero_grad): _grad's values count as zero
        self._grad_is_stale = True
        self.requires_grad = switch(requires_grad, "requires_grad", "Parameter")  # "False" would be truthy
        self._bias_rows: slice | None = None
        self.bias_rows = bias_rows

    @property
    def bias_rows(self) -> slice | None:
        """The rows of ``data`` (a ``slice`` of axis 0) that are a bias, or None (see the class)."""
        return getattr(self, "_bias_rows", None)  # (unset: unpickled from before it existed, see bias_rows_again)

    @bias_rows.setter
    def bias_rows(self, rows: slice | None) -> None:
        if rows is not None:
            if not isinstance(rows, slice) or rows.step not in (None, 1) or not all(
                    bound is None or (isinstance(bound, (int, np.integer)) and not isinstance(bound, bool))
                    for bound in (rows.start, rows.stop)):
                raise TypeError(f"Parameter.bias_rows must be None or a slice of rows with int bounds and step 1 "
                                f"(slice(0, 1): row 0; slice(None): all of it), got {rows!r}")
            if self._data.ndim == 0:
                raise ValueError(f"Parameter.bias_rows: a 0-d parameter has no rows; got {rows!r} (use "
                                 f"slice(None) on a parameter of shape (1,))")
            rows = slice(None if rows.start is None else int(rows.start),
                         None if rows.stop is None else int(rows.stop))
            n_rows = self._data.shape[0]
            # (it would silently leave nothing out of the decay; a placeholder of 0 rows, filled later, may have them)
            if n_rows and not range(*rows.indices(n_rows)):
                raise ValueError(f"Parameter.bias_rows: {rows!r} selects no row of a parameter of shape "
                                 f"{self._data.shape} ({n_rows} rows)")
        self._bias_rows = rows

    def __setstate__(self, state: Any) -> None:
        """Unpickling (and ``copy.deepcopy``): also a parameter pickled before it had ``bias_rows`` (whose slot
        stays unset: :attr:`bias_rows` reads None, and its layer may give it its rows, :func:`bias_rows_again`),
        and a subclass's own attributes (the ``__dict__``, the state's first element)."""
        attributes, slots = state if isinstance(state, tuple) else (state, None)
        if attributes:
            self.__dict__.update(attributes)
        for key, value in (slots or {}).items():
            object.__setattr__(self, key, value)

    def _set_data(self, value: np.ndarray) -> None:
        if type(value) is not np.ndarray:  # (the common case: one comparison)
            _refuse_data(self, value)
        if value.dtype.kind != "f":
            raise DTypeError(f"Parameter.data must be a floating-point ndarray (the parameter holds "
                             f"{self._data.dtype} of shape {self._data.shape}), got an ndarray of dtype "
                             f"{value.dtype}: cast it, e.g. value.astype(np.{self._data.dtype})")
        self._data = value

    if TYPE_CHECKING:
        @property
        def data(self) -> np.ndarray:
            """The values, a floating ``ndarray``."""

        @data.setter
        def data(self, value: np.ndarray) -> None: ...
    else:  # the getter in C (attrgetter): layers and optimizers read it every step
        data = property(attrgetter("_data"), _set_data, None,
                        """The values, a floating ``ndarray``; checked when rebound (see the class).""")

    @property
    def grad(self) -> np.ndarray:
        if self._grad_is_stale:  # zero_grad was called and nothing has written since: zero it now
            self._fresh_grad().fill(0)
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        shape = getattr(value, "shape", None)
        if shape != self._data.shape:  # an optimizer would broadcast it into a wrong update, silently
            raise ShapeError(f"Parameter.grad must have the parameter's shape {self._data.shape}, got "
                             f"{'a ' + type(value).__name__ if shape is None else shape}")
        if not isinstance(value, np.ndarray):
            what = f"a NumPy scalar ({type(value).__name__}; np.asarray(value) makes the 0-d array)" \
                if isinstance(value, np.generic) else f"a {type(value).__name__}"
            raise DTypeError(f"Parameter.grad must be an ndarray of the parameter's dtype {self._data.dtype}, "
                             f"got {what}")
        if value.dtype != self._data.dtype:  # as PyTorch
            raise DTypeError(f"Parameter.grad must be an ndarray of the parameter's dtype {self._data.dtype}, "
                             f"got an ndarray of dtype {value.dtype}")
        self._grad = value
        self._grad_is_stale = False

    @property
    def has_grad(self) -> bool:
        """Whether the parameter has a gradient: False when new and after :meth:`zero_grad`, True once
        a backward has written ``grad`` (or ``grad`` was assigned, or read: whoever holds the array
        may have written it).  Optimizers update only parameters that have one."""
        return not self._grad_is_stale

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def size(self) -> int:
        return int(self._data.size)

    def grad_target(self) -> tuple[np.ndarray, bool]:
        """The gradient array for a backward to put its result in, and whether to *write* it.

        ``(grad, True)`` right after :meth:`zero_grad`: the gradient is zero but the array holds old
        values, so the caller must overwrite every element, e.g. ``np.matmul(a, b, out=grad)``,
        saving the temporary and the pass over the array that ``grad += a @ b`` costs.
        ``(grad, False)`` otherwise: add into it, as usual (a parameter used twice in one pass).
        Call it after every check of the backward has passed, right before writing: once it has
        returned ``True`` the array counts as written (if the write is interrupted, call
        :meth:`zero_grad` again).  The gradient checker fills gradient arrays with NaN before it
        zeroes them, so a backward that adds into the array despite ``True`` fails the check.
        """
        if not self._grad_is_stale:
            return self._grad, False
        return self._fresh_grad(), True

    def _fresh_grad(self) -> np.ndarray:
        """Clear the stale mark and return ``_grad``, re-made if ``data`` changed shape or dtype."""
        self._grad_is_stale = False
        grad = self._grad
        if grad.shape != self._data.shape or grad.dtype != self._data.dtype:
            grad = self._grad = aligned.empty(self._data.shape, self._data.dtype)
        return grad

    def grad_is_zero(self) -> bool:
        """Whether ``grad`` is exactly all zero, as right after :meth:`zero_grad`.

        True at once after ``zero_grad``; otherwise the test ORs the raw bits (about twice as fast
        as ``not grad.any()``); -0.0 and NaN count as non-zero.
        """
        if self._grad_is_stale:
            return True
        grad = self._grad
        uint = _UINT_OF_SIZE.get(grad.itemsize)
        if uint is None or grad.size == 0:
            return not grad.any()
        return not np.bitwise_or.reduce(grad.view(uint), axis=None)

    def zero_grad(self) -> None:
        """Make ``grad`` zero: marked now, the array zeroed (or re-made, if ``data`` changed shape or
        dtype) when it is next read or overwritten whole by a backward (see :meth:`grad_target`)."""
        self._grad_is_stale = True

    def astype(self, dtype: DTypeLike) -> Self:
        """Cast ``data`` and ``grad`` to ``dtype`` (rebinding them; arrays already of ``dtype`` are
        kept as they are); returns ``self``."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise DTypeError(f"Parameter.astype: expected a floating dtype, got {dtype}")
        if self._data.dtype != dtype:
            self._data = aligned.copy(self._data, dtype)
        if self._grad.dtype != dtype:
            stale = self._grad_is_stale  # old values: nothing to convert
            self._grad = aligned.empty(self._data.shape, dtype) if stale else aligned.copy(self._grad, dtype)
        return self

    def assign(self, value: ArrayLike) -> None:
        """Copy ``value`` into ``data`` in place, refusing a shape change (dtype is kept)."""
        array = np.asarray(value)
        if array.shape != self._data.shape:
            raise ShapeError(
                f"Parameter.assign: expected shape {self._data.shape}, got {array.shape}"
            )
        np.copyto(self._data, array, casting="same_kind")

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        bias = "" if self.bias_rows is None else f", bias_rows={self.bias_rows!r}"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen}{bias})"


def _refuse_data(param: Parameter, value: Any) -> None:
    """Raise ``DTypeError`` unless ``value`` is an ndarray subclass a layer can compute with as it is (a
    ``np.memmap``): not a list or a number (no ``.dtype``), an ``np.matrix`` (its ``*`` is a matrix
    product) nor a masked array (its hidden entries would be used)."""
    if isinstance(value, np.ndarray) and not isinstance(value, (np.matrix, np.ma.MaskedArray)):
        return
    data = param._data
    fix = f"np.asarray(value, dtype=np.{data.dtype})" if not isinstance(value, np.ndarray) else "np.asarray(value)"
    raise DTypeError(f"Parameter.data must be a floating-point ndarray (the parameter holds {data.dtype} of "
                     f"shape {data.shape}), got {'an' if type(value).__name__[0] in 'aeiou' else 'a'} "
                     f"{type(value).__name__}: pass {fix}")


def bias_rows_again(parameter: object, rows: slice | None) -> None:
    """For a built-in layer's ``__setstate__``: a ``parameter`` of it unpickled from before ``bias_rows`` existed
    (its slot unset) gets the ``rows`` the layer gives it when built (``slice(0, 1)``, its absorbed bias row 0, or
    ``slice(None)``, a bias whole), so that ``decay_bias=False`` leaves its bias out as before and the gradient
    checker names the bias row.  ``rows`` None (no bias), a parameter whose rows were set (to None too: a choice
    of its user's), or one not rebuilt yet (a reference cycle through a subclass's attribute), is left as it is."""
    if rows is not None and isinstance(parameter, Parameter) and hasattr(parameter, "_data") \
            and not hasattr(parameter, "_bias_rows"):
        parameter.bias_rows = rows
