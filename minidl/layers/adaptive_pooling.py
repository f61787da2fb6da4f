"""Adaptive pooling: average or maximum pooling to a given output size, whatever the input's, as
PyTorch's ``AdaptiveAvgPool2d``/``AdaptiveAvgPool1d`` and ``AdaptiveMaxPool2d``/``AdaptiveMaxPool1d``.

Output position ``i`` of ``out`` along an axis of ``size`` pools the inputs ``floor(i * size / out)``
up to ``ceil((i + 1) * size / out)`` (excluded): PyTorch's windows, which may overlap.

**Average.**  A sum over a rectangle is a sum over its rows of the sums over its columns, so the pool
is two matrix products with a 0/1 window matrix ``W`` of shape (out, size) per axis, then a division by
the windows' areas: ``y = (W_h x W_w^T) / area`` (sum, then divide: a constant input comes back
exactly, as in PyTorch), and the back-pass is the transpose, ``dx = W_h^T (g / area) W_w`` (BLAS, no
Python loop; about half PyTorch's time on 14x14 maps in float32, one thread:
``benchmarks/layer_speed.py``).  A product spreads a NaN or inf over its whole (sample, channel) plane
through ``0 * NaN``, while each output should depend on its own window only.  So the planes whose
output (or incoming gradient) is not all finite, which a NaN/inf in their input makes them, are done
again window by window (a Python loop over the windows of each axis, each a slice's sum over those
planes), with the same sums and the same division: a NaN stays in the windows that hold it, and the
other planes keep the product's values.  float16 is computed in float32 and rounded once.

**Maximum.**  Small windows are read as the same number of taps, the longest window's, a shorter
window repeating its last position (a repeat never wins: it was compared already): one gather and one
comparison per tap, over every (sample, channel, output) at once.  Larger windows go axis by axis (the
maximum over a rectangle is the maximum over its rows of each row's maximum), each axis by a loop over
its windows or its taps, whichever is shorter.  Ties go to the first maximum in row-major order, a
NaN wins (the window's last NaN), as in PyTorch's kernel; backward sends each output's gradient to its
winner, added up where overlapping windows share one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import ShapeError
from ..layer import Layer
from ..validation import check_grad_output, check_input, is_integer, native, size_arguments
from .conv import _EMPTY, _SIZE_NAMES, _SPATIAL, _input_of

__all__ = ["AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D"]


def windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's windows of ``out`` outputs over ``size`` inputs: the first input of each,
    ``floor(i * size / out)``, and the one after its last, ``ceil((i + 1) * size / out)``."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def window_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """(out, size): 1 on the positions of window ``i`` in row ``i``, 0 elsewhere: its product sums
    each window exactly as a sum would."""
    first, stop = windows(size, out)
    j = np.arange(size)
    return ((j >= first[:, None]) & (j < stop[:, None])).astype(dtype)


def _at(axis: int, index: slice | int) -> tuple[slice | int, ...]:
    """An index picking ``index`` along ``axis`` and everything along the axes before it."""
    return (slice(None),) * axis + (index,)


def _sum_windows(x: np.ndarray, axis: int, out: int) -> np.ndarray:
    """x with ``axis`` (of some size) replaced by the ``out`` sums of its windows, window by window."""
    y = np.empty((*x.shape[:axis], out, *x.shape[axis + 1:]), dtype=x.dtype)
    for i, (first, stop) in enumerate(zip(*windows(x.shape[axis], out), strict=True)):
        y[_at(axis, i)] = x[_at(axis, slice(first, stop))].sum(axis=axis)
    return y


def _spread_windows(g: np.ndarray, axis: int, size: int) -> np.ndarray:
    """The transpose of :func:`_sum_windows`: each of the ``out`` values along ``axis`` added to every
    position of its window of ``size`` (overlapping windows add up), window by window."""
    dx = np.zeros((*g.shape[:axis], size, *g.shape[axis + 1:]), dtype=g.dtype)
    for i, (first, stop) in enumerate(zip(*windows(size, g.shape[axis]), strict=True)):
        dx[_at(axis, slice(first, stop))] += g[_at(axis, slice(i, i + 1))]
    return dx


class _Adaptive(Layer):
    """What the adaptive pools share: ``output_size``, checked when set, and the output's size."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__()
        self.output_size = output_size
        self._layout = f"(N, C, {_SPATIAL[self._rank]})"
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] = ()  # the last forward's output spatial size
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    @property
    def output_size(self) -> int | tuple[int | None, ...] | None:
        """The output's spatial size, as given (an int, or for 2-D a pair whose None keeps the input's
        side); checked when set, after construction too."""
        return self._output_given

    @output_size.setter
    def output_size(self, value: int | tuple[int | None, ...] | None) -> None:
        name, rank = type(self).__name__, self._rank
        sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
        kept = rank > 1  # None (the input's size) for a side, as PyTorch's 2-D pool; its 1-D pool refuses it
        valid = [(s is None and kept) or (s is not None and is_integer(s) and s >= 1) for s in sizes]
        if len(sizes) != rank or not all(valid):
            shape = "an int >= 1" + (" or a pair of ints >= 1 or None (None: the input's size)" if kept else "")
            raise ValueError(f"{name}: output_size must be {shape}, got {value!r}")
        self._sizes: tuple[int | None, ...] = tuple(None if s is None else int(s) for s in sizes)
        self._output_given = tuple(value) if isinstance(value, list) else value

    def _out(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial size for an input of ``shape``: a forward's (N, C, *spatial), or
        ``output_shape``'s spatial sizes alone (its message then names the sizes: it knows no channels);
        ``ShapeError`` for an input with an empty axis.  The forward's check: output_shape refuses what it
        refuses, in its words."""
        rank = self._rank
        spatial = shape[-rank:]
        if 0 in spatial:
            raise ShapeError(f"{type(self).__name__}: input of {_input_of(shape, rank)} has {_EMPTY[rank]}")
        return tuple(size if out is None else out for size, out in zip(spatial, self._sizes, strict=True))

    def output_shape(self, *spatial: int) -> tuple[int, ...]:
        """The output's spatial size for an input of spatial size ``spatial`` (``rank`` ints >= 0: see
        :func:`size_arguments`); an input the forward refuses (an empty axis) is refused in its words
        (``ShapeError``)."""
        return self._out(size_arguments(type(self).__name__, _SIZE_NAMES[self._rank], spatial))

    def input_shape_hint(self) -> None:
        """None: any spatial size (a container infers no input shape through it: it sets the shape after it)."""
        return None

    def extra_repr(self) -> str:
        sizes = self._sizes
        return f"output_size={sizes[0] if len(set(sizes)) == 1 else sizes}"


class _AdaptiveAvgPool(_Adaptive):
    """The computation of both average pools: the mean of each window, one spatial axis after the other."""

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__(output_size)
        self._plan: tuple[tuple[object, ...], list[np.ndarray], np.ndarray] | None = None  # the last input's

    def _windows_of(self, spatial: tuple[int, ...], out: tuple[int, ...],
                    dtype: np.dtype) -> tuple[list[np.ndarray], np.ndarray]:
        """The window matrices of each spatial axis and the windows' areas (output-shaped), made once per
        input size, output size and dtype."""
        key = (spatial, out, dtype)
        plan = self._plan
        if plan is None or plan[0] != key:
            matrices = [window_matrix(size, n, dtype) for size, n in zip(spatial, out, strict=True)]
            area = np.ones((), dtype=np.int64)
            for size, n in zip(spatial, out, strict=True):
                first, stop = windows(size, n)
                area = np.multiply.outer(area, stop - first)
            plan = self._plan = (key, matrices, area.astype(dtype))
        return plan[1], plan[2]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C, *output_size)."""
        x = check_input(x, type(self).__name__, ndim=2 + self._rank, layout=self._layout, finite=False)
        out = self._out(x.shape)
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        self._shape, self._out_shape = x.shape, out  # (the backward's, whatever output_size is set since)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        wide = x.astype(np.float32) if x.dtype == np.float16 else x
        matrices, area = self._windows_of(x.shape[2:], out, wide.dtype)
        y = wide
        # (inf * 0 in a product: its planes are redone below; a sum beyond the dtype is inf, as PyTorch's)
        with np.errstate(invalid="ignore", over="ignore"):
            for matrix in matrices:  # contract the first spatial axis each time: it moves to the end,
                y = np.tensordot(y, matrix, axes=([2], [1]))  # so the order comes back
            y /= area  # the sums over the windows, over their sizes: a mean, rounded once
            bad = self._planes_not_finite(y)
            if bad is not None:  # a NaN/inf spread by 0 * NaN: those (sample, channel) planes window by window
                redo = wide[bad][:, None]
                for axis, size in enumerate(out, start=2):
                    redo = _sum_windows(redo, axis, size)
                y[bad] = redo[:, 0] / area
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, *output_size) -> dx: (N, C, *spatial)."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None and self._dtype is not None
        out = self._out_shape
        check_grad_output(grad_output, f"{type(self).__name__}.backward", shape[:2] + out, self._dtype)
        g = grad_output.astype(np.float32) if self._dtype == np.float16 else grad_output
        matrices, area = self._windows_of(shape[2:], out, g.dtype)
        share = g / area  # each output's gradient over its window's size, then spread over the window
        dx = share
        with np.errstate(invalid="ignore", over="ignore"):
            for matrix in matrices:  # the transpose
                dx = np.tensordot(dx, matrix, axes=([2], [0]))
            # (a NaN/inf in the gradient, or shares that overflow where windows overlap: a product spreads
            # it over the plane, as in the forward)
            bad = self._planes_not_finite(dx)
            if bad is not None:
                redo = share[bad][:, None]
                for axis, size in enumerate(shape[2:], start=2):
                    redo = _spread_windows(redo, axis, size)
                dx[bad] = redo[:, 0]
        return dx.astype(self._dtype, copy=False)

    @staticmethod
    def _planes_not_finite(a: np.ndarray) -> np.ndarray | None:
        """Where ``a`` (N, C, ...) holds a NaN/inf, as an (N, C) mask of its planes; None if nowhere."""
        if np.isfinite(a).all():
            return None
        return ~np.isfinite(a).reshape(a.shape[0], a.shape[1], -1).all(axis=2)


