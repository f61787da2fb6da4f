"""Layers that only change an array's shape: ``Flatten``, which merges a run of axes into one (by default
(N, d1, d2, ...) -> (N, d1*d2*...), the bridge from convolutions to ``Dense``); ``Unflatten``, its inverse
along one axis; and ``Identity``, which changes nothing (a placeholder where a layer is optional or
removed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..inputs import is_several
from ..layer import Layer
from ..validation import as_array, as_float_array, check_grad_output, checked_setting, is_integer, native

__all__ = ["Flatten", "Identity", "Unflatten"]


def _dim(who: str, name: str, value: Any) -> int:
    """An axis number: an int (negative counts from the end; not a bool), else ``TypeError``."""
    if not is_integer(value):
        raise TypeError(f"{who}: {name} must be an int, got {value!r}")
    return int(value)


def _ndim_range(start: int, end: int) -> tuple[int, float]:
    """The numbers of dimensions ``(lo, hi)`` of the inputs whose axes ``start``..``end`` exist and are in
    order (``hi`` may be inf; ``lo > hi``: none).  Only for messages: the forward resolves the dims itself."""
    lo = max(start + 1 if start >= 0 else -start, end + 1 if end >= 0 else -end)
    hi: float = math.inf
    if (start >= 0) == (end >= 0):
        if start > end:
            hi = 0
    elif start >= 0:  # end is axis end + ndim, not before start: ndim >= start - end
        lo = max(lo, start - end)
    else:  # start is axis start + ndim, not after end: ndim <= end - start
        hi = end - start
    return lo, hi


class Flatten(Layer):
    """Flatten axes ``start_dim`` to ``end_dim`` (inclusive; negative count from the end) into one, in C
    order, as PyTorch's ``nn.Flatten(start_dim=1, end_dim=-1)``.  The defaults keep the batch axis and
    flatten the rest, the bridge from convolutions to ``Dense``.

    Shapes: x: (d0, ..., dk) -> y: (d0, ..., d(s-1), ds*...*de, d(e+1), ..., dk) with s, e the resolved
    ``start_dim``, ``end_dim``: Flatten() (N, C, H, W) -> (N, C*H*W); Flatten(2) -> (N, C, H*W);
    Flatten(0, 1) (N, T, E) -> (N*T, E).  With ``start_dim=0`` the batch axis is merged too: axis 0 of
    the output is no longer one row per sample (see docs/layers.md).  Backward reshapes the gradient back
    to x's shape.  The output is a view of x whenever NumPy's reshape can make one (so do not write into
    it), else a copy.  Empty axes (N = 0) give an empty output of the formula's shape.  NaN/inf are passed
    through unchecked.

    Args:
        start_dim, end_dim: ints (not bools), checked when the layer is built and when set.  A pair that
            no input could take (both counted from the same end, start after end) is refused at
            construction (``ValueError``); a pair that does not fit the input (an axis out of range, or
            start after end once resolved) by the forward (``ShapeError``).  Set between a forward and its
            backward, they take effect at the next forward.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    start_dim = checked_setting("start_dim", _dim, "The first axis flattened (negative counts from the end), an int.")
    end_dim = checked_setting("end_dim", _dim, "The last axis flattened, inclusive (negative counts from the end), "
                                               "an int.")
    _start_dim: int  # (where the settings keep their values: the forward reads these)
    _end_dim: int

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        who = type(self).__name__  # (checked before anything is replaced: a refused __init__ run again on a
        dims = (_dim(who, "start_dim", start_dim), _dim(who, "end_dim", end_dim))  # built layer leaves it)
        if _ndim_range(*dims)[1] == 0:
            raise ValueError(f"{who}: start_dim {dims[0]} comes after end_dim {dims[1]} (both counted from the "
                             f"{'start' if dims[0] >= 0 else 'end'}): no input has axes from start_dim to end_dim")
        super().__init__()
        self.start_dim, self.end_dim = dims
        self._shape: tuple[int, ...] | None = None  # the last forward's input shape
        self._out: tuple[int, ...] | None = None  # and output shape
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a Flatten pickled before it took ``start_dim`` and
        ``end_dim`` (it flattened axes 1 to the last, and its forward kept only the input's shape)."""
        state = dict(state)
        state.setdefault("_start_dim", 1)
        state.setdefault("_end_dim", -1)
        if "_out" not in state:
            shape = state.get("_shape")
            state["_out"] = None if shape is None else (shape[0], math.prod(shape[1:]))
        super().__setstate__(state)

    def _who(self) -> str:
        extra, name = self.extra_repr(), type(self).__name__
        return f"{name}({extra})" if extra else name

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., ds, ..., de, ...) -> (..., ds*...*de, ...)."""
        x = as_float_array(x, type(self).__name__)
        shape = x.shape
        ndim = len(shape)
        start = self._start_dim + ndim if self._start_dim < 0 else self._start_dim
        end = self._end_dim + ndim if self._end_dim < 0 else self._end_dim
        if not 0 <= start <= end < ndim:
            raise ShapeError(self._refusal(shape))
        x = native(x)  # (e.g. read from a file: returned in native order, as the other layers do)
        out = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])  # not -1: N = 0 would be
        self.__dict__.update(_shape=shape, _out=out)  # ambiguous. (Plain tuples: Layer.__setattr__'s scan of
        # their items spared on the hot path, a third of the forward's time)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return x.reshape(out)

    def _refusal(self, shape: tuple[int, ...]) -> str:
        """Why the forward refuses an input of ``shape`` (its dims do not fit it)."""
        who, start, end, ndim = self._who(), self._start_dim, self._end_dim, len(shape)
        lo, hi = _ndim_range(start, end)
        if hi == 0:
            return (f"{who}: start_dim {start} comes after end_dim {end} (both counted from the "
                    f"{'start' if start >= 0 else 'end'}): no input has axes from start_dim to end_dim; got shape "
                    f"{shape}")
        if (start, end) == (1, -1):  # (the message of the layer's first, default form)
            return f"{who}: expected an input of shape (N, d1, ...) with at least 2 dimensions, got shape {shape}"
        need = (f"at least {lo}" if hi == math.inf else f"{lo}" if hi == lo else f"{lo} to {int(hi)}")
        message = (f"{who}: flattening axes start_dim={start} to end_dim={end} needs an input with {need} "
                   f"dimension{'' if lo == 1 and hi in (1, math.inf) else 's'}, got shape {shape}")
        if -ndim <= start < ndim and -ndim <= end < ndim:  # both axes exist, in the wrong order
            message += f": start_dim {start} is axis {start % ndim} there, after end_dim {end}, axis {end % ndim}"
        return message

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward's output shape -> dx: x's shape."""
        shape = self._shape
        self._require_cache(shape)
        out = self._out
        assert shape is not None and out is not None
        if type(grad_output) is not np.ndarray or grad_output.shape != out or grad_output.dtype != self._dtype:
            # (not the common case: refused, or an ndarray subclass; the name is made only here)
            grad_output = check_grad_output(grad_output, f"{self._who()}.backward", out, self._dtype)
        return grad_output.reshape(shape)

    def extra_repr(self) -> str:
        parts = [f"start_dim={self._start_dim}"] if self._start_dim != 1 else []
        if self._end_dim != -1:
            parts.append(f"end_dim={self._end_dim}")
        return ", ".join(parts)


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
    input's dtype).  Several inputs (a tuple of arrays) pass as one tuple, and backward takes and returns
    one gradient per input: so a loss over several predictions is checked alone with
    ``GradientChecker(Identity(), MarginRankingLoss(), inputs=(a, b), targets=y)``.  PyTorch's arguments
    (ignored there) are not taken.
    """

    single_input = True  # (a Stack hands it the sequence alone)
    elementwise = True  # (summarize and the checker look past it to infer a model's input)

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._several: tuple[tuple[tuple[int, ...], np.dtype], ...] | None = None  # per input, for several

    def forward(self, x: Any) -> Any:
        """x: any array -> x (in native byte order: a big-endian array read from a file as a native copy,
        as the other layers give); several inputs ``(x0, x1, ...)`` -> the same tuple, so treated."""
        if is_several(x):
            arrays = tuple(native(as_array(a, f"Identity (input {i})")) for i, a in enumerate(x))
            self._several = tuple((a.shape, a.dtype) for a in arrays)
            self._shape = ()  # (a forward has run: backward checks against _several)
            return arrays
        x = native(as_array(x, "Identity"))
        self._shape, self._several = x.shape, None
        if x.dtype is not self._dtype:
            self._dtype = x.dtype
        return x

    def backward(self, grad_output: Any) -> Any:
        """grad_output: x's shape -> dx = grad_output (for a float x, of x's dtype); for several inputs a
        tuple of one gradient per input, each so checked, returned as the tuple of them."""
        shape = self._shape
        self._require_cache(shape)
        several = self.__dict__.get("_several")  # (absent from an Identity pickled before it took several inputs)
        if several is not None:
            if type(grad_output) is not tuple or len(grad_output) != len(several):
                got = f"a tuple of {len(grad_output)}" if type(grad_output) is tuple else type(grad_output).__name__
                raise ShapeError(f"Identity.backward: the forward took {len(several)} inputs, so grad_output must be "
                                 f"a tuple of {len(several)} gradients, one per input; got {got}")
            return tuple(check_grad_output(g, f"Identity.backward (input {i})", s, d if d.kind == "f" else None)
                         for i, (g, (s, d)) in enumerate(zip(grad_output, several, strict=True)))
        assert shape is not None and self._dtype is not None
        return check_grad_output(grad_output, "Identity.backward", shape,
                                 self._dtype if self._dtype.kind == "f" else None)
