"""``MaxUnpool2D`` and ``MaxUnpool1D``: a max pool's partial inverse, as PyTorch's ``MaxUnpool2d`` and
``MaxUnpool1d``.  Each value goes back to the position its pool took it from, given by the indices a
``MaxPool2D(..., return_indices=True)`` returned, and every other position is zero: the decoder half of
a SegNet-style encoder-decoder.

The layer has two inputs, one tuple ``(x, indices)`` (see :mod:`minidl.inputs`), and its backward
returns ``(dx, None)``: the integer indices have no gradient.  One scatter over every sample, channel
and position at once (a 1-D layer is the same computation on planes of ``L`` positions); the backward
is the gather of the gradient at the same indices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DTypeError, IndexRangeError, ShapeError
from ..validation import as_array, check_grad_output, check_input, is_integer, native, size_arguments
from .conv import _AXES, _EMPTY, _SIZE_NAMES, _SPATIAL, _display, _input_of
from .pooling import _Windows

__all__ = ["MaxUnpool1D", "MaxUnpool2D"]

#: What a forward keeps for its backward: each input element's flat index in the output (the planes in
#: the working order), which elements' values the output shows (None: all of them), x's shape and the
#: output's in the working order, the output's dtype, and whether the working order swaps N and C.
_Cache = tuple[np.ndarray, "np.ndarray | None", tuple[int, ...], tuple[int, ...], np.dtype, bool]


class _MaxUnpool(_Windows):
    """The computation of ``MaxUnpool2D`` and ``MaxUnpool1D`` (documented on ``MaxUnpool2D``), on
    (N, C, *spatial) arrays with :attr:`_rank` spatial axes (kernel_size, stride and padding: see
    :class:`~minidl.layers.pooling._Windows`; any padding, as PyTorch's)."""

    #: The pool whose indices it takes, for messages.
    _pool: str = "MaxPool2D"

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        output_size: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self._output_size = self._checked_output_size(output_size)
        self._cache: _Cache | None = None

    # ------------------------------------------------------------------ settings (checked when set)
    # Each may be set after construction: checked as the constructor checks it (nothing changed when
    # refused) and used by the next forward; a backward uses its forward's (kept with its cache).

    @property
    def output_size(self) -> tuple[int, ...] | None:
        """The output's spatial size, one int >= 1 per axis, or None for the default
        ``(in - 1)*stride - 2*padding + kernel_size``; PyTorch's forward argument ``output_size``.  A
        full size ``(N, C, *spatial)`` (``x.shape`` of the pooled input) sets its spatial sizes, as in
        PyTorch.  Checked when set; against the input at the next forward (it must be within
        ``stride - 1`` of the default, as PyTorch requires)."""
        return self._output_size

    @output_size.setter
    def output_size(self, value: int | tuple[int, ...] | None) -> None:
        self._output_size = self._checked_output_size(value)

    def _checked_output_size(self, value: Any) -> tuple[int, ...] | None:
        """``value`` as the spatial output size (None kept), else ``ValueError`` naming the layer."""
        if value is None:
            return None
        rank = self._rank
        sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
        if len(sizes) == rank + 2:  # PyTorch's full size (N, C, *spatial): its spatial sizes
            sizes = sizes[2:]
        if len(sizes) != rank or not all(is_integer(v) and v >= 1 for v in sizes):
            axes = _SPATIAL[rank]
            what = "an int >= 1" if rank == 1 else f"an int >= 1 or a pair ({axes}) of them"
            raise ValueError(f"{type(self).__name__}: output_size must be None, {what}, or a full size "
                             f"(N, C, {axes}), got {value!r}")
        return tuple(int(v) for v in sizes)

    def extra_repr(self) -> str:
        stride = "" if self._stride == self._kernel_size else f", stride={_display(self._stride)}"
        padding = "" if not any(self._padding) else f", padding={_display(self._padding)}"
        size = "" if self._output_size is None else f", output_size={_display(self._output_size)}"
        return f"kernel_size={_display(self._kernel_size)}{stride}{padding}{size}"

    # ------------------------------------------------------------------ sizes
    def _default_sizes(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """PyTorch's default output size along each axis: ``(in - 1)*stride - 2*padding + kernel_size``."""
        return tuple((n - 1) * s - 2 * p + k
                     for n, k, s, p in zip(spatial, self._kernel_size, self._stride, self._padding, strict=True))

    def _output_sizes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial sizes for an input x of ``shape`` from the current settings: a forward's
        (N, C, *spatial), or ``output_shape``'s spatial sizes alone (its messages then name the sizes: it knows
        no channels); ``ShapeError`` when x has an empty axis, the default output is empty or ``output_size``
        does not fit.  The forward's checks: output_shape refuses what it refuses, in its words."""
        rank = self._rank
        spatial = shape[-rank:]
        if 0 in spatial:
            raise ShapeError(f"{self._who}: x of {_input_of(shape, rank)} has {_EMPTY[rank]}")
        default = self._default_sizes(spatial)
        axes = _AXES[rank]
        wanted = self._output_size
        if wanted is None:
            if min(default) < 1:
                rule = " and ".join(f"({a} - 1)*{s} - 2*{p} + {k} = {d}" for a, k, s, p, d in zip(
                    axes, self._kernel_size, self._stride, self._padding, default, strict=True))
                raise ShapeError(f"{self._who}: an input x of {_input_of(shape, rank)} gives an empty output: "
                                 f"{rule}; use less padding, or set output_size")
            return default
        for a, d, s, o in zip(axes, default, self._stride, wanted, strict=True):
            if not d - s < o < d + s:  # PyTorch's range: the sizes a pool with this stride maps to in's size
                raise ShapeError(
                    f"{self._who}: output_size {_display(wanted)} does not fit an input x of "
                    f"{_input_of(shape, rank)}: {a}_out must be in [{max(d - s + 1, 1)}, {d + s - 1}] (within "
                    f"stride - 1 of the default {d}, as PyTorch), got {o}")
        return wanted

    def _plane_output(self, spatial: tuple[Any, ...]) -> tuple[int, ...]:
        """``output_shape``'s computation: the spatial output sizes for an input of ``spatial`` sizes (ints
        >= 0: see :func:`size_arguments`), refusing what the forward refuses (:meth:`_output_sizes`)."""
        return self._output_sizes(size_arguments(self._who, _SIZE_NAMES[self._rank], spatial))

    # ------------------------------------------------------------------ inputs
    def _inputs(self, x: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """``x = (values, indices)`` checked: values float (N, C, *spatial), none empty; indices integers
        of the same shape; both in native byte order; and the output's spatial sizes (:meth:`_output_sizes`)."""
        who, rank = self._who, self._rank
        if not (type(x) is tuple and len(x) == 2):
            got = (f"a tuple of {len(x)}" if type(x) is tuple else
                   "one array" if isinstance(x, np.ndarray) else type(x).__name__)
            raise ShapeError(f"{who}: takes one tuple (x, indices), the values and the indices a "
                             f"{self._pool}(..., return_indices=True) returned, got {got}")
        values = check_input(x[0], who, ndim=2 + rank, layout=f"(N, C, {_SPATIAL[rank]})", finite=False, what="x")
        sizes = self._output_sizes(values.shape)
        indices = x[1]
        if type(indices) is not np.ndarray or indices.dtype.kind not in "iu":
            indices = self._as_indices(indices)
        if indices.shape != values.shape:
            raise ShapeError(f"{who}: indices must have the shape of x, {values.shape}, got {indices.shape}")
        return native(values), native(indices), sizes

    def _as_indices(self, indices: Any) -> np.ndarray:
        """``indices`` as an integer ndarray (a list of ints is converted), else ``DTypeError``."""
        indices = as_array(indices, self._who, "indices")
        if indices.dtype.kind == "b":
            raise DTypeError(f"{self._who}: expected integer indices, got dtype bool (the flat positions a "
                             f"{self._pool}(..., return_indices=True) returns)")
        if indices.dtype.kind not in "iu":
            hint = " (a float array is refused even when its values are whole)" if indices.dtype.kind == "f" else ""
            raise DTypeError(f"{self._who}: expected integer indices, got dtype {indices.dtype}{hint}; cast them "
                             "first, e.g. indices.astype(np.int64)")
        return indices

    def _refuse_out_of_range(self, indices: np.ndarray, sizes: tuple[int, ...]) -> None:
        """``IndexRangeError`` if an index is outside ``[0, prod(sizes))``, the output plane (one pass)."""
        plane = math.prod(sizes)
        if not indices.size:
            return
        unsigned = indices if indices.dtype.kind == "u" else indices.view(f"u{indices.dtype.itemsize}")
        if unsigned.max() < plane:  # (negative indices wrap to huge unsigned values)
            return
        bad = (indices < 0) | (indices >= plane)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        value = int(indices[where])
        count = int(np.count_nonzero(bad))
        more = f" ({count} of the {indices.size} indices are out of range)" if count > 1 else ""
        negative = " (negative indices do not count from the end)" if value < 0 else ""
        hint = "" if value < 0 or self._output_size is not None else (
            "; indices of a pooled input larger than the default output need output_size=, that input's size")
        raise IndexRangeError(
            f"{self._who}: index {value} at position {where} is out of range for the output plane "
            f"{_display(sizes)} of {plane} position(s){negative}; valid indices are 0..{plane - 1}{more}{hint}")

    # ------------------------------------------------------------------ forward and backward
    def forward(self, x: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """x = (values: (N, C, *spatial), indices: the same shape, integers) -> (N, C, *spatial_out):
        zeros, with each value at its index in its (n, c) plane."""
        values, indices, sizes = self._inputs(x)
        self._refuse_out_of_range(indices, sizes)
        # the planes in x's memory order (a Conv2D's output is channel-major): reshapes are views
        swapped = values.strides[1] > values.strides[0] and min(values.shape[:2]) > 1
        if swapped:
            values, indices = values.swapaxes(0, 1), indices.swapaxes(0, 1)
        A, B = values.shape[:2]
        plane = math.prod(sizes)
        targets = np.add(indices.reshape(A * B, math.prod(values.shape[2:])),
                         (np.arange(A * B, dtype=np.intp) * plane)[:, None], dtype=np.intp).reshape(-1)
        flat = values.reshape(-1)
        kept = _kept(targets, A * B * plane)
        out = np.zeros(A * B * plane, dtype=values.dtype)
        if kept is None:  # (the usual case: every index once)
            out[targets] = flat
        else:
            out[targets[kept]] = flat[kept]
        y = out.reshape(A, B, *sizes)
        self._cache = (targets, kept, values.shape, y.shape, y.dtype, swapped)
        return y.swapaxes(0, 1) if swapped else y

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, None]:
        """grad_output: (N, C, *spatial_out) -> (dx: (N, C, *spatial), None): ``dx`` is grad_output
        gathered at the indices, 0 for a value another one overwrote; the indices have no gradient."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        targets, kept, shape, out_shape, dtype, swapped = cache
        expected = (out_shape[1], out_shape[0], *out_shape[2:]) if swapped else out_shape
        grad_output = check_grad_output(grad_output, f"{self._who}.backward", expected, dtype)
        g = grad_output.swapaxes(0, 1) if swapped else grad_output
        dx = np.take(g.reshape(-1), targets)
        if kept is not None:
            dx[~kept] = 0
        dx = dx.reshape(shape)
        return (dx.swapaxes(0, 1) if swapped else dx), None

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(x, indices)`` for ``GradientChecker`` and ``summary``: x of ``shape`` (N, C, *spatial) from
        N(0, 1), and for each element the index of a random position of its pool window (clipped to the
        output), as a max pool of the same settings would give."""
        x = rng.standard_normal(shape)
        sizes = self._output_sizes(tuple(shape))
        flat = np.zeros(shape, dtype=np.int64)
        for axis, (n, k, s, p, o) in enumerate(
                zip(shape[2:], self._kernel_size, self._stride, self._padding, sizes, strict=True)):
            along = [1] * len(shape)
            along[2 + axis] = n
            starts = (np.arange(n, dtype=np.int64) * s - p).reshape(along)
            flat = flat * o + np.clip(starts + rng.integers(0, k, size=shape), 0, o - 1)
        return x, flat


def _kept(targets: np.ndarray, size: int) -> np.ndarray | None:
    """Per element of ``targets`` (flat indices into an output of ``size``), whether it is the last in
    its order to name its target, the one whose value the output shows (a max pool with overlapping
    windows names an input twice); None when every target is named once, the usual case.

    Each element writes its position at its target, and keeps its place if it reads it back: all do
    exactly when no target is named twice (one integer scatter and gather, whatever the order of
    NumPy's writes).  Else a ``np.maximum.at`` of the others' positions makes each target's the
    largest of all that name it: the last, deterministically."""
    count = targets.size
    if count < 2:
        return None
    small = np.int32 if count <= np.iinfo(np.int32).max else np.intp
    order = np.arange(count, dtype=small)
    owner = np.empty(size, dtype=small)  # (read only where written)
    owner[targets] = order
    kept = owner[targets] == order
    if kept.all():
        return None
    lost = ~kept
    np.maximum.at(owner, targets[lost], order[lost])
    return owner[targets] == order


class MaxUnpool2D(_MaxUnpool):
    """A max pool's partial inverse, as PyTorch's ``MaxUnpool2d``: each value goes back to the position
    its window's maximum came from, every other position is zero.

    Input: one tuple ``(x, indices)``: x (N, C, H, W) floats, indices of the same shape, integers (any
    integer dtype), each a flat position ``row * W_out + column`` in its (n, c) plane of the output,
    as ``MaxPool2D(..., return_indices=True)`` returns them.  Output: (N, C, H_out, W_out) zeros with
    ``y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j]``, x's dtype.

    Size: ``H_out = (H - 1)*stride - 2*padding + kh`` (likewise ``W_out``; ``stride`` defaults to
    ``kernel_size``), the size of a pool's input that gives an H-high output; pools that round down
    (a 5-high input pooled by 2 gives 2 rows, which unpool to 4) need ``output_size``, PyTorch's
    forward argument, here a setting (a keyword of the constructor and a property, checked when set),
    since an input tuple holds only arrays with a batch axis: set ``unpool.output_size = x.shape``
    (or its spatial part) before the call.  It must be within ``stride - 1`` of the default, as PyTorch.

    Refused (naming the layer, the layer unchanged): anything but a tuple of two, x not floating or not
    (N, C, H, W), indices not integers (``DTypeError``: floats, bools) or of another shape
    (``ShapeError``), an index outside ``[0, H_out*W_out)`` (``IndexRangeError``, with where it is).
    NaN/inf in x are scattered as they are (unchecked, as by the pools).

    An index named twice in one plane (overlapping pool windows that share a maximum): the last in
    row-major order of x wins, and only it gets a gradient; the others were overwritten, so the
    output does not depend on them (PyTorch keeps one of them and gives every one the gradient).

    Backward: ``(dx, None)``: ``dx[n, c, i, j] = g[n, c].flat[indices[n, c, i, j]]`` (0 for an
    overwritten value), no gradient for the indices.  The settings are properties checked when set;
    a backward uses its forward's indices and sizes.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        output_size: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, output_size)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out)`` for an input of ``height x width``: ``output_size`` if set (checked against
        it), else ``((H - 1)*stride - 2*padding + kh, ...)``."""
        h, w = self._plane_output((height, width))
        return h, w


class MaxUnpool1D(_MaxUnpool):
    """``MaxUnpool2D`` along one axis, as PyTorch's ``MaxUnpool1d``: ``(x, indices)``, x (N, C, L) floats,
    indices of the same shape, positions in ``[0, L_out)`` as ``MaxPool1D(..., return_indices=True)``
    returns them -> (N, C, L_out) zeros with each value at its index, ``L_out = (L - 1)*stride -
    2*padding + k`` or ``output_size`` (an int, or a full size (N, C, L_out); within ``stride - 1`` of
    the default).  Backward: ``(dx, None)``, the gradient gathered at the indices.  Everything else as
    ``MaxUnpool2D``; the sizes are kept as 1-tuples (``kernel_size == (k,)``).
    """

    _rank = 1
    _pool = "MaxPool1D"

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        *,
        output_size: int | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, output_size)

    def output_shape(self, length: int) -> tuple[int]:
        """``(L_out,)``: ``output_size`` if set (checked against ``length``), else
        ``(L - 1)*stride - 2*padding + k``."""
        (out,) = self._plane_output((length,))
        return (out,)