class AdaptiveAvgPool2D(_AdaptiveAvgPool):
    """Average pooling of (N, C, H, W) images to ``output_size`` = (oh, ow) whatever H and W, as PyTorch's
    ``AdaptiveAvgPool2d`` (an int: a square; None for a side: the input's).  ``AdaptiveAvgPool2D(1)`` is
    :class:`GlobalAvgPool2D` keeping the (1, 1) axes; ``(7, 7)`` is a ResNet/VGG head for any image size.

    Shapes: x: (N, C, H, W) -> y: (N, C, oh, ow).  Output ``(i, j)`` is the mean of the rows
    ``floor(i H / oh)`` to ``ceil((i + 1) H / oh) - 1`` and the columns likewise (PyTorch's windows,
    which may overlap); backward spreads ``g[i, j]`` evenly over that window.  NaN/inf pass unchecked.
    """


class AdaptiveAvgPool1D(_AdaptiveAvgPool):
    """Average pooling of (N, C, L) sequences to ``output_size`` positions whatever L, as PyTorch's
    ``AdaptiveAvgPool1d``.  Shapes: x: (N, C, L) -> y: (N, C, output_size); windows as
    :class:`AdaptiveAvgPool2D`'s along the one axis.
    """

    _rank = 1

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)


def _overlap(size: int, out: int) -> bool:
    """Whether two of the ``out`` windows over ``size`` inputs share an input."""
    first, stop = windows(size, out)
    return bool((stop[:-1] > first[1:]).any())


def window_taps(size: int, out: int) -> np.ndarray:
    """(out, k): the positions of each of the ``out`` windows over ``size`` inputs, ``k`` the longest
    window's length, a shorter window repeating its last position."""
    first, stop = windows(size, out)
    k = int((stop - first).max())
    return np.minimum(first[:, None] + np.arange(k), stop[:, None] - 1)


def max_positions(v: np.ndarray, axis: int, out: int) -> np.ndarray:
    """The position along ``axis`` of the maximum of each of the ``out`` windows along it: ``v``'s shape
    with ``axis`` of size ``out``.  Ties go to the first position, a window holding NaN to its last NaN
    (PyTorch's rule: ``val > max || isnan(val)``).

    Few long windows are reduced one by one (``argmax``); many short ones tap by tap, every window at
    once (one comparison per position of the longest window): the Python loop is the shorter of the
    two: a 1000-long axis pooled to 3 is three reductions, a 1000 -> 500 one two comparisons.
    """
    size = v.shape[axis]
    first, stop = windows(size, out)
    lay = (-1,) + (1,) * (v.ndim - 1 - axis)  # a vector along axis, broadcast over the axes after it
    if out <= int((stop - first).max()):  # one reduction per window
        index = np.empty((*v.shape[:axis], out, *v.shape[axis + 1:]), dtype=np.intp)
        for i, (a, b) in enumerate(zip(first.tolist(), stop.tolist(), strict=True)):
            window = v[_at(axis, slice(a, b))]
            at = np.argmax(window, axis=axis)  # the first maximum (the first NaN, if any: redone below)
            nan = np.isnan(window)
            if nan.any():
                last = (b - a - 1) - np.argmax(np.flip(nan, axis=axis), axis=axis)
                at = np.where(nan.any(axis=axis), last, at)
            index[_at(axis, i)] = at + a
        return index
    taps = window_taps(size, out)  # (out, k)
    return tap_winners(lambda t: np.take(v, taps[:, t], axis=axis), lambda t: taps[:, t].reshape(lay), taps.shape[1])


def tap_winners(value_at: Callable[[int], np.ndarray], position_at: Callable[[int], np.ndarray],
                taps: int) -> np.ndarray:
    """The position of each window's maximum, its ``taps`` taps read tap by tap over every window at
    once: ``value_at(t)`` is every window's t-th value (a new array), ``position_at(t)`` their positions
    (broadcastable to it, growing with t, a shorter window repeating its last).  Ties go to the earlier
    tap, a window holding NaN to its last NaN (PyTorch's rule: ``val > max || isnan(val)``)."""
    best = value_at(0)
    index = np.empty(best.shape, dtype=np.intp)
    index[...] = position_at(0)
    for t in range(1, taps):
        value = value_at(t)
        wins = value > best  # strict: on a tie the earlier tap keeps the win
        # a window's positions grow with t, so a win's position is the largest so far: a max (a
        # repeated last position never wins, whatever its place: it was compared already)
        np.maximum(index, wins * position_at(t), out=index)
        np.maximum(best, value, out=best)
    lost = np.isnan(best)  # (np.maximum propagates NaN)
    if lost.any():  # the last NaN of each window holding one
        for t in range(taps):
            nan = lost & np.isnan(value_at(t))
            index[nan] = np.broadcast_to(position_at(t), index.shape)[nan]
    return index


#: Windows of at most this many positions (the longest's, all axes together) are compared position by
#: position over the whole plane; larger ones axis by axis (see ``_AdaptiveMaxPool.forward``).
FLAT_TAPS = 16


class _AdaptiveMaxPool(_Adaptive):
    """The computation of both maximum pools."""

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__(output_size)
        self._argmax: np.ndarray | None = None  # per output, its winner's flat index in its (n, c) plane
        self._plan: tuple[tuple[object, ...], np.ndarray] | None = None  # the last input's taps

    def _taps_of(self, spatial: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
        """(taps, *out) intp: each tap's flat index in a plane, for every output, the taps in row-major
        order of their windows (a shorter window repeating its last position).  Made once per input and
        output size."""
        key = (spatial, out)
        plan = self._plan
        if plan is None or plan[0] != key:
            flat = np.zeros((1,) * (1 + len(out)), dtype=np.intp)
            stride = 1
            for axis in reversed(range(len(out))):  # the last axis first: its positions are the innermost
                taps = window_taps(spatial[axis], out[axis])  # (out_a, k_a)
                shape = [1] * (1 + len(out))
                shape[1 + axis] = out[axis]
                positions = (taps.T * stride).reshape(taps.shape[1], *shape[1:])  # (k_a, 1.., out_a, ..1)
                flat = (positions[:, None] + flat[None, :]).reshape(-1, *np.broadcast_shapes(
                    positions.shape[1:], flat.shape[1:]))  # the taps of this axis outermost
                stride *= spatial[axis]
            plan = self._plan = (key, np.ascontiguousarray(flat))
        return plan[1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C, *output_size)."""
        x = check_input(x, type(self).__name__, ndim=2 + self._rank, layout=self._layout, finite=False)
        out = self._out(x.shape)
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        spatial = x.shape[2:]
        planes = x.reshape(*x.shape[:2], math.prod(spatial))  # (N, C, S): a view for the usual layouts
        taps = math.prod(int((stop - first).max()) for first, stop in
                         (windows(size, n) for size, n in zip(spatial, out, strict=True)))  # the longest window's
        argmax = self._flat_winners(planes, spatial, out) if taps <= FLAT_TAPS else self._winners_by_axis(x, out)
        # each output is its winner's value: -0.0 or 0.0 as the winner is (np.maximum of the two may give either)
        y = np.take_along_axis(planes, argmax.reshape(*x.shape[:2], math.prod(out)), axis=2).reshape(argmax.shape)
        self._shape, self._out_shape, self._argmax = x.shape, out, argmax  # (a failed forward kept the last pass)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y

    def _flat_winners(self, planes: np.ndarray, spatial: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
        """Small windows: tap by tap over every window of the plane at once, one gather and comparison
        per position of the longest window."""
        taps = self._taps_of(spatial, out)  # (a window's taps in row-major order: their flat indices grow)
        return tap_winners(lambda t: planes[:, :, taps[t]], lambda t: taps[t], taps.shape[0])

    def _winners_by_axis(self, x: np.ndarray, out: tuple[int, ...]) -> np.ndarray:
        """Large windows: the maximum over a rectangle is the maximum over its rows of each row's
        maximum.  Along the last axis first: per row, the position of each window's maximum; then over
        the rows, the row whose maximum wins, and in it that position.  Ties go to the first row and
        in it the first column, NaN to the last row holding one and in it its last: PyTorch's winners.
        A global pool of a 1000 x 1000 map is two reductions (not a million comparisons)."""
        flat = max_positions(x, x.ndim - 1, out[-1])
        if self._rank == 2:
            row_maxima = np.take_along_axis(x, flat, axis=3)  # (N, C, H, ow)
            rows = max_positions(row_maxima, 2, out[0])  # (N, C, oh, ow)
            flat = rows * x.shape[3] + np.take_along_axis(flat, rows, axis=2)
        return flat

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, *output_size) -> dx: (N, C, *spatial): each output's gradient at its winner."""
        shape, argmax = self._shape, self._argmax
        self._require_cache(argmax)
        assert shape is not None and argmax is not None and self._dtype is not None
        check_grad_output(grad_output, f"{type(self).__name__}.backward", shape[:2] + self._out_shape, self._dtype)
        n, c = shape[:2]
        size = math.prod(shape[2:])
        index = argmax + (np.arange(n * c, dtype=np.intp) * size).reshape(n, c, *(1,) * (len(shape) - 2))
        dx = np.zeros(n * c * size, dtype=grad_output.dtype)
        # two windows may pick the same input: add, in the outputs' order (as PyTorch)
        if any(_overlap(side, m) for side, m in zip(shape[2:], self._out_shape, strict=True)):
            np.add.at(dx, index.reshape(-1), grad_output.reshape(-1))
        else:  # each input in one window: at most one gradient each, added to 0 as where windows overlap
            dx[index.reshape(-1)] = grad_output.reshape(-1) + 0  # (as PyTorch: -0.0 arrives as 0.0)
        return dx.reshape(shape)


class AdaptiveMaxPool2D(_AdaptiveMaxPool):
    """Maximum pooling of (N, C, H, W) images to ``output_size`` = (oh, ow) whatever H and W, as PyTorch's
    ``AdaptiveMaxPool2d`` (an int: a square; None for a side: the input's).

    Shapes: x: (N, C, H, W) -> y: (N, C, oh, ow).  Output ``(i, j)`` is the maximum of the rows
    ``floor(i H / oh)`` to ``ceil((i + 1) H / oh) - 1`` and the columns likewise (PyTorch's windows, which
    may overlap); ties go to the first in row-major order, a window holding NaN outputs NaN and routes
    its gradient to its last NaN (as PyTorch).  Backward sends ``g[i, j]`` to the window's winner (added
    up where windows overlap).  NaN/inf pass unchecked.
    """


class AdaptiveMaxPool1D(_AdaptiveMaxPool):
    """Maximum pooling of (N, C, L) sequences to ``output_size`` positions whatever L, as PyTorch's
    ``AdaptiveMaxPool1d``.  Shapes: x: (N, C, L) -> y: (N, C, output_size); windows, ties and NaN as
    :class:`AdaptiveMaxPool2D`'s along the one axis.
    """

    _rank = 1

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)
